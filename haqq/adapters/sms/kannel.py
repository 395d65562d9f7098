"""The :class:`~haqq.ports.SmsGateway` over Kannel's HTTP ``sendsms`` interface (Kannel 1.4.5).

Submitting. Each message is cut by :func:`haqq.domain.sms.split` into parts, and each part is
one ``GET {sendsms_url}`` with ``username``, ``password``, ``from`` (``sender``), ``to`` (the
phone as haqq stores it, ``+994…``), ``text`` (the part's text in UTF-8, ``charset=UTF-8``),
``coding`` (0 for GSM-7, 2 for UCS-2: Kannel converts the UTF-8 text itself), ``udh`` (the
concatenation header ``05 00 03 ref total seq``, URL-encoded binary, only for a long text),
``smsc`` (when configured), ``dlr-mask=31`` (every report: delivered, failed, buffered, SMSC
submit, SMSC reject) and a ``dlr-url``::

    {dlr_base}/sms/kannel/dlr?id=<part id>&type=%d&smsc=%i&at=%T&reply=%A[&token=<dlr_token>]

Kannel fills ``%d`` (the report type), ``%i`` (the SMSC id), ``%T`` (the report's time, Unix
seconds) and ``%A`` (the SMSC's reply text) when it calls the URL, which
:mod:`haqq.entrypoints.sms_api` serves. The part id travels in the URL, so no table maps
Kannel's ids to haqq's: it is ``K:<key>:<seq>``, or ``KH:<sha256(key)[:40]>:<seq>`` when the
key holds a character outside ``A-Z a-z 0-9 . _ ~ : -`` or the id would pass 80 characters
(``sms_parts.message_id``). Only those characters appear in it, never ``%``, which Kannel would
read as an escape code. The concatenation reference is ``crc32(key) % 256``, so a key sent
again carries the same header (two long messages to one phone at the same time share a
reference once in 256 pairs; the SMPP gateway makes the same choice).

A message's parts go in order, one request after the other, and stop at the first part not
accepted; up to ``concurrency`` messages are in flight at once (a thread pool over one shared
``httpx.Client`` with keep-alive connections).

Kannel's answers:

- 2xx (``0: Accepted for delivery``, ``3: Queued for later delivery``): the part is accepted.
- 403 (``Authorization failed for sendsms``: wrong ``username``/``password`` or this host not
  in the user's ``user-allow-ip``), 401 and 404 (a wrong ``sendsms_url``): the configuration
  is wrong and every message would fail alike, so :class:`~haqq.ports.GatewayUnavailable` is
  raised and nothing counts as sent: the messages stay in haqq's outbox, not rejected for good
  because of a typo in a password.
- other 4xx (``Missing receiver number``, ``Number(s) has/have been denied by white- and/or
  black-lists``, ``Coding field misformed``…): the message is ``rejected``, Kannel's text is
  the reason.
- 5xx (``503 Temporal failure, try again later``: its queue is full), a read timeout or a
  broken answer: ``retry`` (a timeout is ambiguous: Kannel may have taken the part, and it may
  be sent twice). A connection Kannel closed without answering (a kept-alive connection it
  dropped as the request went out) is asked once more at once.
- the sendsms port cannot be reached (connection refused or connect timeout): if no message of
  the batch got an answer at all, :class:`~haqq.ports.GatewayUnavailable`; otherwise the
  messages fully answered keep their result and the others are ``retry``.

Idempotency. A key is sent at most once per call. A key answered ``accepted`` or ``rejected``
earlier by this object is answered from memory (the last ``remember`` keys); a message left
``retry`` after some of its parts were accepted sends only the missing parts when offered
again. Kannel has no idempotency key of its own: after a restart of haqq a message re-offered
is sent again (at least once; haqq's outbox is the record).

Kannel pushes mobile-originated messages and delivery reports to haqq's HTTP endpoints, so
:meth:`KannelGateway.inbound` and :meth:`KannelGateway.receipts` return nothing and
:meth:`KannelGateway.ack` does nothing.
"""

from __future__ import annotations

import hashlib
import re
import threading
import zlib
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Final, Literal
from urllib.parse import quote, quote_from_bytes, urlencode

import httpx

from haqq.domain.errors import HaqqError
from haqq.domain.sms import SmsEncodingError, SmsPart, split
from haqq.ports import DeliveryReceipt, GatewayUnavailable, InboundSms, OutgoingSms, SubmitResult

#: Kannel's DLR types (``%d`` in a ``dlr-url``) and what each says of a part.
DLR_STATUS: Final[Mapping[int, Literal["delivered", "failed", "buffered"]]] = {
    1: "delivered",  # delivered to the phone
    2: "failed",  # not delivered to the phone
    4: "buffered",  # queued on the SMSC
    8: "buffered",  # taken by the SMSC (SMSC submit)
    16: "failed",  # refused by the SMSC (SMSC reject)
}
#: Every report type: the ``dlr-mask`` haqq asks for.
DLR_MASK_ALL: Final = 31

