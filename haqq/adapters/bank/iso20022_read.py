"""Reading ISO 20022 bank files: pain.002.001.10 and camt.054.001.08, and pain.001.001.09.

What: :func:`payment_status_report` turns a pain.002 status report into a
:class:`StatusReport` (per payment: original end-to-end id, status, reason code, additional
information) and :func:`debit_credit_notification` turns a camt.054 notification into a
:class:`Notification` (per entry: end-to-end id, amount in minor units, currency, status,
booking date, credit or debit). :func:`credit_transfer_initiation` reads a pain.001 credit
transfer initiation back into the :class:`PaymentRun` it was written from: the bank's side of
the exchange (the simulated bank reads haqq's payment orders with it). The typed values and
errors of the bank files live here too; :mod:`haqq.adapters.bank.iso20022` (the writers)
re-exports them.

Why: a file from outside is untrusted. It is parsed by libxml2 (lxml) with no DTD loaded, no
entity expanded and nothing fetched, and refused when it declares a DTD; when a schema path is given it is validated against the XSD
(``xmlschema``) first; either way every element read is checked, and whatever is wrong comes
back as a :class:`MalformedBankFile` naming it, never as a bare exception. Amounts are read as
decimals and turned into exact integer minor units; a fraction of a minor unit is refused.
"""

from __future__ import annotations

import io
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal, cast

import xmlschema
from lxml import etree

from haqq.domain.errors import HaqqError

PAIN_001 = "urn:iso:std:iso:20022:tech:xsd:pain.001.001.09"
PAIN_002 = "urn:iso:std:iso:20022:tech:xsd:pain.002.001.10"
CAMT_054 = "urn:iso:std:iso:20022:tech:xsd:camt.054.001.08"

#: The largest amount a file can carry (``totalDigits`` 18 of the schemas, two decimals).
_MAX_MINOR = 10**18 - 1


class BankFileError(HaqqError):
    """A bank file that cannot be written or read; the message names what is wrong."""


class InvalidPaymentRun(BankFileError):
    """A payment run that cannot become a pain.001 file (bad amount, IBAN, identifier...)."""


class MalformedBankFile(BankFileError):
    """A bank file that is not well formed, not the expected message, or breaks its schema."""


@dataclass(frozen=True)
class Debtor:
    """The ministry's treasury account, the one every payment of a run is debited from."""

    name: str
    iban: str
    bic: str
    org_id: str


@dataclass(frozen=True)
class CreditTransfer:
    """One payment: ``end_to_end_id`` is given by the caller and stable across re-sends."""

    end_to_end_id: str
    amount_minor: int
    creditor_name: str
    creditor_iban: str
    creditor_bic: str | None
    remittance: str
    currency: str = "AZN"


@dataclass(frozen=True)
class PaymentRun:
    """A run of payments sent as one file with one batch-booked payment information block."""

    message_id: str
    created_at: datetime
    debtor: Debtor
    requested_execution: date
    transfers: Sequence[CreditTransfer]
    payment_info_id: str


@dataclass(frozen=True)
class TransactionStatus:
    """The bank's status of one payment, found by its original end-to-end id."""

    end_to_end_id: str
    status: str  # ACCP, ACSC, ACSP, RJCT, PDNG...
    reason_code: str | None = None  # AC04 closed account, AC01 wrong account number...
    additional_info: str | None = None


@dataclass(frozen=True)
class StatusReport:
    """A pain.002 payment status report about one pain.001 file (one payment information)."""

    message_id: str
    created_at: datetime
    original_message_id: str
    group_status: str | None
    transactions: tuple[TransactionStatus, ...] = ()
    original_payment_info_id: str | None = None
    payment_info_status: str | None = None
    group_reason_code: str | None = None
    original_message_name: str = "pain.001.001.09"


@dataclass(frozen=True)
class NotificationEntry:
    """One booked (or pending) movement on the account, tied to a payment by end-to-end id."""

    end_to_end_id: str | None
    amount_minor: int
    currency: str
    credit_debit: Literal["CRDT", "DBIT"]
    status: str  # BOOK, PDNG, INFO
    booking_date: date | None
    return_reason_code: str | None = None


