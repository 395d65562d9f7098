"""A provider-side X-Road security server, simulated: the X-Road Message Protocol for REST (r1)
and the Service Metadata Protocol for REST in front of the institutions' REST services.

:meth:`SecurityServer.handle` takes an :class:`httpx.Request` and gives an
:class:`httpx.Response`, in-process and without sockets: ``httpx.MockTransport(server.handle)``
embeds it in a client, and :mod:`haqq.adapters.xroad.asgi` serves it over real HTTP. It
routes ``/r1/{serviceId}[/path][?query]`` to the provider service the directory names, checks
the ``X-Road-Client`` and the access rights, injects the directory's faults, answers the meta
services ``listMethods``, ``allowedMethods`` and ``getOpenAPI``, and stamps every answer with
the X-Road response headers, the request hash among them (:func:`request_hash`).

Errors of the security server itself (the protocol's section 4.6): the consumer's request
breaks the protocol -> 400 ``Client.BadRequest`` (category 3); anything else -> 500 (the provider
cannot be reached, category 2, or the security server refuses or fails, category 4; the
protocol defines no other status, so ``AccessDenied`` is a 500 too). Each carries
``X-Road-Error: <type>`` and a JSON body ``{"type", "message", "detail": <uuid>}``. A provider's
own answer, an error status included, passes through as-is and never carries ``X-Road-Error``.

The server is stateless apart from its seeded random source (the simulated error rate).
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar
from urllib.parse import parse_qs

import httpx
import yaml

from haqq.adapters.xroad.directory import Directory
from haqq.adapters.xroad.ids import ClientId, InvalidIdentifier, ServiceId, split_path
from haqq.adapters.xroad.providers import ProviderService
from haqq.domain.errors import HaqqError, NaiveDatetime

JSON = "application/json; charset=utf-8"
META_SERVICES = frozenset({"listMethods", "allowedMethods", "getOpenAPI"})
#: The host name provider services see in the URL of a forwarded request.
PROVIDER_HOST = "provider.xroad.internal"

_HOP_BY_HOP = frozenset(
    {b"connection", b"keep-alive", b"proxy-authenticate", b"proxy-authorization", b"te",
     b"trailer", b"transfer-encoding", b"upgrade"}
)
#: Not passed to the provider: hop-by-hop, the origin's name, what the server sets itself.
_DROP_REQUEST = _HOP_BY_HOP | {
    b"host", b"user-agent", b"server", b"content-length", b"expect",
    b"x-road-client", b"x-road-service", b"x-road-id", b"x-road-request-id", b"x-road-request-hash",
}
#: Not passed back to the consumer: hop-by-hop, the provider's name, the X-Road headers the
#: security server sets, and the framing (the body is passed decoded and measured again).
_DROP_RESPONSE = _HOP_BY_HOP | {
    b"server", b"content-length", b"content-encoding",
    b"x-road-client", b"x-road-service", b"x-road-id", b"x-road-request-id",
    b"x-road-request-hash", b"x-road-error",
}


class XRoadFailure(HaqqError):
    """An error of the security server itself, answered with ``X-Road-Error``; ``type`` and
    ``status`` as the protocol names them. (The consumer's view of such answers is
    :mod:`haqq.adapters.xroad.errors`.)"""

    type: ClassVar[str] = "Server.ServerProxy.InternalError"
    status: ClassVar[int] = 500

    def response(self) -> httpx.Response:
        body = {"type": self.type, "message": str(self), "detail": str(uuid.uuid4())}
        return httpx.Response(
            self.status,
            content=json.dumps(body, ensure_ascii=False).encode(),
            headers={"Content-Type": JSON, "X-Road-Error": self.type},
        )


class BadRequest(XRoadFailure):
    type = "Client.BadRequest"
    status = 400


class UnknownMember(XRoadFailure):
    type = "Server.ServerProxy.UnknownMember"


class UnknownService(XRoadFailure):
    type = "Server.ServerProxy.UnknownService"


class AccessDenied(XRoadFailure):
    type = "Server.ServerProxy.AccessDenied"


class ServiceFailed(XRoadFailure):
    type = "Server.ServerProxy.ServiceFailed"


class NetworkError(XRoadFailure):
    type = "Server.ServerProxy.NetworkError"


def _hashed(name: bytes) -> bool:
    return name == b"content-type" or (name.startswith(b"x-road-") and name != b"x-road-request-hash")


def canonical_headers(request: httpx.Request) -> bytes:
    """The "headers" part of the request hash: the request line and the headers that say who
    asks what, serialised canonically (ASCII bytes, every line ending in ``\\n``)::

        {METHOD} {request-target}\\n
        {name}: {value}\\n            (one line per header, see below)

    ``{request-target}`` is the raw path and query exactly as sent (``/r1/...?...``, still
    percent-encoded). The headers are every ``X-Road-*`` header but ``X-Road-Request-Hash``,
    and ``Content-Type``; names lower-cased, values stripped of surrounding whitespace, sorted
    by name (a repeated header keeps its values in the order sent). Transport headers (Host,
    User-Agent, Content-Length, ...) are left out: proxies and clients change them freely.
    """
    picked = sorted(
        ((name.lower(), value.strip()) for name, value in request.headers.raw if _hashed(name.lower())),
        key=lambda item: item[0],
    )
    lines = [request.method.upper().encode("ascii") + b" " + request.url.raw_path]
    lines += [name + b": " + value for name, value in picked]
    return b"\n".join(lines) + b"\n"


def request_hash(request: httpx.Request) -> str:
    """``X-Road-Request-Hash``: base64(SHA512(SHA512(headers) + SHA512(body))), the digests as
    raw bytes, or base64(SHA512(headers)) when the body is empty; ``headers`` is
    :func:`canonical_headers`."""
    head = hashlib.sha512(canonical_headers(request)).digest()
    body = request.read()
    if body:
        head = hashlib.sha512(head + hashlib.sha512(body).digest()).digest()
    return base64.b64encode(head).decode("ascii")


@dataclass(frozen=True, slots=True)
class _Call:
    """What the security server learnt of an accepted request."""

    client: ClientId
    service: ServiceId
    tail: str
    message_id: str
    request_id: str
    hash: str


def _last(request: httpx.Request, name: str) -> str | None:
    values = [v.strip() for v in request.headers.get_list(name)]
    return values[-1] if values and values[-1] else None


def _json(body: object, content_type: str = JSON) -> httpx.Response:
    return httpx.Response(200, content=json.dumps(body).encode(), headers={"Content-Type": content_type})


class SecurityServer:
    """The provider security server of every institution in the directory.

    ``providers``: the REST service behind each service id; ``clock``: the simulated "now"
    that ``down`` periods are judged by (aware); ``seed``: the random source of the error rate;
    ``sleep``: how simulated latency is spent (seconds, like :func:`time.sleep`).
    """

    def __init__(
        self,
        directory: Directory,
        providers: Mapping[ServiceId, ProviderService],
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        seed: int = 0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.directory = directory
        self.providers = dict(providers)
        self.clock = clock
        self.sleep = sleep
        self._subsystems = directory.providers | {sid.provider for sid in self.providers}
        self._rng = random.Random(seed)
        self._rng_lock = threading.Lock()

    # ---- the message protocol -------------------------------------------------------------------

    def handle(self, request: httpx.Request) -> httpx.Response:
        """Answer one X-Road REST request (never raises for a bad request: it answers it)."""
        request.read()
        try:
            call = self._accept(request)
        except XRoadFailure as exc:
            return exc.response()
        try:
            response = self._dispatch(request, call)
        except XRoadFailure as exc:
            return self._stamp(exc.response(), call, error=exc.type)
        return self._stamp(response, call)

    def _accept(self, request: httpx.Request) -> _Call:
        path = request.url.raw_path.partition(b"?")[0].decode("ascii", "replace")
        try:
            service, tail = split_path(path, subsystems=self._subsystems)
        except InvalidIdentifier as exc:
            raise BadRequest(f"cannot parse the service of the request: {exc}") from None
        header = _last(request, "X-Road-Client")
        if header is None:
            raise BadRequest("the X-Road-Client header is missing: it names who is calling")
        try:
            client = ClientId.parse(header)
        except InvalidIdentifier as exc:
            raise BadRequest(f"the X-Road-Client header is invalid: {exc}") from None
        return _Call(
            client=client,
            service=service,
            tail=tail,
            message_id=_last(request, "X-Road-Id") or str(uuid.uuid4()),
            request_id=str(uuid.uuid4()),
            hash=request_hash(request),
        )

    def _dispatch(self, request: httpx.Request, call: _Call) -> httpx.Response:
        service = call.service
        if service.provider not in self._subsystems:
            raise UnknownMember(f"no provider {service.provider} is registered on this server")
        if service.code in META_SERVICES:
            return self._meta(request, call)
        target = self.providers.get(service)
        if target is None:
            raise UnknownService(f"{service.provider} offers no service {service.code!r}")
        if not self.directory.allowed(call.client, service):
            raise AccessDenied(f"{call.client} may not call {service}")
        self._inject_faults(service)
        try:
            response = target.handle(self._forwarded(request, call))
            response.read()
        except Exception as exc:  # whatever breaks in the provider is a failed service
            raise ServiceFailed(
                f"the provider service {service} failed: {type(exc).__name__}: {exc}"
            ) from exc
        return response

    def _inject_faults(self, service: ServiceId) -> None:
        fault = self.directory.faults.get(service.provider)
        if fault is None:
            return
        now = self.clock()
        if now.tzinfo is None or now.utcoffset() is None:
            raise NaiveDatetime("the security server's clock")
        if fault.is_down(now):
            raise NetworkError(f"cannot connect to {service.provider}: it is down at {now.isoformat()}")
        if fault.error_rate > 0:
            with self._rng_lock:
                draw = self._rng.random()
            if draw < fault.error_rate:
                raise ServiceFailed(f"the provider service {service} did not answer (simulated failure)")
        if fault.latency_ms > 0:
            self.sleep(fault.latency_ms / 1000)

    def _forwarded(self, request: httpx.Request, call: _Call) -> httpx.Request:
        """The request as the provider sees it: the path after the service id, the query as
        sent, the user's headers unmodified, the filtered ones dropped, X-Road's set anew."""
        connection = b",".join(v for n, v in request.headers.raw if n.lower() == b"connection")
        listed = {token.strip().lower() for token in connection.split(b",") if token.strip()}
        headers = [
            (name, value)
            for name, value in request.headers.raw
            if name.lower() not in _DROP_REQUEST and name.lower() not in listed
        ]
        headers += [
            (b"X-Road-Client", str(call.client).encode()),
            (b"X-Road-Service", str(call.service).encode()),
            (b"X-Road-Id", call.message_id.encode()),
            (b"X-Road-Request-Id", call.request_id.encode()),
        ]
        query = request.url.query
        target = (call.tail or "/").encode("ascii") + (b"?" + query if query else b"")
        url = httpx.URL(scheme="http", host=PROVIDER_HOST, raw_path=target)
        return httpx.Request(request.method, url, headers=headers, content=request.content)

    def _stamp(self, response: httpx.Response, call: _Call, error: str | None = None) -> httpx.Response:
        """The answer as the consumer gets it, with the X-Road response headers (and
        ``X-Road-Error`` only for an error of the security server itself)."""
        headers = [(n, v) for n, v in response.headers.raw if n.lower() not in _DROP_RESPONSE]
        if error is not None:
            headers.append((b"X-Road-Error", error.encode()))
        headers += [
            (b"X-Road-Client", str(call.client).encode()),
            (b"X-Road-Service", str(call.service).encode()),
            (b"X-Road-Id", call.message_id.encode()),
            (b"X-Road-Request-Id", call.request_id.encode()),
            (b"X-Road-Request-Hash", call.hash.encode()),
        ]
        return httpx.Response(response.status_code, headers=headers, content=response.content)

    # ---- the metadata protocol ------------------------------------------------------------------

    def _meta(self, request: httpx.Request, call: _Call) -> httpx.Response:
        code = call.service.code
        if request.method != "GET":
            raise BadRequest(f"the meta service {code} answers GET only, not {request.method}")
        if call.tail not in ("", "/"):
            raise BadRequest(f"the meta service {code} takes no path (got {call.tail!r})")
        own = sorted(
            (p for sid, p in self.providers.items() if sid.provider == call.service.provider),
            key=lambda p: p.service_id.code,
        )
        if code == "listMethods":
            return _json({"service": [self._describe(p) for p in own]})
        if code == "allowedMethods":
            allowed = [p for p in own if self.directory.allowed(call.client, p.service_id)]
            return _json({"service": [self._describe(p) for p in allowed]})
        params = parse_qs(request.url.query.decode("ascii", "replace"), keep_blank_values=True)
        wanted = params.get("serviceCode", [])
        if len(wanted) != 1 or not wanted[0]:
            raise BadRequest("getOpenAPI takes the query parameter serviceCode exactly once")
        sid = ServiceId(call.service.provider, wanted[0])
        provider = self.providers.get(sid) if wanted[0] not in META_SERVICES else None
        if provider is None:
            raise UnknownService(f"{call.service.provider} offers no service {wanted[0]!r}")
        description = provider.openapi()
        if "yaml" in request.headers.get("Accept", ""):
            text = yaml.safe_dump(description, sort_keys=False, allow_unicode=True)
            return httpx.Response(
                200, content=text.encode(), headers={"Content-Type": "text/yaml; charset=utf-8"}
            )
        return _json(description)

    @staticmethod
    def _describe(provider: ProviderService) -> dict[str, Any]:
        """One service in the shape of the metadata protocol's Annex B."""
        sid = provider.service_id
        return {
            "member_class": sid.provider.member_class,
            "member_code": sid.provider.member_code,
            "object_type": "SERVICE",
            "service_code": sid.code,
            "service_type": "OPENAPI",
            "subsystem_code": sid.provider.subsystem,
            "xroad_instance": sid.provider.instance,
            "endpoint_list": [{"method": e.method, "path": e.path} for e in provider.endpoints()],
        }
