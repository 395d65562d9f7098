"""The :class:`~haqq.ports.SmsGateway` over SMPP 3.4: one transceiver session to an SMSC.

Built on ``smpplib`` for the socket, the bind and the PDU encoding, but not on its event
loop: ``Client.read_once``/``listen`` answer every ``deliver_sm`` as soon as it is read,
so a receipt or a citizen's reply would be lost if haqq stopped before storing it. This
module reads PDUs itself (``Client.read_pdu``) and dispatches them.

Session. The transceiver is bound lazily, on the first call that needs it, and bound again
after the link dropped (the SMSC closed it, sent ``unbind``, or stopped answering). Before a
call uses a session idle for more than ``enquire_link_interval`` seconds it sends
``enquire_link`` and waits for the answer, so a dead link is found before messages are put
on it. An ``enquire_link`` from the SMSC is answered whenever PDUs are read. A refused
connection or bind raises :class:`~haqq.ports.GatewayUnavailable`.

Submitting. Each message is cut by :func:`haqq.domain.sms.split` into parts; each part is
one ``submit_sm`` (``data_coding`` 0 for GSM-7 unpacked septets, 8 for UCS-2; ``esm_class``
0x40 and ``short_message = udh + payload`` for a concatenated part; a delivery receipt asked
for). The concatenation reference is ``crc32(key) % 256``, so sending a key again puts the
same bytes on the wire. Up to ``window`` ``submit_sm`` are in flight before their
``submit_sm_resp`` are read (matched by sequence number). A part answered with status 0 is
accepted; ``ESME_RTHROTTLED``, ``ESME_RMSGQFUL`` and other transient codes make the message
``retry`` (and, once throttled, the messages of the batch not yet started are not sent and
are ``retry`` too); any other code makes it ``rejected`` with the code's name as reason. A
message is accepted only when every part is. A key is sent at most once per call, and a key
answered ``accepted``/``rejected`` earlier by this gateway object is answered from memory
(the caller's outbox remains the record across restarts). If the link fails in the middle of
a batch, messages fully answered keep their result and the others are ``retry``; if nothing at
all was answered, :class:`~haqq.ports.GatewayUnavailable` is raised.

At-least-once inbound. A ``deliver_sm`` (receipt or mobile-originated message) is kept,
*unanswered*, until the caller acknowledges its id with :meth:`SmppGateway.ack`; only then is
``deliver_sm_resp`` sent, with the sequence number(s) it came with. An SMSC redelivers what
was not answered (after its timeout, or on the next bind), so a crash between reading and
storing loses nothing. A redelivered PDU that is still held is merged into the held item
(its sequence number added), so the caller sees it once. A sequence number belongs to the
session it came on: after a rebind the old numbers are dropped, not answered, and the SMSC's
redelivery is answered instead. The one exception: a receipt with neither a message id nor
a state is logged and answered at once (no one could ever use it).

Ids. A receipt's id is derived from its content (message id, ``stat``, ``err``, dates,
TLVs): a redelivered receipt, even after a restart, has the same id, so the caller's unique
key absorbs it, and a redelivery of a receipt acknowledged earlier (its ``deliver_sm_resp``
lost with the link) is answered at once. SMPP 3.4 gives a mobile-originated message no id, and
the same text from the same phone may be sent twice on purpose, so an inbound message's id is
its content *and* the moment it was first read: duplicates are merged while held, but a
redelivery after a restart is a new message (at-least-once: the consumer must be idempotent).

Receipts are read from the ``receipted_message_id`` (0x001E) and ``message_state`` (0x0427)
TLVs when present (the text's ``id:`` may be written differently, e.g. in decimal) and from
the standard text ``id:… sub:… dlvrd:… submit date:… done date:… stat:… err:… text:…``.
``DELIVRD`` is delivered; ``UNDELIV``, ``REJECTD``, ``DELETED``, ``UNKNOWN`` (and a state
not in the standard) failed; ``EXPIRED`` expired; ``ENROUTE``, ``ACCEPTD`` buffered. The
receipt's time is its ``done date`` read in ``smsc_timezone``, else when it was read.

Mobile-originated text is decoded by ``data_coding``: 0 GSM-7 unpacked septets (the default
alphabet of :mod:`haqq.domain.sms`), 8 UTF-16-BE, 1 and 3 ASCII/Latin-1. Concatenated parts
(UDH IEI 0x00 or 0x08) are joined once all are in; parts still missing after
``concat_timeout`` seconds are given up on and what arrived is handed on as one message.

Times come from ``clock`` (default: the system clock in UTC). ``inbound``/``receipts``
return what was read up to ``as_of`` by that clock; what they read from the socket themselves
was waiting when they were asked, so it counts as read at ``as_of`` at the latest. The object
serialises its calls with a lock; it reads the socket only inside a call (no thread of its
own), so call ``receipts``/``inbound`` often enough for the SMSC's ``enquire_link`` to be
answered, or set ``enquire_link_interval`` below the SMSC's idle timeout.

Logging: ``smpplib`` dumps every PDU in hex at DEBUG on the ``haqq.adapters.sms.smpp.wire``
logger (phone numbers and texts included; the bind, with its password, is not logged). Leave
it above DEBUG in production.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import re
import select
import threading
import time
import zlib
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from typing import Any, Final, Literal

import smpplib.client  # type: ignore[import-untyped]
import smpplib.consts  # type: ignore[import-untyped]
import smpplib.exceptions  # type: ignore[import-untyped]
import smpplib.smpp  # type: ignore[import-untyped]

from haqq.domain import sms
from haqq.ports import (
    DeliveryReceipt,
    GatewayUnavailable,
    InboundSms,
    OutgoingSms,
    SubmitResult,
)

log = logging.getLogger(__name__)

ReceiptStatus = Literal["delivered", "failed", "expired", "buffered"]

ESM_UDHI: Final = 0x40
#: esm_class message-type bits: 0x04 SMSC delivery receipt, 0x20 intermediate notification.
ESM_RECEIPT_BITS: Final = 0x04 | 0x20
REGISTERED_DELIVERY_RECEIPT: Final = 0x01

ESME_ROK: Final = 0x00
ESME_RINVCMDID: Final = 0x03
#: Codes that mean "not now": the message is offered again later with the same key.
RETRY_STATUSES: Final = frozenset(
    {
        0x04,  # ESME_RINVBNDSTS: not bound (yet)
        0x08,  # ESME_RSYSERR
        0x14,  # ESME_RMSGQFUL
        0x58,  # ESME_RTHROTTLED
        0x64,  # ESME_RX_T_APPN: temporary application error
    }
)
THROTTLE_STATUSES: Final = frozenset({0x14, 0x58})

STATUS_NAMES: Final[dict[int, str]] = {
    value: name.removeprefix("SMPP_")
    for name, value in vars(smpplib.consts).items()
    if name.startswith("SMPP_ESME_") and isinstance(value, int)
}

#: Receipt ``stat:`` word -> status.
STAT_STATUS: Final[dict[str, ReceiptStatus]] = {
    "DELIVRD": "delivered",
    "UNDELIV": "failed",
    "REJECTD": "failed",
    "DELETED": "failed",
    "UNKNOWN": "failed",
    "EXPIRED": "expired",
    "ENROUTE": "buffered",
    "ACCEPTD": "buffered",
}
#: ``message_state`` TLV value (SMPP 3.4, 5.2.28) -> ``stat:`` word.
MESSAGE_STATES: Final[dict[int, str]] = {
    1: "ENROUTE",
    2: "DELIVRD",
    3: "EXPIRED",
    4: "DELETED",
    5: "UNDELIV",
    6: "ACCEPTD",
    7: "UNKNOWN",
    8: "REJECTD",
}

_RECEIPT_FIELD = re.compile(
    r"(?:^|(?<=\s))(?P<key>id|sub|dlvrd|submit date|done date|stat|err):(?P<value>\S*)",
    re.IGNORECASE,
)

# GSM-7 unpacked septets -> character, built from the domain's public encoder so there is
# one alphabet in haqq.
_GSM7_DECODE: Final[dict[bytes, str]] = {
    sms.split(ch, 0)[0].payload: ch for ch in sms.GSM7_BASIC | sms.GSM7_EXTENSION
}


def status_name(code: int) -> str:
    """``ESME_RINVDSTADR (0x0B)`` for 0x0B; unknown codes by number only."""
    name = STATUS_NAMES.get(code)
    return f"{name} (0x{code:02X})" if name else f"SMPP status 0x{code:02X}"


def gsm7_decode(data: bytes) -> str:
    """Unpacked GSM-7 septets (one per byte, 0x1B escaping the extension table) to text.
    A septet with no character (a bad escape) becomes U+FFFD."""
    out: list[str] = []
    i = 0
    while i < len(data):
        if data[i] == 0x1B and i + 1 < len(data):
            out.append(_GSM7_DECODE.get(data[i : i + 2], "\ufffd"))
            i += 2
        else:
            out.append(_GSM7_DECODE.get(bytes((data[i] & 0x7F,)), "\ufffd"))
            i += 1
    return "".join(out)


def decode_text(data_coding: int, data: bytes) -> str:
    """A short message's text by its ``data_coding``."""
    if data_coding == 0x08:
        return data.decode("utf-16-be", errors="replace")
    if data_coding == 0x00:
        return gsm7_decode(data)
    return data.decode("latin-1")


