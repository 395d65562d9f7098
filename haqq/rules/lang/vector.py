"""The vectorised backend: a whole population at once, with Polars.

The population frame has one row per case; its columns are named by :func:`column`:

- ``fin``: the subject's FIN; ``beneficiary__fin`` when ``beneficiary.children`` is used;
- ``already_paid``: bool;
- ``subject__<fact>``, ``beneficiary__<fact>``: the facts of the roles;
- ``subject__mother__exists`` and ``subject__mother__<fact>`` (and ``father``, ``spouse``; and
  the same under ``beneficiary__``): the single relations; a relation's facts are ignored (read
  as their default) where ``exists`` is false.

The children frame has one row per (parent, child): ``parent_fin`` and the child's facts under
their plain names (``alive``, ``birth_date``). Aggregates are computed by a group-by on the parent
and joined back; a person with no (matching) children gets the aggregate's empty value.
A null anywhere reads as the fact's default. Only the columns the tables read must be present.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

import polars as pl

from haqq.rules.lang.columns import CHILD_PARENT, DTYPES, SEP, Compiler, column, lit
from haqq.rules.lang.interpret import Case
from haqq.rules.lang.schema import Person, Schema
from haqq.rules.lang.table import UNIT_TYPES, Table
from haqq.rules.lang.types import ROLES, SINGLE_RELATIONS, Outcome, RuleError, Type

__all__ = ["CHILD_PARENT", "VectorProgram", "column", "evaluate_programs", "to_frames"]

Frame = pl.DataFrame | pl.LazyFrame
OUTCOMES = pl.Enum([o.value for o in Outcome])
_JOIN_KEY = {"subject": "fin", "beneficiary": f"beneficiary{SEP}fin"}


@dataclass(frozen=True, slots=True)
class _Plan:
    compiler: Compiler
    stage: list[pl.Expr]
    outputs: list[pl.Expr]


class VectorProgram:
    """A table compiled to Polars expressions (per evaluation date, parameters as literals)."""

    def __init__(self, table: Table) -> None:
        self.table = table

    def plan(self, today: date, prefix: str = "") -> _Plan:
        table = self.table
        params = {}
        for name, parameter in table.parameters.items():
            found = parameter.as_of(today)
            if found is not None:
                params[name] = found.value
        types = {n: UNIT_TYPES[p.unit] for n, p in table.parameters.items()}
        comp = Compiler(table.schema, today, params, types, prefix=f"__{prefix}agg")
        stage: list[pl.Expr] = []
        entries: list[tuple[pl.Expr | None, pl.Expr, str, pl.Expr]] = []
        zero = lit(0, Type.INT)
        review = pl.lit(Outcome.NEEDS_REVIEW.value)
        for i, check in enumerate(table.checks):
            ok, err = _staged(stage, comp.node(check.require), f"__{prefix}c{i}")
            decided = ~ok if err is None else (err | ~ok)
            otherwise = pl.lit(check.otherwise.value)
            out = otherwise if err is None else pl.when(err).then(review).otherwise(otherwise)
            entries.append((decided, out, check.id, zero))
        last = len(table.amount) - 1
        for j, branch in enumerate(table.amount):
            when, when_err = pl.lit(True), None
            if branch.when is not None:
                when, when_err = _staged(stage, comp.node(branch.when), f"__{prefix}w{j}")
            value, value_err = _staged(stage, comp.node(branch.value), f"__{prefix}v{j}")
            bad: pl.Expr = value <= 0
            for err in (when_err, value_err):
                if err is not None:
                    bad = err | bad
            out = pl.when(bad).then(review).otherwise(pl.lit(Outcome.GRANTED.value))
            amount = pl.when(bad).then(zero).otherwise(value)
            taken = None if j == last else (when if when_err is None else (when_err | when))
            entries.append((taken, out, branch.id, amount))
        branches = pl.Enum(list(table.ids))
        outputs = [
            _chain([(c, o) for c, o, _, _ in entries]).cast(OUTCOMES).alias(f"{prefix}outcome"),
            _chain([(c, pl.lit(b)) for c, _, b, _ in entries]).cast(branches)
            .alias(f"{prefix}branch"),
            _chain([(c, a) for c, _, _, a in entries]).cast(pl.Int64).alias(f"{prefix}amount"),
        ]
        return _Plan(comp, stage, outputs)

    def lazy(self, population: Frame, *, today: date, children: Frame | None = None) -> pl.LazyFrame:
        """Per row of ``population``: ``fin``, ``outcome``, ``branch``, ``amount``."""
        return _run([self.plan(today)], population, children, self.table.schema)

    def evaluate(
        self, population: Frame, *, today: date, children: Frame | None = None
    ) -> pl.DataFrame:
        return self.lazy(population, today=today, children=children).collect()


def evaluate_programs(
    tables: Mapping[str, Table], population: Frame, *, today: date, children: Frame | None = None
) -> pl.LazyFrame:
    """Several tables over one population: ``fin`` and ``<name>__outcome|branch|amount``.

    The children are grouped once per role for all tables together.
    """
    if not tables:
        raise RuleError("no tables to evaluate")
    plans = [VectorProgram(t).plan(today, f"{name}{SEP}") for name, t in tables.items()]
    return _run(plans, population, children, next(iter(tables.values())).schema)


def _staged(stage: list[pl.Expr], pair: tuple[pl.Expr, pl.Expr | None], name: str) -> tuple[
    pl.Expr, pl.Expr | None
]:
    """Materialise a value (and its undefinedness) as columns; return references to them."""
    value, err = pair
    stage.append(value.alias(name))
    if err is None:
        return pl.col(name), None
    stage.append(err.alias(f"{name}_err"))
    return pl.col(name), pl.col(f"{name}_err")


def _chain(entries: list[tuple[pl.Expr | None, pl.Expr]]) -> pl.Expr:
    """``when(c0).then(x0).when(c1).then(x1)...otherwise(x_last)``; the last is unconditional."""
    *conditional, (_, fallback) = entries
    if not conditional:
        return fallback
    chain: Any = pl
    for condition, value in conditional:
        chain = chain.when(condition).then(value)
    result: pl.Expr = chain.otherwise(fallback)
    return result


def _run(plans: list[_Plan], population: Frame, children: Frame | None, schema: Schema) -> pl.LazyFrame:
    frame = population.lazy()
    present = set(frame.collect_schema().names())
    needs: dict[str, Type] = {"fin": Type.STR}
    child_needs: dict[str, Type] = {}
    grouped: dict[str, list[pl.Expr]] = {}
    for plan in plans:
        needs.update(plan.compiler.needs)
        child_needs.update(plan.compiler.child_needs)
        for role, exprs in plan.compiler.child_columns.items():
            grouped.setdefault(role, []).extend(exprs)
            needs[_JOIN_KEY[role]] = Type.STR
    missing = sorted(set(needs) - present)
    if missing:
        raise RuleError(f"the population frame lacks the column(s) {', '.join(missing)}")
    if grouped:
        kids = _children(children, child_needs)
        for role, exprs in grouped.items():
            aggregated = kids.group_by(CHILD_PARENT).agg(exprs)
            frame = frame.join(aggregated, left_on=_JOIN_KEY[role], right_on=CHILD_PARENT,
                               how="left", maintain_order="left")
    stage = [e for plan in plans for e in plan.stage]
    outputs = [e for plan in plans for e in plan.outputs]
    return frame.with_columns(stage).select([pl.col("fin"), *outputs])


def _children(children: Frame | None, needs: Mapping[str, Type]) -> pl.LazyFrame:
    if children is None:
        schema = {CHILD_PARENT: pl.String(), **{n: DTYPES[t] for n, t in needs.items()}}
        return pl.LazyFrame(schema=schema)
    kids = children.lazy()
    missing = sorted({CHILD_PARENT, *needs} - set(kids.collect_schema().names()))
    if missing:
        raise RuleError(f"the children frame lacks the column(s) {', '.join(missing)}")
    return kids


def to_frames(cases: Sequence[Case], schema: Schema) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The population and children frames of ``cases`` (every declared fact, every relation)."""
    types = {name: spec.type for name, spec in schema.facts.items()}
    defaults = schema.defaults()
    rows: dict[str, list[Any]] = {"fin": [], f"beneficiary{SEP}fin": [], "already_paid": []}
    dtypes: dict[str, pl.DataType] = {
        "fin": pl.String(), f"beneficiary{SEP}fin": pl.String(), "already_paid": pl.Boolean(),
    }
    for role in ROLES:
        for relation in (None, *SINGLE_RELATIONS):
            if relation is not None:
                rows[column(role, relation, "exists")] = []
                dtypes[column(role, relation, "exists")] = pl.Boolean()
            for name, type_ in types.items():
                rows[column(role, relation, name)] = []
                dtypes[column(role, relation, name)] = DTYPES[type_]
    kids: dict[str, list[Any]] = {CHILD_PARENT: [], "fin": [], **{n: [] for n in types}}
    kid_types = {CHILD_PARENT: pl.String(), "fin": pl.String(), **{n: DTYPES[t] for n, t in types.items()}}
    parents: set[str] = set()
    for case in cases:
        beneficiary = case.beneficiary or case.subject
        rows["fin"].append(case.subject.fin)
        rows[f"beneficiary{SEP}fin"].append(beneficiary.fin)
        rows["already_paid"].append(case.already_paid)
        for role, person in (("subject", case.subject), ("beneficiary", beneficiary)):
            for relation in (None, *SINGLE_RELATIONS):
                related: Person | None = person if relation is None else getattr(person, relation)
                if relation is not None:
                    rows[column(role, relation, "exists")].append(related is not None)
                values = related.values if related is not None else defaults
                for name in types:
                    rows[column(role, relation, name)].append(values[name])
            if person.fin not in parents:
                parents.add(person.fin)
                for child in person.children:
                    kids[CHILD_PARENT].append(person.fin)
                    kids["fin"].append(child.fin)
                    for name in types:
                        kids[name].append(child.values[name])
    return pl.DataFrame(rows, schema=dtypes), pl.DataFrame(kids, schema=kid_types)
