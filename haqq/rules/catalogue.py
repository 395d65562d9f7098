"""Load and validate the program catalogue: one YAML file per program.

A program file says what a program is (names, legal basis, triggers, beneficiary, mode,
schedule, what ends it, the institution services it needs) and its rules: checks, amount
branches and parameters, written in the rule language (:mod:`haqq.rules.lang`, documented in
``docs/rules-language.md``). Checks shared by several programs live in ``_checks.yaml`` and are
named by id. Every error names the file, the line and what is wrong.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, model_validator

from haqq.domain.errors import CatalogueError
from haqq.domain.events import EventType
from haqq.ports import Service
from haqq.rules import yamlpos
from haqq.rules.lang import (
    DEFAULT_SCHEMA,
    Interpreter,
    Parameter,
    RuleError,
    Schema,
    Table,
    load_schema,
    load_table,
)
from haqq.rules.lang.parse import Scope, parse_expression
from haqq.rules.lang.table import UNIT_TYPES
from haqq.rules.lang.types import AlreadyPaid, ChildFact, Fact, Node, Type, walk

DEFAULT_DIRECTORY = Path(__file__).parent / "programs"
SHARED_CHECKS = "_checks.yaml"


class Mode(StrEnum):
    AUTOMATIC = "automatic"
    CONSENT = "consent"
    NOTIFY = "notify"
    STOP = "stop"


class ScheduleKind(StrEnum):
    LUMP_SUM = "lump_sum"
    MONTHLY = "monthly"
    NONE = "none"


class Beneficiary(StrEnum):
    """Who receives the money, as a relation to the person of the event."""

    SELF = "self"
    MOTHER = "mother"
    MOTHER_ELSE_FATHER = "mother_else_father"
    SPOUSE_ELSE_ADULT_CHILD = "spouse_else_adult_child"
    SELF_OR_GUARDIAN = "self_or_guardian"
    #: One case per child under 18 of the deceased, paid to the surviving parent.
    MINOR_CHILDREN_VIA_SURVIVING_PARENT = "minor_children_via_surviving_parent"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Schedule(_Strict):
    """When the money is paid: once, or monthly from the event with its end rules."""

    kind: ScheduleKind
    #: Monthly: payments end the day before the subject reaches this age.
    until_age: Annotated[int, Field(ge=1, le=120)] | None = None
    #: Monthly: at most this many months.
    months: Annotated[int, Field(ge=1, le=600)] | None = None

    @model_validator(mode="after")
    def _monthly_only(self) -> Schedule:
        if self.kind is not ScheduleKind.MONTHLY and (self.until_age or self.months):
            raise ValueError("'until_age' and 'months' apply to a monthly schedule only")
        return self


class LegalBasis(_Strict):
    act: str
    article: str
    url: str


class Names(_Strict):
    az: str
    ru: str
    en: str


class Program(_Strict):
    """One program of the catalogue, as its file says, with its rules compiled."""

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
    checks: list[str | dict[str, Any]] = Field(default_factory=list)
    stops: Literal["all"] | list[str] | None = None
    amount: list[dict[str, Any]] = Field(default_factory=list)
    parameters: dict[str, Any] = Field(default_factory=dict)
    #: Who could hold the right on a date, as a condition on the subject alone: the people the
    #: whole-population sweep evaluates. Programs without one are not swept.
    universe: str | None = None
    _table: Table | None = PrivateAttr(default=None)
    _universe: Node | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _consistent(self) -> Program:
        if self.mode is Mode.STOP:
            if self.stops is None:
                raise ValueError("a program in mode 'stop' must say what it 'stops'")
            if self.amount:
                raise ValueError("a program in mode 'stop' pays nothing: it has no 'amount'")
            if self.schedule.kind is not ScheduleKind.NONE:
                raise ValueError("a program in mode 'stop' has schedule kind 'none'")
        else:
            if self.stops is not None:
                raise ValueError("only a program in mode 'stop' 'stops' other programs")
            if not self.amount:
                raise ValueError("a benefit needs at least one amount branch")
            if self.schedule.kind is ScheduleKind.NONE:
                raise ValueError("a benefit is paid 'lump_sum' or 'monthly'")
        return self

    @property
    def table(self) -> Table:
        if self._table is None:
            raise CatalogueError(f"{self.id}: the program's rules were not compiled")
        return self._table

    @cached_property
    def fact_names(self) -> frozenset[str]:
        """Every fact the rules read, of anyone (and the subject's birth date when payments end
        at an age): all a decision needs of a person's record."""
        names = {
            node.name
            for top in _nodes(self.table)
            for node in walk(top)
            if isinstance(node, Fact | ChildFact) and node.name != "exists"
        }
        if self.schedule.until_age:
            names.add("birth_date")
        return frozenset(names)

    @cached_property
    def asked(self) -> frozenset[Service]:
        """Every service the program asks, for anyone."""
        return frozenset(s for services in self.needs.values() for s in services)

    @property
    def universe_rule(self) -> Node | None:
        """The parsed :attr:`universe` (None when the program is not swept)."""
        return self._universe

    @cached_property
    def interpreter(self) -> Interpreter:
        return Interpreter(self.table)

    @property
    def parameter_history(self) -> Mapping[str, Parameter]:
        return self.table.parameters

    @cached_property
    def needs(self) -> dict[Whose, frozenset[Service]]:
        """Whose data the program asks for, and from which services: what its rules read, and
        the beneficiary's mobile number for a program that texts the citizen."""
        found = needed(self, self.table, self.table.schema)
        return {whose: frozenset(services) for whose, services in sorted(found.items(), key=str)}

    def legal_reference(self) -> str:
        return f"{self.legal_basis.act}, {self.legal_basis.article}"


