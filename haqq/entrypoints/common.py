"""What every command shares: the consoles, the options naming the store and the country, the
progress bar, the one-line error, the composition of haqq from settings."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

if TYPE_CHECKING:
    from haqq.bootstrap import Haqq

# Piped output (CI logs, `make demo | tee`) gets room for the summary tables.
console = Console() if sys.stdout.isatty() else Console(width=130)
err = Console(stderr=True)

DbOption = Annotated[str | None, typer.Option("--database-url", help="SQLAlchemy URL; default $HAQQ_DATABASE_URL or sqlite:///haqq.db")]
CountryOption = Annotated[Path | None, typer.Option("--country", help="The synthetic country's file; default $HAQQ_COUNTRY or country.db")]


@contextmanager
def progress_bar(label: str) -> Iterator[Callable[[int, int], None]]:
    with Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=err, transient=False, disable=not err.is_terminal,
    ) as bar:
        task = bar.add_task(label, total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield update


def fail(message: str) -> NoReturn:
    err.print(f"[red]error:[/red] {message}")
    raise typer.Exit(2)


def build_app(database_url: str | None = None, country: Path | None = None, **kw: Any) -> Haqq:
    from haqq.bootstrap import Settings, build

    settings = Settings.from_env(database_url=database_url, country=country, **kw)
    haqq = build(settings)
    return haqq


