"""ISO 20022 bank files: pain.001 written, pain.002 and camt.054 written and read back.

Every written file is validated with ``xmlschema`` against the unmodified ISO XSDs copied into
``tests/data/iso20022`` (their provenance: the ISO 20022 message catalogue, unchanged).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from functools import cache
from pathlib import Path

import pytest
import xmlschema
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from haqq.adapters.bank.iso20022 import (
    BankFileError,
    CreditTransfer,
    Debtor,
    InvalidPaymentRun,
    MalformedBankFile,
    Notification,
    NotificationEntry,
    PaymentRun,
    StatusReport,
    TransactionStatus,
    credit_transfer_file,
    debit_credit_notification,
    notification_file,
    payment_status_report,
    status_report_file,
)
from haqq.domain.errors import HaqqError, NaiveDatetime
from haqq.domain.iban import make_iban

DATA = Path(__file__).resolve().parents[1] / "data" / "iso20022"
PAIN_001_XSD = DATA / "pain.001.001.09.xsd"
PAIN_002_XSD = DATA / "pain.002.001.10.xsd"
CAMT_054_XSD = DATA / "camt.054.001.08.xsd"
NS = {"p": "urn:iso:std:iso:20022:tech:xsd:pain.001.001.09"}
BAKU = timezone(timedelta(hours=4))


@cache
def schema(path: Path) -> xmlschema.XMLSchema:
    return xmlschema.XMLSchema(str(path))


def iban(n: int) -> str:
    return make_iban("AZ", f"HAQB{n:020d}")


DEBTOR = Debtor(
    name="Əmək və Əhalinin Sosial Müdafiəsi Nazirliyi",
    iban=iban(1),
    bic="CTREAZ22",
    org_id="1400057421",
)


def transfer(n: int, amount: int = 45000, name: str = "Aygün Məmmədova") -> CreditTransfer:
    return CreditTransfer(
        end_to_end_id=f"HAQQ-PAY-{n:08d}",
        amount_minor=amount,
        creditor_name=name,
        creditor_iban=iban(1000 + n),
        creditor_bic="HAQBAZ22" if n % 2 else None,
        remittance=f"Uşaq doğulmasına görə birdəfəlik müavinət, ödəniş {n}",
    )


def run(transfers: list[CreditTransfer]) -> PaymentRun:
    return PaymentRun(
        message_id="HAQQ-RUN-2026-05-01",
        created_at=datetime(2026, 5, 1, 9, 30, tzinfo=BAKU),
        debtor=DEBTOR,
        requested_execution=date(2026, 5, 4),
        transfers=transfers,
        payment_info_id="HAQQ-RUN-2026-05-01-1",
    )


def texts(xml: bytes, path: str) -> list[str]:
    return [e.text or "" for e in ET.fromstring(xml).findall(path, NS)]


# --- pain.001 ---------------------------------------------------------------------------------


def test_pain001_for_several_transfers_validates_and_counts_exactly() -> None:
    transfers = [transfer(1, 45000), transfer(2, 1), transfer(3, 30050), transfer(4, 10**11)]
    xml = credit_transfer_file(run(transfers))
    schema(PAIN_001_XSD).validate(xml.decode("utf-8"))
    total = "1000000750.51"  # 450.00 + 0.01 + 300.50 + 1000000000.00
    assert texts(xml, "p:CstmrCdtTrfInitn/p:GrpHdr/p:NbOfTxs") == ["4"]
    assert texts(xml, "p:CstmrCdtTrfInitn/p:GrpHdr/p:CtrlSum") == [total]
    assert texts(xml, "p:CstmrCdtTrfInitn/p:PmtInf/p:NbOfTxs") == ["4"]
    assert texts(xml, "p:CstmrCdtTrfInitn/p:PmtInf/p:CtrlSum") == [total]
    assert len(texts(xml, "p:CstmrCdtTrfInitn/p:PmtInf")) == 1
    assert texts(xml, "p:CstmrCdtTrfInitn/p:PmtInf/p:BtchBookg") == ["true"]
    amounts = texts(xml, ".//p:CdtTrfTxInf/p:Amt/p:InstdAmt")
    assert amounts == ["450.00", "0.01", "300.50", "1000000000.00"]
    assert texts(xml, ".//p:CdtTrfTxInf/p:PmtId/p:EndToEndId") == [
        t.end_to_end_id for t in transfers
    ]
    assert texts(xml, ".//p:CdtTrfTxInf/p:PmtId/p:InstrId") == [t.end_to_end_id for t in transfers]
    # Creditor agent only where a BIC is known.
    assert texts(xml, ".//p:CdtrAgt/p:FinInstnId/p:BICFI") == ["HAQBAZ22", "HAQBAZ22"]


def test_pain001_truncates_names_and_escapes_text() -> None:
    long_name = "Ş" * 200
    t = replace(transfer(1, name=long_name), remittance="<müavinət> & \"ödəniş\" 'x'" + "ü" * 200)
    xml = credit_transfer_file(run([t]))
    schema(PAIN_001_XSD).validate(xml.decode("utf-8"))
    assert texts(xml, ".//p:Cdtr/p:Nm") == ["Ş" * 140]
    (remittance,) = texts(xml, ".//p:RmtInf/p:Ustrd")
    assert remittance.startswith("<müavinət> & \"ödəniş\" 'x'") and len(remittance) == 140
    assert b"&lt;m" in xml and b"&amp;" in xml


def test_pain001_is_deterministic() -> None:
    transfers = [transfer(n) for n in range(1, 6)]
    assert credit_transfer_file(run(transfers)) == credit_transfer_file(run(list(transfers)))


@pytest.mark.parametrize(
    ("change", "error", "words"),
    [
        (lambda r: replace(r, created_at=datetime(2026, 5, 1, 9, 30)), NaiveDatetime, "aware"),  # noqa: DTZ001
        (lambda r: replace(r, transfers=[]), InvalidPaymentRun, "no transfers"),
        (lambda r: replace(r, transfers=[transfer(1, 0)]), InvalidPaymentRun, "not positive"),
        (lambda r: replace(r, transfers=[transfer(1, -5)]), InvalidPaymentRun, "not positive"),
        (
            lambda r: replace(r, transfers=[replace(transfer(1), creditor_iban="AZ00HAQB1")]),
            InvalidPaymentRun,
            "IBAN",
        ),
        (
            lambda r: replace(
                r, transfers=[replace(transfer(1), creditor_iban=iban(5)[:-1] + "9")]
            ),
            InvalidPaymentRun,
            "IBAN",
        ),
        (lambda r: replace(r, debtor=replace(DEBTOR, iban="AZ")), InvalidPaymentRun, "IBAN"),
        (
            lambda r: replace(r, transfers=[transfer(1), transfer(2), transfer(1, 7)]),
            InvalidPaymentRun,
            "twice",
        ),
        (
            lambda r: replace(r, transfers=[replace(transfer(1), end_to_end_id="X" * 36)]),
            InvalidPaymentRun,
            "end-to-end id",
        ),
        (
            lambda r: replace(r, transfers=[replace(transfer(1), end_to_end_id="ödəniş-1")]),
            InvalidPaymentRun,
            "end-to-end id",
        ),
        (
            lambda r: replace(r, transfers=[replace(transfer(1), end_to_end_id="")]),
            InvalidPaymentRun,
            "end-to-end id",
        ),
        (lambda r: replace(r, message_id="a b"), InvalidPaymentRun, "message id"),
        (
            lambda r: replace(r, transfers=[replace(transfer(1), creditor_name="  \x00 ")]),
            InvalidPaymentRun,
            "creditor name",
        ),
        (
            lambda r: replace(r, transfers=[replace(transfer(1), creditor_bic="bad")]),
            InvalidPaymentRun,
            "BIC",
        ),
    ],
)
def test_pain001_refuses_bad_input(change, error, words) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(error, match=words) as raised:
        credit_transfer_file(change(run([transfer(1), transfer(2)])))
    assert isinstance(raised.value, HaqqError)


def test_float_amount_is_refused() -> None:
    with pytest.raises(InvalidPaymentRun, match="integer minor units"):
        credit_transfer_file(run([replace(transfer(1), amount_minor=450.0)]))  # type: ignore[arg-type]


NAMES = st.text(
    alphabet=st.sampled_from(
        list("əğıöüçşƏĞIİÖÜÇŞ") + list("абвгдеёжзийклмнопрстуфхцчшщъыьэюяАБЖЯ") + list("abcXYZ -.'")
    ),
    min_size=1,
    max_size=200,
).filter(lambda s: s.strip() != "")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.tuples(st.integers(min_value=1, max_value=10**11), NAMES), min_size=1, max_size=25)
)
def test_pain001_property_validates_and_sums_exactly(items: list[tuple[int, str]]) -> None:
    transfers = [transfer(n, amount, name) for n, (amount, name) in enumerate(items, start=1)]
    xml = credit_transfer_file(run(transfers))
    schema(PAIN_001_XSD).validate(xml.decode("utf-8"))
    exact = sum(amount for amount, _ in items)
    for level in ("p:GrpHdr", "p:PmtInf"):
        (ctrl_sum,) = texts(xml, f"p:CstmrCdtTrfInitn/{level}/p:CtrlSum")
        assert Decimal(ctrl_sum) * 100 == exact
        assert ctrl_sum == f"{exact // 100}.{exact % 100:02d}"
        assert texts(xml, f"p:CstmrCdtTrfInitn/{level}/p:NbOfTxs") == [str(len(items))]
    assert sum(int(Decimal(a) * 100) for a in texts(xml, ".//p:InstdAmt")) == exact
    ids = texts(xml, ".//p:CdtTrfTxInf/p:PmtId/p:EndToEndId")
    assert sorted(ids) == sorted(t.end_to_end_id for t in transfers)
    assert len(set(ids)) == len(ids)
    for t, written in zip(transfers, texts(xml, ".//p:Cdtr/p:Nm"), strict=True):
        assert written == " ".join(t.creditor_name.split())[:140].rstrip()


# --- pain.002 ---------------------------------------------------------------------------------


def report() -> StatusReport:
    return StatusReport(
        message_id="BANK-STS-0001",
        created_at=datetime(2026, 5, 4, 10, 0, tzinfo=BAKU),
        original_message_id="HAQQ-RUN-2026-05-01",
        group_status="PART",
        original_payment_info_id="HAQQ-RUN-2026-05-01-1",
        payment_info_status="PART",
        transactions=(
            TransactionStatus("HAQQ-PAY-00000001", "ACSC"),
            TransactionStatus("HAQQ-PAY-00000002", "RJCT", "AC04", "Hesab bağlanıb " * 12),
            TransactionStatus("HAQQ-PAY-00000003", "RJCT", "AC01"),
            TransactionStatus("HAQQ-PAY-00000004", "PDNG"),
        ),
    )


def test_pain002_round_trip_and_validates() -> None:
    xml = status_report_file(report())
    schema(PAIN_002_XSD).validate(xml.decode("utf-8"))
    assert payment_status_report(xml) == report()
    assert payment_status_report(xml, schema=PAIN_002_XSD) == report()


def test_pain002_group_only_report_round_trips() -> None:
    only = StatusReport(
        message_id="BANK-STS-0002",
        created_at=datetime(2026, 5, 4, 10, 0, tzinfo=UTC),
        original_message_id="HAQQ-RUN-2026-05-01",
        group_status="RJCT",
        group_reason_code="FF01",
    )
    xml = status_report_file(only)
    schema(PAIN_002_XSD).validate(xml.decode("utf-8"))
    assert payment_status_report(xml, schema=PAIN_002_XSD) == only


REJECTED = b"""<?xml version="1.0" encoding="UTF-8"?>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:pain.002.001.10">
 <CstmrPmtStsRpt>
  <GrpHdr><MsgId>NABZ20260504-77</MsgId><CreDtTm>2026-05-04T11:15:00+04:00</CreDtTm></GrpHdr>
  <OrgnlGrpInfAndSts>
   <OrgnlMsgId>HAQQ-RUN-2026-05-01</OrgnlMsgId><OrgnlMsgNmId>pain.001.001.09</OrgnlMsgNmId>
   <GrpSts>PART</GrpSts>
  </OrgnlGrpInfAndSts>
  <OrgnlPmtInfAndSts>
   <OrgnlPmtInfId>HAQQ-RUN-2026-05-01-1</OrgnlPmtInfId>
   <TxInfAndSts>
    <OrgnlInstrId>HAQQ-PAY-00000007</OrgnlInstrId>
    <OrgnlEndToEndId>HAQQ-PAY-00000007</OrgnlEndToEndId>
    <TxSts>RJCT</TxSts>
    <StsRsnInf><Rsn><Cd>AC04</Cd></Rsn><AddtlInf>Account closed</AddtlInf></StsRsnInf>
   </TxInfAndSts>
  </OrgnlPmtInfAndSts>
 </CstmrPmtStsRpt>
