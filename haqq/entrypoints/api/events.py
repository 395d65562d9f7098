"""API routes: events (see :func:`routes`): life events in, as JSON, from a registry's system
client or a supervisor (idempotent by source and event id), and a person's events."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from haqq.entrypoints.api.cases import FinQuery
from haqq.entrypoints.api.common import Page, PagingDep, Who, invalid, page_of, problems
from haqq.entrypoints.web.context import WebContext
from haqq.office import people
from haqq.office.people import EventView, IntakeResult


class EventsIn(BaseModel):
    events: Annotated[
        list[dict[str, Any]],
        Field(
            min_length=1, max_length=people.INTAKE_MAX,
            description=(
                'each {"event_id", "type", "fin", "occurred_at" (ISO 8601 with offset), "source"?, "payload"?}; '
                "checked one by one"
            ),
        ),
    ]


def routes(ctx: WebContext) -> APIRouter:
    router = APIRouter(tags=["events"])

    @router.post("/events", operation_id="takeInEvents", response_model=IntakeResult,
                 responses=problems(401, 403, 422))
    def take_in(who: Who, body: EventsIn) -> IntakeResult:
        """Take in life events. Each is checked on its own: the good ones are stored in one
        transaction (an event already taken, by its source and event id, is counted as a
        duplicate and changes nothing), the others are refused with the reason and nothing of
        them is written."""
        try:
            with ctx.engine.begin() as conn:
                return people.take_in(conn, who, body.events, at=ctx.now())
        except people.TooManyEvents as exc:
            raise invalid(str(exc)) from None

    @router.get("/events", operation_id="listEvents", response_model=Page[EventView],
                responses=problems(401, 403, 422))
    def list_events(who: Who, fin: FinQuery, paging: PagingDep) -> Page[EventView]:
        """The life events about the person, newest first."""
        with ctx.engine.begin() as conn:
            rows, more = people.events_of(conn, who, fin, limit=paging.limit, offset=paging.offset, at=ctx.now())
        return page_of(rows, more=more, limit=paging.limit, offset=paging.offset)

    return router