@dataclass(frozen=True)
class Notification:
    """A camt.054 debit/credit notification for one account."""

    message_id: str
    created_at: datetime
    account: str
    entries: tuple[NotificationEntry, ...] = ()


@lru_cache(maxsize=8)
def _schema(path: Path) -> xmlschema.XMLSchema:
    try:
        return xmlschema.XMLSchema(str(path))
    except (OSError, xmlschema.XMLSchemaException) as error:
        raise BankFileError(f"cannot load the XML schema {path}: {error}") from error


def validate(xml: bytes, schema: Path, what: str = "bank file") -> ET.Element:
    """Parse ``xml`` safely and check it against the XSD at ``schema``; the root element."""
    root = _parse(xml, what)
    error = next(iter(_schema(Path(schema)).iter_errors(root)), None)
    if error is not None:
        raise MalformedBankFile(
            f"{what} breaks {Path(schema).name} at {error.path}: {error.reason}"
        )
    return root


#: libxml2, hardened: no DTD loaded, no entity expanded, nothing fetched from the network.
_PARSER = etree.XMLParser(load_dtd=False, resolve_entities=False, no_network=True, huge_tree=True)


def _parse(xml: bytes, what: str) -> ET.Element:
    """The document's root, parsed by libxml2 (a payroll's report has a million elements; the
    pure-Python parser is several times slower). Its elements answer the ElementTree calls the
    readers make (``find``, ``findall``, ``text``, ``get``, ``tag``)."""
    if not isinstance(xml, bytes | bytearray):
        raise MalformedBankFile(f"{what}: expected bytes, got {type(xml).__name__}")
    try:
        root = etree.fromstring(bytes(xml), _PARSER)
    except etree.XMLSyntaxError as error:
        raise MalformedBankFile(f"{what}: not well-formed XML ({error})") from error
    if getattr(root.getroottree().docinfo, "doctype", ""):
        raise MalformedBankFile(f"{what}: DTDs and entities are refused (the file declares a DTD)")
    return cast(ET.Element, root)


def _first(node: ET.Element, tags: tuple[str, ...]) -> ET.Element | None:
    """The first element along ``tags`` below ``node`` (``find`` of a child path)."""
    head, rest = tags[0], tags[1:]
    for child in node.iterchildren(head):  # type: ignore[attr-defined]
        if not rest:
            return cast(ET.Element, child)
        found = _first(child, rest)
        if found is not None:
            return found
    return None


def _every(node: ET.Element, tags: tuple[str, ...], into: list[ET.Element]) -> None:
    """Every element along ``tags`` below ``node``, in document order (``findall``)."""
    head, rest = tags[0], tags[1:]
    for child in node.iterchildren(head):  # type: ignore[attr-defined]
        if rest:
            _every(child, rest, into)
        else:
            into.append(child)


