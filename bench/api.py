"""``haqq bench api``: the one-stop shop's pages and API under concurrent clients, on the store
of a whole country after its year.

Set up once, not timed, and cached in ``.bench-cache/api-<population>-<seed>/``: the synthetic
country (shared with ``haqq bench pipeline``) and a SQLite store holding its year replayed
through the pipeline (institutions called directly, two workers: the fastest path). A store is
used only once complete (a ``done`` marker beside it); an interrupted build resumes.

Measured: ``haqq serve --workers 0`` in a child process on a free loopback port over that store,
accounts for a caseworker made with their password (the console's session cookie) and a bearer
token; then ``--clients`` threads, each with its own connection, ask for ``--requests`` pages of
each kind, over persons sampled from those with cases: the person page (``GET /persons/{fin}``),
the person API (``GET /api/v1/persons/{fin}``) and the dashboard page (``GET /dashboard``).
"""

from __future__ import annotations

import os
import platform
import random
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, select

from bench.pipeline import CACHE, YEAR, cached_country

Progress = Callable[[str, int, int], None]

KINDS = ("person_page", "person_api", "dashboard")
ACCOUNT = "bench-caseworker"
PASSWORD = "bench-caseworker-password"  # noqa: S105 - a throwaway account on the bench's own store


class BenchFailed(RuntimeError):
    pass


@dataclass(frozen=True)
class BenchStore:
    directory: Path
    country: Path
    database: Path

    @property
    def url(self) -> str:
        return f"sqlite:///{self.database}"


def store_paths(population: int, seed: int) -> BenchStore:
    directory = CACHE / f"api-{population}-{seed}-{YEAR}"
    return BenchStore(directory, directory / "country.db", directory / "haqq.db")


def cached_store(
    population: int, seed: int, *, workers: int = 2, progress: Progress | None = None
) -> BenchStore:
    """The store of the country of ``population`` after its year; built once, then reused."""
    from haqq.adapters.store import db
    from haqq.bootstrap import Settings, build
    from haqq.replay import replay, reset_store

    paths = store_paths(population, seed)
    done = paths.directory / "done"
    if done.exists():
        return paths
    paths.directory.mkdir(parents=True, exist_ok=True)
    if progress:
        progress("country", 0, 1)
    source = cached_country(population, seed)
    if not paths.country.exists():
        shutil.copyfile(source, paths.country.with_suffix(".tmp"))
        paths.country.with_suffix(".tmp").rename(paths.country)
    app = build(Settings(
        database_url=paths.url, country=paths.country, seed=seed, registries="simulated", payments="runs",
    ))
    fresh = not paths.database.exists()
    db.upgrade(app.engine)
    if fresh:
        reset_store(app)
    began = time.perf_counter()
    result = replay(
        app, year=YEAR, workers=workers, tick=timedelta(days=7), batch_size=1000,
        progress=(lambda done_, total: progress("replay", done_, total)) if progress else None,
    )
    app.engine.dispose()
    done.write_text(f"replayed {result.events} events in {time.perf_counter() - began:.1f} s\n")
    return paths


def main() -> None:
    """Build the store from the command line: ``python -m bench.api POPULATION``."""
    population = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    last = [0.0]

    def say(stage: str, done_: int, total: int) -> None:
        if time.monotonic() - last[0] > 10 or done_ == total:
            last[0] = time.monotonic()
            print(f"{time.strftime('%H:%M:%S')} {stage} {done_}/{total}", flush=True)

    began = time.perf_counter()
    paths = cached_store(population, 1, progress=say)
    print(f"store {paths.database} ready in {time.perf_counter() - began:.1f} s", flush=True)


if __name__ == "__main__":
    main()
