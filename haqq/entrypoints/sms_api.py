"""The HTTP face through which Kannel pushes delivery reports and citizens' replies.

Routes of :func:`make_sms_app` (mounted under ``/sms`` by ``haqq serve``; ``GET`` or ``POST``
with a form body, parameters in the query or the body):

- ``/kannel/dlr?id=&type=&at=&smsc=&reply=``: a delivery report, the ``dlr-url`` that
  :class:`haqq.adapters.sms.kannel.KannelGateway` gives every part. ``id`` is haqq's part id
  (``K:<key>:<seq>``); ``type`` Kannel's DLR type: 1 delivered, 2 and 16 failed, 4 and 8
  buffered; ``at`` the report's time, Unix seconds (``%T``) or ``YYYY-MM-DD HH:MM:SS``
  (``%t``). One row goes into ``sms_receipts`` (``gateway`` ``kannel``, ``state`` ``new``, the
  worker applies it); its ``receipt_id`` is ``<id>|<type>|<at as Unix seconds>``, so Kannel
  calling again with the same report writes nothing new. ``detail`` keeps the raw type, SMSC
  and reply text.
- ``/kannel/mo?from=&to=&text=&id=&at=&charset=&coding=``: a mobile-originated message, the
  ``get-url`` of Kannel's ``sms-service``, e.g. ``…/sms/kannel/mo?from=%p&to=%P&text=%b&id=%I
  &at=%T&coding=%c&charset=%C``. One row goes into ``inbound_sms`` (``status`` ``new``). Its
  ``gateway_id`` is ``kannel:<id>`` (Kannel's message uuid, ``%I``), else
  ``kannel:h:<sha256 of from, text, at>``. ``text`` is decoded with ``charset`` (``%C``: UTF-8,
  UTF-16BE for a UCS-2 message; with no charset, ``coding`` 2 means UTF-16BE, anything else
  UTF-8; ``8-BIT`` is read as UTF-8, else Latin-1); ``%b`` keeps the text as typed, ``%a``
  would fold its spaces. ``received_at`` is haqq's clock.

Phones are stored as haqq stores them (``+994…``): spaces, dashes, dots and brackets are
dropped; ``00…`` becomes ``+…``; ``0`` followed by 9 digits is Azerbaijani national
(``0501234567`` -> ``+994501234567``), and 9 digits alone the national significant number
(``501234567`` -> ``+994501234567``); 11 to 15 digits are international without the ``+``
(``994501234567`` -> ``+994501234567``); a short code or an alphanumeric sender (at most 16
letters and digits) is kept as given. Anything else is refused.

Both answer ``200`` with an empty body, and only once the row is committed. The empty body
matters for ``/kannel/mo``: Kannel would text a non-empty one back to the citizen, and haqq
answers from its own outbox (the ``sms-service`` should also say ``max-messages = 0``, so that
no error text ever goes back either). Rows that arrive while a commit runs are written together
by the next one (group commit, at most ``max_batch`` rows a commit), so a burst of reports does
not cost one transaction each. A malformed request (missing ``id``/``from``, unknown ``type``, bad
``at``, undecodable text) is answered ``400 {"error": "..."}`` and writes nothing; a wrong or
missing ``token`` (when ``token`` is configured: Kannel sends it in the URL, ``&token=…``)
``403``; a store that cannot be written ``503``, which Kannel retries (smsbox
``http-request-retry``). Every refusal is logged (structlog) with the route and the reason.

Kannel's ``%t`` is written in UTC by Kannel 1.4.5 (``gw_gmtime``); a time without a zone is read
in ``tz`` (default UTC), and ``%T`` (Unix seconds) needs no zone at all.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from typing import Any, Final
from urllib.parse import unquote_to_bytes

import structlog
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy import Engine, Table
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool

from haqq.adapters.sms.kannel import DLR_STATUS, MAX_PART_ID
from haqq.adapters.store.repository import insert_ignore
from haqq.adapters.store.schema import inbound_sms, sms_receipts
from haqq.domain.errors import HaqqError

log = structlog.get_logger()

GATEWAY: Final = "kannel"
_MAX_FORM: Final = 64 * 1024
_SEPARATORS: Final = re.compile(r"[\s\-().]")
_TIME: Final = re.compile(r"(\d{4})-(\d{2})-(\d{2})[ T+](\d{2}):(\d{2})(?::(\d{2}))?")


class Refused(HaqqError):
    """A request the SMS app answers with ``{"error": message}`` and ``status``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def normalise_phone(raw: str) -> str:
    """A sender's number as haqq stores phones (``+994501234567``); see the module docs.

    Raises :class:`Refused` (400) for anything that is neither a number nor a sender name.
    """
    s = _SEPARATORS.sub("", raw)
    if s.startswith("00"):
        s = "+" + s[2:]
    if re.fullmatch(r"\+\d{7,15}", s):
        return s
    if re.fullmatch(r"0\d{9}", s):
        return "+994" + s[1:]
    if re.fullmatch(r"\d{9}", s):
        return "+994" + s
    if re.fullmatch(r"\d{11,15}", s):
        return "+" + s
    if re.fullmatch(r"[0-9A-Za-z]{1,16}", s):
        return s
    raise Refused(400, f"'from' is not a phone number or a sender name: {raw!r}")


