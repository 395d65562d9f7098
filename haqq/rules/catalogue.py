"""Load and validate the program catalogue: one YAML file per program."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from haqq.domain.errors import CatalogueError
from haqq.domain.events import EventType
from haqq.domain.money import Rounding
from haqq.ports import Service

DEFAULT_DIRECTORY = Path(__file__).parent / "programs"


class Mode(StrEnum):
    AUTOMATIC = "automatic"
    CONSENT = "consent"
    NOTIFY = "notify"
    STOP = "stop"


class Schedule(StrEnum):
    LUMP_SUM = "lump_sum"
    MONTHLY = "monthly"
    NONE = "none"


class Beneficiary(StrEnum):
    SELF = "self"
    MOTHER_ELSE_FATHER = "mother_else_father"
    SPOUSE_ELSE_ADULT_CHILD = "spouse_else_adult_child"
    SELF_OR_GUARDIAN = "self_or_guardian"


Check = Literal[
    "known_person",
    "alive",
    "deceased",
    "identity_valid",
    "resident",
    "consistent_records",
    "disability_active",
    "not_already_paid",
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ParameterValue(_Strict):
    from_: date = Field(alias="from")
    value: int
    reference: str


class Parameter(_Strict):
    unit: Literal["qepik", "months", "years", "count"]
    values: Annotated[list[ParameterValue], Field(min_length=1)]

    @model_validator(mode="after")
    def _ordered(self) -> Parameter:
        dates = [v.from_ for v in self.values]
        if dates != sorted(set(dates)):
            raise ValueError("values must be in increasing order of 'from', one per date")
        return self

    def as_of(self, day: date) -> ParameterValue | None:
        """The value in force on ``day``: the last one whose ``from`` is not after it."""
        found: ParameterValue | None = None
        for v in self.values:
            if v.from_ <= day:
                found = v
        return found


class ParamRef(_Strict):
    parameter: str


class Condition(_Strict):
    fact: str
    at_least: int | ParamRef | None = None
    equals: int | str | bool | None = None


class Value(_Strict):
    parameter: str | None = None
    fact: str | None = None
    divide_by: ParamRef | None = None
    rounding: Rounding = Rounding.HALF_UP
    at_least: ParamRef | None = None

    @model_validator(mode="after")
    def _one_source(self) -> Value:
        if (self.parameter is None) == (self.fact is None):
            raise ValueError("a value takes exactly one of 'parameter' or 'fact'")
        return self


class Branch(_Strict):
    id: str
    reference: str
    when: Condition | None = None
    value: Value


class LegalBasis(_Strict):
    act: str
    article: str
    url: str


class Names(_Strict):
    az: str
    ru: str
    en: str


class Program(_Strict):
    """One program of the catalogue, as its file says."""

    id: str
    version: int
    illustrative: bool
    names: Names
    legal_basis: LegalBasis
    triggers: Annotated[list[EventType], Field(min_length=1)]
    beneficiary: Beneficiary
    mode: Mode
    schedule: Schedule
    once_per: Literal["subject", "beneficiary"] | None = None
    ends_on: list[EventType] = Field(default_factory=list)
    services: Annotated[list[Service], Field(min_length=1)]
    checks: list[Check]
    stops: Literal["all"] | list[str] | None = None
    amount: list[Branch]
    parameters: dict[str, Parameter]

    @model_validator(mode="after")
    def _consistent(self) -> Program:
        for branch in self.amount:
            for name in _parameter_names(branch):
                if name not in self.parameters:
                    raise ValueError(f"branch {branch.id!r} names unknown parameter {name!r}")
            for fact in _fact_names(branch):
                service = fact.split(".", 1)[0]
                if service not in {s.value for s in self.services}:
                    raise ValueError(
                        f"branch {branch.id!r} reads {fact!r} but the program does not "
                        f"declare the service {service!r}"
                    )
        if self.mode is Mode.STOP:
            if self.stops is None:
                raise ValueError("a program in mode 'stop' must say what it 'stops'")
        elif not self.amount:
            raise ValueError("a benefit needs at least one amount branch")
        elif self.amount[-1].when is not None:
            raise ValueError("the last amount branch must have no 'when': the table must be total")
        return self

    def legal_reference(self) -> str:
        return f"{self.legal_basis.act}, {self.legal_basis.article}"


def _parameter_names(branch: Branch) -> list[str]:
    names = []
    v = branch.value
    for ref in (v.divide_by, v.at_least):
        if ref is not None:
            names.append(ref.parameter)
    if v.parameter:
        names.append(v.parameter)
    if branch.when is not None and isinstance(branch.when.at_least, ParamRef):
        names.append(branch.when.at_least.parameter)
    return names


def _fact_names(branch: Branch) -> list[str]:
    facts = [branch.value.fact] if branch.value.fact else []
    if branch.when is not None:
        facts.append(branch.when.fact)
    return facts


@dataclass(frozen=True, slots=True)
class Catalogue:
    """All programs, with a version that names exactly the files they were read from."""

    version: str
    programs: Mapping[str, Program]

    def triggered_by(self, event_type: EventType) -> Sequence[Program]:
        return [p for p in self.programs.values() if event_type in p.triggers]

    def __getitem__(self, program_id: str) -> Program:
        return self.programs[program_id]


def load_program(path: Path) -> Program:
    """Read one catalogue file; errors name the file and the field."""
    try:
        raw: Any = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise CatalogueError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise CatalogueError(f"{path}: a program file must be a mapping")
    try:
        program = Program.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(file)'}: {err['msg']}"
            for err in exc.errors()
        )
        raise CatalogueError(f"{path}: {problems}") from None
    if program.id != path.stem:
        raise CatalogueError(f"{path}: id {program.id!r} must match the file name {path.stem!r}")
    return program


def load_catalogue(directory: Path | None = None) -> Catalogue:
    """Load every ``*.yaml`` of ``directory`` (the built-in catalogue by default)."""
    folder = directory or DEFAULT_DIRECTORY
    files = sorted(folder.glob("*.yaml"))
    if not files:
        raise CatalogueError(f"{folder}: no program files (*.yaml)")
    digest = hashlib.sha256()
    programs: dict[str, Program] = {}
    for path in files:
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
        program = load_program(path)
        programs[program.id] = program
    for program in programs.values():
        if isinstance(program.stops, list):
            unknown = [p for p in program.stops if p not in programs]
            if unknown:
                raise CatalogueError(f"{folder / program.id}.yaml: stops: unknown program(s) {unknown}")
    return Catalogue(version=digest.hexdigest()[:12], programs=programs)
