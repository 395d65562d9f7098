"""Scenario tests of the catalogue: situations written by policy staff, run on both backends.

One YAML file per program in ``haqq/rules/scenarios/``. Each scenario gives a date, the facts of
the subject and of the beneficiary (by fact name, see ``facts.yaml``; relations as ``mother``,
``father``, ``spouse``, ``children``), whether the program already paid, and the expected
decision: outcome, deciding check or branch, amount. A file's ``defaults`` are the base every
scenario's persons start from; a scenario without ``beneficiary`` is about one person who is both.
:func:`run_scenarios` evaluates each scenario with the per-person interpreter and with the
vectorised backend and reports any difference from the expectation, or between the two.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from haqq.domain.errors import CatalogueError
from haqq.rules import yamlpos
from haqq.rules.catalogue import (
    STOP_BRANCH,
    Catalogue,
    Mode,
    Program,
    locator,
    read_yaml,
    validated,
)
from haqq.rules.lang import Case, Person, Schema
from haqq.rules.lang.types import SINGLE_RELATIONS

DEFAULT_DIRECTORY = Path(__file__).parent / "scenarios"
SOURCE = "scenario"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Expect(_Strict):
    #: ``stop`` for a stop program whose checks pass (its entitlements end).
    outcome: Literal["granted", "denied", "needs_review", "stop"]
    branch: str
    amount: int = 0


class Scenario(_Strict):
    name: str
    date: date
    subject: dict[str, Any] = Field(default_factory=dict)
    beneficiary: dict[str, Any] | None = None
    already_paid: bool = False
    expect: Expect


class Defaults(_Strict):
    subject: dict[str, Any] = Field(default_factory=dict)
    beneficiary: dict[str, Any] = Field(default_factory=dict)


class ScenarioFile(_Strict):
    program: str
    defaults: Defaults = Field(default_factory=Defaults)
    scenarios: list[Scenario] = Field(min_length=1)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one backend decided for one scenario."""

    outcome: str
    branch: str
    amount: int

    def __str__(self) -> str:
        return f"{self.outcome} by {self.branch}, {self.amount}"

    @classmethod
    def of(cls, program: Program, outcome: str, branch: str, amount: int) -> Outcome:
        """As a decision says it: a stop program's passed checks are a stop, with no amount."""
        if program.mode is Mode.STOP and branch == STOP_BRANCH and outcome == "granted":
            return cls("stop", branch, 0)
        return cls(outcome, branch, amount)


@dataclass(frozen=True, slots=True)
class Result:
    program: str
    name: str
    line: int
    expected: Outcome
    interpreter: Outcome
    vectorised: Outcome

    @property
    def passed(self) -> bool:
        return self.expected == self.interpreter == self.vectorised


@dataclass(frozen=True, slots=True)
class Loaded:
    path: Path
    file: ScenarioFile
    lines: list[int]


def load_file(path: Path, catalogue: Catalogue) -> Loaded:
    """Read and check one scenario file; errors name the file, the line and what is wrong."""
    raw, positions = read_yaml(path, "a scenario file")
    parsed = validated(ScenarioFile, raw, locator(path, positions))
    if parsed.program not in catalogue.programs:
        raise CatalogueError(f"{path}:{yamlpos.line_of(positions, ['program'])}: no program {parsed.program!r}")
    lines = [yamlpos.line_of(positions, ["scenarios", i]) or 0 for i in range(len(parsed.scenarios))]
    for i, s in enumerate(parsed.scenarios):
        at = f"{path}:{lines[i]}: scenario {s.name!r}"
        table = catalogue[parsed.program].table
        if s.expect.branch not in table.ids:
            raise CatalogueError(f"{at}: {parsed.program} has no check or branch {s.expect.branch!r}")
        for role, facts in (("subject", _merge(parsed.defaults.subject, s.subject)),
                            ("beneficiary", _merge(parsed.defaults.beneficiary, s.beneficiary or {}))):
            try:
                _person(catalogue.schema, "CHECK00", facts)
            except (CatalogueError, TypeError, ValueError) as exc:
                raise CatalogueError(f"{at}: {role}: {exc}") from None
    return Loaded(path, parsed, lines)


