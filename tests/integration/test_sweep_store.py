"""The sweep against a real store (SQLite and PostgreSQL): what the pipeline granted is not a
missed right, a lost entitlement is, and the case the sweep opens for it is decided again."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import polars as pl
import pytest
from sqlalchemy import delete, select

from haqq.adapters.store import db
from haqq.adapters.store.schema import cases, entitlements, events, payments
from haqq.bootstrap import Settings, build
from haqq.pipeline.work import BAKU
from haqq.sweep import report
from haqq.sweep.run import run
from tests.helpers import country_query, generated_country, rows, run_at, take_events

DAY = date(2025, 3, 31)


@pytest.fixture(scope="module")
def country_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generated_country(tmp_path_factory, population=6_000, seed=4)


def test_sweep_finds_a_lost_entitlement_and_opens_its_case_once(store_url: str, country_file: Path) -> None:
    found = country_query(
        country_file,
        "SELECT fin, disability_group FROM persons WHERE disability_group IS NOT NULL AND death_date IS NULL "
        "AND disability_since < '2025-01-01' AND disability_until IS NULL AND resident = 1 "
        "AND pensions NOT LIKE '%disability%' "
        "AND mia_birth_date IS NULL AND birth_date < '1990-01-01' AND phone IS NOT NULL "
        "AND (doc_valid_until IS NULL OR doc_valid_until > '2026-01-01') ORDER BY fin LIMIT 3",
    )
    assert len(found) == 3
    app = build(Settings(database_url=store_url, country=country_file))
    db.upgrade(app.engine)
    at = datetime(2025, 1, 10, 10, tzinfo=BAKU)
    take_events(app, [
        {"source": "disability_registry", "event_id": f"T-{p['fin']}", "type": "disability_status_granted",
         "fin": p["fin"], "occurred_at": at.isoformat(), "payload": {"group": p["disability_group"]}}
        for p in found
    ], at)
    run_at(app, at, datetime(2025, 1, 20, tzinfo=BAKU))
    granted = rows(app.engine, entitlements, entitlements.c.program_id == "disability_payment")
    assert len(granted) == 3

    def sweep() -> pl.DataFrame:
        return run(app.catalogue, country_file, DAY, engine=app.engine, program_id="disability_payment").findings

    ours = {p["fin"] for p in found}
    first = sweep()
    assert not ours & set(first.filter(pl.col("finding") == "missed_right")["subject_fin"].to_list())

    lost = granted[0]
    with app.engine.begin() as conn:
        conn.execute(delete(payments).where(payments.c.entitlement_id == lost["id"]))
        conn.execute(delete(entitlements).where(entitlements.c.id == lost["id"]))
    done = run(app.catalogue, country_file, DAY, engine=app.engine, program_id="disability_payment")
    missed = done.findings.filter(pl.col("finding") == "missed_right")
    assert lost["subject_fin"] in missed["subject_fin"].to_list()

    mine = done.findings.filter(pl.col("subject_fin") == lost["subject_fin"])
    for _ in range(2):  # opening twice opens once
        report.open_cases(app.engine, done.registry, app.catalogue, mine, DAY, app.wall())
    with app.engine.connect() as conn:
        raised = conn.execute(select(events.c.id, events.c.payload).where(events.c.source == "sweep")).all()
    assert len(raised) == 1 and raised[0].payload["program"] == "disability_payment"
    run_at(app, datetime(2025, 4, 1, 12, tzinfo=BAKU))
    reopened = rows(app.engine, cases, cases.c.event_id == raised[0].id)
    assert [c["program_id"] for c in reopened] == ["disability_payment"]
    assert reopened[0]["subject_fin"] == lost["subject_fin"]
    assert reopened[0]["state"] not in ("detected", "gathering", "verifying")
