"""``haqq bench pipeline``: a synthetic year through the full pipeline, intake to SMS.

The country is generated once per (population, seed) and cached; each run starts from a copy
of it and an empty store (a fresh SQLite file, or the PostgreSQL of ``HAQQ_DATABASE_URL``).
"""

from __future__ import annotations

import os
import platform
import shutil
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

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


def run_bench(
    *, population: int, workers: int, seed: int, tick_days: int, batch_size: int, progress: bool
) -> dict[str, Any]:
    source = cached_country(population, seed)
    with tempfile.TemporaryDirectory(prefix="haqq-bench-") as tmp:
        country = Path(tmp) / "country.db"
        shutil.copyfile(source, country)
        url = os.environ.get("HAQQ_DATABASE_URL") or f"sqlite:///{Path(tmp) / 'haqq.db'}"
        app = build(Settings(database_url=url, country=country, seed=seed, batch_size=batch_size))
        db.upgrade(app.engine)
        reset_store(app)
        began = time.perf_counter()
        result = replay(app, year=YEAR, workers=workers, tick=timedelta(days=tick_days), batch_size=batch_size)
        wall = time.perf_counter() - began
        with app.engine.connect() as conn:
            finished = conn.execute(
                select(func.count()).select_from(cases).where(cases.c.state.in_([s.value for s in RESTING]))
            ).scalar_one()
            total = conn.execute(select(func.count()).select_from(cases)).scalar_one()
            sim, wall_lat = reports.first_sms_latencies(conn)
        app.engine.dispose()
    lat = reports.percentiles(wall_lat, 1000)
    sim_h = reports.percentiles(sim, 1 / 3600)
    return {
        "store": app.engine.dialect.name,
        "workers": workers,
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
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
    }