def load_all(catalogue: Catalogue, directory: Path | None = None) -> list[Loaded]:
    folder = directory or DEFAULT_DIRECTORY
    return [load_file(p, catalogue) for p in sorted(folder.glob("*.yaml"))]


def _merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    return {**base, **over}


def _typed(schema: Schema, name: str, value: Any) -> Any:
    spec = schema.facts.get(name)
    if spec is None:
        known = ", ".join(sorted(schema.facts))
        raise CatalogueError(f"unknown fact {name!r} (facts: {known})")
    want = {"int": int, "bool": bool, "str": str, "date": date}[spec.type.value]
    if isinstance(value, str) and want is date:
        value = date.fromisoformat(value)
    if not isinstance(value, want) or (want is int and isinstance(value, bool)):
        raise CatalogueError(f"fact {name!r} must be {spec.type.value}, got {value!r}")
    return value


def _person(schema: Schema, fin: str, facts: Mapping[str, Any]) -> Person:
    values = schema.defaults()
    sources = dict.fromkeys(values, SOURCE)
    relations: dict[str, Any] = {}
    for name, value in facts.items():
        if name in SINGLE_RELATIONS:
            if value is not None:
                relations[name] = _person(schema, f"{fin[:5]}{name[0].upper()}0", value)
        elif name == "children":
            relations[name] = tuple(
                _person(schema, f"{fin[:5]}K{i}", child) for i, child in enumerate(value or [])
            )
        else:
            values[name] = _typed(schema, name, value)
    return Person(fin, values, sources, **relations)


def _case(schema: Schema, file: ScenarioFile, index: int) -> Case:
    s = file.scenarios[index]
    subject = _person(schema, f"S{index:05d}A", _merge(file.defaults.subject, s.subject))
    if s.beneficiary is None and not file.defaults.beneficiary:
        beneficiary = subject
    else:
        beneficiary = _person(
            schema, f"B{index:05d}A", _merge(file.defaults.beneficiary, s.beneficiary or {})
        )
    return Case(subject, beneficiary, s.already_paid)


def run_scenarios(program: Program, loaded: Loaded, schema: Schema) -> list[Result]:
    """Every scenario of a file, on both backends."""
    from haqq.rules.lang.vector import VectorProgram, to_frames

    file = loaded.file
    cases = [_case(schema, file, i) for i in range(len(file.scenarios))]
    by_day: dict[date, list[int]] = defaultdict(list)
    for i, s in enumerate(file.scenarios):
        by_day[s.date].append(i)
    vectorised: dict[int, Outcome] = {}
    engine = VectorProgram(program.table)
    for day, indexes in by_day.items():
        population, children = to_frames([cases[i] for i in indexes], schema)
        frame = engine.evaluate(population, today=day, children=children)
        for i, row in zip(indexes, frame.iter_rows(named=True), strict=True):
            vectorised[i] = Outcome.of(program, str(row["outcome"]), row["branch"], int(row["amount"]))
    results = []
    for i, (s, case) in enumerate(zip(file.scenarios, cases, strict=True)):
        result = program.interpreter.evaluate(case, s.date).result
        results.append(
            Result(
                program=program.id,
                name=s.name,
                line=loaded.lines[i],
                expected=Outcome(s.expect.outcome, s.expect.branch, s.expect.amount),
                interpreter=Outcome.of(program, result.outcome.value, result.branch, result.amount),
                vectorised=vectorised[i],
            )
        )
    return results


def run_all(catalogue: Catalogue, directory: Path | None = None, program: str | None = None) -> list[Result]:
    results: list[Result] = []
    for loaded in load_all(catalogue, directory):
        if program is None or loaded.file.program == program:
            results.extend(run_scenarios(catalogue[loaded.file.program], loaded, catalogue.schema))
    return results


def coverage(catalogue: Catalogue, results: Sequence[Result]) -> dict[str, int]:
    """Scenarios per program of the catalogue (0 for a program nobody wrote any for)."""
    counts = dict.fromkeys(catalogue.programs, 0)
    for r in results:
        counts[r.program] += 1
    return counts
