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
the person API (``GET /api/v1/persons/{fin}``) and the dashboard page (``GET /dashboard``). The
dashboard is measured from the moment its figures are due for a refresh (the bench waits for
it), so its requests overlap the background recomputation of the figures in the server.
"""

from __future__ import annotations

import os
import platform
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from sqlalchemy import func, select

from bench.pipeline import CACHE, YEAR, cached_country
from haqq.office.dashboard import MAX_AGE as REFRESH

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


@contextmanager
def serve(store: BenchStore, database: Path, *, http_workers: int = 1, timeout: float = 120.0) -> Iterator[str]:
    """``haqq serve --workers 0`` on ``database`` in a child process on a free loopback port."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "HAQQ_DATABASE_URL": f"sqlite:///{database}", "HAQQ_COUNTRY": str(store.country)}
    log = (database.parent / "serve.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "haqq.entrypoints.cli", "serve", "--host", "127.0.0.1", "--port", str(port),
         "--workers", "0", "--http-workers", str(http_workers)],
        stdout=log, stderr=subprocess.STDOUT, env=env,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if httpx.get(f"{url}/login", timeout=2.0).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                log.flush()
                tail = (database.parent / "serve.log").read_text(errors="replace")[-800:]
                raise BenchFailed(f"haqq serve did not start: {tail}")
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def _prepare(database: Path, sample: int, seed: int) -> tuple[list[str], int]:
    """A caseworker's account on the store, and ``sample`` FINs of persons with cases."""
    from haqq.adapters.auth.passwords import add_account
    from haqq.adapters.store import db
    from haqq.adapters.store.schema import cases
    from haqq.domain.access import Role

    engine = db.make_engine(f"sqlite:///{database}")
    try:
        with engine.begin() as conn:
            add_account(conn, ACCOUNT, PASSWORD, role=Role.CASEWORKER, name="Bench Caseworker", fin=None,
                        now=datetime.now(UTC), replace=True)
        with engine.connect() as conn:
            fins = sorted(f for (f,) in conn.execute(select(cases.c.beneficiary_fin).distinct()))
            total = conn.execute(select(func.count()).select_from(cases)).scalar_one()
    finally:
        engine.dispose()
    rng = random.Random(seed)
    return rng.sample(fins, min(sample, len(fins))), int(total)


def _computed_at(url: str, headers: dict[str, str]) -> datetime | None:
    got = httpx.get(f"{url}/api/v1/dashboard", headers=headers, timeout=60.0)
    return datetime.fromisoformat(got.json()["computed_at"]) if got.status_code == 200 else None


@dataclass
class Kind:
    name: str
    path: Callable[[str], str]
    auth: str
    seconds: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    wall: float = 0.0


def _measure(
    url: str, kind: Kind, fins: list[str], *, clients: int, requests: int, headers: dict[str, str],
    cookies: dict[str, str], progress: Progress | None,
) -> None:
    """``requests`` requests of one kind from ``clients`` threads, each with its own connection."""
    lock = threading.Lock()
    taken = [0]

    def client(index: int) -> None:
        with httpx.Client(base_url=url, timeout=60.0, headers=headers if kind.auth == "bearer" else {},
                          cookies=cookies if kind.auth == "cookie" else {}) as http:
            i = index
            while True:
                with lock:
                    if taken[0] >= requests:
                        return
                    taken[0] += 1
                    done = taken[0]
                fin = fins[i % len(fins)]
                i += clients
                began = time.perf_counter()
                response = http.get(kind.path(fin))
                response.read()
                spent = time.perf_counter() - began
                with lock:
                    kind.seconds.append(spent)
                    kind.statuses[response.status_code] = kind.statuses.get(response.status_code, 0) + 1
                if progress and done % 50 == 0:
                    progress(kind.name, done, requests)

    began = time.perf_counter()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    kind.wall = time.perf_counter() - began