class _Lookups:
    """Namespaced look-ups that name what is missing.

    A path is a chain of child tags (``Amt/InstdAmt``), matched as ElementTree's ``find`` does
    (the first match in document order) but walked with libxml2's child iterators: a file of a
    whole payroll asks the same few paths hundreds of thousands of times, and ElementTree's
    path engine runs in Python.
    """

    def __init__(self, namespace: str, body: str) -> None:
        self.what = f"{body} ({namespace.rsplit(':', 1)[-1]})"
        self.ns = namespace
        self._paths: dict[str, tuple[str, ...]] = {}
        self._queries: dict[tuple[str, ...], tuple[etree.XPath, dict[tuple[str | None, str], str]]] = {}

    def _tags(self, path: str) -> tuple[str, ...]:
        found = self._paths.get(path)
        if found is None:
            found = self._paths[path] = tuple(f"{{{self.ns}}}{tag}" for tag in path.split("/"))
        return found

    def _q(self, path: str) -> str:
        """The qualified tag of a one-step path."""
        return "/".join(self._tags(path))

    def find(self, node: ET.Element, path: str) -> ET.Element | None:
        return _first(node, self._tags(path))

    def all(self, node: ET.Element, path: str) -> list[ET.Element]:
        found: list[ET.Element] = []
        _every(node, self._tags(path), found)
        return found

    def one(self, node: ET.Element, path: str) -> ET.Element:
        found = _first(node, self._tags(path))
        if found is None:
            raise MalformedBankFile(f"{self.what}: {path} is missing")
        return found

    def opt(self, node: ET.Element, path: str) -> str | None:
        return self.value(_first(node, self._tags(path)), path)

    def value(self, found: ET.Element | None, path: str) -> str | None:
        """The text of ``found`` (the element at ``path``), None when there is none."""
        if found is None:
            return None
        text = (found.text or "").strip()
        if not text:
            raise MalformedBankFile(f"{self.what}: {path} is empty")
        return text

    def gather(self, node: ET.Element, paths: tuple[str, ...]) -> dict[str, list[ET.Element]]:
        """The elements at each of ``paths`` below ``node``, by path, in one XPath query. An
        element is told by its own tag and its parent's (the paths must differ in those). For
        the many small records of a big file."""
        query = self._queries.get(paths)
        if query is None:
            by_key: dict[tuple[str | None, str], str] = {}
            for path in paths:
                tags = self._tags(path)
                by_key[(tags[-2] if len(tags) > 1 else None, tags[-1])] = path
            if len(by_key) != len(paths):
                raise ValueError(f"gather needs paths whose last two tags differ: {paths}")
            union = " | ".join("/".join(f"p:{tag}" for tag in path.split("/")) for path in paths)
            query = self._queries[paths] = (etree.XPath(union, namespaces={"p": self.ns}), by_key)
        xpath, keys = query
        found: dict[str, list[ET.Element]] = {}
        for element in cast(list[ET.Element], xpath(cast(Any, node))):
            parent = element.getparent()  # type: ignore[attr-defined]
            path = keys[(None if parent is node else parent.tag, element.tag)]
            found.setdefault(path, []).append(element)
        return found

    def text(self, node: ET.Element, path: str) -> str:
        value = self.opt(node, path)
        if value is None:
            raise MalformedBankFile(f"{self.what}: {path} is missing")
        return value

    def moment(self, node: ET.Element, path: str) -> datetime:
        return self.parse_moment(self.text(node, path), path)

    def parse_moment(self, value: str, path: str) -> datetime:
        """``value`` (read at ``path``) as an aware date-time."""
        try:
            moment = datetime.fromisoformat(value)
        except ValueError as error:
            raise MalformedBankFile(f"{self.what}: {path} {value!r} is no date-time") from error
        if moment.utcoffset() is None:
            raise MalformedBankFile(f"{self.what}: {path} {value!r} has no UTC offset")
        return moment

    def day(self, node: ET.Element, path: str) -> date | None:
        if (value := self.opt(node, f"{path}/Dt")) is not None:
            try:
                return date.fromisoformat(value)
            except ValueError as error:
                raise MalformedBankFile(f"{self.what}: {path} {value!r} is no date") from error
        if self.find(node, f"{path}/DtTm") is not None:
            return self.moment(node, f"{path}/DtTm").date()
        return None

    def amount(self, node: ET.Element, path: str) -> tuple[int, str]:
        """Amount in minor units and its currency (the ``Ccy`` attribute)."""
        return self.amount_of(self.one(node, path), path)

    def amount_of(self, element: ET.Element, path: str) -> tuple[int, str]:
        """The amount and currency of ``element`` (found at ``path``)."""
        value = (element.text or "").strip()
        currency = element.get("Ccy")
        try:
            minor = Decimal(value).scaleb(2)
        except InvalidOperation as error:
            raise MalformedBankFile(f"{self.what}: {path} {value!r} is no amount") from error
        if not minor.is_finite() or minor != minor.to_integral_value() or minor < 0:
            raise MalformedBankFile(f"{self.what}: {path} {value!r} is no amount in minor units")
        if currency is None or len(currency) != 3 or not currency.isupper():
            raise MalformedBankFile(f"{self.what}: {path} has no ISO 4217 currency")
        return int(minor), currency

    def reason(self, node: ET.Element, path: str) -> str | None:
        return self.opt(node, f"{path}/Cd") or self.opt(node, f"{path}/Prtry")


