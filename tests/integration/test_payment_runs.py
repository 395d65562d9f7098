"""Payment runs with a manual payment office, on SQLite and PostgreSQL: preview, two approvals
above the threshold, one send, the bank's pain.002 and camt.054 taken in, reconciliation,
rejections retried, and every kind of bad report refused whole."""

from __future__ import annotations

import gzip
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, select, text, update

from haqq.adapters.bank.iso20022 import (
    MalformedBankFile,
    StatusReport,
    TransactionStatus,
    credit_transfer_initiation,
    status_report_file,
)
from haqq.adapters.bank.schemas import validate
from haqq.adapters.store import db
from haqq.adapters.store.reconcile import reconcile
from haqq.adapters.store.schema import notifications, payment_files, payment_runs, payments
from haqq.bootstrap import Haqq, ManualClock, Settings, build
from haqq.domain.payments import ApprovalError, PaymentStateError, RunStateError, end_to_end_id
from haqq.pipeline import bank_reports, runs
from haqq.pipeline.work import BAKU
from haqq.pipeline.worker import OFFICE_ROUND
from tests.helpers import (
    UNKNOWN_IBAN,
    catalogue_of,
    country_copy,
    country_query,
    event_json,
    generated_country,
    rows,
    run_at,
    take_events,
)

XSD = Path(__file__).resolve().parents[1] / "data" / "iso20022"
START = datetime(2025, 3, 1, 12, tzinfo=BAKU)
AFTER = START + timedelta(days=12)


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generated_country(tmp_path_factory, population=20_000, seed=5)


@pytest.fixture
def country_file(generated: Path, tmp_path: Path) -> Path:
    return country_copy(generated, tmp_path)


