"""``haqq serve``'s application: everything on one port.

- ``/api/v1``: the API (OpenAPI at ``/api/v1/openapi.json``, docs at ``/api/v1/docs``);
- ``/events``: where registries push life events;
- ``/datatracker``: "who looked at my data", the Data Tracker API v3;
- ``/sms``: what an SMS gateway pushes (delivery reports, replies);
- ``/``: the caseworkers' console and the citizen's view.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount

from haqq.entrypoints.web.context import WebContext

if TYPE_CHECKING:
    from haqq.adapters.events.keys import EventKeys


def make_app(ctx: WebContext, event_keys: EventKeys, *, sms_token: str | None = None) -> Starlette:
    from haqq.entrypoints.api import make_api
    from haqq.entrypoints.console import make_console
    from haqq.entrypoints.events_api import make_events_app
    from haqq.entrypoints.sms_api import make_sms_app
    from haqq.entrypoints.tracker_api import make_tracker_app

    async def nowhere(request: Request, exc: Exception) -> Response:
        # A path no mount matches (one with a line break, say): the API's error shape under
        # /api/, a plain page elsewhere.
        if request.url.path.startswith("/api/"):
            return JSONResponse({"error": "no such resource", "code": "not_found"}, 404)
        return PlainTextResponse("Not Found", 404)

    return Starlette(exception_handlers={404: nowhere}, routes=[
        Mount("/api/v1", app=make_api(ctx)),
        Mount("/events", app=make_events_app(event_keys, engine=ctx.engine)),
        Mount("/datatracker", app=make_tracker_app(ctx.engine)),
        Mount("/sms", app=make_sms_app(ctx.engine, token=sms_token)),
        Mount("/", app=make_console(ctx)),
    ])


def from_env() -> Starlette:
    """The app from the environment's settings (``HAQQ_*``): what each process of
    ``haqq serve --http-workers N`` runs."""
    import os

    from haqq.adapters.events.keys import EventKeys, load_keys
    from haqq.bootstrap import Settings, build
    from haqq.office.dashboard import warm

    haqq = build(Settings.from_env())
    keys = load_keys() if os.environ.get("HAQQ_EVENT_KEYS") else EventKeys()
    ctx = haqq.web_context()
    warm(ctx.engine, ctx.catalogue)
    return make_app(ctx, keys, sms_token=os.environ.get("HAQQ_SMS_TOKEN") or None)
