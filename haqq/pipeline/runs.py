"""Payment runs: what a ministry's payment office does with the payments haqq schedules.

Due payments are gathered into runs: the monthly payroll's payments into ``payroll YYYY-MM``,
everything else (lump sums, a new entitlement's first months) into the day's ``daily
YYYY-MM-DD``. A run is previewed, approved (by a second person when its total is above the
threshold), and sent once: one ``pain.001.001.09`` file per bank (and per ``file_max``
transactions), each payment under an end-to-end id stable across re-sends. A payment that cannot
go into a file (no account, an IBAN failing its checksum) is held for a person instead.

Sending is crash-safe: the files and the payments' new state are committed first, and the files
handed to the bank after (an outbox): a crash before the commit leaves nothing at the bank, one
after it leaves files that are delivered again under the same names, which the bank ignores
once it has them; and an end-to-end id is never paid twice.
"""

from __future__ import annotations

import gzip
import hashlib
import secrets
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, time
from typing import Any

import structlog
from sqlalchemy import (
    Connection,
    Engine,
    and_,
    delete,
    func,
    insert,
    literal_column,
    select,
    update,
)

from haqq.adapters.bank.iso20022 import CreditTransfer, Debtor, PaymentRun, credit_transfer_file
from haqq.adapters.store import bulk
from haqq.adapters.store.repository import ClaimLost
from haqq.adapters.store.schema import accounts, entitlements, payment_files, payment_runs, payments
from haqq.domain.iban import iban_is_valid, make_iban
from haqq.domain.payments import (
    PaymentStateError,
    PaymentStatus,
    RunStateError,
    RunStatus,
    UnknownRun,
    approvals_needed,
    check_payment,
    check_run,
    end_to_end_id,
    next_approval,
)
from haqq.pipeline.work import BAKU, local_date
from haqq.ports import Bank

log = structlog.get_logger("haqq.payments")

#: The ministry's treasury account every payment is debited from (illustrative values).
TREASURY = Debtor(
    name="Ministry of Labour and Social Protection of Population",
    iban=make_iban("AZ", "CTRE00000000001401555071"[:24]),
    bic="CTREAZ22",
    org_id="1401555071",
)


@dataclass(frozen=True)
class Office:
    """How the payment office works: the debtor account, the two-person threshold (qəpik), the
    most transactions one file carries, and who approves automatically (None: people do)."""

    debtor: Debtor = TREASURY
    threshold: int = 500_000_000
    file_max: int = 100_000
    automatic: str | None = None


@dataclass(frozen=True)
class RunSummary:
    id: int
    label: str
    kind: str
    run_date: date
    status: str
    payments: int
    total: int
    approvals: tuple[str, ...] = ()
    needed: int = 1
    by_program: dict[str, tuple[int, int]] = field(default_factory=dict)
    by_bank: dict[str, tuple[int, int]] = field(default_factory=dict)


@dataclass(frozen=True)
class Preview:
    """What ``haqq payments run`` would gather, without writing: per run label, the payments and
    total; and the payments that would be held, with why."""

    as_of: datetime
    runs: dict[str, tuple[int, int]]
    by_program: dict[str, tuple[int, int]]
    held: list[tuple[int, str, str]]


@dataclass(frozen=True)
class OutFile:
    name: str
    bank: str
    content: bytes
    transactions: int
    total: int
    #: As kept for evidence (see :func:`evidence`): made with the file, before any transaction
    #: that stores it when the file is built outside one.
    kept: tuple[bytes, str]


def evidence(content: bytes) -> tuple[bytes, str]:
    """A bank file as kept for evidence: compressed, and its SHA-256."""
    return gzip.compress(content, 3), hashlib.sha256(content).hexdigest()


def end_of_day(day: date) -> datetime:
    """The last moment of ``day`` in Baku: a run "for" a day takes what is due by then."""
    return datetime.combine(day, time(23, 59, 59, 999_999), tzinfo=BAKU)


def bank_code(iban: str) -> str:
    """The bank of an Azerbaijani IBAN: the four letters after the check digits."""
    return iban[4:8]


class RunChanged(ClaimLost):
    """A run's payments changed between its files being built and the run being sent (a stop
    cancelled one meanwhile): nothing is sent, and the next round builds the files again."""


