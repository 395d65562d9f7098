"""The partner bank reached over HTTP: :class:`HttpBank`, a :class:`haqq.ports.Bank` client.

What: every method of the port becomes a call to the bank's REST service
(:mod:`haqq.adapters.bank.service`): account lookup through the G2P Connect mapper's
``POST /mapper/resolve``, account requests and answers, transfers, and the ISO 20022 file
channel (``PUT /files/{name}``, ``GET /files``, ``GET /files/{name}``, ``POST /files/ack``).
Large batches are cut into requests of at most :data:`~haqq.adapters.bank.service.MAX_BATCH`
items; every effect is idempotent by its key on the bank's side, so a batch cut in parts, or
sent again after a failure, never opens, pays or takes a file twice.

Why typed errors: the pipeline handles a failed institution as :class:`InstitutionError`
(retry the case later, then hand it to a person). Whatever goes wrong here, a network error,
an error status or an answer that is not what the protocol says, becomes a :class:`BankError`
(an :class:`InstitutionError`) naming the endpoint and the status; a payment file the bank
refuses as unreadable is the caller's fault and raises
:class:`~haqq.adapters.bank.iso20022_read.MalformedBankFile` as the in-process bank does.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Literal, cast
from urllib.parse import quote

import httpx

from haqq.adapters.bank.iso20022_read import MalformedBankFile
from haqq.adapters.bank.service import FA_PREFIX, G2P_VERSION, MAX_BATCH, PERSON_ID_PREFIX
from haqq.domain.errors import InstitutionError, NaiveDatetime
from haqq.ports import (
    Account,
    AccountAnswer,
    AccountRequest,
    BankFile,
    Transfer,
    TransferResult,
)

__all__ = ["TRANSIENT_STATUSES", "BankError", "HttpBank"]

#: Statuses worth another try: the bank was busy or down, not our request wrong.
TRANSIENT_STATUSES = frozenset({429, 502, 503, 504})
#: Who haqq is in a G2P Connect header.
SENDER_ID = "haqq"
#: Where person ids come from, in a resolve request (``fin:<FIN>@<provider>``).
ID_PROVIDER = "civil-registry"
_KINDS: frozenset[str] = frozenset({"pain.001", "pain.002", "camt.054"})
_CARDS: frozenset[str] = frozenset({"issued", "requested", "none"})


class BankError(InstitutionError):
    """A call to the bank failed: no answer (``status`` None), an error status, or an answer
    the protocol does not allow. ``code``: the service's error code (``bank_file``,
    ``invalid_request``...), when it gave one. ``transient``: worth trying again later."""

    def __init__(
        self, message: str, *, endpoint: str, status: int | None = None, code: str | None = None
    ) -> None:
        where = endpoint if status is None else f"{endpoint} -> {status}"
        super().__init__(f"bank {where}: {message}")
        self.endpoint = endpoint
        self.status = status
        self.code = code
        self.transient = status is None or status in TRANSIENT_STATUSES


def _aware(moment: datetime, what: str) -> str:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise NaiveDatetime(what)
    return moment.isoformat()


def _chunks(items: Sequence[Any]) -> Iterator[Sequence[Any]]:
    for i in range(0, len(items), MAX_BATCH):
        yield items[i : i + MAX_BATCH]


class HttpBank:
    """The :class:`haqq.ports.Bank` at ``base_url`` (e.g. ``http://127.0.0.1:8082``).

    ``client``: an :class:`httpx.Client` to send through (for example a
    ``fastapi.testclient.TestClient`` of :func:`haqq.adapters.bank.service.make_bank_app`);
    requests go to ``base_url`` + path either way. Without one, the bank makes its own, lazily,
    with ``timeout`` seconds per request, and closes it in :meth:`close`. ``name``: the bank's
    name (``Account.bank`` when the bank's answer does not say). Picklable: a copy in another
    process opens its own client.
    """

    def __init__(
        self,
        base_url: str,
        *,
        client: httpx.Client | None = None,
        name: str = "HAQB",
        timeout: float = 120.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.name = name
        self.timeout = timeout
        self._client = client
        self._owned = client is None
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        return {"base_url": self.base_url, "name": self.name, "timeout": self.timeout}

    def __setstate__(self, state: dict[str, Any]) -> None:
        init = HttpBank.__init__
        init(self, state["base_url"], name=state["name"], timeout=state["timeout"])

    def close(self) -> None:
        """Close the client this bank made (an injected client is its owner's to close)."""
        with self._lock:
            if self._owned and self._client is not None:
                self._client.close()
                self._client = None

    # ---- transport ------------------------------------------------------------------------------

    def _http(self) -> httpx.Client:
        with self._lock:
            if self._client is None:
                self._client = httpx.Client(timeout=self.timeout)
            return self._client

    def _call(
        self,
        method: str,
        path: str,
        endpoint: str,
        *,
        json: object = None,
        content: bytes | None = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """Send one request; any failure is a :class:`BankError` naming ``endpoint``."""
        try:
            response = self._http().request(
                method,
                self.base_url + path,
                json=json,
                content=content,
                params=params,
                headers=headers,
            )
        except httpx.HTTPError as error:
            raise BankError(
                f"no answer ({type(error).__name__}: {error})", endpoint=endpoint
            ) from error
        if not response.is_success:
            code, text = _error_text(response)
            raise BankError(text, endpoint=endpoint, status=response.status_code, code=code)
        return response

    def _json(self, method: str, path: str, body: object, key: str) -> tuple[list[Any], str]:
        endpoint = f"{method} {path}"
        response = self._call(method, path, endpoint, json=body)
        items = _body(response, endpoint).get(key)
        if not isinstance(items, list):
            raise BankError(f"the answer has no list {key!r}", endpoint=endpoint, status=200)
        return items, endpoint

    # ---- accounts -------------------------------------------------------------------------------

    def find_accounts(self, fins: Sequence[str], *, as_of: datetime) -> Mapping[str, Account]:
        """Open accounts of these persons as of ``as_of``, through the mapper's resolve."""
        moment = _aware(as_of, "as_of of an account lookup")
        found: dict[str, Account] = {}
        for part in _chunks(list(dict.fromkeys(fins))):
            envelope = {
                "header": {
                    "version": G2P_VERSION,
                    "message_id": str(uuid.uuid4()),
                    "message_ts": datetime.now(UTC).isoformat(),
                    "action": "resolve",
                    "sender_id": SENDER_ID,
                    "receiver_id": self.name,
                    "total_count": len(part),
                    "is_msg_encrypted": False,
                },
                "message": {
                    "transaction_id": str(uuid.uuid4()),
                    "resolve_request": [
                        {
                            "reference_id": str(i),
                            "timestamp": moment,
                            "id": f"{PERSON_ID_PREFIX}{fin}@{ID_PROVIDER}",
                            "scope": "details",
                        }
                        for i, fin in enumerate(part)
                    ],
                },
            }
            path = "/mapper/resolve"
            endpoint = f"POST {path}"
            message = _body(self._call("POST", path, endpoint, json=envelope), endpoint).get(
                "message"
            )
            answers = message.get("resolve_response") if isinstance(message, dict) else None
            if not isinstance(answers, list):
                raise BankError("no message.resolve_response", endpoint=endpoint, status=200)
            for answer in answers:
                fin, account = self._resolved(answer, part, endpoint)
                if account is not None:
                    found[fin] = account
        return found

    def _resolved(
        self, answer: object, part: Sequence[str], endpoint: str
    ) -> tuple[str, Account | None]:
        """The FIN and account of one resolve answer (None: no account)."""
        if not isinstance(answer, dict):
            raise BankError("a resolve answer is not an object", endpoint=endpoint, status=200)
        reference = answer.get("reference_id")
        if not isinstance(reference, str) or not reference.isdigit() or int(reference) >= len(part):
            raise BankError(f"unknown reference_id {reference!r}", endpoint=endpoint, status=200)
        fin = part[int(reference)]
        status, code = answer.get("status"), answer.get("status_reason_code")
        if status == "rjct" and code == "rjct.id.invalid":
            return fin, None  # not a FIN: nobody's account, as the in-process bank answers
        if status != "succ":
            why = answer.get("status_reason_message") or ""
            raise BankError(
                f"{fin}: resolve {status} {code} {why}".rstrip(),
                endpoint=endpoint,
                status=200,
            )
        if code != "succ.fa.active":
            return fin, None
        fa = answer.get("fa")
        if not isinstance(fa, str) or not fa.startswith(FA_PREFIX) or "@" not in fa:
            raise BankError(f"{fin}: financial address {fa!r}", endpoint=endpoint, status=200)
        iban = fa[len(FA_PREFIX) :].rpartition("@")[0]
        provider = answer.get("account_provider_info")
        bank = provider.get("code") if isinstance(provider, dict) else None
        card: object = "issued"
        holder: object = None
        extra = answer.get("additional_info")
        for info in extra if isinstance(extra, list) else []:
            if isinstance(info, dict) and info.get("name") == "card_status":
                card = info.get("value")
            elif isinstance(info, dict) and info.get("name") == "holder":
                holder = info.get("value")
        if card not in _CARDS:
            raise BankError(f"{fin}: card status {card!r}", endpoint=endpoint, status=200)
        return fin, Account(
            iban=iban,
            bank=bank if isinstance(bank, str) and bank else self.name,
            card_status=cast(Literal["issued", "requested", "none"], card),
            holder=holder if isinstance(holder, str) and holder else None,
        )

    def request_accounts(self, requests: Sequence[AccountRequest]) -> None:
        """Ask for accounts; idempotent by ``key`` on the bank's side."""
        for part in _chunks(list(requests)):
            body = {
                "requests": [
                    {
                        "key": r.key,
                        "fin": r.fin,
                        "name": r.name,
                        "requested_at": _aware(r.requested_at, "requested_at"),
                    }
                    for r in part
                ]
            }
            self._call("POST", "/accounts/requests", "POST /accounts/requests", json=body)

    def account_answers(
        self, keys: Sequence[str], *, as_of: datetime
    ) -> Mapping[str, AccountAnswer]:
        moment = _aware(as_of, "as_of of account answers")
        answers: dict[str, AccountAnswer] = {}
        for part in _chunks(list(dict.fromkeys(keys))):
            items, endpoint = self._json(
                "POST", "/accounts/answers", {"keys": list(part), "as_of": moment}, "answers"
            )
            for item in items:
                try:
                    status = item["status"]
                    if status not in ("pending", "opened", "refused"):
                        raise ValueError(f"status {status!r}")
                    answered = item.get("answered_at")
                    answer = AccountAnswer(
                        key=str(item["key"]),
                        status=status,
                        iban=item.get("iban"),
                        reason=item.get("reason"),
                        answered_at=None if answered is None else _moment(answered),
                        holder=item.get("holder") or None,
                    )
                except (KeyError, TypeError, ValueError, AttributeError) as error:
                    raise BankError(
                        f"an account answer is unusable ({error})", endpoint=endpoint, status=200
                    ) from error
                answers[answer.key] = answer
        return answers

    # ---- transfers ------------------------------------------------------------------------------

    def transfer(self, transfers: Sequence[Transfer]) -> Mapping[str, TransferResult]:
        """Pay; a key seen before returns its first result (the bank keeps it)."""
        results: dict[str, TransferResult] = {}
        for part in _chunks(list(transfers)):
            body = {
                "transfers": [
                    {
                        "key": t.key,
                        "fin": t.fin,
                        "iban": t.iban,
                        "amount": t.amount,
                        "reference": t.reference,
                        "at": _aware(t.at, "at of a transfer"),
                    }
                    for t in part
                ]
            }
            items, endpoint = self._json("POST", "/transfers", body, "results")
            for item in items:
                try:
                    status = item["status"]
                    if status not in ("accepted", "rejected"):
                        raise ValueError(f"status {status!r}")
                    result = TransferResult(str(item["key"]), status, item.get("reason"))
                except (KeyError, TypeError, ValueError) as error:
                    raise BankError(
                        f"a transfer result is unusable ({error})", endpoint=endpoint, status=200
                    ) from error
                results[result.key] = result
        missing = [t.key for t in transfers if t.key not in results]
        if missing:
            raise BankError(f"no result for {missing[:5]}", endpoint="POST /transfers", status=200)
        return {t.key: results[t.key] for t in transfers}

    # ---- files ----------------------------------------------------------------------------------

    def send_file(self, name: str, content: bytes, *, at: datetime) -> None:
        """Hand over a ``pain.001`` file; a name the bank has seen is ignored there."""
        path = f"/files/{quote(name, safe='')}"
        endpoint = "PUT /files/{name}"
        try:
            self._call(
                "PUT",
                path,
                endpoint,
                content=bytes(content),
                params={"at": _aware(at, "at of a payment file")},
                headers={"Content-Type": "application/xml"},
            )
        except BankError as error:
            if error.status == 422 and error.code == "bank_file":
                raise MalformedBankFile(str(error)) from error
            raise

    def _listed(self, moment: str) -> list[tuple[str, Any, datetime]]:
        endpoint = "GET /files"
        listed = _body(self._call("GET", "/files", endpoint, params={"as_of": moment}), endpoint)
        items = listed.get("files")
        if not isinstance(items, list):
            raise BankError("the answer has no list 'files'", endpoint=endpoint, status=200)
        out = []
        for item in items:
            try:
                name, kind, at = str(item["name"]), item["kind"], _moment(item["at"])
                if kind not in _KINDS:
                    raise ValueError(f"kind {kind!r}")
            except (KeyError, TypeError, ValueError) as error:
                raise BankError(
                    f"a listed file is unusable ({error})", endpoint=endpoint, status=200
                ) from error
            out.append((name, kind, at))
        return out

    def ready_files(self, *, as_of: datetime) -> Sequence[str]:
        """The names of the reports ready by ``as_of`` (the listing only, no content)."""
        return [name for name, _, _ in self._listed(_aware(as_of, "as_of of bank files"))]

    def files(self, *, as_of: datetime) -> Sequence[BankFile]:
        """Reports ready by ``as_of`` and not acknowledged, oldest first, with their content."""
        moment = _aware(as_of, "as_of of bank files")
        out: list[BankFile] = []
        for name, kind, at in self._listed(moment):
            response = self._call(
                "GET",
                f"/files/{quote(name, safe='')}",
                "GET /files/{name}",
                params={"as_of": moment},
            )
            out.append(BankFile(name=name, kind=kind, content=response.content, at=at))
        return out

    def ack_files(self, names: Sequence[str]) -> None:
        for part in _chunks(list(dict.fromkeys(names))):
            self._call("POST", "/files/ack", "POST /files/ack", json={"names": list(part)})


def _moment(value: object) -> datetime:
    if not isinstance(value, str):
        raise ValueError(f"time {value!r} is not a string")
    moment = datetime.fromisoformat(value)
    if moment.utcoffset() is None:
        raise ValueError(f"time {value!r} has no UTC offset")
    return moment


def _error_text(response: httpx.Response) -> tuple[str | None, str]:
    """The service's error code and ``code: message`` from its ``{"error", "message"}``, or
    no code and the body's start."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        code = body.get("error")
        code = code if isinstance(code, str) else None
        return code, f"{code or 'error'}: {body['message']}"
    text = response.text.strip()
    return None, text[:300] or response.reason_phrase or "error"


def _body(response: httpx.Response, endpoint: str) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError as error:
        raise BankError(
            "the answer is not JSON", endpoint=endpoint, status=response.status_code
        ) from error
    if not isinstance(body, dict):
        raise BankError(
            "the answer is not a JSON object", endpoint=endpoint, status=response.status_code
        )
    return body