#: The longest part id (``sms_parts.message_id``, ``sms_receipts.message_id``).
MAX_PART_ID: Final = 80
_SAFE_KEY: Final = re.compile(r"[A-Za-z0-9._~:-]+")
_SAFE_TOKEN: Final = re.compile(r"[A-Za-z0-9._~-]+")
#: Answers that mean haqq's Kannel settings are wrong, not the message.
_CONFIGURATION_ERRORS: Final = frozenset({401, 403, 404})


class KannelConfigError(HaqqError, ValueError):
    """A :class:`KannelGateway` setting that cannot work (a bad URL or token)."""


def part_id(key: str, seq: int) -> str:
    """haqq's id of part ``seq`` (1-based) of the message ``key``: ``K:<key>:<seq>``, or
    ``KH:<sha256(key)[:40]>:<seq>`` for a key that is long or has other characters."""
    plain = f"K:{key}:{seq}"
    if len(plain) <= MAX_PART_ID and _SAFE_KEY.fullmatch(key):
        return plain
    return f"KH:{hashlib.sha256(key.encode()).hexdigest()[:40]}:{seq}"


def concat_ref(key: str) -> int:
    """The concatenation reference of the message ``key`` (0..255), the same on every send."""
    return zlib.crc32(key.encode()) % 256


@dataclass(frozen=True, slots=True)
class _Outcome:
    """What Kannel said to one request: ``unreachable`` when it could not be asked at all."""

    kind: Literal["accepted", "rejected", "retry", "unreachable", "misconfigured"]
    detail: str = ""


