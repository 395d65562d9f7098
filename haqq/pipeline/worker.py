"""The worker: claim a batch, run the steps on it in memory, write it in one transaction.

Each unit of work (a batch of events, a batch of cases, a round of the outbox) is its own
transaction: a crash at any point loses nothing (the claim is rolled back) and duplicates
nothing (effects carry idempotency keys). Several workers on PostgreSQL share the load through
``FOR UPDATE SKIP LOCKED``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import structlog
from sqlalchemy import Connection, Engine, literal, select, text, tuple_
from sqlalchemy.exc import IntegrityError, OperationalError

from haqq.adapters.store import bulk, messagelog, repository
from haqq.adapters.store.repository import ClaimLost
from haqq.adapters.store.schema import cases, events
from haqq.domain.cases import CaseState
from haqq.domain.events import EventType
from haqq.pipeline import (
    account,
    assign,
    bank_reports,
    consent,
    dispatch,
    gather,
    notify,
    pay,
    payroll,
    runs,
    texting,
    triggers,
    verify,
)
from haqq.pipeline.exchanges import LoggedBank, LoggedSms
from haqq.pipeline.work import CaseWork, StepContext, Writes, local_date
from haqq.ports import Bank, Clock, Exchange, Institutions, SmsGateway
from haqq.rules.catalogue import Catalogue
from haqq.rules.messages import MessageCatalogue, default_messages

log = structlog.get_logger("haqq.worker")

S = CaseState
Role = Literal["all", "cases", "office"]
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


def _office_lock(conn: Connection, what: str = "haqq payment office") -> bool:
    """On PostgreSQL, one worker at a time does the payment office's work (a transaction lock);
    the others leave it. On SQLite only shard 0 does it. ``what`` names other such work (the
    SMS gateway's inbox)."""
    if conn.dialect.name != "postgresql":
        return True
    return bool(conn.execute(text("SELECT pg_try_advisory_xact_lock(hashtext(:what))"), {"what": what}).scalar_one())


#: The payment office's round on PostgreSQL: a session lock, held from the runs to the reports.
OFFICE_ROUND = "haqq payment office round"


@contextmanager
def _office_round(engine: Engine) -> Iterator[bool]:
    """Whether this worker has the payment office for a whole round (yields False when another
    has it). On PostgreSQL a session lock held across the round's transactions and the bank's
    calls between them, so two workers never fetch, read and apply the same bank reports (the
    second would be refused as a duplicate). On SQLite one process is the office anyway."""
    if engine.dialect.name != "postgresql":
        yield True
        return
    with engine.connect() as conn:
        key = {"what": OFFICE_ROUND}
        mine = bool(conn.execute(text("SELECT pg_try_advisory_lock(hashtext(:what))"), key).scalar_one())
        conn.commit()
        try:
            yield mine
        finally:
            if mine:
                conn.execute(text("SELECT pg_advisory_unlock(hashtext(:what))"), key)
                conn.commit()


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
    #: How often in a row a unit may roll back (a lost race, a busy database) before giving up.
    max_retries: int = 8
    #: This worker's share of the work on SQLite, where workers cannot skip each other's locked
    #: rows: the events (and their cases) and outbox rows whose id is ``shard`` modulo
    #: ``shards``, the account requests by FIN. A worker done with its own events and cases
    #: helps with the other shards' (newest first; the guarded writes settle a collision).
    shard: int = 0
    shards: int = 1
    #: The payment office: payments go to the bank in runs, as ISO 20022 files. None: each
    #: due payment is transferred directly (the bank's batch transfer channel).
    office: runs.Office | None = None
    #: What this worker does: ``all`` of it (alone, or shard 0 on SQLite); ``cases`` (the
    #: events, cases and outbox of its shard: the payment office is another process's);
    #: ``office`` (only the payment office's round, for workers that each do ``cases``).
    role: Role = "all"
    #: What the citizen is told, and how the SMS go out (quiet hours, rate, retries).
    messages: MessageCatalogue = field(default_factory=default_messages)
    sms_policy: texting.SmsPolicy = field(default_factory=texting.SmsPolicy)
    done: dict[str, int] = field(default_factory=dict)
    _failures: dict[str, int] = field(default_factory=dict)
    #: Exchanges with the bank and the SMS gateway not yet in the message log.
    _exchanges: list[Exchange] = field(default_factory=list)
    #: Receipts come before their parts are recorded (another worker sent them): they wait.
    _unplaced: texting.Unplaced = field(default_factory=texting.Unplaced)

    def __post_init__(self) -> None:
        self.bank = LoggedBank(self.bank, self._exchanges, self.wall)
        self.sms = LoggedSms(self.sms, self._exchanges, self.wall)
        self._rate = texting.RateLimit(self.sms_policy.rate / max(self.shards, 1))

    def _drain(self) -> list[Exchange]:
        """The exchanges noted since the last drain (for the message log)."""
        taken = list(self._exchanges)
        self._exchanges.clear()
        return taken

    @property
    def _outside_lock(self) -> bool:
        """Whether this worker works on its shard outside the write lock (SQLite, several
        workers) rather than in one transaction from claim to writes."""
        return self.shards > 1 and self.engine.dialect.name == "sqlite"

    def _context(self, now: datetime, conn: Connection) -> StepContext:
        return StepContext(
            catalogue=self.catalogue,
            institutions=self.institutions,
            bank=self.bank,
            sms=self.sms,
            now=now,
            wall=self.wall,
            writes=Writes(),
            lookup=repository.Lookup(conn),
            messages=self.messages,
            quiet=self.sms_policy.quiet,
        )

    def _count(self, name: str, n: int) -> int:
        if n:
            self.done[name] = self.done.get(name, 0) + n
        return n

    # --- units of work ---

    def trigger_events(self, now: datetime) -> int:
        """Start the cases of a batch of events and carry them as far as they go now.

        New cases are written once, in the state they reached, with every step recorded.
        On PostgreSQL the claim (``FOR UPDATE SKIP LOCKED``), the work and the writes are one
        transaction. On SQLite with several workers, a worker takes only the events of its
        shard and works on them outside the write lock (which SQLite holds for the whole
        database); the writes then go in one short transaction that first checks the events are
        still unclaimed, so the workers' work overlaps and only their writes take turns.
        """
        if self._outside_lock:
            with self.engine.connect().execution_options(read_only=True) as reading, reading.begin():
                claimed = self._claim_events(reading, now) or self._claim_events(reading, now, others=True)
                if not claimed:
                    return 0
                ctx = self._context(now, reading)
                new_cases = self._start_cases(claimed, ctx, now)
            write = self._prepare_started(claimed, new_cases, ctx, now, "sqlite")
            with self.engine.begin() as conn:
                write(conn)
            return self._count("events", len(claimed))
        with self.engine.begin() as conn:
            claimed = self._claim_events(conn, now)
            if not claimed:
                return 0
            ctx = self._context(now, conn)
            new_cases = self._start_cases(claimed, ctx, now)
            self._prepare_started(claimed, new_cases, ctx, now, conn.dialect.name)(conn)
        return self._count("events", len(claimed))

    def _claim_events(
        self, conn: Connection, now: datetime, *, others: bool = False
    ) -> dict[int, triggers.ClaimedEvent]:
        """Due events, oldest first; on SQLite with several workers those of this worker's
        shard, or with ``others`` (this shard done) the other shards', newest first and beyond
        their owners' next batch."""
        order = (events.c.received_at.desc(), events.c.id.desc()) if others else (
            events.c.received_at, events.c.id)
        stmt = (
            select(events.c.id, events.c.type, events.c.fin, events.c.occurred_at,
                   events.c.payload, events.c.received_at)
            .where(events.c.status == "received", events.c.received_at <= now)
            .order_by(*order)
            .limit(self.batch_size)
        )
        if self._outside_lock:
            mine = events.c.id % self.shards == self.shard
            stmt = stmt.where(~mine if others else mine)
            if others:  # beyond the owners' next batch, as for cases
                order_key = tuple_(events.c.received_at, events.c.id)
                boundary = conn.execute(
                    select(events.c.received_at, events.c.id)
                    .where(events.c.status == "received", events.c.received_at <= now, ~mine)
                    .order_by(events.c.received_at, events.c.id).offset(self.batch_size - 1).limit(1)
                ).first()
                if boundary is None:
                    return {}
                stmt = stmt.where(order_key > tuple_(
                    literal(boundary.received_at, events.c.received_at.type),
                    literal(boundary.id, events.c.id.type),
                ))
        rows = conn.execute(repository.skip_locked(stmt, conn, events)).all()
        return {
            r.id: triggers.ClaimedEvent(
                r.id, EventType(r.type), r.fin, r.occurred_at, r.payload, r.received_at
            )
            for r in rows
        }

    def _start_cases(
        self, claimed: dict[int, triggers.ClaimedEvent], ctx: StepContext, now: datetime
    ) -> list[dict[str, Any]]:
        """The new cases of the claimed events as rows, advanced as far as they go now."""
        new_cases = triggers.run(list(claimed.values()), ctx)
        batch = [
            CaseWork(
                id=row["id"],
                program=self.catalogue[row["program_id"]],
                state=CaseState(row["state"]),
                due_at=row["due_at"],
                event_id=row["event_id"],
                event_type=claimed[row["event_id"]].type,
                occurred_at=claimed[row["event_id"]].occurred_at,
                subject_fin=row["subject_fin"],
                beneficiary_fin=row["beneficiary_fin"],
                created_at=row["created_at"],
                review_reason=row["review_reason"],
            )
            for row in new_cases
        ]
        self._advance(batch, ctx, now)
        for row, case in zip(new_cases, batch, strict=True):
            row.update(
                state=case.state.value, due_at=case.due_at, facts=case.facts,
                review_reason=case.review_reason, consent_answer=case.consent_answer,
                reminders=case.reminders, attempts=case.attempts, updated_at=now,
            )
        return new_cases

    @staticmethod
    def _prepare_started(
        claimed: dict[int, triggers.ClaimedEvent],
        new_cases: list[dict[str, Any]],
        ctx: StepContext,
        now: datetime,
        dialect: str,
    ) -> Callable[[Connection], None]:
        """The writes of a batch of events, converted: mark the events taken (only those still
        waiting, else nothing is written), then write their cases and all the cases produced."""
        started = {c["event_id"] for c in new_cases}
        take = bulk.prepare_update(
            dialect,
            events,
            "id",
            [
                {"status": "triggered" if e.id in started else "no_program",
                 "processed_at": e.received_at, "id": e.id}
                for e in claimed.values()
            ],
            only_if={"status": "received"},
        )
        insert_cases = bulk.prepare_insert(dialect, cases, new_cases)
        rest = repository.prepare_flush(dialect, [], ctx.writes, now)

        def write(conn: Connection) -> None:
            taken = take(conn)
            if taken != len(claimed):
                raise ClaimLost(f"{len(claimed) - taken} of {len(claimed)} events were taken meanwhile")
            insert_cases(conn)
            rest(conn)

        return write

    def _advance(self, batch: Sequence[CaseWork], ctx: StepContext, now: datetime) -> None:
        """Run every step, in pipeline order, on the cases of the batch that are due; the
        bank's answers to the steps go to the message log with the batch's writes."""
        self._drain()  # what a unit that rolled back noted is not in the log: it did not happen
        self._run_steps(batch, ctx, now)
        ctx.writes.messages.extend(self._drain())

    @staticmethod
    def _run_steps(batch: Sequence[CaseWork], ctx: StepContext, now: datetime) -> None:
        for _ in range(2):
            for states, step in STEPS:
                group = [
                    c for c in batch
                    if c.state in states and c.due_at is not None and c.due_at <= now
                ]
                if group:
                    ctx.stamp = ctx.wall()
                    step(group, ctx)

    def advance_cases(self, now: datetime) -> int:
        """Carry a batch of due cases as far as they go now (on SQLite with several workers,
        this worker's shard, worked on outside the write lock as for events)."""
        if self._outside_lock:
            with self.engine.connect().execution_options(read_only=True) as reading, reading.begin():
                shard = (self.shard, self.shards)
                batch = repository.claim_cases(
                    reading, self.catalogue, now, self.batch_size, shard
                ) or repository.claim_cases(
                    reading, self.catalogue, now, self.batch_size, shard, others=True
                )
                if not batch:
                    return 0
                ctx = self._context(now, reading)
                self._advance(batch, ctx, now)
            write = repository.prepare_flush("sqlite", batch, ctx.writes, now)
            with self.engine.begin() as conn:
                write(conn)
            return self._count("case_batches", len(batch))
        with self.engine.begin() as conn:
            batch = repository.claim_cases(conn, self.catalogue, now, self.batch_size)
            if not batch:
                return 0
            ctx = self._context(now, conn)
            self._advance(batch, ctx, now)
            repository.flush(conn, batch, ctx.writes, now)
        return self._count("case_batches", len(batch))

    def pending(self, now: datetime) -> set[str]:
        """Which kinds of work are due at ``now``: one cheap read, so an idle round costs little."""
        daily = runs.daily_label(local_date(now)) if self.office is not None else None
        with self.engine.connect().execution_options(read_only=True) as conn:
            due = repository.due_kinds(conn, now, local_date(now).strftime("%Y-%m"), daily)
        if due & {"account_requests", "account_answers"}:
            due.add("accounts")
        if self.office is not None and self.office.automatic is None:
            due -= {"payments", "approved_runs"}  # people make and send the runs
        if "bank_reports" in due and self.bank.ready_files(as_of=now):
            due.add("bank_files")
        # One worker takes in what the gateway holds (shard 0 on SQLite; on PostgreSQL whoever
        # holds the inbox's lock): several would fetch the same replies and receipts.
        if not (self._outside_lock and self.shard != 0) and (
            self.sms.inbound(as_of=now, limit=1) or self.sms.receipts(as_of=now, limit=1)
        ):
            due.add("inbound")
        return due

    def dispatch(self, now: datetime, due: set[str]) -> int:
        """Send the due outbox rows and take in answers, in one transaction.

        On SQLite with several workers, each sends the account requests, payments and SMS of
        its shard outside the write lock (the keys make a repeat harmless), then records the
        answers, with the rest of the round, in one short turn.
        """
        n = 0
        acks: list[str] = []
        size = self.batch_size * 5
        sent: list[Callable[[Connection, datetime], int]] = []
        inbox: texting.Inbox | None = None
        self._drain()
        if self._outside_lock:
            sent = self._send_outside(now, due, size)
            due = due - {"payments", "sms", "accounts"}
            if "inbound" in due:  # what the gateway holds, taken before the turn
                with self.engine.connect().execution_options(read_only=True) as reading, reading.begin():
                    inbox = texting.collect(self.sms, now, size, reading)
        with self.engine.begin() as conn:
            at = self.wall()
            for record in sent:
                n += record(conn, at)
            if "accounts" in due:
                n += self._count("account_requests", dispatch.send_account_requests(conn, self.bank, size))
                n += self._count("account_answers", dispatch.take_account_answers(conn, self.bank, now, size))
            if "payments" in due and self.office is None:
                n += self._count("payments", dispatch.send_payments(conn, self.bank, now, self.wall, size))
            if "sms" in due:
                rows = texting.due(conn, now, self._rate.take(size))
                offered = texting.submit(self.sms, rows)
                n += self._count("sms", self._record_sms(conn, rows, offered, now))
            if "inbound" in due and _office_lock(conn, "haqq sms inbox"):
                acks = texting.fetch(conn, self.sms, now, size, inbox, self._unplaced)
                n += len(acks)
            if acks or "replies" in due:
                n += self._count("replies", dispatch.apply_replies(
                    conn, size, now=at, quiet=self.sms_policy.quiet, messages=self.messages))
            if acks or "receipts" in due:
                n += self._count("receipts", texting.apply_receipts(conn, size))
            messagelog.append(conn, self._drain())
        if acks:
            self.sms.ack(acks)
        return n

    def _send_outside(
        self, now: datetime, due: set[str], size: int
    ) -> list[Callable[[Connection, datetime], int]]:
        """Read this shard's due payments and SMS, send them; returns how to record the answers."""
        shard = (self.shard, self.shards)
        accounts = "accounts" in due
        with self.engine.connect().execution_options(read_only=True) as reading, reading.begin():
            requested = dispatch.requested_accounts(reading, size, shard) if accounts else []
            awaited = dispatch.awaited_accounts(reading, size, shard) if accounts else []
            direct = "payments" in due and self.office is None
            pay = dispatch.due_payments(reading, now, size, shard) if direct else []
            texts = texting.due(reading, now, self._rate.take(size), shard) if "sms" in due else []
        dispatch.request_accounts(self.bank, requested)
        answers = dispatch.ask_bank(self.bank, awaited, now)
        paid = dispatch.transfer(self.bank, pay)
        submitted = texting.submit(self.sms, texts)
        return [
            lambda conn, at: self._count("account_requests", dispatch.record_requests(conn, requested)),
            lambda conn, at: self._count(
                "account_answers", dispatch.record_answers(conn, awaited, answers, now)
            ),
            lambda conn, at: self._count("payments", dispatch.record_payments(conn, pay, paid, at)),
            lambda conn, at: self._count("sms", self._record_sms(conn, texts, submitted, now, at)),
        ]

    def _record_sms(
        self, conn: Connection, rows: Sequence[Any], offered: texting.Offered, now: datetime,
        at: datetime | None = None,
    ) -> int:
        return texting.record(conn, rows, offered, gateway=self.sms.name, now=now,
                              at=at or self.wall(), policy=self.sms_policy)

    def run_payroll(self, now: datetime) -> int:
        with self.engine.begin() as conn:
            made = payroll.run_month(conn, local_date(now).replace(day=1), now)
        return 0 if made is None else self._count("payroll", made + 1)

    def run_office(self, now: datetime, due: set[str]) -> int:
        """The payment office's round: today's runs (made, approved and sent when the office is
        automatic) and the bank's reports taken in. One worker does it: with several, the
        parent process's (role ``office``) while they do the cases; else shard 0 on SQLite,
        whoever holds the office's lock on PostgreSQL."""
        if self.office is None or self.role == "cases" or (self._outside_lock and self.shard != 0):
            return 0
        with _office_round(self.engine) as mine:
            return self._office_work(self.office, now, due) if mine else 0

    def _office_work(self, office: runs.Office, now: datetime, due: set[str]) -> int:
        acks: list[str] = []
        n = 0
        with self.engine.begin() as conn:
            if not _office_lock(conn):
                return 0
            at = self.wall()
            if "payments" in due and office.automatic and not runs.daily_run_made(conn, local_date(now)):
                for run in runs.make_runs(conn, now, at, by=office.automatic, office=office):
                    for k in range(run.needed):
                        runs.approve(conn, run.id, by=office.automatic + ("" if k == 0 else f" #{k + 1}"), now=at)
                    n += self._count("payment_runs", 1)
        if office.automatic:
            n += self._send_runs(office.automatic, office, now)
        # The files go to the bank once the runs are committed (an outbox: a file not yet
        # delivered is delivered again, under its name, until the bank has it).
        n += self._count("bank_files_sent", self._deliver())
        # The bank's reports are fetched and read before the write transaction, which only
        # applies them.
        reports = [(f, bank_reports.read_safely(f.content)) for f in self.bank.files(as_of=now)] if (
            "bank_files" in due) else []
        with self.engine.begin() as conn:
            at = self.wall()
            if reports and _office_lock(conn):
                for f, got in reports:
                    acks.append(f.name)
                    taken = bank_reports.take(conn, f, bank=self.bank.name, now=at, got=got)
                    if isinstance(taken, bank_reports.ImportResult):
                        n += self._count("bank_reports", taken.accepted + taken.rejected + taken.settled)
                    n += 1  # a report taken in, or kept as refused: work done either way
            messagelog.append(conn, self._drain())
        if acks:
            self.bank.ack_files(acks)
        return n

    def _send_runs(self, by: str, office: runs.Office, now: datetime) -> int:
        """Send the approved runs (those just made, and any a crash left approved), one by one:
        a run's files are built outside the write lock (the XML of thousands of payments, kept
        compressed), then sent in a short turn that first checks the run still holds the very
        payments they carry (else :class:`runs.RunChanged`: the next round builds them again)."""
        with self.engine.connect().execution_options(read_only=True) as reading, reading.begin():
            approved = runs.approved_unsent(reading)
        n = 0
        for run_id in approved:
            with self.engine.connect().execution_options(read_only=True) as reading, reading.begin():
                files = runs.build_files(reading, run_id, now, office)
            with self.engine.begin() as conn:
                if not _office_lock(conn):
                    break
                runs.send(conn, run_id, by=by, now=now, office=office, files=files)
            n += self._count("payments", sum(f.transactions for f in files))
        return n

    def _deliver(self) -> int:
        return runs.deliver(self.engine, self.bank, self.wall,
                            lambda conn: messagelog.append(conn, self._drain()))

    def run_once(self) -> int:
        """One round of every kind of work due now; returns how much was done."""
        now = self.clock.now()
        due = self.pending(now)
        units: list[tuple[str, set[str], Callable[[], int]]] = [
            ("events", {"events"}, lambda: self.trigger_events(now)),
            ("cases", {"cases"}, lambda: self.advance_cases(now)),
            ("dispatch", {"accounts", "payments", "sms", "inbound", "replies", "receipts"}, lambda: self.dispatch(now, due)),
            ("payroll", {"payroll"}, lambda: self.run_payroll(now)),
            ("office", {"payments", "approved_runs", "bank_files", "deliveries"} if self.office else set(),
             lambda: self.run_office(now, due)),
        ]
        if self.role == "office":
            units = [u for u in units if u[0] == "office"]
        elif self.role == "cases" or (self._outside_lock and self.shard != 0):
            units = [u for u in units if u[0] != "office"]
        # What one unit creates is due for the next at once: new cases after events, outbox
        # rows after cases. Saying so saves a round per step.
        follows = {"events": {"cases"}, "cases": {"accounts", "payments", "sms"}}
        n = 0
        for name, wanted, unit in units:
            if not due & wanted:
                continue
            try:
                done = unit()
                n += done
                if done:
                    due |= follows.get(name, set())
                self._failures.pop(name, None)
            except (IntegrityError, OperationalError, ClaimLost) as exc:
                # Another worker won a race on a unique key, or the database was busy: nothing
                # of this unit was written; the next round sees the winner's rows.
                failures = self._failures[name] = self._failures.get(name, 0) + 1
                if failures > self.max_retries:
                    raise
                log.warning("unit rolled back", unit=name, attempt=failures, error=str(exc).splitlines()[0])
                time.sleep(0.01 * failures)
                n += 1
        return n

    def run_until_idle(self) -> int:
        total = 0
        while (n := self.run_once()) > 0:
            total += n
        return total

    def run_forever(
        self,
        *,
        stop: Callable[[], bool],
        idle_sleep: float = 0.005,
        max_sleep: float = 0.05,
        idle: Callable[[float], object] = time.sleep,
    ) -> None:
        """Work until ``stop()`` says so. With nothing to do (or only other workers' shards),
        wait, longer each idle round up to ``max_sleep``: each look costs the store a query.

        ``idle(seconds)`` waits; one that returns early when new work may be due (the replay's
        clock moved) saves the rest of the wait.
        """
        pause = idle_sleep
        while not stop():
            if self.run_once() == 0:
                idle(pause)
                pause = min(pause * 1.5, max(max_sleep, idle_sleep))
            else:
                pause = idle_sleep
