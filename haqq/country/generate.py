"""Generate a synthetic country: its registries and one year of life events, in one SQLite file.

The file is the simulated institutions' own data. haqq's pipeline never reads it directly; it
sees it only through the ports (:mod:`haqq.ports`) implemented in
:mod:`haqq.adapters.institutions.simulated`, and through the event feed (:func:`iter_events`).

The generator works in chunks of whole families (:data:`CHUNK` persons), vectorised with numpy,
so every family link (mother, father, spouse) stays inside a chunk and memory stays bounded
whatever the population. Everything is a pure function of ``(population, seed, year)``.
"""

from __future__ import annotations

import contextlib
import itertools
import multiprocessing
import os
import shutil
import sqlite3
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from haqq.country import snapshot
from haqq.country.arrays import BANK_CODE, MAX_POPULATION, _baku_offset, _keys
from haqq.country.build import _ChunkBuilder
from haqq.country.schema import (
    INDEXES,
    INSTITUTION_DDL,
    REGISTRY_DDL,
    SCHEMA_VERSION,
)

#: Persons generated (and held in memory) at once. Fixed: changing it changes the country.
CHUNK = 100_000
#: Above this many chunks, chunks are built in worker processes (numpy + row building is
#: GIL-bound; SQLite's own work in the parent overlaps with it).
_PARALLEL_FROM_CHUNKS = 5


@dataclass(frozen=True, slots=True)
class CountryInfo:
    """What :func:`generate_country` produced."""

    path: Path
    population: int
    seed: int
    year: int
    events: int
    persons: int


@dataclass(frozen=True, slots=True)
class _ChunkSpec:
    seed: int
    year: int
    population: int
    chunk_no: int
    start: int
    size: int
    offset: str


def _build_and_write(
    conn: sqlite3.Connection, spec: _ChunkSpec, staging: Path
) -> tuple[int, int]:
    """Generate one chunk, insert it through ``conn`` and write its registry snapshot into
    ``staging``; returns (persons, events)."""
    rng = np.random.default_rng([spec.seed, spec.year, spec.population, spec.chunk_no])
    builder = _ChunkBuilder(
        rng=rng,
        keys=_keys(spec.seed),
        start=spec.start,
        size=spec.size,
        population=spec.population,
        chunk_no=spec.chunk_no,
        year=spec.year,
        offset=spec.offset,
    )
    persons, events, accounts = builder.build()
    _write_chunk(conn, persons, events, accounts)
    snapshot.write_chunk(staging, spec.chunk_no, snapshot.chunk_frame(builder))
    return builder.persons_count, len(events)


def _part_path(tmp: Path, chunk_no: int) -> Path:
    return tmp.with_name(f"{tmp.name}.part{chunk_no}")


def _staging(tmp: Path) -> Path:
    """Where the snapshot of the file being written grows until it is complete."""
    return tmp.with_name(f"{tmp.name}.registry")


def _build_part(tmp: Path, spec: _ChunkSpec) -> tuple[int, int]:
    """Worker process: write one chunk into its own small SQLite file, for the parent to merge."""
    part = _part_path(tmp, spec.chunk_no)
    part.unlink(missing_ok=True)
    conn = _connect_for_load(part, cache_mib=4)
    try:
        for ddl in REGISTRY_DDL:
            conn.execute(ddl)
        return _build_and_write(conn, spec, _staging(tmp))
    finally:
        conn.close()


def _chunks(
    conn: sqlite3.Connection, tmp: Path, specs: list[_ChunkSpec]
) -> Iterator[tuple[int, int]]:
    """Generate the chunks into ``conn`` in order, yielding (persons, events) per chunk.

    Small countries are built in-process. Larger ones are built by worker processes, each
    chunk into a part file the parent merges with ``INSERT … SELECT`` (C speed) in chunk
    order, so the result is the same as in-process. At most ``workers + 1`` parts exist at once.
    """
    if len(specs) < _PARALLEL_FROM_CHUNKS:
        for spec in specs:
            yield _build_and_write(conn, spec, _staging(tmp))
        return
    workers = max(1, min(2, os.cpu_count() or 1))
    # spawn, not fork: the caller may run threads (a progress bar), which fork does not copy.
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        window: deque[tuple[_ChunkSpec, Future[tuple[int, int]]]] = deque()
        queue = iter(specs)
        try:
            for spec in itertools.islice(queue, workers + 1):
                window.append((spec, pool.submit(_build_part, tmp, spec)))
            while window:
                spec, future = window.popleft()
                counts = future.result()
                _merge_part(conn, _part_path(tmp, spec.chunk_no))
                nxt = next(queue, None)
                if nxt is not None:
                    window.append((nxt, pool.submit(_build_part, tmp, nxt)))
                yield counts
        finally:
            for _, future in window:
                future.cancel()
            for spec in specs:
                _part_path(tmp, spec.chunk_no).unlink(missing_ok=True)


