"""A small SMSC that speaks real SMPP 3.4 on a loopback port, for the SMPP adapter's tests.

It is written from the specification with ``struct`` (it does not reuse the client library's
PDU classes), so a test checks the bytes the adapter really puts on the wire. What it does:

- ``bind_transceiver``: checks ``system_id``/``password`` (wrong: ``ESME_RBINDFAIL``);
  a second bind on a bound session is ``ESME_RALYBND``.
- ``submit_sm``: assigns a message id, keeps the message (addresses, ``data_coding``,
  ``esm_class``, UDH, payload), answers ``submit_sm_resp``. Configurable refusals: a
  destination starting with ``reject_prefix`` gets ``ESME_RINVDSTADR``; every
  ``throttle_every``-th submit gets ``ESME_RTHROTTLED`` (and is not kept); past
  ``silent_after`` submits, none is answered at all (a hung SMSC).
- Delivery receipts: a ``deliver_sm`` (``esm_class`` 0x04) for every accepted part that asked
  for one, ``receipt_delay`` seconds later, in the standard text format and (unless
  ``receipt_tlvs`` is off) with the ``receipted_message_id`` and ``message_state`` TLVs.
  The ``stat:`` is ``receipt_stat``, or the value of the longest prefix of the destination
  in ``stat_by_prefix``.
- Mobile-originated messages: :meth:`SmscFake.mo` queues a ``deliver_sm`` (GSM-7 unpacked
  septets or UCS-2, optionally cut into UDH-concatenated parts).
- At-least-once delivery, as real SMSCs do it: a ``deliver_sm`` stays outstanding until a
  ``deliver_sm_resp`` with status 0 answers it; it is sent again after ``resend_after``
  seconds on the same session, and again on the next bind when its session has gone.
- ``enquire_link`` -> ``enquire_link_resp``; :meth:`SmscFake.ping` sends one to the client.
- ``unbind`` -> ``unbind_resp`` and the session closes; :meth:`SmscFake.drop` cuts every
  session without a word (a network failure).

Threads: one accepting, one reader per session, one ticker for timed sends. Use it as
``with SmscFake() as fake: ... fake.port ...``.
"""

from __future__ import annotations

import contextlib
import itertools
import socket
import struct
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType

# Command ids (SMPP 3.4, section 5.1.2.1).
GENERIC_NACK = 0x80000000
SUBMIT_SM = 0x00000004
SUBMIT_SM_RESP = 0x80000004
DELIVER_SM = 0x00000005
DELIVER_SM_RESP = 0x80000005
UNBIND = 0x00000006
UNBIND_RESP = 0x80000006
BIND_TRANSCEIVER = 0x00000009
BIND_TRANSCEIVER_RESP = 0x80000009
ENQUIRE_LINK = 0x00000015
ENQUIRE_LINK_RESP = 0x80000015

# Command status values used here.
ESME_ROK = 0x00
ESME_RINVCMDID = 0x03
ESME_RINVBNDSTS = 0x04
ESME_RALYBND = 0x05
ESME_RINVDSTADR = 0x0B
ESME_RBINDFAIL = 0x0D
ESME_RTHROTTLED = 0x58

# TLV tags.
TAG_RECEIPTED_MESSAGE_ID = 0x001E
TAG_MESSAGE_STATE = 0x0427

#: message_state values (SMPP 3.4, 5.2.28) for each receipt ``stat:`` word.
MESSAGE_STATE = {
    "ENROUTE": 1,
    "DELIVRD": 2,
    "EXPIRED": 3,
    "DELETED": 4,
    "UNDELIV": 5,
    "ACCEPTD": 6,
    "UNKNOWN": 7,
    "REJECTD": 8,
}

_HEADER = struct.Struct(">IIII")

# 3GPP TS 23.038 default alphabet (index = septet) and extension table, written out here
# independently of haqq's own table so the fake checks it rather than repeats it.
_GSM7 = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM7_EXT = {0x0A: "\f", 0x14: "^", 0x28: "{", 0x29: "}", 0x2F: "\\", 0x3C: "[", 0x3D: "~",
             0x3E: "]", 0x40: "|", 0x65: "€"}  # fmt: skip
