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

from haqq.domain.errors import HaqqError
from haqq.domain.quiet import QuietHours
from haqq.entrypoints.common import CountryOption, DbOption, build_app, console, fail

if TYPE_CHECKING:
    from haqq.adapters.events.keys import EventKeys


def make_http_app(
    engine: Engine, keys: EventKeys, *, sms_token: str | None = None, quiet: QuietHours | None = None
) -> Starlette:
    """The whole app on a store, with haqq's own token issuer and the default catalogue (tests)."""
    from datetime import UTC, datetime

    from haqq.adapters.auth.tokens import token_keys
    from haqq.entrypoints.web.app import make_app
    from haqq.entrypoints.web.context import WebContext
    from haqq.rules.catalogue import load_catalogue

    ctx = WebContext(engine=engine, keys=token_keys(engine, now=datetime.now(UTC)), catalogue=load_catalogue(None),
                     quiet=quiet)
    return make_app(ctx, keys, sms_token=sms_token)


def serve(
    host: Annotated[str, typer.Option("--host", help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="port to listen on")] = 8080,
    workers: Annotated[
        int, typer.Option("--workers", min=0, max=64, help="pipeline workers to run alongside (0: none)")
    ] = 1,
    http_workers: Annotated[
        int, typer.Option("--http-workers", min=1, max=64, help="processes answering HTTP (one per core)")
    ] = 1,
    keys: Annotated[
        Path | None,
        typer.Option("--keys", help="registries' keys and webhook secrets (YAML); default $HAQQ_EVENT_KEYS"),
    ] = None,
    database_url: DbOption = None,
    country: CountryOption = None,
) -> None:
    """Serve haqq: the console and the citizen's view (/), the API (/api/v1), life events in
    (/events), the Data Tracker (/datatracker), the SMS gateway's reports (/sms); with pipeline
    workers on the system clock."""
    import multiprocessing

    import uvicorn

    from haqq.adapters.events.keys import EventKeys, load_keys
    from haqq.adapters.store import db
    from haqq.entrypoints.web.app import make_app

    try:
        haqq = build_app(database_url, country)
        # No keys: no registry may push events (the embedded default; the replay feeds them).
        loaded = load_keys(keys) if keys or os.environ.get("HAQQ_EVENT_KEYS") else EventKeys()
        db.upgrade(haqq.engine)
        ctx = haqq.web_context()
    except HaqqError as exc:
        fail(str(exc))
    base = f"http://{host}:{port}"
    console.print(
        f"haqq on {base}\n"
        f"  the console: {base}/ (accounts: haqq users list; add one with haqq users add)\n"
        f"  the API: {base}/api/v1 (OpenAPI {base}/api/v1/openapi.json, docs {base}/api/v1/docs)\n"
        f"  life events in: {base}/events/spdci/registry/notify, {base}/events/webhooks/opencrvs "
        f"({len(loaded.spdci)} SPDCI senders, {len(loaded.webhooks)} webhook senders)\n"
        f"  who looked at my data: {base}/datatracker/v3/findUsage?userCode=FIN\n"
        f"  SMS gateway reports in: {base}/sms/kannel/dlr, {base}/sms/kannel/mo\n"
        f"  pipeline workers: {workers}; HTTP processes: {http_workers}"
        + ("" if ctx.directory else f"\n  [yellow]no country file at {haqq.settings.country}: search by FIN only[/yellow]")
    )
    app = make_app(ctx, loaded, sms_token=os.environ.get("HAQQ_SMS_TOKEN") or None)
    procs = []
    if workers:
        from haqq.entrypoints.cli import _run_worker

        spawn = multiprocessing.get_context("spawn")
        procs = [spawn.Process(target=_run_worker, args=(haqq.settings, haqq.settings.batch_size, True, i, workers),
                               daemon=True) for i in range(workers)]
        for p in procs:
            p.start()
    try:
        if http_workers == 1:
            from haqq.office.dashboard import warm

            warm(ctx.engine, ctx.catalogue)
            uvicorn.run(app, host=host, port=port, log_level="warning")
        else:
            # Each process builds the same app from the same settings (its own connections,
            # its own dashboard cache): hand them over in the environment.
            os.environ["HAQQ_DATABASE_URL"] = str(haqq.engine.url.render_as_string(hide_password=False))
            os.environ["HAQQ_COUNTRY"] = str(haqq.settings.country)
            if keys:
                os.environ["HAQQ_EVENT_KEYS"] = str(keys)
            uvicorn.run("haqq.entrypoints.web.app:from_env", factory=True, workers=http_workers, host=host,
                        port=port, log_level="warning")
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.join(timeout=10)


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
