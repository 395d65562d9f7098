"""The simulated bank's file channel: pain.001 in, pain.002 and camt.054 out, over a real
(small) country file.

Every report is validated against the ISO XSDs in ``tests/data/iso20022``; statuses, reason
codes, amounts, times and ids are checked exactly.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from contextlib import closing
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from haqq.adapters.bank.iso20022 import (
    CreditTransfer,
    InvalidPaymentRun,
    MalformedBankFile,
    Notification,
    PaymentRun,
    StatusReport,
    credit_transfer_file,
    debit_credit_notification,
    payment_status_report,
    validate,
)
from haqq.adapters.institutions import SimulatedBank
from haqq.adapters.institutions.simulated import report_id
from haqq.country.schema import BAKU
from haqq.domain.errors import NaiveDatetime
from haqq.domain.iban import make_iban
from haqq.ports import Bank, BankFile, Transfer
from tests.helpers import TEST_DEBTOR, UNKNOWN_IBAN, country_copy, generated_country

DATA = Path(__file__).resolve().parents[1] / "data" / "iso20022"
PAIN_002_XSD = DATA / "pain.002.001.10.xsd"
CAMT_054_XSD = DATA / "camt.054.001.08.xsd"

AT = datetime(2025, 7, 1, 12, tzinfo=BAKU)
TODAY = date(2025, 7, 1)
DEBTOR = TEST_DEBTOR


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generated_country(tmp_path_factory, 3_000, 11)


@pytest.fixture
def country(pristine: Path, tmp_path: Path) -> Path:
    return country_copy(pristine, tmp_path)


def sql(path: Path, query: str, *args: object) -> list[Any]:
    with closing(sqlite3.connect(path)) as conn:
        return conn.execute(query, args).fetchall()


def open_accounts(path: Path, n: int = 2) -> list[tuple[str, str]]:
    """``(fin, iban)`` of accounts open all of 2025."""
    return [
        (fin, iban)
        for fin, iban in sql(
            path,
            "SELECT fin, iban FROM bank_accounts WHERE closed_at IS NULL "
            "AND opened_at < '2025-01-01' ORDER BY iban LIMIT ?",
            n,
        )
    ]


def closed_account(
    path: Path, before: str = "2025-07-01", after: str = "2000"
) -> tuple[str, str, datetime]:
    """``(fin, iban, closed_at)`` of an account closed between ``after`` and ``before``."""
    fin, iban, closed = sql(
        path,
        "SELECT fin, iban, closed_at FROM bank_accounts WHERE closed_at > ? AND closed_at < ? "
        "ORDER BY closed_at LIMIT 1",
        after,
        before,
    )[0]
    return fin, iban, datetime.fromisoformat(closed)


def pay(e2e: str, iban: str, amount: int) -> CreditTransfer:
    return CreditTransfer(
        end_to_end_id=e2e,
        amount_minor=amount,
        creditor_name=f"Vətəndaş {e2e}",
        creditor_iban=iban,
        creditor_bic=None,
        remittance=f"müavinət {e2e}",
    )


def pain001(
    name: str, transfers: Sequence[CreditTransfer], requested: date = TODAY, at: datetime = AT
) -> bytes:
    return credit_transfer_file(
        PaymentRun(
            message_id=name,
            created_at=at,
            debtor=DEBTOR,
            requested_execution=requested,
            transfers=transfers,
            payment_info_id=f"{name[:30]}-1",
        )
    )


def statuses(report: StatusReport) -> list[tuple[str, str, str | None, str | None]]:
    return [
        (t.end_to_end_id, t.status, t.reason_code, t.additional_info) for t in report.transactions
    ]


def read_status(file: BankFile) -> StatusReport:
    assert file.kind == "pain.002"
    validate(file.content, PAIN_002_XSD, "pain.002")
    return payment_status_report(file.content, schema=PAIN_002_XSD)


def read_notification(file: BankFile) -> Notification:
    assert file.kind == "camt.054"
    validate(file.content, CAMT_054_XSD, "camt.054")
    return debit_credit_notification(file.content, schema=CAMT_054_XSD)


def table_counts(path: Path) -> tuple[Any, ...]:
    return tuple(
        sql(path, f"SELECT count(*) FROM {t}")[0][0]  # noqa: S608 - fixed table names
        for t in ("bank_transfers", "bank_files_in", "bank_files_out")
    ) + (sql(path, "SELECT coalesce(sum(attempts), 0) FROM bank_transfers")[0][0],)


# ---- the file channel -------------------------------------------------------------------------


def test_a_file_is_paid_and_answered_by_a_status_report_and_a_notification(country: Path) -> None:
    bank: Bank = SimulatedBank(country)
    (fin, iban), (fin2, iban2) = open_accounts(country)
    _, closed_iban, closed_at = closed_account(country)
    assert closed_at < AT
    broken = iban[:-1] + str((int(iban[-1]) + 1) % 10)
    placeholder = make_iban("AZ", "HAQB" + "5" * 20)
    transfers = [
        pay("E2E-OPEN", iban, 45_000),
        pay("E2E-UNKNOWN", UNKNOWN_IBAN, 100),
        pay("E2E-CLOSED", closed_iban, 30_050),
        pay("E2E-BROKEN", placeholder, 200),
        pay("E2E-OPEN-2", iban2, 12_345),
    ]
    # The writer refuses a bad check digit; a bank still meets one.
    xml = pain001("RUN-2025-07-01", transfers).replace(placeholder.encode(), broken.encode())
    bank.send_file("RUN-2025-07-01", xml, at=AT)

    # The status report is ready two hours after the file arrived, not a second before.
    assert bank.files(as_of=AT + timedelta(hours=2) - timedelta(seconds=1)) == []
    ready = bank.files(as_of=AT + timedelta(hours=2))
    assert [(f.name, f.kind, f.at) for f in ready] == [
        ("PS-RUN-2025-07-01", "pain.002", AT + timedelta(hours=2))
    ]
    report = read_status(ready[0])
    assert report.message_id == "PS-RUN-2025-07-01"
    assert report.original_message_id == "RUN-2025-07-01"
    assert report.original_payment_info_id == "RUN-2025-07-01-1"
    assert report.created_at == AT + timedelta(hours=2)
    assert (report.group_status, report.payment_info_status) == ("PART", "PART")
    assert statuses(report) == [
        ("E2E-OPEN", "ACCP", None, None),
        ("E2E-UNKNOWN", "RJCT", "AC01", "incorrect account number"),
        ("E2E-CLOSED", "RJCT", "AC04", "closed account"),
        ("E2E-BROKEN", "RJCT", "AC01", "incorrect account number"),
        ("E2E-OPEN-2", "ACCP", None, None),
    ]

    # The notification comes at 10:00 the day after the payment, after the status report.
    next_day = datetime(2025, 7, 2, 10, tzinfo=BAKU)
    assert [f.kind for f in bank.files(as_of=next_day - timedelta(seconds=1))] == ["pain.002"]
    both = bank.files(as_of=next_day)
    assert bank.ready_files(as_of=next_day) == [f.name for f in both]
    assert bank.ready_files(as_of=next_day - timedelta(seconds=1)) == [both[0].name]
    assert [(f.name, f.kind, f.at) for f in both] == [
        ("PS-RUN-2025-07-01", "pain.002", AT + timedelta(hours=2)),
        ("NT-RUN-2025-07-01", "camt.054", next_day),
    ]
    notification = read_notification(both[1])
    assert notification.account == DEBTOR.iban
    assert notification.created_at == next_day
    assert [
        (e.end_to_end_id, e.amount_minor, e.currency, e.credit_debit, e.status, e.booking_date)
        for e in notification.entries
    ] == [
        ("E2E-OPEN", 45_000, "AZN", "DBIT", "BOOK", TODAY),
        ("E2E-OPEN-2", 12_345, "AZN", "DBIT", "BOOK", TODAY),
    ]
    accepted = {t.end_to_end_id for t in report.transactions if t.status == "ACCP"}
    amounts = {t.end_to_end_id: t.amount_minor for t in transfers}
    assert sum(e.amount_minor for e in notification.entries) == sum(amounts[k] for k in accepted)
    assert sum(e.amount_minor for e in notification.entries) == 57_345

    # Paid exactly as transfer() pays: keyed by end-to-end id, at the payment moment, with the
    # account holder's FIN.
    rows = sql(
        country,
        "SELECT key, fin, iban, amount, at, status, reason FROM bank_transfers ORDER BY key",
    )
    assert rows == [
        (
            "E2E-BROKEN",
            "",
            broken,
            200,
            AT.isoformat(),
            "rejected",
            "AC01 incorrect account number",
        ),
        (
            "E2E-CLOSED",
            sql(country, "SELECT fin FROM bank_accounts WHERE iban = ?", closed_iban)[0][0],
            closed_iban,
            30_050,
            AT.isoformat(),
            "rejected",
            "AC04 closed account",
        ),
        ("E2E-OPEN", fin, iban, 45_000, AT.isoformat(), "accepted", None),
        ("E2E-OPEN-2", fin2, iban2, 12_345, AT.isoformat(), "accepted", None),
        (
            "E2E-UNKNOWN",
            "",
            UNKNOWN_IBAN,
            100,
            AT.isoformat(),
            "rejected",
            "AC01 incorrect account number",
        ),
    ]

    # Acknowledged reports are not returned again; the others still are.
    bank.ack_files(["PS-RUN-2025-07-01", "NO-SUCH-FILE"])
    assert [f.name for f in bank.files(as_of=next_day)] == ["NT-RUN-2025-07-01"]
    bank.ack_files(["NT-RUN-2025-07-01"])
    assert bank.files(as_of=next_day + timedelta(days=30)) == []


def test_resending_a_file_name_changes_nothing(country: Path) -> None:
    bank = SimulatedBank(country)
    (_, iban), (_, iban2) = open_accounts(country)
    bank.send_file("RUN-A", pain001("RUN-A", [pay("E2E-1", iban, 1_000)]), at=AT)
    before = table_counts(country)
    assert before == (1, 1, 2, 1)
    # Same name, even with other content and later: ignored entirely, not even an attempt.
    other = pain001("RUN-A", [pay("E2E-1", iban, 9_999), pay("E2E-2", iban2, 500)])
    bank.send_file("RUN-A", other, at=AT + timedelta(days=1))
    bank.send_file("RUN-A", b"not even xml", at=AT + timedelta(days=2))
    assert table_counts(country) == before
    assert sql(country, "SELECT key, amount FROM bank_transfers") == [("E2E-1", 1_000)]
    files = bank.files(as_of=AT + timedelta(days=10))
    assert [f.name for f in files] == ["PS-RUN-A", "NT-RUN-A"]


def test_an_end_to_end_id_seen_before_is_paid_once_and_keeps_its_first_result(
    country: Path,
) -> None:
    bank = SimulatedBank(country)
    (_, iban), (_, iban2) = open_accounts(country)
    _, closed_iban, _ = closed_account(country)
    bank.send_file(
        "RUN-1",
        pain001("RUN-1", [pay("E2E-PAID", iban, 45_000), pay("E2E-CLOSED", closed_iban, 700)]),
        at=AT,
    )
    # The second file repeats both (the paid one with another amount, the rejected one now to
    # an open account) and adds a new one.
    later = AT + timedelta(days=3)
    second = [
        pay("E2E-PAID", iban, 99_999),
        pay("E2E-CLOSED", iban2, 700),
        pay("E2E-NEW", iban2, 2_500),
    ]
    bank.send_file("RUN-2", pain001("RUN-2", second, requested=later.date(), at=later), at=later)
    assert sql(
        country, "SELECT key, amount, status, attempts FROM bank_transfers ORDER BY key"
    ) == [
        ("E2E-CLOSED", 700, "rejected", 2),
        ("E2E-NEW", 2_500, "accepted", 1),
        ("E2E-PAID", 45_000, "accepted", 2),
    ]
    files = {f.name: f for f in bank.files(as_of=later + timedelta(days=2))}
    assert set(files) == {"PS-RUN-1", "NT-RUN-1", "PS-RUN-2", "NT-RUN-2"}
    report = read_status(files["PS-RUN-2"])
    assert report.group_status == "PART"
    assert statuses(report) == [
        ("E2E-PAID", "ACCP", None, None),
        ("E2E-CLOSED", "RJCT", "AC04", "closed account"),
        ("E2E-NEW", "ACCP", None, None),
    ]
    # The second notification books only what the second file paid.
    entries = read_notification(files["NT-RUN-2"]).entries
    assert [(e.end_to_end_id, e.amount_minor, e.booking_date) for e in entries] == [
        ("E2E-NEW", 2_500, later.date())
    ]
    # The direct channel shares the keys: nothing is paid twice across channels.
    again = bank.transfer([Transfer("E2E-NEW", "", iban2, 2_500, "x", later)])
    assert again["E2E-NEW"].status == "accepted"
    assert sql(country, "SELECT count(*), sum(amount) FROM bank_transfers")[0] == (3, 48_200)


def test_a_transaction_paid_directly_is_reported_not_paid_by_a_file(country: Path) -> None:
    bank = SimulatedBank(country)
    (fin, iban), _ = open_accounts(country)
    bank.transfer([Transfer("E2E-DIRECT", fin, iban, 5_000, "direct", AT)])
    bank.send_file("RUN-D", pain001("RUN-D", [pay("E2E-DIRECT", iban, 5_000)]), at=AT)
    files = bank.files(as_of=AT + timedelta(days=2))
    assert [f.kind for f in files] == ["pain.002"]  # nothing new was paid: no notification
    assert statuses(read_status(files[0])) == [("E2E-DIRECT", "ACCP", None, None)]
    assert read_status(files[0]).group_status == "ACCP"
    assert sql(country, "SELECT amount, attempts FROM bank_transfers") == [(5_000, 2)]


def test_a_transaction_twice_in_one_file_is_paid_once(country: Path) -> None:
    bank = SimulatedBank(country)
    (_, iban), _ = open_accounts(country)
    xml = pain001("RUN-T", [pay("E2E-T1", iban, 100), pay("E2E-T2", iban, 200)])
    twice = xml.replace(b"E2E-T2", b"E2E-T1")  # the writer refuses duplicates; a bank meets them
    bank.send_file("RUN-T", twice, at=AT)
    files = bank.files(as_of=AT + timedelta(days=2))
    assert statuses(read_status(files[0])) == [
        ("E2E-T1", "ACCP", None, None),
        ("E2E-T1", "ACCP", None, None),
    ]
    entries = read_notification(files[1]).entries
    assert [(e.end_to_end_id, e.amount_minor) for e in entries] == [("E2E-T1", 100)]
    assert sql(country, "SELECT key, amount, attempts FROM bank_transfers") == [("E2E-T1", 100, 2)]


def test_an_all_rejected_file_is_rjct_and_has_no_notification(country: Path) -> None:
    bank = SimulatedBank(country)
    _, closed_iban, _ = closed_account(country)
    xml = pain001("RUN-R", [pay("E2E-R1", UNKNOWN_IBAN, 100), pay("E2E-R2", closed_iban, 1)])
    bank.send_file("RUN-R", xml, at=AT)
    files = bank.files(as_of=AT + timedelta(days=5))
    assert [f.kind for f in files] == ["pain.002"]
    report = read_status(files[0])
    assert (report.group_status, report.payment_info_status) == ("RJCT", "RJCT")
    assert [t.reason_code for t in report.transactions] == ["AC01", "AC04"]


def test_a_zero_amount_is_am12_and_another_currency_am03(country: Path) -> None:
    bank = SimulatedBank(country)
    (_, iban), (_, iban2) = open_accounts(country)
    xml = pain001(
        "RUN-Z", [pay("E2E-Z", iban, 1), pay("E2E-USD", iban2, 50_000), pay("E2E-OK", iban2, 7)]
    )
    xml = xml.replace(b'Ccy="AZN">0.01<', b'Ccy="AZN">0.00<', 1)
    xml = xml.replace(b'Ccy="AZN">500.00<', b'Ccy="USD">500.00<', 1)
    xml = xml.replace(b"<CtrlSum>500.08</CtrlSum>", b"<CtrlSum>500.07</CtrlSum>")
    bank.send_file("RUN-Z", xml, at=AT)
    files = bank.files(as_of=AT + timedelta(days=5))
    assert statuses(read_status(files[0])) == [
        ("E2E-Z", "RJCT", "AM12", "invalid amount"),
        ("E2E-USD", "RJCT", "AM03", "currency not allowed"),
        ("E2E-OK", "ACCP", None, None),
    ]
    assert [(e.end_to_end_id, e.amount_minor) for e in read_notification(files[1]).entries] == [
        ("E2E-OK", 7)
    ]


def test_payment_waits_for_the_requested_execution_date(country: Path) -> None:
    """Paid at 09:00 on the requested date: an account closing meanwhile is AC04 (checked at the
    payment, not at the file's arrival), the notification follows the payment."""
    bank = SimulatedBank(country)
    (_, iban), _ = open_accounts(country)
    _, closing_iban, closes = closed_account(country, before="2026", after="2025-07-10")
    sent = closes - timedelta(days=2)
    execution = (closes + timedelta(days=1)).date()
    paid_at = datetime(execution.year, execution.month, execution.day, 9, tzinfo=BAKU)
    xml = pain001(
        "RUN-F",
        [pay("E2E-F1", iban, 800), pay("E2E-F2", closing_iban, 900)],
        requested=execution,
        at=sent,
    )
    bank.send_file("RUN-F", xml, at=sent)
    assert [f.at for f in bank.files(as_of=paid_at + timedelta(days=5))] == [
        sent + timedelta(hours=2),
        paid_at + timedelta(days=1, hours=1),
    ]
    files = bank.files(as_of=paid_at + timedelta(days=5))
    assert statuses(read_status(files[0])) == [
        ("E2E-F1", "ACCP", None, None),
        ("E2E-F2", "RJCT", "AC04", "closed account"),
    ]
    assert [e.booking_date for e in read_notification(files[1]).entries] == [execution]
    assert sql(country, "SELECT key, at FROM bank_transfers ORDER BY key") == [
        ("E2E-F1", paid_at.isoformat()),
        ("E2E-F2", paid_at.isoformat()),
    ]
    # A requested date already past is paid when the file arrives.
    late = AT + timedelta(hours=3)
    bank.send_file(
        "RUN-P", pain001("RUN-P", [pay("E2E-P", iban, 10)], requested=date(2025, 6, 1)), at=late
    )
    assert sql(country, "SELECT at FROM bank_transfers WHERE key = 'E2E-P'") == [
        (late.isoformat(),)
    ]


def test_report_ids_are_unique_short_and_derived_from_the_name(country: Path) -> None:
    bank = SimulatedBank(country)
    (_, iban), _ = open_accounts(country)
    long_a, long_b = "R" * 34 + "A", "R" * 34 + "B"
    for n, name in enumerate([long_a, long_b, "R" * 32]):
        bank.send_file(name, pain001(name, [pay(f"E2E-L{n}", iban, 10)]), at=AT)
    names = [f.name for f in bank.files(as_of=AT + timedelta(days=2))]
    assert len(names) == len(set(names)) == 6
    assert all(len(n) <= 35 for n in names)
    assert report_id("PS", "R" * 32) == "PS-" + "R" * 32
    assert report_id("PS", long_a).startswith("PS:") and len(report_id("PS", long_a)) == 35
    assert report_id("PS", long_a) == report_id("PS", long_a) != report_id("PS", long_b)
    assert set(names) == {report_id(p, n) for p in ("PS", "NT") for n in (long_a, long_b, "R" * 32)}
    for f in bank.files(as_of=AT + timedelta(days=2)):
        (read_status if f.kind == "pain.002" else read_notification)(f)


def test_an_unreadable_file_is_refused_and_not_recorded(country: Path) -> None:
    bank = SimulatedBank(country)
    (_, iban), _ = open_accounts(country)
    good = pain001("RUN-M", [pay("E2E-M", iban, 10)])
    with pytest.raises(MalformedBankFile, match="not well-formed"):
        bank.send_file("RUN-M", good[:-20], at=AT)
    with pytest.raises(MalformedBankFile, match="MsgId is 'RUN-M', not 'RUN-X'"):
        bank.send_file("RUN-X", good, at=AT)
    with pytest.raises(MalformedBankFile, match="end-to-end id 'E2E M'"):
        bank.send_file("RUN-M", good.replace(b"E2E-M", b"E2E M"), at=AT)
    with pytest.raises(InvalidPaymentRun, match="file name"):
        bank.send_file("RUN//M", good, at=AT)
    with pytest.raises(NaiveDatetime):
        bank.send_file("RUN-M", good, at=AT.replace(tzinfo=None))
    with pytest.raises(NaiveDatetime):
        bank.files(as_of=AT.replace(tzinfo=None))
    assert table_counts(country) == (0, 0, 0, 0)
    # Nothing was recorded, so the corrected file goes through under the same name.
    bank.send_file("RUN-M", good, at=AT)
    assert table_counts(country) == (1, 1, 2, 1)


def test_a_country_file_from_before_the_file_channel_gets_its_tables(country: Path) -> None:
    with closing(sqlite3.connect(country)) as conn:
        conn.execute("DROP TABLE IF EXISTS bank_files_in")
        conn.execute("DROP TABLE IF EXISTS bank_files_out")
        conn.commit()
    bank = SimulatedBank(country)
    assert bank.files(as_of=AT) == []
    (_, iban), _ = open_accounts(country)
    bank.send_file("RUN-O", pain001("RUN-O", [pay("E2E-O", iban, 10)]), at=AT)
    assert len(bank.files(as_of=AT + timedelta(days=2))) == 2
    assert bank.file("PS-RUN-O") is not None and bank.file("PS-NONE") is None


def test_a_payment_made_while_a_file_was_being_read_is_not_made_twice(country: Path) -> None:
    """The file's payments are decided before the write lock is taken; an end-to-end id paid
    in between (by another process) is found under the lock and the file decided again."""
    (_, iban), (_, iban2) = open_accounts(country)

    class Racing(SimulatedBank):
        raced = False

        def _plan(self, conn: Any, transfers: Any, refusals: Any = None) -> Any:
            plan = super()._plan(conn, transfers, refusals)
            if not self.raced:
                self.raced = True
                other = SimulatedBank(country)
                other.transfer([Transfer("E2E-RACE", "", iban, 999, "direct", AT)])
                other.close()
            return plan

    bank = Racing(country)
    xml = pain001("RUN-RACE", [pay("E2E-RACE", iban, 100), pay("E2E-CALM", iban2, 200)])
    bank.send_file("RUN-RACE", xml, at=AT)
    assert bank.raced
    assert sql(country, "SELECT key, amount, attempts FROM bank_transfers ORDER BY key") == [
        ("E2E-CALM", 200, 1),
        ("E2E-RACE", 999, 2),
    ]
    files = bank.files(as_of=AT + timedelta(days=2))
    assert statuses(read_status(files[0])) == [
        ("E2E-RACE", "ACCP", None, None),
        ("E2E-CALM", "ACCP", None, None),
    ]
    entries = read_notification(files[1]).entries
    assert [(e.end_to_end_id, e.amount_minor) for e in entries] == [("E2E-CALM", 200)]
