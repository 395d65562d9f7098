"""Bank reports in: pain.002 status reports and camt.054 notifications, applied all or nothing.

A ``pain.002`` makes sent payments accepted (paid) or rejected with the bank's reason code; a
rejected payment waits for a person to correct and retry it. A ``camt.054`` confirms settlement
(a booked debit per payment). A file is refused whole, with what is wrong, when it is malformed
or breaks its schema, when it was imported before, when it names a payment haqq never sent (or
an older attempt of it), or when it contradicts what an earlier report said. Money paid for a
period after the entitlement ended (a death registered while the file was at the bank) becomes a
recovery claim as soon as the payment is known to be paid.
"""

from __future__ import annotations

import gzip
import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, time
from typing import Any

import structlog
from sqlalchemy import Connection, and_, delete, or_, select, update

from haqq.adapters.bank.iso20022 import (
    BankFileError,
    MalformedBankFile,
    Notification,
    StatusReport,
    debit_credit_notification,
    payment_status_report,
)
from haqq.adapters.bank.iso20022_read import credit_transfer_initiation
from haqq.adapters.bank.schemas import message_of, validate
from haqq.adapters.store import bulk
from haqq.adapters.store.repository import chunks
from haqq.adapters.store.schema import (
    entitlements,
    payment_files,
    payment_runs,
    payments,
    recovery_claims,
)
from haqq.domain.payments import PaymentStatus, RunStatus, explain_reason, parse_end_to_end_id
from haqq.pipeline import choices
from haqq.pipeline.runs import evidence, store_file
from haqq.pipeline.work import BAKU
from haqq.ports import BankFile

log = structlog.get_logger("haqq.bank_reports")

#: Transaction statuses that mean the bank took the payment (ISO 20022 ExternalPaymentTransactionStatus1Code).
ACCEPTED = frozenset({"ACCP", "ACSP", "ACSC", "ACWC", "ACFC"})
REJECTED = frozenset({"RJCT"})


class ReportRefused(BankFileError):
    """A bank report that cannot be applied; nothing of it was."""


class DuplicateReport(ReportRefused):
    """The same file (or the same message) was imported before."""


class UnknownPayments(ReportRefused):
    """The report names payments haqq never sent in this form."""


class ConflictingReport(ReportRefused):
    """The report contradicts what the bank reported earlier."""


@dataclass(frozen=True)
class ImportResult:
    file_id: int
    kind: str
    message_id: str
    accepted: int = 0
    rejected: int = 0
    settled: int = 0
    unchanged: int = 0
    claims: int = 0
    validated: bool = False


def _sample(ids: Sequence[str]) -> str:
    shown = ", ".join(ids[:5])
    return shown + (f" and {len(ids) - 5} more" if len(ids) > 5 else "")


def _check_new(conn: Connection, digest: str, kind: str, message_id: str) -> None:
    found = conn.execute(
        select(payment_files.c.id, payment_files.c.at, payment_files.c.message_id, payment_files.c.note).where(
            (payment_files.c.sha256 == digest)
            | and_(payment_files.c.direction == "in", payment_files.c.kind == kind,
                   payment_files.c.message_id == message_id)
        )
    ).all()
    # A copy kept as refused applied nothing: it gives way to this import (and comes back if
    # this one fails too, with the transaction).
    refused = [r.id for r in found if (r.note or "").startswith("refused")]
    if refused:
        conn.execute(delete(payment_files).where(payment_files.c.id.in_(refused)))
    seen = next((r for r in found if r.id not in refused), None)
    if seen is not None:
        raise DuplicateReport(
            f"{kind} {message_id} was imported already (file {seen.id}, message {seen.message_id}, "
            f"{seen.at.astimezone(BAKU):%Y-%m-%d %H:%M} Baku time): nothing applied twice"
        )


