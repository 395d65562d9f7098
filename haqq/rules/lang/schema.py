"""The fact schema: which facts a rule can read, their types, sources and defaults.

Institutions answer ``{service: {field: value}}`` per person (see :class:`haqq.ports.Service`);
:meth:`Schema.person` turns such answers into a :class:`Person`: every declared fact has a value
(the institution's, or the declared default) and remembers where it came from. No null ever
reaches an expression.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from haqq.ports import Service
from haqq.rules.lang.types import FactError, RuleError, Type, Value

DEFAULT_SCHEMA = Path(__file__).parent.parent / "facts.yaml"

#: Where a fact's value came from when the institution did not give it.
DEFAULT_SOURCE = "default"

#: ``exists`` of a relation is read from the family record.
FAMILY_SOURCE = Service.CIVIL_FAMILY.value

Answers = Mapping[str, Mapping[str, Any] | None]

_PYTHON_TYPE: dict[Type, type] = {Type.INT: int, Type.BOOL: bool, Type.STR: str, Type.DATE: date}


class FactSpec(BaseModel):
    """One declared fact (one entry of ``facts.yaml``)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    type: Type
    from_: str = Field(alias="from")
    kind: Literal["value", "present", "count", "contains"] = "value"
    default: Any = None
    #: ``contains``: the items of the list field that make the fact true.
    values: tuple[str, ...] = ()
    doc: str = ""

    @model_validator(mode="after")
    def _consistent(self) -> FactSpec:
        service, _, name = self.from_.partition(".")
        if service not in {s.value for s in Service}:
            raise ValueError(f"unknown service {service!r}")
        if self.kind == "present":
            if self.type is not Type.BOOL or self.default not in (None, False):
                raise ValueError("a 'present' fact is a bool with default false")
        elif self.kind == "count":
            if self.type is not Type.INT or not name or self.default not in (None, 0):
                raise ValueError("a 'count' fact is an int of a list field, default 0")
        elif self.kind == "contains":
            if self.type is not Type.BOOL or not name or not self.values or self.default not in (None, False):
                raise ValueError(
                    "a 'contains' fact is a bool, default false: whether a list field holds any of 'values'"
                )
        elif not name:
            raise ValueError("a 'value' fact names a field: 'service.field'")
        elif not _has_type(self.default, self.type):
            raise ValueError(f"the default {self.default!r} is not of type {self.type.value}")
        return self

    @cached_property
    def service(self) -> str:
        return self.from_.partition(".")[0]

    @cached_property
    def field(self) -> str:
        return self.from_.partition(".")[2]

    @cached_property
    def default_value(self) -> Value:
        if self.kind in ("present", "contains"):
            return False
        if self.kind == "count":
            return 0
        value: Value = self.default
        return value


class _SchemaFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    facts: dict[str, FactSpec]


def _has_type(value: object, type_: Type) -> bool:
    if type_ is Type.DATE:
        return isinstance(value, date) and not isinstance(value, datetime)
    if type_ is Type.INT:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, _PYTHON_TYPE[type_])


@dataclass(slots=True)
class Person:
    """One person's typed facts (every declared fact present) and relations."""

    fin: str
    values: dict[str, Value]
    sources: dict[str, str]
    mother: Person | None = None
    father: Person | None = None
    spouse: Person | None = None
    children: tuple[Person, ...] = field(default=())


@dataclass(frozen=True, slots=True)
class Schema:
    facts: Mapping[str, FactSpec]

    def type_of(self, name: str) -> Type | None:
        spec = self.facts.get(name)
        return spec.type if spec is not None else None

    def defaults(self) -> dict[str, Value]:
        return {name: spec.default_value for name, spec in self.facts.items()}

    def record(self, fin: str, answers: Answers, only: Collection[str] | None = None) -> Person:
        """The facts of one person from the institutions' answers (no relations).

        ``only``: just these facts (those a program's rules read); a rule never looks up others.
        """
        values: dict[str, Value] = {}
        sources: dict[str, str] = {}
        for name in self.facts if only is None else only:
            value, source = _read(name, self.facts[name], answers)
            values[name] = value
            sources[name] = source
        return Person(fin, values, sources)

    def person(
        self,
        fin: str,
        answers: Answers,
        *,
        mother: tuple[str, Answers] | None = None,
        father: tuple[str, Answers] | None = None,
        spouse: tuple[str, Answers] | None = None,
        children: Sequence[tuple[str, Answers]] = (),
        only: Collection[str] | None = None,
    ) -> Person:
        """A person with relations; each relation is ``(fin, answers)``, absent when None."""
        record = self.record(fin, answers, only)
        record.mother = self.record(*mother, only) if mother is not None else None
        record.father = self.record(*father, only) if father is not None else None
        record.spouse = self.record(*spouse, only) if spouse is not None else None
        record.children = tuple(self.record(*child, only) for child in children)
        return record


def _read(name: str, spec: FactSpec, answers: Answers) -> tuple[Value, str]:
    service = spec.service
    record = answers.get(service)
    if spec.kind == "present":
        if not spec.field:
            return bool(record), service
        return record is not None and record.get(spec.field) is not None, service
    raw = record.get(spec.field) if record else None
    if raw is None:
        return spec.default_value, DEFAULT_SOURCE
    if spec.kind in ("count", "contains"):
        if not isinstance(raw, list | tuple):
            raise FactError(f"{service}.{spec.field}: expected a list for {name}, got {raw!r}")
        if spec.kind == "contains":
            return any(item in raw for item in spec.values), service
        return len(raw), service
    if spec.type is Type.DATE and isinstance(raw, str):
        try:
            return date.fromisoformat(raw), service
        except ValueError:
            raise FactError(f"{service}.{spec.field}: {raw!r} is not an ISO date") from None
    if not _has_type(raw, spec.type):
        raise FactError(
            f"{service}.{spec.field}: expected {spec.type.value} for {name}, got {raw!r}"
        )
    value: Value = raw
    return value, service


def load_schema(path: Path | None = None) -> Schema:
    """Read a fact schema file (the built-in ``facts.yaml`` by default)."""
    source = path or DEFAULT_SCHEMA
    try:
        raw = yaml.safe_load(source.read_text(encoding="utf-8"))
        parsed = _SchemaFile.model_validate(raw)
    except (yaml.YAMLError, ValidationError) as exc:
        raise RuleError(f"fact schema {source.name}: {exc}") from None
    for name in parsed.facts:
        reserved = {"exists", "mother", "father", "spouse", "children"}
        if not name.isidentifier() or name.startswith("_") or name in reserved:
            raise RuleError(f"fact schema {source.name}: {name!r} is not a usable fact name")
    return Schema(dict(parsed.facts))