def _hold_reason(iban: str | None) -> str | None:
    if not iban:
        return "no account at a bank: open one or record the IBAN, then retry"
    if not iban_is_valid(iban):
        return f"IBAN {iban} fails its checksum: correct it, then retry"
    return None


def _due(as_of: datetime) -> Any:
    return and_(payments.c.status == PaymentStatus.SCHEDULED.value, payments.c.due_at <= as_of)


def preview(conn: Connection, as_of: datetime) -> Preview:
    """What a run made now would hold; writes nothing."""
    rows = conn.execute(
        select(payments.c.id, payments.c.iban, payments.c.amount, payments.c.program_id,
               payments.c.source, payments.c.period).where(_due(as_of))
    ).all()
    runs: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    programs: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    held = []
    day = local_date(as_of)
    for r in rows:
        reason = _hold_reason(r.iban)
        if reason is not None:
            held.append((r.id, r.program_id, reason))
            continue
        label = f"payroll {r.period}" if r.source == "payroll" else f"daily {day.isoformat()}"
        for totals, key in ((runs, label), (programs, r.program_id)):
            totals[key][0] += 1
            totals[key][1] += r.amount
    return Preview(
        as_of, {k: (v[0], v[1]) for k, v in runs.items()},
        {k: (v[0], v[1]) for k, v in programs.items()}, held,
    )


def hold_unpayable(conn: Connection, as_of: datetime) -> int:
    """Hold the due payments no file can carry; returns how many."""
    rows = conn.execute(
        select(payments.c.id, payments.c.iban).where(_due(as_of))
    ).all()
    held = [
        {"status": PaymentStatus.HELD.value, "reason": reason, "id": r.id}
        for r in rows
        if (reason := _hold_reason(r.iban)) is not None
    ]
    if held:
        bulk.update_rows(conn, payments, "id", held, only_if={"status": PaymentStatus.SCHEDULED.value})
    return len(held)


def _free_label(conn: Connection, base: str) -> str:
    taken = set(conn.execute(
        select(payment_runs.c.label).where(payment_runs.c.label.like(f"{base}%"))
    ).scalars())
    if base not in taken:
        return base
    n = 2
    while f"{base}/{n}" in taken:
        n += 1
    return f"{base}/{n}"


def _new_run(
    conn: Connection, label: str, kind: str, run_date: date, now: datetime, by: str, office: Office,
    selection: Any,
) -> RunSummary | None:
    run_id = conn.execute(
        insert(payment_runs).values(
            label=label, kind=kind, run_date=run_date, status=RunStatus.DRAFT.value, payments=0,
            total=0, threshold=office.threshold, created_at=now, created_by=by,
            file_prefix=secrets.token_hex(4).upper(),
        ).returning(payment_runs.c.id)
    ).scalar_one()
    taken = conn.execute(
        update(payments)
        .where(selection)
        .values(status=PaymentStatus.QUEUED.value, run_id=run_id)
        .returning(payments.c.amount)
    ).scalars().all()
    if not taken:
        conn.execute(delete(payment_runs).where(payment_runs.c.id == run_id))
        return None
    total = sum(taken)
    conn.execute(update(payment_runs).where(payment_runs.c.id == run_id).values(payments=len(taken), total=total))
    return RunSummary(run_id, label, kind, run_date, RunStatus.DRAFT.value, len(taken), total,
                      needed=approvals_needed(total, office.threshold))


def make_runs(
    conn: Connection, as_of: datetime, now: datetime, *, by: str, office: Office,
    kinds: frozenset[str] = frozenset({"daily", "payroll"}),
) -> list[RunSummary]:
    """Gather the payments due by ``as_of`` into draft runs (one per payroll month, one daily);
    unpayable ones are held first. Returns the runs made (none when nothing is due)."""
    hold_unpayable(conn, as_of)
    made: list[RunSummary] = []
    day = local_date(as_of)
    if "payroll" in kinds:
        periods = conn.execute(
            select(payments.c.period).where(_due(as_of), payments.c.source == "payroll").distinct()
        ).scalars().all()
        for period in sorted(periods):
            label = _free_label(conn, f"payroll {period}")
            run = _new_run(conn, label, "payroll", day, now, by, office,
                           and_(_due(as_of), payments.c.source == "payroll", payments.c.period == period))
            if run is not None:
                made.append(run)
    if "daily" in kinds:
        label = _free_label(conn, daily_label(day))
        run = _new_run(conn, label, "daily", day, now, by, office,
                       and_(_due(as_of), payments.c.source != "payroll"))
        if run is not None:
            made.append(run)
    return made


