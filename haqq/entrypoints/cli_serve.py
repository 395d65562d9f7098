"""``haqq serve``: haqq's own HTTP endpoints on the configured store, in one app.

- ``/events``: where registries push life events (SPDCI ``notify`` and ``on-subscribe``,
  OpenCRVS-style webhooks; see :mod:`haqq.entrypoints.events_api`);
- ``/datatracker``: "who looked at my data", the Data Tracker API v3 (``/v3/findUsage``,
  ``/v3/heartbeat``; see :mod:`haqq.entrypoints.tracker_api`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy import Engine
from starlette.applications import Starlette
from starlette.routing import Mount

from haqq.domain.errors import HaqqError
from haqq.entrypoints.common import DbOption, console, fail


def make_http_app(engine: Engine, keys: object) -> Starlette:
    """The endpoints, mounted: ``/events`` and ``/datatracker``."""
    from haqq.adapters.events.keys import EventKeys
    from haqq.entrypoints.events_api import make_events_app
    from haqq.entrypoints.tracker_api import make_tracker_app

    if not isinstance(keys, EventKeys):
        raise TypeError("keys must be EventKeys")
    return Starlette(routes=[
        Mount("/events", app=make_events_app(keys, engine=engine)),
        Mount("/datatracker", app=make_tracker_app(engine)),
    ])


def serve(
    host: Annotated[str, typer.Option("--host", help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="port to listen on")] = 8080,
    keys: Annotated[
        Path | None,
        typer.Option("--keys", help="registries' keys and webhook secrets (YAML); default $HAQQ_EVENT_KEYS"),
    ] = None,
    database_url: DbOption = None,
) -> None:
    """Serve haqq's endpoints: life events in (/events) and the Data Tracker (/datatracker)."""
    import uvicorn

    from haqq.adapters.events.keys import load_keys
    from haqq.adapters.store import db

    try:
        loaded = load_keys(keys)
        engine = db.make_engine(database_url)
        db.upgrade(engine)
    except HaqqError as exc:
        fail(str(exc))
    base = f"http://{host}:{port}"
    console.print(
        f"haqq on {base}\n"
        f"  life events in: {base}/events/spdci/registry/notify, {base}/events/webhooks/opencrvs "
        f"({len(loaded.spdci)} SPDCI senders, {len(loaded.webhooks)} webhook senders)\n"
        f"  who looked at my data: {base}/datatracker/v3/findUsage?userCode=FIN"
    )
    uvicorn.run(make_http_app(engine, loaded), host=host, port=port, log_level="warning")
