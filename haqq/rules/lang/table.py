"""Decision tables: a program's checks, amount branches and parameters, parsed and typed.

A table is read from a mapping (a program file's ``rules`` part) by :func:`load_table`, which
parses every expression once against the fact schema and the parameters and validates the
table: unique ids, a total amount table (the last branch has no ``when``, every other has one).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from haqq.rules.lang.parse import Scope, parse_expression
from haqq.rules.lang.schema import Schema
from haqq.rules.lang.types import Node, Outcome, RuleError, Type

#: The unit of a parameter decides its type: dates are dates, everything else an int.
UNIT_TYPES: dict[str, Type] = {
    "qepik": Type.INT, "months": Type.INT, "years": Type.INT, "days": Type.INT,
    "count": Type.INT, "date": Type.DATE,
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class ParameterValue(_Strict):
    from_: date = Field(alias="from")
    value: int | date
    reference: str


class Parameter(_Strict):
    unit: Literal["qepik", "months", "years", "days", "count", "date"]
    values: Annotated[list[ParameterValue], Field(min_length=1)]

    @model_validator(mode="after")
    def _valid(self) -> Parameter:
        dates = [v.from_ for v in self.values]
        if dates != sorted(set(dates)):
            raise ValueError("values must be in increasing order of 'from', one per date")
        want = date if self.unit == "date" else int
        for v in self.values:
            if not isinstance(v.value, want) or isinstance(v.value, bool):
                raise ValueError(f"a value of unit {self.unit!r} must be {want.__name__}")
        return self

    def as_of(self, day: date) -> ParameterValue | None:
        """The value in force on ``day``: the last one whose ``from`` is not after it."""
        found: ParameterValue | None = None
        for v in self.values:
            if v.from_ <= day:
                found = v
        return found


class Reason(_Strict):
    en: str
    az: str
    ru: str


class CheckRow(_Strict):
    id: str
    require: str
    otherwise: Literal["denied", "needs_review"]
    reference: str
    reason: Reason


class BranchRow(_Strict):
    id: str
    reference: str
    when: str | None = None
    value: str | int


class TableFile(_Strict):
    checks: list[CheckRow] = Field(default_factory=list)
    amount: Annotated[list[BranchRow], Field(min_length=1)]
    parameters: dict[str, Parameter] = Field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Check:
    id: str
    require: Node
    otherwise: Outcome
    reference: str
    reason: Reason


@dataclass(frozen=True, slots=True)
class Branch:
    id: str
    reference: str
    when: Node | None
    value: Node


@dataclass(frozen=True, slots=True)
class Table:
    """A checked decision table: every expression parsed and typed."""

    name: str
    checks: tuple[Check, ...]
    amount: tuple[Branch, ...]
    parameters: Mapping[str, Parameter]
    schema: Schema

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(c.id for c in self.checks) + tuple(b.id for b in self.amount)

    def reference(self, row_id: str) -> str:
        for check in self.checks:
            if check.id == row_id:
                return check.reference
        for branch in self.amount:
            if branch.id == row_id:
                return branch.reference
        raise KeyError(row_id)


Locate = Callable[[Sequence[str | int]], str]


def load_table(
    raw: Mapping[str, Any], schema: Schema, *, name: str = "table", locate: Locate | None = None
) -> Table:
    """Validate and type a table given as a mapping (as read from YAML).

    ``locate`` turns the path of a value (``("checks", 2, "require")``) into where it is, for
    instance ``file.yaml:34``; errors start with it (with ``name`` by default).
    """
    at: Locate = locate or (lambda _path: name)
    try:
        parsed = TableFile.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{at(err['loc'])}: {'.'.join(str(p) for p in err['loc']) or '(table)'}: {err['msg']}"
            for err in exc.errors()
        )
        raise RuleError(problems) from None
    for pname in parsed.parameters:
        if not pname.isidentifier() or pname.startswith("_"):
            raise RuleError(f"{at(('parameters', pname))}: parameters.{pname}: not a usable parameter name")
    scope = Scope(schema, {n: UNIT_TYPES[p.unit] for n, p in parsed.parameters.items()})
    seen: set[str] = set()
    rows = [("checks", i, c.id) for i, c in enumerate(parsed.checks)]
    rows += [("amount", i, b.id) for i, b in enumerate(parsed.amount)]
    for part, i, row_id in rows:
        if row_id in seen:
            raise RuleError(f"{at((part, i, 'id'))}: the id {row_id!r} is used twice")
        seen.add(row_id)
    checks = tuple(
        Check(
            c.id,
            parse_expression(
                c.require, scope, expect=Type.BOOL, where=f"{at(('checks', i, 'require'))}: check {c.id}"
            ),
            Outcome(c.otherwise),
            c.reference,
            c.reason,
        )
        for i, c in enumerate(parsed.checks)
    )
    branches = []
    last = len(parsed.amount) - 1
    for i, b in enumerate(parsed.amount):
        where = f"{at(('amount', i))}: branch {b.id}"
        if i == last and b.when is not None:
            raise RuleError(f"{where}: the last branch must have no 'when': the table must be total")
        if i < last and b.when is None:
            raise RuleError(
                f"{where}: only the last branch can have no 'when' (the branches after it "
                "could never apply)"
            )
        when = (
            parse_expression(
                b.when, scope, expect=Type.BOOL, where=f"{at(('amount', i, 'when'))}: branch {b.id}"
            )
            if b.when
            else None
        )
        text = str(b.value)
        value = parse_expression(
            text, scope, expect=Type.INT, where=f"{at(('amount', i, 'value'))}: branch {b.id}"
        )
        branches.append(Branch(b.id, b.reference, when, value))
    return Table(name, checks, tuple(branches), dict(parsed.parameters), schema)


def load_table_file(path: Path, schema: Schema, *, key: str | None = None) -> Table:
    """Read a table from a YAML file (from its ``key`` mapping when given); errors name the file."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise RuleError(f"{path.name}: not valid YAML: {exc}") from None
    if key is not None:
        raw = raw.get(key) if isinstance(raw, dict) else None
    if not isinstance(raw, dict):
        raise RuleError(f"{path.name}: a table is a mapping of checks, amount and parameters")
    return load_table(raw, schema, name=path.stem)
