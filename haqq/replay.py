"""Replay a synthetic year through the pipeline on a simulated clock.

The clock moves in ticks; at each tick the registry events of that tick are taken in and the
workers run until nothing is due. Steps are stamped with the simulated moment each case became
due, so reported times are simulated as well as wall-clock. With several workers, worker
processes read the simulated time from the store, and the coordinator runs the payment office
until no work is due before moving the clock.
"""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, delete, insert, select, update

from haqq.adapters.store import db, repository
from haqq.adapters.store.schema import (
    accounts,
    sim_clock,
)
from haqq.adapters.turns import TurnTotals
from haqq.bootstrap import Haqq, ManualClock, Settings, build
from haqq.country import iter_events
from haqq.domain.events import parse_event
from haqq.pipeline import intake, runs
from haqq.pipeline.work import BAKU, local_date
from haqq.pipeline.worker import Role

DRAIN = timedelta(days=45)


@dataclass
class ReplayResult:
    events: int
    wall_seconds: float
    ticks: int
    workers: int
    #: Turns at the SQLite file's write lock during the replay, every process's summed (None:
    #: PostgreSQL). Turns are exclusive, so the seconds held never exceed the replay's.
    write_turns: TurnTotals | None = None


class DbClock:
    """The simulated time as the replay coordinator last set it in the store."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._finished: bool | None = None

    def now(self) -> datetime:
        with self.engine.connect().execution_options(read_only=True) as conn:
            row = conn.execute(select(sim_clock.c.now, sim_clock.c.drain).where(sim_clock.c.id == 1)).one()
        self._finished = bool(row.drain)
        return row.now  # type: ignore[no-any-return]

    def finished(self) -> bool:
        """Whether the replay is over, as of the last reading of the clock."""
        if self._finished is None:
            self.now()
        return bool(self._finished)


def _set_clock(engine: Engine, now: datetime, finished: bool = False) -> None:
    with engine.begin() as conn:
        updated = conn.execute(update(sim_clock).where(sim_clock.c.id == 1).values(now=now, drain=finished))
        if updated.rowcount == 0:
            conn.execute(insert(sim_clock).values(id=1, now=now, drain=finished))


def _worker_process(
    settings: Settings, batch_size: int, shard: int, shards: int, signals: _Signals, role: Role
) -> None:
    app = build(settings)
    clock = DbClock(app.engine)
    worker = app.worker(clock, batch_size, shard=shard, shards=shards, role=role)
    moved = signals.moved[shard]

    def idle(seconds: float) -> None:
        # Tell the coordinator to look, then wait for the clock to move (or the pause to end).
        signals.idle.set()
        if moved.wait(seconds):
            moved.clear()

    try:
        worker.run_forever(stop=clock.finished, idle=idle)
    finally:
        turns = db.write_turns(app.engine)
        if turns is not None:
            signals.turns[3 * shard: 3 * shard + 3] = [turns.turns, turns.waited, turns.held]


@dataclass
class _Signals:
    """Events between the coordinator and its worker processes, so neither sleeps on: a worker
    with nothing to do tells the coordinator to look, and the coordinator wakes each worker when
    it moves the clock. Either still looks at the store after a short pause without them."""

    idle: Any
    moved: list[Any]
    #: Each worker's turns at the write lock when it ends: (turns, waited, held) at 3 × shard.
    turns: Any


def due_work(app: Haqq, now: datetime) -> bool:
    """Whether any work is due at ``now`` (committed state: claimed rows still count)."""
    office = app.office() if app.settings.payments == "runs" else None
    daily = runs.daily_label(local_date(now)) if office is not None else None
    with app.engine.connect().execution_options(read_only=True) as conn:
        due = repository.due_kinds(conn, now, local_date(now).strftime("%Y-%m"), daily) - {"payroll"}
        if office is not None and office.automatic is None:
            due -= {"payments", "approved_runs"}  # people make and send the runs
        if due - {"account_answers", "bank_reports"}:
            return True
        sent = []
        if due:
            sent = [k for (k,) in conn.execute(select(accounts.c.request_key).where(*repository.account_status("sent")))]
    # Answers the outside world holds for haqq: the simulated bank's and citizens'.
    if sent and any(a.status != "pending" for a in app.bank.account_answers(sent, as_of=now).values()):
        return True
    if "bank_reports" in due and app.bank.ready_files(as_of=now):
        return True
    return bool(app.sms.inbound(as_of=now, limit=1))


def _stored_clock(engine: Engine) -> tuple[datetime, bool] | None:
    with engine.connect() as conn:
        row = conn.execute(select(sim_clock.c.now, sim_clock.c.drain).where(sim_clock.c.id == 1)).first()
    return None if row is None else (row.now, bool(row.drain))


def replay(
    app: Haqq,
    *,
    year: int,
    workers: int = 1,
    tick: timedelta = timedelta(days=1),
    batch_size: int = 1000,
    progress: Callable[[int, int], None] | None = None,
) -> ReplayResult:
    """Replay ``year`` of the country's events; returns when every due piece of work is done.

    Resumable: the simulated clock is kept in the store, so a replay killed at any moment and
    started again picks up at the tick it was in (taking that tick's events in again is
    harmless: intake is idempotent).
    """
    start = datetime(year, 1, 1, tzinfo=BAKU)
    end = datetime(year + 1, 1, 1, tzinfo=BAKU)
    stop_at = end + DRAIN
    ticks = int((stop_at - start) / tick) + 1
    first = 0
    stored = _stored_clock(app.engine)
    if stored is not None:
        moment, finished = stored
        if finished:
            return ReplayResult(0, 0.0, 0, workers)
        first = max(0, int((moment - start) / tick) - 1)
    begin_at = start + tick * first
    clock = ManualClock(begin_at)
    _set_clock(app.engine, begin_at)
    processes: list[Any] = []
    signals: _Signals | None = None
    # With several workers on SQLite, this process runs the payment office while they share
    # the rest (on PostgreSQL, whichever worker is free takes the office's lock).
    office = workers > 1 and app.settings.payments == "runs" and app.engine.dialect.name == "sqlite"
    if workers > 1:
        ctx = multiprocessing.get_context("spawn")
        signals = _Signals(ctx.Event(), [ctx.Event() for _ in range(workers)], ctx.Array("d", 3 * workers))
        processes = [
            ctx.Process(
                target=_worker_process,
                args=(app.settings, batch_size, i, workers, signals, "cases" if office else "all"),
                daemon=True,
            )
            for i in range(workers)
        ]
        for p in processes:
            p.start()
    worker = app.worker(clock, batch_size, role="office" if office else "all")
    source = iter_events(app.settings.country, start=begin_at, end=end)
    pending: list[dict[str, Any]] = []
    taken = 0
    began = time.perf_counter()
    turns_before = db.write_turns(app.engine)
    try:
        for n in range(first, ticks):
            moment = min(start + tick * (n + 1), stop_at)
            batch: list[dict[str, Any]] = []
            while True:
                if not pending:
                    pending = next(source, [])
                    if not pending:
                        break
                cut = next(
                    (i for i, e in enumerate(pending) if datetime.fromisoformat(e["occurred_at"]) > moment),
                    len(pending),
                )
                batch.extend(pending[:cut])
                pending = pending[cut:]
                if pending:
                    break
            if batch:
                parsed = [parse_event(raw) for raw in batch]
                with app.engine.begin() as conn:
                    # In simulated time the registry tells haqq at the moment of the event.
                    intake.store(conn, parsed, received_at=None, wall=app.wall())
                taken += len(parsed)
            clock.set(moment)
            _set_clock(app.engine, moment)
            if signals is not None:
                for moved in signals.moved:
                    moved.set()
                # Look again when a worker runs out of work (it says so), or after a pause
                # growing while the workers are busy: each look costs the store a query and
                # the workers a share of the two cores.
                pause = 0.005
                while due_work(app, moment):
                    if not all(p.is_alive() for p in processes):
                        raise RuntimeError("a worker process died")
                    if office and worker.run_once():
                        pause = 0.005
                        continue
                    if signals.idle.wait(pause):
                        signals.idle.clear()
                    pause = min(pause * 1.5, 0.25)
            else:
                worker.run_until_idle()
            if progress:
                progress(n + 1, ticks)
        _set_clock(app.engine, clock.now(), finished=True)
    finally:
        if processes:
            _set_clock(app.engine, clock.now(), finished=True)
            for p in processes:
                p.join(timeout=30)
    wall = time.perf_counter() - began
    turns = db.write_turns(app.engine)
    if turns is not None and turns_before is not None:
        turns = turns - turns_before
        if signals is not None:
            got = list(signals.turns)
            for i in range(workers):
                turns = turns + TurnTotals(int(got[3 * i]), got[3 * i + 1], got[3 * i + 2])
    return ReplayResult(taken, wall, ticks, workers, turns)


def reset_store(app: Haqq) -> None:
    """Empty every table (for benchmarks and demos that start from nothing)."""
    from haqq.adapters.store.schema import metadata

    tables = list(reversed(metadata.sorted_tables))
    with app.engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            # One TRUNCATE: a DELETE checks every row's foreign keys against tables just
            # emptied but not yet vacuumed, which grows with the square of the rows.
            conn.exec_driver_sql(f"TRUNCATE {', '.join(t.name for t in tables)}")
            return
        for table in tables:
            conn.execute(delete(table))


__all__ = ["DbClock", "ReplayResult", "due_work", "replay", "reset_store"]
