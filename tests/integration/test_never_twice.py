"""Hypothesis: however life events arrive (twice, from two registries, in any order and any
batching), nobody is paid twice for the same right and nobody is told twice."""

from __future__ import annotations

import shutil
import tempfile
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from haqq.adapters.store import db
from haqq.adapters.store.schema import cases, entitlements, notifications, payments
from haqq.bootstrap import ManualClock, Settings, build
from haqq.country import generate_country, iter_events
from haqq.domain.events import parse_event
from haqq.pipeline import intake
from haqq.pipeline.work import BAKU

INTERESTING = {"birth_registered", "death_registered", "disability_status_granted", "disability_status_ended"}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict[str, Any]]]:
    path = tmp_path_factory.mktemp("country") / "country.db"
    generate_country(path, population=3000, seed=21, year=2025)
    raw = [e for chunk in iter_events(path) for e in chunk if e["type"] in INTERESTING]
    return path, raw[:40]


#: Which events arrive, and for each, every copy of it: from which registry and in which tick.
deliveries = st.lists(
    st.tuples(
        st.integers(0, 39),
        st.lists(
            st.tuples(st.sampled_from(["original", "second registry"]), st.integers(0, 3)),
            min_size=1,
            max_size=3,
        ),
    ),
    min_size=1,
    max_size=15,
    unique_by=lambda d: d[0],
).map(lambda events: [(index, source, tick) for index, copies in events for source, tick in copies])


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(plan=deliveries)
def test_nothing_is_paid_or_texted_twice(world: tuple[Path, list[dict[str, Any]]], plan: list[tuple[int, str, int]]) -> None:
    country_file, raw = world
    with tempfile.TemporaryDirectory() as tmp:
        country = Path(tmp) / "country.db"
        shutil.copyfile(country_file, country)
        app = build(Settings(database_url=f"sqlite:///{Path(tmp) / 'haqq.db'}", country=country, batch_size=7))
        db.upgrade(app.engine)
        clock = ManualClock(datetime(2026, 1, 1, tzinfo=BAKU))
        worker = app.worker(clock, batch_size=7)
        for tick in range(4):
            batch = []
            for index, source, when in plan:
                if when != tick or index >= len(raw):
                    continue
                event = dict(raw[index])
                if source == "second registry":  # the same fact, reported again under another id
                    event = {**event, "source": "other_registry", "event_id": "X-" + event["event_id"]}
                batch.append(parse_event(event))
            with app.engine.begin() as conn:
                intake.store(conn, batch, received_at=clock.now(), wall=app.wall())
            worker.run_until_idle()
            clock.set(clock.now() + timedelta(days=3))
        clock.set(clock.now() + timedelta(days=60))
        worker.run_until_idle()
        with app.engine.connect() as conn:
            per_right = conn.execute(
                select(payments.c.program_id, entitlements.c.subject_fin, func.count())
                .join(entitlements, entitlements.c.id == payments.c.entitlement_id)
                .where(payments.c.period == "lump", payments.c.status != "cancelled")
                .group_by(payments.c.program_id, entitlements.c.subject_fin)
                .having(func.count() > 1)
            ).all()
            assert per_right == [], "a lump sum paid twice for the same child or death"
            per_period = conn.execute(
                select(entitlements.c.program_id, entitlements.c.subject_fin, payments.c.period, func.count())
                .join(entitlements, entitlements.c.id == payments.c.entitlement_id)
                .where(payments.c.period != "lump", payments.c.status != "cancelled")
                .group_by(entitlements.c.program_id, entitlements.c.subject_fin, payments.c.period)
                .having(func.count() > 1)
            ).all()
            assert per_period == [], "a monthly payment made twice for one person and month"
            told = conn.execute(
                select(cases.c.program_id, cases.c.subject_fin, func.count())
                .join(notifications, notifications.c.case_id == cases.c.id)
                .where(notifications.c.kind == "granted")
                .group_by(cases.c.program_id, cases.c.subject_fin)
                .having(func.count() > 1)
            ).all()
            assert told == [], "a citizen told twice of the same right"
        app.engine.dispose()
