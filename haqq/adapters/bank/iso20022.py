"""ISO 20022 files exchanged with the partner bank: the model and the writers.

What: a payment run becomes a ``pain.001.001.09`` credit transfer initiation (one ``PmtInf``,
batch booked, one ``CdtTrfTxInf`` per payment). The simulated bank answers with a
``pain.002.001.10`` status report and a ``camt.054.001.08`` debit/credit notification, written
here too; :mod:`haqq.adapters.bank.iso20022_read` reads all three back and holds the model
(:class:`PaymentRun` and its parts), the typed values and the errors, re-exported here so
callers import everything from this module.

Why: a bank takes payment orders and reports outcomes in these formats, not in haqq's tables.
Everything is pure (bytes in, bytes out), money stays integer minor units (formatted with two
decimals by integer arithmetic, never a float), identifiers are checked before a file is made,
and free text is cleaned and cut to the schema's lengths so the file always validates.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from datetime import datetime

from haqq.adapters.bank.iso20022_read import (
    CAMT_054,
    PAIN_001,
    PAIN_002,
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
    credit_transfer_initiation,
    debit_credit_notification,
    payment_status_report,
    validate,
)
from haqq.domain.errors import NaiveDatetime
from haqq.domain.iban import iban_is_valid

__all__ = [
    "BankFileError",
    "CreditTransfer",
    "Debtor",
    "InvalidPaymentRun",
    "MalformedBankFile",
    "Notification",
    "NotificationEntry",
    "PaymentRun",
    "StatusReport",
    "TransactionStatus",
    "credit_transfer_file",
    "credit_transfer_initiation",
    "debit_credit_notification",
    "notification_file",
    "payment_status_report",
    "status_report_file",
    "validate",
]

#: Minor units per major unit; every currency haqq pays in has two decimals.
MINOR_PER_MAJOR = 100
#: The largest amount a file can carry (``totalDigits`` 18 of the schema, two decimals).
MAX_AMOUNT_MINOR = 10**18 - 1

#: Category purpose "social security benefit" (ExternalCategoryPurpose1Code).
CATEGORY_PURPOSE = "SSBE"
#: Charges: the debtor (the ministry) bears them all, so the citizen receives the full amount.
CHARGE_BEARER = "DEBT"
#: Organisation identification scheme of the debtor's ``org_id``: a tax number (VÖEN).
ORG_ID_SCHEME = "TXID"

_ID_RE = re.compile(r"[A-Za-z0-9/\-?:().,'+]{1,35}")
_BIC_RE = re.compile(r"[A-Z0-9]{4}[A-Z]{2}[A-Z0-9]{2}([A-Z0-9]{3})?")
_CODE_RE = re.compile(r"[A-Z0-9]{1,4}")
_CURRENCY_RE = re.compile(r"[A-Z]{3}")
# Characters XML 1.0 cannot carry at all; they are replaced by a space.
_NOT_XML_RE = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


# --- helpers -------------------------------------------------------------------------------


def format_amount(minor: int) -> str:
    """``12345`` → ``"123.45"``, by integer arithmetic only."""
    major, rest = divmod(minor, MINOR_PER_MAJOR)
    return f"{major}.{rest:02d}"


def clean_text(text: str, max_length: int) -> str:
    """Text the schema accepts: no character XML cannot carry, spaces collapsed, cut to length."""
    return " ".join(_NOT_XML_RE.sub(" ", text).split())[:max_length].rstrip()


def check_identifier(value: str, what: str) -> str:
    """An ISO 20022 reference: 1-35 characters of the SWIFT/EPC set, no ``/`` at an end or ``//``."""
    if (
        not isinstance(value, str)
        or not _ID_RE.fullmatch(value)
        or value.startswith("/")
        or value.endswith("/")
        or "//" in value
    ):
        raise InvalidPaymentRun(
            f"{what} {value!r}: 1 to 35 characters of A-Z a-z 0-9 / - ? : ( ) . , ' +, "
            "not starting or ending with '/' and without '//'"
        )
    return value


def _check_aware(moment: datetime, what: str) -> None:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise NaiveDatetime(what)


def _check_code(value: str | None, what: str) -> None:
    if value is not None and not _CODE_RE.fullmatch(value):
        raise BankFileError(f"{what} {value!r}: 1 to 4 upper-case letters or digits")