def kannel_time(raw: str, tz: tzinfo = UTC) -> datetime:
    """``%T`` (Unix seconds) or ``%t`` (``YYYY-MM-DD HH:MM:SS``, read in ``tz``) as UTC."""
    raw = raw.strip()
    try:
        if raw.isdigit():
            return datetime.fromtimestamp(int(raw), UTC)
        m = _TIME.fullmatch(raw)
        if m is not None:
            y, mo, d, h, mi, s = (int(g) if g else 0 for g in m.groups())
            return datetime(y, mo, d, h, mi, s, tzinfo=tz).astimezone(UTC)
    except (ValueError, OverflowError, OSError):
        pass
    raise Refused(400, f"'at' is not Unix seconds nor 'YYYY-MM-DD HH:MM:SS': {raw!r}")


def _form(raw: bytes, into: dict[str, bytes]) -> None:
    """``application/x-www-form-urlencoded`` as bytes (the first value of a name wins)."""
    for piece in raw.split(b"&"):
        if not piece:
            continue
        name, _, value = piece.partition(b"=")
        key = unquote_to_bytes(name.replace(b"+", b" ")).decode("utf-8", "replace")
        into.setdefault(key, unquote_to_bytes(value.replace(b"+", b" ")))


async def _params(request: Request) -> dict[str, bytes]:
    params: dict[str, bytes] = {}
    _form(request.scope.get("query_string", b""), params)
    if request.method == "POST":
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        body = await request.body()
        if kind == "application/x-www-form-urlencoded":
            if len(body) > _MAX_FORM:
                raise Refused(413, "the form is too large")
            _form(body, params)
    return params


def _text(params: dict[str, bytes], name: str) -> str | None:
    value = params.get(name)
    if value is None:
        return None
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        raise Refused(400, f"'{name}' is not UTF-8") from None


def _required(params: dict[str, bytes], name: str) -> str:
    value = (_text(params, name) or "").strip()
    if not value:
        raise Refused(400, f"'{name}' is missing")
    return value


def _decode_body(data: bytes, charset: str | None, coding: str | None) -> str:
    name = (charset or "").strip().upper()
    if not name:
        name = "UTF-16BE" if coding == "2" else "UTF-8"
    try:
        if name in ("8-BIT", "8BIT", "BINARY"):
            try:
                return data.decode("utf-8")
            except UnicodeDecodeError:
                return data.decode("latin-1")
        return data.decode(name)
    except LookupError:
        raise Refused(400, f"unknown charset {charset!r}") from None
    except UnicodeDecodeError:
        raise Refused(400, f"'text' is not {name}") from None


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


class _GroupCommit:
    """Rows written in shared transactions: a request waits for the commit that holds its
    row. While one commit runs, the rows that arrive meanwhile gather for the next (at most
    ``max_batch`` a commit), so a burst of reports costs a few commits, not one each. A
    failed commit fails every request it held. One writer per event loop."""

    def __init__(self, engine: Engine, *, max_batch: int) -> None:
        self._engine = engine
        self._max = max_batch
        self._loops: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, _LoopQueue
        ] = weakref.WeakKeyDictionary()

    async def write(self, table: Table, key: str, row: dict[str, Any]) -> None:
        loop = asyncio.get_running_loop()
        queue = self._loops.get(loop)
        if queue is None:
            queue = self._loops[loop] = _LoopQueue()
        done: asyncio.Future[None] = loop.create_future()
        queue.pending.append((table, key, row, done))
        if queue.task is None or queue.task.done():
            queue.task = loop.create_task(self._drain(queue))
        await done

    async def _drain(self, queue: _LoopQueue) -> None:
        while queue.pending:
            batch, queue.pending = queue.pending[: self._max], queue.pending[self._max :]
            try:
                await run_in_threadpool(self._commit, batch)
            except Exception as exc:  # handed to every request of the batch
                for *_, done in batch:
                    if not done.done():
                        done.set_exception(exc)
            else:
                for *_, done in batch:
                    if not done.done():
                        done.set_result(None)

    def _commit(self, batch: list[_Pending]) -> None:
        by_table: dict[tuple[Table, str], list[dict[str, Any]]] = {}
        for table, key, row, _ in batch:
            by_table.setdefault((table, key), []).append(row)
        with self._engine.begin() as conn:
            for (table, key), rows in by_table.items():
                insert_ignore(conn, table, rows, [key])


