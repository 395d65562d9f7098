"""The per-person interpreter: a decision and its trace for one case.

:class:`Interpreter` compiles a :class:`~haqq.rules.lang.table.Table` once into closures; then
:meth:`Interpreter.evaluate` runs the checks in order (the first whose ``require`` is false
decides), then the amount branches (the first whose ``when`` holds decides), and says why.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any, NamedTuple

from haqq.rules.lang.closures import MISSING, Env, Fn, compile_node
from haqq.rules.lang.schema import DEFAULT_SOURCE, FAMILY_SOURCE, Person, Schema
from haqq.rules.lang.semantics import Undefined
from haqq.rules.lang.table import Table
from haqq.rules.lang.types import (
    AlreadyPaid,
    ChildFact,
    Fact,
    Node,
    Outcome,
    Param,
    RuleError,
    Value,
    walk,
)

#: The source of ``already_paid``: the caller says it.
CALLER_SOURCE = "caller"


@dataclass(frozen=True, slots=True)
class Case:
    """What one evaluation is about: the subject, who would be paid, and the caller's input."""

    subject: Person
    beneficiary: Person | None = None
    already_paid: bool = False


class Result(NamedTuple):
    outcome: Outcome
    branch: str
    amount: int


class FactRead(NamedTuple):
    """A fact the decision read: ``subject.pension_capital``, its value and where it came from.

    For ``role.children.<fact>`` the value is the tuple of the children's values.
    """

    name: str
    value: Value | tuple[Value, ...]
    source: str


class ParameterRead(NamedTuple):
    name: str
    value: int | date
    effective_from: date
    reference: str


class Trace(NamedTuple):
    branch: str
    reference: str
    today: date
    checks_passed: tuple[str, ...]
    facts: tuple[FactRead, ...]
    parameters: tuple[ParameterRead, ...]
    #: Why the value was undefined (division by zero, ...), when that decided.
    error: str | None = None


class Evaluation(NamedTuple):
    result: Result
    trace: Trace


Reader = Callable[[Env], FactRead]


@dataclass(frozen=True, slots=True)
class _Bound:
    values: list[Any]
    reads: dict[str, ParameterRead]
    #: The parameter reads of a row's trace, by the row's parameter names.
    by_row: dict[tuple[str, ...], tuple[ParameterRead, ...]]

    def of(self, names: tuple[str, ...]) -> tuple[ParameterRead, ...]:
        found = self.by_row.get(names)
        if found is None:
            found = self.by_row[names] = tuple(self.reads[p] for p in names if p in self.reads)
        return found


@dataclass(frozen=True, slots=True)
class _Row:
    """One check or branch, compiled; ``reads``/``params`` are what the rows up to it name."""

    id: str
    reference: str
    test: Fn | None
    value: Fn | None
    otherwise: Outcome
    reads: tuple[Reader, ...]
    params: tuple[str, ...]
    reads_without_value: tuple[Reader, ...]
    params_without_value: tuple[str, ...]


