"""``haqq payments``: the payment office's commands: runs, approvals, bank files, reconciliation,
retries and recoveries. Amounts are qəpik inside and AZN with two decimals on screen."""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table
from sqlalchemy import Connection, select, update

from haqq.adapters.bank.iso20022 import BankFileError
from haqq.adapters.store import messagelog
from haqq.adapters.store.reconcile import Tally, reconcile
from haqq.adapters.store.schema import payments, recovery_claims
from haqq.bootstrap import Haqq, wall_clock
from haqq.domain.errors import HaqqError
from haqq.domain.money import format_azn
from haqq.domain.payments import PaymentError, explain_reason
from haqq.entrypoints.common import CountryOption, DbOption, console, err, fail
from haqq.entrypoints.common import build_app as _build
from haqq.pipeline import bank_reports, runs
from haqq.pipeline.exchanges import LoggedBank
from haqq.pipeline.work import local_date
from haqq.ports import Exchange

payments_app = typer.Typer(help="The payment office: runs, approvals, bank files, reconciliation.",
                           no_args_is_help=True)

JsonOption = Annotated[bool, typer.Option("--json", help="Print the result as one JSON object.")]
ByOption = Annotated[str, typer.Option("--by", help="Who does this (kept with the run).")]
#: How many runs the reconciliation's table shows.
RUNS_SHOWN = 30


def _app(database_url: str | None, country: Path | None) -> Haqq:
    return _build(database_url, country)


def _day(value: str | None) -> date:
    if value is None:
        return local_date(wall_clock())
    try:
        return date.fromisoformat(value)
    except ValueError:
        fail(f"--date {value!r} is not a date (YYYY-MM-DD)")


def _summary_dict(s: runs.RunSummary) -> dict[str, Any]:
    data = asdict(s)
    data["run_date"] = s.run_date.isoformat()
    data["total_azn"] = format_azn(s.total)
    return data


def _print_run(s: runs.RunSummary) -> None:
    approvals = ", ".join(s.approvals) or "none"
    console.print(
        f"run {s.id} [bold]{s.label}[/bold] ({s.status}): {s.payments:,} payments, {format_azn(s.total)}; "
        f"approvals {len(s.approvals)}/{s.needed} ({approvals})"
    )
    if s.by_program:
        table = Table("program", "payments", "amount")
        for program, (n, total) in sorted(s.by_program.items()):
            table.add_row(program, f"{n:,}", format_azn(total))
        console.print(table)


