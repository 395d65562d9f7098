"""haqq's API, ``/api/v1``: persons, life events, cases with their transitions, decisions with
their traces, entitlements, payments, notifications, programs and their parameters, the review
queue, appeals and declining; bearer tokens with roles (see :mod:`haqq.domain.access`).

Every error has one shape (:class:`~haqq.entrypoints.api.common.Problem`); every list that can be
long is paged (``limit``, ``offset``, ``next_offset``).
"""

from __future__ import annotations

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from haqq.domain.access import AccessDenied, NotSignedIn, Role
from haqq.domain.errors import HaqqError
from haqq.entrypoints import choices_api
from haqq.entrypoints.api import appeals, auth, cases, dashboard, events, persons, programs, review
from haqq.entrypoints.api.common import ApiError, current_principal
from haqq.entrypoints.web.context import WebContext

log = structlog.get_logger()


def _problem(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message, "code": code}, status, headers=headers)


def _field_error(exc: RequestValidationError) -> str:
    errors = exc.errors()
    if not errors:
        return "malformed request"
    first = errors[0]
    where = ".".join(str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path", "form"))
    message = str(first.get("msg", "invalid"))
    return f"{where}: {message}" if where else message


def make_api(ctx: WebContext) -> FastAPI:
    api = FastAPI(
        title="haqq API",
        version="1",
        description=(
            "The one-stop shop's API: persons, life events, cases, decisions with their "
            "explanations, entitlements, payments, SMS, programs, the review queue and appeals. "
            "Sign in with `POST /auth/token` (haqq's own issuer) or a token from the ministry's "
            "identity provider, and send it as `Authorization: Bearer ...`."
        ),
        docs_url="/docs",
        redoc_url=None,
        openapi_url="/openapi.json",
    )

    @api.exception_handler(ApiError)
    async def api_error(_: Request, exc: ApiError) -> JSONResponse:
        return _problem(exc.status, exc.code, exc.message)

    @api.exception_handler(NotSignedIn)
    async def not_signed_in(_: Request, exc: NotSignedIn) -> JSONResponse:
        return _problem(401, "not_signed_in", str(exc), {"WWW-Authenticate": "Bearer"})

    @api.exception_handler(AccessDenied)
    async def denied(_: Request, exc: AccessDenied) -> JSONResponse:
        return _problem(403, "forbidden", str(exc))

    @api.exception_handler(RequestValidationError)
    async def malformed(_: Request, exc: RequestValidationError) -> JSONResponse:
        return _problem(422, "invalid", _field_error(exc))

    @api.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400:
            # A body that cannot be read at all (broken JSON, a broken form) is a malformed
            # request like any other: one status, 422, documented on every operation.
            return _problem(422, "invalid", f"the request body cannot be read: {exc.detail}")
        code = {404: "not_found", 405: "invalid", 401: "not_signed_in", 403: "forbidden"}.get(exc.status_code, "invalid")
        return _problem(exc.status_code, code, str(exc.detail))

    @api.exception_handler(HaqqError)
    async def refused(_: Request, exc: HaqqError) -> JSONResponse:
        return _problem(409, "conflict", str(exc))

    @api.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("api.unexpected", path=request.url.path, error=repr(exc))
        return _problem(500, "internal", "haqq could not answer this request; it has been logged")

    api.state.ctx = ctx

    def claims_by(request: Request) -> None:
        principal = current_principal(request)
        if principal.role not in (Role.SYSTEM, Role.CASEWORKER, Role.SUPERVISOR):
            raise AccessDenied(f"the {principal.role.value} role may not report claims")

    for module in (auth, persons, events, cases, review, appeals, programs, dashboard):
        api.include_router(module.routes(ctx))
    api.include_router(choices_api.routes(ctx.engine, clock=ctx.now, quiet=ctx.quiet, messages=ctx.messages,
                                          claims_by=claims_by))
    return api
