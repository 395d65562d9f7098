"""``haqq bank``: the simulated partner bank of the country served over HTTP (the REST API of
:mod:`haqq.adapters.bank.service`), so haqq in another process reaches it as it would reach a
real bank (``HAQQ_BANK_URL``), and so can any other client (curl, a conformance test)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from haqq.entrypoints.common import CountryOption, console, fail

bank_app = typer.Typer(help="The partner bank.", no_args_is_help=True)


@bank_app.command("serve")
def serve(
    host: Annotated[str, typer.Option("--host", help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="port to listen on")] = 8082,
    country: CountryOption = None,
    seed: Annotated[int, typer.Option("--seed", help="seed of the bank's simulated outcomes")] = 1,
) -> None:
    """Serve the simulated bank of the country file: account lookup (G2P Connect mapper),
    account opening, transfers and ISO 20022 payment files."""
    import uvicorn

    from haqq.adapters.bank.service import make_bank_app
    from haqq.adapters.institutions.simulated import SimulatedBank

    path = country or Path(os.environ.get("HAQQ_COUNTRY") or "country.db")
    if not path.is_file():
        fail(f"no country file at {path}: run 'haqq country generate' first")
    bank = SimulatedBank(path, seed=seed)
    app = make_bank_app(bank)
    console.print(f"bank {bank.name} on http://{host}:{port}/ (country {path}, seed {seed})")
    uvicorn.run(app, host=host, port=port, log_level="warning")
