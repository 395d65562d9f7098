"""API routes: cases (see :func:`routes`): cases with their transitions, decisions with their
traces explained, entitlements, payments and SMS by person, and stopping or declining a benefit
signed in. Officials see anyone's (each look logged); a citizen only their own."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, Field

from haqq.entrypoints.api.common import Page, PagingDep, Who, conflict, not_found, page_of, problems
from haqq.entrypoints.api.persons import LangQuery
from haqq.entrypoints.web.context import WebContext
from haqq.office import people
from haqq.office.people import (
    CaseSummary,
    CaseView,
    DecisionView,
    DeclineResult,
    EntitlementView,
    PaymentView,
    SmsView,
)

CaseIdPath = Annotated[str, Path(pattern=r"^[0-9A-Za-z_-]{1,24}$", description="the case's id")]
FinQuery = Annotated[str, Query(pattern=r"^[0-9A-Z]{7}$", description="the person's FIN")]
OptionalFin = Annotated[str | None, Query(pattern=r"^[0-9A-Z]{7}$", description="the person's FIN (a citizen: their own)")]
StateQuery = Annotated[str | None, Query(max_length=20, description="the case's state, e.g. needs_review")]
ProgramQuery = Annotated[str | None, Query(max_length=60, description="the program's id")]


class StopRequest(BaseModel):
    note: Annotated[str | None, Field(max_length=500, description="why, in the person's words")] = None


def routes(ctx: WebContext) -> APIRouter:
    router = APIRouter(tags=["cases"])

    @router.get("/cases", operation_id="listCases", response_model=Page[CaseSummary],
                responses=problems(401, 403, 422))
    def list_cases(who: Who, paging: PagingDep, fin: OptionalFin = None, state: StateQuery = None,
                   program: ProgramQuery = None) -> Page[CaseSummary]:
        """Cases, newest first, by person, state or program. A citizen must name their own FIN."""
        with ctx.engine.begin() as conn:
            rows, more = people.list_cases(conn, who, fin=fin, state=state, program=program, limit=paging.limit,
                                           offset=paging.offset, at=ctx.now())
        return page_of(rows, more=more, limit=paging.limit, offset=paging.offset)

    @router.get("/cases/{case_id}", operation_id="getCase", response_model=CaseView,
                responses=problems(401, 403, 404, 422))
    def get_case(who: Who, case_id: CaseIdPath, lang: LangQuery = "en") -> CaseView:
        """A case with its decision and every transition (its audit trail)."""
        try:
            with ctx.engine.begin() as conn:
                return people.case_detail(conn, who, case_id, at=ctx.now(), lang=lang, catalogue=ctx.catalogue)
        except people.UnknownCase as exc:
            raise not_found(str(exc)) from None

    @router.get("/cases/{case_id}/decision", operation_id="getDecision", response_model=DecisionView,
                responses=problems(401, 403, 404, 422))
    def decision(who: Who, case_id: CaseIdPath, lang: LangQuery = "en") -> DecisionView:
        """The case's decision: outcome, amount, legal basis, its full trace (reasons, amounts
        and thresholds, the facts and the messages that brought them) and the same in plain
        language."""
        try:
            with ctx.engine.begin() as conn:
                return people.decision_of(conn, who, case_id, at=ctx.now(), lang=lang, catalogue=ctx.catalogue)
        except (people.UnknownCase, people.NoDecision) as exc:
            raise not_found(str(exc)) from None

    @router.post("/cases/{case_id}/stop", operation_id="stopBenefit", response_model=DeclineResult,
                 responses=problems(401, 403, 404, 409, 422))
    def stop(who: Who, case_id: CaseIdPath, body: StopRequest | None = None) -> DeclineResult:
        """Decline the case's benefit, or stop it when it is a monthly benefit already being
        paid: the beneficiary signed in, or a caseworker or supervisor on their behalf (logged).
        Payments not yet at the bank are cancelled and a confirmation SMS is queued."""
        try:
            with ctx.engine.begin() as conn:
                return people.decline(conn, who, case_id, ctx.now(), ctx.quiet, ctx.messages, channel="api",
                                      note=body.note if body else None)
        except people.UnknownCase as exc:
            raise not_found(str(exc)) from None
        except people.CannotDecline as exc:
            raise conflict(str(exc)) from None

    @router.get("/entitlements", operation_id="listEntitlements", response_model=Page[EntitlementView],
                responses=problems(401, 403, 422))
    def list_entitlements(who: Who, fin: FinQuery, paging: PagingDep) -> Page[EntitlementView]:
        """The person's entitlements (as beneficiary or subject), newest first."""
        with ctx.engine.begin() as conn:
            rows, more = people.entitlements_of(conn, who, fin, limit=paging.limit, offset=paging.offset,
                                                at=ctx.now())
        return page_of(rows, more=more, limit=paging.limit, offset=paging.offset)

    @router.get("/payments", operation_id="listPayments", response_model=Page[PaymentView],
                responses=problems(401, 403, 422))
    def list_payments(who: Who, fin: FinQuery, paging: PagingDep) -> Page[PaymentView]:
        """Payments to the person, newest first (amounts in qəpik)."""
        with ctx.engine.begin() as conn:
            rows, more = people.payments_of(conn, who, fin, limit=paging.limit, offset=paging.offset, at=ctx.now())
        return page_of(rows, more=more, limit=paging.limit, offset=paging.offset)

    @router.get("/notifications", operation_id="listNotifications", response_model=Page[SmsView],
                responses=problems(401, 403, 422))
    def list_notifications(who: Who, fin: FinQuery, paging: PagingDep) -> Page[SmsView]:
        """The SMS haqq sent (or will send) the person, newest first."""
        with ctx.engine.begin() as conn:
            rows, more = people.notifications_of(conn, who, fin, limit=paging.limit, offset=paging.offset,
                                                 at=ctx.now())
        return page_of(rows, more=more, limit=paging.limit, offset=paging.offset)

    return router