_Pending = tuple[Table, str, dict[str, Any], "asyncio.Future[None]"]


@dataclass
class _LoopQueue:
    pending: list[_Pending] = field(default_factory=list)
    task: asyncio.Task[None] | None = None


def make_sms_app(
    engine: Engine,
    *,
    clock: Callable[[], datetime] | None = None,
    token: str | None = None,
    tz: tzinfo = UTC,
    max_batch: int = 500,
) -> FastAPI:
    """The app; ``clock`` gives ``received_at`` (default: the system clock, UTC), ``token``
    the shared secret Kannel must send (None: none needed), ``tz`` the zone of a ``%t``,
    ``max_batch`` the most rows one commit takes."""
    now_of = clock or (lambda: datetime.now(UTC))
    app = FastAPI(title="haqq SMS in (Kannel)", docs_url=None, redoc_url=None, openapi_url=None)

    def check_token(params: dict[str, bytes]) -> None:
        if token is None:
            return
        given = params.get("token")
        if given is None or not hmac.compare_digest(given, token.encode()):
            raise Refused(403, "wrong or missing token")

    def refused(route: str, exc: Refused, **context: Any) -> JSONResponse:
        log.warning("sms report refused", gateway=GATEWAY, route=route, status=exc.status,
                    reason=exc.message, **context)
        return JSONResponse({"error": exc.message}, status_code=exc.status)

    commits = _GroupCommit(engine, max_batch=max_batch)

    async def write(route: str, table: Table, row: dict[str, Any], key: str) -> Response:
        try:
            await commits.write(table, key, row)
        except SQLAlchemyError as exc:
            log.error("sms report not stored", gateway=GATEWAY, route=route, error=str(exc))
            return JSONResponse({"error": "the store cannot be written now"}, status_code=503)
        return Response(status_code=200)

    def dlr_row(params: dict[str, bytes]) -> dict[str, Any]:
        check_token(params)
        part = _required(params, "id")
        type_raw = _required(params, "type")
        at_raw = _required(params, "at")
        if len(part) > MAX_PART_ID:
            raise Refused(400, f"'id' is longer than {MAX_PART_ID} characters")
        kind = int(type_raw) if type_raw.isdigit() else None
        if kind is None or kind not in DLR_STATUS:
            raise Refused(400, f"unknown DLR type {type_raw!r} (1, 2, 4, 8 or 16)")
        at = kannel_time(at_raw, tz)
        smsc = _text(params, "smsc") or ""
        reply = _text(params, "reply") or ""
        detail = f"type={kind}" + (f" smsc={smsc}" if smsc else "") + (f" reply={reply}" if reply else "")
        return {
            "gateway": GATEWAY,
            "receipt_id": f"{part}|{kind}|{int(at.timestamp())}",
            "message_id": part,
            "status": DLR_STATUS[kind],
            "at": at,
            "detail": detail,
            "received_at": now_of(),
            "state": "new",
        }

    def mo_row(params: dict[str, bytes]) -> dict[str, Any]:
        check_token(params)
        phone = normalise_phone(_required(params, "from"))
        data = params.get("text")
        if data is None:
            raise Refused(400, "'text' is missing")
        text = _decode_body(data, _text(params, "charset"), _text(params, "coding"))
        kannel_id = (_text(params, "id") or "").strip()
        at_raw = (_text(params, "at") or "").strip()
        if kannel_id and len(kannel_id) <= 53:
            gateway_id = f"kannel:{kannel_id}"
        else:
            gateway_id = f"kannel:h:{_digest(kannel_id, phone, text, at_raw)[:40]}"
        return {
            "gateway_id": gateway_id,
            "gateway": GATEWAY,
            "phone": phone,
            "text": text,
            "received_at": now_of(),
            "status": "new",
        }

    @app.api_route("/kannel/dlr", methods=["GET", "POST"])
    async def dlr(request: Request) -> Response:
        params: dict[str, bytes] = {}
        try:
            params = await _params(request)
            row = dlr_row(params)
        except Refused as exc:
            return refused("dlr", exc, id=params.get("id", b"").decode("utf-8", "replace"),
                           type=params.get("type", b"").decode("utf-8", "replace"))
        return await write("dlr", sms_receipts, row, "receipt_id")

    @app.api_route("/kannel/mo", methods=["GET", "POST"])
    async def mo(request: Request) -> Response:
        params: dict[str, bytes] = {}
        try:
            params = await _params(request)
            row = mo_row(params)
        except Refused as exc:
            return refused("mo", exc, id=params.get("id", b"").decode("utf-8", "replace"))
        return await write("mo", inbound_sms, row, "gateway_id")

    return app