def daily_label(day: date) -> str:
    return f"daily {day.isoformat()}"


def daily_run_made(conn: Connection, day: date) -> bool:
    return conn.execute(
        select(payment_runs.c.id).where(payment_runs.c.label == daily_label(day))
    ).first() is not None


def _run_row(conn: Connection, run_id: int, *, lock: bool = False) -> Any:
    stmt = select(payment_runs).where(payment_runs.c.id == run_id)
    if lock and conn.dialect.name == "postgresql":
        stmt = stmt.with_for_update()
    row = conn.execute(stmt).first()
    if row is None:
        raise UnknownRun(run_id)
    return row


def _approvers(row: Any) -> tuple[str, ...]:
    return tuple(a for a in (row.approved_by, row.second_approved_by) if a)


def summary(conn: Connection, run_id: int) -> RunSummary:
    row = _run_row(conn, run_id)
    p = payments
    programs = {
        r.program_id: (int(r.n), int(r.total))
        for r in conn.execute(
            select(p.c.program_id, func.count().label("n"), func.sum(p.c.amount).label("total"))
            .where(p.c.run_id == run_id).group_by(p.c.program_id)
        )
    }
    banks: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    # The bank code inline (not as parameters), so the grouped and the selected expression are
    # the same to PostgreSQL.
    code = func.substr(p.c.iban, literal_column("5"), literal_column("4"))
    for iban, n, total in conn.execute(
        select(code, func.count(), func.sum(p.c.amount)).where(p.c.run_id == run_id).group_by(code)
    ):
        banks[iban or "?"][0] += int(n)
        banks[iban or "?"][1] += int(total)
    return RunSummary(
        row.id, row.label, row.kind, row.run_date, row.status, row.payments, row.total,
        _approvers(row), approvals_needed(row.total, row.threshold), programs,
        {k: (v[0], v[1]) for k, v in banks.items()},
    )


def list_runs(conn: Connection, limit: int = 50) -> list[RunSummary]:
    rows = conn.execute(select(payment_runs).order_by(payment_runs.c.id.desc()).limit(limit)).all()
    return [
        RunSummary(r.id, r.label, r.kind, r.run_date, r.status, r.payments, r.total, _approvers(r),
                   approvals_needed(r.total, r.threshold))
        for r in rows
    ]


def approve(conn: Connection, run_id: int, *, by: str, now: datetime) -> RunSummary:
    """Record one approval; the run is approved when it has as many as its total needs."""
    row = _run_row(conn, run_id, lock=True)
    status = RunStatus(row.status)
    if status is not RunStatus.DRAFT:
        check_run(row.label, status, RunStatus.APPROVED)
    approvers = next_approval(row.label, _approvers(row), by, row.total, row.threshold)
    values: dict[str, Any] = (
        {"approved_by": by, "approved_at": now} if len(approvers) == 1
        else {"second_approved_by": by, "second_approved_at": now}
    )
    if len(approvers) >= approvals_needed(row.total, row.threshold):
        values["status"] = RunStatus.APPROVED.value
    conn.execute(update(payment_runs).where(payment_runs.c.id == run_id).values(**values))
    return summary(conn, run_id)


def cancel(conn: Connection, run_id: int, *, by: str, now: datetime) -> RunSummary:
    """Cancel a run not yet sent: its payments are scheduled again, for the next run."""
    row = _run_row(conn, run_id, lock=True)
    check_run(row.label, RunStatus(row.status), RunStatus.CANCELLED)
    conn.execute(
        update(payments)
        .where(payments.c.run_id == run_id, payments.c.status == PaymentStatus.QUEUED.value)
        .values(status=PaymentStatus.SCHEDULED.value, run_id=None)
    )
    conn.execute(update(payment_runs).where(payment_runs.c.id == run_id).values(status=RunStatus.CANCELLED.value))
    log.info("payment run cancelled", run=row.label, by=by, at=now.isoformat())
    return summary(conn, run_id)


