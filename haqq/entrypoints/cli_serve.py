"""``haqq serve``: haqq's own HTTP endpoints on the configured store, in one app.

- ``/events``: where registries push life events (SPDCI ``notify`` and ``on-subscribe``,
  OpenCRVS-style webhooks; see :mod:`haqq.entrypoints.events_api`);
- ``/datatracker``: "who looked at my data", the Data Tracker API v3 (``/v3/findUsage``,
  ``/v3/heartbeat``; see :mod:`haqq.entrypoints.tracker_api`);
- ``/sms``: what an SMS gateway pushes: Kannel's delivery reports and citizens' replies
  (``/sms/kannel/dlr``, ``/sms/kannel/mo``; see :mod:`haqq.entrypoints.sms_api`);
- ``/api/v1``: a citizen declines or stops a benefit, an office reports a claim
  (see :mod:`haqq.entrypoints.choices_api`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from sqlalchemy import Engine
from starlette.applications import Starlette
from starlette.routing import Mount

from haqq.domain.errors import HaqqError
from haqq.domain.quiet import QuietHours
from haqq.entrypoints.common import DbOption, console, fail

if TYPE_CHECKING:
    from haqq.adapters.events.keys import EventKeys


def make_http_app(
    engine: Engine, keys: EventKeys, *, sms_token: str | None = None, quiet: QuietHours | None = None
) -> Starlette:
    """The endpoints, mounted: ``/events``, ``/datatracker``, ``/sms`` and ``/api/v1``."""
    from haqq.entrypoints.choices_api import make_choices_app
    from haqq.entrypoints.events_api import make_events_app
    from haqq.entrypoints.sms_api import make_sms_app
    from haqq.entrypoints.tracker_api import make_tracker_app

    return Starlette(routes=[
        Mount("/events", app=make_events_app(keys, engine=engine)),
        Mount("/datatracker", app=make_tracker_app(engine)),
        Mount("/sms", app=make_sms_app(engine, token=sms_token)),
        Mount("/api/v1", app=make_choices_app(engine, quiet=quiet)),
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
    from haqq.bootstrap import Settings

    try:
        settings = Settings.from_env()
        quiet = QuietHours.parse(settings.sms_quiet)
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
        f"  who looked at my data: {base}/datatracker/v3/findUsage?userCode=FIN\n"
        f"  SMS gateway reports in: {base}/sms/kannel/dlr, {base}/sms/kannel/mo\n"
        f"  decline or stop a benefit: POST {base}/api/v1/cases/CASE/decline"
    )
    app = make_http_app(engine, loaded, sms_token=os.environ.get("HAQQ_SMS_TOKEN") or None, quiet=quiet)
    uvicorn.run(app, host=host, port=port, log_level="warning")


events_app = typer.Typer(help="Life events pushed by registries.", no_args_is_help=True)


@events_app.command("subscribe")
def subscribe(
    registry: Annotated[str, typer.Option("--registry", help="the registry's SPDCI base URL")],
    callback: Annotated[str, typer.Option("--callback", help="haqq's notify endpoint, e.g. https://haqq.example/events/spdci/registry/notify")],
    receiver: Annotated[str, typer.Option("--receiver", help="the registry's SPDCI id")],
    event: Annotated[list[str], typer.Option("--event", help="an event type to subscribe to (repeatable)")],
    keys: Annotated[
        Path | None, typer.Option("--keys", help="the keys file with haqq's signer; default $HAQQ_EVENT_KEYS")
    ] = None,
) -> None:
    """Subscribe haqq to a registry's life events (SPDCI ``/registry/subscribe``, signed)."""
    from datetime import UTC, datetime

    import httpx

    from haqq.adapters.events.keys import load_keys
    from haqq.adapters.events.subscribe import subscribe as send
    from haqq.adapters.events.subscribe import subscribe_request

    try:
        loaded = load_keys(keys)
        if loaded.signer is None:
            fail("the keys file names no 'signer': haqq cannot sign a subscription")
        request = subscribe_request(
            signer=loaded.signer, receiver_id=receiver, callback_url=callback, event_types=event,
            now=datetime.now(UTC),
        )
        with httpx.Client(timeout=30.0) as client:
            ack = send(client, registry, request)
    except HaqqError as exc:
        fail(str(exc))
    console.print(
        f"subscribed to {', '.join(event)} at {registry}: {ack.ack_status} "
        f"(transaction {ack.transaction_id}); the registry will notify {callback}"
    )