def _payments(conn: Connection, e2e_ids: Iterable[str], what: str) -> dict[str, Any]:
    """The payments behind these end-to-end ids; refuses the file if any is unknown."""
    wanted: dict[tuple[str, str], tuple[str, int]] = {}
    unknown: list[str] = []
    for e2e in dict.fromkeys(e2e_ids):
        parsed = parse_end_to_end_id(e2e)
        if parsed is None:
            unknown.append(e2e)
        else:
            wanted[(parsed[0], parsed[1])] = (e2e, parsed[2])
    found: dict[str, Any] = {}
    periods = sorted({period for _, period in wanted})
    for part in chunks(sorted({entitlement for entitlement, _ in wanted})):
        for row in conn.execute(
            select(payments.c.id, payments.c.entitlement_id, payments.c.period, payments.c.attempt,
                   payments.c.status, payments.c.amount, payments.c.run_id)
            .where(payments.c.entitlement_id.in_(part), payments.c.period.in_(periods))
        ):
            hit = wanted.get((row.entitlement_id, row.period))
            if hit is not None and row.attempt == hit[1]:
                found[hit[0]] = row
    unknown += [e2e for e2e, _ in wanted.values() if e2e not in found]
    if unknown:
        raise UnknownPayments(
            f"{what} names {len(unknown)} payment(s) haqq did not send (or not in this attempt): "
            f"{_sample(sorted(unknown))}; nothing applied"
        )
    return found


def _sent_in(conn: Connection, original: str) -> Any:
    """The pain.001 haqq sent under this name: its run, its count and content (None: never)."""
    return conn.execute(
        select(payment_files.c.run_id, payment_files.c.transactions, payment_files.c.content).where(
            payment_files.c.direction == "out", payment_files.c.kind == "pain.001",
            payment_files.c.message_id == original,
        )
    ).first()


def claim_overpaid(conn: Connection, ids: Sequence[int], now: datetime) -> int:
    """Recovery claims for paid payments of periods after their entitlement ended."""
    made = 0
    for part in chunks(sorted(ids)):
        rows = conn.execute(
            select(payments.c.id, payments.c.fin, payments.c.amount, entitlements.c.ended_reason)
            .join(entitlements, entitlements.c.id == payments.c.entitlement_id)
            .where(
                payments.c.id.in_(part),
                payments.c.status == PaymentStatus.ACCEPTED.value,
                payments.c.period != "lump",
                entitlements.c.end_date.is_not(None),
                payments.c.period_start > entitlements.c.end_date,
                ~select(recovery_claims.c.id).where(recovery_claims.c.payment_id == payments.c.id).exists(),
            )
        ).all()
        if rows:
            conn.execute(
                recovery_claims.insert(),
                [{"payment_id": r.id, "fin": r.fin, "amount": r.amount,
                  "reason": r.ended_reason or "entitlement ended", "status": "open", "created_at": now}
                 for r in rows],
            )
            made += len(rows)
    return made


def _apply_status_report(
    conn: Connection, content: bytes, validated: bool, report: StatusReport, *, bank: str, now: datetime,
    kept: tuple[bytes, str],
) -> ImportResult:
    what = f"status report {report.message_id}"
    _check_new(conn, kept[1], "pain.002", report.message_id)
    sent = _sent_in(conn, report.original_message_id)
    if sent is None:
        raise UnknownPayments(
            f"{what} reports on {report.original_message_id}, a file haqq never sent; nothing applied"
        )
    run_id = sent.run_id
    outcomes: dict[str, tuple[str, str | None, str | None]] = {
        t.end_to_end_id: (t.status, t.reason_code, t.additional_info) for t in report.transactions
    }
    group = report.payment_info_status or report.group_status
    if group in ACCEPTED | REJECTED and len(outcomes) < sent.transactions:
        # A status for the whole file holds for each payment the report does not name (only
        # then is the file read again, for the payments it carried).
        for t in credit_transfer_initiation(gzip.decompress(sent.content)).transfers:
            outcomes.setdefault(t.end_to_end_id, (group, report.group_reason_code, None))
    rows = _payments(conn, outcomes, what)
    stray = sorted(e2e for e2e, row in rows.items() if row.run_id != run_id)
    if stray:
        raise UnknownPayments(
            f"{what} names {len(stray)} payment(s) not in {report.original_message_id}: "
            f"{_sample(stray)}; nothing applied"
        )
    accepted: list[dict[str, Any]] = []
    rejected: list[dict[str, Any]] = []
    unchanged = 0
    conflicts: list[str] = []
    for e2e, (status, code, info) in outcomes.items():
        row = rows[e2e]
        now_status = PaymentStatus(row.status)
        target = (PaymentStatus.ACCEPTED if status in ACCEPTED
                  else PaymentStatus.REJECTED if status in REJECTED else None)
        if target is None or now_status is target:
            unchanged += 1
        elif now_status is not PaymentStatus.SENT:
            conflicts.append(f"{e2e} is {now_status}, the report says {status}")
        elif target is PaymentStatus.ACCEPTED:
            accepted.append({"status": target.value, "id": row.id})
        else:
            reason = " ".join(x for x in (code, info or explain_reason(code)) if x) or "rejected by the bank"
            rejected.append({"status": target.value, "reason_code": (code or "")[:4] or None,
                             "reason": reason, "id": row.id})
    if conflicts:
        raise ConflictingReport(f"{what} contradicts earlier reports: {_sample(conflicts)}; nothing applied")
    sent = {"status": PaymentStatus.SENT.value}
    if accepted:
        bulk.update_rows(conn, payments, "id", accepted, only_if=sent)
    if rejected:
        bulk.update_rows(conn, payments, "id", rejected, only_if=sent)
    claims = claim_overpaid(conn, [a["id"] for a in accepted], now)
    choices.tell_paid_late(conn, [a["id"] for a in accepted], at=now, bank=bank)
    cancel_unowed(conn, [r["id"] for r in rejected])
    close_runs(conn, [run_id])
    file_id = _store(conn, content, "pain.002", bank, report.message_id, run_id,
                     report.original_message_id, len(outcomes), sum(r.amount for r in rows.values()), now, kept)
    return ImportResult(file_id, "pain.002", report.message_id, len(accepted), len(rejected), 0,
                        unchanged, claims, validated)