def split_udh(esm_class: int, data: bytes) -> tuple[bytes, bytes]:
    """``(udh, payload)``; the UDH is empty without the UDHI bit or when malformed."""
    if esm_class & ESM_UDHI and data and data[0] + 1 <= len(data):
        n = data[0] + 1
        return data[:n], data[n:]
    return b"", data


def concat_info(udh: bytes) -> tuple[int, int, int] | None:
    """``(ref, total, seq)`` of a concatenation header (IEI 0x00 or 0x08), else None."""
    i = 1
    while i + 1 < len(udh):
        iei, length = udh[i], udh[i + 1]
        value = udh[i + 2 : i + 2 + length]
        if iei == 0x00 and length == 3 and len(value) == 3:
            return value[0], value[1], value[2]
        if iei == 0x08 and length == 4 and len(value) == 4:
            return (value[0] << 8) | value[1], value[2], value[3]
        i += 2 + length
    return None


@dataclass(frozen=True, slots=True)
class ParsedReceipt:
    message_id: str
    stat: str
    err: str | None
    done: str | None


def parse_receipt(text: str, receipted_id: str | None, state: int | None) -> ParsedReceipt | None:
    """The receipt in a ``deliver_sm``: TLVs first, the standard text for what they miss."""
    head = re.split("text:", text, maxsplit=1, flags=re.IGNORECASE)[0]
    fields = {m["key"].lower(): m["value"] for m in _RECEIPT_FIELD.finditer(head)}
    message_id = receipted_id or fields.get("id")
    stat = MESSAGE_STATES.get(state) if state is not None else None
    stat = stat or fields.get("stat", "").upper() or None
    if not message_id or not stat:
        return None
    return ParsedReceipt(message_id, stat, fields.get("err"), fields.get("done date"))


