"""The whole pipeline on a small synthetic country, on SQLite and on PostgreSQL.

A year is replayed and the store is checked for what haqq promises: every case finished, only
allowed transitions, every decision explained, nothing paid or texted twice.
"""

from __future__ import annotations

import shutil
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from haqq.adapters.store import db
from haqq.adapters.store.schema import (
    case_transitions,
    cases,
    notifications,
    payment_runs,
    payments,
    sms_receipts,
)
from haqq.bootstrap import Haqq, Settings, build
from haqq.replay import replay
from tests.helpers import generated_country
from tests.invariants import check_invariants

YEAR = 2025


@pytest.fixture(scope="module")
def country_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generated_country(tmp_path_factory, population=6000, seed=11)


def fresh_app(country_file: Path, tmp_path: Path, url: str, payments: str = "runs") -> Haqq:
    """A store at the newest schema and a private copy of the country (the simulated bank and
    gateway keep their state in it)."""
    country = tmp_path / "country.db"
    shutil.copyfile(country_file, country)
    app = build(Settings(database_url=url, country=country, batch_size=300, payments=payments))
    db.upgrade(app.engine)
    return app


def test_a_year_replays_to_the_end(store_url: str, country_file: Path, tmp_path: Path) -> None:
    app = fresh_app(country_file, tmp_path, store_url)
    result = replay(app, year=YEAR, tick=timedelta(days=3))
    assert result.events > 300
    states = check_invariants(app)
    assert states["closed"] > 50
    with app.engine.connect() as conn:
        by_program = Counter(dict(conn.execute(select(cases.c.program_id, func.count()).group_by(cases.c.program_id)).all()))
        paid = dict(conn.execute(select(payments.c.program_id, func.count()).where(payments.c.status == "accepted").group_by(payments.c.program_id)).all())
        consent = dict(conn.execute(select(cases.c.state, func.count()).where(cases.c.program_id == "funeral_allowance").group_by(cases.c.state)).all())
    assert set(by_program) >= {"birth_benefit", "disability_payment", "funeral_allowance", "stop_on_death"}
    assert paid["birth_benefit"] > 0 and paid["disability_payment"] > 0 and paid["funeral_allowance"] > 0
    # Consent mode: some said yes (closed), some no (declined).
    assert consent.get("closed", 0) > 0 and consent.get("declined", 0) + consent.get("lapsed", 0) > 0


def test_a_second_replay_changes_nothing(sqlite_url: str, country_file: Path, tmp_path: Path) -> None:
    app = fresh_app(country_file, tmp_path, sqlite_url)
    replay(app, year=YEAR, tick=timedelta(days=7))
    with app.engine.connect() as conn:
        before = conn.execute(select(func.count()).select_from(case_transitions)).scalar_one()
    # A finished replay is recorded as such; forcing the worker again finds nothing due.
    again = replay(app, year=YEAR, tick=timedelta(days=7))
    assert again.events == 0
    worker = app.worker(app_clock_after(app))
    assert worker.run_until_idle() == 0
    with app.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(case_transitions)).scalar_one() == before


def app_clock_after(app: Haqq):  # type: ignore[no-untyped-def]
    from haqq.replay import DbClock

    return DbClock(app.engine)


def test_two_workers_share_the_load(store_url: str, country_file: Path, tmp_path: Path) -> None:
    """PostgreSQL: the workers skip each other's locked rows. SQLite: each takes its shard and
    works outside the write lock."""
    app = fresh_app(country_file, tmp_path, store_url)
    before = db.write_turns(app.engine)
    result = replay(app, year=YEAR, workers=2, tick=timedelta(days=7), batch_size=100)
    states = check_invariants(app)
    assert states["closed"] > 50
    # Every receipt the gateway gave was placed on a part haqq sent (on SQLite, worker 0 takes
    # them before its turn), and every message has its final word.
    with app.engine.connect() as conn:
        texts = Counter(dict(conn.execute(
            select(notifications.c.status, func.count()).where(notifications.c.parts > 0)
            .group_by(notifications.c.status)).all()))
        refused = conn.execute(select(func.count()).select_from(sms_receipts)
                               .where(sms_receipts.c.state == "refused")).scalar_one()
    assert texts["delivered"] > 50 and texts["sent"] == 0 and refused == 0, (texts, refused)
    # The write lock's turns are counted in every process: the workers' are added to the
    # parent's own, and turns being exclusive, together they were held no longer than the replay.
    if store_url.startswith("sqlite"):
        after = db.write_turns(app.engine)
        assert before is not None and after is not None and result.write_turns is not None
        parents = (after - before).turns
        assert result.write_turns.turns > parents > 0
        assert 0 < result.write_turns.held <= result.wall_seconds
    else:
        assert result.write_turns is None


def test_a_year_replays_with_direct_transfers_too(sqlite_url: str, country_file: Path, tmp_path: Path) -> None:
    """The bank's batch transfer call instead of payment runs: the same promises hold."""
    app = fresh_app(country_file, tmp_path, sqlite_url, payments="direct")
    replay(app, year=YEAR, tick=timedelta(days=3))
    check_invariants(app)
    with app.engine.connect() as conn:
        runs_made = conn.execute(select(func.count()).select_from(payment_runs)).scalar_one()
        paid = conn.execute(select(func.count()).select_from(payments).where(payments.c.status == "accepted")).scalar_one()
    assert runs_made == 0 and paid > 50
