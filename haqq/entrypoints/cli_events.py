"""``haqq events``: haqq's own endpoint where registries push life events (SPDCI ``notify``,
OpenCRVS-style webhooks), served over HTTP into the configured store."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from haqq.domain.errors import HaqqError
from haqq.entrypoints.common import DbOption, console, fail

events_app = typer.Typer(help="Life events pushed by registries.", no_args_is_help=True)


@events_app.command("serve")
def serve(
    host: Annotated[str, typer.Option("--host", help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="port to listen on")] = 8082,
    keys: Annotated[
        Path | None,
        typer.Option("--keys", help="the senders' keys and webhook secrets (YAML); default $HAQQ_EVENT_KEYS"),
    ] = None,
    database_url: DbOption = None,
) -> None:
    """Receive signed registry notifications and webhooks; accepted events go to the store."""
    import uvicorn

    from haqq.adapters.events.keys import load_keys
    from haqq.adapters.store import db
    from haqq.entrypoints.events_api import make_events_app

    try:
        loaded = load_keys(keys)
        engine = db.make_engine(database_url)
        db.upgrade(engine)
    except HaqqError as exc:
        fail(str(exc))
    console.print(
        f"life events in on http://{host}:{port}: POST /spdci/registry/notify, "
        f"/spdci/registry/on-subscribe, /webhooks/opencrvs ({len(loaded.spdci)} SPDCI senders, {len(loaded.webhooks)} webhook senders)"
    )
    uvicorn.run(make_events_app(loaded, engine=engine), host=host, port=port, log_level="warning")