def build_files(conn: Connection, run_id: int, now: datetime, office: Office) -> list[OutFile]:
    """The run's pain.001 files: one per bank, split every ``office.file_max`` payments. A
    file's name (its message id) is the run's random prefix, the run, the bank and the part: a
    re-send repeats it, and no other haqq store sending to the same bank makes it."""
    row = _run_row(conn, run_id)
    p = payments
    rows = conn.execute(
        select(p.c.id, p.c.entitlement_id, p.c.attempt, p.c.amount, p.c.iban, p.c.fin,
               p.c.program_id, p.c.period, accounts.c.holder)
        .select_from(p.outerjoin(accounts, accounts.c.fin == p.c.fin))
        .where(p.c.run_id == run_id, p.c.status == PaymentStatus.QUEUED.value)
        .order_by(p.c.id)
    ).all()
    by_bank: dict[str, list[CreditTransfer]] = defaultdict(list)
    for r in rows:
        by_bank[bank_code(r.iban)].append(
            CreditTransfer(
                end_to_end_id=end_to_end_id(r.entitlement_id, r.period, r.attempt),
                amount_minor=r.amount,
                creditor_name=r.holder or f"FIN {r.fin}",
                creditor_iban=r.iban,
                creditor_bic=None,
                remittance=f"{r.program_id} {r.period} FIN {r.fin}",
            )
        )
    files = []
    for bank in sorted(by_bank):
        transfers = by_bank[bank]
        for part, start in enumerate(range(0, len(transfers), office.file_max), start=1):
            chunk = transfers[start : start + office.file_max]
            name = f"HQ{row.file_prefix}R{row.id}-{bank}-{part}"
            content = credit_transfer_file(
                PaymentRun(
                    message_id=name, created_at=now, debtor=office.debtor,
                    requested_execution=row.run_date, transfers=chunk, payment_info_id=f"{name}-P",
                )
            )
            files.append(OutFile(name, bank, content, len(chunk), sum(t.amount_minor for t in chunk),
                                 evidence(content)))
    return files


def store_file(
    conn: Connection, *, direction: str, kind: str, bank: str, name: str, content: bytes,
    transactions: int, total: int, at: datetime, run_id: int | None = None,
    original: str | None = None, note: str | None = None, kept: tuple[bytes, str] | None = None,
) -> int:
    """Keep a bank file as evidence (compressed); its SHA-256 makes a second copy recognisable.
    ``kept``: the two already made (:func:`evidence`)."""
    packed, digest = kept or evidence(content)
    return int(conn.execute(
        insert(payment_files).values(
            direction=direction, kind=kind, bank=bank, message_id=name, run_id=run_id,
            original_message_id=original, transactions=transactions, total=total,
            sha256=digest, content=packed, at=at, note=note,
        ).returning(payment_files.c.id)
    ).scalar_one())


def approved_unsent(conn: Connection) -> list[int]:
    """The approved runs not sent yet, oldest first (an automatic office sends each)."""
    return list(conn.execute(
        select(payment_runs.c.id)
        .where(payment_runs.c.status == RunStatus.APPROVED.value)
        .order_by(payment_runs.c.id)
    ).scalars())