class _Doc(_Lookups):
    """A whole message parsed (and validated when a schema is given), its body found."""

    def __init__(self, xml: bytes, namespace: str, body: str, schema: Path | None) -> None:
        super().__init__(namespace, body)
        root = _parse(xml, self.what) if schema is None else validate(xml, schema, self.what)
        if root.tag != f"{{{namespace}}}Document":
            raise MalformedBankFile(f"{self.what}: root element is {root.tag}, not Document")
        self.body = self.one(root, body)


def payment_status_report(xml: bytes, *, schema: Path | None = None) -> StatusReport:
    """Read a pain.002.001.10 status report; validated against ``schema`` when it is given."""
    doc = _Doc(xml, PAIN_002, "CstmrPmtStsRpt", schema)
    group = doc.one(doc.body, "OrgnlGrpInfAndSts")
    group_reasons = doc.all(group, "StsRsnInf")
    infos = doc.all(doc.body, "OrgnlPmtInfAndSts")
    info_ids = {doc.text(info, "OrgnlPmtInfId") for info in infos}
    if len(info_ids) > 1:
        raise MalformedBankFile(f"{doc.what}: reports on several payment informations {info_ids}")
    transactions: list[TransactionStatus] = []
    for info in infos:
        for tx in doc.all(info, "TxInfAndSts"):
            reasons = doc.all(tx, "StsRsnInf")
            extra = "".join(
                item.text or "" for reason in reasons for item in doc.all(reason, "AddtlInf")
            )
            transactions.append(
                TransactionStatus(
                    end_to_end_id=doc.text(tx, "OrgnlEndToEndId"),
                    status=doc.text(tx, "TxSts"),
                    reason_code=doc.reason(reasons[0], "Rsn") if reasons else None,
                    additional_info=extra or None,
                )
            )
    return StatusReport(
        message_id=doc.text(doc.body, "GrpHdr/MsgId"),
        created_at=doc.moment(doc.body, "GrpHdr/CreDtTm"),
        original_message_id=doc.text(group, "OrgnlMsgId"),
        original_message_name=doc.text(group, "OrgnlMsgNmId"),
        group_status=doc.opt(group, "GrpSts"),
        group_reason_code=doc.reason(group_reasons[0], "Rsn") if group_reasons else None,
        original_payment_info_id=next(iter(info_ids), None),
        payment_info_status=doc.opt(infos[0], "PmtInfSts") if infos else None,
        transactions=tuple(transactions),
    )


#: What is read of each camt.054 entry, and of each of its transaction details (one query each;
#: an entry without details is read as its own transaction).
_ENTRY_PATHS = (
    "Sts/Cd", "Sts/Prtry", "BookgDt/Dt", "BookgDt/DtTm", "NtryDtls/TxDtls", "Amt", "CdtDbtInd",
    "Refs/EndToEndId", "RtrInf/Rsn/Cd", "RtrInf/Rsn/Prtry",
)
_TX_DETAIL_PATHS = (
    "Amt", "CdtDbtInd", "Refs/EndToEndId", "RtrInf/Rsn/Cd", "RtrInf/Rsn/Prtry",
)


def _first_value(doc: _Lookups, got: dict[str, list[ET.Element]], path: str) -> str | None:
    found = got.get(path)
    return doc.value(found[0], path) if found else None


def _code(doc: _Lookups, got: dict[str, list[ET.Element]], code: str, proprietary: str) -> str | None:
    """An ISO code or, failing it, a proprietary one (``Cd`` or ``Prtry`` of a reason or status)."""
    return _first_value(doc, got, code) or _first_value(doc, got, proprietary)


def _booking_day(doc: _Lookups, got: dict[str, list[ET.Element]]) -> date | None:
    if (value := _first_value(doc, got, "BookgDt/Dt")) is not None:
        try:
            return date.fromisoformat(value)
        except ValueError as error:
            raise MalformedBankFile(f"{doc.what}: BookgDt {value!r} is no date") from error
    if (value := _first_value(doc, got, "BookgDt/DtTm")) is not None:
        return doc.parse_moment(value, "BookgDt/DtTm").date()
    return None