class Interpreter:
    """A table compiled once for evaluation person by person, with a trace."""

    def __init__(self, table: Table) -> None:
        self.table = table
        self._names = list(table.parameters)
        index = {name: i for i, name in enumerate(self._names)}
        schema = table.schema
        self._cache: dict[date, _Bound] = {}
        rows: list[_Row] = []
        seen: list[Node] = []
        for check in table.checks:
            seen.append(check.require)
            reads, params = _reads(seen, schema)
            rows.append(_Row(check.id, check.reference, compile_node(check.require, schema, index),
                             None, check.otherwise, reads, params, reads, params))
        self._checks = tuple(rows)
        self._passed = [tuple(c.id for c in table.checks[:k]) for k in range(len(rows) + 1)]
        rows = []
        for branch in table.amount:
            if branch.when is not None:
                seen.append(branch.when)
            before = _reads(seen, schema)
            reads, params = _reads([*seen, branch.value], schema)
            test = compile_node(branch.when, schema, index) if branch.when is not None else None
            rows.append(_Row(branch.id, branch.reference, test,
                             compile_node(branch.value, schema, index), Outcome.NEEDS_REVIEW,
                             reads, params, *before))
        self._branches = tuple(rows)

    def bind(self, today: date) -> _Bound:
        bound = self._cache.get(today)
        if bound is None:
            if len(self._cache) > 256:
                self._cache.clear()
            values: list[Any] = []
            reads: dict[str, ParameterRead] = {}
            for name in self._names:
                found = self.table.parameters[name].as_of(today)
                if found is None:
                    values.append(MISSING)
                else:
                    values.append(found.value)
                    reads[name] = ParameterRead(name, found.value, found.from_, found.reference)
            bound = self._cache[today] = _Bound(values, reads, {})
        return bound

    def evaluate(self, case: Case, today: date) -> Evaluation:
        """The decision for one case on ``today``, and which values it rests on."""
        bound = self.bind(today)
        subject = case.subject
        env = Env(subject, case.beneficiary or subject, case.already_paid, today, bound.values)
        passed = 0
        for row in self._checks:
            try:
                ok = row.test(env, None)  # type: ignore[misc]
            except Undefined as exc:
                return self._done(env, bound, row, Outcome.NEEDS_REVIEW, 0, passed, str(exc), True)
            if not ok:
                return self._done(env, bound, row, row.otherwise, 0, passed, None, True)
            passed += 1
        for row in self._branches:
            try:
                if row.test is not None and not row.test(env, None):
                    continue
            except Undefined as exc:
                return self._done(env, bound, row, Outcome.NEEDS_REVIEW, 0, passed, str(exc), False)
            try:
                amount = row.value(env, None)  # type: ignore[misc]
            except Undefined as exc:
                return self._done(env, bound, row, Outcome.NEEDS_REVIEW, 0, passed, str(exc), True)
            if amount <= 0:
                error = f"the amount {amount} is not positive"
                return self._done(env, bound, row, Outcome.NEEDS_REVIEW, 0, passed, error, True)
            return self._done(env, bound, row, Outcome.GRANTED, amount, passed, None, True)
        raise RuleError(f"{self.table.name}: no branch applies")  # unreachable: checked table

    def _done(
        self, env: Env, bound: _Bound, row: _Row, outcome: Outcome, amount: int, passed: int,
        error: str | None, with_value: bool,
    ) -> Evaluation:
        reads = row.reads if with_value else row.reads_without_value
        params = row.params if with_value else row.params_without_value
        trace = Trace(
            row.id,
            row.reference,
            env.today,
            self._passed[passed],
            tuple([read(env) for read in reads]),
            bound.of(params),
            error,
        )
        return Evaluation(Result(outcome, row.id, amount), trace)


def _reads(nodes: list[Node], schema: Schema) -> tuple[tuple[Reader, ...], tuple[str, ...]]:
    """The fact readers and parameter names of ``nodes``, each once, in order of appearance."""
    readers: dict[str, Reader] = {}
    params: dict[str, None] = {}
    for top in nodes:
        for node in walk(top):
            if isinstance(node, Fact | ChildFact) and node.path not in readers:
                readers[node.path] = _reader(node, schema)
            elif isinstance(node, AlreadyPaid):
                readers["already_paid"] = lambda e: FactRead(
                    "already_paid", e.already_paid, CALLER_SOURCE
                )
            elif isinstance(node, Param):
                params[node.name] = None
    return tuple(readers.values()), tuple(params)


_new = tuple.__new__


def _reader(node: Fact | ChildFact, schema: Schema) -> Reader:
    path, name = node.path, node.name
    if isinstance(node, ChildFact):
        role = node.role

        def children(e: Env) -> FactRead:
            kids = getattr(e, role).children
            sources = sorted({k.sources[name] for k in kids}) or [DEFAULT_SOURCE]
            return FactRead(path, tuple(k.values[name] for k in kids), ",".join(sources))

        return children
    role, relation = node.role, node.relation
    if relation is None:
        # The most frequent read of a trace: tuple.__new__ skips the named tuple's Python-level
        # constructor (a third of the cost of a traced decision).
        if role == "subject":

            def subject(e: Env) -> FactRead:
                who = e.subject
                return _new(FactRead, (path, who.values[name], who.sources[name]))

            return subject

        def beneficiary(e: Env) -> FactRead:
            who = e.beneficiary
            return _new(FactRead, (path, who.values[name], who.sources[name]))

        return beneficiary
    default = False if name == "exists" else schema.facts[name].default_value

    def related(e: Env) -> FactRead:
        person: Person | None = getattr(getattr(e, role), relation)
        if name == "exists":
            return FactRead(path, person is not None, FAMILY_SOURCE)
        if person is None:
            return FactRead(path, default, DEFAULT_SOURCE)
        return FactRead(path, person.values[name], person.sources[name])

    return related