</Document>
"""


def test_pain002_rejected_payment_with_ac04_is_read() -> None:
    read = payment_status_report(REJECTED, schema=PAIN_002_XSD)
    assert read.original_message_id == "HAQQ-RUN-2026-05-01"
    assert read.group_status == "PART"
    assert read.created_at == datetime(2026, 5, 4, 7, 15, tzinfo=UTC)
    assert read.transactions == (
        TransactionStatus("HAQQ-PAY-00000007", "RJCT", "AC04", "Account closed"),
    )


@pytest.mark.parametrize(
    ("xml", "words"),
    [
        (b"<Document", "not well-formed"),
        (b"", "not well-formed"),
        (
            b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY x "boom">]>'
            b'<Document xmlns="urn:iso:std:iso:20022:tech:xsd:pain.002.001.10">&x;</Document>',
            "DTD",
        ),
        (
            b'<!DOCTYPE Document><Document xmlns="urn:iso:std:iso:20022:tech:xsd:pain.002.001.10"/>',
            "DTD",
        ),
        (b'<Document xmlns="urn:other"><CstmrPmtStsRpt/></Document>', "root element"),
        (REJECTED.replace(b"<TxSts>RJCT</TxSts>", b""), "TxSts is missing"),
        (REJECTED.replace(b"+04:00", b""), "no UTC offset"),
        (REJECTED.replace(b"<MsgId>NABZ20260504-77</MsgId>", b"<MsgId> </MsgId>"), "MsgId"),
    ],
)
def test_pain002_bad_files_raise_a_typed_error(xml: bytes, words: str) -> None:
    with pytest.raises(MalformedBankFile, match=words):
        payment_status_report(xml)


def test_pain002_schema_violation_is_named() -> None:
    broken = REJECTED.replace(b"<TxSts>RJCT</TxSts>", b"<TxSts>REJECTED</TxSts>")
    assert payment_status_report(broken).transactions[0].status == "REJECTED"
    with pytest.raises(MalformedBankFile, match="pain.002.001.10.xsd"):
        payment_status_report(broken, schema=PAIN_002_XSD)


def test_a_camt_file_is_not_read_as_pain002() -> None:
    with pytest.raises(MalformedBankFile, match="root element"):
        payment_status_report(notification_file(notification()))


def test_missing_schema_file_is_a_typed_error() -> None:
    with pytest.raises(BankFileError, match="cannot load"):
        payment_status_report(REJECTED, schema=DATA / "nope.xsd")


# --- camt.054 ---------------------------------------------------------------------------------


def notification() -> Notification:
    return Notification(
        message_id="BANK-NTF-0001",
        created_at=datetime(2026, 5, 4, 18, 0, tzinfo=BAKU),
        account=DEBTOR.iban,
        entries=(
            NotificationEntry("HAQQ-PAY-00000001", 45000, "AZN", "DBIT", "BOOK", date(2026, 5, 4)),
            NotificationEntry("HAQQ-PAY-00000002", 10**11, "AZN", "DBIT", "PDNG", None),
            NotificationEntry(
                "HAQQ-PAY-00000003", 30050, "AZN", "CRDT", "BOOK", date(2026, 5, 6), "AC04"
            ),
        ),
    )


def test_camt054_round_trip_and_validates() -> None:
    xml = notification_file(notification())
    schema(CAMT_054_XSD).validate(xml.decode("utf-8"))
    assert debit_credit_notification(xml) == notification()
    assert debit_credit_notification(xml, schema=CAMT_054_XSD) == notification()


def test_camt054_batch_entry_gives_one_entry_per_transaction() -> None:
    one = notification_file(replace(notification(), entries=notification().entries[:1]))
    ns = "{urn:iso:std:iso:20022:tech:xsd:camt.054.001.08}"
    root = ET.fromstring(one)
    details = root.find(f".//{ns}NtryDtls")
    assert details is not None
    second = ET.fromstring(ET.tostring(details[0]))
    refs = second.find(f"{ns}Refs/{ns}EndToEndId")
    amount = second.find(f"{ns}Amt")
    assert refs is not None and amount is not None
    refs.text, amount.text = "HAQQ-PAY-00000009", "0.55"
    details.append(second)
    xml = ET.tostring(root, encoding="utf-8")
    schema(CAMT_054_XSD).validate(xml.decode("utf-8"))
    read = debit_credit_notification(xml, schema=CAMT_054_XSD)
    assert [(e.end_to_end_id, e.amount_minor) for e in read.entries] == [
        ("HAQQ-PAY-00000001", 45000),
        ("HAQQ-PAY-00000009", 55),
    ]


@pytest.mark.parametrize("amount", [b"450.001", b"-1.00", b"abc", b"NaN"])
def test_camt054_amount_that_is_not_minor_units_is_refused(amount: bytes) -> None:
    xml = notification_file(replace(notification(), entries=notification().entries[:1]))
    broken = xml.replace(b">450.00<", b">" + amount + b"<")
    assert broken != xml
    with pytest.raises(MalformedBankFile, match="Amt"):
        debit_credit_notification(broken)


def test_writers_refuse_naive_times() -> None:
    naive = datetime(2026, 5, 4, 18, 0)  # noqa: DTZ001
    with pytest.raises(NaiveDatetime):
        notification_file(replace(notification(), created_at=naive))
    with pytest.raises(NaiveDatetime):
        status_report_file(replace(report(), created_at=naive))
