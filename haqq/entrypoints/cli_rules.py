"""``haqq rules``: check the catalogue, run its scenarios, explain a decision, show parameters."""

from __future__ import annotations

import dataclasses
import getpass
import json
from datetime import date, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from haqq.domain.errors import HaqqError
from haqq.domain.money import format_azn
from haqq.entrypoints.common import CountryOption, DbOption, build_app, console, fail
from haqq.pipeline.work import BAKU
from haqq.rules import plain, scenarios
from haqq.rules.catalogue import Catalogue, ScheduleKind, load_catalogue

rules_app = typer.Typer(help="The program catalogue: rules as code.", no_args_is_help=True)

CatalogueOption = Annotated[
    Path | None,
    typer.Option("--catalogue", help="A catalogue directory; default $HAQQ_CATALOGUE or the built-in one"),
]


def _catalogue(directory: Path | None) -> Catalogue:
    import os

    folder = directory or (Path(p) if (p := os.environ.get("HAQQ_CATALOGUE")) else None)
    try:
        return load_catalogue(folder)
    except HaqqError as exc:
        fail(str(exc))


@rules_app.command("check")
def check(
    catalogue: CatalogueOption = None,
    scenario_dir: Annotated[Path | None, typer.Option("--scenarios", help="scenario directory")] = None,
) -> None:
    """Validate every program file (and the scenario files); errors name file, line and what."""
    c = _catalogue(catalogue)
    try:
        loaded = scenarios.load_all(c, scenario_dir)
    except HaqqError as exc:
        fail(str(exc))
    t = Table(title=f"Catalogue {c.version}")
    for col in ("program", "version", "mode", "schedule", "triggers", "checks", "branches", "parameters", "scenarios"):
        t.add_column(col)
    counts = {p: 0 for p in c.programs}
    for item in loaded:
        counts[item.file.program] += len(item.file.scenarios)
    for p in c.programs.values():
        t.add_row(
            p.id, str(p.version), p.mode.value, p.schedule.kind.value,
            ", ".join(e.value for e in p.triggers), str(len(p.table.checks)),
            str(len(p.table.amount)) if p.amount else "-", str(len(p.table.parameters)),
            str(counts[p.id]),
        )
    console.print(t)
    console.print(f"[green]ok[/green]: {len(c.programs)} programs, {sum(counts.values())} scenarios")


@rules_app.command("test")
def test(
    catalogue: CatalogueOption = None,
    scenario_dir: Annotated[Path | None, typer.Option("--scenarios", help="scenario directory")] = None,
    program: Annotated[str | None, typer.Option("--program", help="only this program")] = None,
) -> None:
    """Run every scenario on both backends (the interpreter and the vectorised one)."""
    c = _catalogue(catalogue)
    if program is not None and program not in c.programs:
        fail(f"no program {program!r} in the catalogue (known: {', '.join(sorted(c.programs))})")
    try:
        results = scenarios.run_all(c, scenario_dir, program)
    except HaqqError as exc:
        fail(str(exc))
    t = Table(title="Scenarios, on both backends")
    for col in ("program", "scenarios", "passed", "failed"):
        t.add_column(col)
    for pid, count in scenarios.coverage(c, results).items():
        if program is None or pid == program:
            failed = sum(1 for r in results if r.program == pid and not r.passed)
            t.add_row(pid, str(count), str(count - failed), f"[red]{failed}[/red]" if failed else "0")
    console.print(t)
    bad = [r for r in results if not r.passed]
    for r in bad:
        console.print(
            f"[red]FAIL[/red] {r.program} line {r.line}: {r.name}\n"
            f"  expected    {r.expected}\n  interpreter {r.interpreter}\n  vectorised  {r.vectorised}"
        )
    if bad:
        raise typer.Exit(1)
    console.print(f"[green]ok[/green]: {len(results)} scenarios pass on both backends")


@rules_app.command("params")
def params(program: str, catalogue: CatalogueOption = None) -> None:
    """A program's parameters with their whole history: every value, since when, by which act."""
    c = _catalogue(catalogue)
    try:
        p = c[program]
    except HaqqError as exc:
        fail(str(exc))
    t = Table(title=f"{p.names.en}: parameters")
    for col in ("parameter", "unit", "from", "value", "reference"):
        t.add_column(col)
    for name, parameter in p.parameter_history.items():
        for v in parameter.values:
            shown = format_azn(v.value) if parameter.unit == "qepik" and isinstance(v.value, int) else str(v.value)
            t.add_row(name, parameter.unit, v.from_.isoformat(), shown, v.reference)
    console.print(t)


@rules_app.command("explain")
def explain(
    fin: str,
    program: str,
    on: Annotated[str | None, typer.Option("--date", help="as of this date (YYYY-MM-DD); default today")] = None,
    lang: Annotated[str, typer.Option("--lang", help="az, ru or en")] = "en",
    as_new: Annotated[
        bool, typer.Option("--as-new", help="as if nothing had been assigned yet (ignore 'already paid')")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json")] = False,
    database_url: DbOption = None,
    country: CountryOption = None,
) -> None:
    """What PROGRAM decides for FIN on a date and why, in plain language, from the registries.

    Nothing is assigned or paid; the data read is logged against the person, as read by you.
    """
    from haqq.adapters.store import db
    from haqq.explain import explain as run_explain

    if lang not in plain.LANGUAGES:
        fail(f"--lang {lang!r}: choose one of {', '.join(plain.LANGUAGES)}")
    try:
        day = date.fromisoformat(on) if on else datetime.now(BAKU).date()
    except ValueError:
        fail(f"--date {on!r}: expected YYYY-MM-DD")
    try:
        app = build_app(database_url, country)
        db.ensure_ready(app.engine)
        found = run_explain(app, fin, program, day, requester=f"cli:{getpass.getuser()}", as_new=as_new)
    except HaqqError as exc:
        fail(str(exc))
    prog = app.catalogue[program]
    if as_json:
        console.print_json(json.dumps([dataclasses.asdict(e) for e in found], default=str))
        return
    units = {n: p.unit for n, p in prog.parameter_history.items()}
    for item in found:
        console.rule(f"subject {item.subject_fin} · beneficiary {item.beneficiary_fin}")
        if item.trace is None:
            console.print(f"{item.state}: {item.review_reason}")
            continue
        for line in plain.explain(
            item.trace,
            program_name=getattr(prog.names, lang),
            fin=item.beneficiary_fin,
            lang=lang,
            monthly=prog.schedule.kind is ScheduleKind.MONTHLY,
            legal_basis=item.trace.get("legal_basis"),
            units=units,
            catalogue_version=app.catalogue.version,
        ):
            console.print(line, highlight=False, markup=False)