#: Stop programs decide only by their checks; this branch stands for "the checks passed".
STOP_BRANCH = "stop"


#: Whose data a rule reads: a role (``subject``, ``beneficiary``) and a relation of it (None for
#: the person themself; ``mother``, ``father``, ``spouse``, ``children``).
Whose = tuple[str, str | None]


def _nodes(table: Table) -> list[Node]:
    """Every expression of a table: checks, conditions and values."""
    nodes = [c.require for c in table.checks] + [b.value for b in table.amount]
    return nodes + [b.when for b in table.amount if b.when is not None]


def reads(table: Table, schema: Schema) -> dict[Whose, set[Service]]:
    """Which institution services a table reads, for whom. A relation also needs the family
    record of its role (the civil registry says who the relation is)."""
    found: dict[Whose, set[Service]] = {}
    for top in _nodes(table):
        for node in walk(top):
            if isinstance(node, ChildFact):
                found.setdefault((node.role, None), set()).add(Service.CIVIL_FAMILY)
                found.setdefault((node.role, "children"), set()).add(
                    Service(schema.facts[node.name].service)
                )
            elif isinstance(node, Fact):
                if node.relation is not None:
                    found.setdefault((node.role, None), set()).add(Service.CIVIL_FAMILY)
                    services = found.setdefault((node.role, node.relation), set())
                else:
                    services = found.setdefault((node.role, None), set())
                if node.name != "exists":
                    services.add(Service(schema.facts[node.name].service))
    return found


def needed(program: Program, table: Table, schema: Schema) -> dict[Whose, set[Service]]:
    """What the program asks for: what its rules read, the beneficiary's mobile number when it
    texts the citizen, the subject's birth date when payments end at an age."""
    found = reads(table, schema)
    if program.mode is not Mode.STOP:
        found.setdefault(("beneficiary", None), set()).add(Service.MOBILE_NUMBER)
    if program.schedule.until_age:
        found.setdefault(("subject", None), set()).add(Service.CIVIL_PERSON)
    return found


