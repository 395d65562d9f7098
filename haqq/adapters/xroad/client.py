"""The production adapter of the institution port: X-Road Message Protocol for REST (r1).

Every service of :class:`haqq.ports.Service` is an X-Road service named in the directory
(:mod:`haqq.adapters.xroad.directory`). A query for many persons is one ``POST
/r1/{serviceId}{path}`` through the configured security server, with the headers the protocol
defines: ``X-Road-Client`` (haqq's subsystem), ``X-Road-Id`` (a new UUID per call),
``X-Road-UserId`` (the official, or ``haqq`` for automatic work) and ``X-Road-Issue`` (the case
or batch the call serves). The answer's ``X-Road-Id`` and ``X-Road-Request-Hash`` are kept with
the records, as the evidence behind a decision, and every call, failed or not, is an
:class:`Exchange` for the message log.

Failures are typed (:mod:`haqq.adapters.xroad.errors`). Transient ones (the network, a timeout,
the provider failing or down, 429/502/503/504) are retried with exponential backoff and full
jitter; the others are not. A circuit breaker per institution stops calling one that keeps
failing. Mutual TLS is a matter of settings (client certificate, key, and the CA to trust).
"""

from __future__ import annotations

import random
import ssl
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson

from haqq.adapters.xroad.breaker import CircuitBreaker
from haqq.adapters.xroad.directory import Directory
from haqq.adapters.xroad.errors import (
    TRANSIENT_STATUSES,
    CircuitOpen,
    ProviderError,
    ProviderUnreachable,
    SecurityServerError,
    XRoadError,
    classify,
)
from haqq.ports import Exchange, Service, ServiceAnswer

AUTOMATIC_USER = "haqq"
#: The most persons one request carries (the providers' limit).
MAX_PERSONS = 10_000


@dataclass(frozen=True)
class XRoadSettings:
    """How haqq reaches its security server."""

    #: The consumer security server's address, e.g. ``https://ss.example.gov.az:8443``.
    url: str = "http://xroad.local"
    timeout: float = 10.0
    #: Mutual TLS: haqq's client certificate and key (PEM files), and the CA that signed the
    #: security server's certificate (``True``: the system's CAs; ``False``: do not verify).
    cert: tuple[Path, Path] | None = None
    verify: Path | bool = True
    attempts: int = 3
    backoff: float = 0.05
    backoff_cap: float = 2.0
    breaker_threshold: int = 5
    breaker_reset: float = 30.0


TransportFactory = Callable[[], httpx.BaseTransport]


