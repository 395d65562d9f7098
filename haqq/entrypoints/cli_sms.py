"""``haqq sms``: what haqq tells citizens and what they answer.

- ``status``: the outbox and what became of it, by gateway, situation and status; receipts and
  replies taken in or refused; citizens' choices.
- ``templates``: every text of the catalogue at its longest, with its encoding and SMS parts.
- ``replies``: the latest replies, with what haqq did with each (``--refused``: only those it
  could not act on).
- ``stop CASE``: a caseworker records that the citizen declined or stopped a benefit in person.
- ``claimed CASE``: record that a notify-mode benefit was claimed.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table
from sqlalchemy import func, select

from haqq.adapters.store import db
from haqq.adapters.store.schema import citizen_choices, inbound_sms, notifications, sms_receipts
from haqq.bootstrap import Settings
from haqq.domain.errors import HaqqError
from haqq.domain.quiet import QuietHours
from haqq.entrypoints.common import DbOption, console, fail
from haqq.pipeline import choices
from haqq.rules.messages import default_messages, load_messages

sms_app = typer.Typer(help="What haqq tells citizens by SMS, and what they answer.", no_args_is_help=True)

JsonOption = Annotated[bool, typer.Option("--json", help="Print the result as one JSON object.")]


def _engine(database_url: str | None) -> Any:
    engine = db.make_engine(database_url)
    try:
        db.ensure_ready(engine)
    except HaqqError as exc:
        fail(str(exc))
    return engine


@sms_app.command("status")
def status(database_url: DbOption = None, as_json: JsonOption = False) -> None:
    """The outbox and what became of it; receipts, replies and citizens' choices."""
    engine = _engine(database_url)
    with engine.connect() as conn:
        outbox = [
            {"gateway": g or "-", "situation": k, "status": s, "count": n}
            for g, k, s, n in conn.execute(
                select(notifications.c.gateway, notifications.c.kind, notifications.c.status, func.count())
                .group_by(notifications.c.gateway, notifications.c.kind, notifications.c.status)
                .order_by(notifications.c.kind, notifications.c.status)
            )
        ]
        receipts = dict(conn.execute(select(sms_receipts.c.state, func.count()).group_by(sms_receipts.c.state)).all())
        replies = dict(conn.execute(select(inbound_sms.c.status, func.count()).group_by(inbound_sms.c.status)).all())
        chosen = [
            {"choice": c, "channel": ch, "count": n}
            for c, ch, n in conn.execute(
                select(citizen_choices.c.choice, citizen_choices.c.channel, func.count())
                .group_by(citizen_choices.c.choice, citizen_choices.c.channel)
            )
        ]
    if as_json:
        sys.stdout.write(json.dumps({"outbox": outbox, "receipts": receipts, "replies": replies,
                                     "choices": chosen}) + "\n")
        return
    table = Table("situation", "gateway", "status", "messages", title="Notifications")
    for row in outbox:
        table.add_row(row["situation"], row["gateway"], row["status"], f"{row['count']:,}")
    console.print(table)
    console.print(f"receipts: {receipts or 'none'}; replies: {replies or 'none'}")
    if chosen:
        console.print("citizens' choices: " + ", ".join(f"{c['choice']} by {c['channel']} {c['count']:,}" for c in chosen))


@sms_app.command("templates")
def templates(
    catalogue: Annotated[Path | None, typer.Option("--catalogue", help="an SMS catalogue to check (default the built-in one)")] = None,
    as_json: JsonOption = False,
) -> None:
    """Every text at its longest: encoding, SMS parts, characters (the catalogue is checked)."""
    try:
        messages = load_messages(catalogue, strict=False) if catalogue else default_messages()
    except HaqqError as exc:
        fail(str(exc))
    costs = messages.costs()
    if as_json:
        sys.stdout.write(json.dumps({"max_segments": messages.max_segments, "version": messages.version,
                                     "texts": [asdict(c) for c in costs]}) + "\n")
        return
    table = Table("situation", "program", "lang", "encoding", "parts", "characters",
                  title=f"SMS texts at their longest (at most {messages.max_segments} parts)")
    for c in costs:
        table.add_row(c.situation, c.program or "(all)", c.language, c.encoding, str(c.segments), str(c.characters))
    console.print(table)


@sms_app.command("replies")
def replies(
    refused: Annotated[bool, typer.Option("--refused", help="only the replies haqq could not act on")] = False,
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 50,
    database_url: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """The latest replies and what haqq did with each."""
    engine = _engine(database_url)
    stmt = select(inbound_sms.c.received_at, inbound_sms.c.gateway, inbound_sms.c.phone, inbound_sms.c.text,
                  inbound_sms.c.status, inbound_sms.c.case_id, inbound_sms.c.outcome)
    if refused:
        stmt = stmt.where(inbound_sms.c.status == "refused")
    with engine.connect() as conn:
        found = [dict(r._mapping) for r in conn.execute(stmt.order_by(inbound_sms.c.received_at.desc()).limit(limit))]
    if as_json:
        sys.stdout.write(json.dumps({"replies": found}, default=str) + "\n")
        return
    table = Table("received", "from", "text", "status", "case", "outcome")
    for r in found:
        table.add_row(f"{r['received_at']:%Y-%m-%d %H:%M}", r["phone"], r["text"], r["status"], r["case_id"] or "",
                      r["outcome"] or "")
    console.print(table)


@sms_app.command("stop")
def stop(
    case_id: Annotated[str, typer.Argument(help="the case whose benefit the citizen declines or stops")],
    channel: Annotated[str, typer.Option(help="how the citizen said so: office, api or sms")] = "office",
    note: Annotated[str | None, typer.Option(help="who recorded it, where (kept with the choice)")] = None,
    database_url: DbOption = None,
) -> None:
    """Record that a citizen declined a benefit, or stopped a recurring one; confirm by SMS."""
    engine = _engine(database_url)
    now = datetime.now(UTC)
    quiet = QuietHours.parse(Settings.from_env().sms_quiet)
    try:
        with engine.begin() as conn:
            done = choices.stop(conn, case_id, at=now, now=now, channel=channel, source=note, quiet=quiet)
    except HaqqError as exc:
        fail(str(exc))
    console.print(f"case {case_id}: {done.choice} ({done.outcome}); {done.cancelled} payment(s) cancelled; "
                  + (f"confirmation SMS queued ({done.confirmation})" if done.confirmation else "no phone to confirm to"))


@sms_app.command("claimed")
def claimed(
    case_id: Annotated[str, typer.Argument(help="the notify-mode case whose benefit was claimed")],
    channel: Annotated[str, typer.Option(help="where: office, api or registry")] = "office",
    note: Annotated[str | None, typer.Option(help="the claim's reference")] = None,
    database_url: DbOption = None,
) -> None:
    """Record that a person claimed a benefit haqq told them they may claim."""
    engine = _engine(database_url)
    now = datetime.now(UTC)
    try:
        with engine.begin() as conn:
            choices.record_claim(conn, case_id, at=now, now=now, channel=channel, source=note)
    except HaqqError as exc:
        fail(str(exc))
    console.print(f"case {case_id}: claim recorded ({channel})")
