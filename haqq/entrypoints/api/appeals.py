"""API routes: appeals (see :mod:`haqq.office.appeals`).

A citizen appeals a decision on their own case (``denied`` or ``lapsed``); an official may open
one on their behalf. An official decides it: ``upheld`` (the decision stands) or ``rerun`` (the
case runs again).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, Field

from haqq.domain.access import Role
from haqq.domain.review import MAX_REASON
from haqq.entrypoints.api.common import Page, PagingDep, Who, page_of, problems
from haqq.entrypoints.api.review import CaseId, Reason, answering
from haqq.entrypoints.web.context import WebContext
from haqq.office import appeals as office
from haqq.office.appeals import AppealView

AppealId = Annotated[int, Path(ge=1, le=2**62, description="the appeal's id")]
StatusName = Literal["open", "upheld", "rerun"]


class Appeal(BaseModel):
    id: int
    case_id: str
    fin: str = Field(description="the citizen appealing (the case's beneficiary)")
    reason: str
    opened_by: str
    channel: str
    opened_at: datetime
    status: StatusName
    decided_by: str | None
    decision_reason: str | None
    decided_at: datetime | None
    case_state: str
    program_id: str
    decision_outcome: str | None = Field(description="the decision appealed, as it stands now")
    decision_amount: int | None = Field(description="qəpik")
    decision_reasons: list[str]


class AppealBody(BaseModel):
    reason: str = Field(min_length=1, max_length=MAX_REASON, pattern=r"\S", description="why the decision is wrong")


class AppealDecisionBody(BaseModel):
    decision: Literal["upheld", "rerun"]
    reason: Reason


def out(a: AppealView) -> Appeal:
    return Appeal(
        id=a.id, case_id=a.case_id, fin=a.fin, reason=a.reason, opened_by=a.opened_by, channel=a.channel,
        opened_at=a.opened_at, status=a.status.value, decided_by=a.decided_by, decision_reason=a.decision_reason,
        decided_at=a.decided_at, case_state=a.case_state.value, program_id=a.program_id,
        decision_outcome=a.decision_outcome, decision_amount=a.decision_amount,
        decision_reasons=list(a.decision_reasons),
    )


def routes(ctx: WebContext) -> APIRouter:
    router = APIRouter(tags=["appeals"])

    @router.post("/cases/{case_id}/appeals", operation_id="openAppeal", response_model=Appeal, status_code=201,
                 responses=problems(401, 403, 404, 409, 422))
    def open_appeal(who: Who, case_id: CaseId, body: AppealBody) -> Appeal:
        """Appeal the decision on a case (a citizen: their own; an official: for the citizen)."""
        channel = "api" if who.role is Role.CITIZEN else "office"
        with answering(), ctx.engine.begin() as conn:
            return out(office.open_appeal(conn, who, case_id, body.reason, ctx.now(), channel))

    @router.get("/appeals", operation_id="listAppeals", response_model=Page[Appeal], responses=problems(401, 403, 422))
    def list_appeals(
        who: Who, paging: PagingDep,
        status: Annotated[StatusName | None, Query(description="only appeals in this status")] = None,
    ) -> Page[Appeal]:
        """Appeals, oldest first (a citizen sees their own)."""
        with ctx.engine.connect() as conn:
            found = office.appeals(conn, who, status, paging.limit, paging.offset)
        return page_of([out(a) for a in found], limit=paging.limit, offset=paging.offset)

    @router.get("/appeals/{appeal_id}", operation_id="getAppeal", response_model=Appeal,
                responses=problems(401, 403, 404, 422))
    def get_appeal(who: Who, appeal_id: AppealId) -> Appeal:
        """One appeal, with the case's state and the decision appealed."""
        with answering(), ctx.engine.begin() as conn:
            return out(office.appeal(conn, who, appeal_id, at=ctx.now()))

    @router.post("/appeals/{appeal_id}/decide", operation_id="decideAppeal", response_model=Appeal,
                 responses=problems(401, 403, 404, 409, 422))
    def decide(who: Who, appeal_id: AppealId, body: AppealDecisionBody) -> Appeal:
        """``upheld``: the decision stands; ``rerun``: the case runs again from gathering."""
        with answering(), ctx.engine.begin() as conn:
            return out(office.decide_appeal(conn, who, appeal_id, body.decision, body.reason, ctx.now()))

    return router