@pytest.fixture(scope="module")
def births_only(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return catalogue_of(tmp_path_factory.mktemp("catalogue"), ["birth_benefit"])


@pytest.fixture
def xsd(monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HAQQ_ISO20022_XSD", str(XSD))
    return XSD


def manual_app(store_url: str, country: Path, catalogue: Path, threshold: int = 100_000_000) -> Haqq:
    app = build(Settings(database_url=store_url, country=country, catalogue_dir=catalogue,
                         payment_office="manual", approval_threshold=threshold))
    db.upgrade(app.engine)
    return app


def births(app: Haqq, country: Path, n: int = 8, until: tuple[datetime, ...] | None = None) -> None:
    """Take ``n`` births of February in and run the pipeline until their payments are due (or
    at the moments ``until``)."""
    found = country_query(
        country,
        "SELECT * FROM life_events WHERE type = 'birth_registered' "
        "AND occurred_at BETWEEN '2025-02-01' AND '2025-02-28' ORDER BY occurred_at LIMIT ?",
        (n,),
    )
    assert len(found) == n
    take_events(app, [event_json(r) for r in found], START)
    run_at(app, *(until or (START + timedelta(hours=1), START + timedelta(days=6), AFTER)))


def statuses(engine: Engine) -> dict[str, int]:
    out: dict[str, int] = {}
    for p in rows(engine, payments):
        out[p["status"]] = out.get(p["status"], 0) + 1
    return out


def take_reports(app: Haqq, as_of: datetime) -> list[bank_reports.ImportResult]:
    results = []
    for f in app.bank.files(as_of=as_of):
        with app.engine.begin() as conn:
            results.append(bank_reports.import_file(conn, f.content, bank=app.bank.name, now=as_of))
        app.bank.ack_files([f.name])
    return results


def sent_file(app: Haqq) -> bytes:
    with app.engine.connect() as conn:
        content = conn.execute(select(payment_files.c.content).where(payment_files.c.kind == "pain.001")).scalar_one()
    return gzip.decompress(content)


def test_a_run_needs_two_approvers_above_the_threshold_is_sent_once_and_reconciles(
    store_url: str, country_file: Path, births_only: Path, xsd: Path
) -> None:
    app = manual_app(store_url, country_file, births_only, threshold=1)  # every run is "large"
    births(app, country_file)
    # With people in the payment office, the worker schedules payments but sends none.
    assert set(statuses(app.engine)) == {"scheduled"}
    paid = len(rows(app.engine, payments))
    with app.engine.begin() as conn:
        preview = runs.preview(conn, AFTER)
        assert list(preview.runs) == [f"daily {AFTER.date().isoformat()}"]
        (n, total), = preview.runs.values()
        assert n == paid >= 6 and total == 30_000 * n
        made = runs.make_runs(conn, AFTER, AFTER, by="clerk", office=app.office())
    assert [(r.payments, r.total, r.needed) for r in made] == [(n, total, 2)]
    run_id = made[0].id
    office = app.office()
    with app.engine.begin() as conn:
        with pytest.raises(RunStateError, match="not approved"):
            runs.send(conn, run_id, by="clerk", now=AFTER, office=office)
        assert runs.approve(conn, run_id, by="ana", now=AFTER).status == "draft"
    with app.engine.begin() as conn, pytest.raises(ApprovalError, match="second person"):
        runs.approve(conn, run_id, by="ana", now=AFTER)
    with app.engine.begin() as conn:
        assert runs.approve(conn, run_id, by="bob", now=AFTER).status == "approved"
        files = runs.send(conn, run_id, by="clerk", now=AFTER, office=office)
    # Recorded as sent first, then handed to the bank (an outbox).
    assert app.bank.files(as_of=AFTER + timedelta(days=3)) == []
    assert runs.deliver(app.engine, app.bank, lambda: AFTER) == 1
    assert runs.deliver(app.engine, app.bank, lambda: AFTER) == 0
    assert [(f.transactions, f.total) for f in files] == [(n, total)]
    assert validate(files[0].content, "pain.001.001.09", xsd)
    sent = credit_transfer_initiation(files[0].content)
    assert sorted(t.end_to_end_id for t in sent.transfers) == sorted(
        end_to_end_id(p["entitlement_id"], p["period"], 0) for p in rows(app.engine, payments)
    )
    assert all(t.creditor_name and not t.creditor_name.startswith("FIN") for t in sent.transfers)
    with app.engine.begin() as conn, pytest.raises(RunStateError, match="never sent twice"):
        runs.send(conn, run_id, by="clerk", now=AFTER, office=office)
    assert statuses(app.engine) == {"sent": n}

    # The bank's status report comes first, its notification of the booking a day later.
    first = take_reports(app, AFTER + timedelta(hours=3))
    assert [(r.kind, r.accepted, r.validated) for r in first] == [("pain.002", n, True)]
    assert statuses(app.engine) == {"accepted": n}
    with app.engine.connect() as conn:
        assert conn.execute(select(payment_runs.c.status)).scalar_one() == "sent"
    second = take_reports(app, AFTER + timedelta(days=2))
    assert [(r.kind, r.settled) for r in second] == [("camt.054", n)]
    assert all(p["settled_at"] is not None for p in rows(app.engine, payments))
    with app.engine.connect() as conn:
        assert conn.execute(select(payment_runs.c.status)).scalar_one() == "closed"
        r = reconcile(conn)
    assert r.total.payments == n and r.total.sent == [n, total] and r.total.settled == [n, total]
    assert r.total.open == [0, 0] and r.programs["birth_benefit"].accepted == [n, total]


def test_a_rejected_payment_goes_back_to_a_person_and_is_retried_as_a_new_attempt(
    store_url: str, country_file: Path, births_only: Path, xsd: Path
) -> None:
    app = manual_app(store_url, country_file, births_only)
    births(app, country_file, n=4)
    target = rows(app.engine, payments)[0]
    unknown = UNKNOWN_IBAN
    with app.engine.begin() as conn:
        conn.execute(update(payments).where(payments.c.id == target["id"]).values(iban=unknown))
        (run,) = runs.make_runs(conn, AFTER, AFTER, by="clerk", office=app.office())
        runs.approve(conn, run.id, by="ana", now=AFTER)
        runs.send(conn, run.id, by="ana", now=AFTER, office=app.office())
    runs.deliver(app.engine, app.bank, lambda: AFTER)
    take_reports(app, AFTER + timedelta(hours=3))
    (rejected,) = rows(app.engine, payments, payments.c.status == "rejected")
    assert rejected["id"] == target["id"] and rejected["reason_code"] == "AC01"
    with app.engine.connect() as conn:
        assert reconcile(conn).total.rejected == [1, target["amount"]]
    # A person corrects the account; the next run pays it under a new end-to-end id.
    with app.engine.begin() as conn:
        runs.retry(conn, target["id"], iban=target["iban"], by="ana", now=AFTER)
        (again,) = runs.make_runs(conn, AFTER + timedelta(days=1), AFTER, by="clerk", office=app.office())
        runs.approve(conn, again.id, by="ana", now=AFTER)
        files = runs.send(conn, again.id, by="ana", now=AFTER + timedelta(days=1), office=app.office())
    runs.deliver(app.engine, app.bank, lambda: AFTER)
    assert [t.end_to_end_id for t in credit_transfer_initiation(files[0].content).transfers] == [
        end_to_end_id(target["entitlement_id"], target["period"], 1)
    ]
    take_reports(app, AFTER + timedelta(days=3))
    assert set(statuses(app.engine)) == {"accepted"}
    # The citizen was told the money was coming; it came late: an SMS says it is paid now.
    late = rows(app.engine, notifications, notifications.c.kind == "payment_sent")
    assert [(n["case_id"], n["key"]) for n in late] == [
        (target["case_id"], f"{target['case_id']}:payment_sent:{target['period']}")]
    assert "AZN" in late[0]["text"] and late[0]["status"] == "pending"
    with app.engine.begin() as conn, pytest.raises(PaymentStateError, match="accepted"):
        runs.retry(conn, target["id"], iban=None, by="ana", now=AFTER)


def test_a_payment_no_file_can_carry_is_held_not_sent(store_url: str, country_file: Path, births_only: Path) -> None:
    app = manual_app(store_url, country_file, births_only)
    births(app, country_file, n=3)
    first, second = rows(app.engine, payments)[:2]
    broken = first["iban"][:-1] + ("0" if first["iban"][-1] != "0" else "1")
    with app.engine.begin() as conn:
        conn.execute(update(payments).where(payments.c.id == first["id"]).values(iban=broken))
        conn.execute(update(payments).where(payments.c.id == second["id"]).values(iban=None))
        made = runs.make_runs(conn, AFTER, AFTER, by="clerk", office=app.office())
    assert [r.payments for r in made] == [len(rows(app.engine, payments)) - 2]
    held = {p["id"]: p["reason"] for p in rows(app.engine, payments, payments.c.status == "held")}
    assert "fails its checksum" in held[first["id"]] and "no account" in held[second["id"]]
    with app.engine.begin() as conn, pytest.raises(PaymentStateError, match="checksum"):
        runs.retry(conn, first["id"], iban=broken, by="ana", now=AFTER)


def test_bad_reports_are_refused_whole(store_url: str, country_file: Path, births_only: Path, xsd: Path) -> None:
    app = manual_app(store_url, country_file, births_only)
    births(app, country_file, n=4)
    with app.engine.begin() as conn:
        (run,) = runs.make_runs(conn, AFTER, AFTER, by="clerk", office=app.office())
        runs.approve(conn, run.id, by="ana", now=AFTER)
        runs.send(conn, run.id, by="ana", now=AFTER, office=app.office())
    runs.deliver(app.engine, app.bank, lambda: AFTER)
    name = credit_transfer_initiation(sent_file(app)).message_id
    ours = [end_to_end_id(p["entitlement_id"], p["period"], 0) for p in rows(app.engine, payments)]
    assert len(ours) >= 3

    def report(msg: str, original: str, e2e: list[str], status: str = "ACCP") -> bytes:
        return status_report_file(StatusReport(
            message_id=msg, created_at=AFTER, original_message_id=original, group_status=None,
            original_payment_info_id=f"{original}-P",
            transactions=tuple(TransactionStatus(e, status) for e in e2e),
        ))

    def refused(content: bytes, error: type[Exception], match: str) -> None:
        with app.engine.begin() as conn, pytest.raises(error, match=match):
            bank_reports.import_file(conn, content, bank="HAQB", now=AFTER)
        assert statuses(app.engine) == {"sent": len(ours)}, "a refused report changed payments"

    refused(b"<Document><not-closed>", MalformedBankFile, "expected pain.002")
    with_head = report("BROKEN", name, ours)[:400]
    refused(with_head, MalformedBankFile, "not well-formed")
    refused(b"<?xml version='1.0'?><x/>", MalformedBankFile, "expected pain.002")
    breaks = report("BAD-SCHEMA", name, ours).replace(b"<TxSts>ACCP</TxSts>", b"<TxSts>ACCEPTED</TxSts>", 1)
    refused(breaks, MalformedBankFile, "breaks its schema")
    refused(report("R-UNKNOWN", name, [*ours, "C0000000000NOSUCH00-L-0"]), bank_reports.UnknownPayments, "NOSUCH")
    refused(report("R-NEVER", "HQ00000000R999-HAQB-1", ours), bank_reports.UnknownPayments, "never sent")
    # An older attempt's id is not this payment any more.
    refused(report("R-OLD", name, [ours[0][:-1] + "7"]), bank_reports.UnknownPayments, "not in this attempt")

    good = report("R-GOOD", name, ours[:2])
    with app.engine.begin() as conn:
        assert bank_reports.import_file(conn, good, bank="HAQB", now=AFTER).accepted == 2
    with app.engine.begin() as conn, pytest.raises(bank_reports.DuplicateReport, match="imported already"):
        bank_reports.import_file(conn, good, bank="HAQB", now=AFTER)
    # A report that contradicts an earlier one is refused, and so is all of it.
    with app.engine.begin() as conn, pytest.raises(bank_reports.ConflictingReport, match="accepted"):
        bank_reports.import_file(conn, report("R-CONTRA", name, ours, "RJCT"), bank="HAQB", now=AFTER)
    assert statuses(app.engine) == {"accepted": 2, "sent": len(ours) - 2}


def test_the_automatic_office_pays_everything_in_runs_during_a_replay(
    store_url: str, country_file: Path, births_only: Path
) -> None:
    app = build(Settings(database_url=store_url, country=country_file, catalogue_dir=births_only))
    db.upgrade(app.engine)
    births(app, country_file, n=4)
    run_at(app, AFTER + timedelta(days=2), AFTER + timedelta(days=4))
    assert set(statuses(app.engine)) == {"accepted"}
    with app.engine.connect() as conn:
        found = conn.execute(select(payment_runs.c.label, payment_runs.c.status, payment_runs.c.approved_by)).all()
        kinds = conn.execute(select(payment_files.c.kind).order_by(payment_files.c.id)).scalars().all()
    assert found and {(label.split()[0], status, by) for label, status, by in found} == {
        ("daily", "closed", "payment office (automatic)")
    }
    assert sorted(kinds) == sorted(["pain.001", "pain.002", "camt.054"] * len(found))


def test_the_automatic_office_sends_a_run_a_crash_left_approved_and_rebuilds_stale_files(
    store_url: str, country_file: Path, births_only: Path
) -> None:
    # The office approves its runs in one transaction and sends each in another, with files
    # built between the two: a crash in between leaves an approved run, which the next round
    # sends; files built before a payment left the run are built again, never sent as they were.
    births(manual_app(store_url, country_file, births_only), country_file, n=6)  # payments due
    app = build(Settings(database_url=store_url, country=country_file, catalogue_dir=births_only))
    office = app.office()
    assert office.automatic
    with app.engine.begin() as conn:  # the office's first transaction; then the crash
        made = runs.make_runs(conn, AFTER, AFTER, by=office.automatic, office=office)
        for run in made:
            for k in range(run.needed):
                runs.approve(conn, run.id, by=f"{office.automatic} #{k + 1}", now=AFTER)
    (run,) = made
    assert run.payments >= 2 and statuses(app.engine).get("queued") == run.payments
    with app.engine.connect() as conn:
        stale = runs.build_files(conn, run.id, AFTER, office)
        first = conn.execute(
            select(payments.c.id).where(payments.c.run_id == run.id).order_by(payments.c.id)
        ).scalars().first()
    with app.engine.begin() as conn:  # as a stop does: a queued payment leaves the run
        conn.execute(update(payments).where(payments.c.id == first).values(status="cancelled"))
    with app.engine.begin() as conn, pytest.raises(runs.RunChanged, match="built again"):
        runs.send(conn, run.id, by=office.automatic, now=AFTER, office=office, files=stale)
    # Refused before anything was written: this transaction committed, and changed nothing.
    assert statuses(app.engine) == {"queued": run.payments - 1, "cancelled": 1}
    worker = app.worker(ManualClock(AFTER))
    assert "approved_runs" in worker.pending(AFTER)
    run_at(app, AFTER, AFTER + timedelta(days=2), AFTER + timedelta(days=4))
    assert statuses(app.engine) == {"accepted": run.payments - 1, "cancelled": 1}
    with app.engine.connect() as conn:
        (sent,) = conn.execute(select(payment_files.c.transactions).where(payment_files.c.kind == "pain.001")).all()
        assert conn.execute(select(payment_runs.c.status).where(payment_runs.c.id == run.id)).scalar_one() == "closed"
    assert sent.transactions == run.payments - 1


def test_one_worker_at_a_time_has_the_office_for_a_whole_round(
    postgres_url: str, country_file: Path, births_only: Path
) -> None:
    # PostgreSQL: while another worker is in the office's round (between its transactions:
    # at the bank, reading its reports), this one leaves the office alone; it neither fetches
    # nor applies the same reports (which would be refused as duplicates).
    app = build(Settings(database_url=postgres_url, country=country_file, catalogue_dir=births_only))
    db.upgrade(app.engine)
    # The first run goes out at once (one of the people has an account); its reports wait.
    births(app, country_file, n=4, until=(START + timedelta(hours=1),))
    later = START + timedelta(hours=6)
    worker = app.worker(ManualClock(later))
    due = worker.pending(later)
    assert "bank_files" in due and app.bank.files(as_of=later)
    other = app.engine.connect()
    try:
        other.execute(text("SELECT pg_advisory_lock(hashtext(:what))"), {"what": OFFICE_ROUND})
        other.commit()
        assert worker.run_office(later, due) == 0
        assert app.bank.files(as_of=later), "the bank's reports were taken while another had the office"
        other.execute(text("SELECT pg_advisory_unlock(hashtext(:what))"), {"what": OFFICE_ROUND})
        other.commit()
    finally:
        other.close()
    assert worker.run_office(later, due) > 0
    assert statuses(app.engine) == {"accepted": 1}
    assert not app.bank.files(as_of=later)
