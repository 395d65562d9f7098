"""The partner bank over HTTP: the :class:`haqq.ports.Bank` port as a REST service.

What: :func:`make_bank_app` wraps any :class:`~haqq.ports.Bank` (the simulated bank "HAQB" of
the synthetic country by default) in a FastAPI app, as the registries of that country are
served over HTTP, so haqq (through :class:`haqq.adapters.bank.http.HttpBank`) or any other
client can reach the bank from another process. Routes:

- ``POST /mapper/resolve``: the account lookup, after the G2P Connect mapper's ``resolve``
  (mapper core API 1.0.0). The request is the spec's envelope, ``{"header": {...,
  "action": "resolve"}, "message": {"transaction_id", "resolve_request": [{"reference_id",
  "timestamp", "id": "fin:<FIN>@<provider>", "scope": "yes_no"|"details"}]}}``; each item's
  ``timestamp`` is the moment the account is looked up as of. The answer comes at once (not
  through the ``on-resolve`` callback of the asynchronous spec) in the callback's shape:
  ``{"header": {..., "action": "on-resolve", "status": "succ"}, "message": {"transaction_id",
  "correlation_id", "resolve_response": [{"reference_id", "timestamp", "id", "status",
  "status_reason_code", "fa": "account:<IBAN>@<bank>", "account_provider_info", ...}]}}``.
  An id with an open account is ``succ.fa.active``, one without ``succ.id.not_found``, a
  malformed id ``rjct.id.invalid``, an item without id ``rjct.resolve_type.not_supported``.
- ``POST /accounts/requests`` (``{"requests": [...]}``, 202) and ``POST /accounts/answers``
  (``{"keys": [...], "as_of": ...}`` -> ``{"answers": [...]}``): opening accounts.
- ``POST /transfers`` (``{"transfers": [...]}`` -> ``{"results": [...]}``): the direct
  payment channel, idempotent by key.
- ``PUT /files/{name}?at=...``: a ``pain.001`` payment file, the raw XML as the body (202);
  ``GET /files?as_of=...``: the reports ready and not acknowledged (name, kind, time, size);
  ``GET /files/{name}[?as_of=...]``: one report's XML; ``POST /files/ack``
  (``{"names": [...]}``): acknowledge reports.
- ``GET /healthz``.

Every time is ISO 8601 with a UTC offset (a time without one is refused), every amount an
integer of minor units. Errors are JSON ``{"error": code, "message": text}``: 422 for a
request or bank file that cannot be taken (``invalid_request``, ``bank_file``), 400 for other
refusals (``bad_request``), 404 for an unknown report (``not_found``), 413 for a batch over
:data:`MAX_BATCH` (``too_large``), 503 when the bank itself fails (``unavailable``).

Why: the bank is an institution of its own, reached over the network in production; serving
the simulated one the same way lets haqq run against a bank in another process and tests
exercise the HTTP path, statuses and errors included.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, Protocol, runtime_checkable

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StrictInt
from starlette.concurrency import run_in_threadpool

from haqq.adapters.bank.iso20022_read import BankFileError
from haqq.domain.errors import HaqqError, InstitutionError
from haqq.ports import AccountRequest, Bank, BankFile, Transfer

__all__ = ["FA_PREFIX", "MAX_BATCH", "PERSON_ID_PREFIX", "make_bank_app"]

#: The most items (ids, requests, keys, transfers, names) one request may carry.
MAX_BATCH = 10_000
#: A person id in a resolve request: ``fin:<FIN>``, optionally ``@<id provider>``.
PERSON_ID_PREFIX = "fin:"
#: A financial address in a resolve answer: ``account:<IBAN>@<bank, lower case>``.
FA_PREFIX = "account:"
G2P_VERSION = "1.0.0"
XML = "application/xml"
_PERSON_ID_RE = re.compile(r"fin:([A-Za-z0-9]{1,32})(?:@[A-Za-z0-9.-]+)?")


@runtime_checkable
class FileArchive(Protocol):
    """A bank that finds one report by name (the simulated bank does); without it, ``GET
    /files/{name}`` searches :meth:`haqq.ports.Bank.files` and needs ``as_of``."""

    def file(self, name: str) -> BankFile | None: ...


class _Refused(HaqqError):
    """A request the service refuses; ``status`` and ``code`` make its JSON error."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


# ---- request bodies ---------------------------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class MapperHeader(_Open):
    """``MsgHeader_V1.0.0`` of the G2P Connect spec (what the bank reads of it)."""

    version: str = G2P_VERSION
    message_id: str
    message_ts: AwareDatetime
    action: Literal["resolve"]
    sender_id: str
    total_count: int
    receiver_id: str | None = None


