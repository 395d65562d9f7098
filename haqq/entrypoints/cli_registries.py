"""``haqq registries``: the simulated institutions as X-Road REST services, served over HTTP
behind the security-server simulator, for clients other than haqq's embedded mode (another
process, a browser, curl, a conformance test)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from haqq.domain.errors import HaqqError
from haqq.entrypoints.common import CountryOption, console, fail

registries_app = typer.Typer(
    help="The simulated registries as X-Road REST services.", no_args_is_help=True
)

DirectoryOption = Annotated[
    Path | None,
    typer.Option(
        "--directory",
        help="The data-exchange directory (YAML); default $HAQQ_XROAD_DIRECTORY or the built-in one",
    ),
]


@registries_app.command("serve")
def serve(
    host: Annotated[str, typer.Option("--host", help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="port to listen on")] = 8081,
    country: CountryOption = None,
    directory: DirectoryOption = None,
    seed: Annotated[int, typer.Option("--seed", help="seed of the simulated error rate")] = 0,
) -> None:
    """Serve the registries of the country file through an X-Road security-server simulator."""
    import uvicorn

    from haqq.adapters.institutions.simulated import SimulatedInstitutions
    from haqq.adapters.xroad.asgi import make_app
    from haqq.adapters.xroad.directory import load_directory
    from haqq.adapters.xroad.providers import simulated_providers
    from haqq.adapters.xroad.security_server import SecurityServer

    path = country or Path(os.environ.get("HAQQ_COUNTRY") or "country.db")
    if not path.is_file():
        fail(f"no country file at {path}: run 'haqq country generate' first")
    try:
        book = load_directory(directory)
    except HaqqError as exc:
        fail(str(exc))
    providers = simulated_providers(book, SimulatedInstitutions(path))
    app = make_app(SecurityServer(book, providers, seed=seed))
    console.print(
        f"X-Road security server simulator on http://{host}:{port}/r1/ "
        f"({len(providers)} services of {len(book.providers)} providers, country {path})"
    )
    uvicorn.run(app, host=host, port=port, log_level="warning")
