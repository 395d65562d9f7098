"""API routes: the review queue (see :mod:`haqq.office.review`).

``GET /review`` lists the cases waiting for a person, oldest first; a case is taken, released,
decided (grant with an amount in qəpik, deny, rerun; always with a reason), and a grant above
the configured threshold is approved or rejected by a supervisor who did not propose it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, Field

from haqq.domain.review import MAX_REASON, InvalidReview
from haqq.entrypoints.api.common import Page, PagingDep, Who, invalid, not_found, page_of, problems
from haqq.entrypoints.web.context import WebContext
from haqq.office import review as office
from haqq.office.appeals import NoSuchAppeal

#: A case's id (``C`` and hexadecimal digits, see :func:`haqq.pipeline.triggers.case_id`).
CaseId = Annotated[str, Path(min_length=1, max_length=24, pattern=r"^[0-9A-Za-z_-]+$", description="the case's id")]
StageName = Literal["open", "taken", "awaiting_approval", "done"]


class QueueEntry(BaseModel):
    case_id: str
    program_id: str
    program_name: dict[str, str] = Field(description="the program's name in az, ru, en")
    subject_fin: str
    beneficiary_fin: str
    reason: str | None = Field(description="why the pipeline could not decide")
    waiting_since: datetime | None
    stage: StageName
    assignee: str | None
    proposed_outcome: str | None
    proposed_amount: int | None = Field(description="qəpik")
    proposed_by: str | None


class Transition(BaseModel):
    source: str | None
    target: str
    at: datetime
    cause: str


class ReviewAction(BaseModel):
    action: str
    by: str
    role: str
    outcome: str | None
    amount: int | None
    reason: str | None
    at: datetime


class CaseUnderReview(BaseModel):
    case_id: str
    program_id: str
    program_name: dict[str, str]
    state: str
    subject_fin: str
    beneficiary_fin: str
    created_at: datetime
    occurred_at: datetime
    reason: str | None
    stage: StageName | None = Field(description="null when the case is not in needs_review")
    assignee: str | None
    proposed_outcome: str | None
    proposed_amount: int | None
    proposed_reason: str | None
    proposed_by: str | None
    decision: dict[str, Any] | None = Field(description="the decision row with its trace, if any")
    entitlement: dict[str, Any] | None
    transitions: list[Transition]
    actions: list[ReviewAction]


class StepDone(BaseModel):
    case_id: str
    state: str = Field(description="the case's state after the step")
    stage: StageName = Field(description="the review's stage after the step")


#: A written reason: some text that is not only spaces.
Reason = Annotated[str, Field(min_length=1, max_length=MAX_REASON, pattern=r"\S", description="why, in writing")]


class GrantBody(BaseModel):
    outcome: Literal["grant"]
    amount: int = Field(ge=1, le=10**12, description="the amount granted, in qəpik")
    reason: Reason


class DenyOrRerunBody(BaseModel):
    outcome: Literal["deny", "rerun"]
    reason: Reason


#: A review decision: a grant carries its amount; a denial or a re-run none.
DecideBody = Annotated[GrantBody | DenyOrRerunBody, Field(discriminator="outcome")]


class ReasonBody(BaseModel):
    reason: Reason


@contextmanager
def answering() -> Iterator[None]:
    """The office's typed errors as the API's: 404 for an unknown case, 422 naming the field."""
    try:
        yield
    except (office.NoSuchCase, NoSuchAppeal) as exc:
        raise not_found(str(exc)) from None
    except InvalidReview as exc:
        raise invalid(str(exc)) from None


def _step(result: office.StepResult) -> StepDone:
    return StepDone(case_id=result.case_id, state=result.state.value, stage=result.stage.value)


def routes(ctx: WebContext) -> APIRouter:
    router = APIRouter(tags=["review"])

    @router.get("/review", operation_id="listReviewQueue", response_model=Page[QueueEntry],
                responses=problems(401, 403, 422))
    def list_queue(
        who: Who, paging: PagingDep,
        stage: Annotated[StageName | None, Query(description="only cases at this stage")] = None,
        program: Annotated[str | None, Query(max_length=60, description="only this program's cases")] = None,
    ) -> Page[QueueEntry]:
        """Cases waiting for a person, oldest first, with why and who has taken them."""
        with ctx.engine.begin() as conn:
            items = office.queue(conn, who, stage, program, paging.limit, paging.offset,
                                 catalogue=ctx.catalogue, at=ctx.now())
        rows = [
            QueueEntry(case_id=i.case_id, program_id=i.program_id, program_name=dict(i.program_name),
                       subject_fin=i.subject_fin, beneficiary_fin=i.beneficiary_fin, reason=i.reason,
                       waiting_since=i.waiting_since, stage=i.stage.value, assignee=i.assignee,
                       proposed_outcome=i.proposed_outcome, proposed_amount=i.proposed_amount,
                       proposed_by=i.proposed_by)
            for i in items
        ]
        return page_of(rows, limit=paging.limit, offset=paging.offset)

    @router.get("/review/{case_id}", operation_id="getCaseUnderReview", response_model=CaseUnderReview,
                responses=problems(401, 403, 404, 422))
    def get_case(who: Who, case_id: CaseId) -> CaseUnderReview:
        """One case with why it waits, the decision and trace so far, and every step taken."""
        with answering(), ctx.engine.begin() as conn:
            c = office.case_review(conn, who, case_id, ctx.now(), catalogue=ctx.catalogue)
        return CaseUnderReview(
            case_id=c.case_id, program_id=c.program_id, program_name=dict(c.program_name), state=c.state.value,
            subject_fin=c.subject_fin, beneficiary_fin=c.beneficiary_fin, created_at=c.created_at,
            occurred_at=c.occurred_at, reason=c.reason, stage=c.stage.value if c.stage else None,
            assignee=c.assignee, proposed_outcome=c.proposed_outcome, proposed_amount=c.proposed_amount,
            proposed_reason=c.proposed_reason, proposed_by=c.proposed_by,
            decision=dict(c.decision) if c.decision else None,
            entitlement=dict(c.entitlement) if c.entitlement else None,
            transitions=[Transition(source=t.source, target=t.target, at=t.at, cause=t.cause) for t in c.transitions],
            actions=[ReviewAction(action=a.action, by=a.by, role=a.role, outcome=a.outcome, amount=a.amount,
                                  reason=a.reason, at=a.at) for a in c.actions],
        )

    @router.post("/review/{case_id}/take", operation_id="takeReview", response_model=StepDone,
                 responses=problems(401, 403, 404, 409, 422))
    def take(who: Who, case_id: CaseId) -> StepDone:
        """Take a case: it is yours to decide until you release or decide it."""
        with answering(), ctx.engine.begin() as conn:
            return _step(office.take(conn, who, case_id, ctx.now()))

    @router.post("/review/{case_id}/release", operation_id="releaseReview", response_model=StepDone,
                 responses=problems(401, 403, 404, 409, 422))
    def release(who: Who, case_id: CaseId) -> StepDone:
        """Put a case you took back in the queue."""
        with answering(), ctx.engine.begin() as conn:
            return _step(office.release(conn, who, case_id, ctx.now()))

    @router.post("/review/{case_id}/decide", operation_id="decideReview", response_model=StepDone,
                 responses=problems(401, 403, 404, 409, 422))
    def decide(who: Who, case_id: CaseId, body: DecideBody) -> StepDone:
        """Grant (``amount`` in qəpik), deny or re-run the case, with a written reason. A grant
        above the threshold waits for a supervisor (stage ``awaiting_approval``)."""
        with answering(), ctx.engine.begin() as conn:
            amount = body.amount if isinstance(body, GrantBody) else None
            return _step(office.decide(conn, who, case_id, body.outcome, amount, body.reason, ctx.now(),
                                       catalogue=ctx.catalogue, threshold=ctx.review_threshold))

    @router.post("/review/{case_id}/approve", operation_id="approveReview", response_model=StepDone,
                 responses=problems(401, 403, 404, 409, 422))
    def approve(who: Who, case_id: CaseId, body: ReasonBody) -> StepDone:
        """A supervisor who did not propose it approves the proposed decision: it is applied."""
        with answering(), ctx.engine.begin() as conn:
            return _step(office.approve(conn, who, case_id, body.reason, ctx.now(), catalogue=ctx.catalogue))

    @router.post("/review/{case_id}/reject", operation_id="rejectReview", response_model=StepDone,
                 responses=problems(401, 403, 404, 409, 422))
    def reject(who: Who, case_id: CaseId, body: ReasonBody) -> StepDone:
        """A supervisor rejects the proposed decision: the case goes back to the queue."""
        with answering(), ctx.engine.begin() as conn:
            return _step(office.reject(conn, who, case_id, body.reason, ctx.now()))

    return router
