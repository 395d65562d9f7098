"""The security-server simulator over real HTTP: a Starlette app around
:meth:`haqq.adapters.xroad.security_server.SecurityServer.handle`.

Every request but ``GET /healthz`` is converted to an :class:`httpx.Request` (raw path and
query as received, every header in order, the body) and answered by the simulator, whose
:class:`httpx.Response` is converted back. ``handle`` blocks (SQLite, simulated latency), so it
runs in Starlette's thread pool, and one slow provider does not stall the event loop.
"""

from __future__ import annotations

from urllib.parse import quote

import httpx
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from haqq.adapters.xroad.security_server import BadRequest, SecurityServer

METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
#: Set by the server for the converted response; never copied from the simulator's.
_FRAMING = frozenset({b"content-length", b"transfer-encoding", b"connection"})


def to_httpx(request: Request, body: bytes) -> httpx.Request:
    """The Starlette request as an :class:`httpx.Request`, its target byte for byte."""
    scope = request.scope
    raw_path = scope.get("raw_path") or quote(scope["path"]).encode("ascii")
    query = scope.get("query_string", b"")
    target = raw_path + (b"?" + query if query else b"")
    host, port = scope.get("server") or ("localhost", None)
    url = httpx.URL(scheme=scope.get("scheme", "http"), host=host, port=port, raw_path=target)
    return httpx.Request(request.method, url, headers=list(scope["headers"]), content=body)


def from_httpx(response: httpx.Response) -> Response:
    out = Response(content=response.content, status_code=response.status_code)
    kept = [(n.lower(), v) for n, v in response.headers.raw if n.lower() not in _FRAMING]
    out.raw_headers = [*kept, (b"content-length", str(len(response.content)).encode())]
    return out


def make_app(server: SecurityServer) -> Starlette:
    """The HTTP face of ``server``: ``/r1/...`` and everything else to it, ``/healthz`` here."""

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok", "providers": len(server.providers)})

    async def relay(request: Request) -> Response:
        body = await request.body()
        try:
            forwarded = to_httpx(request, body)
        except (httpx.InvalidURL, UnicodeError, ValueError) as exc:
            return from_httpx(BadRequest(f"cannot read the request target: {exc}").response())
        answer = await run_in_threadpool(server.handle, forwarded)
        return from_httpx(answer)

    async def unrouted(scope: Scope, receive: Receive, send: Send) -> None:
        # A target no route pattern matches (its decoded path holds a line break, which
        # "{path:path}" does not match) is the simulator's to answer too, not Starlette's 404.
        if scope["type"] != "http":
            return
        await (await relay(Request(scope, receive)))(scope, receive, send)

    app = Starlette(
        routes=[
            Route("/healthz", healthz, methods=["GET"]),
            Route("/{path:path}", relay, methods=METHODS),
        ]
    )
    app.router.default = unrouted
    return app