@dataclass(frozen=True, slots=True)
class Catalogue:
    """All programs, with a version that names exactly the files they were read from."""

    version: str
    programs: Mapping[str, Program]
    schema: Schema

    def triggered_by(self, event_type: EventType) -> Sequence[Program]:
        return [p for p in self.programs.values() if event_type in p.triggers]

    def __getitem__(self, program_id: str) -> Program:
        try:
            return self.programs[program_id]
        except KeyError:
            known = ", ".join(sorted(self.programs))
            raise CatalogueError(f"no program {program_id!r} in the catalogue (known: {known})") from None


def read_yaml(path: Path, what: str = "a program file") -> tuple[dict[str, Any], dict[yamlpos.Path, int]]:
    """A YAML mapping and the line of each of its values; errors name the file."""
    try:
        text = path.read_text(encoding="utf-8")
        raw: Any = yaml.safe_load(text)
        positions = yamlpos.lines(text)
    except yaml.YAMLError as exc:
        raise CatalogueError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise CatalogueError(f"{path}: {what} must be a mapping")
    return raw, positions


M = TypeVar("M", bound=BaseModel)


def validated(model: type[M], raw: Mapping[str, Any], at: Callable[[Sequence[str | int]], str]) -> M:
    """``raw`` as ``model``; every problem named with its place (``file:line``) and field."""
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{at(err['loc'])}: {'.'.join(str(p) for p in err['loc']) or '(file)'}: {err['msg']}"
            for err in exc.errors()
        )
        raise CatalogueError(problems) from None


def locator(path: Path, positions: dict[yamlpos.Path, int]) -> Callable[[Sequence[str | int]], str]:
    """``file:line`` of a value, by its path in the document."""

    def at(loc: Sequence[str | int]) -> str:
        line = yamlpos.line_of(positions, loc)
        return f"{path}:{line}" if line else str(path)

    return at


def load_shared_checks(directory: Path) -> dict[str, dict[str, Any]]:
    """The shared checks by id (none when the directory has no ``_checks.yaml``)."""
    path = directory / SHARED_CHECKS
    if not path.exists():
        return {}
    raw, positions = read_yaml(path, "a shared checks file")
    rows = raw.get("checks")
    at = locator(path, positions)
    if not isinstance(rows, list):
        raise CatalogueError(f"{at(('checks',))}: 'checks' must be a list of checks")
    shared: dict[str, dict[str, Any]] = {}
    for i, row in enumerate(rows):
        if not isinstance(row, dict) or not isinstance(row.get("id"), str):
            raise CatalogueError(f"{at(('checks', i))}: a shared check is a mapping with an 'id'")
        if row["id"] in shared:
            raise CatalogueError(f"{at(('checks', i, 'id'))}: the check {row['id']!r} is defined twice")
        shared[row["id"]] = row
    return shared


def load_program(
    path: Path,
    *,
    schema: Schema | None = None,
    shared: Mapping[str, Mapping[str, Any]] | None = None,
) -> Program:
    """Read one catalogue file; errors name the file, the line and what is wrong."""
    schema = schema or load_schema()
    shared = load_shared_checks(path.parent) if shared is None else shared
    raw, positions = read_yaml(path)
    at = locator(path, positions)
    program = validated(Program, raw, at)
    if program.id != path.stem:
        raise CatalogueError(f"{at(('id',))}: id {program.id!r} must match the file name {path.stem!r}")
    checks: list[dict[str, Any]] = []
    for i, row in enumerate(program.checks):
        if isinstance(row, str):
            if row not in shared:
                known = ", ".join(sorted(shared)) or "none"
                raise CatalogueError(
                    f"{at(('checks', i))}: no shared check {row!r} (in {SHARED_CHECKS}: {known})"
                )
            checks.append(dict(shared[row]))
        else:
            checks.append(row)
    amount = program.amount or [
        {"id": STOP_BRANCH, "reference": program.legal_reference(), "value": 1}
    ]
    try:
        table = load_table(
            {"checks": checks, "amount": amount, "parameters": program.parameters},
            schema,
            name=program.id,
            locate=at,
        )
    except RuleError as exc:
        raise CatalogueError(str(exc)) from None
    _check_services(program, table, schema, at)
    _check_placeholders(program, table, at)
    program._table = table
    if program.universe is not None:
        program._universe = _universe(program, table, schema, at)
    return program


