"""The sweep's commands: ``haqq sweep``, ``haqq rules whatif``, ``haqq bench sweep|explain``.

The functions are registered on the application in :mod:`haqq.entrypoints.cli`.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from haqq.domain.errors import HaqqError
from haqq.domain.money import format_azn
from haqq.entrypoints.common import CountryOption, DbOption, console, err, fail

T = TypeVar("T")

DateOption = Annotated[
    str | None, typer.Option("--date", help="the date to sweep as of (YYYY-MM-DD); default today in Baku")
]
ProgramOption = Annotated[str | None, typer.Option("--program", help="sweep only this program")]
OutOption = Annotated[
    Path | None,
    typer.Option("--out", help="report files without suffix (.parquet and .csv are written); default reports/<kind>-<date>"),
]


def _guarded(work: Callable[[], T]) -> T:
    """Run ``work``; an error haqq raises on purpose is one line and exit code 2."""
    try:
        return work()
    except HaqqError as exc:
        fail(str(exc))


@contextmanager
def _steps(total: int | None = None) -> Iterator[Callable[[str], None]]:
    """A progress display on the terminal (stderr): one line per step, the time spent."""
    with Progress(
        SpinnerColumn(), TextColumn("[bold]{task.description}"), TimeElapsedColumn(),
        console=err, transient=True, disable=not err.is_terminal,
    ) as bar:
        task = bar.add_task("starting", total=total)

        def step(text: str) -> None:
            bar.update(task, description=text, advance=1)

        yield step


def _day(text: str | None) -> date:
    from haqq.country.schema import BAKU
    from haqq.sweep.run import parse_date

    return parse_date(text) if text else datetime.now(BAKU).date()


def _settings(database_url: str | None, country: Path | None) -> Any:
    from haqq.bootstrap import Settings

    return Settings.from_env(database_url=database_url, country=country)


def _catalogue(settings: Any) -> Any:
    from haqq.rules.catalogue import load_catalogue

    return load_catalogue(settings.catalogue_dir)


# --- haqq sweep ------------------------------------------------------------------------------


def sweep_command(
    date_: DateOption = None,
    program: ProgramOption = None,
    out: OutOption = None,
    open_cases: Annotated[
        bool, typer.Option("--open-cases", help="start a case for every missed right (idempotent)")
    ] = False,
    database_url: DbOption = None,
    country: CountryOption = None,
) -> None:
    """Evaluate everyone against every program as of a date and compare with what is assigned:
    missed rights, no longer entitled, wrong amounts (report in Parquet and CSV)."""
    _guarded(lambda: _sweep(date_, program, out, open_cases, database_url, country))


def _sweep(
    date_: str | None, program: str | None, out: Path | None, open_cases: bool,
    database_url: str | None, country: Path | None,
) -> None:
    from haqq.adapters.store import db
    from haqq.bootstrap import wall_clock
    from haqq.sweep import report
    from haqq.sweep.run import run

    day = _day(date_)
    settings = _settings(database_url, country)
    catalogue = _catalogue(settings)
    engine = db.make_engine(settings.database_url)
    db.ensure_ready(engine)
    with _steps() as step:
        result = run(catalogue, settings.country, day, engine=engine, program_id=program, step=step)
        parquet, csv = report.write(result.findings, out, day)
        opened = None
        if open_cases:
            step("opening cases for the missed rights")
            opened = report.open_cases(engine, result.registry, catalogue, result.findings, day, wall_clock())
    rows = report.summary(catalogue, result.evaluation, result.findings)
    _print_sweep(day, rows, result.evaluation.defaulted)
    console.print(f"{result.findings.height:,} findings written to {parquet} and {csv}")
    if opened is not None:
        console.print(
            f"cases opened for missed rights: {opened.accepted:,} new events "
            f"({opened.duplicates:,} already opened)"
        )
    engine.dispose()


def _print_sweep(day: date, rows: list[Any], defaulted: tuple[str, ...]) -> None:
    t = Table(title=f"Sweep as of {day.isoformat()}")
    for name in ("program", "universe", "granted", "denied", "needs review", "missed",
                 "no longer entitled", "wrong amount", "monthly cost", "lump sums"):
        t.add_column(name, justify="left" if name == "program" else "right")
    for r in rows:
        t.add_row(
            r.program, f"{r.universe:,}", f"{r.granted:,}", f"{r.denied:,}", f"{r.needs_review:,}",
            f"{r.missed:,}", f"{r.no_longer:,}", f"{r.wrong_amount:,}",
            format_azn(r.amount) if r.monthly else "", "" if r.monthly else format_azn(r.amount),
        )
    console.print(t)
    if defaulted:
        console.print(
            "[yellow]not in the registry snapshot, read as their default:[/yellow] " + ", ".join(defaulted)
        )


# --- haqq rules whatif -----------------------------------------------------------------------


def whatif_command(
    set_: Annotated[
        list[str],
        typer.Option("--set", help="PARAM=VALUE: 'program.parameter' or a bare parameter name; "
                     "an integer in minor units (or months, years) or a date"),
    ],
    from_: Annotated[
        str | None, typer.Option("--from", help="the date the change takes effect; default the sweep date")
    ] = None,
    date_: Annotated[
        str | None, typer.Option("--date", help="the date to evaluate as of; default --from, else today")
    ] = None,
    program: ProgramOption = None,
    out: OutOption = None,
    country: CountryOption = None,
) -> None:
    """Sweep with changed parameters: the change in beneficiaries and yearly cost per program."""
    _guarded(lambda: _whatif(set_, from_, date_, program, out, country))


def _whatif(
    settings_: list[str], from_: str | None, date_: str | None, program: str | None,
    out: Path | None, country: Path | None,
) -> None:
    from haqq.sweep import report
    from haqq.sweep.evaluate import load, swept
    from haqq.sweep.run import parse_date
    from haqq.sweep.whatif import changed_tables, parse_settings, whatif

    start = parse_date(from_, "--from") if from_ else None
    day = parse_date(date_) if date_ else (start or _day(None))
    start = start or day
    settings = _settings(None, country)
    catalogue = _catalogue(settings)
    programs = swept(catalogue, program)
    tables = changed_tables(programs, parse_settings(settings_), start)
    with _steps() as step:
        step("reading the registry snapshot")
        registry = load(settings.country, day, programs, catalogue.schema, tables)
        step("evaluating before and after")
        result = whatif(registry, programs, tables)
        parquet, csv = report.write(result, out, day, stem="whatif")
    t = Table(title=f"What if {', '.join(settings_)} from {start.isoformat()} (as of {day.isoformat()})")
    for name in ("program", "beneficiaries before", "after", "change", "yearly cost before", "after", "change"):
        t.add_column(name, justify="left" if name == "program" else "right")
    for r in result.iter_rows(named=True):
        t.add_row(
            r["program"], f"{r['beneficiaries_before']:,}", f"{r['beneficiaries_after']:,}",
            f"{r['beneficiaries_delta']:+,}", format_azn(r["yearly_cost_before"]),
            format_azn(r["yearly_cost_after"]), _signed_azn(r["yearly_cost_delta"]),
        )
    console.print(t)
    total = int(result["yearly_cost_delta"].sum())
    console.print(f"change in yearly cost, all programs: {_signed_azn(total)}")
    console.print(f"written to {parquet} and {csv}")


def _signed_azn(amount: int) -> str:
    return ("+" if amount > 0 else "-" if amount < 0 else "") + format_azn(abs(amount))


# --- benchmarks ------------------------------------------------------------------------------


def _figures(figures: dict[str, Any], as_json: bool) -> None:
    if as_json:
        sys.stdout.write(json.dumps(figures) + "\n")
    else:
        for key, value in figures.items():
            console.print(f"{key:>24}: {value}")


def bench_sweep(
    population: Annotated[int, typer.Option(min=1000)] = 10_200_000,
    seed: int = 1,
    no_openfisca: Annotated[
        bool, typer.Option("--no-openfisca", help="skip the comparison with OpenFisca")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Load the registry snapshot and sweep every program; compare the disability payment with
    OpenFisca on the same persons."""
    from bench.sweep import run_bench

    figures = _guarded(
        lambda: run_bench(population=population, seed=seed, openfisca=not no_openfisca, progress=not as_json)
    )
    _figures(figures, as_json)


def bench_explain(
    population: Annotated[int, typer.Option(min=1000)] = 1_000_000,
    persons: Annotated[int, typer.Option(min=100, help="how many persons to decide with a trace")] = 100_000,
    seed: int = 1,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Decide persons of the snapshot one by one with the interpreter and its trace."""
    from bench.explain import run_bench

    figures = _guarded(lambda: run_bench(population=population, persons=persons, seed=seed))
    _figures(figures, as_json)