def _name(value: str, max_length: int, what: str) -> str:
    text = clean_text(value, max_length)
    if not text:
        raise InvalidPaymentRun(f"{what} is empty")
    return text


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    child = ET.SubElement(parent, tag, attrs)
    if text is not None:
        child.text = text
    return child


def _path(parent: ET.Element, tags: str, text: str) -> ET.Element:
    """``_path(e, "Id/IBAN", x)``: nested elements, the last one holding ``text``."""
    node = parent
    for tag in tags.split("/"):
        node = _sub(node, tag)
    node.text = text
    return node


def _document(namespace: str) -> ET.Element:
    return ET.Element("Document", {"xmlns": namespace})


def _serialise(root: ET.Element) -> bytes:
    data: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return data


def _timestamp(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")


# --- pain.001.001.09 -----------------------------------------------------------------------


def _check_run(run: PaymentRun) -> None:
    check_identifier(run.message_id, "message id")
    check_identifier(run.payment_info_id, "payment information id")
    _check_aware(run.created_at, "created_at of a payment run")
    if not iban_is_valid(run.debtor.iban):
        raise InvalidPaymentRun(f"debtor IBAN {run.debtor.iban!r} is not a valid IBAN")
    if not _BIC_RE.fullmatch(run.debtor.bic):
        raise InvalidPaymentRun(f"debtor BIC {run.debtor.bic!r} is not a BIC")
    if not run.transfers:
        raise InvalidPaymentRun(f"payment run {run.message_id} has no transfers")
    seen: set[str] = set()
    for t in run.transfers:
        check_identifier(t.end_to_end_id, "end-to-end id")
        if t.end_to_end_id in seen:
            raise InvalidPaymentRun(f"end-to-end id {t.end_to_end_id!r} appears twice in the run")
        seen.add(t.end_to_end_id)
        if isinstance(t.amount_minor, bool) or not isinstance(t.amount_minor, int):
            raise InvalidPaymentRun(f"{t.end_to_end_id}: amount must be integer minor units")
        if not 0 < t.amount_minor <= MAX_AMOUNT_MINOR:
            raise InvalidPaymentRun(f"{t.end_to_end_id}: amount {t.amount_minor} is not positive")
        if not _CURRENCY_RE.fullmatch(t.currency):
            raise InvalidPaymentRun(f"{t.end_to_end_id}: currency {t.currency!r} is not ISO 4217")
        if not iban_is_valid(t.creditor_iban):
            raise InvalidPaymentRun(f"{t.end_to_end_id}: IBAN {t.creditor_iban!r} is not valid")
        if t.creditor_bic is not None and not _BIC_RE.fullmatch(t.creditor_bic):
            raise InvalidPaymentRun(f"{t.end_to_end_id}: BIC {t.creditor_bic!r} is not a BIC")
        _name(t.creditor_name, 140, f"{t.end_to_end_id}: creditor name")
    if sum(t.amount_minor for t in run.transfers) > MAX_AMOUNT_MINOR:
        raise InvalidPaymentRun(f"payment run {run.message_id}: the total is too large")


def credit_transfer_file(run: PaymentRun) -> bytes:
    """The pain.001.001.09 file (UTF-8 bytes) that orders every transfer of ``run``."""
    _check_run(run)
    count = str(len(run.transfers))
    total = format_amount(sum(t.amount_minor for t in run.transfers))
    debtor = run.debtor
    root = _document(PAIN_001)
    initiation = _sub(root, "CstmrCdtTrfInitn")
    header = _sub(initiation, "GrpHdr")
    _sub(header, "MsgId", run.message_id)
    _sub(header, "CreDtTm", _timestamp(run.created_at))
    _sub(header, "NbOfTxs", count)
    _sub(header, "CtrlSum", total)
    initiating = _sub(header, "InitgPty")
    _sub(initiating, "Nm", _name(debtor.name, 140, "debtor name"))
    other = _sub(_sub(_sub(initiating, "Id"), "OrgId"), "Othr")
    _sub(other, "Id", check_identifier(debtor.org_id, "debtor organisation id"))
    _path(other, "SchmeNm/Cd", ORG_ID_SCHEME)

    info = _sub(initiation, "PmtInf")
    _sub(info, "PmtInfId", run.payment_info_id)
    _sub(info, "PmtMtd", "TRF")
    _sub(info, "BtchBookg", "true")
    _sub(info, "NbOfTxs", count)
    _sub(info, "CtrlSum", total)
    _path(info, "PmtTpInf/CtgyPurp/Cd", CATEGORY_PURPOSE)
    _path(info, "ReqdExctnDt/Dt", run.requested_execution.isoformat())
    _path(info, "Dbtr/Nm", _name(debtor.name, 140, "debtor name"))
    _path(info, "DbtrAcct/Id/IBAN", debtor.iban)
    _path(info, "DbtrAgt/FinInstnId/BICFI", debtor.bic)
    _sub(info, "ChrgBr", CHARGE_BEARER)
    # The transactions are written as text, not as elements: a payroll file carries hundreds
    # of thousands of them, and building a tree for each costs ten times as much. Every value
    # is checked or cleaned first, and escaped.
    head, _, tail = _serialise(root).rpartition(b"</PmtInf>")
    body = "".join(_transaction(t) for t in run.transfers).encode("utf-8")
    return b"".join((head, body, b"</PmtInf>", tail))


def _transaction(t: CreditTransfer) -> str:
    agent = (
        f"<CdtrAgt><FinInstnId><BICFI>{t.creditor_bic}</BICFI></FinInstnId></CdtrAgt>"
        if t.creditor_bic is not None else ""
    )
    remittance = clean_text(t.remittance, 140)
    ustrd = f"<RmtInf><Ustrd>{_escape(remittance)}</Ustrd></RmtInf>" if remittance else ""
    return (
        f"<CdtTrfTxInf><PmtId><InstrId>{t.end_to_end_id}</InstrId>"
        f"<EndToEndId>{t.end_to_end_id}</EndToEndId></PmtId>"
        f'<Amt><InstdAmt Ccy="{t.currency}">{format_amount(t.amount_minor)}</InstdAmt></Amt>'
        f"{agent}<Cdtr><Nm>{_escape(_name(t.creditor_name, 140, 'creditor name'))}</Nm></Cdtr>"
        f"<CdtrAcct><Id><IBAN>{t.creditor_iban}</IBAN></Id></CdtrAcct>{ustrd}</CdtTrfTxInf>"
    )


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


# --- pain.002.001.10 (the simulated bank's side) -------------------------------------------


def _chunks(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


def _reason(parent: ET.Element, code: str | None, info: str | None) -> None:
    if code is None and not info:
        return
    reason = _sub(parent, "StsRsnInf")
    if code is not None:
        _path(reason, "Rsn/Cd", code)
    for chunk in _chunks(_NOT_XML_RE.sub(" ", info or ""), 105):
        _sub(reason, "AddtlInf", chunk)


def status_report_file(report: StatusReport) -> bytes:
    """The pain.002.001.10 file a bank sends back about a pain.001 file."""
    check_identifier(report.message_id, "message id")
    check_identifier(report.original_message_id, "original message id")
    _check_aware(report.created_at, "created_at of a status report")
    for code, what in [
        (report.group_status, "group status"),
        (report.payment_info_status, "payment information status"),
        (report.group_reason_code, "group reason code"),
    ]:
        _check_code(code, what)
    root = _document(PAIN_002)
    body = _sub(root, "CstmrPmtStsRpt")
    header = _sub(body, "GrpHdr")
    _sub(header, "MsgId", report.message_id)
    _sub(header, "CreDtTm", _timestamp(report.created_at))
    group = _sub(body, "OrgnlGrpInfAndSts")
    _sub(group, "OrgnlMsgId", report.original_message_id)
    _sub(group, "OrgnlMsgNmId", report.original_message_name)
    if report.group_status is not None:
        _sub(group, "GrpSts", report.group_status)
    _reason(group, report.group_reason_code, None)
    if report.original_payment_info_id is None:
        if report.transactions or report.payment_info_status is not None:
            raise BankFileError("a status report with transactions needs the payment info id")
        return _serialise(root)
    info = _sub(body, "OrgnlPmtInfAndSts")
    _sub(info, "OrgnlPmtInfId", check_identifier(report.original_payment_info_id, "payment id"))
    if report.payment_info_status is not None:
        _sub(info, "PmtInfSts", report.payment_info_status)
    # The transactions as text, checked and escaped (a report may carry a whole payroll).
    parts = []
    for tx in report.transactions:
        check_identifier(tx.end_to_end_id, "end-to-end id")
        _check_code(tx.status, "transaction status")
        _check_code(tx.reason_code, "reason code")
        parts.append(
            f"<TxInfAndSts><OrgnlEndToEndId>{tx.end_to_end_id}</OrgnlEndToEndId>"
            f"<TxSts>{tx.status}</TxSts>{_reason_text(tx.reason_code, tx.additional_info)}</TxInfAndSts>"
        )
    return _splice(_serialise(root), b"</OrgnlPmtInfAndSts>", parts)


def _reason_text(code: str | None, info: str | None) -> str:
    if code is None and not info:
        return ""
    rsn = f"<Rsn><Cd>{code}</Cd></Rsn>" if code is not None else ""
    extra = "".join(f"<AddtlInf>{_escape(c)}</AddtlInf>" for c in _chunks(_NOT_XML_RE.sub(" ", info or ""), 105))
    return f"<StsRsnInf>{rsn}{extra}</StsRsnInf>"


def _splice(document: bytes, before: bytes, parts: Sequence[str]) -> bytes:
    """``document`` with ``parts`` inserted before its last ``before`` tag."""
    head, _, tail = document.rpartition(before)
    return b"".join((head, "".join(parts).encode("utf-8"), before, tail))


# --- camt.054.001.08 (the simulated bank's side) -------------------------------------------


def notification_file(notification: Notification) -> bytes:
    """The camt.054.001.08 file a bank sends about movements on ``notification.account``."""
    check_identifier(notification.message_id, "message id")
    _check_aware(notification.created_at, "created_at of a notification")
    root = _document(CAMT_054)
    body = _sub(root, "BkToCstmrDbtCdtNtfctn")
    header = _sub(body, "GrpHdr")
    _sub(header, "MsgId", notification.message_id)
    _sub(header, "CreDtTm", _timestamp(notification.created_at))
    ntf = _sub(body, "Ntfctn")
    _sub(ntf, "Id", notification.message_id)
    _sub(ntf, "CreDtTm", _timestamp(notification.created_at))
    account = _sub(_sub(ntf, "Acct"), "Id")
    if iban_is_valid(notification.account):
        _sub(account, "IBAN", notification.account)
    else:
        _path(account, "Othr/Id", clean_text(notification.account, 34) or "NOTPROVIDED")
    parts = []
    for e in notification.entries:
        if not 0 <= e.amount_minor <= MAX_AMOUNT_MINOR or not _CURRENCY_RE.fullmatch(e.currency):
            raise BankFileError(f"entry {e.end_to_end_id}: bad amount or currency")
        if e.credit_debit not in ("CRDT", "DBIT"):
            raise BankFileError(f"entry {e.end_to_end_id}: credit/debit {e.credit_debit!r}")
        _check_code(e.status, "entry status")
        _check_code(e.return_reason_code, "return reason code")
        amount = f'<Amt Ccy="{e.currency}">{format_amount(e.amount_minor)}</Amt><CdtDbtInd>{e.credit_debit}</CdtDbtInd>'
        booked = f"<BookgDt><Dt>{e.booking_date.isoformat()}</Dt></BookgDt>" if e.booking_date is not None else ""
        refs = (
            f"<Refs><EndToEndId>{check_identifier(e.end_to_end_id, 'end-to-end id')}</EndToEndId></Refs>"
            if e.end_to_end_id is not None else ""
        )
        returned = (
            f"<RtrInf><Rsn><Cd>{e.return_reason_code}</Cd></Rsn></RtrInf>" if e.return_reason_code is not None else ""
        )
        # Bank transaction code (required): payments, issued credit transfers, domestic (DMCT)
        # for a debit, a return (RRTN) for money coming back.
        family = "DMCT" if e.credit_debit == "DBIT" else "RRTN"
        parts.append(
            f"<Ntry>{amount}<Sts><Cd>{e.status}</Cd></Sts>{booked}"
            f"<BkTxCd><Domn><Cd>PMNT</Cd><Fmly><Cd>ICDT</Cd><SubFmlyCd>{family}</SubFmlyCd></Fmly></Domn></BkTxCd>"
            f"<NtryDtls><TxDtls>{refs}{amount}{returned}</TxDtls></NtryDtls></Ntry>"
        )
    return _splice(_serialise(root), b"</Ntfctn>", parts)