def _universe(program: Program, table: Table, schema: Schema, at: Any) -> Node:
    where = f"{at(('universe',))}: universe"
    if program.mode in (Mode.STOP, Mode.NOTIFY):
        raise CatalogueError(f"{where}: only programs that assign a benefit are swept")
    scope = Scope(schema, {n: UNIT_TYPES[p.unit] for n, p in table.parameters.items()})
    try:
        node = parse_expression(program.universe or "", scope, expect=Type.BOOL, where=where)
    except RuleError as exc:
        raise CatalogueError(str(exc)) from None
    for part in walk(node):
        if isinstance(part, AlreadyPaid) or (
            isinstance(part, Fact | ChildFact) and part.role != "subject"
        ):
            raise CatalogueError(f"{where}: a universe reads the subject's facts only")
    return node


def _check_placeholders(program: Program, table: Table, at: Any) -> None:
    """A reason may quote the values its check read (``{beneficiary.birth_date}``), no others."""
    from haqq.rules.evaluate import PLACEHOLDER

    for i, check in enumerate(table.checks):
        read = {n.path for n in walk(check.require) if isinstance(n, Fact | ChildFact)}
        for lang, text in check.reason.model_dump().items():
            for name in PLACEHOLDER.findall(text):
                if name not in read:
                    raise CatalogueError(
                        f"{at(('checks', i))}: check {check.id}: the {lang} reason quotes "
                        f"{{{name}}}, which the check does not read"
                    )


def _check_services(program: Program, table: Table, schema: Schema, at: Any) -> None:
    """The program declares exactly the services its rules read, plus the mobile number registry
    for programs that text the citizen: the gather step asks for those and nothing more."""
    wanted = {s for services in needed(program, table, schema).values() for s in services}
    declared = set(program.services)
    missing = sorted(s.value for s in wanted - declared)
    if missing:
        raise CatalogueError(
            f"{at(('services',))}: the rules read {', '.join(missing)} but 'services' does not "
            "declare it"
        )
    unused = sorted(s.value for s in declared - wanted)
    if unused:
        raise CatalogueError(
            f"{at(('services',))}: {', '.join(unused)} is declared but no rule reads it: "
            "remove it (haqq asks institutions only for what a decision needs)"
        )


def load_catalogue(directory: Path | None = None, *, schema_path: Path | None = None) -> Catalogue:
    """Load every program file of ``directory`` (the built-in catalogue by default).

    Files whose name starts with ``_`` are not programs (``_checks.yaml``: shared checks).
    """
    folder = directory or DEFAULT_DIRECTORY
    files = sorted(p for p in folder.glob("*.yaml") if not p.name.startswith("_"))
    if not files:
        raise CatalogueError(f"{folder}: no program files (*.yaml)")
    try:
        schema = load_schema(schema_path)
    except RuleError as exc:
        raise CatalogueError(str(exc)) from None
    shared = load_shared_checks(folder)
    digest = hashlib.sha256()
    extra = [folder / SHARED_CHECKS] if (folder / SHARED_CHECKS).exists() else []
    for path in [*extra, schema_path or DEFAULT_SCHEMA, *files]:
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    programs: dict[str, Program] = {}
    for path in files:
        program = load_program(path, schema=schema, shared=shared)
        programs[program.id] = program
    for program in programs.values():
        if isinstance(program.stops, list):
            unknown = [p for p in program.stops if p not in programs]
            if unknown:
                raise CatalogueError(f"{folder / program.id}.yaml: stops: unknown program(s) {unknown}")
    return Catalogue(version=digest.hexdigest()[:12], programs=programs, schema=schema)