def debit_credit_notification(xml: bytes, *, schema: Path | None = None) -> Notification:
    """Read a camt.054.001.08 notification; validated against ``schema`` when it is given.

    An entry with several transaction details (a batch booked as one entry) gives one
    :class:`NotificationEntry` per transaction, with the transaction's own amount.
    """
    doc = _Doc(xml, CAMT_054, "BkToCstmrDbtCdtNtfctn", schema)
    notifications = doc.all(doc.body, "Ntfctn")
    if not notifications:
        raise MalformedBankFile(f"{doc.what}: Ntfctn is missing")
    accounts = {doc.opt(n, "Acct/Id/IBAN") or doc.text(n, "Acct/Id/Othr/Id") for n in notifications}
    if len(accounts) > 1:
        raise MalformedBankFile(f"{doc.what}: notifies several accounts {sorted(accounts)}")
    entries: list[NotificationEntry] = []
    for entry in (e for n in notifications for e in doc.all(n, "Ntry")):
        got = doc.gather(entry, _ENTRY_PATHS)
        status = _code(doc, got, "Sts/Cd", "Sts/Prtry")
        if status is None:
            raise MalformedBankFile(f"{doc.what}: Ntry/Sts is missing")
        booked = _booking_day(doc, got)
        details = got.get("NtryDtls/TxDtls", [])
        for tx in details or [entry]:
            mine = got if tx is entry else doc.gather(tx, _TX_DETAIL_PATHS)
            amounts = mine.get("Amt") if tx is not entry else None
            own = bool(amounts)
            if tx is not entry and not own and len(details) > 1:
                raise MalformedBankFile(f"{doc.what}: TxDtls/Amt missing in a batch entry")
            candidates = amounts or got.get("Amt")
            if not candidates:
                raise MalformedBankFile(f"{doc.what}: Amt is missing")
            element = candidates[0]
            minor, currency = doc.amount_of(element, "Amt")
            indicator = _first_value(doc, mine, "CdtDbtInd") or _first_value(doc, got, "CdtDbtInd")
            if indicator is None:
                raise MalformedBankFile(f"{doc.what}: CdtDbtInd is missing")
            if indicator not in ("CRDT", "DBIT"):
                raise MalformedBankFile(f"{doc.what}: CdtDbtInd {indicator!r}")
            entries.append(
                NotificationEntry(
                    end_to_end_id=_first_value(doc, mine, "Refs/EndToEndId"),
                    amount_minor=minor,
                    currency=currency,
                    credit_debit="CRDT" if indicator == "CRDT" else "DBIT",
                    status=status,
                    booking_date=booked,
                    return_reason_code=_code(doc, mine, "RtrInf/Rsn/Cd", "RtrInf/Rsn/Prtry"),
                )
            )
    return Notification(
        message_id=doc.text(doc.body, "GrpHdr/MsgId"),
        created_at=doc.moment(doc.body, "GrpHdr/CreDtTm"),
        account=accounts.pop(),
        entries=tuple(entries),
    )


# --- pain.001.001.09 (the bank's side) ------------------------------------------------------


def _count(doc: _Lookups, node: ET.Element, path: str) -> int | None:
    value = doc.opt(node, path)
    if value is None:
        return None
    if not value.isdigit() or len(value) > 15:
        raise MalformedBankFile(f"{doc.what}: {path} {value!r} is not a number of transactions")
    return int(value)


def _sum(doc: _Lookups, node: ET.Element, path: str) -> int | None:
    """A control sum (a decimal without currency) in minor units."""
    value = doc.opt(node, path)
    if value is None:
        return None
    try:
        minor = Decimal(value).scaleb(2)
    except InvalidOperation as error:
        raise MalformedBankFile(f"{doc.what}: {path} {value!r} is no amount") from error
    if not minor.is_finite() or minor != minor.to_integral_value():
        raise MalformedBankFile(f"{doc.what}: {path} {value!r} is no amount in minor units")
    return int(minor)


