"""Several workers on one embedded store: work read outside the write lock is written only if
nobody took it meanwhile, and the outbox is recorded only for rows still waiting.

On SQLite a worker reads its shard, works and sends outside the write lock, then writes in a
short turn. These tests make another writer act in between, on a real SQLite store (and the
outbox test on both stores: the same guarded record runs on PostgreSQL).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, update

from haqq.adapters.store import db, repository
from haqq.adapters.store.schema import (
    case_transitions,
    cases,
    events,
    payments,
    recovery_claims,
)
from haqq.bootstrap import Haqq, ManualClock, Settings, build
from haqq.pipeline import dispatch
from haqq.pipeline import worker as worker_module
from haqq.ports import TransferResult
from tests.helpers import catalogue_of, country_query, event_json, rows, run_at, take_events

HOUR = timedelta(hours=1)


@pytest.fixture(scope="module")
def pristine_country(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from haqq.country import generate_country
    from tests.helpers import POPULATION, SEED

    path = tmp_path_factory.mktemp("country") / "country.db"
    generate_country(path, population=POPULATION, seed=SEED, year=2025)
    return path


def _app(url: str, pristine: Path, tmp_path: Path) -> Haqq:
    country = tmp_path / "country.db"
    shutil.copyfile(pristine, country)
    haqq = build(
        Settings(database_url=url, country=country, catalogue_dir=catalogue_of(tmp_path / "programs"))
    )
    db.upgrade(haqq.engine)
    return haqq


@pytest.fixture
def sqlite_app(pristine_country: Path, tmp_path: Path) -> Iterator[Haqq]:
    haqq = _app(f"sqlite:///{tmp_path / 'haqq.db'}", pristine_country, tmp_path)
    yield haqq
    haqq.engine.dispose()


@pytest.fixture
def app(store_url: str, pristine_country: Path, tmp_path: Path) -> Iterator[Haqq]:
    haqq = _app(store_url, pristine_country, tmp_path)
    yield haqq
    haqq.engine.dispose()


def births(app: Haqq, limit: int) -> list[dict[str, Any]]:
    found = country_query(
        app.settings.country,
        "SELECT id, type, fin, occurred_at, payload, source FROM life_events "
        "WHERE type = 'birth_registered' ORDER BY occurred_at, id LIMIT ?",
        (limit,),
    )
    assert len(found) == limit
    return [event_json(r) for r in found]


def count(app: Haqq, table: Any, *where: Any) -> int:
    with app.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table).where(*where)).scalar_one())


def test_events_another_worker_took_meanwhile_are_not_written_twice(
    sqlite_app: Haqq, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = sqlite_app
    batch = births(app, 8)
    moment = datetime.fromisoformat(batch[-1]["occurred_at"]) + HOUR
    take_events(app, batch, moment - HOUR)
    real = worker_module.Worker._start_cases
    taken: list[int] = []

    def start_then_lose(self: Any, claimed: Any, ctx: Any, now: Any) -> Any:
        made = real(self, claimed, ctx, now)
        # Another writer takes one of the claimed events before this worker's turn.
        with app.engine.begin() as conn:
            first = min(claimed)
            conn.execute(update(events).where(events.c.id == first).values(status="no_program"))
            taken.append(first)
        return made

    monkeypatch.setattr(worker_module.Worker, "_start_cases", start_then_lose)
    worker = app.worker(ManualClock(moment), shard=0, shards=2)
    with pytest.raises(worker_module.ClaimLost, match="1 of 4 events were taken meanwhile"):
        worker.trigger_events(moment)
    assert count(app, cases) == 0 and count(app, case_transitions) == 0
    statuses = {e["id"]: e["status"] for e in rows(app.engine, events)}
    assert statuses.pop(taken[0]) == "no_program"
    assert set(statuses.values()) == {"received"}

    # The next round reads again and starts the cases of the events still waiting, once.
    monkeypatch.undo()
    assert worker.run_once() > 0
    mine = [e for e in rows(app.engine, events) if e["id"] % 2 == 0 and e["id"] != taken[0]]
    assert {e["status"] for e in mine} == {"triggered"}
    assert count(app, cases) == len(mine)


def test_the_shards_of_two_workers_together_take_every_event_once(sqlite_app: Haqq) -> None:
    app = sqlite_app
    batch = births(app, 12)
    moment = datetime.fromisoformat(batch[-1]["occurred_at"]) + HOUR
    take_events(app, batch, moment - HOUR)
    first, second = (app.worker(ManualClock(moment), shard=i, shards=2) for i in range(2))
    first.trigger_events(moment)
    assert {e["status"] != "received" for e in rows(app.engine, events)} == {True, False}
    second.trigger_events(moment)
    assert {e["status"] for e in rows(app.engine, events)} == {"triggered"}
    with app.engine.connect() as conn:
        per_event = conn.execute(select(cases.c.event_id, func.count()).group_by(cases.c.event_id)).all()
    assert len(per_event) == len(batch) and {n for _, n in per_event} == {1}


def test_a_worker_done_with_its_shard_helps_the_others_beyond_their_next_batch(sqlite_app: Haqq) -> None:
    app = sqlite_app
    batch = births(app, 16)
    moment = datetime.fromisoformat(batch[-1]["occurred_at"]) + HOUR
    take_events(app, batch, moment - HOUR)  # one moment of receipt: the ids order them

    def waiting() -> list[int]:
        return sorted(e["id"] for e in rows(app.engine, events) if e["status"] == "received")

    theirs = [i for i in waiting() if i % 2 == 1]
    helper = app.worker(ManualClock(moment), 2, shard=0, shards=2)
    for _ in range(4):  # its own shard first, two by two
        assert helper.trigger_events(moment) == 2
    assert waiting() == theirs
    # Then the other shard's newest, two by two, never the owner's next two.
    for left in (6, 4, 2):
        assert helper.trigger_events(moment) == 2
        assert waiting() == theirs[:left]
    assert helper.trigger_events(moment) == 0
    owner = app.worker(ManualClock(moment), 2, shard=1, shards=2)
    assert owner.trigger_events(moment) == 2
    assert waiting() == []
    with app.engine.connect() as conn:
        per_event = conn.execute(select(cases.c.event_id, func.count()).group_by(cases.c.event_id)).all()
    assert {n for _, n in per_event} == {1}


def test_cases_of_other_shards_are_claimed_newest_first_beyond_their_owners_next_batch(app: Haqq) -> None:
    batch = births(app, 12)
    moment = datetime.fromisoformat(batch[-1]["occurred_at"]) + HOUR
    take_events(app, batch, moment - HOUR)
    for shard in range(2):
        app.worker(ManualClock(moment), shard=shard, shards=2).trigger_events(moment)
    # Every case due, each at its own minute, in the order of their ids.
    with app.engine.begin() as conn:
        ids = [r.id for r in conn.execute(select(cases.c.id, cases.c.event_id).order_by(cases.c.id))]
        for i, cid in enumerate(ids):
            conn.execute(update(cases).where(cases.c.id == cid).values(due_at=moment + timedelta(minutes=i)))
        owners = dict(conn.execute(select(cases.c.id, cases.c.event_id % 2)).all())
    theirs = [cid for cid in ids if owners[cid] == 1]
    assert len(theirs) >= 5
    now = moment + timedelta(days=1)
    with app.engine.connect() as conn:
        mine = repository.claim_cases(conn, app.catalogue, now, 2, (0, 2))
        helped = repository.claim_cases(conn, app.catalogue, now, 2, (0, 2), others=True)
        everything = repository.claim_cases(conn, app.catalogue, now, 100, (0, 2), others=True)
        few = repository.claim_cases(conn, app.catalogue, now, len(theirs), (0, 2), others=True)
    assert all(owners[c.id] == 0 for c in mine)
    assert [c.id for c in helped] == theirs[::-1][:2]
    assert [c.id for c in everything] == []  # fewer than a batch of theirs: all left to the owner
    assert [c.id for c in few] == []
    with app.engine.connect() as conn:
        rest = repository.claim_cases(conn, app.catalogue, now, 3, (0, 2), others=True)
    assert [c.id for c in rest] == theirs[::-1][: len(theirs) - 3]


def test_a_payment_paid_while_a_stop_cancelled_it_becomes_a_recovery_claim(app: Haqq) -> None:
    batch = births(app, 10)
    start = datetime.fromisoformat(batch[-1]["occurred_at"]) + HOUR
    take_events(app, batch, start - HOUR)
    run_at(app, start, start + timedelta(days=10))
    paid = rows(app.engine, payments, payments.c.status == "accepted")
    assert len(paid) >= 3, "too few payments for this test"
    in_flight, cancelled_paid, cancelled_refused = paid[:3]
    ids = [p["id"] for p in (in_flight, cancelled_paid, cancelled_refused)]
    # All three were read while scheduled and handed to the bank...
    with app.engine.begin() as conn:
        conn.execute(update(payments).where(payments.c.id.in_(ids)).values(status="scheduled", sent_at=None))
        read = [r for r in dispatch.due_payments(conn, start + timedelta(days=30), 100) if r.id in ids]
        # ... then a stop cancelled two of them before the answers were recorded.
        conn.execute(
            update(payments)
            .where(payments.c.id.in_(ids[1:]))
            .values(status="cancelled", reason="death registered 2025-01-01")
        )
    assert len(read) == 3
    answers = {
        in_flight["key"]: TransferResult(in_flight["key"], "accepted", None),
        cancelled_paid["key"]: TransferResult(cancelled_paid["key"], "accepted", None),
        cancelled_refused["key"]: TransferResult(cancelled_refused["key"], "rejected", "AC04"),
    }
    with app.engine.begin() as conn:
        assert dispatch.record_payments(conn, read, answers, app.wall()) == 3
    after = {p["id"]: p for p in rows(app.engine, payments, payments.c.id.in_(ids))}
    assert after[in_flight["id"]]["status"] == "accepted"
    assert after[cancelled_paid["id"]]["status"] == "accepted"
    assert after[cancelled_refused["id"]]["status"] == "cancelled"  # nothing left the bank
    claims = rows(app.engine, recovery_claims)
    assert [(c["payment_id"], c["amount"], c["reason"], c["status"]) for c in claims] == [
        (cancelled_paid["id"], cancelled_paid["amount"], "death registered 2025-01-01", "open")
    ]
    # Recorded again (a retried round): still one claim.
    with app.engine.begin() as conn:
        dispatch.record_payments(conn, read, answers, app.wall())
    assert count(app, recovery_claims) == 1


def test_a_case_woken_meanwhile_is_not_overwritten(
    sqlite_app: Haqq, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bank answer that wakes a case while a worker works on it outside the lock wins: the
    worker's batch is not written, and the next round sees the answer."""
    app = sqlite_app
    batch = births(app, 10)
    moment = datetime.fromisoformat(batch[-1]["occurred_at"]) + HOUR
    take_events(app, batch, moment - HOUR)
    run_at(app, moment)
    due = moment + timedelta(days=2)
    with app.engine.begin() as conn:
        # Every open case due now (as a recheck would make them).
        conn.execute(update(cases).where(cases.c.state != "closed").values(due_at=moment))
    before = {c["id"]: c for c in rows(app.engine, cases)}
    real = worker_module.Worker._run_steps
    woken: list[str] = []

    def advance_then_wake(batch: Any, ctx: Any, now: Any) -> None:
        real(batch, ctx, now)
        with app.engine.begin() as conn:  # another writer's wake-up, as the dispatch writes it
            woken.append(batch[0].id)
            conn.execute(
                update(cases).where(cases.c.id == batch[0].id)
                .values(due_at=due, version=cases.c.version + 1)
            )

    monkeypatch.setattr(worker_module.Worker, "_run_steps", staticmethod(advance_then_wake))
    worker = app.worker(ManualClock(moment + HOUR), shard=0, shards=2)
    mine = [c for c in before.values() if c["due_at"] is not None and c["event_id"] % 2 == 0]
    assert mine, "no case of this shard is due"
    steps = count(app, case_transitions)
    with pytest.raises(worker_module.ClaimLost, match="cases were written meanwhile"):
        worker.advance_cases(moment + HOUR)
    assert count(app, case_transitions) == steps
    after = {c["id"]: c for c in rows(app.engine, cases)}
    assert after[woken[0]]["version"] == before[woken[0]]["version"] + 1
    for case_id, row in after.items():
        if case_id != woken[0]:
            assert row == before[case_id]