def receipt_status(stat: str) -> ReceiptStatus:
    return STAT_STATUS.get(stat.upper(), "failed")


def smpp_date(value: str | None, tz: tzinfo) -> datetime | None:
    """``YYMMDDhhmm`` or ``YYMMDDhhmmss`` in ``tz``, else None."""
    if not value or not value.isdigit() or len(value) not in (10, 12):
        return None
    fmt = "%y%m%d%H%M%S" if len(value) == 12 else "%y%m%d%H%M"
    try:
        return datetime.strptime(value, fmt).replace(tzinfo=tz)
    except ValueError:
        return None


def _digest(*parts: object) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(repr(part).encode("utf-8"))
        h.update(b"\x00")
    return h.hexdigest()


def _text(value: Any) -> str:
    """A string field of a parsed smpplib PDU (bytes, str or None)."""
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("latin-1")
    return str(value)


def _octets(value: Any) -> bytes:
    if value is None:
        return b""
    if isinstance(value, bytes):
        return value
    return str(value).encode("latin-1")


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) else None


class LinkDown(Exception):
    """The SMPP session is gone (closed, reset, timed out, unbound)."""


@dataclass(frozen=True, slots=True)
class Pdu:
    """The few fields of a received PDU this adapter uses, typed."""

    command: str
    status: int
    sequence: int
    message_id: str = ""
    source_addr: str = ""
    source_addr_ton: int = 0
    destination_addr: str = ""
    esm_class: int = 0
    data_coding: int = 0
    short_message: bytes = b""
    receipted_message_id: str | None = None
    message_state: int | None = None

    @classmethod
    def of(cls, raw: Any) -> Pdu:
        command = str(raw.command)
        if command != "deliver_sm":
            return cls(
                command, int(raw.status or 0), int(raw.sequence),
                _text(getattr(raw, "message_id", None)),
            )  # fmt: skip
        short = _octets(raw.short_message) or _octets(getattr(raw, "message_payload", None))
        receipted = getattr(raw, "receipted_message_id", None)
        return cls(
            command=command,
            status=int(raw.status or 0),
            sequence=int(raw.sequence),
            source_addr=_text(raw.source_addr),
            source_addr_ton=_int(raw.source_addr_ton) or 0,
            destination_addr=_text(raw.destination_addr),
            esm_class=_int(raw.esm_class) or 0,
            data_coding=_int(raw.data_coding) or 0,
            short_message=short,
            receipted_message_id=_text(receipted).rstrip("\0") or None,
            message_state=_int(getattr(raw, "message_state", None)),
        )