def _identifier(doc: _Lookups, node: ET.Element, path: str) -> str:
    """A ``Max35Text`` reference: 1 to 35 characters."""
    value = doc.text(node, path)
    if len(value) > 35:
        raise MalformedBankFile(f"{doc.what}: {path} {value!r} is longer than 35 characters")
    return value


def _depth(element: ET.Element) -> int:
    """How many ancestors ``element`` has (the root has none)."""
    depth = 0
    parent = element.getparent()  # type: ignore[attr-defined]
    while parent is not None:
        depth += 1
        parent = parent.getparent()
    return depth


#: What the bank reads of each transaction (one query per transaction).
_TX_PATHS = (
    "PmtId/EndToEndId", "Amt/InstdAmt", "Cdtr/Nm", "CdtrAcct/Id/IBAN",
    "CdtrAgt/FinInstnId/BICFI", "RmtInf/Ustrd",
)


def _credit_transfer(doc: _Lookups, tx: ET.Element, index: int) -> CreditTransfer:
    got = doc.gather(tx, _TX_PATHS)

    def first(path: str) -> ET.Element | None:
        found = got.get(path)
        return found[0] if found else None

    def required(path: str) -> str:
        value = doc.value(first(path), path)
        if value is None:
            raise MalformedBankFile(f"{doc.what}: {path} is missing")
        return value

    try:
        element = first("Amt/InstdAmt")
        if element is None:
            raise MalformedBankFile(f"{doc.what}: Amt/InstdAmt is missing")
        amount, currency = doc.amount_of(element, "Amt/InstdAmt")
        if amount > _MAX_MINOR:
            raise MalformedBankFile(f"{doc.what}: Amt/InstdAmt has more than 18 digits")
        end_to_end = required("PmtId/EndToEndId")
        if len(end_to_end) > 35:
            raise MalformedBankFile(
                f"{doc.what}: PmtId/EndToEndId {end_to_end!r} is longer than 35 characters"
            )
        remittance = ((e.text or "").strip() for e in got.get("RmtInf/Ustrd", ()))
        return CreditTransfer(
            end_to_end_id=end_to_end,
            amount_minor=amount,
            currency=currency,
            creditor_name=required("Cdtr/Nm"),
            creditor_iban=required("CdtrAcct/Id/IBAN"),
            creditor_bic=doc.value(first("CdtrAgt/FinInstnId/BICFI"), "CdtrAgt/FinInstnId/BICFI"),
            remittance=" ".join(text for text in remittance if text),
        )
    except MalformedBankFile as error:
        raise MalformedBankFile(f"{error} (in CdtTrfTxInf number {index})") from error


def _check_totals(
    doc: _Lookups, node: ET.Element, where: str, transfers: Sequence[CreditTransfer]
) -> None:
    """``NbOfTxs`` and ``CtrlSum`` of ``node``, when present, must match the transactions."""
    count = _count(doc, node, "NbOfTxs")
    if count is not None and count != len(transfers):
        raise MalformedBankFile(
            f"{doc.what}: {where}/NbOfTxs says {count} but the file has {len(transfers)}"
        )
    total = _sum(doc, node, "CtrlSum")
    actual = sum(t.amount_minor for t in transfers)
    if total is not None and total != actual:
        raise MalformedBankFile(
            f"{doc.what}: {where}/CtrlSum is {total} minor units but the transactions "
            f"sum to {actual}"
        )


