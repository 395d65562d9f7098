"""``haqq users``: accounts of haqq's own sign-in (the embedded mode), and tokens for systems."""

from __future__ import annotations

import getpass
from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.table import Table

from haqq.domain.access import Principal, Role
from haqq.domain.errors import HaqqError
from haqq.entrypoints.common import DbOption, console, fail

users_app = typer.Typer(help="Accounts for the console and the API (haqq's own sign-in).", no_args_is_help=True)


@users_app.command("add")
def add(
    username: str,
    role: Annotated[Role, typer.Option("--role", help="caseworker, supervisor, auditor, citizen or system")],
    name: Annotated[str, typer.Option("--name", help="the name shown in logs and pages")] = "",
    fin: Annotated[str | None, typer.Option("--fin", help="a citizen's FIN")] = None,
    password: Annotated[
        str | None, typer.Option("--password", help="default: asked for, or $HAQQ_PASSWORD", envvar="HAQQ_PASSWORD")
    ] = None,
    replace: Annotated[bool, typer.Option("--replace", help="reset an existing account")] = False,
    database_url: DbOption = None,
) -> None:
    """Add an account; its password is kept only as an argon2id hash."""
    from haqq.adapters.auth.passwords import add_account
    from haqq.adapters.store import db

    secret = password or getpass.getpass(f"password for {username}: ")
    try:
        engine = db.make_engine(database_url)
        db.ensure_ready(engine)
        with engine.begin() as conn:
            made = add_account(conn, username, secret, role=role, name=name or username, fin=fin,
                               now=datetime.now(UTC), replace=replace)
    except HaqqError as exc:
        fail(str(exc))
    console.print(f"account {made.username}: {made.role.value}" + (f", FIN {made.fin}" if made.fin else ""))


@users_app.command("list")
def list_(database_url: DbOption = None) -> None:
    """The accounts (never their passwords)."""
    from haqq.adapters.auth.passwords import accounts
    from haqq.adapters.store import db

    engine = db.make_engine(database_url)
    try:
        db.ensure_ready(engine)
    except HaqqError as exc:
        fail(str(exc))
    with engine.connect() as conn:
        found = accounts(conn)
    table = Table("username", "name", "role", "FIN", "disabled")
    for a in found:
        table.add_row(a.username, a.name, a.role.value, a.fin or "", "yes" if a.disabled else "")
    console.print(table)


@users_app.command("token")
def token(
    subject: str,
    role: Annotated[Role, typer.Option("--role")] = Role.SYSTEM,
    name: Annotated[str, typer.Option("--name")] = "",
    fin: Annotated[str | None, typer.Option("--fin")] = None,
    database_url: DbOption = None,
) -> None:
    """Print a bearer token from haqq's own issuer (for a system client, or a test)."""
    from haqq.adapters.auth.tokens import token_keys
    from haqq.adapters.store import db
    from haqq.bootstrap import Settings

    settings = Settings.from_env()
    try:
        engine = db.make_engine(database_url)
        db.ensure_ready(engine)
        now = datetime.now(UTC)
        keys = token_keys(engine, now=now, secret=settings.jwt_secret, public_key=settings.jwt_public_key,
                          issuer=settings.jwt_issuer, audience=settings.jwt_audience)
        typer.echo(keys.issue(Principal(subject=subject, role=role, name=name or subject, fin=fin), now=now))
    except HaqqError as exc:
        fail(str(exc))