class _Link:
    """One TCP connection bound as a transceiver: a typed layer over ``smpplib``'s Client."""

    def __init__(self, host: str, port: int, timeout: float) -> None:
        self.timeout = timeout
        self.client: Any = smpplib.client.Client(
            host,
            port,
            timeout=timeout,
            allow_unknown_opt_params=True,
            logger_name="haqq.adapters.sms.smpp.wire",
        )
        self.last_rx = time.monotonic()

    def bind(self, system_id: str, password: str, system_type: str) -> None:
        wire = self.client.logger
        quiet = wire.disabled
        wire.disabled = True  # its debug dump of the bind PDU would show the password
        try:
            self.client.connect()
            self.client.bind_transceiver(
                system_id=system_id, password=password, system_type=system_type
            )
        except smpplib.exceptions.PDUError as exc:
            self.close()
            code = exc.args[1] if len(exc.args) > 1 and isinstance(exc.args[1], int) else None
            what = status_name(code) if code is not None else str(exc)
            raise GatewayUnavailable(f"SMSC refused bind_transceiver: {what}") from None
        except (smpplib.exceptions.ConnectionError, OSError) as exc:
            self.close()
            raise GatewayUnavailable(
                f"cannot reach the SMSC at {self.client.host}:{self.client.port}: {exc or 'no answer'}"
            ) from None
        finally:
            wire.disabled = quiet
        self.last_rx = time.monotonic()

    def send(self, command: str, **fields: Any) -> int:
        """Send a request PDU; its sequence number."""
        pdu = smpplib.smpp.make_pdu(command, client=self.client, **fields)
        self._send(pdu)
        return int(pdu.sequence)

    def answer(self, command: str, sequence: int, status: int = ESME_ROK) -> None:
        pdu = smpplib.smpp.make_pdu(command, client=self.client, status=status)
        pdu.sequence = sequence
        self._send(pdu)

    def _send(self, pdu: Any) -> None:
        try:
            self.client.send_pdu(pdu)
        except (smpplib.exceptions.ConnectionError, smpplib.exceptions.PDUError, OSError) as exc:
            raise LinkDown(f"send {pdu.command}: {exc or 'connection lost'}") from None

    def read(self, wait: float) -> Pdu | None:
        """The next PDU if one starts arriving within ``wait`` seconds, else None. Once a PDU
        has started, the rest must come within the timeout, or the link is declared down."""
        sock = self.client._socket
        if sock is None:
            raise LinkDown("not connected")
        try:
            readable, _, _ = select.select([sock], [], [], max(wait, 0.0))
        except (OSError, ValueError) as exc:
            raise LinkDown(f"select: {exc}") from None
        if not readable:
            return None
        try:
            raw = self.client.read_pdu()
        except smpplib.exceptions.UnknownCommandError as exc:
            # The whole PDU was read; the stream is still in step.
            log.warning("smpp: ignoring a PDU with an unknown command: %s", exc)
            self.last_rx = time.monotonic()
            return Pdu("unknown", 0, 0)
        except (TimeoutError, smpplib.exceptions.ConnectionError, OSError) as exc:
            raise LinkDown(f"read: {exc or 'connection closed'}") from None
        except smpplib.exceptions.PDUError as exc:
            raise LinkDown(f"read: broken PDU: {exc}") from None
        if raw is None:
            self.last_rx = time.monotonic()
            return Pdu("unknown", 0, 0)
        self.last_rx = time.monotonic()
        return Pdu.of(raw)

    def unbind(self) -> None:
        """Unbind politely (best effort) and close."""
        try:
            seq = self.send("unbind")
            deadline = time.monotonic() + min(self.timeout, 2.0)
            while (left := deadline - time.monotonic()) > 0:
                pdu = self.read(left)
                if pdu is None or (pdu.command == "unbind_resp" and pdu.sequence == seq):
                    break
        except LinkDown:
            pass
        self.close()

    def close(self) -> None:
        sock = self.client._socket
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.close()
        self.client._socket = None
        self.client.state = smpplib.consts.SMPP_CLIENT_STATE_CLOSED


@dataclass(slots=True)
class _Held:
    """A receipt or inbound message read but not yet acknowledged."""

    item: DeliveryReceipt | InboundSms
    received_at: datetime
    #: (session generation, sequence number) of every deliver_sm that carried it.
    seqs: list[tuple[int, int]] = field(default_factory=list)
    #: Content keys of the deliver_sm that carried it (several for a joined message).
    keys: list[str] = field(default_factory=list)