def credit_transfer_initiation(xml: bytes, *, schema: Path | None = None) -> PaymentRun:
    """Read a pain.001.001.09 credit transfer initiation back into its :class:`PaymentRun`.

    The file is read as a stream (each ``CdtTrfTxInf`` is dropped once read), so a run of
    100,000 payments does not hold a whole element tree in memory; with ``schema`` it is first
    validated against the XSD, which does build the tree. Only what the bank needs is read and
    checked: one ``PmtInf`` paid by transfer (``PmtMtd`` TRF), the debtor's name, IBAN, BIC and
    organisation id, the requested execution date, and per transaction the end-to-end id,
    amount, currency, creditor name and IBAN (BIC and remittance text optional). The counts and
    control sums, where given, must match the transactions. Amounts of zero are read as they
    are: refusing a payment (AM12) is the bank's decision, not the reader's.
    """
    doc = _Lookups(PAIN_001, "CstmrCdtTrfInitn")
    if schema is not None:
        validate(xml, schema, doc.what)
    elif not isinstance(xml, bytes | bytearray):
        raise MalformedBankFile(f"{doc.what}: expected bytes, got {type(xml).__name__}")
    document, body = doc._q("Document"), doc._q("CstmrCdtTrfInitn")
    header_tag, info_tag, tx_tag = doc._q("GrpHdr"), doc._q("PmtInf"), doc._q("CdtTrfTxInf")
    transfers: list[CreditTransfer] = []
    if b"<!DOCTYPE" in bytes(xml[:4096]).upper():
        raise MalformedBankFile(f"{doc.what}: DTDs and entities are refused (the file declares a DTD)")
    # libxml2 builds the tree and hands Python only the transactions, each dropped once read.
    stream = etree.iterparse(
        io.BytesIO(xml), events=("end",), tag=tx_tag, load_dtd=False, resolve_entities=False,
        no_network=True, huge_tree=True,
    )
    try:
        for _, element in stream:
            parent = element.getparent()
            if parent is not None and parent.tag == info_tag and _depth(parent) == 2:
                transfers.append(_credit_transfer(doc, element, len(transfers) + 1))
                element.clear()  # read: drop its children, keep memory flat
    except etree.XMLSyntaxError as error:
        raise MalformedBankFile(f"{doc.what}: not well-formed XML ({error})") from error
    root = stream.root
    if root is None or root.tag != document:
        raise MalformedBankFile(
            f"{doc.what}: root element is {None if root is None else root.tag}, not Document"
        )
    for child in root.iterchildren(tag=etree.Element):
        if child.tag != body:
            raise MalformedBankFile(f"{doc.what}: the body is {child.tag}, not CstmrCdtTrfInitn")
    content = next(root.iterchildren(body), None)
    header = None if content is None else next(content.iterchildren(header_tag), None)
    infos = [] if content is None else list(content.iterchildren(info_tag))
    if len(infos) > 1:
        raise MalformedBankFile(f"{doc.what}: more than one PmtInf; a payment run has exactly one")
    info = infos[0] if infos else None
    if header is None:
        raise MalformedBankFile(f"{doc.what}: GrpHdr is missing")
    if info is None:
        raise MalformedBankFile(f"{doc.what}: PmtInf is missing")
    if not transfers:
        raise MalformedBankFile(f"{doc.what}: PmtInf/CdtTrfTxInf is missing")
    method = doc.text(info, "PmtMtd")
    if method != "TRF":
        raise MalformedBankFile(f"{doc.what}: PmtMtd is {method!r}; only TRF (transfer) is paid")
    if _count(doc, header, "NbOfTxs") is None:
        raise MalformedBankFile(f"{doc.what}: GrpHdr/NbOfTxs is missing")
    _check_totals(doc, header, "GrpHdr", transfers)
    _check_totals(doc, info, "PmtInf", transfers)
    requested = doc.day(info, "ReqdExctnDt")
    if requested is None:
        raise MalformedBankFile(f"{doc.what}: PmtInf/ReqdExctnDt is missing")
    org_id = doc.opt(info, "Dbtr/Id/OrgId/Othr/Id") or doc.opt(header, "InitgPty/Id/OrgId/Othr/Id")
    if org_id is None:
        raise MalformedBankFile(
            f"{doc.what}: the debtor's organisation id (Dbtr or InitgPty Id/OrgId/Othr/Id) "
            "is missing"
        )
    return PaymentRun(
        message_id=_identifier(doc, header, "MsgId"),
        created_at=doc.moment(header, "CreDtTm"),
        debtor=Debtor(
            name=doc.text(info, "Dbtr/Nm"),
            iban=doc.text(info, "DbtrAcct/Id/IBAN"),
            bic=doc.text(info, "DbtrAgt/FinInstnId/BICFI"),
            org_id=org_id,
        ),
        requested_execution=requested,
        transfers=tuple(transfers),
        payment_info_id=_identifier(doc, info, "PmtInfId"),
    )