def send(
    conn: Connection, run_id: int, *, by: str, now: datetime, office: Office,
    files: list[OutFile] | None = None,
) -> list[OutFile]:
    """Send an approved run, once: its files are written and kept, its payments marked sent.

    The files are handed to the bank after this commits (:func:`deliver`): a crash before the
    commit leaves nothing at the bank, one after it leaves files waiting for delivery, which is
    retried under the same names until the bank has them (it ignores a name it has seen).

    ``files``: the run's files built beforehand by :func:`build_files` (with the same ``now``),
    outside this transaction; they are sent only if the run still holds exactly the payments
    they carry (a payment can only leave a run, cancelled by a stop), else :class:`RunChanged`."""
    row = _run_row(conn, run_id, lock=True)
    status = RunStatus(row.status)
    if status is RunStatus.SENT or status is RunStatus.CLOSED:
        raise RunStateError(
            f"payment run {row.label} was sent at {row.sent_at.astimezone(BAKU):%Y-%m-%d %H:%M} "
            f"Baku time by {row.sent_by}: a run is never sent twice"
        )
    if status is RunStatus.DRAFT:
        needed = approvals_needed(row.total, row.threshold)
        raise RunStateError(
            f"payment run {row.label} is not approved: it needs {needed} approval(s), "
            f"has {len(_approvers(row))}"
        )
    check_run(row.label, status, RunStatus.SENT)
    queued = (payments.c.run_id == run_id, payments.c.status == PaymentStatus.QUEUED.value)
    built = files is not None
    if files is None:
        files = build_files(conn, run_id, now, office)
    carried = sum(f.transactions for f in files)

    def changed(held: int) -> RunChanged:
        return RunChanged(
            f"payment run {row.label} holds {held} queued payment(s), its files were built with "
            f"{carried}: nothing sent, the files are built again"
        )

    if built and (held := conn.execute(select(func.count()).where(*queued)).scalar_one()) != carried:
        raise changed(held)
    marked = conn.execute(
        update(payments).where(*queued).values(status=PaymentStatus.SENT.value, sent_at=now)
    ).rowcount
    if built and marked != carried:  # a stop cancelled one in between (PostgreSQL): roll back
        raise changed(marked)
    for f in files:
        store_file(conn, direction="out", kind="pain.001", bank=f.bank, name=f.name, content=f.content,
                   transactions=f.transactions, total=f.total, at=now, run_id=run_id, kept=f.kept)
    conn.execute(update(payment_runs).where(payment_runs.c.id == run_id).values(
        status=RunStatus.SENT.value, sent_by=by, sent_at=now))
    return files


@dataclass(frozen=True)
class Undelivered:
    id: int
    name: str
    bank: str
    at: datetime
    content: bytes


def undelivered(conn: Connection, limit: int = 100) -> list[Undelivered]:
    """Files recorded as sent that the bank has not taken yet, oldest first."""
    f = payment_files
    rows = conn.execute(
        select(f.c.id, f.c.message_id, f.c.bank, f.c.at, f.c.content)
        .where(f.c.direction == "out", f.c.delivered_at.is_(None)).order_by(f.c.id).limit(limit)
    ).all()
    return [Undelivered(r.id, r.message_id, r.bank, r.at, gzip.decompress(r.content)) for r in rows]


def mark_delivered(conn: Connection, file_id: int, at: datetime) -> None:
    conn.execute(update(payment_files).where(payment_files.c.id == file_id).values(delivered_at=at))


def deliver(
    engine: Engine, bank: Bank, wall: Callable[[], datetime],
    also: Callable[[Connection], object] | None = None,
) -> int:
    """Hand the bank every file waiting for it, each recorded as delivered once it took it
    (with ``also``, in the same transaction: the message log's entry); returns how many. A
    failure stops here: the rest wait for the next try."""
    with engine.connect() as conn:
        waiting = undelivered(conn)
    for f in waiting:
        bank.send_file(f.name, f.content, at=f.at)
        with engine.begin() as conn:
            mark_delivered(conn, f.id, wall())
            if also is not None:
                also(conn)
    return len(waiting)


def retry(
    conn: Connection, payment_id: int, *, iban: str | None, by: str, now: datetime
) -> None:
    """Put a rejected or held payment back in the queue for the next run, as a new attempt
    (a new end-to-end id), with a corrected IBAN when given."""
    row = conn.execute(select(payments).where(payments.c.id == payment_id)).first()
    if row is None:
        raise PaymentStateError(f"no payment {payment_id}")
    check_payment(str(payment_id), PaymentStatus(row.status), PaymentStatus.SCHEDULED)
    ended = conn.execute(
        select(entitlements.c.end_date).where(entitlements.c.id == row.entitlement_id)
    ).scalar_one_or_none()
    if row.period != "lump" and ended is not None and row.period_start > ended:
        raise PaymentStateError(
            f"payment {payment_id} is for {row.period}, after its entitlement ended on {ended}: "
            "it is not owed"
        )
    new_iban = iban or row.iban
    reason = _hold_reason(new_iban)
    if reason is not None:
        raise PaymentStateError(f"payment {payment_id}: {reason}")
    conn.execute(
        update(payments).where(payments.c.id == payment_id, payments.c.status == row.status).values(
            status=PaymentStatus.SCHEDULED.value, iban=new_iban, attempt=row.attempt + 1,
            run_id=None, reason=f"retry by {by}" + (f" with IBAN {new_iban}" if iban else ""),
            reason_code=None, due_at=min(row.due_at, now),
        )
    )
