"""Evaluate every swept program for its whole universe, as of one date.

:func:`evaluate` runs the vector backend of the rule language on each program's population
frame (:mod:`haqq.sweep.frames`) and returns one row per (program, subject): the beneficiary,
the outcome, the deciding branch and the amount. A subject with no beneficiary is "needs
review" with the branch ``no_beneficiary`` and the reason.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import polars as pl

from haqq.rules.catalogue import Catalogue, Program, ScheduleKind
from haqq.rules.lang import Table
from haqq.rules.lang.vector import VectorProgram
from haqq.sweep.errors import UnknownProgram
from haqq.sweep.frames import (
    BENEFICIARY_FIN,
    REVIEW,
    Registry,
    all_facts,
    load_registry,
    program_frame,
)

NO_BENEFICIARY = "no_beneficiary"

#: The columns of an evaluation, in order.
DECISION_SCHEMA: dict[str, pl.DataType] = {
    "program": pl.String(),
    "fin": pl.String(),
    "subject_fin": pl.String(),
    "outcome": pl.String(),
    "branch": pl.String(),
    "amount": pl.Int64(),
    "already_paid": pl.Boolean(),
    "in_universe": pl.Boolean(),
    "review_reason": pl.String(),
}

Progress = Callable[[str], None]


@dataclass
class Evaluation:
    """The decisions of one sweep: one row per (program, subject)."""

    day: date
    decisions: pl.DataFrame
    universe: dict[str, int]
    #: Facts the rules read that the registry snapshot does not hold (read as their default).
    defaulted: tuple[str, ...]
    seconds: dict[str, float] = field(default_factory=dict)


def swept(catalogue: Catalogue, program_id: str | None = None) -> list[Program]:
    """The programs the sweep evaluates (those with a universe), or the one named."""
    programs = [p for p in catalogue.programs.values() if p.universe_rule is not None]
    if program_id is None:
        return programs
    found = [p for p in programs if p.id == program_id]
    if not found:
        if program_id in catalogue.programs:
            raise UnknownProgram(f"the program {program_id!r} is not swept (it has no universe)")
        known = ", ".join(p.id for p in programs)
        raise UnknownProgram(f"no program {program_id!r} in the catalogue (swept: {known})")
    return found


def load(
    country: Path,
    day: date,
    programs: Sequence[Program],
    schema: object,
    tables: Mapping[str, Table] | None = None,
) -> Registry:
    """The registry as of ``day`` with what the programs read (one scan of the snapshot)."""
    return load_registry(country, day, all_facts(programs, day, tables), schema=schema)


def evaluate(
    registry: Registry,
    programs: Sequence[Program],
    *,
    tables: Mapping[str, Table] | None = None,
    paid: Mapping[str, pl.Series] | None = None,
    extra: Mapping[str, pl.Series] | None = None,
    progress: Progress | None = None,
) -> Evaluation:
    """Decide every program for its universe (and the ``extra`` rows) on the registry's day.

    ``paid``: per program, the once-keys already paid. ``tables``: per program, a table to use
    instead of the catalogue's (the what-if).
    """
    parts: list[pl.DataFrame] = []
    sizes: dict[str, int] = {}
    seconds: dict[str, float] = {}
    for program in programs:
        if progress is not None:
            progress(program.id)
        began = time.perf_counter()
        table = (tables or {}).get(program.id, program.table)
        frame = program_frame(
            registry, program, table=table,
            paid_keys=(paid or {}).get(program.id), extra_subjects=(extra or {}).get(program.id),
        )
        sizes[program.id] = frame.universe_size
        result = VectorProgram(table).evaluate(frame.population, today=registry.day, children=frame.children)
        pop = frame.population
        review = pop[REVIEW].is_not_null()
        in_universe = pl.Series(
            values=[True] * frame.universe_size + [False] * frame.extra, dtype=pl.Boolean
        )
        out = pl.DataFrame(
            {
                "program": pl.Series(values=[program.id] * pop.height, dtype=pl.String),
                "fin": pop[BENEFICIARY_FIN],
                "subject_fin": pop["fin"],
                "outcome": result["outcome"].cast(pl.String),
                "branch": result["branch"].cast(pl.String),
                "amount": result["amount"],
                "already_paid": pop["already_paid"],
                "in_universe": in_universe,
                "review_reason": pop[REVIEW],
            }
        ).with_columns(
            pl.when(review).then(pl.lit("needs_review")).otherwise(pl.col("outcome")).alias("outcome"),
            pl.when(review).then(pl.lit(NO_BENEFICIARY)).otherwise(pl.col("branch")).alias("branch"),
            pl.when(review).then(0).otherwise(pl.col("amount")).alias("amount"),
        )
        parts.append(out)
        seconds[program.id] = time.perf_counter() - began
    decisions = pl.concat(parts) if parts else pl.DataFrame(schema=DECISION_SCHEMA)
    return Evaluation(registry.day, decisions, sizes, registry.defaulted, seconds)


def yearly(program: Program, amount: pl.Expr) -> pl.Expr:
    """The yearly cost of an amount: twelve months of a monthly one, a lump sum once."""
    return amount * 12 if program.schedule.kind is ScheduleKind.MONTHLY else amount