@dataclass(slots=True)
class _Fragment:
    key: str
    seq_in_message: int
    text: str
    received_at: datetime
    first_seen: float
    seqs: list[tuple[int, int]] = field(default_factory=list)


@dataclass(slots=True)
class _Part:
    key: str
    index: int
    part: sms.SmsPart
    status: Literal["pending", "accepted", "rejected", "retry", "unsent"] = "unsent"
    message_id: str = ""
    reason: str | None = None


def _now_utc() -> datetime:
    return datetime.now(UTC)


class SmppGateway:
    """An SMPP 3.4 transceiver to one SMSC (see the module's docstring for the design)."""

    def __init__(
        self,
        host: str,
        port: int,
        system_id: str,
        password: str,
        *,
        source_addr: str = "HAQQ",
        system_type: str = "",
        name: str = "smpp",
        timeout: float = 10.0,
        window: int = 10,
        enquire_link_interval: float = 30.0,
        poll_wait: float = 0.0,
        concat_timeout: float = 300.0,
        smsc_timezone: tzinfo = UTC,
        clock: Callable[[], datetime] = _now_utc,
        remember: int = 100_000,
    ) -> None:
        if not system_id or len(system_id) > 15:
            raise ValueError("SMPP system_id must be 1..15 characters")
        if len(password) > 8:
            raise ValueError("SMPP password must be at most 8 characters")
        if len(system_type) > 12:
            raise ValueError("SMPP system_type must be at most 12 characters")
        if window < 1:
            raise ValueError("window must be at least 1")
        self.name = name
        self.host = host
        self.port = int(port)
        self.system_id = system_id
        self.password = password
        self.system_type = system_type
        self.source_addr = source_addr
        self.timeout = timeout
        self.window = window
        self.enquire_link_interval = enquire_link_interval
        self.concat_timeout = concat_timeout
        self.poll_wait = poll_wait
        self.smsc_timezone = smsc_timezone
        self.clock = clock
        self.remember = remember

        self._lock = threading.RLock()
        self._link: _Link | None = None
        self._generation = 0
        #: Sequence number -> part, for the submit_sm in flight.
        self._inflight: dict[int, _Part] = {}
        self._held: OrderedDict[str, _Held] = OrderedDict()
        #: Content key of a deliver_sm -> id of the held item it belongs to.
        self._held_by_key: dict[str, str] = {}
        self._fragments: dict[tuple[str, int, int], dict[int, _Fragment]] = {}
        #: Content keys of receipts acknowledged lately: a redelivery is answered at once.
        self._acked_keys: OrderedDict[str, None] = OrderedDict()
        #: Final results by key (accepted/rejected), answered again without sending.
        self._results: OrderedDict[str, SubmitResult] = OrderedDict()
        self._throttled = False
        #: While answering inbound()/receipts(as_of): the latest reception time to stamp.
        self._stamp_cap: datetime | None = None

    # -- the port ------------------------------------------------------------------------

    def submit(self, messages: Sequence[OutgoingSms]) -> Mapping[str, SubmitResult]:
        with self._lock:
            results: dict[str, SubmitResult] = {}
            todo: list[OutgoingSms] = []
            for m in messages:
                if m.key in results:
                    continue  # a key is sent at most once per call
                known = self._results.get(m.key)
                if known is not None:
                    results[m.key] = known
                    continue
                try:
                    sms.split(m.text, self._ref(m.key))
                except sms.SmsEncodingError as exc:
                    results[m.key] = self._remember(
                        SubmitResult(m.key, "", "rejected", f"cannot encode: {exc}")
                    )
                    continue
                results[m.key] = SubmitResult(m.key, "", "retry", "not sent")  # placeholder
                todo.append(m)
            if todo:
                results.update(self._submit(todo))
            return results

    def inbound(self, *, as_of: datetime, limit: int = 10_000) -> Sequence[InboundSms]:
        with self._lock:
            self._poll(as_of)
            self._flush_fragments(force=False)
            return [
                h.item
                for h in self._held.values()
                if isinstance(h.item, InboundSms) and h.received_at <= as_of
            ][:limit]

    def receipts(self, *, as_of: datetime, limit: int = 10_000) -> Sequence[DeliveryReceipt]:
        with self._lock:
            self._poll(as_of)
            return [
                h.item
                for h in self._held.values()
                if isinstance(h.item, DeliveryReceipt) and h.received_at <= as_of
            ][:limit]

    def ack(self, ids: Sequence[str]) -> None:
        """Answer (``deliver_sm_resp``) every deliver_sm that carried these items, on the
        current session; an item that came on an earlier session is redelivered by the SMSC
        and then answered at once (receipts) or handed on again (inbound). Unknown ids are
        ignored. A link that fails here is dropped, not reported: the SMSC redelivers."""
        with self._lock:
            answers: list[int] = []
            for item_id in dict.fromkeys(ids):
                held = self._held.pop(item_id, None)
                if held is None:
                    continue
                answers.extend(s for g, s in held.seqs if g == self._generation)
                for key in held.keys:
                    self._held_by_key.pop(key, None)
                    if isinstance(held.item, DeliveryReceipt):
                        self._acked_keys[key] = None
                while len(self._acked_keys) > self.remember:
                    self._acked_keys.popitem(last=False)
            if self._link is None:
                return
            try:
                for seq in answers:
                    self._link.answer("deliver_sm_resp", seq)
            except LinkDown as exc:
                self._drop(str(exc))

    def close(self) -> None:
        """Unbind and close; held items stay unanswered, so the SMSC redelivers them."""
        with self._lock:
            if self._link is not None:
                self._link.unbind()
                self._link = None
            self._inflight.clear()

    def __enter__(self) -> SmppGateway:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- session ---------------------------------------------------------------------------

    def _session(self) -> _Link:
        """A bound link: the current one if it still answers, else a new one."""
        link = self._link
        if link is not None:
            try:
                self._drain(0.0)
                if self._link is not None and (
                    time.monotonic() - link.last_rx > self.enquire_link_interval
                ):
                    self._enquire_link(link)
            except LinkDown as exc:
                self._drop(str(exc))
        if self._link is None:
            link = _Link(self.host, self.port, self.timeout)
            link.bind(self.system_id, self.password, self.system_type)
            self._generation += 1
            self._link = link
            log.info("smpp: bound to %s:%s as %s", self.host, self.port, self.system_id)
        return self._link

    def _poll(self, as_of: datetime) -> None:
        """Bind if need be, then take in the PDUs waiting (up to ``poll_wait`` seconds for
        the first). They were waiting when the caller asked, so they count as received by
        ``as_of`` at the latest. A link failing here is dropped; what is held stays held."""
        self._stamp_cap = as_of
        try:
            self._session()
            with contextlib.suppress(LinkDown):
                self._drain(self.poll_wait)
        finally:
            self._stamp_cap = None

    def _enquire_link(self, link: _Link) -> None:
        seq = link.send("enquire_link")
        deadline = time.monotonic() + self.timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise LinkDown("no enquire_link_resp")
            pdu = link.read(left)
            if pdu is None:
                continue
            if pdu.command == "enquire_link_resp" and pdu.sequence == seq:
                return
            self._dispatch(link, pdu)
            if self._link is None:
                raise LinkDown("unbound while waiting for enquire_link_resp")

    def _drop(self, why: str) -> None:
        if self._link is not None:
            log.warning("smpp: link to %s:%s dropped: %s", self.host, self.port, why)
            self._link.close()
        self._link = None

    def _drain(self, wait: float) -> None:
        """Read and dispatch every PDU waiting now (the first may take ``wait`` seconds).
        Raises :class:`LinkDown` (after dropping the link) when the link fails."""
        link = self._link
        if link is None:
            return
        try:
            pdu = link.read(wait)
            while pdu is not None:
                self._dispatch(link, pdu)
                if self._link is None:
                    return
                pdu = link.read(0.0)
        except LinkDown as exc:
            self._drop(str(exc))
            raise

    def _dispatch(self, link: _Link, pdu: Pdu) -> None:
        """Act on one PDU that is not a response being waited for by the caller."""
        if pdu.command == "deliver_sm":
            self._on_deliver(link, pdu)
        elif pdu.command in ("submit_sm_resp", "generic_nack"):
            self._on_submit_resp(pdu)
        elif pdu.command == "enquire_link":
            link.answer("enquire_link_resp", pdu.sequence)
        elif pdu.command == "unbind":
            try:
                link.answer("unbind_resp", pdu.sequence)
            finally:
                self._drop("the SMSC unbound")
        elif pdu.command == "unknown":
            pass
        elif pdu.command in ("data_sm", "query_sm", "replace_sm", "cancel_sm"):
            link.answer("generic_nack", pdu.sequence, ESME_RINVCMDID)
        # Other responses (enquire_link_resp, unbind_resp, a late answer) need nothing.

    # -- submitting ------------------------------------------------------------------------

    @staticmethod
    def _ref(key: str) -> int:
        return zlib.crc32(key.encode("utf-8")) % 256

    def _remember(self, result: SubmitResult) -> SubmitResult:
        if result.status != "retry":
            self._results[result.key] = result
            while len(self._results) > self.remember:
                self._results.popitem(last=False)
        return result

    def _addresses(self, phone: str) -> tuple[str, int, int]:
        digits = phone.strip().replace(" ", "")
        if digits.startswith("+"):
            return digits[1:], 1, 1
        if digits.startswith("00"):
            return digits[2:], 1, 1
        return digits, 0, 1

    def _source(self) -> tuple[str, int, int]:
        src = self.source_addr
        if src.startswith("+") and src[1:].isdigit():
            return src[1:], 1, 1
        if src.isdigit():
            return src, (3 if len(src) <= 6 else 1), (0 if len(src) <= 6 else 1)
        return src, 5, 0  # alphanumeric sender

    def _submit(self, todo: list[OutgoingSms]) -> dict[str, SubmitResult]:
        link = self._session()
        parts: dict[str, list[_Part]] = {}
        for m in todo:
            split = sms.split(m.text, self._ref(m.key))
            parts[m.key] = [_Part(m.key, i, p) for i, p in enumerate(split)]
        source, source_ton, source_npi = self._source()
        answered = 0
        failure: str | None = None
        self._inflight.clear()
        self._throttled = False
        try:
            for m in todo:
                destination, ton, npi = self._addresses(m.phone)
                for part in parts[m.key]:
                    while len(self._inflight) >= self.window:
                        answered += self._await_one(link)
                    if self._throttled and part.index == 0:
                        break  # throttling seen: the messages not yet started wait
                    p = part.part
                    seq = link.send(
                        "submit_sm",
                        source_addr=source,
                        source_addr_ton=source_ton,
                        source_addr_npi=source_npi,
                        destination_addr=destination,
                        dest_addr_ton=ton,
                        dest_addr_npi=npi,
                        esm_class=ESM_UDHI if p.udh else 0x00,
                        registered_delivery=REGISTERED_DELIVERY_RECEIPT,
                        data_coding=sms.DATA_CODING[p.encoding],
                        short_message=p.udh + p.payload,
                    )
                    part.status = "pending"
                    self._inflight[seq] = part
            while self._inflight:
                answered += self._await_one(link)
        except LinkDown as exc:
            failure = str(exc)
            self._drop(failure)
            self._inflight.clear()
            if answered == 0:
                raise GatewayUnavailable(f"SMPP link failed before any answer: {failure}") from None
        return {key: self._result(key, ps, failure, self._throttled) for key, ps in parts.items()}

    def _await_one(self, link: _Link) -> int:
        """Read until one submit_sm_resp in flight is answered; 1."""
        deadline = time.monotonic() + self.timeout
        before = len(self._inflight)
        while len(self._inflight) >= before:
            left = deadline - time.monotonic()
            if left <= 0:
                raise LinkDown(f"no submit_sm_resp within {self.timeout:g} s")
            pdu = link.read(left)
            if pdu is None:
                continue
            self._dispatch(link, pdu)
            if self._link is None:
                raise LinkDown("the SMSC unbound during submit")
        return 1

    def _on_submit_resp(self, pdu: Pdu) -> None:
        part = self._inflight.pop(pdu.sequence, None)
        if part is None:
            return  # a late answer to a call given up on
        if pdu.status == ESME_ROK and pdu.command == "submit_sm_resp":
            part.status = "accepted"
            part.message_id = pdu.message_id
        elif pdu.status in RETRY_STATUSES:
            part.status = "retry"
            part.reason = status_name(pdu.status)
            self._throttled = self._throttled or pdu.status in THROTTLE_STATUSES
        else:
            part.status = "rejected"
            part.reason = status_name(pdu.status)

    def _result(
        self, key: str, parts: list[_Part], failure: str | None, throttled: bool
    ) -> SubmitResult:
        ids = tuple(p.message_id for p in parts if p.status == "accepted")
        first = ids[0] if ids else ""
        rejected = next((p for p in parts if p.status == "rejected"), None)
        if rejected is not None:
            return self._remember(SubmitResult(key, first, "rejected", rejected.reason, ids))
        if all(p.status == "accepted" for p in parts):
            return self._remember(SubmitResult(key, first, "accepted", None, ids))
        retry = next((p for p in parts if p.status == "retry"), None)
        if retry is not None:
            reason = retry.reason
        elif any(p.status == "pending" for p in parts) and failure is not None:
            reason = f"link lost before the SMSC answered (may have been sent): {failure}"
        elif throttled:
            reason = "not sent: the SMSC is throttling"
        else:
            reason = f"not sent: {failure}" if failure else "not sent"
        return SubmitResult(key, first, "retry", reason, ids)

    # -- inbound ---------------------------------------------------------------------------

    def _on_deliver(self, link: _Link, pdu: Pdu) -> None:
        udh, payload = split_udh(pdu.esm_class, pdu.short_message)
        key = _digest(
            pdu.source_addr, pdu.destination_addr, pdu.esm_class, pdu.data_coding,
            pdu.short_message, pdu.receipted_message_id, pdu.message_state,
        )  # fmt: skip
        stamp = (self._generation, pdu.sequence)
        now = self.clock()
        if self._stamp_cap is not None and now > self._stamp_cap:
            now = self._stamp_cap
        if pdu.esm_class & ESM_RECEIPT_BITS:
            if key in self._acked_keys:
                link.answer("deliver_sm_resp", pdu.sequence)
                return
            held_id = self._held_by_key.get(key)
            if held_id is not None:
                self._held[held_id].seqs.append(stamp)
                return
            text = payload.decode("latin-1") if pdu.data_coding != 0x08 else decode_text(8, payload)
            parsed = parse_receipt(text, pdu.receipted_message_id, pdu.message_state)
            if parsed is None:
                # Not a receipt anyone can use: answer it so the SMSC stops sending it.
                log.warning("smpp: unreadable delivery receipt %r", text[:200])
                link.answer("deliver_sm_resp", pdu.sequence)
                return
            receipt_id = f"dlr:{parsed.message_id}:{key[:16]}"
            detail = f"stat:{parsed.stat}" + (f" err:{parsed.err}" if parsed.err else "")
            at = smpp_date(parsed.done, self.smsc_timezone) or now
            receipt = DeliveryReceipt(
                receipt_id, parsed.message_id, receipt_status(parsed.stat), at, detail
            )
            self._hold(receipt_id, key, receipt, now, stamp)
            return
        phone = pdu.source_addr
        if pdu.source_addr_ton == 1 and phone and not phone.startswith("+"):
            phone = "+" + phone
        held_id = self._held_by_key.get(key)
        if held_id is not None:
            self._held[held_id].seqs.append(stamp)
            return
        text = decode_text(pdu.data_coding, payload)
        concat = concat_info(udh)
        if concat is None or concat[1] <= 1:
            gateway_id = "mo-" + _digest(key, now.isoformat())[:32]
            self._hold(gateway_id, key, InboundSms(gateway_id, phone, text, now), now, stamp)
            return
        ref, total, seq = concat
        group = self._fragments.setdefault((phone, ref, total), {})
        fragment = group.get(seq)
        if fragment is not None and fragment.key == key:
            fragment.seqs.append(stamp)
            return
        group[seq] = _Fragment(key, seq, text, now, time.monotonic(), [stamp])
        if len(group) == total:
            self._join((phone, ref, total))

    def _hold(
        self,
        item_id: str,
        key: str,
        item: DeliveryReceipt | InboundSms,
        now: datetime,
        stamp: tuple[int, int],
    ) -> None:
        held = self._held.get(item_id)
        if held is None:
            held = self._held[item_id] = _Held(item, now)
        held.seqs.append(stamp)
        held.keys.append(key)
        self._held_by_key[key] = item_id

    def _join(self, group_key: tuple[str, int, int]) -> None:
        group = self._fragments.pop(group_key)
        ordered = [group[s] for s in sorted(group)]
        phone = group_key[0]
        received = min(f.received_at for f in ordered)
        gateway_id = "mo-" + _digest(*(f.key for f in ordered), received.isoformat())[:32]
        text = "".join(f.text for f in ordered)
        held = _Held(InboundSms(gateway_id, phone, text, received), received)
        for f in ordered:
            held.seqs.extend(f.seqs)
            held.keys.append(f.key)
            self._held_by_key[f.key] = gateway_id
        self._held[gateway_id] = held

    def _flush_fragments(self, *, force: bool) -> None:
        """Hand on, as they are, concatenated messages whose parts stopped coming."""
        now = time.monotonic()
        for group_key, group in list(self._fragments.items()):
            oldest = min(f.first_seen for f in group.values())
            if force or now - oldest >= self.concat_timeout:
                self._join(group_key)