def run_bench(
    *, population: int, seed: int = 1, clients: int = 8, requests: int = 1000, build_workers: int = 2,
    http_workers: int = 2, progress: Progress | None = None,
) -> dict[str, Any]:
    """Build (once) the store, serve it, and measure each kind of request."""
    store = cached_store(population, seed, workers=build_workers, progress=progress)
    with tempfile.TemporaryDirectory(prefix="haqq-bench-api-") as tmp:
        # A private copy: the server logs every look at a person in the store.
        database = Path(tmp) / "haqq.db"
        if progress:
            progress("copy", 0, 1)
        shutil.copyfile(store.database, database)
        fins, total_cases = _prepare(database, max(requests, 1000), seed)
        with serve(store, database, http_workers=http_workers) as url:
            signed = httpx.post(f"{url}/login", data={"username": ACCOUNT, "password": PASSWORD},
                                follow_redirects=False, timeout=30.0)
            cookie = signed.cookies.get("haqq_session")
            token = httpx.post(f"{url}/api/v1/auth/token", data={"username": ACCOUNT, "password": PASSWORD},
                               timeout=30.0)
            if cookie is None or token.status_code != 200:
                raise BenchFailed(f"could not sign in: {signed.status_code} {token.status_code} {token.text[:200]}")
            headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
            cookies = {"haqq_session": cookie}
            kinds = [
                Kind("person_page", lambda fin: f"/persons/{fin}", "cookie"),
                Kind("person_api", lambda fin: f"/api/v1/persons/{fin}", "bearer"),
                Kind("dashboard", lambda _fin: "/dashboard", "cookie"),
            ]
            # Warm up (not measured): the dashboard's first computation, the first pages.
            with httpx.Client(base_url=url, timeout=120.0, cookies=cookies) as http:
                began = time.perf_counter()
                http.get("/dashboard")
                first_dashboard = time.perf_counter() - began
                for fin in fins[-20:]:
                    http.get(f"/persons/{fin}")
            figures = httpx.get(f"{url}/api/v1/dashboard", headers=headers, timeout=30.0)
            compute_ms = figures.json().get("compute_ms") if figures.status_code == 200 else None
            held: datetime | None = None
            began_at = ended_at = datetime.now(UTC)
            for kind in kinds:
                if kind.name == "dashboard":
                    # Measured while the figures are recomputed: wait until they are due for a
                    # refresh, so the first request starts one in the background.
                    held = _computed_at(url, headers)
                    if held is not None:
                        time.sleep(max(0.0, (held + REFRESH - datetime.now(UTC)).total_seconds() + 0.5))
                began_at = datetime.now(UTC)
                _measure(url, kind, fins, clients=clients, requests=requests, headers=headers, cookies=cookies,
                         progress=progress)
                ended_at = datetime.now(UTC)
            # The refresh the dashboard's first request started: did it run while measuring?
            after = _computed_at(url, headers)
            deadline = time.monotonic() + 60
            while held is not None and after is not None and after <= held and time.monotonic() < deadline:
                time.sleep(0.2)
                after = _computed_at(url, headers)
            refreshed = held is not None and after is not None and began_at <= after <= ended_at
    out: dict[str, Any] = {
        "persons": population,
        "cases": total_cases,
        "clients": clients,
        "http_workers": http_workers,
        "requests": requests,
        "sampled_fins": len(fins),
        "dashboard_first_ms": round(first_dashboard * 1000, 1),
        "dashboard_compute_ms": compute_ms,
        "dashboard_refresh_during_measure": refreshed,
    }
    for kind in kinds:
        ms = np.asarray(kind.seconds, dtype=float) * 1000
        p50, p95, p99 = (np.percentile(ms, [50, 95, 99]) if ms.size else (0.0, 0.0, 0.0))
        out[f"{kind.name}_p50_ms"] = round(float(p50), 1)
        out[f"{kind.name}_p95_ms"] = round(float(p95), 1)
        out[f"{kind.name}_p99_ms"] = round(float(p99), 1)
        out[f"{kind.name}_per_second"] = round(len(kind.seconds) / kind.wall, 1) if kind.wall else 0.0
        out[f"{kind.name}_statuses"] = {str(k): v for k, v in sorted(kind.statuses.items())}
    out["machine"] = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    return out


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