class KannelGateway:
    """Sends through Kannel's ``sendsms``; see the module documentation.

    ``sendsms_url``: e.g. ``http://kannel:13013/cgi-bin/sendsms``; ``username``/``password``:
    a ``sendsms-user``; ``dlr_base``: haqq's HTTP base as Kannel reaches it (the SMS app is
    mounted under ``/sms`` there); ``dlr_token``: the shared secret the SMS app checks, added
    to every ``dlr-url``; ``transport``: an ``httpx`` transport (tests, measurements).
    """

    def __init__(
        self,
        sendsms_url: str,
        username: str,
        password: str,
        dlr_base: str,
        *,
        sender: str = "HAQQ",
        smsc: str | None = None,
        name: str = "kannel",
        concurrency: int = 16,
        timeout: float = 10.0,
        dlr_token: str | None = None,
        dlr_mask: int = DLR_MASK_ALL,
        remember: int = 100_000,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if not sendsms_url.startswith(("http://", "https://")):
            raise KannelConfigError(f"sendsms_url must be an http(s) URL, not {sendsms_url!r}")
        if not dlr_base.startswith(("http://", "https://")) or "%" in dlr_base or "?" in dlr_base:
            raise KannelConfigError(
                f"dlr_base must be an http(s) base URL without '%' or a query, not {dlr_base!r}"
            )
        if dlr_token is not None and not _SAFE_TOKEN.fullmatch(dlr_token):
            raise KannelConfigError(
                "dlr_token may hold only letters, digits and . _ ~ - (Kannel reads '%' in a "
                "dlr-url as an escape code)"
            )
        if concurrency < 1:
            raise KannelConfigError(f"concurrency must be at least 1, not {concurrency}")
        if not 0 < dlr_mask <= DLR_MASK_ALL:
            raise KannelConfigError(f"dlr_mask must be in 1..31, not {dlr_mask}")
        self.name = name
        self.sendsms_url = sendsms_url
        self._auth = {"username": username, "password": password}
        self._sender = sender
        self._smsc = smsc
        self._dlr_mask = dlr_mask
        suffix = "&type=%d&smsc=%i&at=%T&reply=%A"
        if dlr_token is not None:
            suffix += f"&token={dlr_token}"
        self._dlr_prefix = f"{dlr_base.rstrip('/')}/sms/kannel/dlr?id="
        self._dlr_suffix = suffix
        self._client = httpx.Client(
            timeout=timeout,
            limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency),
            transport=transport,
        )
        self._pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="kannel")
        self._remember = remember
        self._lock = threading.Lock()
        self._done: OrderedDict[str, SubmitResult] = OrderedDict()
        self._sent_parts: dict[str, set[int]] = {}

    # --- the port ------------------------------------------------------------------------

    def submit(self, messages: Sequence[OutgoingSms]) -> Mapping[str, SubmitResult]:
        results: dict[str, SubmitResult] = {}
        todo: dict[str, OutgoingSms] = {}
        with self._lock:
            for m in messages:
                known = self._done.get(m.key)
                if known is not None:
                    results[m.key] = known
                elif m.key not in todo:
                    todo[m.key] = m
        if not todo:
            return results
        outcomes = list(self._pool.map(self._send_message, todo.values()))
        for key, outcome, ids in outcomes:
            if outcome.kind in ("accepted", "rejected"):
                results[key] = self._result(key, outcome, ids)
        for _key, outcome, _ids in outcomes:
            if outcome.kind == "misconfigured":
                raise GatewayUnavailable(
                    f"Kannel refused haqq's sendsms request ({outcome.detail}): check the "
                    "sendsms URL, username and password"
                )
        if all(outcome.kind == "unreachable" for _key, outcome, _ids in outcomes):
            detail = outcomes[0][1].detail
            raise GatewayUnavailable(f"Kannel at {self.sendsms_url} cannot be reached: {detail}")
        for key, outcome, ids in outcomes:
            if key not in results:
                results[key] = self._result(key, outcome, ids)
        return results

    def inbound(self, *, as_of: datetime, limit: int = 10_000) -> Sequence[InboundSms]:
        """None: Kannel pushes mobile-originated messages to ``/sms/kannel/mo``."""
        return []

    def receipts(self, *, as_of: datetime, limit: int = 10_000) -> Sequence[DeliveryReceipt]:
        """None: Kannel pushes delivery reports to ``/sms/kannel/dlr``."""
        return []

    def ack(self, ids: Sequence[str]) -> None:
        """Nothing to acknowledge: what Kannel pushed was answered when it was stored."""

    # --- lifetime --------------------------------------------------------------------------

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        self._client.close()

    def __enter__(self) -> KannelGateway:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- sending ---------------------------------------------------------------------------

    def _result(self, key: str, outcome: _Outcome, ids: tuple[str, ...]) -> SubmitResult:
        first = ids[0] if ids else part_id(key, 1)
        if outcome.kind == "accepted":
            result = SubmitResult(key, first, "accepted", parts=ids)
        elif outcome.kind == "rejected":
            result = SubmitResult(key, first, "rejected", reason=outcome.detail)
        else:
            return SubmitResult(key, first, "retry", reason=outcome.detail or "Kannel unreachable")
        with self._lock:
            self._done[key] = result
            self._sent_parts.pop(key, None)
            while len(self._done) > self._remember:
                self._done.popitem(last=False)
        return result

    def _send_message(self, message: OutgoingSms) -> tuple[str, _Outcome, tuple[str, ...]]:
        key = message.key
        try:
            parts = split(message.text, concat_ref(key))
        except SmsEncodingError as exc:
            return key, _Outcome("rejected", str(exc)), ()
        if not message.phone:
            return key, _Outcome("rejected", "no phone number"), ()
        ids = tuple(part_id(key, p.seq) for p in parts)
        with self._lock:
            sent = set(self._sent_parts.get(key, ()))
        for part, pid in zip(parts, ids, strict=True):
            if part.seq in sent:
                continue
            outcome = self._send_part(message.phone, part, pid)
            if outcome.kind != "accepted":
                # Parts already accepted are remembered: an offer again sends only the rest.
                if sent and outcome.kind in ("retry", "unreachable"):
                    with self._lock:
                        self._sent_parts[key] = sent
                return key, outcome, ()
            sent.add(part.seq)
        return key, _Outcome("accepted"), ids

    def _send_part(self, phone: str, part: SmsPart, pid: str) -> _Outcome:
        params = {
            **self._auth,
            "from": self._sender,
            "to": phone,
            "text": part.text,
            "charset": "UTF-8",
            "coding": "0" if part.encoding == "gsm7" else "2",
            "dlr-mask": str(self._dlr_mask),
            "dlr-url": f"{self._dlr_prefix}{quote(pid, safe=':')}{self._dlr_suffix}",
        }
        if self._smsc is not None:
            params["smsc"] = self._smsc
        query = urlencode(params, quote_via=quote)
        if part.udh:
            query += "&udh=" + quote_from_bytes(part.udh, safe="")
        url = f"{self.sendsms_url}?{query}"
        try:
            try:
                response = self._client.get(url)
            except httpx.RemoteProtocolError:
                # Kannel closed a kept-alive connection as the request went out on it: asked
                # once more, on a new connection.
                response = self._client.get(url)
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            return _Outcome("unreachable", f"{type(exc).__name__}: {exc}")
        except httpx.HTTPError as exc:
            return _Outcome("retry", f"{type(exc).__name__}: {exc}")
        text = response.text.strip()
        status = response.status_code
        if 200 <= status < 300:
            return _Outcome("accepted", text)
        detail = f"{status} {text}".strip()
        if status in _CONFIGURATION_ERRORS:
            return _Outcome("misconfigured", detail)
        if 400 <= status < 500:
            return _Outcome("rejected", detail)
        return _Outcome("retry", detail)