def _apply_notification(
    conn: Connection, content: bytes, validated: bool, notice: Notification, *, bank: str, now: datetime,
    kept: tuple[bytes, str],
) -> ImportResult:
    what = f"notification {notice.message_id}"
    _check_new(conn, kept[1], "camt.054", notice.message_id)
    ours = [e for e in notice.entries
            if e.credit_debit == "DBIT" and e.status == "BOOK" and e.end_to_end_id is not None]
    rows = _payments(conn, (e.end_to_end_id for e in ours if e.end_to_end_id), what)
    problems: list[str] = []
    settle: list[dict[str, Any]] = []
    unchanged = 0
    for e in ours:
        row = rows[e.end_to_end_id or ""]
        if e.amount_minor != row.amount:
            problems.append(f"{e.end_to_end_id} booked {e.amount_minor} qəpik, the payment is {row.amount}")
        elif row.status not in (PaymentStatus.SENT.value, PaymentStatus.ACCEPTED.value):
            problems.append(f"{e.end_to_end_id} is {row.status}, yet booked")
        else:
            day = e.booking_date or now.astimezone(BAKU).date()
            settle.append({"status": PaymentStatus.ACCEPTED.value,
                           "settled_at": datetime.combine(day, time(0), tzinfo=BAKU), "id": row.id})
    if problems:
        raise ConflictingReport(f"{what} does not match haqq's payments: {_sample(problems)}; nothing applied")
    if settle:
        bulk.update_rows(conn, payments, "id", settle)
    claims = claim_overpaid(conn, [s["id"] for s in settle], now)
    close_runs(conn, [r.run_id for r in rows.values()])
    file_id = _store(conn, content, "camt.054", bank, notice.message_id, None, None, len(ours),
                     sum(e.amount_minor for e in ours), now, kept)
    return ImportResult(file_id, "camt.054", notice.message_id, 0, 0, len(settle), unchanged, claims, validated)


def cancel_unowed(conn: Connection, ids: Sequence[int]) -> int:
    """Cancel rejected payments of periods after their entitlement ended (the stop came while
    they were at the bank): not owed, so never retried."""
    cancelled: list[dict[str, Any]] = []
    for part in chunks(sorted(ids)):
        for row in conn.execute(
            select(payments.c.id, entitlements.c.ended_reason)
            .join(entitlements, entitlements.c.id == payments.c.entitlement_id)
            .where(
                payments.c.id.in_(part),
                payments.c.status == PaymentStatus.REJECTED.value,
                payments.c.period != "lump",
                entitlements.c.end_date.is_not(None),
                payments.c.period_start > entitlements.c.end_date,
            )
        ):
            cancelled.append({"status": PaymentStatus.CANCELLED.value,
                              "reason": row.ended_reason or "entitlement ended", "id": row.id})
    if cancelled:
        bulk.update_rows(conn, payments, "id", cancelled, only_if={"status": PaymentStatus.REJECTED.value})
    return len(cancelled)


