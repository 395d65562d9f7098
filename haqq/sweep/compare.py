"""Compare what the rules decide with what is assigned: missed rights, stale and wrong entitlements.

The store's entitlements enter the sweep twice:

- as ``already_paid``: a program pays at most once per key, so an entitlement under the key
  (whatever its status: a declined offer or a paid lump sum counts) makes the rules deny;
  except a monthly entitlement running on the date, which is what the sweep checks: for its
  subject the rules decide as if it were not there (is it still due, and how much?);
- as the assignments to compare with: the entitlements active on the date (status active or
  pending, started, not ended).

Findings, one row each: ``missed_right`` (granted, not already paid, no entitlement running),
``no_longer_entitled`` (a monthly entitlement running that the rules no longer grant; its
subject is evaluated even when outside the universe) and ``wrong_amount`` (a monthly
entitlement running at another amount than the rules compute).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date

import polars as pl
from sqlalchemy import Engine, select

from haqq.adapters.store.schema import entitlements
from haqq.rules.catalogue import Program, ScheduleKind
from haqq.sweep.evaluate import Evaluation
from haqq.sweep.frames import Registry

ACTIVE = ("active", "pending")
MISSED = "missed_right"
NO_LONGER = "no_longer_entitled"
WRONG_AMOUNT = "wrong_amount"
KINDS = (MISSED, NO_LONGER, WRONG_AMOUNT)
SUBJECT_UNKNOWN = "subject_unknown"

ENTITLEMENT_SCHEMA: dict[str, pl.DataType] = {
    "program": pl.String(), "once_key": pl.String(), "assigned_fin": pl.String(),
    "subject_fin": pl.String(), "schedule": pl.String(), "assigned_amount": pl.Int64(),
    "start_date": pl.Date(), "end_date": pl.Date(), "status": pl.String(),
}

FINDING_SCHEMA: dict[str, pl.DataType] = {
    "finding": pl.String(), "program": pl.String(), "subject_fin": pl.String(),
    "fin": pl.String(), "assigned_fin": pl.String(), "outcome": pl.String(),
    "branch": pl.String(), "computed_amount": pl.Int64(), "assigned_amount": pl.Int64(),
    "review_reason": pl.String(),
}


def read_entitlements(engine: Engine, program_ids: Iterable[str]) -> pl.DataFrame:
    """Every entitlement of the programs, whatever its status."""
    ids = sorted(set(program_ids))
    query = select(
        entitlements.c.program_id, entitlements.c.once_key, entitlements.c.fin,
        entitlements.c.subject_fin, entitlements.c.schedule, entitlements.c.amount,
        entitlements.c.start_date, entitlements.c.end_date, entitlements.c.status,
    ).where(entitlements.c.program_id.in_(ids))
    with engine.connect() as conn:
        rows = [tuple(r) for r in conn.execute(query)]
    return pl.DataFrame(rows, schema=ENTITLEMENT_SCHEMA, orient="row")


def running(ents: pl.DataFrame, day: date) -> pl.Expr:
    """The entitlements active on ``day``."""
    c = pl.col
    return (
        c("status").is_in(list(ACTIVE)) & (c("start_date") <= day)
        & (c("end_date").is_null() | (c("end_date") >= day))
    )


@dataclass(frozen=True)
class StoreInputs:
    """What the evaluation takes from the store, per program, and what it compares with."""

    paid: dict[str, pl.Series]
    extra: dict[str, pl.Series]
    active: pl.DataFrame


def store_inputs(registry: Registry, programs: Iterable[Program], ents: pl.DataFrame) -> StoreInputs:
    day = registry.day
    marked = ents.with_columns(running(ents, day).alias("running"))
    checked = pl.col("running") & (pl.col("schedule") == ScheduleKind.MONTHLY.value)
    paid: dict[str, pl.Series] = {}
    extra: dict[str, pl.Series] = {}
    for program in programs:
        mine = marked.filter(pl.col("program") == program.id)
        paid[program.id] = mine.filter(~checked)["once_key"]
        monthly = mine.filter(checked)["subject_fin"]
        if monthly.len():
            extra[program.id] = registry.rows_of_fins(monthly)
    return StoreInputs(paid, extra, marked.filter(pl.col("running")).drop("running"))


def compare(evaluation: Evaluation, active: pl.DataFrame) -> pl.DataFrame:
    """The findings: one row per missed right, stale entitlement or wrong amount."""
    c = pl.col
    assigned = active.select(
        "program", "subject_fin", "assigned_fin", "assigned_amount",
        (c("schedule") == ScheduleKind.MONTHLY.value).alias("monthly"),
    )
    joined = evaluation.decisions.join(assigned, on=["program", "subject_fin"], how="left")
    has = c("assigned_amount").is_not_null()
    granted = c("outcome") == "granted"
    kind = (
        pl.when(granted & ~c("already_paid") & ~has).then(pl.lit(MISSED))
        .when(has & c("monthly") & ~granted).then(pl.lit(NO_LONGER))
        .when(has & c("monthly") & granted & (c("amount") != c("assigned_amount"))).then(pl.lit(WRONG_AMOUNT))
        .otherwise(None)
    )
    found = joined.with_columns(kind.alias("finding")).filter(c("finding").is_not_null()).select(
        "finding", "program", "subject_fin", "fin", "assigned_fin", "outcome", "branch",
        c("amount").alias("computed_amount"), "assigned_amount", "review_reason",
    )
    # Running monthly entitlements whose subject the registry does not know at all.
    unknown = assigned.filter(c("monthly")).join(
        evaluation.decisions.select("program", "subject_fin"), on=["program", "subject_fin"], how="anti"
    ).select(
        pl.lit(NO_LONGER).alias("finding"), "program", "subject_fin",
        pl.lit(None, pl.String).alias("fin"), "assigned_fin", pl.lit("needs_review").alias("outcome"),
        pl.lit(SUBJECT_UNKNOWN).alias("branch"), pl.lit(0, pl.Int64).alias("computed_amount"),
        "assigned_amount", pl.lit("the registry has no record of the subject", pl.String).alias("review_reason"),
    )
    out = pl.concat([found.cast(FINDING_SCHEMA), unknown.cast(FINDING_SCHEMA)])  # type: ignore[arg-type]
    return out.sort("finding", "program", "subject_fin")
