"""The program catalogue for people: what each program is, on what law, for whom, how it is paid,
and its parameters with their full history (every value, from when, on what legal act) and the
value that applies on a given date. Read from the loaded catalogue; nothing is stored."""

from __future__ import annotations

from datetime import date, timedelta

from pydantic import BaseModel, Field

from haqq.domain.access import Action, Principal, require
from haqq.domain.errors import HaqqError
from haqq.rules.catalogue import Catalogue, Program
from haqq.rules.lang import Parameter


class UnknownProgram(HaqqError):
    def __init__(self, program_id: str) -> None:
        super().__init__(f"no program {program_id!r} in the catalogue")
        self.program_id = program_id


class UnknownParameter(HaqqError):
    def __init__(self, program_id: str, name: str) -> None:
        super().__init__(f"program {program_id!r} has no parameter {name!r}")
        self.program_id = program_id
        self.name = name


class Names(BaseModel):
    az: str
    ru: str
    en: str


class LegalBasis(BaseModel):
    act: str
    article: str
    url: str


class Schedule(BaseModel):
    kind: str = Field(description="lump_sum | monthly | none")
    until_age: int | None = Field(description="monthly: paid until the subject reaches this age")
    months: int | None = Field(description="monthly: for at most this many months")


class ParameterValue(BaseModel):
    value: int | date = Field(description="qəpik for an amount, a date for a date, else a count")
    effective_from: date
    effective_until: date | None = Field(description="the last day it applied; null while in force")
    reference: str = Field(description="the legal act that set it")
    applies: bool = Field(description="whether this value applies on the date asked")


class ParameterView(BaseModel):
    name: str
    unit: str = Field(description="qepik | months | years | days | count | date")
    as_of: date
    current: ParameterValue | None = Field(description="the value that applies on as_of (null: none yet)")
    history: list[ParameterValue] = Field(description="every value, oldest first")


class ProgramSummary(BaseModel):
    id: str
    version: int
    illustrative: bool = Field(description="amounts and references are made up for the demonstration")
    names: Names
    legal_basis: LegalBasis
    mode: str = Field(description="automatic | consent | notify | stop")
    triggers: list[str] = Field(description="the life events that start a case")
    beneficiary: str = Field(description="who receives the money, as a relation to the event's person")
    schedule: Schedule
    ends_on: list[str]
    parameters: list[str]


class ProgramDetail(ProgramSummary):
    services: list[str] = Field(description="the institutions' services a decision asks")
    stops: list[str] | None = Field(description="a stop program: the programs it ends ('all': every one)")
    as_of: date
    parameter_values: list[ParameterView]


class CatalogueView(BaseModel):
    version: str = Field(description="names exactly the files the catalogue was read from")
    programs: list[ProgramSummary]


def _history(param: Parameter, as_of: date) -> tuple[ParameterValue | None, list[ParameterValue]]:
    applying = param.as_of(as_of)
    rows = []
    current = None
    for i, v in enumerate(param.values):
        nxt = param.values[i + 1].from_ if i + 1 < len(param.values) else None
        row = ParameterValue(
            value=v.value, effective_from=v.from_, effective_until=nxt - timedelta(days=1) if nxt else None,
            reference=v.reference, applies=applying is not None and v.from_ == applying.from_,
        )
        if row.applies:
            current = row
        rows.append(row)
    return current, rows


def parameter_view(name: str, param: Parameter, as_of: date) -> ParameterView:
    current, history = _history(param, as_of)
    return ParameterView(name=name, unit=param.unit, as_of=as_of, current=current, history=history)


def _summary(p: Program) -> ProgramSummary:
    return ProgramSummary(
        id=p.id, version=p.version, illustrative=p.illustrative,
        names=Names(az=p.names.az, ru=p.names.ru, en=p.names.en),
        legal_basis=LegalBasis(act=p.legal_basis.act, article=p.legal_basis.article, url=p.legal_basis.url),
        mode=p.mode.value, triggers=[t.value for t in p.triggers], beneficiary=p.beneficiary.value,
        schedule=Schedule(kind=p.schedule.kind.value, until_age=p.schedule.until_age, months=p.schedule.months),
        ends_on=[e.value for e in p.ends_on], parameters=sorted(p.parameter_history),
    )


def _program(catalogue: Catalogue, program_id: str) -> Program:
    found = catalogue.programs.get(program_id)
    if found is None:
        raise UnknownProgram(program_id)
    return found


def catalogue_view(principal: Principal, catalogue: Catalogue) -> CatalogueView:
    """Every program of the catalogue, in order of id, with the catalogue's version."""
    require(principal, Action.VIEW_PROGRAMS)
    return CatalogueView(
        version=catalogue.version, programs=[_summary(catalogue.programs[k]) for k in sorted(catalogue.programs)]
    )


def program_detail(principal: Principal, catalogue: Catalogue, program_id: str, as_of: date) -> ProgramDetail:
    """One program with its parameters' histories and the values that apply on ``as_of``."""
    require(principal, Action.VIEW_PROGRAMS)
    p = _program(catalogue, program_id)
    stops = None if p.stops is None else (["all"] if p.stops == "all" else list(p.stops))
    return ProgramDetail(
        **_summary(p).model_dump(),
        services=[s.value for s in p.services],
        stops=stops,
        as_of=as_of,
        parameter_values=[parameter_view(n, p.parameter_history[n], as_of) for n in sorted(p.parameter_history)],
    )


def parameter_at(
    principal: Principal, catalogue: Catalogue, program_id: str, name: str, as_of: date
) -> ParameterView:
    """One parameter of one program: its history and the value that applies on ``as_of``."""
    require(principal, Action.VIEW_PROGRAMS)
    p = _program(catalogue, program_id)
    param = p.parameter_history.get(name)
    if param is None:
        raise UnknownParameter(program_id, name)
    return parameter_view(name, param, as_of)


__all__ = [
    "CatalogueView",
    "LegalBasis",
    "Names",
    "ParameterValue",
    "ParameterView",
    "ProgramDetail",
    "ProgramSummary",
    "Schedule",
    "UnknownParameter",
    "UnknownProgram",
    "catalogue_view",
    "parameter_at",
    "parameter_view",
    "program_detail",
]