class XRoadInstitutions:
    """:class:`haqq.ports.Institutions` over X-Road REST.

    ``transport``: a factory of the HTTP transport (None: real sockets). In embedded mode it
    hands the requests to the in-process security-server simulator, so the same protocol code
    runs with no socket. The HTTP client is opened lazily per process, so the adapter can be
    pickled into a worker process.
    """

    def __init__(
        self,
        directory: Directory,
        settings: XRoadSettings | None = None,
        *,
        transport: TransportFactory | None = None,
        sleep: Callable[[float], None] = time.sleep,
        seed: int | None = None,
    ) -> None:
        self.directory = directory
        self.settings = settings or XRoadSettings()
        self._transport = transport
        self._sleep = sleep
        self._seed = seed
        self._random = random.Random(seed)
        self._client: httpx.Client | None = None
        self._lock = threading.Lock()
        s = self.settings
        self.breakers = {
            p: CircuitBreaker(threshold=s.breaker_threshold, reset_after=s.breaker_reset)
            for p in directory.providers
        }

    def __getstate__(self) -> dict[str, Any]:
        return {
            "directory": self.directory, "settings": self.settings, "transport": self._transport,
            "sleep": self._sleep, "seed": self._seed,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(  # type: ignore[misc]
            state["directory"], state["settings"], transport=state["transport"],
            sleep=state["sleep"], seed=state["seed"],
        )

    def _http(self) -> httpx.Client:
        with self._lock:
            if self._client is None:
                s = self.settings
                self._client = httpx.Client(
                    base_url=s.url,
                    timeout=s.timeout,
                    verify=_tls(s),
                    transport=self._transport() if self._transport else None,
                    follow_redirects=False,
                )
            return self._client

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
            self._client = None

    # ---- the port ---------------------------------------------------------------------------

    def query(
        self,
        service: Service,
        fins: Sequence[str],
        *,
        as_of: datetime,
        purpose: str,
        issue: str | None = None,
        user: str | None = None,
    ) -> ServiceAnswer:
        unique = list(dict.fromkeys(fins))
        if len(unique) > MAX_PERSONS:
            raise ValueError(f"one request carries at most {MAX_PERSONS:,} persons, not {len(unique):,}")
        route = self.directory.route(Service(service))
        breaker = self.breakers[route.service.provider]
        message_id = str(uuid.uuid4())
        headers = {
            "X-Road-Client": self.directory.client.encoded(),
            "X-Road-Id": message_id,
            "X-Road-UserId": user or AUTOMATIC_USER,
            "Accept": "application/json",
            "Content-Type": "application/json; charset=utf-8",
        }
        if issue:
            headers["X-Road-Issue"] = issue
        body = orjson.dumps({"asOf": as_of.isoformat(), "fins": unique, "purpose": purpose})
        url = f"/r1/{route.service.encoded()}{route.path}"

        def exchange(outcome: str, status: int | None, request_hash: str | None, detail: str | None) -> Exchange:
            return Exchange(
                message_id=message_id, direction="out", client=str(self.directory.client),
                service=str(route.service), user=user or AUTOMATIC_USER, issue=issue,
                at=datetime.now(UTC), outcome=outcome, status=status,
                request_hash=request_hash, persons=len(unique), detail=detail,
            )

        if not breaker.allow():
            error: XRoadError = CircuitOpen(
                "calls paused after repeated failures (circuit open)", service=str(route.service),
                error_type="haqq.CircuitOpen",
            )
            error.exchange = exchange("haqq.CircuitOpen", None, None, str(error))
            raise error
        try:
            response = self._send(url, headers, body, str(route.service))
        except XRoadError as exc:
            breaker.failed()
            exc.exchange = exchange(exc.error_type or type(exc).__name__, exc.status, None, str(exc))
            raise
        breaker.succeeded()
        request_hash = response.headers.get("X-Road-Request-Hash")
        answered_id = response.headers.get("X-Road-Id") or message_id
        try:
            payload = orjson.loads(response.content)
            records = payload["records"]
            if not isinstance(records, dict):
                raise TypeError("records is not an object")
        except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
            bad = ProviderError(
                f"unusable answer ({exc})", service=str(route.service), status=response.status_code
            )
            bad.exchange = exchange("haqq.UnusableAnswer", response.status_code, request_hash, str(bad))
            raise bad from None
        return ServiceAnswer(
            service=Service(service), message_id=answered_id, answered_at=as_of, records=records,
            exchange=exchange("ok", response.status_code, request_hash, None),
        )

    def _send(self, url: str, headers: dict[str, str], body: bytes, service: str) -> httpx.Response:
        """POST with retries of transient failures (backoff with full jitter)."""
        s = self.settings
        attempt = 0
        while True:
            attempt += 1
            try:
                response = self._http().post(url, headers=headers, content=body)
                failure = _failure(response, service)
            except httpx.TimeoutException as exc:
                failure = ProviderUnreachable(f"timed out ({exc})", service=service, error_type="haqq.Timeout")
            except httpx.TransportError as exc:
                failure = SecurityServerError(
                    f"security server unreachable ({exc})", service=service, error_type="haqq.NetworkError"
                )
            if failure is None:
                return response
            if not failure.transient or attempt >= s.attempts:
                raise failure
            cap = min(s.backoff_cap, s.backoff * 2 ** (attempt - 1))
            self._sleep(self._random.uniform(0, cap))


def _tls(s: XRoadSettings) -> ssl.SSLContext | bool:
    """The TLS context: the CA to trust (or the system's), and haqq's certificate for mutual TLS."""
    if s.verify is False and s.cert is None:
        return False
    context = ssl.create_default_context(cafile=str(s.verify) if isinstance(s.verify, Path) else None)
    if s.verify is False:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if s.cert is not None:
        context.load_cert_chain(certfile=str(s.cert[0]), keyfile=str(s.cert[1]))
    return context


def _failure(response: httpx.Response, service: str) -> XRoadError | None:
    if response.is_success:
        return None
    error_type = response.headers.get("X-Road-Error")
    if error_type:
        try:
            message = str(orjson.loads(response.content).get("message", ""))
        except (orjson.JSONDecodeError, AttributeError):
            message = response.text[:200]
        return classify(error_type, message, service=service, status=response.status_code)
    text = response.text[:200]
    kind = "transient" if response.status_code in TRANSIENT_STATUSES else "error"
    return ProviderError(
        f"provider answered {response.status_code} ({kind}): {text}", service=service,
        status=response.status_code,
    )
