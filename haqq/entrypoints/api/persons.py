"""API routes: persons (see :func:`routes`): search, a person's whole picture, their benefits and
who looked at their data. Every look an official takes is logged in the person's own log."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Response

from haqq.domain.errors import InstitutionError
from haqq.entrypoints.api.common import ApiError, Page, PagingDep, Who, not_found, page_of, problems
from haqq.entrypoints.web.context import WebContext
from haqq.office import people
from haqq.office.people import AccessEntry, Benefit, PersonHit, Picture

#: A FIN in a path: 7 upper-case Latin letters and digits.
FinPath = Annotated[str, Path(pattern=r"^[0-9A-Z]{7}$", description="the person's FIN")]
#: The language of plain-language explanations and program names.
LangQuery = Annotated[Literal["az", "ru", "en"], Query(description="the language of explanations")]
SearchQuery = Annotated[str, Query(min_length=1, max_length=100, description="a FIN, a phone number or the start of a name")]


def routes(ctx: WebContext) -> APIRouter:
    router = APIRouter(tags=["persons"])

    @router.get("/persons", operation_id="searchPersons", response_model=Page[PersonHit],
                responses=problems(401, 403, 422, 503))
    def search(who: Who, q: SearchQuery, paging: PagingDep) -> Page[PersonHit]:
        """Persons by FIN, phone number or the start of their name (the registries' search);
        by FIN only over haqq's own records where no registry is connected. Each person found
        has the search in their data-access log."""
        try:
            with ctx.engine.begin() as conn:
                found = people.search(conn, ctx.directory, who, q, paging.limit, paging.offset, at=ctx.now())
        except InstitutionError as exc:
            raise ApiError(503, "unavailable", f"the registries' search did not answer: {exc}") from None
        return page_of(found.hits, more=found.more, limit=paging.limit, offset=paging.offset)

    @router.get("/persons/{fin}", operation_id="getPerson", response_model=Picture,
                responses=problems(401, 403, 404, 422))
    def person(who: Who, fin: FinPath, lang: LangQuery = "en") -> Response:
        """Everything about one person: identity and family from the registries, the registry
        data haqq's decisions used, life events, cases with their transitions, decisions
        explained, entitlements, payments, SMS, choices, appeals and who looked at their data."""
        try:
            found = people.view_person(ctx.engine, ctx.directory, who, fin, ctx.now(), lang, catalogue=ctx.catalogue,
                                       what="person api")
        except people.UnknownPerson as exc:
            raise not_found(str(exc)) from None
        # Already a validated Picture: serialised once, not validated again on the way out.
        return Response(found.model_dump_json(), media_type="application/json")

    @router.get("/persons/{fin}/access-log", operation_id="getPersonAccessLog", response_model=Page[AccessEntry],
                responses=problems(401, 403, 422))
    def access_log(who: Who, fin: FinPath, paging: PagingDep) -> Page[AccessEntry]:
        """Who read the person's data, when, why and through which message: newest first."""
        with ctx.engine.begin() as conn:
            found = people.access_log(conn, who, fin, paging.limit, paging.offset, at=ctx.now())
        return page_of(found.entries, more=found.more, limit=paging.limit, offset=paging.offset)

    @router.get("/persons/{fin}/benefits", operation_id="getPersonBenefits", response_model=list[Benefit],
                responses=problems(401, 403, 422))
    def benefits(who: Who, fin: FinPath, lang: LangQuery = "en") -> list[Benefit]:
        """Each case where the person is the beneficiary: what was decided and why, the amount,
        the status, the payments to come, and whether it can be stopped, declined or appealed."""
        with ctx.engine.begin() as conn:
            return people.my_benefits(conn, who, ctx.now(), lang, catalogue=ctx.catalogue, fin=fin)

    return router
