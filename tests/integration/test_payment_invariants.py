"""Hypothesis, stateful: whatever happens to payments and payment runs, nothing is paid twice and
the money adds up.

Each example gets a fresh store (SQLite; PostgreSQL too when configured) and a private copy of a
small generated country, whose simulated bank keeps what it was sent. Disabled people get the
monthly disability payment, newborns the birth benefit; in the spring some of the disabled die or
lose their status, and the registry may tell haqq weeks late. Between those, in an order the
rules draw: time passes (the worker running, running and taking the bank's reports, or down), the
payroll runs, the office makes, approves, cancels and sends runs (a run not approved, or sent
before, is refused), the bank's reports are taken in in any order (a report imported before is
refused as a duplicate; one not acknowledged comes again), IBANs turn out wrong, rejected and
held payments are retried, recovery claims are closed; and transactions crash after the bank has
the file but before haqq commits (the bank keeps what it got; haqq forgets it sent it).

After every step:

1. nothing is paid twice: one payment row per (entitlement, period); at the bank, at most one
   accepted transfer per (entitlement, period) whatever its attempt or file; a payment haqq holds
   as paid is paid at the bank under its end-to-end id; a transfer the bank paid belongs to a
   payment of the same attempt that haqq has not cancelled, rejected or held;
2. the money adds up: due = paid + open + cancelled in the reconciliation; a recovery claim only
   for a paid payment of a period after its entitlement's end, for its amount; per entitlement,
   what was paid for periods after its end is exactly what is claimed back.

At the end of each example the registries have told haqq everything, the office sends what is due
and every report the bank has is taken in; then also

3. the bank's accepted transfers are exactly haqq's accepted payments, and each monthly
   entitlement has one live payment for every month from its start to its end (or the last
   payroll); a month after its end is cancelled, paid and claimed back, or refused by the bank.

Shrinking is off by default (a failing sequence is shown whole); ``HAQQ_TEST_SHRINK=1`` turns it
on for a minimal one (minutes). The regressions at the bottom replay, step by step, the sequences
this test found breaking these properties.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
import sys
import tempfile
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar, cast

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.control import currently_in_test_context, event
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import select, update

from haqq.adapters.bank.iso20022 import BankFileError
from haqq.adapters.store import db
from haqq.adapters.store.reconcile import reconcile
from haqq.adapters.store.schema import (
    accounts,
    entitlements,
    payment_files,
    payment_runs,
    payments,
    payroll_runs,
    recovery_claims,
)
from haqq.bootstrap import Haqq, Settings, build
from haqq.domain.iban import make_iban
from haqq.domain.payments import (
    PaymentStateError,
    RunStateError,
    end_to_end_id,
    parse_end_to_end_id,
)
from haqq.pipeline import bank_reports, payroll, runs
from haqq.pipeline.work import BAKU, local_date
from haqq.ports import Bank, BankFile
from tests.conftest import fresh_postgres_schema, postgres_or_skip
from tests.helpers import (
    UNKNOWN_IBAN,
    catalogue_of,
    country_query,
    event_json,
    generated_country,
    run_at,
    take_events,
)

#: When an example may start (the stops fall between the first and the last + SPAN), and how
#: long it may last.
STARTS = (
    datetime(2025, 4, 2, 10, tzinfo=BAKU),
    datetime(2025, 5, 2, 10, tzinfo=BAKU),
    datetime(2025, 5, 25, 10, tzinfo=BAKU),
)
SPAN = timedelta(days=80)
#: How many days after it happened a death or status end may be registered.
LATE = (0, 2, 7, 20, 30, 45, 60)
#: The worker comes back at least this often (a month's payroll is never skipped altogether).
WORKER_GAP = timedelta(days=20)
#: Examples per store, and the most steps in one.
EXAMPLES = {"sqlite": 40, "postgresql": 20}
STEPS = 50

#: Disabled adults haqq can pay (as in test_stops): known to every registry, reachable by SMS.
DISABLED = (
    "FROM persons WHERE disability_group IS NOT NULL AND disability_since < '2025-01-01' "
    "AND pensions NOT LIKE '%disability%' AND birth_date < '1990-01-01' AND phone IS NOT NULL "
    "AND mia_birth_date IS NULL AND resident = 1"
)


@dataclass(frozen=True)
class World:
    """The generated country and the events the examples take from it."""

    country: Path
    catalogue: Path
    #: disability statuses granted (as the disability registry would send them)
    grants: list[dict[str, Any]]
    #: births of the weeks before the first start
    births: list[dict[str, Any]]
    #: the deaths and status ends of the granted, in time order
    stops: list[dict[str, Any]]


def note(what: str) -> None:
    """Count what happened in the examples (``--hypothesis-show-statistics``), when in one."""
    if currently_in_test_context():
        event(what)


class Crash(Exception):
    """The process dies before the transaction commits."""


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    # Seed 2 with 15,000 people has, among the disabled, a death and three status ends in the
    # spring of 2025.
    country = generated_country(tmp_path_factory, population=15_000, seed=2)
    catalogue = catalogue_of(tmp_path_factory.mktemp("catalogue"))
    window = tuple(str(d) for d in (STARTS[0].date() + timedelta(days=5), (STARTS[-1] + SPAN).date() - timedelta(days=25)))
    ending = country_query(
        country,
        f"SELECT fin, disability_group {DISABLED} AND ("
        "(death_date BETWEEN ? AND ? AND (disability_until IS NULL OR disability_until > death_date)) OR "
        "(disability_until BETWEEN ? AND ? AND (death_date IS NULL OR death_date > disability_until))"
        ") ORDER BY fin",
        (*window, *window),
    )
    living = country_query(
        country,
        f"SELECT fin, disability_group {DISABLED} AND death_date IS NULL AND disability_until IS NULL "
        "ORDER BY fin LIMIT 2",
    )
    grants = [
        {"source": "disability_registry", "event_id": f"TEST-DIS-{p['fin']}", "type": "disability_status_granted",
         "fin": p["fin"], "occurred_at": "2025-01-06T10:00:00+04:00", "payload": {"group": p["disability_group"]}}
        for p in [*ending, *living]
    ]
    stops = []
    for p in ending:
        (found,) = country_query(
            country,
            "SELECT * FROM life_events WHERE fin = ? AND type IN ('death_registered', 'disability_status_ended') "
            "AND occurred_at >= '2025-04-01' ORDER BY occurred_at LIMIT 1",
            (p["fin"],),
        )
        stops.append(event_json(found))
    births = [
        event_json(r)
        for r in country_query(
            country,
            "SELECT * FROM life_events WHERE type = 'birth_registered' "
            "AND occurred_at BETWEEN '2025-03-10' AND '2025-04-01' ORDER BY occurred_at LIMIT 4",
        )
    ]
    kinds = {e["type"] for e in stops}
    assert kinds == {"death_registered", "disability_status_ended"} and len(stops) <= 8 and len(births) == 4
    return World(country, catalogue, grants, births, sorted(stops, key=lambda e: str(e["occurred_at"])))


# ---- the stores an example runs on ----------------------------------------------------------

#: A fresh store's URL for an example; resumed afterwards, it cleans up.
StoreFactory = Callable[[Path], Iterator[str]]


def sqlite_store(folder: Path) -> Iterator[str]:
    yield f"sqlite:///{folder / 'haqq.db'}"


def postgres_store(folder: Path) -> Iterator[str]:
    """A fresh schema per example, dropped afterwards."""
    with fresh_postgres_schema() as url:
        yield url


STORES: dict[str, StoreFactory] = {"sqlite": sqlite_store, "postgresql": postgres_store}


class QuietBank:
    """The bank as the worker sees it while the test takes the reports in itself: the same bank,
    whose reports the worker does not see."""

    def __init__(self, bank: Bank) -> None:
        self._bank = bank
        self.name = bank.name

    def __getattr__(self, attr: str) -> Any:
        return getattr(self._bank, attr)

    def files(self, *, as_of: datetime) -> Sequence[BankFile]:
        return []

    def ready_files(self, *, as_of: datetime) -> Sequence[str]:
        return []


def bank_transfers(country: Path) -> list[tuple[str, str]]:
    """``(key, status)`` of every transfer the simulated bank recorded (the key is the
    end-to-end id)."""
    with closing(sqlite3.connect(f"file:{country}?mode=ro", uri=True)) as conn:
        return [(k, s) for k, s in conn.execute("SELECT key, status FROM bank_transfers")]


def months_between(first: date, last: date) -> list[str]:
    """``YYYY-MM`` of the months from ``first``'s to ``last``'s, inclusive."""
    out = []
    current = first.replace(day=1)
    while current <= last:
        out.append(current.strftime("%Y-%m"))
        current = date(current.year + current.month // 12, current.month % 12 + 1, 1)
    return out


# ---- the machine -----------------------------------------------------------------------------


class PaymentMachine(RuleBasedStateMachine):
    world: ClassVar[World]
    new_store: ClassVar[StoreFactory]

    def __init__(self) -> None:
        super().__init__()
        self.folder = Path(tempfile.mkdtemp(prefix="haqq-payments-"))
        self.store = type(self).new_store(self.folder)
        self.app: Haqq | None = None
        try:
            self.country = self.folder / "country.db"
            shutil.copyfile(self.world.country, self.country)
            self.app = build(Settings(
                database_url=next(self.store), country=self.country, catalogue_dir=self.world.catalogue,
                payment_office="manual", approval_threshold=150_000,
            ))
            db.upgrade(self.app.engine)
        except BaseException:
            self.cleanup()
            raise
        # The worker as the rules run it: it takes the bank's reports only when a rule says so.
        self.quiet = replace(self.app, bank=cast(Bank, QuietBank(self.app.bank)))
        self.clock = self.end = self.worker_ran = STARTS[0]
        #: when the registry tells haqq of each stop
        self.stops_due: list[datetime] = []
        self.stops_taken: set[int] = set()
        #: the IBAN each payment had before a rule made it wrong
        self.good_iban: dict[int, str] = {}
        #: the reports applied
        self.imported: list[bytes] = []
        #: runs' files built outside a transaction, not sent yet: (run id, built at, files)
        self.built: list[tuple[int, datetime, list[runs.OutFile]]] = []

    # -- plumbing --

    @property
    def haqq(self) -> Haqq:
        assert self.app is not None
        return self.app

    def later(self, delta: timedelta) -> None:
        """Time passes: the stops due by then are registered (haqq takes the events in; the
        worker acts on them when it runs); a worker down too long comes back."""
        self.clock = min(self.clock + delta, self.end)
        due = [i for i, at in enumerate(self.stops_due) if at <= self.clock and i not in self.stops_taken]
        if due:
            take_events(self.haqq, [self.world.stops[i] for i in due], self.clock)
            self.stops_taken.update(due)
            note("a death or status end registered")
        if self.clock - self.worker_ran > WORKER_GAP:
            self.pipeline()

    def pipeline(self, takes_reports: bool = False) -> None:
        run_at(self.haqq if takes_reports else self.quiet, self.clock)
        self.worker_ran = self.clock

    def runs_in(self, *statuses: str) -> list[Any]:
        with self.haqq.engine.connect() as conn:
            return list(conn.execute(
                select(payment_runs).where(payment_runs.c.status.in_(statuses)).order_by(payment_runs.c.id)
            ))

    def payments_in(self, *statuses: str) -> list[Any]:
        with self.haqq.engine.connect() as conn:
            return list(conn.execute(
                select(payments).where(payments.c.status.in_(statuses)).order_by(payments.c.id)
            ))

    def import_report(self, f: BankFile) -> bool:
        """Import one report as ``haqq payments import-status`` does; whether it was applied. A
        report the store holds already (by content or message id) must be refused as a
        duplicate, and only such a report."""
        digest = hashlib.sha256(f.content).hexdigest()
        with self.haqq.engine.connect() as conn:
            stored = conn.execute(
                select(payment_files.c.id).where(
                    (payment_files.c.sha256 == digest)
                    | ((payment_files.c.direction == "in") & (payment_files.c.message_id == f.name))
                )
            ).first()
        try:
            with self.haqq.engine.begin() as conn:
                bank_reports.import_file(conn, f.content, bank=self.haqq.bank.name, now=self.clock)
        except bank_reports.DuplicateReport:
            assert stored is not None, f"{f.name} refused as a duplicate, yet never imported"
            return False
        except BankFileError as error:
            assert stored is None, f"{f.name} was imported before, yet not refused as a duplicate"
            note(f"report refused: {type(error).__name__}")
            return False
        assert stored is None, f"{f.name} applied twice"
        self.imported.append(f.content)
        note(f"{f.kind} applied")
        return True

    # -- time and life events --

    @initialize(start=st.sampled_from(STARTS), late=st.lists(st.sampled_from(LATE), min_size=8, max_size=8))
    def registries_report(self, start: datetime, late: list[int]) -> None:
        """The disability statuses and the births are reported at ``start``; each death or
        status end ``late`` days after it happened."""
        self.clock = self.worker_ran = start
        self.end = start + SPAN
        self.stops_due = [
            datetime.fromisoformat(e["occurred_at"]) + timedelta(days=days, hours=1)
            for e, days in zip(self.world.stops, late, strict=False)
        ]
        take_events(self.haqq, [*self.world.grants, *self.world.births], start)
        self.later(timedelta(0))
        self.pipeline()

    @rule(days=st.integers(1, 20), hours=st.integers(0, 23),
          worker=st.sampled_from(["runs", "runs and takes the reports", "is down"]))
    def time_passes(self, days: int, hours: int, worker: str) -> None:
        """Days pass; the worker runs (and may take the bank's reports itself), or is down."""
        self.later(timedelta(days=days, hours=hours))
        if worker != "is down":
            self.pipeline(takes_reports=worker == "runs and takes the reports")

    @rule(days=st.integers(1, 7))
    def working_days(self, days: int) -> None:
        """Days of business as usual: each day the worker runs, the office sends the day's runs
        and takes in the reports the bank has."""
        for _ in range(days):
            self.later(timedelta(days=1))
            self.pipeline()
            self.send_what_is_due()
            for f in self.haqq.bank.files(as_of=self.clock):
                if self.import_report(f):
                    self.haqq.bank.ack_files([f.name])

    @rule(crash=st.booleans())
    def payroll_runs(self, crash: bool) -> None:
        """The month's payroll, outside the worker (a second run of a month does nothing)."""
        try:
            with self.haqq.engine.begin() as conn:
                payroll.run_month(conn, local_date(self.clock).replace(day=1), self.clock)
                if crash:
                    raise Crash
        except Crash:
            pass

    # -- the payment office --

    @rule(hours=st.integers(0, 48), crash=st.booleans(), approvals=st.sampled_from(["none", "one", "all"]))
    def make_runs(self, hours: int, crash: bool, approvals: str) -> None:
        """The clerk gathers the due payments into runs, approved by no one yet, by one person,
        or by as many as each needs."""
        self.later(timedelta(hours=hours))
        try:
            with self.haqq.engine.begin() as conn:
                for run in runs.make_runs(conn, self.clock, self.clock, by="clerk", office=self.haqq.office()):
                    for by in ("ana", "bob")[: {"none": 0, "one": 1, "all": run.needed}[approvals]]:
                        runs.approve(conn, run.id, by=by, now=self.clock)
                if crash:
                    raise Crash
        except Crash:
            pass

    @rule(pick=st.integers(0, 9), which=st.sampled_from(["draft", "any"]), both=st.booleans())
    def approve(self, pick: int, which: str, both: bool) -> None:
        """One approval (``both``: as many as the run needs); a run no longer a draft refuses."""
        found = (self.runs_in("draft") if which == "draft" else []) or self.runs_in(
            "draft", "approved", "sent", "closed", "cancelled")
        if not found:
            return
        run = found[pick % len(found)]
        with self.haqq.engine.begin() as conn:
            if run.status != "draft":
                with pytest.raises(RunStateError):
                    runs.approve(conn, run.id, by="ana", now=self.clock)
                return
            others = [by for by in ("ana", "bob") if by != run.approved_by]
            for by in others if both else others[:1]:
                if runs.approve(conn, run.id, by=by, now=self.clock).status == "approved":
                    break

    @rule(pick=st.integers(0, 9), which=st.sampled_from(["approved", "any"]), hours=st.integers(0, 48),
          crash=st.booleans())
    def send(self, pick: int, which: str, hours: int, crash: bool) -> None:
        """Send a run; a run not approved, sent before or cancelled is refused. A crash before
        the commit leaves the run approved and nothing at the bank; after it, before the files
        were handed over, they wait in the outbox for the worker (or the end) to deliver."""
        self.later(timedelta(hours=hours))
        found = (self.runs_in("approved") if which == "approved" else []) or self.runs_in(
            "draft", "approved", "sent", "closed", "cancelled")
        if not found:
            return
        run = found[pick % len(found)]
        office = self.haqq.office()
        try:
            with self.haqq.engine.begin() as conn:
                if run.status != "approved":
                    with pytest.raises(RunStateError):
                        runs.send(conn, run.id, by="clerk", now=self.clock, office=office)
                    return
                runs.send(conn, run.id, by="clerk", now=self.clock, office=office)
                if crash and pick % 2 == 0:
                    note("crash before the run's sending committed")
                    raise Crash
        except Crash:
            return
        if crash:
            note("crash after the run's sending committed, before its files were delivered")
            return
        runs.deliver(self.haqq.engine, self.haqq.bank, lambda: self.clock)

    @rule(hours=st.integers(0, 48), crash=st.sampled_from(["no", "after the runs", "at the send"]))
    def office_round(self, hours: int, crash: str) -> None:
        """As the automatic office works: make and approve the runs in one transaction; build
        each approved run's files outside any transaction, then send it in another (which checks
        the run still holds the payments the files carry); then deliver the files. A crash after
        the runs leaves them approved, for the next round; at the send, nothing is sent."""
        self.later(timedelta(hours=hours))
        office = self.haqq.office()
        try:
            with self.haqq.engine.begin() as conn:
                made = runs.make_runs(conn, self.clock, self.clock, by="office", office=office)
                for run in made:
                    for k in range(run.needed):
                        runs.approve(conn, run.id, by=f"approver {k + 1}", now=self.clock)
            if crash == "after the runs" and made:
                note("crash after the office's runs committed, before they were sent")
                raise Crash
            with self.haqq.engine.connect() as reading:
                ready = [(run_id, runs.build_files(reading, run_id, self.clock, office))
                         for run_id in runs.approved_unsent(reading)]
            for run_id, files in ready:
                with self.haqq.engine.begin() as conn:
                    runs.send(conn, run_id, by="office", now=self.clock, office=office, files=files)
                    if crash == "at the send":
                        note("crash before a run's sending committed")
                        raise Crash
        except Crash:
            return
        runs.deliver(self.haqq.engine, self.haqq.bank, lambda: self.clock)

    @rule(pick=st.integers(0, 9))
    def build_files(self, pick: int) -> None:
        """An approved run's files built now, outside any transaction, to be sent later (other
        rules may cancel the run, or stop a payment of it, in between)."""
        found = self.runs_in("approved")
        if found:
            run = found[pick % len(found)]
            with self.haqq.engine.connect() as reading:
                files = runs.build_files(reading, run.id, self.clock, self.haqq.office())
            self.built.append((run.id, self.clock, files))

    @rule(pick=st.integers(0, 9), crash=st.booleans())
    def send_built(self, pick: int, crash: bool) -> None:
        """Send a run with the files built earlier: refused if the run is no longer approved,
        or no longer holds exactly the payments the files carry (a stop cancelled one)."""
        if not self.built:
            return
        run_id, built_at, files = self.built.pop(pick % len(self.built))
        office = self.haqq.office()
        with self.haqq.engine.connect() as conn:
            status = conn.execute(select(payment_runs.c.status).where(payment_runs.c.id == run_id)).scalar_one()
            queued = len([p for p in self.payments_in("queued") if p.run_id == run_id])
        try:
            with self.haqq.engine.begin() as conn:
                if status != "approved":
                    with pytest.raises(RunStateError):
                        runs.send(conn, run_id, by="clerk", now=built_at, office=office, files=files)
                    return
                if queued != sum(f.transactions for f in files):
                    note("a built run changed before it was sent")
                    with pytest.raises(runs.RunChanged):
                        runs.send(conn, run_id, by="clerk", now=built_at, office=office, files=files)
                    return
                runs.send(conn, run_id, by="clerk", now=built_at, office=office, files=files)
                if crash:
                    raise Crash
        except Crash:
            return
        note("a run sent with files built before")
        runs.deliver(self.haqq.engine, self.haqq.bank, lambda: self.clock)

    @rule(pick=st.integers(0, 9))
    def cancel(self, pick: int) -> None:
        """Cancel a run not sent yet; a run sent, closed or cancelled refuses."""
        found = self.runs_in("draft", "approved", "sent", "closed", "cancelled")
        if not found:
            return
        run = found[pick % len(found)]
        with self.haqq.engine.begin() as conn:
            if run.status not in ("draft", "approved"):
                with pytest.raises(RunStateError):
                    runs.cancel(conn, run.id, by="clerk", now=self.clock)
                return
            runs.cancel(conn, run.id, by="clerk", now=self.clock)

    # -- the bank's reports --

    @rule(pick=st.integers(0, 9), hours=st.integers(0, 48), ack=st.booleans())
    def take_a_report(self, pick: int, hours: int, ack: bool) -> None:
        """Take in one of the reports the bank has ready, any of them; acknowledged (when
        applied) or not, so that it comes again. A report refused is left for a person."""
        self.later(timedelta(hours=hours))
        ready = self.haqq.bank.files(as_of=self.clock)
        if not ready:
            return
        f = ready[pick % len(ready)]
        if self.import_report(f) and ack:
            self.haqq.bank.ack_files([f.name])

    @rule(pick=st.integers(0, 9))
    def take_a_report_again(self, pick: int) -> None:
        """A report applied before, imported again: refused whole, nothing applied twice."""
        if not self.imported:
            return
        content = self.imported[pick % len(self.imported)]
        with self.haqq.engine.begin() as conn, pytest.raises(bank_reports.DuplicateReport):
            bank_reports.import_file(conn, content, bank=self.haqq.bank.name, now=self.clock)

    # -- people correcting payments --

    @rule(pick=st.integers(0, 99), kind=st.sampled_from(["unknown", "checksum", "none"]))
    def iban_is_wrong(self, pick: int, kind: str) -> None:
        """The IBAN recorded with a due payment is wrong (it has never been to the bank):
        unknown to the bank (rejected), failing its checksum or missing (held)."""
        seen = set()
        for key, _ in bank_transfers(self.country):
            parsed = parse_end_to_end_id(key)
            assert parsed is not None, key
            seen.add(parsed[:2])
        found = [p for p in self.payments_in("scheduled")
                 if p.iban and (p.entitlement_id, p.period) not in seen and p.id not in self.good_iban]
        if not found:
            return
        p = found[pick % len(found)]
        wrong = {
            "unknown": make_iban("AZ", f"HAQB{p.id:020d}"),
            "checksum": p.iban[:-1] + ("0" if p.iban[-1] != "0" else "1"),
            "none": None,
        }[kind]
        self.good_iban[p.id] = p.iban
        with self.haqq.engine.begin() as conn:
            conn.execute(update(payments).where(payments.c.id == p.id).values(iban=wrong))

    @rule(pick=st.integers(0, 99), corrected=st.booleans())
    def retry(self, pick: int, corrected: bool) -> None:
        """A person retries a rejected or held payment, with the right IBAN, or with the one it
        has (which refuses when that fails its checksum)."""
        found = self.payments_in("rejected", "held")
        if not found:
            return
        p = found[pick % len(found)]
        good = self.good_iban.get(p.id)
        if good is None:
            with self.haqq.engine.connect() as conn:
                good = conn.execute(select(accounts.c.iban).where(accounts.c.fin == p.fin)).scalar_one()
        with self.haqq.engine.begin() as conn:
            try:
                runs.retry(conn, p.id, iban=good if corrected or p.iban is None else None, by="ana", now=self.clock)
                note(f"{p.status} payment retried")
            except PaymentStateError as error:
                assert not corrected and "checksum" in str(error), error

    @rule(pick=st.integers(0, 9), returned=st.booleans())
    def close_a_claim(self, pick: int, returned: bool) -> None:
        """A recovery claim is closed, as ``haqq payments recovery`` does: returned or written off."""
        with self.haqq.engine.begin() as conn:
            ids = conn.execute(
                select(recovery_claims.c.id).where(recovery_claims.c.status == "open").order_by(recovery_claims.c.id)
            ).scalars().all()
            if ids:
                conn.execute(
                    update(recovery_claims).where(recovery_claims.c.id == ids[pick % len(ids)]).values(
                        status="returned" if returned else "written_off", closed_at=self.clock, closed_by="ana",
                        note=None if returned else "the heirs cannot pay",
                    )
                )

    # -- what holds after every step --

    @invariant()
    def nothing_is_paid_twice(self) -> None:
        with self.haqq.engine.connect() as conn:
            rows = conn.execute(
                select(payments.c.entitlement_id, payments.c.period, payments.c.attempt, payments.c.status)
            ).all()
        ours: dict[tuple[str, str], Any] = {}
        for p in rows:
            assert (p.entitlement_id, p.period) not in ours, f"two payments of {p.entitlement_id} {p.period}"
            ours[(p.entitlement_id, p.period)] = p
        paid: dict[tuple[str, str], list[str]] = defaultdict(list)
        for key, status in bank_transfers(self.country):
            parsed = parse_end_to_end_id(key)
            assert parsed is not None, key
            entitlement, period, attempt = parsed
            if status != "accepted":
                continue
            paid[(entitlement, period)].append(key)
            mine = ours.get((entitlement, period))
            assert mine is not None, f"the bank paid {key}, a payment haqq does not have"
            assert mine.attempt == attempt, f"the bank paid {key}; haqq holds attempt {mine.attempt} ({mine.status})"
            assert mine.status not in ("cancelled", "rejected", "held"), (
                f"the bank paid {key}; haqq holds it as {mine.status}: money out, and nothing claims it back"
            )
        twice = {k: v for k, v in paid.items() if len(v) > 1}
        assert not twice, f"paid twice at the bank: {twice}"
        for (entitlement, period), p in ours.items():
            if p.status == "accepted":
                key = end_to_end_id(entitlement, period, p.attempt)
                assert paid.get((entitlement, period)) == [key], f"haqq holds {key} as paid; the bank did not pay it"

    @invariant()
    def money_adds_up(self) -> None:
        with self.haqq.engine.connect() as conn:
            total = reconcile(conn).total
            found = conn.execute(
                select(payments.c.id, payments.c.amount, payments.c.status, payments.c.period,
                       payments.c.period_start, payments.c.entitlement_id, entitlements.c.end_date,
                       recovery_claims.c.amount.label("claimed"))
                .join(entitlements, entitlements.c.id == payments.c.entitlement_id)
                .outerjoin(recovery_claims, recovery_claims.c.payment_id == payments.c.id)
            ).all()
        assert (total.payments, total.amount) == (len(found), sum(p.amount for p in found))
        assert total.payments == total.accepted[0] + total.open[0] + total.cancelled[0], total
        assert total.amount == total.accepted[1] + total.open[1] + total.cancelled[1], total
        paid_after: dict[str, int] = defaultdict(int)
        claimed: dict[str, int] = defaultdict(int)
        for p in found:
            after = p.period != "lump" and p.end_date is not None and p.period_start > p.end_date
            if p.claimed is not None:
                assert p.status == "accepted", f"a recovery claim for payment {p.id}, which is {p.status}"
                assert after, f"a recovery claim for payment {p.id}, of a period before its entitlement's end"
                assert p.claimed == p.amount, f"payment {p.id} of {p.amount} claimed back as {p.claimed}"
                claimed[p.entitlement_id] += p.claimed
            if after and p.status == "accepted":
                paid_after[p.entitlement_id] += p.amount
            assert not (after and p.status in ("scheduled", "queued", "held", "rejected")), (
                f"payment {p.id} ({p.period}) is {p.status} after its entitlement ended on {p.end_date}: "
                "money that may still go out"
            )
        assert dict(paid_after) == dict(claimed), "what was paid after a stop is not what is claimed back"
        if claimed:
            note("money paid after a stop, claimed back")

    # -- the end of an example --

    def send_what_is_due(self) -> None:
        """The office makes the runs due, approves every draft as it needs and sends it."""
        office = self.haqq.office()
        with self.haqq.engine.begin() as conn:
            runs.make_runs(conn, self.clock, self.clock, by="clerk", office=office)
            for run_id in conn.execute(select(payment_runs.c.id).where(payment_runs.c.status == "draft")).scalars():
                s = runs.summary(conn, run_id)
                for by in ("ana", "bob")[len(s.approvals):s.needed]:
                    runs.approve(conn, run_id, by=by, now=self.clock)
            for run_id in conn.execute(select(payment_runs.c.id).where(payment_runs.c.status == "approved")).scalars():
                runs.send(conn, run_id, by="clerk", now=self.clock, office=office)
        runs.deliver(self.haqq.engine, self.haqq.bank, lambda: self.clock)

    def settle(self) -> None:
        """The registries have said everything, the worker runs, the office sends what is due,
        and every report the bank has is taken in, in its order, until none more applies."""
        for i, stop in enumerate(self.world.stops):
            if i not in self.stops_taken and datetime.fromisoformat(stop["occurred_at"]) < self.clock:
                take_events(self.haqq, [stop], self.clock)
                self.stops_taken.add(i)
        self.clock += timedelta(hours=1)
        self.pipeline()
        self.send_what_is_due()
        self.clock += timedelta(days=3)
        while applied := [f.name for f in self.haqq.bank.files(as_of=self.clock) if self.import_report(f)]:
            self.haqq.bank.ack_files(applied)

    def the_bank_and_haqq_agree(self) -> None:
        """Every report in: haqq's paid payments are exactly the bank's paid transfers."""
        at_bank = {k for k, s in bank_transfers(self.country) if s == "accepted"}
        with self.haqq.engine.connect() as conn:
            found = conn.execute(
                select(payments.c.entitlement_id, payments.c.period, payments.c.attempt)
                .where(payments.c.status == "accepted")
            ).all()
        here = {end_to_end_id(p.entitlement_id, p.period, p.attempt) for p in found}
        assert at_bank == here, (
            f"paid at the bank, not in haqq: {sorted(at_bank - here)}; paid in haqq, not at the bank: "
            f"{sorted(here - at_bank)}"
        )

    def every_due_month_is_paid_once(self) -> None:
        """Each monthly entitlement being paid has a live payment for every month from its start
        to its end (or the last payroll); a month after its end is cancelled, paid and claimed
        back, or was refused by the bank (sent before the stop was known)."""
        with self.haqq.engine.connect() as conn:
            found = conn.execute(
                select(payments.c.entitlement_id, payments.c.period, payments.c.period_start, payments.c.status,
                       recovery_claims.c.id.label("claim"))
                .outerjoin(recovery_claims, recovery_claims.c.payment_id == payments.c.id)
            ).all()
            ents = conn.execute(
                select(entitlements.c.id, entitlements.c.fin, entitlements.c.start_date, entitlements.c.end_date)
                .where(entitlements.c.schedule == "monthly", entitlements.c.status.in_(("active", "ended")))
            ).all()
            last_payroll = conn.execute(select(payroll_runs.c.period).order_by(payroll_runs.c.period.desc())).scalar()
        by_entitlement: dict[str, dict[str, Any]] = defaultdict(dict)
        for p in found:
            by_entitlement[p.entitlement_id][p.period] = p
        assert last_payroll is not None
        for e in ents:
            paid = by_entitlement.get(e.id)
            if not paid:
                continue  # not paid yet (an account or a consent awaited)
            last = min(e.end_date or date.max, date.fromisoformat(f"{last_payroll}-01"))
            for period in months_between(e.start_date, last):
                month = paid.get(period)
                assert month is not None and month.status != "cancelled", (
                    f"{e.fin}'s {e.id} (from {e.start_date} to {e.end_date}): {period} was due and "
                    f"{'is ' + month.status if month else 'has no payment'}; the payroll ran up to {last_payroll}"
                )
            for period, p in paid.items():
                if e.end_date is not None and p.period_start > e.end_date:
                    assert p.status == "cancelled" or (p.status == "accepted" and p.claim is not None) or (
                        p.status == "rejected"
                    ), f"{e.fin}'s {e.id}: {period} is after the end ({e.end_date}), and {p.status}"

    def everything_adds_up_in_the_end(self) -> None:
        self.settle()
        self.nothing_is_paid_twice()
        self.money_adds_up()
        self.the_bank_and_haqq_agree()
        self.every_due_month_is_paid_once()

    def teardown(self) -> None:
        # Hypothesis calls this from a ``finally``: after a failed step, only clean up.
        failed = sys.exc_info()[0] is not None
        try:
            if self.app is not None and not failed:
                self.everything_adds_up_in_the_end()
        finally:
            self.cleanup()

    def cleanup(self) -> None:
        if self.app is not None:
            self.app.engine.dispose()
            self.app = None
        for _ in self.store:  # the store's own clean-up (a PostgreSQL schema dropped)
            pass
        shutil.rmtree(self.folder, ignore_errors=True)


def machine_class(world: World, store: str) -> type[PaymentMachine]:
    return type("PaymentRuns", (PaymentMachine,), {"world": world, "new_store": staticmethod(STORES[store])})


@pytest.mark.slow
@pytest.mark.parametrize("store", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_no_period_is_paid_twice_and_the_money_adds_up(world: World, store: str) -> None:
    if store == "postgresql":
        postgres_or_skip()
    shrink = os.environ.get("HAQQ_TEST_SHRINK", "") not in ("", "0")
    run_state_machine_as_test(
        machine_class(world, store),
        settings=settings(
            max_examples=EXAMPLES[store], stateful_step_count=STEPS, deadline=None, derandomize=True,
            database=None, phases=[Phase.explicit, Phase.generate, *([Phase.shrink] if shrink else [])],
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )


# ---- regressions: sequences this test found breaking the properties -------------------------


@pytest.fixture
def machine(world: World) -> Iterator[PaymentMachine]:
    """One example's machine on SQLite, driven step by step."""
    state = machine_class(world, "sqlite")()
    yield state
    state.cleanup()


def months_of(state: PaymentMachine, fin: str) -> dict[str, str]:
    """Period -> status of the disability payments of ``fin``."""
    with state.haqq.engine.connect() as conn:
        return dict(conn.execute(
            select(payments.c.period, payments.c.status)
            .where(payments.c.fin == fin, payments.c.program_id == "disability_payment")
        ).all())


def test_the_month_of_an_end_is_paid_when_the_stop_came_before_the_payroll(machine: PaymentMachine) -> None:
    status_end = machine.world.stops[0]  # a disability status ending on 3 May
    assert (status_end["type"], status_end["occurred_at"][:10]) == ("disability_status_ended", "2025-05-03")
    machine.registries_report(start=STARTS[0], late=[0] * 8)
    machine.time_passes(days=27, hours=10, worker="runs")  # 29 April, the last run in April
    machine.time_passes(days=4, hours=0, worker="runs")  # 3 May: the end is registered; May's payroll
    machine.settle()
    assert months_of(machine, status_end["fin"]).get("2025-05") == "accepted"


def test_a_month_is_paid_when_the_payroll_ran_before_the_entitlement_was_active(machine: PaymentMachine) -> None:
    machine.registries_report(start=datetime(2025, 5, 20, 10, tzinfo=BAKU), late=[60] * 8)
    # The bank answers the account requests of 20 May within days; the worker is down until
    # 4 June, when it takes the answers and runs June's payroll before the payments are made.
    machine.time_passes(days=15, hours=10, worker="runs")
    machine.time_passes(days=3, hours=0, worker="runs")
    fin = machine.world.stops[2]["fin"]  # a status ending on 9 June, not registered yet
    assert machine.world.stops[2]["occurred_at"][:10] == "2025-06-09"
    assert "2025-06" in months_of(machine, fin)


def test_a_stop_after_a_crash_in_sending_claims_back_what_the_bank_paid(machine: PaymentMachine) -> None:
    death = machine.world.stops[1]  # a death on 10 May, registered 30 days late
    assert (death["type"], death["occurred_at"][:10]) == ("death_registered", "2025-05-10")
    machine.registries_report(start=datetime(2025, 4, 28, 10, tzinfo=BAKU), late=[60, 30, 60, 60, 60, 60, 60, 60])
    machine.working_days(days=7)
    machine.time_passes(days=27, hours=0, worker="runs")  # 1 June: June's payroll
    machine.office_round(hours=0, crash="at the send")  # June's run made, approved, never sent
    machine.time_passes(days=9, hours=0, worker="runs")  # the death is registered: June cancelled
    assert months_of(machine, death["fin"])["2025-06"] == "cancelled"
    machine.nothing_is_paid_twice()


def test_a_run_sent_again_after_a_crash_learns_what_the_bank_did(machine: PaymentMachine) -> None:
    machine.registries_report(start=STARTS[0], late=[60] * 8)
    machine.time_passes(days=1, hours=0, worker="runs")
    machine.make_runs(hours=0, crash=False, approvals="all")
    machine.send(pick=0, which="approved", hours=0, crash=False)
    machine.time_passes(days=6, hours=0, worker="runs")
    machine.make_runs(hours=0, crash=False, approvals="all")
    (run,) = machine.runs_in("approved")
    machine.send(pick=0, which="approved", hours=0, crash=True)  # the bank pays; haqq still has it approved
    machine.time_passes(days=1, hours=0, worker="runs and takes the reports")
    machine.send(pick=0, which="approved", hours=0, crash=False)  # the same file name again
    machine.settle()
    with machine.haqq.engine.connect() as conn:
        waiting = conn.execute(
            select(payments.c.id).where(payments.c.run_id == run.id, payments.c.status == "sent")
        ).all()
    assert waiting == [], f"{len(waiting)} payments of run {run.id} wait for ever for the bank's answer"
    machine.the_bank_and_haqq_agree()


def test_a_payment_rejected_after_the_stop_cannot_go_out_again(machine: PaymentMachine) -> None:
    death = machine.world.stops[1]  # a death on 10 May, registered 30 days late
    machine.registries_report(start=datetime(2025, 4, 28, 10, tzinfo=BAKU), late=[60, 30, 60, 60, 60, 60, 60, 60])
    machine.working_days(days=7)
    machine.time_passes(days=27, hours=0, worker="runs")  # 1 June: June's payroll
    with machine.haqq.engine.begin() as conn:  # June's IBAN is one the bank does not know
        conn.execute(update(payments).where(payments.c.fin == death["fin"], payments.c.period == "2025-06")
                     .values(iban=UNKNOWN_IBAN))
    machine.make_runs(hours=0, crash=False, approvals="all")
    machine.send(pick=0, which="approved", hours=0, crash=False)
    machine.time_passes(days=9, hours=0, worker="runs")  # the death is registered; June is at the bank
    for f in machine.haqq.bank.files(as_of=machine.clock):  # the bank refused June
        machine.import_report(f)
    assert months_of(machine, death["fin"])["2025-06"] in ("rejected", "cancelled")
    machine.money_adds_up()

