"""Nothing lost, nothing twice: a replay killed with SIGKILL at random moments, then restarted.

The replay runs in a real worker process (the ``haqq replay`` command); the test kills it
several times while it works and starts it again. At the end every case is finished, no
entitlement is paid twice for a period, and the gateway sent no notification twice.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from haqq.adapters.store import db
from haqq.adapters.store.schema import case_transitions, sim_clock
from haqq.bootstrap import Settings, build
from tests.helpers import generated_country
from tests.invariants import check_invariants

HAQQ = str(Path(sys.executable).with_name("haqq"))


@pytest.fixture(scope="module")
def country_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generated_country(tmp_path_factory, population=30_000, seed=5)


@pytest.mark.parametrize("workers", [1, 2])
def test_killed_replay_finishes_every_case_once(
    store_url: str, country_file: Path, tmp_path: Path, workers: int
) -> None:
    """With two workers the whole process group (the replay and its workers) is killed."""
    country = tmp_path / "country.db"
    shutil.copyfile(country_file, country)
    env = {**os.environ, "HAQQ_DATABASE_URL": store_url, "HAQQ_COUNTRY": str(country)}
    subprocess.run([HAQQ, "db", "upgrade"], env=env, cwd=tmp_path, check=True, capture_output=True)
    command = [HAQQ, "replay", "--tick-days", "1", "--batch-size", "50", "--workers", str(workers)]
    rng = random.Random(20261126)
    app = build(Settings(database_url=store_url, country=country))
    kills = 0
    progress = []

    def steps() -> int:
        with app.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(case_transitions)).scalar_one())

    for _ in range(6):
        before = steps()
        proc = subprocess.Popen(
            command, env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            start_new_session=True,
        )
        # Kill at a random moment once the run is at work (however long it took to start).
        deadline = time.monotonic() + 60
        while steps() == before and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(rng.uniform(0.05, 1.2))
        if proc.poll() is not None:
            break  # it finished before this kill
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        kills += 1
        progress.append(steps())
    assert kills >= 3, "the replay finished too fast to be killed mid-way; make it bigger"
    assert progress[-1] > 0, "the killed runs made no progress"
    done = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    with app.engine.connect() as conn:
        assert conn.execute(select(sim_clock.c.drain)).scalar_one()
    states = check_invariants(app)
    assert states["closed"] > 50
    # The gateway and the bank may have been asked again with a key they knew (a kill between
    # the hand-over and the commit), but each sent or paid it once.
    assert app.sms.sent_count() == len(set(_keys(country, "sms_sent")))  # type: ignore[attr-defined]
    db.current_revision(app.engine)


def _keys(country: Path, table: str) -> list[str]:
    import sqlite3

    with sqlite3.connect(country) as conn:
        return [k for (k,) in conn.execute(f"SELECT key FROM {table}")]  # noqa: S608