_GSM7_ENCODE = {ch: bytes([i]) for i, ch in enumerate(_GSM7) if i != 0x1B} | {
    ch: bytes([0x1B, code]) for code, ch in _GSM7_EXT.items()
}


def gsm7_decode(septets: bytes) -> str:
    """Unpacked septets (one per byte) to text."""
    out: list[str] = []
    escape = False
    for b in septets:
        if escape:
            out.append(_GSM7_EXT.get(b, " "))
            escape = False
        elif b == 0x1B:
            escape = True
        else:
            out.append(_GSM7[b & 0x7F])
    return "".join(out)


def gsm7_encode(text: str) -> bytes:
    return b"".join(_GSM7_ENCODE[ch] for ch in text)


def decode(data_coding: int, payload: bytes) -> str:
    if data_coding == 0x08:
        return payload.decode("utf-16-be")
    if data_coding == 0x00:
        return gsm7_decode(payload)
    return payload.decode("latin-1")


def encode(data_coding: int, text: str) -> bytes:
    if data_coding == 0x08:
        return text.encode("utf-16-be")
    if data_coding == 0x00:
        return gsm7_encode(text)
    return text.encode("latin-1")


def cstr(value: str) -> bytes:
    return value.encode("latin-1") + b"\0"


class _Body:
    """A cursor over a PDU body."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def cstr(self) -> str:
        end = self.data.index(b"\0", self.pos)
        value = self.data[self.pos : end].decode("latin-1")
        self.pos = end + 1
        return value

    def u8(self) -> int:
        value = self.data[self.pos]
        self.pos += 1
        return value

    def octets(self, n: int) -> bytes:
        value = self.data[self.pos : self.pos + n]
        self.pos += n
        return value

    def tlvs(self) -> dict[int, bytes]:
        out: dict[int, bytes] = {}
        while self.pos + 4 <= len(self.data):
            tag, length = struct.unpack_from(">HH", self.data, self.pos)
            self.pos += 4
            out[tag] = self.octets(length)
        return out


@dataclass(frozen=True)
class SubmittedPart:
    """One ``submit_sm`` the fake accepted."""

    message_id: str
    session: int
    source_addr_ton: int
    source_addr: str
    dest_addr_ton: int
    destination_addr: str
    esm_class: int
    registered_delivery: int
    data_coding: int
    short_message: bytes
    udh: bytes
    payload: bytes

    @property
    def text(self) -> str:
        return decode(self.data_coding, self.payload)

    @property
    def concat(self) -> tuple[int, int, int] | None:
        """``(ref, total, seq)`` from an 8-bit-reference concatenation header."""
        if len(self.udh) >= 6 and self.udh[1] == 0x00 and self.udh[2] == 3:
            return self.udh[3], self.udh[4], self.udh[5]
        return None


@dataclass
class Delivery:
    """A ``deliver_sm`` the fake owes the client until it is answered."""

    id: int
    kind: str  # "receipt" | "mo"
    body: bytes
    due: float
    session: _Session | None = None
    #: Every (session number, sequence number) it was sent with: any of them may be answered.
    sent_as: set[tuple[int, int]] = field(default_factory=set)
    sent_at: float | None = None
    sends: int = 0
    answered: bool = False


@dataclass(eq=False)
class _Session:
    number: int
    sock: socket.socket
    lock: threading.Lock = field(default_factory=threading.Lock)
    bound: bool = False
    closed: bool = False
    seq: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def send(self, command: int, seq: int, body: bytes = b"", status: int = ESME_ROK) -> None:
        pdu = _HEADER.pack(16 + len(body), command, status, seq) + body
        with self.lock:
            if self.closed:
                return
            try:
                self.sock.sendall(pdu)
            except OSError:
                self.closed = True

    def close(self) -> None:
        with self.lock:
            self.closed = True
            self.bound = False
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()


def _smpp_time(at: datetime) -> str:
    return at.strftime("%y%m%d%H%M")


class SmscFake:
    def __init__(
        self,
        *,
        system_id: str = "haqq",
        password: str = "secret",
        reject_prefix: str | None = None,
        throttle_every: int = 0,
        receipt_stat: str = "DELIVRD",
        stat_by_prefix: dict[str, str] | None = None,
        receipt_delay: float = 0.0,
        receipt_tlvs: bool = True,
        resend_after: float = 30.0,
        silent_after: int | None = None,
    ) -> None:
        self.system_id = system_id
        self.password = password
        self.reject_prefix = reject_prefix
        self.throttle_every = throttle_every
        self.receipt_stat = receipt_stat
        self.stat_by_prefix = dict(stat_by_prefix or {})
        self.receipt_delay = receipt_delay
        self.receipt_tlvs = receipt_tlvs
        self.resend_after = resend_after
        self.silent_after = silent_after

        #: Every bind attempt: (system_id, accepted).
        self.binds: list[tuple[str, bool]] = []
        #: Every accepted part, in order.
        self.parts: list[SubmittedPart] = []
        #: Every submit_sm received (accepted or not): (destination, status).
        self.submits: list[tuple[str, int]] = []
        self.enquire_links = 0
        self.enquire_link_resps = 0
        self.unbinds = 0
        self.deliveries: list[Delivery] = []

        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._sessions: list[_Session] = []
        self._session_numbers = itertools.count(1)
        self._message_ids = itertools.count(0x5A000)
        self._delivery_ids = itertools.count(1)
        self._threads: list[threading.Thread] = []
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(8)
        self._listener.settimeout(0.05)
        self.host = "127.0.0.1"
        self.port: int = self._listener.getsockname()[1]

    # -- lifecycle -------------------------------------------------------------------------

    def __enter__(self) -> SmscFake:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        for target in (self._accept_loop, self._tick_loop):
            thread = threading.Thread(
                target=target, daemon=True, name=f"smsc-fake-{target.__name__}"
            )
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        self._listener.close()
        self.drop()
        for thread in self._threads:
            thread.join(timeout=2)

    def drop(self) -> None:
        """Cut every session at once, without unbind (the network failed)."""
        with self._lock:
            sessions = list(self._sessions)
        for session in sessions:
            session.close()

    # -- what a test asks for ----------------------------------------------------------------

    @property
    def bound_sessions(self) -> int:
        with self._lock:
            return sum(1 for s in self._sessions if s.bound and not s.closed)

    def texts(self, destination: str) -> list[str]:
        """The messages a destination was sent, concatenated parts joined, in order."""
        out: list[str] = []
        groups: dict[tuple[int, int], dict[int, str]] = {}
        with self._lock:
            parts = [p for p in self.parts if p.destination_addr == destination]
        for part in parts:
            concat = part.concat
            if concat is None:
                out.append(part.text)
                continue
            ref, total, seq = concat
            group = groups.setdefault((ref, total), {})
            if not group:
                out.append("")  # placeholder, filled when complete
            group[seq] = part.text
            if len(group) == total:
                out[-1] = "".join(group[i] for i in range(1, total + 1))
                del groups[(ref, total)]
        return out

    def unanswered(self, kind: str | None = None) -> list[Delivery]:
        with self._lock:
            return [
                d for d in self.deliveries if not d.answered and (kind is None or d.kind == kind)
            ]

    def mo(
        self,
        phone: str,
        text: str,
        data_coding: int = 0x08,
        *,
        to: str = "HAQQ",
        part_chars: int | None = None,
        ref: int = 0x2A,
    ) -> None:
        """A mobile-originated message from ``phone``; ``part_chars`` cuts it into
        concatenated parts of that many characters."""
        chunks = [text]
        if part_chars is not None and len(text) > part_chars:
            chunks = [text[i : i + part_chars] for i in range(0, len(text), part_chars)]
        ton = 1 if phone.startswith("+") else 0
        for seq, chunk in enumerate(chunks, start=1):
            udh = b"" if len(chunks) == 1 else bytes((5, 0, 3, ref, len(chunks), seq))
            body = self._deliver_body(
                source=phone.lstrip("+"),
                source_ton=ton,
                destination=to,
                esm_class=0x40 if udh else 0x00,
                data_coding=data_coding,
                short_message=udh + encode(data_coding, chunk),
            )
            self._queue("mo", body, delay=0.0)

    def ping(self) -> None:
        """Send ``enquire_link`` to every bound session."""
        with self._lock:
            sessions = [s for s in self._sessions if s.bound and not s.closed]
        for session in sessions:
            session.send(ENQUIRE_LINK, next(session.seq))

    # -- internals ---------------------------------------------------------------------------

    def _queue(self, kind: str, body: bytes, *, delay: float) -> None:
        with self._lock:
            self.deliveries.append(
                Delivery(next(self._delivery_ids), kind, body, time.monotonic() + delay)
            )

    @staticmethod
    def _deliver_body(
        *,
        source: str,
        source_ton: int,
        destination: str,
        esm_class: int,
        data_coding: int,
        short_message: bytes,
        tlvs: bytes = b"",
    ) -> bytes:
        return (
            cstr("")  # service_type
            + bytes((source_ton, 1 if source_ton == 1 else 0))
            + cstr(source)
            + bytes((5 if not destination.isdigit() else 1, 0))
            + cstr(destination)
            + bytes((esm_class, 0, 0))  # esm_class, protocol_id, priority_flag
            + cstr("")  # schedule_delivery_time
            + cstr("")  # validity_period
            + bytes((0, 0, data_coding, 0, len(short_message)))
            + short_message
            + tlvs
        )

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                sock, _addr = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            sock.settimeout(None)
            session = _Session(next(self._session_numbers), sock)
            with self._lock:
                self._sessions.append(session)
            thread = threading.Thread(
                target=self._serve, args=(session,), daemon=True, name="smsc-fake-session"
            )
            thread.start()
            self._threads.append(thread)

    def _read_exact(self, session: _Session, n: int) -> bytes | None:
        chunks = b""
        while len(chunks) < n:
            try:
                chunk = session.sock.recv(n - len(chunks))
            except OSError:
                return None
            if not chunk:
                return None
            chunks += chunk
        return chunks

    def _serve(self, session: _Session) -> None:
        try:
            while not self._stop.is_set():
                header = self._read_exact(session, 16)
                if header is None:
                    return
                length, command, status, seq = _HEADER.unpack(header)
                body = self._read_exact(session, length - 16) if length > 16 else b""
                if body is None:
                    return
                if not self._handle(session, command, status, seq, body):
                    return
        finally:
            self._forget(session)

    def _forget(self, session: _Session) -> None:
        if not session.closed:
            session.close()
        with self._lock:
            if session in self._sessions:
                self._sessions.remove(session)
            for delivery in self.deliveries:
                if delivery.session is session and not delivery.answered:
                    delivery.session = None  # sent again on the next bind

    def _handle(self, session: _Session, command: int, status: int, seq: int, body: bytes) -> bool:
        if command == BIND_TRANSCEIVER:
            if session.bound:
                session.send(BIND_TRANSCEIVER_RESP, seq, status=ESME_RALYBND)
                return True
            b = _Body(body)
            system_id, password = b.cstr(), b.cstr()
            ok = system_id == self.system_id and password == self.password
            with self._lock:
                self.binds.append((system_id, ok))
            if ok:
                session.send(BIND_TRANSCEIVER_RESP, seq, cstr("fakesmsc"))
                with self._lock:
                    session.bound = True
            else:
                session.send(BIND_TRANSCEIVER_RESP, seq, status=ESME_RBINDFAIL)
            return True
        if command == ENQUIRE_LINK:
            with self._lock:
                self.enquire_links += 1
            session.send(ENQUIRE_LINK_RESP, seq)
            return True
        if command == ENQUIRE_LINK_RESP:
            with self._lock:
                self.enquire_link_resps += 1
            return True
        if command == UNBIND:
            with self._lock:
                self.unbinds += 1
                session.bound = False
            session.send(UNBIND_RESP, seq)
            return False
        if command == SUBMIT_SM:
            if not session.bound:
                session.send(SUBMIT_SM_RESP, seq, status=ESME_RINVBNDSTS)
                return True
            self._submit(session, seq, body)
            return True
        if command == DELIVER_SM_RESP:
            with self._lock:
                for delivery in self.deliveries:
                    if (session.number, seq) in delivery.sent_as:
                        if status == ESME_ROK:
                            delivery.answered = True
                        break
            return True
        if command & 0x80000000:
            return True  # a response the fake did not ask for
        session.send(GENERIC_NACK, seq, status=ESME_RINVCMDID)
        return True

    def _submit(self, session: _Session, seq: int, body: bytes) -> None:
        b = _Body(body)
        b.cstr()  # service_type
        source_ton, _source_npi = b.u8(), b.u8()
        source = b.cstr()
        dest_ton, _dest_npi = b.u8(), b.u8()
        destination = b.cstr()
        esm_class, _protocol_id, _priority = b.u8(), b.u8(), b.u8()
        b.cstr()  # schedule_delivery_time
        b.cstr()  # validity_period
        registered_delivery, _replace, data_coding, _default_id, sm_length = (
            b.u8(), b.u8(), b.u8(), b.u8(), b.u8()
        )  # fmt: skip
        short_message = b.octets(sm_length)
        with self._lock:
            count = len(self.submits) + 1
            if self.silent_after is not None and count > self.silent_after:
                self.submits.append((destination, -1))
                return  # hung: no answer at all
            if self.reject_prefix is not None and destination.startswith(self.reject_prefix):
                status = ESME_RINVDSTADR
            elif self.throttle_every and count % self.throttle_every == 0:
                status = ESME_RTHROTTLED
            else:
                status = ESME_ROK
            self.submits.append((destination, status))
            if status != ESME_ROK:
                session.send(SUBMIT_SM_RESP, seq, status=status)
                return
            udh = b""
            if esm_class & 0x40 and short_message:
                udh = short_message[: short_message[0] + 1]
            message_id = f"{next(self._message_ids):X}"
            part = SubmittedPart(
                message_id=message_id,
                session=session.number,
                source_addr_ton=source_ton,
                source_addr=source,
                dest_addr_ton=dest_ton,
                destination_addr=destination,
                esm_class=esm_class,
                registered_delivery=registered_delivery,
                data_coding=data_coding,
                short_message=short_message,
                udh=udh,
                payload=short_message[len(udh) :],
            )
            self.parts.append(part)
            session.send(SUBMIT_SM_RESP, seq, cstr(message_id))
            if registered_delivery & 0x03:
                self._queue("receipt", self._receipt_body(part), delay=self.receipt_delay)

    def _stat_for(self, destination: str) -> str:
        best = ""
        stat = self.receipt_stat
        for prefix, value in self.stat_by_prefix.items():
            if destination.startswith(prefix) and len(prefix) >= len(best):
                best, stat = prefix, value
        return stat

    def _receipt_body(self, part: SubmittedPart) -> bytes:
        stat = self._stat_for(part.destination_addr)
        now = _smpp_time(datetime.now(UTC))
        delivered = "001" if stat == "DELIVRD" else "000"
        err = "000" if stat in ("DELIVRD", "ENROUTE", "ACCEPTD") else "034"
        sample = part.text[:20].encode("ascii", "replace").decode("ascii")
        text = (
            f"id:{part.message_id} sub:001 dlvrd:{delivered} submit date:{now} "
            f"done date:{now} stat:{stat} err:{err} text:{sample}"
        )
        tlvs = b""
        if self.receipt_tlvs:
            rid = cstr(part.message_id)
            tlvs = (
                struct.pack(">HH", TAG_RECEIPTED_MESSAGE_ID, len(rid))
                + rid
                + struct.pack(">HHB", TAG_MESSAGE_STATE, 1, MESSAGE_STATE.get(stat, 7))
            )
        return self._deliver_body(
            source=part.destination_addr,
            source_ton=part.dest_addr_ton,
            destination=part.source_addr,
            esm_class=0x04,
            data_coding=0x00,
            short_message=text.encode("ascii"),
            tlvs=tlvs,
        )

    def _tick_loop(self) -> None:
        while not self._stop.wait(0.01):
            now = time.monotonic()
            sends: list[tuple[_Session, int, bytes]] = []
            with self._lock:
                live = [s for s in self._sessions if s.bound and not s.closed]
                if not live:
                    continue
                target = live[-1]
                for delivery in self.deliveries:
                    if delivery.answered or delivery.due > now:
                        continue
                    stale = (
                        delivery.sent_at is not None and now - delivery.sent_at >= self.resend_after
                    )
                    if delivery.session is None or stale:
                        seq = next(target.seq)
                        delivery.session = target
                        delivery.sent_as.add((target.number, seq))
                        delivery.sent_at = now
                        delivery.sends += 1
                        sends.append((target, seq, delivery.body))
            for session, seq, body in sends:
                session.send(DELIVER_SM, seq, body)