def close_runs(conn: Connection, run_ids: Iterable[int | None]) -> int:
    """Close the sent runs whose every payment has its final answer (settled or rejected)."""
    closed = 0
    for run_id in {r for r in run_ids if r is not None}:
        waiting = conn.execute(
            select(payments.c.id).where(
                payments.c.run_id == run_id,
                or_(payments.c.status == PaymentStatus.SENT.value,
                    and_(payments.c.status == PaymentStatus.ACCEPTED.value, payments.c.settled_at.is_(None))),
            ).limit(1)
        ).first()
        if waiting is None:
            closed += conn.execute(
                update(payment_runs)
                .where(payment_runs.c.id == run_id, payment_runs.c.status == RunStatus.SENT.value)
                .values(status=RunStatus.CLOSED.value)
            ).rowcount
    return closed


def _store(
    conn: Connection, content: bytes, kind: str, bank: str, name: str, run_id: int | None,
    original: str | None, transactions: int, total: int, now: datetime, kept: tuple[bytes, str],
) -> int:
    return store_file(conn, direction="in", kind=kind, bank=bank, name=name, content=content,
                      transactions=transactions, total=total, at=now, run_id=run_id, original=original,
                      kept=kept)


@dataclass(frozen=True)
class Read:
    """A bank report read (and checked against its schema when one is configured), not yet
    applied: reading needs no store, so it happens before the write transaction."""

    content: bytes
    validated: bool
    report: StatusReport | Notification
    #: As kept for evidence (see :func:`evidence`); its SHA-256 also tells a second copy.
    kept: tuple[bytes, str]


def read(content: bytes) -> Read:
    """Read a pain.002 or camt.054; raises :class:`MalformedBankFile` naming what is wrong."""
    message = message_of(content)
    if message == "pain.002.001.10":
        return Read(content, validate(content, message), payment_status_report(content), evidence(content))
    if message == "camt.054.001.08":
        return Read(content, validate(content, message), debit_credit_notification(content), evidence(content))
    raise MalformedBankFile(
        "not a bank report haqq reads: expected pain.002.001.10 or camt.054.001.08"
        + (f", got {message}" if message else "")
    )


def apply(conn: Connection, got: Read, *, bank: str, now: datetime) -> ImportResult:
    """Apply a report read before: all of it, or nothing (an error says why)."""
    if isinstance(got.report, StatusReport):
        return _apply_status_report(conn, got.content, got.validated, got.report, bank=bank, now=now,
                                    kept=got.kept)
    return _apply_notification(conn, got.content, got.validated, got.report, bank=bank, now=now,
                               kept=got.kept)


def import_file(conn: Connection, content: bytes, *, bank: str, now: datetime) -> ImportResult:
    """Read and apply one bank report, whichever kind it is; refuses what it cannot apply whole."""
    return apply(conn, read(content), bank=bank, now=now)


def read_safely(content: bytes) -> Read | BankFileError:
    try:
        return read(content)
    except BankFileError as error:
        return error


def take(
    conn: Connection, report: BankFile, *, bank: str, now: datetime, got: Read | BankFileError | None = None,
) -> ImportResult | BankFileError:
    """Apply a report the bank delivered (``got``: read before, outside the transaction), in a
    savepoint; one that cannot be applied is kept with why (for a person) instead of stopping the
    office. Either way the bank may be told it was taken: returns what was applied, or why it
    was refused."""
    try:
        with conn.begin_nested():
            got = read(report.content) if got is None else got
            if isinstance(got, BankFileError):
                raise got
            return apply(conn, got, bank=bank, now=now)
    except BankFileError as error:
        log.error("bank report refused", file=report.name, kind=report.kind, error=str(error))
        digest = hashlib.sha256(report.content).hexdigest()
        if conn.execute(select(payment_files.c.id).where(payment_files.c.sha256 == digest)).first() is None:
            store_file(conn, direction="in", kind=report.kind, bank=bank, name=report.name[:35],
                       content=report.content, transactions=0, total=0, at=now,
                       note=f"refused: {error}")
        return error
