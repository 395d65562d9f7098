"""``haqq bench pipeline``: a synthetic year through the full pipeline, intake to SMS.

The country is generated once per (population, seed) and cached; each run starts from a copy
of it and an empty store (a fresh SQLite file, or the PostgreSQL of ``HAQQ_DATABASE_URL``).
"""

from __future__ import annotations

import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, select

from haqq.adapters.store import db, reports
from haqq.adapters.store.schema import cases
from haqq.bootstrap import Settings, build
from haqq.country import generate_country
from haqq.domain.cases import RESTING
from haqq.replay import replay, reset_store

YEAR = 2025
CACHE = Path(os.environ.get("HAQQ_BENCH_CACHE", ".bench-cache"))


def cached_country(population: int, seed: int) -> Path:
    CACHE.mkdir(parents=True, exist_ok=True)
    path = CACHE / f"country-{population}-{seed}-{YEAR}.db"
    if not path.exists():
        generate_country(path, population=population, seed=seed, year=YEAR)
    return path


def _cpu_seconds() -> float:
    """CPU time of this process and of its children that have ended (the replay's workers,
    joined when it returns)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def _machine_ticks() -> tuple[int, int] | None:
    """(busy, all) CPU ticks of the whole machine since boot (every process, the database server
    too), from the kernel's ``/proc/stat`` on Linux; None elsewhere."""
    try:
        with open("/proc/stat", encoding="ascii") as stat:
            fields = [int(x) for x in stat.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = sum(fields[3:5])  # idle and iowait
    return sum(fields) - idle, sum(fields)


class RegistriesFailed(RuntimeError):
    pass


@contextmanager
def serve_registries(country: Path, *, timeout: float = 30.0) -> Iterator[str]:
    """``haqq registries serve`` over ``country`` in a child process on a free port; its URL."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "haqq.entrypoints.cli", "registries", "serve",
         "--port", str(port), "--country", str(country)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=1.0).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                err = proc.stderr.read().decode() if proc.stderr else ""
                raise RegistriesFailed(f"haqq registries serve did not start: {err[-500:]}")
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def run_bench(
    *,
    population: int,
    workers: int,
    seed: int,
    tick_days: int,
    batch_size: int,
    progress: bool,
    registries: str = "xroad",
    payments: str = "runs",
) -> dict[str, Any]:
    source = cached_country(population, seed)
    with tempfile.TemporaryDirectory(prefix="haqq-bench-") as tmp, ExitStack() as stack:
        country = Path(tmp) / "country.db"
        shutil.copyfile(source, country)
        url = os.environ.get("HAQQ_DATABASE_URL") or f"sqlite:///{Path(tmp) / 'haqq.db'}"
        xroad_url = None
        if registries == "http":
            xroad_url = os.environ.get("HAQQ_XROAD_URL") or stack.enter_context(serve_registries(country))
        app = build(Settings(
            database_url=url, country=country, seed=seed, batch_size=batch_size,
            registries=registries, xroad_url=xroad_url, payments=payments,
        ))
        db.upgrade(app.engine)
        reset_store(app)
        began, cpu, ticks = time.perf_counter(), _cpu_seconds(), _machine_ticks()
        result = replay(app, year=YEAR, workers=workers, tick=timedelta(days=tick_days), batch_size=batch_size)
        wall = time.perf_counter() - began
        cpu = _cpu_seconds() - cpu
        ticks_after = _machine_ticks()
        busy = None
        if ticks is not None and ticks_after is not None and ticks_after[1] > ticks[1]:
            busy = round((ticks_after[0] - ticks[0]) / (ticks_after[1] - ticks[1]), 3)
        with app.engine.connect() as conn:
            finished = conn.execute(
                select(func.count()).select_from(cases).where(cases.c.state.in_([s.value for s in RESTING]))
            ).scalar_one()
            total = conn.execute(select(func.count()).select_from(cases)).scalar_one()
            sim, wall_lat = reports.first_sms_latencies(conn)
        app.engine.dispose()
    turns = result.write_turns
    lat = reports.percentiles(wall_lat, 1000)
    sim_h = reports.percentiles(sim, 1 / 3600)
    return {
        "store": app.engine.dialect.name,
        "workers": workers,
        "registries": registries,
        "payments": payments,
        "tick_days": tick_days,
        "population": population,
        "events": result.events,
        "cases": total,
        "cases_finished": finished,
        "wall_seconds": round(wall, 3),
        "cases_per_second": round(finished / wall, 1),
        "events_per_second": round(result.events / wall, 1),
        "latency_p50_ms": round(lat.get("p50", 0.0), 1),
        "latency_p95_ms": round(lat.get("p95", 0.0), 1),
        "latency_p99_ms": round(lat.get("p99", 0.0), 1),
        "sim_latency_p50_hours": round(sim_h.get("p50", 0.0), 2),
        "sim_latency_p95_hours": round(sim_h.get("p95", 0.0), 2),
        "sim_latency_p99_hours": round(sim_h.get("p99", 0.0), 2),
        # Whether the machine was the limit: haqq's own processes (not the database server's),
        # in CPU-seconds and in cores kept busy on average; the share of all the machine's CPU
        # time that was busy (every process; Linux only, else None).
        "cpu_seconds": round(cpu, 1),
        "cores_busy": round(cpu / wall, 2),
        "machine_busy_share": busy,
        # SQLite's one writer: the seconds haqq's processes held the store's write lock in turn
        # (never more than the replay's), its share of the replay, and the seconds they waited
        # for it, summed over the processes (None on PostgreSQL).
        "write_lock_turns": None if turns is None else turns.turns,
        "write_lock_held_seconds": None if turns is None else round(turns.held, 1),
        "write_lock_held_share": None if turns is None else round(turns.held / wall, 3),
        "write_lock_waited_seconds": None if turns is None else round(turns.waited, 1),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
    }
