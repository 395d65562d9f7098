"""The population frames of the sweep: every program's universe, beneficiaries and facts.

One scan of the registry snapshot, as of the sweep's date, reads only the facts the chosen
programs need (their universes, their tables, and what finding a beneficiary takes) into one
frame of persons, :class:`Registry`. FINs are also held as 64-bit keys (the seven ASCII bytes of
the FIN) and the registry is indexed once by key, so a relation (mother, father, spouse, the
beneficiary) is found by a binary search, not a hash join over ten million strings.

Per program, :func:`program_frame` then builds what :class:`~haqq.rules.lang.VectorProgram`
reads: the universe (the subjects satisfying the program's ``universe``), the beneficiary of
each subject (set-wise, with the rules of :func:`haqq.rules.evaluate.resolve_beneficiary`), the
role and relation fact columns the table reads (and only those), the children frame when an
aggregate needs one, and ``already_paid``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from haqq.country import snapshot
from haqq.rules.catalogue import Beneficiary, Program
from haqq.rules.lang import Table
from haqq.rules.lang.columns import CHILD_PARENT, SEP, Compiler, column
from haqq.rules.lang.table import UNIT_TYPES
from haqq.rules.lang.types import ChildFact, Fact, Logic, Node, walk
from haqq.rules.lang.vector import VectorProgram
from haqq.sweep.facts import fact_expressions, not_held

#: Columns of a registry person besides the facts: FIN, its key, and the keys of the links.
KEY = "k"
LINKS = ("mother", "father", "spouse")
#: Facts finding a beneficiary reads, for every program.
RESOLUTION_FACTS = ("alive", "resident", "birth_date")
#: The row of the subject and of the beneficiary in the registry (UInt32, null: none).
S_ROW = "__s_row"
B_ROW = "__b_row"
REVIEW = "__review"
BENEFICIARY_FIN = f"beneficiary{SEP}fin"
SUBJECT = "subject"
#: A row number no registry reaches (stands for "nobody" inside :meth:`Registry.rows_of`).
MISSING_ROW = np.iinfo(np.uint32).max


def fin_key(expr: pl.Expr) -> pl.Expr:
    """A FIN as a 64-bit key: its seven characters are base-36 digits (the FIN alphabet is
    digits and upper-case letters), so the key is unique; null stays null."""
    return expr.str.to_integer(base=36, dtype=pl.Int64)


def link_key(relation: str) -> str:
    return f"{relation}_{KEY}"


def fact_column(name: str) -> str:
    """The registry frame's column of a fact (the subject role's name for it)."""
    return column(SUBJECT, None, name)


@dataclass(frozen=True)
class Registry:
    """The registries as of ``day``: one row per person born by then, indexed by FIN key."""

    day: date
    persons: pl.DataFrame
    #: The keys in ascending order, and the row of each.
    sorted_keys: pl.Series
    order: pl.Series
    #: Facts the rules read that the snapshot does not hold (read as their default).
    defaulted: tuple[str, ...] = ()

    @property
    def height(self) -> int:
        return self.persons.height

    def rows_of(self, keys: pl.Series) -> pl.Series:
        """The row of each key (null: nobody with that FIN on the day, or a null key).

        The keys are searched in ascending order (a binary search per key, but walking the
        index in order stays in the processor's caches), then put back in their own order.
        """
        n, m = self.sorted_keys.len(), keys.len()
        if n == 0 or m == 0:
            return pl.Series(values=[None] * m, dtype=pl.UInt32)
        wanted = keys.cast(pl.Int64).fill_null(-1)
        by_key = wanted.arg_sort()
        ordered = wanted.gather(by_key)
        at = self.sorted_keys.search_sorted(ordered, side="left").clip(0, n - 1)
        found = (self.sorted_keys.gather(at) == ordered).to_numpy()
        rows = np.where(found, self.order.gather(at).to_numpy(), MISSING_ROW).astype(np.uint32)
        out = np.empty(m, dtype=np.uint32)
        out[by_key.to_numpy()] = rows
        series = pl.Series(out)
        return pl.select(pl.when(series != MISSING_ROW).then(series)).to_series()

    def rows_of_fins(self, fins: Sequence[str] | pl.Series) -> pl.Series:
        series = pl.Series(values=fins, dtype=pl.String)
        return self.rows_of(series.to_frame("f").select(fin_key(pl.col("f"))).to_series())

    def take(self, rows: pl.Series, columns: Iterable[str]) -> pl.DataFrame:
        """The given columns at ``rows`` (a null row gives nulls)."""
        return pl.DataFrame({name: self.persons[name].gather(rows) for name in columns})


def load_registry(
    country: Path, day: date, facts: Iterable[str], *, schema: Any, persons: pl.LazyFrame | None = None
) -> Registry:
    """Read the snapshot of ``country`` as of ``day``, with only the facts ``facts``."""
    names = set(facts) | set(RESOLUTION_FACTS)
    lazy = snapshot.as_of(persons if persons is not None else snapshot.scan(country), day)
    frame = lazy.select(
        pl.col("fin"),
        *[pl.col(f"{r}_fin") for r in LINKS],
        *fact_expressions(schema, names, f"{SUBJECT}{SEP}"),
    ).collect()
    frame = frame.with_columns(
        fin_key(pl.col("fin")).alias(KEY),
        *[fin_key(pl.col(f"{r}_fin")).alias(link_key(r)) for r in LINKS],
    ).drop([f"{r}_fin" for r in LINKS])
    return index(frame, day, defaulted=tuple(not_held(names)))


def index(frame: pl.DataFrame, day: date, *, defaulted: tuple[str, ...] = ()) -> Registry:
    order = frame[KEY].arg_sort().cast(pl.UInt32)
    return Registry(day, frame, frame[KEY].gather(order), order, defaulted)


# --- what each program reads ------------------------------------------------------------------


@dataclass(frozen=True)
class Needs:
    """What a program's table (and universe) read, by role and relation."""

    #: (role, relation or None) -> fact names.
    facts: dict[tuple[str, str | None], set[str]]
    #: role -> fact names of the children the aggregates read.
    children: dict[str, set[str]]
    already_paid: bool


def _needs_of(names: Mapping[str, Any]) -> dict[tuple[str, str | None], set[str]]:
    found: dict[tuple[str, str | None], set[str]] = {}
    for name in names:
        parts = name.split(SEP)
        if parts[0] not in ("subject", "beneficiary") or parts[-1] == "fin":
            continue
        relation = parts[1] if len(parts) == 3 else None
        found.setdefault((parts[0], relation), set())
        if parts[-1] != "exists":
            found[(parts[0], relation)].add(parts[-1])
    return found


def table_needs(table: Table, day: date) -> Needs:
    plan = VectorProgram(table).plan(day)
    roles = {role: set(plan.compiler.child_needs) for role in plan.compiler.child_columns}
    return Needs(_needs_of(plan.compiler.needs), roles, "already_paid" in plan.compiler.needs)


def _compiler(table: Table, day: date) -> Compiler:
    params = {}
    for name, parameter in table.parameters.items():
        found = parameter.as_of(day)
        if found is not None:
            params[name] = found.value
    types = {n: UNIT_TYPES[p.unit] for n, p in table.parameters.items()}
    return Compiler(table.schema, day, params, types)


def all_facts(programs: Iterable[Program], day: date, tables: Mapping[str, Table] | None = None) -> set[str]:
    """Every fact the programs' tables and universes read, for anyone."""
    names: set[str] = set()
    for program in programs:
        table = (tables or {}).get(program.id, program.table)
        needs = table_needs(table, day)
        for facts in needs.facts.values():
            names |= facts
        for facts in needs.children.values():
            names |= facts
        if program.universe_rule is not None:
            for node in walk(program.universe_rule):
                if isinstance(node, Fact | ChildFact) and node.name != "exists":
                    names.add(node.name)
    return names


# --- universes --------------------------------------------------------------------------------


def _has_relation(node: Node) -> bool:
    return any(isinstance(n, Fact) and n.relation is not None for n in walk(node))


def universe(registry: Registry, program: Program, table: Table | None = None) -> pl.DataFrame:
    """The rows of the registry the program's universe holds (``S_ROW``), in registry order.

    Conditions on the subject's own facts filter first; relations are looked up only for the
    subjects left (a top-level ``and`` is split for that). Undefined counts as outside.
    """
    rule = program.universe_rule
    if rule is None:
        return pl.DataFrame({S_ROW: pl.Series([], dtype=pl.UInt32)})
    table = table or program.table
    items = list(rule.items) if isinstance(rule, Logic) and rule.op == "and" else [rule]
    own = [n for n in items if not _has_relation(n)]
    rest = [n for n in items if _has_relation(n)]
    frame = registry.persons.with_row_index(S_ROW)
    for node in own:
        frame = _filter(frame, node, table, registry.day)
    frame = frame.select(S_ROW)
    if rest:
        comp = _compiler(table, registry.day)
        exprs = [comp.node(n) for n in rest]
        relations = _needs_of(comp.needs)
        extra = role_columns(registry, frame[S_ROW], SUBJECT, relations, skip_own=True)
        full = pl.concat([frame, extra], how="horizontal")
        keep = pl.lit(True)
        for value, err in exprs:
            keep = keep & (value if err is None else value & ~err)
        frame = full.filter(keep).select(S_ROW)
    return frame


#: Above this many rows a condition is computed once per distinct value of what it reads.
DISTINCT_FROM = 100_000


def _filter(frame: pl.DataFrame, node: Node, table: Table, day: date) -> pl.DataFrame:
    """The rows of ``frame`` where ``node`` holds (undefined: does not hold).

    On a large frame the condition is computed once per distinct combination of the columns it
    reads (birth dates, death dates, flags: a few ten thousand at most), then the rows matching
    a combination that holds are kept.
    """
    comp = _compiler(table, day)
    value, err = comp.node(node)
    keep = value if err is None else value & ~err
    columns = sorted(comp.needs)
    if frame.height < DISTINCT_FROM or not columns:
        return frame.filter(keep)
    if len(columns) == 1:
        values = frame.get_column(columns[0]).unique().to_frame()
        held = values.filter(keep).get_column(columns[0])
        return frame.filter(pl.col(columns[0]).is_in(held.implode(), nulls_equal=True))
    combos = frame.select(columns).unique()
    return frame.join(combos.filter(keep), on=columns, how="semi", nulls_equal=True)


# --- relation columns -------------------------------------------------------------------------


def role_columns(
    registry: Registry,
    rows: pl.Series,
    role: str,
    needs: Mapping[tuple[str, str | None], set[str]],
    *,
    skip_own: bool = False,
) -> pl.DataFrame:
    """The fact columns of ``role`` (the person at ``rows``) and of its relations.

    A relation ``exists`` where the role's family record names someone; its facts are those of
    that person on the day (null, read as the default, when the registry does not know them).
    """
    out: dict[str, pl.Series] = {}
    for (who, relation), facts in sorted(needs.items(), key=str):
        if who != role or (relation is None and skip_own):
            continue
        if relation is None:
            at = rows
        else:
            link = registry.persons[link_key(relation)].gather(rows)
            out[column(role, relation, "exists")] = link.is_not_null()
            at = registry.rows_of(link)
        for name in sorted(facts):
            out[column(role, relation, name)] = registry.persons[fact_column(name)].gather(at)
    return pl.DataFrame(out) if out else pl.DataFrame(schema={})


# --- beneficiaries ----------------------------------------------------------------------------


def _age(born: pl.Expr, day: date) -> pl.Expr:
    """Whole years on ``day``, exactly as :func:`haqq.rules.evaluate._age` counts them."""
    before = (day.month * 100 + day.day) < (born.dt.month().cast(pl.Int32) * 100 + born.dt.day().cast(pl.Int32))
    return pl.lit(day.year, dtype=pl.Int32) - born.dt.year().cast(pl.Int32) - before.cast(pl.Int32)


def _person(registry: Registry, rows: pl.Series, prefix: str) -> pl.DataFrame:
    """Whether the person at ``rows`` is known, alive and resident, and their birth date."""
    frame = registry.take(rows, [fact_column(f) for f in RESOLUTION_FACTS])
    return pl.DataFrame(
        {
            f"{prefix}row": rows,
            f"{prefix}known": rows.is_not_null(),
            f"{prefix}alive": frame[fact_column("alive")].fill_null(False),
            f"{prefix}resident": frame[fact_column("resident")].fill_null(False),
            f"{prefix}birth": frame[fact_column("birth_date")],
        }
    )


def _linked(registry: Registry, rows: pl.Series, relation: str) -> pl.Series:
    return registry.rows_of(registry.persons[link_key(relation)].gather(rows))


def beneficiaries(registry: Registry, subjects: pl.Series, relation: Beneficiary) -> pl.DataFrame:
    """Per subject row: ``B_ROW`` (the beneficiary's row, null: nobody) and ``REVIEW`` (why not).

    The rules of :func:`haqq.rules.evaluate.resolve_beneficiary`, set-wise; for
    ``minor_children_via_surviving_parent`` the subject is the child and the beneficiary the
    parent who survives.
    """
    nobody = f"no beneficiary found ({relation.value})"
    frame = pl.DataFrame({S_ROW: subjects})
    c = pl.col
    if relation is Beneficiary.SELF:
        return frame.with_columns(c(S_ROW).alias(B_ROW), pl.lit(None, pl.String).alias(REVIEW))
    if relation is Beneficiary.SPOUSE_ELSE_ADULT_CHILD:
        return _spouse_else_adult_child(registry, frame, nobody)
    parts = [
        frame,
        _person(registry, _linked(registry, subjects, "mother"), "m_"),
        _person(registry, _linked(registry, subjects, "father"), "f_"),
    ]
    both = pl.concat(parts, how="horizontal")
    none = pl.lit(None, dtype=pl.UInt32)
    mother_ok = c("m_known") & c("m_alive")
    father_ok = c("f_known") & c("f_alive")
    if relation is Beneficiary.MOTHER:
        pick = pl.when(c("m_known")).then(c("m_row")).otherwise(none)
    elif relation is Beneficiary.MOTHER_ELSE_FATHER:
        pick = (
            pl.when(mother_ok & c("m_resident")).then(c("m_row"))
            .when(father_ok).then(c("f_row"))
            .when(mother_ok).then(c("m_row"))
            .otherwise(none)
        )
    elif relation is Beneficiary.SELF_OR_GUARDIAN:
        born = registry.persons[fact_column("birth_date")].gather(subjects)
        both = both.with_columns(born.alias("__born"))
        pick = (
            pl.when(_age(c("__born"), registry.day) >= 18).then(c(S_ROW))
            .when(mother_ok).then(c("m_row"))
            .when(father_ok).then(c("f_row"))
            .otherwise(none)
        )
    else:  # MINOR_CHILDREN_VIA_SURVIVING_PARENT: the parent who is alive (the other died)
        pick = pl.when(mother_ok).then(c("m_row")).when(father_ok).then(c("f_row")).otherwise(none)
        nobody = "no surviving parent on record: a guardian must be found"
    return both.select(
        S_ROW,
        pick.cast(pl.UInt32).alias(B_ROW),
        pl.when(pick.is_null()).then(pl.lit(nobody)).otherwise(None).alias(REVIEW),
    )


def children_of(registry: Registry, parents: pl.Series) -> pl.DataFrame:
    """``(parent row, child row)`` for every child (by mother or father) of the rows ``parents``."""
    keys = registry.persons[KEY].gather(parents.drop_nulls()).unique()
    frames = []
    people = registry.persons.select(KEY, *(link_key(r) for r in ("mother", "father"))).with_row_index("child")
    for relation in ("mother", "father"):
        frames.append(
            people.filter(pl.col(link_key(relation)).is_in(keys.implode()))
            .select(pl.col(link_key(relation)).alias("parent_key"), "child")
        )
    pairs = pl.concat(frames)
    parent_rows = registry.rows_of(pairs["parent_key"])
    return pl.DataFrame({"parent": parent_rows, "child": pairs["child"]})


def _spouse_else_adult_child(registry: Registry, frame: pl.DataFrame, nobody: str) -> pl.DataFrame:
    c = pl.col
    subjects = frame[S_ROW]
    spouse = _person(registry, _linked(registry, subjects, "spouse"), "s_")
    pairs = children_of(registry, subjects)
    kids = pairs.with_columns(
        registry.persons[fact_column("alive")].gather(pairs["child"]).alias("alive"),
        registry.persons[fact_column("birth_date")].gather(pairs["child"]).alias("born"),
        registry.persons["fin"].gather(pairs["child"]).alias("fin"),
    )
    eldest = (
        kids.filter(c("alive") & (_age(c("born"), registry.day) >= 18))
        .sort(["parent", "born", "fin"])
        .group_by("parent", maintain_order=True)
        .first()
        .select(c("parent").alias(S_ROW), c("child").alias("__eldest"))
    )
    out = pl.concat([frame, spouse], how="horizontal").join(eldest, on=S_ROW, how="left", maintain_order="left")
    pick = (
        pl.when(c("s_known") & c("s_alive")).then(c("s_row"))
        .otherwise(c("__eldest"))
    )
    return out.select(
        S_ROW,
        pick.cast(pl.UInt32).alias(B_ROW),
        pl.when(pick.is_null()).then(pl.lit(nobody)).otherwise(None).alias(REVIEW),
    )


# --- the population frame of one program ------------------------------------------------------


@dataclass
class ProgramFrame:
    """What the vector backend reads for one program, and who could not be evaluated."""

    program: Program
    table: Table
    #: ``fin``, ``beneficiary__fin``, ``already_paid``, the fact columns, ``S_ROW``, ``B_ROW``,
    #: ``REVIEW`` (why there is no beneficiary, null when there is one).
    population: pl.DataFrame
    children: pl.DataFrame | None
    universe_size: int
    extra: int = 0
    timings: dict[str, float] = field(default_factory=dict)


Paid = Callable[[pl.DataFrame], pl.Series]


def program_frame(
    registry: Registry,
    program: Program,
    *,
    table: Table | None = None,
    paid_keys: pl.Series | None = None,
    extra_subjects: pl.Series | None = None,
) -> ProgramFrame:
    """The population frame of ``program`` on the registry's day.

    ``paid_keys``: the once-keys (FINs) under which the program counts as already paid.
    ``extra_subjects``: registry rows to evaluate besides the universe (people who hold an
    entitlement of the program but may have left its universe).
    """
    table = table or program.table
    rows = universe(registry, program, table)[S_ROW]
    size = rows.len()
    extra = 0
    if extra_subjects is not None and extra_subjects.len():
        more = extra_subjects.drop_nulls().unique()
        more = more.filter(~more.is_in(rows.implode()))
        extra = more.len()
        rows = pl.concat([rows, more])
    picked = beneficiaries(registry, rows, program.beneficiary)
    needs = table_needs(table, registry.day)
    parts = [
        picked,
        pl.DataFrame(
            {
                "fin": registry.persons["fin"].gather(picked[S_ROW]),
                BENEFICIARY_FIN: registry.persons["fin"].gather(picked[B_ROW]),
            }
        ),
        role_columns(registry, picked[S_ROW], "subject", needs.facts),
        role_columns(registry, picked[B_ROW], "beneficiary", needs.facts),
    ]
    population = pl.concat([p for p in parts if p.width], how="horizontal")
    key = "fin" if program.once_per != "beneficiary" else BENEFICIARY_FIN
    if paid_keys is not None and paid_keys.len():
        paid = population[key].is_in(paid_keys.implode()).fill_null(False)
    else:
        paid = pl.Series(values=[False] * population.height, dtype=pl.Boolean)
    population = population.with_columns(paid.alias("already_paid"))
    children = None
    if needs.children:
        children = _children_frame(registry, population, needs.children)
    return ProgramFrame(program, table, population, children, size, extra)


def _children_frame(registry: Registry, population: pl.DataFrame, needs: Mapping[str, set[str]]) -> pl.DataFrame:
    """``parent_fin`` and the children's facts under their plain names, for every role's
    parents (one frame: the vector backend groups it by parent for each role)."""
    facts = sorted({f for names in needs.values() for f in names})
    role_rows = {"subject": S_ROW, "beneficiary": B_ROW}
    parents = pl.concat([population[role_rows[r]] for r in needs]).drop_nulls().unique()
    pairs = children_of(registry, parents)
    data = {CHILD_PARENT: registry.persons["fin"].gather(pairs["parent"])}
    data["fin"] = registry.persons["fin"].gather(pairs["child"])
    for name in facts:
        data[name] = registry.persons[fact_column(name)].gather(pairs["child"])
    return pl.DataFrame(data)
