"""The sweep's report: the findings as Parquet and CSV, a summary per program, and cases opened
for the missed rights.

Opening a case for a missed right stores a life event (source ``sweep``) of the program's
trigger type, as a registry would have sent it, whose payload names the one program it is for
(``{"program": ..., "found_by": "sweep", "date": ..., "subject": ...}``). Its event id is
``<program>:<subject>:<date>``, so sweeping again on the same date opens nothing twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

import polars as pl
from sqlalchemy import Engine

from haqq.country.schema import BAKU
from haqq.domain.events import EventType, LifeEvent
from haqq.pipeline import intake
from haqq.rules.catalogue import Catalogue, Program, ScheduleKind
from haqq.sweep.compare import MISSED, NO_LONGER, WRONG_AMOUNT
from haqq.sweep.evaluate import Evaluation
from haqq.sweep.frames import (
    KEY,
    Registry,
    fact_column,
    link_key,
)

SOURCE = "sweep"
#: The payload key that names the single program an event opened by the sweep is for.
PROGRAM_KEY = "program"


def report_paths(out: Path | None, day: date, stem: str = "sweep") -> tuple[Path, Path]:
    """``(parquet, csv)``: ``reports/<stem>-<date>.*`` by default, else ``out`` without suffix."""
    base = out if out is not None else Path("reports") / f"{stem}-{day.isoformat()}"
    if base.suffix in (".parquet", ".csv"):
        base = base.with_suffix("")
    return base.with_name(base.name + ".parquet"), base.with_name(base.name + ".csv")


def write(frame: pl.DataFrame, out: Path | None, day: date, stem: str = "sweep") -> tuple[Path, Path]:
    parquet, csv = report_paths(out, day, stem)
    parquet.parent.mkdir(parents=True, exist_ok=True)
    frame.write_parquet(parquet)
    frame.write_csv(csv)
    return parquet, csv


@dataclass(frozen=True)
class Row:
    program: str
    universe: int
    granted: int
    denied: int
    needs_review: int
    missed: int
    no_longer: int
    wrong_amount: int
    #: Granted amounts: per month for a monthly program, the total of the lump sums otherwise.
    amount: int
    monthly: bool


def summary(catalogue: Catalogue, evaluation: Evaluation, findings: pl.DataFrame) -> list[Row]:
    c = pl.col
    decided = evaluation.decisions.group_by("program").agg(
        (c("outcome") == "granted").sum().alias("granted"),
        (c("outcome") == "denied").sum().alias("denied"),
        (c("outcome") == "needs_review").sum().alias("needs_review"),
        pl.when(c("outcome") == "granted").then(c("amount")).otherwise(0).sum().alias("amount"),
    )
    counts = findings.group_by("program", "finding").len()
    by_finding: dict[tuple[str, str], int] = {
        (r["program"], r["finding"]): r["len"] for r in counts.iter_rows(named=True)
    }
    rows = []
    for r in decided.sort("program").iter_rows(named=True):
        program = catalogue[r["program"]]
        rows.append(
            Row(
                r["program"], evaluation.universe.get(r["program"], 0), r["granted"], r["denied"],
                r["needs_review"], by_finding.get((r["program"], MISSED), 0),
                by_finding.get((r["program"], NO_LONGER), 0),
                by_finding.get((r["program"], WRONG_AMOUNT), 0), r["amount"],
                program.schedule.kind is ScheduleKind.MONTHLY,
            )
        )
    return rows


def _dead_parent(registry: Registry, rows: pl.Series) -> pl.Series:
    """For each child row: the FIN of a parent who is not alive (the mother first)."""
    out = []
    for relation in ("mother", "father"):
        link = registry.persons[link_key(relation)].gather(rows)
        at = registry.rows_of(link)
        alive = registry.persons[fact_column("alive")].gather(at).fill_null(False)
        fin = registry.persons["fin"].gather(at)
        out.append(pl.select(pl.when(link.is_not_null() & ~alive).then(fin)).to_series())
    return pl.select(pl.coalesce(out[0], out[1])).to_series()


def missed_events(
    registry: Registry, catalogue: Catalogue, findings: pl.DataFrame, day: date
) -> list[LifeEvent]:
    """One life event per missed right, of the program's trigger type, for that program only."""
    missed = findings.filter(pl.col("finding") == MISSED)
    at = datetime.combine(day, time(0), tzinfo=BAKU)
    events: list[LifeEvent] = []
    for (program_id,), part in missed.group_by("program", maintain_order=True):
        program: Program = catalogue[str(program_id)]
        trigger = program.triggers[0]
        rows = registry.rows_of_fins(part["subject_fin"])
        info = _event_facts(registry, rows, trigger)
        for subject, extra in zip(part["subject_fin"].to_list(), info, strict=True):
            fin = extra.pop("__fin", None) or subject
            payload: dict[str, Any] = {
                PROGRAM_KEY: program.id, "found_by": SOURCE, "date": day.isoformat(),
                "subject": subject, **extra,
            }
            events.append(
                LifeEvent(SOURCE, f"{program.id}:{subject}:{day.isoformat()}", trigger, fin, at, payload)
            )
    return events


def _event_facts(registry: Registry, rows: pl.Series, trigger: EventType) -> list[dict[str, Any]]:
    """What an event of ``trigger`` carries besides the subject (as the registry would say)."""
    p = registry.persons
    n = rows.len()
    if trigger is EventType.BIRTH_REGISTERED:
        fins = {
            f"{r}_fin": p["fin"].gather(registry.rows_of(p[link_key(r)].gather(rows))).to_list()
            for r in ("mother", "father")
        }
        return [{k: v[i] for k, v in fins.items() if v[i]} for i in range(n)]
    if trigger is EventType.DEATH_REGISTERED:
        # The death that opens a child's right is a parent's; a deceased subject's is their own.
        alive = p[fact_column("alive")].gather(rows).to_list() if fact_column("alive") in p.columns else [False] * n
        dead_parent = _dead_parent(registry, rows).to_list()
        return [{"__fin": dead_parent[i]} if alive[i] and dead_parent[i] else {} for i in range(n)]
    if trigger is EventType.DISABILITY_STATUS_GRANTED:
        name = fact_column("disability_group")
        groups = p[name].gather(rows).to_list() if name in p.columns else [None] * n
        return [{"group": int(g or 0)} for g in groups]
    if trigger is EventType.AGE_REACHED:
        born = p[fact_column("birth_date")].gather(rows).to_list()
        day = registry.day
        return [
            {"age": day.year - b.year - ((day.month, day.day) < (b.month, b.day))} if b else {}
            for b in born
        ]
    return [{} for _ in range(n)]


def open_cases(
    engine: Engine, registry: Registry, catalogue: Catalogue, findings: pl.DataFrame, day: date,
    wall: datetime,
) -> intake.IntakeReport:
    """Store an intake event for every missed right; idempotent by (source, event id)."""
    events = missed_events(registry, catalogue, findings, day)
    report = intake.IntakeReport()
    for i in range(0, len(events), 5000):
        with engine.begin() as conn:
            report.merge(intake.store(conn, events[i : i + 5000], received_at=None, wall=wall))
    return report


__all__ = ["KEY", "PROGRAM_KEY", "SOURCE", "Row", "open_cases", "summary", "write"]
