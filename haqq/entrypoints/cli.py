"""The ``haqq`` command line."""

from __future__ import annotations

import json
import sys
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from haqq.adapters.store import db, reports
from haqq.adapters.store.reconcile import reconcile
from haqq.domain.errors import HaqqError
from haqq.domain.fin import check_fin
from haqq.domain.money import format_azn
from haqq.entrypoints import cli_serve, cli_sweep
from haqq.entrypoints.cli_audit import audit_app
from haqq.entrypoints.cli_bank import bank_app
from haqq.entrypoints.cli_payments import payments_app
from haqq.entrypoints.cli_registries import registries_app
from haqq.entrypoints.cli_rules import rules_app
from haqq.entrypoints.cli_sms import sms_app
from haqq.entrypoints.cli_users import users_app
from haqq.entrypoints.common import (
    CountryOption,
    DbOption,
    console,
    err,
    fail,
    progress_bar,
)
from haqq.entrypoints.common import build_app as _build

_fail = fail

app = typer.Typer(help="haqq: proactive social services, from a life event to a paid benefit.", no_args_is_help=True)
db_app = typer.Typer(help="The store.", no_args_is_help=True)
bench_app = typer.Typer(help="Benchmarks.", no_args_is_help=True)
country_app = typer.Typer(help="The synthetic country.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(bench_app, name="bench")
app.add_typer(country_app, name="country")
app.add_typer(rules_app, name="rules")
app.add_typer(registries_app, name="registries")
app.add_typer(audit_app, name="audit")
app.add_typer(payments_app, name="payments")
app.add_typer(bank_app, name="bank")
app.add_typer(sms_app, name="sms")
app.add_typer(users_app, name="users")
app.command("serve")(cli_serve.serve)
app.add_typer(cli_serve.events_app, name="events")
app.command("sweep")(cli_sweep.sweep_command)
bench_app.command("sweep")(cli_sweep.bench_sweep)
bench_app.command("explain")(cli_sweep.bench_explain)
rules_app.command("whatif")(cli_sweep.whatif_command)

# --- db --------------------------------------------------------------------------------------


@db_app.command("upgrade")
def db_upgrade(database_url: DbOption = None) -> None:
    """Create or migrate the store's schema to the newest revision."""
    engine = db.make_engine(database_url)
    db.upgrade(engine)
    console.print(f"store at schema {db.current_revision(engine)} ({engine.url.render_as_string(hide_password=True)})")


# --- country ---------------------------------------------------------------------------------


@country_app.command("generate")
def country_generate(
    population: Annotated[int, typer.Option(min=100)] = 100_000,
    seed: int = 1,
    year: int = 2025,
    out: Annotated[Path, typer.Option("--out")] = Path("country.db"),
) -> None:
    """Generate a synthetic country and a year of its life events."""
    from haqq.country import generate_country

    with progress_bar(f"generating {population:,} people") as update:
        info = generate_country(out, population=population, seed=seed, year=year, progress=update)
    console.print(f"{info.persons:,} persons and {info.events:,} events of {year} in {out}")


@country_app.command("export")
def country_export(out: Path, country: CountryOption = None) -> None:
    """Export the country's life events as JSONL (the input of 'haqq ingest')."""
    from haqq.country import export_jsonl

    n = export_jsonl(country or Path("country.db"), out)
    console.print(f"{n:,} events written to {out}")


# --- ingest / run ----------------------------------------------------------------------------


@app.command()
def ingest(file: Path, database_url: DbOption = None, country: CountryOption = None) -> None:
    """Take in life events from a JSONL file (one event per line); idempotent by event id."""
    from haqq.pipeline import intake

    if not file.exists():
        _fail(f"{file}: no such file")
    app_ = _build(database_url, country)
    db.ensure_ready(app_.engine)
    report = intake.IntakeReport()
    now = app_.wall()
    chunk: list[tuple[str, Any]] = []

    def flush() -> None:
        parsed = intake.parse_all(chunk, report)
        with app_.engine.begin() as conn:
            report.merge(intake.store(conn, parsed, received_at=now, wall=app_.wall()))
        chunk.clear()

    for item in intake.read_jsonl(file):
        chunk.append(item)
        if len(chunk) >= 5000:
            flush()
    flush()
    for where, reason in report.rejected[:50]:
        err.print(f"[yellow]refused[/yellow] {where}: {reason}")
    if len(report.rejected) > 50:
        err.print(f"... and {len(report.rejected) - 50} more refused")
    console.print(f"accepted {report.accepted}, duplicates {report.duplicates}, refused {len(report.rejected)}")
    if report.rejected:
        raise typer.Exit(1)


@app.command()
def run(
    workers: Annotated[int, typer.Option(min=1, max=64)] = 1,
    follow: Annotated[bool, typer.Option(help="keep running and wait for new work")] = False,
    batch_size: Annotated[int, typer.Option(min=1)] = 1000,
    database_url: DbOption = None,
    country: CountryOption = None,
) -> None:
    """Run the pipeline on the system clock until nothing is due (or forever with --follow).

    With several workers, each takes its share of the events, cases and outbox; on SQLite this
    process runs the payment office (its runs, files and the bank's reports) meanwhile."""
    import multiprocessing
    import time

    from haqq.bootstrap import SystemClock

    app_ = _build(database_url, country)
    db.ensure_ready(app_.engine)
    if workers > 1:
        ctx = multiprocessing.get_context("spawn")
        # On SQLite the payment office is this process's (on PostgreSQL, whichever worker is
        # free takes the office's lock).
        embedded = app_.engine.dialect.name == "sqlite"
        role = "cases" if app_.settings.payments == "runs" and embedded else "all"
        procs = [
            ctx.Process(target=_run_worker, args=(app_.settings, batch_size, follow, i, workers, role))
            for i in range(workers)
        ]
        for p in procs:
            p.start()
        office = app_.worker(SystemClock(), batch_size, role="office") if role == "cases" else None
        while any(p.is_alive() for p in procs):
            if office is None or office.run_once() == 0:
                time.sleep(0.5 if follow else 0.05)
        for p in procs:
            p.join()
        if follow or any(p.exitcode for p in procs):
            raise typer.Exit(1)
        # What the office's last round made due (and the workers did not see) is done here.
        last = app_.worker(SystemClock(), batch_size)
        last.run_until_idle()
        if office is not None:
            console.print(f"the payment office: {office.done}")
        if last.done:
            console.print(f"after the workers: {last.done}")
        return
    _run_worker(app_.settings, batch_size, follow, 0, 1)


def _run_worker(
    settings: Any, batch_size: int, follow: bool, shard: int, shards: int, role: Any = "all"
) -> None:
    from haqq.bootstrap import SystemClock, build

    app_ = build(settings)
    worker = app_.worker(SystemClock(), batch_size, shard=shard, shards=shards, role=role)
    if follow:
        worker.run_forever(stop=lambda: False, idle_sleep=0.5)
    else:
        worker.run_until_idle()
        console.print(f"done: {worker.done}")


# --- person ----------------------------------------------------------------------------------


@app.command()
def person(fin: str, database_url: DbOption = None, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Everything about one person: events, cases and their steps, decisions and reasons,
    entitlements, payments, SMS, and who requested their data and why."""
    try:
        fin = check_fin(fin.strip().upper())
    except HaqqError as exc:
        _fail(str(exc))
    engine = db.make_engine(database_url)
    db.ensure_ready(engine)
    with engine.connect() as conn:
        data = reports.person(conn, fin)
    if as_json:
        console.print_json(json.dumps(data, default=str))
        return
    if not any(data[k] for k in ("events", "cases", "data_access")):
        _fail(f"haqq holds nothing about {fin}")
    _print_person(data)


def _print_person(data: dict[str, Any]) -> None:
    iso = reports.iso
    console.rule(f"[bold]{data['fin']}")
    t = Table(title="Life events", show_lines=False)
    for col in ("when", "event", "source", "id", "status"):
        t.add_column(col)
    for e in data["events"]:
        t.add_row(iso(e["occurred_at"]), e["type"], e["source"], e["source_event_id"], e["status"])
    console.print(t)
    for c in data["cases"]:
        trace = c.get("trace") or {}
        console.print(
            f"\n[bold]case {c['id']}[/bold]  {c['program_id']} v{c['program_version']}  "
            f"beneficiary {c['beneficiary_fin']}  subject {c['subject_fin']}  state [cyan]{c['state']}[/cyan]  "
            f"(catalogue {c['catalogue_version']}, pipeline {c['pipeline_version']})"
        )
        if c.get("outcome"):
            reasons = "; ".join(f"{r['text']} [{r['reference']}]" for r in trace.get("reasons", []))
            console.print(f"  decision: {c['outcome']} {format_azn(c['amount'] or 0)} branch={c['branch']}: {reasons}")
            basis = c.get("legal_basis") or {}
            console.print(f"  legal basis: {basis.get('act')}, {basis.get('article')} {basis.get('url')}")
            for f in trace.get("facts", []):
                console.print(f"  fact {f['name']} = {f['value']} (from {f['source']})")
            for p in trace.get("parameters", []):
                console.print(f"  parameter {p['name']} = {p['value']} (from {p['effective_from']}; {p['reference']})")
            for service, src in (trace.get("sources") or {}).items():
                console.print(f"  data: {service} from {src['institution']}, message {src['message_id']} at {src['answered_at']}")
        if c.get("review_reason"):
            console.print(f"  [yellow]needs review:[/yellow] {c['review_reason']}")
        for s in c["transitions"]:
            console.print(f"    {iso(s['at'])}  {s['source'] or '-':>18} -> {s['target']:<18} {s['cause']}")
    if data["entitlements"]:
        t = Table(title="Entitlements")
        for col in ("program", "schedule", "amount", "from", "to", "status", "note"):
            t.add_column(col)
        for e in data["entitlements"]:
            t.add_row(e["program_id"], e["schedule"], format_azn(e["amount"]), str(e["start_date"]), str(e["end_date"] or ""), e["status"], e["ended_reason"] or "")
        console.print(t)
    if data["payments"]:
        t = Table(title="Payments")
        for col in ("program", "period", "amount", "due", "status", "iban", "note"):
            t.add_column(col)
        for p in data["payments"]:
            t.add_row(p["program_id"], p["period"], format_azn(p["amount"]), iso(p["due_at"]), p["status"], p["iban"] or "", p["reason"] or "")
        console.print(t)
    for r in data["recoveries"]:
        console.print(f"[red]recovery claim[/red] {format_azn(r['amount'])}: {r['reason']} ({r['status']})")
    if data["notifications"]:
        t = Table(title="SMS")
        for col in ("when", "kind", "to", "status", "text"):
            t.add_column(col)
        for n in data["notifications"]:
            t.add_row(iso(n["sent_at"] or n["due_at"]), n["kind"], n["phone"] or "", n["status"], n["text"])
        console.print(t)
    for c in data.get("choices", []):
        console.print(f"[bold]{c['choice']}[/bold] by {c['channel']} on {iso(c['at'])}, case {c['case_id']}"
                      + (f": {c['note']}" if c["note"] else ""))
    t = Table(title="Who requested this person's data, and why")
    for col in ("when", "institution", "service", "by", "case", "purpose", "legal basis", "message", "request hash"):
        t.add_column(col)
    for a in data["data_access"]:
        t.add_row(
            iso(a["at"]), a["institution"], a.get("xroad_service") or a["service"], a.get("user_id") or a["requester"],
            a["case_id"] or "", a["purpose"], a["legal_basis"], a["message_id"][:8], (a.get("request_hash") or "")[:12],
        )
    console.print(t)


# --- demo ------------------------------------------------------------------------------------


@app.command()
def demo(
    population: Annotated[int, typer.Option(min=1000)] = 100_000,
    seed: int = 1,
    year: int = 2025,
    workers: Annotated[int, typer.Option(min=1)] = 1,
    database_url: DbOption = None,
    country: CountryOption = None,
    tick_days: Annotated[int, typer.Option(min=1, max=31)] = 1,
) -> None:
    """Build a synthetic country, replay a year of its life events through the pipeline, and
    print what happened."""
    from haqq.country import generate_country
    from haqq.replay import reset_store

    country_path = country or Path("country.db")
    with progress_bar(f"generating {population:,} people") as update:
        generate_country(country_path, population=population, seed=seed, year=year, progress=update)
    app_ = _build(database_url, country_path, seed=seed)
    db.upgrade(app_.engine)
    reset_store(app_)
    _replay_and_summarise(app_, year, workers, tick_days, batch_size=1000)
    with app_.engine.connect() as conn:
        examples = reports.examples(conn)
        money = reconcile(conn)
    kinds = Counter(label.split()[0] for label in money.runs if label != "(not in a run)")
    t = money.total
    console.print(
        f"payment runs {sum(kinds.values()):,} ({kinds.get('daily', 0):,} daily, {kinds.get('payroll', 0):,} payroll): "
        f"paid {t.accepted[0]:,} = {format_azn(t.accepted[1])} (settled {t.settled[0]:,}), "
        f"rejected {t.rejected[0]:,}, still open {t.open[0]:,}, cancelled by a stop {t.cancelled[0]:,}"
    )
    console.print("\nLook at one person with [bold]haqq person FIN[/bold], for example:")
    for fin, what in examples:
        console.print(f"  haqq person {fin}   # {what}")
    console.print("\nThe rules behind the decisions, and every person against every program:")
    disabled = next((fin for fin, what in examples if "disability" in what), None)
    if disabled:
        console.print(f"  haqq rules explain {disabled} disability_payment --date {year}-12-31 --as-new --lang az")
    console.print(f"  haqq rules test   ·   haqq sweep --date {year}-12-31   ·   "
                  "haqq rules whatif --set child_care_allowance.income_per_member_threshold=30000")
    console.print("\nThe money, run by run, in the bank's ISO 20022 files:")
    console.print("  haqq payments list   ·   haqq payments reconcile   ·   haqq payments rejected")
    console.print("\nWhat citizens were told by SMS, in their language, and what they answered:")
    console.print("  haqq sms status   ·   haqq sms replies   ·   haqq sms templates")
    console.print("\nEvery message exchanged with the registries, the bank and the gateway, hash-chained:")
    console.print("  haqq audit verify   ·   haqq serve   # then /datatracker/v3/findUsage?userCode=FIN: who looked at a person's data")
    _demo_accounts(app_, examples)


def _demo_accounts(app_: Any, examples: list[tuple[str, str]]) -> None:
    """Accounts to sign in to the console with, each with a fresh random password."""
    import secrets

    from haqq.adapters.auth.passwords import add_account
    from haqq.domain.access import Role

    people: list[tuple[str, Role, str, str | None]] = [("caseworker", Role.CASEWORKER, "Caseworker (demo)", None),
              ("supervisor", Role.SUPERVISOR, "Supervisor (demo)", None),
              ("auditor", Role.AUDITOR, "Auditor (demo)", None)]
    people += [(fin, Role.CITIZEN, f"Citizen {fin} (demo)", fin) for fin, _ in examples[:2]]
    made = []
    with app_.engine.begin() as conn:
        for username, role, name, fin in people:
            password = secrets.token_urlsafe(9)
            add_account(conn, username, password, role=role, name=name, fin=fin, now=app_.wall(), replace=True)
            made.append((username, str(role), password))
    console.print("\n[bold]The one-stop shop[/bold]: the caseworkers' console, the dashboard, the citizen's view and the API:")
    console.print("  make serve   (or haqq serve)   # then open http://127.0.0.1:8080/ ; the API's docs: /api/v1/docs")
    console.print("  sign in as (username / password, made for this demo):")
    for username, kind, password in made:
        console.print(f"    {username:<12} {password:<14} {kind}")


@app.command("replay")
def replay_cmd(
    year: int = 2025,
    workers: Annotated[int, typer.Option(min=1)] = 1,
    tick_days: Annotated[int, typer.Option(min=1, max=31)] = 1,
    batch_size: Annotated[int, typer.Option(min=1)] = 1000,
    database_url: DbOption = None,
    country: CountryOption = None,
) -> None:
    """Replay the country's year into the store on a simulated clock; resumes if interrupted."""
    app_ = _build(database_url, country)
    db.ensure_ready(app_.engine)
    _replay_and_summarise(app_, year, workers, tick_days, batch_size)


def _replay_and_summarise(app_: Any, year: int, workers: int, tick_days: int, batch_size: int) -> None:
    from haqq.replay import replay

    with progress_bar(f"replaying {year}") as update:
        result = replay(
            app_, year=year, workers=workers, tick=timedelta(days=tick_days),
            batch_size=batch_size, progress=update,
        )
    with app_.engine.connect() as conn:
        s = reports.summary(conn)
    print_summary(s, result.wall_seconds, result.events)


def print_summary(s: reports.Summary, wall_seconds: float, events: int) -> None:
    t = Table(title="Life events")
    t.add_column("event")
    t.add_column("count", justify="right")
    for k, v in sorted(s.events.items()):
        t.add_row(k, f"{v:,}")
    console.print(t)
    states = sorted({st for v in s.cases.values() for st in v})
    t = Table(title="Cases by program and outcome")
    t.add_column("program")
    for st in states:
        t.add_column(st.replace("_", " "), justify="right")
    t.add_column("payments", justify="right")
    t.add_column("paid", justify="right")
    for program, by_state in sorted(s.cases.items()):
        n, total = s.paid.get(program, (0, 0))
        t.add_row(program, *[f"{by_state.get(st, 0):,}" for st in states], f"{n:,}", format_azn(total))
    console.print(t)
    console.print(
        f"accounts opened {s.accounts_opened:,} (refused {s.accounts_refused:,}); SMS sent {s.sms_sent:,} "
        f"{dict(sorted(s.sms_by_kind.items()))}; replies {s.replies}; recovery claims {s.recoveries[0]:,} = {format_azn(s.recoveries[1])}"
    )
    if s.latency_sim_hours:
        ls, lw = s.latency_sim_hours, s.latency_wall_ms
        console.print(
            f"event to SMS, simulated time: median {ls['p50']:.1f} h, p95 {ls['p95']:.1f} h; "
            f"wall time: median {lw['p50']:.0f} ms, p95 {lw['p95']:.0f} ms"
        )
    console.print(
        f"replayed {events:,} events into {s.cases_total:,} cases in {wall_seconds:.1f} s "
        f"({s.cases_finished() / max(wall_seconds, 1e-9):,.0f} cases/s)"
    )


# --- bench -----------------------------------------------------------------------------------


@bench_app.command("pipeline")
def bench_pipeline(
    population: Annotated[int, typer.Option(min=1000)] = 1_000_000,
    workers: Annotated[int, typer.Option(min=1)] = 1,
    seed: int = 1,
    tick_days: Annotated[
        int, typer.Option(min=1, max=31, help="simulated days taken in per round (batching only)")
    ] = 7,
    batch_size: Annotated[int, typer.Option(min=10)] = 1000,
    registries: Annotated[
        str, typer.Option(help="simulated (direct calls), xroad (X-Road in-process) or http (X-Road over HTTP)")
    ] = "xroad",
    payments: Annotated[
        str, typer.Option(help="runs (payment runs as ISO 20022 files, the default) or direct (batch transfers)")
    ] = "runs",
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Replay the synthetic year through the full pipeline and measure it."""
    from bench.pipeline import run_bench

    figures = run_bench(
        population=population, workers=workers, seed=seed, tick_days=tick_days, batch_size=batch_size,
        progress=not as_json, registries=registries, payments=payments,
    )
    if as_json:
        sys.stdout.write(json.dumps(figures) + "\n")
    else:
        for key, value in figures.items():
            console.print(f"{key:>26}: {value}")


@bench_app.command("notify")
def bench_notify(
    notifications: Annotated[int, typer.Option("--notifications", min=100, help="notifications composed and submitted")] = 100_000,
    gateway: Annotated[str, typer.Option(help="simulated (in-process), or kannel: also through a real Kannel on loopback")] = "simulated",
    kannel_messages: Annotated[int, typer.Option(min=1, help="messages sent through Kannel")] = 2_000,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Compose and submit notifications in mixed languages, and how fast."""
    from bench.notify import run_bench

    if gateway not in ("simulated", "kannel"):
        fail(f"--gateway {gateway!r}: choose simulated or kannel")
    try:
        with progress_bar("notify") as update:
            figures = run_bench(n=notifications, gateway=gateway, kannel_messages=kannel_messages,
                                progress=None if as_json else (lambda _stage, done, total: update(done, total)))
    except HaqqError as exc:
        fail(str(exc))
    if as_json:
        sys.stdout.write(json.dumps(figures) + "\n")
    else:
        for key, value in figures.items():
            console.print(f"{key:>26}: {value}")


@bench_app.command("payroll")
def bench_payroll(
    entitlements: Annotated[int, typer.Option(min=1, help="recurring entitlements paid")] = 1_000_000,
    file_max: Annotated[int, typer.Option(min=1, help="payments per pain.001 file")] = 100_000,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """A monthly payroll from the store to validated pain.001 files, and how long it takes."""
    from bench.payroll import run_bench

    with progress_bar("payroll") as update:
        figures = run_bench(entitlements_n=entitlements, file_max=file_max,
                            progress=None if as_json else (lambda _stage, done, total: update(done, total)))
    if as_json:
        sys.stdout.write(json.dumps(figures) + "\n")
    else:
        for key, value in figures.items():
            console.print(f"{key:>24}: {value}")


@bench_app.command("api")
def bench_api(
    population: Annotated[int, typer.Option(min=1000, help="persons of the country whose year the store holds")] = 1_000_000,
    clients: Annotated[int, typer.Option(min=1, max=256, help="concurrent clients")] = 8,
    requests: Annotated[int, typer.Option(min=10, help="requests of each kind")] = 1000,
    http_workers: Annotated[int, typer.Option(min=1, max=16, help="haqq serve's HTTP processes")] = 2,
    seed: int = 1,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """The person page, the person API and the dashboard under concurrent clients, served by
    haqq serve on the store of a whole country after its year (built once and cached)."""
    from bench.api import BenchFailed, run_bench

    try:
        with progress_bar("bench api") as update:
            figures = run_bench(population=population, seed=seed, clients=clients, requests=requests,
                                http_workers=http_workers, progress=None if as_json else (lambda _stage, done, total: update(done, total)))
    except (BenchFailed, HaqqError) as exc:
        fail(str(exc))
    if as_json:
        sys.stdout.write(json.dumps(figures) + "\n")
    else:
        for key, value in figures.items():
            console.print(f"{key:>34}: {value}")


def main() -> None:
    """The console script: errors haqq raises on purpose are a message, never a traceback."""
    from haqq.bootstrap import configure_logging

    configure_logging()
    try:
        app()
    except HaqqError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