class ResolveItem(_Open):
    reference_id: str
    timestamp: AwareDatetime
    id: str | None = None
    fa: str | None = None
    name: str | None = None
    scope: Literal["yes_no", "details"] = "yes_no"


class ResolveMessage(_Open):
    transaction_id: str = Field(max_length=99)
    resolve_request: list[ResolveItem]


class ResolveEnvelope(_Open):
    signature: str | None = None
    header: MapperHeader
    message: ResolveMessage


class AccountRequestIn(_Strict):
    key: str
    fin: str
    name: str
    requested_at: AwareDatetime


class AccountRequestsIn(_Strict):
    requests: list[AccountRequestIn]


class AccountAnswersIn(_Strict):
    keys: list[str]
    as_of: AwareDatetime


class TransferIn(_Strict):
    key: str
    fin: str
    iban: str
    amount: StrictInt
    reference: str
    at: AwareDatetime


class TransfersIn(_Strict):
    transfers: list[TransferIn]


class AckIn(_Strict):
    names: list[str]


# ---- helpers ------------------------------------------------------------------------------------


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def _limit(items: Sequence[object], what: str) -> None:
    if len(items) > MAX_BATCH:
        raise _Refused(413, "too_large", f"{len(items)} {what} in one request; at most {MAX_BATCH}")


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": code, "message": message}, status_code=status)


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for error in exc.errors()[:10]:
        where = ".".join(str(p) for p in error.get("loc", ()))
        parts.append(f"{where}: {error.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request"


def _resolve(bank: Bank, envelope: ResolveEnvelope) -> dict[str, Any]:
    """The ``on-resolve`` answer to a resolve request (see the module's description)."""
    header, message = envelope.header, envelope.message
    items = message.resolve_request
    _limit(items, "resolve requests")
    if header.total_count != len(items):
        raise _Refused(
            400,
            "rjct.total_count.invalid",
            f"header.total_count is {header.total_count} but the message has {len(items)}",
        )
    # One lookup per distinct moment: the items of one request usually share it.
    wanted: dict[datetime, list[str]] = {}
    fins: dict[int, str] = {}
    for i, item in enumerate(items):
        match = _PERSON_ID_RE.fullmatch(item.id or "")
        if match is not None:
            fins[i] = match.group(1)
            wanted.setdefault(item.timestamp, []).append(match.group(1))
    found = {
        moment: bank.find_accounts(list(dict.fromkeys(group)), as_of=moment)
        for moment, group in wanted.items()
    }
    seen: set[str] = set()
    answers: list[dict[str, Any]] = []
    for i, item in enumerate(items):
        answer: dict[str, Any] = {
            "reference_id": item.reference_id,
            "timestamp": _iso(item.timestamp),
            "id": item.id,
        }
        if item.reference_id in seen:
            answer.update(status="rjct", status_reason_code="rjct.reference_id.duplicate")
        elif item.id is None:
            answer.update(
                status="rjct",
                status_reason_code="rjct.resolve_type.not_supported",
                status_reason_message="this bank resolves person ids (fin:<FIN>) only",
            )
        elif i not in fins:
            answer.update(
                status="rjct",
                status_reason_code="rjct.id.invalid",
                status_reason_message=f"expected {PERSON_ID_PREFIX}<FIN>[@provider]",
            )
        elif (account := found[item.timestamp].get(fins[i])) is None:
            answer.update(status="succ", status_reason_code="succ.id.not_found")
        else:
            answer.update(status="succ", status_reason_code="succ.fa.active")
            if item.scope == "details":
                answer["fa"] = f"{FA_PREFIX}{account.iban}@{account.bank.lower()}"
                answer["account_provider_info"] = {"name": account.bank, "code": account.bank}
                answer["additional_info"] = [{"name": "card_status", "value": account.card_status}]
                if account.holder:
                    answer["additional_info"].append({"name": "holder", "value": account.holder})
        seen.add(item.reference_id)
        answers.append(answer)
    return {
        "header": {
            "version": G2P_VERSION,
            "message_id": str(uuid.uuid4()),
            "message_ts": _iso(datetime.now(UTC)),
            "action": "on-resolve",
            "status": "succ",
            "total_count": len(items),
            "completed_count": len(items),
            "sender_id": bank.name,
            "receiver_id": header.sender_id,
            "is_msg_encrypted": False,
        },
        "message": {
            "transaction_id": message.transaction_id,
            "correlation_id": str(uuid.uuid4()),
            "resolve_response": answers,
        },
    }


def _find_file(bank: Bank, name: str, as_of: datetime | None) -> BankFile:
    if isinstance(bank, FileArchive):
        found = bank.file(name)
    elif as_of is None:
        raise _Refused(400, "bad_request", "as_of is required to find a report in this bank")
    else:
        found = next((f for f in bank.files(as_of=as_of) if f.name == name), None)
    if found is None or (as_of is not None and found.at > as_of):
        raise _Refused(404, "not_found", f"no report {name!r} is ready")
    return found


# ---- the app ------------------------------------------------------------------------------------


def make_bank_app(bank: Bank) -> FastAPI:
    """The HTTP face of ``bank`` (routes and errors: see the module's description)."""
    app = FastAPI(
        title=f"bank {bank.name}",
        description="The partner bank: account lookup (G2P Connect mapper), account opening, "
        "transfers and ISO 20022 payment files.",
        docs_url=None,
        redoc_url=None,
    )

    @app.exception_handler(_Refused)
    async def refused(request: Request, exc: _Refused) -> JSONResponse:
        return _error(exc.status, exc.code, str(exc))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return _error(422, "invalid_request", _validation_message(exc))

    @app.exception_handler(BankFileError)
    async def bad_file(request: Request, exc: BankFileError) -> JSONResponse:
        return _error(422, "bank_file", str(exc))

    @app.exception_handler(InstitutionError)
    async def failed(request: Request, exc: InstitutionError) -> JSONResponse:
        return _error(503, "unavailable", str(exc))

    @app.exception_handler(HaqqError)
    async def bad(request: Request, exc: HaqqError) -> JSONResponse:
        return _error(400, "bad_request", str(exc))

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok", "bank": bank.name}

    @app.post("/mapper/resolve")
    def resolve(envelope: ResolveEnvelope) -> dict[str, Any]:
        return _resolve(bank, envelope)

    @app.post("/accounts/requests", status_code=202)
    def request_accounts(body: AccountRequestsIn) -> dict[str, int]:
        _limit(body.requests, "account requests")
        bank.request_accounts(
            [AccountRequest(r.key, r.fin, r.name, r.requested_at) for r in body.requests]
        )
        return {"received": len(body.requests)}

    @app.post("/accounts/answers")
    def account_answers(body: AccountAnswersIn) -> dict[str, Any]:
        _limit(body.keys, "keys")
        answers = bank.account_answers(body.keys, as_of=body.as_of)
        return {
            "answers": [
                {
                    "key": a.key,
                    "status": a.status,
                    "iban": a.iban,
                    "reason": a.reason,
                    "answered_at": _iso(a.answered_at),
                    "holder": a.holder,
                }
                for a in answers.values()
            ]
        }

    @app.post("/transfers")
    def transfer(body: TransfersIn) -> dict[str, Any]:
        _limit(body.transfers, "transfers")
        results = bank.transfer(
            [Transfer(t.key, t.fin, t.iban, t.amount, t.reference, t.at) for t in body.transfers]
        )
        return {
            "results": [
                {"key": r.key, "status": r.status, "reason": r.reason} for r in results.values()
            ]
        }

    @app.put("/files/{name:path}", status_code=202)
    async def send_file(
        name: str, request: Request, at: Annotated[AwareDatetime, Query()]
    ) -> dict[str, str]:
        content = await request.body()
        await run_in_threadpool(bank.send_file, name, content, at=at)
        return {"name": name, "status": "received"}

    @app.get("/files")
    def files(as_of: Annotated[AwareDatetime, Query()]) -> dict[str, Any]:
        ready = bank.files(as_of=as_of)
        return {
            "files": [
                {"name": f.name, "kind": f.kind, "at": _iso(f.at), "size": len(f.content)}
                for f in ready
            ]
        }

    @app.get("/files/{name:path}")
    def file(name: str, as_of: Annotated[AwareDatetime | None, Query()] = None) -> Response:
        found = _find_file(bank, name, as_of)
        return Response(
            found.content,
            media_type=XML,
            headers={"X-Bank-File-Kind": found.kind, "X-Bank-File-At": found.at.isoformat()},
        )

    @app.post("/files/ack")
    def ack_files(body: AckIn) -> dict[str, int]:
        _limit(body.names, "names")
        bank.ack_files(body.names)
        return {"acknowledged": len(body.names)}

    return app
