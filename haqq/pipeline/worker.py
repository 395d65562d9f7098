"""The worker: claim a batch, run the steps on it in memory, write it in one transaction.

Each unit of work (a batch of events, a batch of cases, each outbox sender) is its own
transaction: a crash at any point loses nothing (the claim is rolled back) and duplicates
nothing (effects carry idempotency keys). Several workers on PostgreSQL share the load through
``FOR UPDATE SKIP LOCKED``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import structlog
from sqlalchemy import Engine, bindparam, select, update
from sqlalchemy.exc import IntegrityError, OperationalError

from haqq.adapters.store import repository
from haqq.adapters.store.schema import case_transitions, cases, events, payroll_runs
from haqq.domain.cases import CaseState
from haqq.domain.events import EventType
from haqq.pipeline import account, assign, consent, dispatch, gather, notify, pay, payroll, triggers, verify
from haqq.pipeline.work import CaseWork, StepContext, Writes, local_date
from haqq.ports import Bank, Clock, Institutions, SmsGateway
from haqq.rules.catalogue import Catalogue

log = structlog.get_logger("haqq.worker")

S = CaseState
#: The steps in pipeline order; one pass carries a case as far as it can go now.
STEPS: Sequence[tuple[frozenset[CaseState], Callable[[Sequence[CaseWork], StepContext], None]]] = (
    (frozenset({S.DETECTED, S.GATHERING}), gather.run),
    (frozenset({S.VERIFYING}), verify.run),
    (frozenset({S.DECIDED}), assign.run),
    (frozenset({S.AWAITING_CONSENT}), consent.run),
    (frozenset({S.ASSIGNED, S.ACCOUNT_REQUESTED}), account.run),
    (frozenset({S.ACCOUNT_READY}), pay.run),
    (frozenset({S.PAYMENT_SCHEDULED}), notify.run),
)


@dataclass
class Worker:
    engine: Engine
    catalogue: Catalogue
    institutions: Institutions
    bank: Bank
    sms: SmsGateway
    clock: Clock
    wall: Callable[[], datetime]
    batch_size: int = 1000
    done: dict[str, int] = field(default_factory=dict)

    def _context(self, now: datetime, conn: object) -> StepContext:
        return StepContext(
            catalogue=self.catalogue,
            institutions=self.institutions,
            bank=self.bank,
            sms=self.sms,
            now=now,
            wall=self.wall,
            writes=Writes(),
            lookup=repository.Lookup(conn),  # type: ignore[arg-type]
        )

    def _count(self, name: str, n: int) -> int:
        if n:
            self.done[name] = self.done.get(name, 0) + n
        return n

    # --- units of work ---

    def trigger_events(self, now: datetime) -> int:
        with self.engine.begin() as conn:
            stmt = (
                select(events.c.id, events.c.type, events.c.fin, events.c.occurred_at, events.c.payload)
                .where(events.c.status == "received", events.c.occurred_at <= now)
                .order_by(events.c.occurred_at, events.c.id)
                .limit(self.batch_size)
            )
            rows = conn.execute(repository._locked(stmt, conn, events)).all()
            if not rows:
                return 0
            claimed = [
                triggers.ClaimedEvent(r.id, EventType(r.type), r.fin, r.occurred_at, r.payload)
                for r in rows
            ]
            ctx = self._context(now, conn)
            new_cases, _ = triggers.run(claimed, ctx)
            repository.insert_ignore(conn, cases, new_cases, ["id"])
            if ctx.writes.transitions:
                conn.execute(case_transitions.insert(), ctx.writes.transitions)
            repository.flush(conn, [], ctx.writes, now)
            started = {c["event_id"] for c in new_cases}
            conn.execute(
                update(events)
                .where(events.c.id == bindparam("b_id"))
                .values(status=bindparam("b_status"), processed_at=bindparam("b_at")),
                [
                    {"b_id": e.id, "b_status": "triggered" if e.id in started else "no_program",
                     "b_at": e.occurred_at}
                    for e in claimed
                ],
            )
        return self._count("events", len(rows))

    def advance_cases(self, now: datetime) -> int:
        with self.engine.begin() as conn:
            batch = repository.claim_cases(conn, self.catalogue, now, self.batch_size)
            if not batch:
                return 0
            ctx = self._context(now, conn)
            for _ in range(2):
                for states, step in STEPS:
                    group = [
                        c for c in batch
                        if c.state in states and c.due_at is not None and c.due_at <= now
                    ]
                    if group:
                        step(group, ctx)
            repository.flush(conn, batch, ctx.writes, now)
        return self._count("case_batches", len(batch))

    def dispatch(self, now: datetime) -> int:
        n = 0
        with self.engine.begin() as conn:
            n += self._count("account_requests", dispatch.send_account_requests(conn, self.bank, self.batch_size))
        with self.engine.begin() as conn:
            n += self._count("account_answers", dispatch.take_account_answers(conn, self.bank, now, self.batch_size * 5))
        with self.engine.begin() as conn:
            n += self._count("payments", dispatch.send_payments(conn, self.bank, now, self.wall, self.batch_size * 5))
        with self.engine.begin() as conn:
            n += self._count("sms", dispatch.send_sms(conn, self.sms, now, self.wall, self.batch_size * 5))
        with self.engine.begin() as conn:
            acks = dispatch.fetch_inbound(conn, self.sms, now, self.batch_size * 5)
        if acks:
            self.sms.ack(acks)
        with self.engine.begin() as conn:
            n += self._count("replies", dispatch.apply_replies(conn, self.batch_size * 5))
        return n

    def run_payroll(self, now: datetime) -> int:
        period = local_date(now).replace(day=1)
        with self.engine.connect() as conn:
            ran = conn.execute(select(payroll_runs.c.period).where(payroll_runs.c.period == period.strftime("%Y-%m"))).first()
        if ran is not None:
            return 0
        with self.engine.begin() as conn:
            return self._count("payroll", payroll.run_month(conn, period, now) + 1)

    def run_once(self) -> int:
        """One round of every kind of work due now; returns how much was done."""
        now = self.clock.now()
        n = 0
        for unit in (self.trigger_events, self.advance_cases, self.dispatch):
            try:
                n += unit(now)
            except (IntegrityError, OperationalError) as exc:
                # Another worker won a race on a unique key, or the database was busy: nothing
                # of this unit was written; the next round sees the winner's rows.
                log.warning("unit rolled back", unit=unit.__name__, error=str(exc).splitlines()[0])
                n += 1
        n += self.run_payroll(now)
        return n

    def run_until_idle(self) -> int:
        total = 0
        while (n := self.run_once()) > 0:
            total += n
        return total

    def run_forever(self, *, stop: Callable[[], bool], idle_sleep: float = 0.005) -> None:
        """Work until ``stop()`` says so, sleeping briefly when there is nothing to do."""
        while not stop():
            if self.run_once() == 0:
                time.sleep(idle_sleep)
