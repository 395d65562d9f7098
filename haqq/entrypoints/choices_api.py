"""The citizen's choices over HTTP: decline or stop a benefit, report a claim made later.

Routes of :func:`make_choices_app` (mounted at ``/api/v1`` by ``haqq serve``):

- ``POST /cases/{case_id}/decline`` ``{"fin", "code", "note"?}``: the beneficiary declines a
  benefit haqq assigned automatically, or stops a recurring one; the same as replying
  ``STOP <code>`` to its SMS. Until the API's sign-in lands, the FIN and the four-digit code
  from the SMS are what shows the request comes from the person texted.
- ``POST /cases/{case_id}/claimed`` ``{"channel", "at"?, "source"?}``: the office or system that
  took a claim reports it, for a notify-mode case (haqq told the person they may claim).

Errors have one shape, ``{"error": "..."}``: 404 no such case, 409 the choice cannot be
applied (nothing changed), 422 a malformed request.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import AwareDatetime, BaseModel, Field
from sqlalchemy import Engine, select

from haqq.adapters.store.schema import cases, notifications
from haqq.domain.quiet import QuietHours
from haqq.pipeline import choices
from haqq.rules.messages import MessageCatalogue, reply_code


class Decline(BaseModel):
    fin: Annotated[str, Field(pattern=r"^[0-9A-Z]{7}$", description="the beneficiary's FIN")]
    code: Annotated[str, Field(pattern=r"^[0-9]{4}$", description="the code in the SMS about the grant")]
    note: Annotated[str | None, Field(max_length=500)] = None


class Claimed(BaseModel):
    channel: Literal["office", "api", "registry"]
    at: AwareDatetime | None = None
    source: Annotated[str | None, Field(max_length=120)] = None


class ChoiceOut(BaseModel):
    case_id: str
    choice: str
    outcome: str
    cancelled_payments: int
    confirmation_sms: str | None


class ClaimOut(BaseModel):
    case_id: str
    choice: Literal["claimed"]


class Problem(BaseModel):
    error: str
    code: str


def make_choices_app(
    engine: Engine,
    *,
    clock: Callable[[], datetime] | None = None,
    quiet: QuietHours | None = None,
    messages: MessageCatalogue | None = None,
    claims_by: Callable[[Request], object] | None = None,
) -> FastAPI:
    """The choices alone as an app (tests, and the SMS link flow)."""
    app = FastAPI(title="haqq: citizens' choices", version="1", docs_url=None, redoc_url=None)

    @app.exception_handler(RequestValidationError)
    async def malformed(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "malformed request"}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        return JSONResponse({"error": f"{where}: {first.get('msg')}" if where else str(first.get("msg")),
                             "code": "invalid"}, 422)

    app.include_router(routes(engine, clock=clock, quiet=quiet, messages=messages, claims_by=claims_by))
    return app


def routes(
    engine: Engine,
    *,
    clock: Callable[[], datetime] | None = None,
    quiet: QuietHours | None = None,
    messages: MessageCatalogue | None = None,
    claims_by: Callable[[Request], object] | None = None,
) -> APIRouter:
    """``claims_by``: a dependency that checks who reports a claim (an office or a system
    client); None accepts any caller (the embedded tests)."""
    now_of = clock or (lambda: datetime.now(UTC))
    app = APIRouter(tags=["citizens' choices"])
    problems: dict[int | str, dict[str, object]] = {
        401: {"model": Problem, "description": "not signed in"},
        403: {"model": Problem, "description": "the role may not report claims"},
        404: {"model": Problem, "description": "no such case"},
        409: {"model": Problem, "description": "the choice cannot be applied; nothing changed"},
        422: {"model": Problem, "description": "a malformed request"},
    }
    claim_deps = [Depends(claims_by)] if claims_by else []

    def case_exists(case_id: str) -> bool:
        with engine.connect() as conn:
            return conn.execute(select(cases.c.id).where(cases.c.id == case_id)).first() is not None

    @app.post("/cases/{case_id}/decline", operation_id="declineBenefit", response_model=ChoiceOut,
              responses=problems)
    def decline(case_id: str, body: Decline) -> ChoiceOut | JSONResponse:
        """Decline a benefit assigned automatically, or stop a recurring one."""
        if not case_exists(case_id):
            return JSONResponse({"error": f"no case {case_id}", "code": "not_found"}, 404)
        if body.code != reply_code(case_id):
            return JSONResponse({"error": "the code does not match the SMS about this case", "code": "conflict"}, 409)
        now = now_of()
        try:
            with engine.begin() as conn:
                texted = conn.execute(
                    select(notifications.c.id).where(notifications.c.case_id == case_id,
                                                     notifications.c.kind.in_(choices.GRANTS))
                ).first()
                if texted is None:
                    raise choices.ChoiceRefused(f"case {case_id}: no grant was texted for this case")
                done = choices.stop(conn, case_id, at=now, now=now, channel="api", fin=body.fin,
                                    source=body.note, quiet=quiet, messages=messages)
        except choices.ChoiceRefused as exc:
            return JSONResponse({"error": str(exc), "code": "conflict"}, 409)
        return ChoiceOut(case_id=case_id, choice=done.choice, outcome=done.outcome,
                         cancelled_payments=done.cancelled, confirmation_sms=done.confirmation)

    @app.post("/cases/{case_id}/claimed", operation_id="recordClaim", status_code=201,
              response_model=ClaimOut, responses=problems, dependencies=claim_deps)
    def claimed(case_id: str, body: Claimed) -> ClaimOut | JSONResponse:
        """Record that the person claimed a benefit haqq told them they may claim."""
        if not case_exists(case_id):
            return JSONResponse({"error": f"no case {case_id}", "code": "not_found"}, 404)
        now = now_of()
        try:
            with engine.begin() as conn:
                choices.record_claim(conn, case_id, at=body.at or now, now=now, channel=body.channel,
                                     source=body.source)
        except choices.ChoiceRefused as exc:
            return JSONResponse({"error": str(exc), "code": "conflict"}, 409)
        return ClaimOut(case_id=case_id, choice="claimed")

    return app