def _merge_part(conn: sqlite3.Connection, part: Path) -> None:
    conn.execute("ATTACH DATABASE ? AS part", (str(part),))
    try:
        conn.execute("BEGIN")
        conn.execute("INSERT INTO main.persons SELECT * FROM part.persons ORDER BY id")
        conn.execute("INSERT INTO main.life_events SELECT * FROM part.life_events ORDER BY seq")
        conn.execute(
            "INSERT INTO main.bank_accounts SELECT * FROM part.bank_accounts ORDER BY rowid"
        )
        conn.execute("COMMIT")
    finally:
        conn.execute("DETACH DATABASE part")
    part.unlink()


def _write_chunk(
    conn: sqlite3.Connection,
    persons: Iterator[tuple[Any, ...]],
    events: list[tuple[Any, ...]],
    accounts: list[tuple[Any, ...]],
) -> None:
    conn.execute("BEGIN")
    conn.executemany(f"INSERT INTO persons VALUES ({','.join('?' * 28)})", persons)
    conn.executemany(
        "INSERT INTO life_events (seq, id, type, fin, occurred_at, payload, source) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        events,
    )
    conn.executemany("INSERT INTO bank_accounts VALUES (?,?,?,?,?,?,?)", accounts)
    conn.execute("COMMIT")


def _connect_for_load(path: Path, *, cache_mib: int = 64) -> sqlite3.Connection:
    # Written from one writer thread at a time (never concurrently), hence no same-thread check.
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    # A fresh temporary file: nothing to protect until it is complete, so no journal.
    conn.execute("PRAGMA journal_mode=OFF")
    conn.execute("PRAGMA synchronous=OFF")
    # The cache matters for building indexes in the final file; parts are append-only.
    conn.execute(f"PRAGMA cache_size={-1024 * cache_mib}")
    conn.execute("PRAGMA temp_store=FILE")
    return conn


def generate_country(
    path: Path,
    *,
    population: int = 100_000,
    seed: int = 1,
    year: int = 2025,
    progress: Callable[[int, int], None] | None = None,
) -> CountryInfo:
    """Write a synthetic country of ``population`` persons and a year of their life events.

    The file at ``path`` is replaced atomically: everything is written to a temporary file
    next to it, which is renamed over ``path`` only once complete. Deterministic for a given
    ``(population, seed, year)``. ``progress(done, population)`` is called after each chunk.
    """
    if population < 1 or population > MAX_POPULATION:
        raise ValueError(f"population must be between 1 and {MAX_POPULATION:,}, got {population}")
    offset = _baku_offset(year)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    for stale in (tmp, Path(f"{tmp}-wal"), Path(f"{tmp}-shm"), Path(f"{tmp}-journal")):
        stale.unlink(missing_ok=True)
    shutil.rmtree(_staging(tmp), ignore_errors=True)
    specs = [
        _ChunkSpec(seed, year, population, no, start, min(CHUNK, population - start), offset)
        for no, start in enumerate(range(0, population, CHUNK))
    ]
    persons_total = 0
    events_total = 0
    try:
        conn = _connect_for_load(tmp)
        try:
            for ddl in REGISTRY_DDL + INSTITUTION_DDL:
                if "INDEX" not in ddl:
                    conn.execute(ddl)
            for spec, (persons, events) in zip(specs, _chunks(conn, tmp, specs), strict=True):
                persons_total += persons
                events_total += events
                if progress is not None:
                    progress(spec.start + spec.size, population)
            conn.execute("BEGIN")
            for ddl in INDEXES + INSTITUTION_DDL:
                if "INDEX" in ddl:
                    conn.execute(ddl)
            meta = {
                "schema_version": SCHEMA_VERSION,
                "population": str(population),
                "seed": str(seed),
                "year": str(year),
                "persons": str(persons_total),
                "events": str(events_total),
                "bank_code": BANK_CODE,
                "utc_offset": offset,
            }
            conn.executemany("INSERT INTO meta VALUES (?, ?)", sorted(meta.items()))
            conn.execute("COMMIT")
            # A sampled ANALYZE: enough for the planner, seconds cheaper than a full one.
            conn.execute("PRAGMA analysis_limit=400")
            conn.execute("ANALYZE")
            conn.execute("PRAGMA journal_mode=WAL")
        finally:
            conn.close()
        # Any WAL or shared-memory file next to ``path`` belongs to the file being replaced;
        # SQLite would replay it into the new one.
        for stale in (Path(f"{path}-wal"), Path(f"{path}-shm"), Path(f"{path}-journal")):
            stale.unlink(missing_ok=True)
        os.replace(tmp, path)
        snapshot.publish(_staging(tmp), snapshot.snapshot_dir(path))
    except BaseException:
        for leftover in (tmp, Path(f"{tmp}-wal"), Path(f"{tmp}-shm")):
            with contextlib.suppress(OSError):
                leftover.unlink()
        shutil.rmtree(_staging(tmp), ignore_errors=True)
        raise
    return CountryInfo(
        path=path,
        population=population,
        seed=seed,
        year=year,
        events=events_total,
        persons=persons_total,
    )