@payments_app.command("run")
def run_cmd(
    day: Annotated[str | None, typer.Option("--date", help="Take payments due by the end of this day (default today).")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show what the runs would hold; write nothing.")] = False,
    by: ByOption = "payment office",
    database_url: DbOption = None,
    country: CountryOption = None,
    as_json: JsonOption = False,
) -> None:
    """Gather the due payments into draft runs (the day's run and any payroll month), holding
    those no bank file can carry; ``--dry-run`` previews."""
    app = _app(database_url, country)
    as_of = runs.end_of_day(_day(day))
    with app.engine.begin() as conn:
        if dry_run:
            p = runs.preview(conn, as_of)
            if as_json:
                print(json.dumps({"as_of": as_of.isoformat(), "runs": p.runs, "by_program": p.by_program,
                                  "held": [{"payment": i, "program": g, "reason": r} for i, g, r in p.held]}))
                return
            table = Table("would-be run", "payments", "amount", title=f"payments due by {as_of:%Y-%m-%d}")
            for label, (n, total) in sorted(p.runs.items()):
                table.add_row(label, f"{n:,}", format_azn(total))
            console.print(table)
            for pid, program, reason in p.held[:20]:
                console.print(f"[yellow]would hold[/yellow] payment {pid} ({program}): {reason}")
            if len(p.held) > 20:
                console.print(f"... and {len(p.held) - 20:,} more held")
            return
        made = runs.make_runs(conn, as_of, wall_clock(), by=by, office=app.office())
        details = [runs.summary(conn, r.id) for r in made]
    if as_json:
        print(json.dumps({"runs": [_summary_dict(s) for s in details]}))
        return
    if not details:
        console.print(f"no payments due by {as_of:%Y-%m-%d}: no run made")
    for s in details:
        _print_run(s)


@payments_app.command("list")
def list_cmd(database_url: DbOption = None, as_json: JsonOption = False) -> None:
    """The latest payment runs."""
    app = _app(database_url, None)
    with app.engine.connect() as conn:
        found = runs.list_runs(conn)
    if as_json:
        print(json.dumps({"runs": [_summary_dict(s) for s in found]}))
        return
    table = Table("run", "label", "status", "payments", "total", "approvals")
    for s in found:
        table.add_row(str(s.id), s.label, s.status, f"{s.payments:,}", format_azn(s.total),
                      f"{len(s.approvals)}/{s.needed}")
    console.print(table)


@payments_app.command("approve")
def approve_cmd(
    run: Annotated[int, typer.Argument(help="The run's number.")],
    by: Annotated[str, typer.Option("--by", help="Who approves (a second person above the threshold).")],
    database_url: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Approve a run; above the threshold it needs a second, different person."""
    app = _app(database_url, None)
    try:
        with app.engine.begin() as conn:
            s = runs.approve(conn, run, by=by, now=wall_clock())
    except PaymentError as error:
        fail(str(error))
    if as_json:
        print(json.dumps(_summary_dict(s)))
    else:
        _print_run(s)


@payments_app.command("cancel")
def cancel_cmd(
    run: Annotated[int, typer.Argument(help="The run's number.")],
    by: ByOption = "payment office",
    database_url: DbOption = None,
) -> None:
    """Cancel a run not yet sent; its payments wait for the next run."""
    app = _app(database_url, None)
    try:
        with app.engine.begin() as conn:
            s = runs.cancel(conn, run, by=by, now=wall_clock())
    except PaymentError as error:
        fail(str(error))
    _print_run(s)


@payments_app.command("send")
def send_cmd(
    run: Annotated[int, typer.Argument(help="The run's number.")],
    by: ByOption = "payment office",
    out: Annotated[Path | None, typer.Option("--out", help="Also write the pain.001 files into this directory.")] = None,
    database_url: DbOption = None,
    country: CountryOption = None,
    as_json: JsonOption = False,
) -> None:
    """Send an approved run to the bank as pain.001 files, once."""
    app = _app(database_url, country)
    now = wall_clock()
    try:
        with app.engine.begin() as conn:
            files = runs.send(conn, run, by=by, now=now, office=app.office())
    except (PaymentError, BankFileError) as error:
        fail(str(error))
    _deliver(app)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        for f in files:
            (out / f"{f.name}.xml").write_bytes(f.content)
    listed = [{"name": f.name, "bank": f.bank, "transactions": f.transactions, "total": f.total,
               "total_azn": format_azn(f.total)} for f in files]
    if as_json:
        print(json.dumps({"run": run, "files": listed}))
        return
    for sent in files:
        console.print(f"sent {sent.name} to {sent.bank}: {sent.transactions:,} payments, {format_azn(sent.total)}")


def _deliver(app: Haqq) -> int:
    """Hand the bank what waits for it; a bank that fails leaves the files for the next try."""
    notes: list[Exchange] = []
    bank = LoggedBank(app.bank, notes, wall_clock)

    def log(conn: Connection) -> None:
        messagelog.append(conn, list(notes))
        notes.clear()

    try:
        return runs.deliver(app.engine, bank, wall_clock, log)
    except HaqqError as error:
        err.print(f"[yellow]the bank did not take the files yet[/yellow] ({error}); they are kept, "
                  "and the worker or 'haqq payments deliver' hands them over later")
        return 0


@payments_app.command("deliver")
def deliver_cmd(database_url: DbOption = None, country: CountryOption = None) -> None:
    """Hand the bank the files of sent runs it has not taken yet (the worker does this too)."""
    app = _app(database_url, country)
    console.print(f"{_deliver(app)} file(s) handed to the bank")


def _import(app: Haqq, content: bytes, source: str) -> bank_reports.ImportResult:
    try:
        with app.engine.begin() as conn:
            return bank_reports.import_file(conn, content, bank=app.bank.name, now=wall_clock())
    except BankFileError as error:
        fail(f"{source}: {error}")


@payments_app.command("import-status")
def import_status(
    file: Annotated[Path, typer.Argument(help="A pain.002.001.10 status report or camt.054.001.08 notification.")],
    database_url: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Apply a bank report from a file: all of it, or nothing with why."""
    if not file.is_file():
        fail(f"{file}: no such file")
    result = _import(_app(database_url, None), file.read_bytes(), str(file))
    _print_import(result, as_json)


@payments_app.command("fetch")
def fetch(database_url: DbOption = None, country: CountryOption = None, as_json: JsonOption = False) -> None:
    """Take in the reports the bank has ready (the worker does this too). A report that cannot
    be applied is kept with why, for a person, and not asked for again."""
    app = _app(database_url, country)
    results: list[bank_reports.ImportResult] = []
    refused: list[dict[str, str]] = []
    for f in app.bank.files(as_of=wall_clock()):
        with app.engine.begin() as conn:
            taken = bank_reports.take(conn, f, bank=app.bank.name, now=wall_clock())
        app.bank.ack_files([f.name])
        if isinstance(taken, bank_reports.ImportResult):
            results.append(taken)
        else:
            refused.append({"file": f.name, "error": str(taken)})
            err.print(f"[red]refused[/red] {f.name}: {taken}")
    if as_json:
        print(json.dumps({"imported": [asdict(r) for r in results], "refused": refused}))
        return
    for r in results:
        _print_import(r, False)
    if not results and not refused:
        console.print("no reports from the bank")


def _print_import(r: bank_reports.ImportResult, as_json: bool) -> None:
    if as_json:
        print(json.dumps(asdict(r)))
        return
    checked = "schema-valid" if r.validated else "read (no schema directory set)"
    console.print(
        f"{r.kind} {r.message_id} ({checked}): {r.accepted:,} accepted, {r.rejected:,} rejected, "
        f"{r.settled:,} settled, {r.unchanged:,} unchanged; {r.claims:,} recovery claims"
    )


def _tally_row(name: str, t: Tally, status: str = "") -> list[str]:
    def cell(bucket: list[int]) -> str:
        return f"{bucket[0]:,} · {format_azn(bucket[1])}" if bucket[0] else "-"

    return [name, status, cell([t.payments, t.amount]), cell(t.sent), cell(t.accepted), cell(t.rejected),
            cell(t.settled), cell(t.open)]


@payments_app.command("reconcile")
def reconcile_cmd(
    run: Annotated[int | None, typer.Option("--run", help="Only this run.")] = None,
    database_url: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """What was sent, accepted, rejected, settled and is still open, per run and per program."""
    app = _app(database_url, None)
    with app.engine.connect() as conn:
        r = reconcile(conn, run)
    if as_json:
        print(json.dumps(r.as_dict()))
        return
    columns = ("", "status", "all", "sent", "accepted (paid)", "rejected", "settled", "open")
    # The latest runs (by their date); --json has them all, --run one.
    by_date = sorted(r.runs.items(), key=lambda item: (item[0].partition(" ")[2], item[0]))
    shown = by_date[-RUNS_SHOWN:]
    table = Table(*columns, title="per run" + (f" (the latest {len(shown)} of {len(by_date)})"
                                                if len(shown) < len(by_date) else ""))
    for label, tally in shown:
        table.add_row(*_tally_row(label, tally, r.run_status.get(label, "")))
    console.print(table)
    table = Table(*columns, title="per program")
    for program, tally in sorted(r.programs.items()):
        table.add_row(*_tally_row(program, tally))
    table.add_row(*_tally_row("all", r.total))
    console.print(table)
    for status, (n, amount) in sorted(r.recoveries.items()):
        console.print(f"recovery claims {status}: {n:,} · {format_azn(amount)}")


@payments_app.command("rejected")
def rejected_cmd(database_url: DbOption = None, as_json: JsonOption = False) -> None:
    """Payments rejected by the bank or held, waiting for a person."""
    app = _app(database_url, None)
    with app.engine.connect() as conn:
        rows = conn.execute(
            select(payments.c.id, payments.c.fin, payments.c.program_id, payments.c.period,
                   payments.c.amount, payments.c.status, payments.c.reason_code, payments.c.reason,
                   payments.c.iban)
            .where(payments.c.status.in_(("rejected", "held"))).order_by(payments.c.id).limit(500)
        ).all()
    if as_json:
        print(json.dumps({"payments": [dict(r._mapping) for r in rows]}))
        return
    table = Table("payment", "FIN", "program", "period", "amount", "status", "reason", "what to do")
    for r in rows:
        table.add_row(str(r.id), r.fin, r.program_id, r.period, format_azn(r.amount), r.status,
                      r.reason or "", explain_reason(r.reason_code))
    console.print(table)


@payments_app.command("retry")
def retry_cmd(
    payment: Annotated[int, typer.Argument(help="The payment's number.")],
    by: ByOption = "payment office",
    iban: Annotated[str | None, typer.Option("--iban", help="The corrected IBAN.")] = None,
    database_url: DbOption = None,
) -> None:
    """Put a rejected or held payment back for the next run, as a new attempt."""
    app = _app(database_url, None)
    try:
        with app.engine.begin() as conn:
            runs.retry(conn, payment, iban=iban, by=by, now=wall_clock())
    except PaymentError as error:
        fail(str(error))
    console.print(f"payment {payment} scheduled again" + (f" to {iban}" if iban else ""))


@payments_app.command("recoveries")
def recoveries_cmd(
    status: Annotated[str, typer.Option("--status", help="open, returned or written_off")] = "open",
    database_url: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Recovery claims: money paid for periods after a stop."""
    app = _app(database_url, None)
    with app.engine.connect() as conn:
        rows = conn.execute(
            select(recovery_claims).where(recovery_claims.c.status == status).order_by(recovery_claims.c.id).limit(500)
        ).all()
    if as_json:
        print(json.dumps({"claims": [
            {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in r._mapping.items()} for r in rows
        ]}))
        return
    table = Table("claim", "payment", "FIN", "amount", "reason", "since")
    for r in rows:
        table.add_row(str(r.id), str(r.payment_id), r.fin, format_azn(r.amount), r.reason, f"{r.created_at:%Y-%m-%d}")
    console.print(table)


@payments_app.command("recovery")
def recovery_cmd(
    claim: Annotated[int, typer.Argument(help="The claim's number.")],
    by: Annotated[str, typer.Option("--by", help="Who records it.")],
    returned: Annotated[bool, typer.Option("--returned", help="The money came back.")] = False,
    write_off: Annotated[str | None, typer.Option("--write-off", help="Write it off, saying why.")] = None,
    database_url: DbOption = None,
) -> None:
    """Close a recovery claim: returned, or written off with a reason."""
    if returned == (write_off is not None):
        fail("say either --returned or --write-off REASON")
    if write_off is not None and not write_off.strip():
        fail("a write-off says why: --write-off REASON")
    app = _app(database_url, None)
    status = "returned" if returned else "written_off"
    with app.engine.begin() as conn:
        done = conn.execute(
            update(recovery_claims)
            .where(recovery_claims.c.id == claim, recovery_claims.c.status == "open")
            .values(status=status, closed_at=wall_clock(), closed_by=by, note=write_off)
        ).rowcount
    if not done:
        fail(f"no open recovery claim {claim}")
    console.print(f"recovery claim {claim}: {status.replace('_', ' ')}")

