"""``haqq audit``: what an auditor checks: the message log's hash chain."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from haqq.adapters.store import db, messagelog
from haqq.entrypoints.common import DbOption, console, err

audit_app = typer.Typer(help="What an auditor checks.", no_args_is_help=True)


@audit_app.command("verify")
def verify(
    database_url: DbOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as one JSON object.")] = False,
) -> None:
    """Check the message log's hash chain; name the first entry that does not hold.

    Exits 0 when the whole chain holds, 1 when an entry was changed or removed. The head (last
    entry and its hash) is printed so it can be compared with one recorded elsewhere.
    """
    engine = db.make_engine(database_url)
    with engine.connect() as conn:
        result = messagelog.verify(conn)
    engine.dispose()
    head = {"seq": result.head[0], "hash": result.head[1]} if result.head else None
    if as_json:
        print(json.dumps({
            "ok": result.ok, "entries_verified": result.entries, "head": head,
            "bad_seq": result.bad_seq, "reason": result.reason,
        }))
    elif result.ok:
        where = f"; head #{head['seq']} {head['hash']}" if head else ""
        console.print(f"[green]message log intact[/green]: {result.entries:,} entries{where}")
    else:
        err.print(
            f"[red]message log broken[/red] at entry #{result.bad_seq}: {result.reason} "
            f"({result.entries:,} entries before it hold)"
        )
    if not result.ok:
        raise typer.Exit(1)
