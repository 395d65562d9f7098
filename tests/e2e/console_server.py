"""The harness of the one-stop shop's end-to-end tests: a small country replayed into a SQLite
store, accounts for every role, and ``haqq serve`` running on it in a subprocess.

- :func:`replayed_year` (session): ``haqq demo`` on a small country (generated once, replayed
  once); each module serving it works on its own copy (:func:`store_copy`), since the pipeline,
  the people in the browser and the fuzzer all write to it.
- :func:`console_server` (module): the copy, the accounts (``haqq users add``), the cases of
  interest found by SQL, and ``haqq serve --workers 1`` on a free port; yields a
  :class:`ConsoleServer` and stops the server at the end.
- :func:`chromium_or_skip`: the browser tests need Debian's Chromium; without it they skip,
  except in CI (``CI=true``) where a skipped browser test is a failure (as PostgreSQL's, see
  ``tests/conftest.py``).

The fixtures are made visible to the e2e tests by ``tests/e2e/conftest.py``.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import closing, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import IN_CI

SCRIPT = Path(sys.executable).with_name("haqq")
COMMAND = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "haqq.entrypoints.cli"]
REPO = Path(__file__).resolve().parents[2]

#: The small country of the console tests: a year of it gives cases in every state the pages
#: show (needs_review, denied, active monthly benefits, lapsed, declined) in about ten seconds.
POPULATION = 3_000
SEED = 7
YEAR = 2025

#: A review decision granting more than this needs a supervisor (HAQQ_REVIEW_APPROVAL_AZN); the
#: tests grant :data:`GRANT_AZN`.
REVIEW_APPROVAL_AZN = "100"
GRANT_AZN = "150.00"

#: Where the browser tests leave their screenshots (HAQQ_TEST_ARTIFACTS overrides).
ARTIFACTS = Path(os.environ.get("HAQQ_TEST_ARTIFACTS") or REPO / "test-artifacts" / "screenshots")

#: haqq serve takes registries' pushes too; the tests push none, but it wants their keys.
EVENT_KEYS = '{"receiver_id": "haqq.gov.az"}'

CHROMIUM = Path(os.environ.get("HAQQ_CHROMIUM", "/usr/bin/chromium"))


def browser_problem() -> str:
    """Why the browser tests cannot run here ("" when they can)."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the Python package playwright is not installed (pip install -e '.[dev]')"
    if not (CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK)):
        return f"no Chromium at {CHROMIUM} (apt-get install chromium, or set HAQQ_CHROMIUM)"
    return ""


def chromium_or_skip() -> Path:
    """Debian's Chromium (and Playwright to drive it), else a skip; a failure in CI."""
    problem = browser_problem()
    if problem:
        if IN_CI:
            pytest.fail(f"CI=true but the browser tests cannot run: {problem}")
        pytest.skip(f"browser tests: {problem}")
    return CHROMIUM


# --- running haqq ---------------------------------------------------------------------------------


def haqq_env(store: Path, country: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a haqq command on ``store``: no inherited HAQQ_* settings, only ours."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HAQQ_")}
    env.update({
        "COLUMNS": "250",
        "HAQQ_DATABASE_URL": f"sqlite:///{store}",
        "HAQQ_COUNTRY": str(country),
        "HAQQ_SMS_QUIET": "off",
        "HAQQ_EVENT_KEYS": EVENT_KEYS,
        "HAQQ_REVIEW_APPROVAL_AZN": REVIEW_APPROVAL_AZN,
    })
    env.update(extra or {})
    return env


def run_haqq(*args: str, cwd: Path, env: Mapping[str, str], timeout: float = 300) -> str:
    """``haqq ARGS``; its stdout, or a failure with everything it said."""
    result = subprocess.run([*COMMAND, *args], cwd=cwd, env=dict(env), capture_output=True, text=True,
                            timeout=timeout, check=False)
    if result.returncode != 0 or "Traceback" in result.stderr:
        pytest.fail(f"haqq {' '.join(args)}: exit {result.returncode}\n{result.stdout}\n{result.stderr}")
    return result.stdout


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- the replayed year ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ReplayedYear:
    """A country file and a store holding its replayed year (never served: copy it first)."""

    folder: Path
    country: Path
    store: Path


def replay_year(folder: Path) -> ReplayedYear:
    country, store = folder / "country.db", folder / "haqq.db"
    run_haqq("demo", "--population", str(POPULATION), "--seed", str(SEED), "--year", str(YEAR),
             "--database-url", f"sqlite:///{store}", "--country", str(country),
             cwd=folder, env=haqq_env(store, country))
    return ReplayedYear(folder=folder, country=country, store=store)


@pytest.fixture(scope="session")
def replayed_year(tmp_path_factory: pytest.TempPathFactory) -> ReplayedYear:
    """The small country's year, replayed once per session (``haqq demo``, about ten seconds)."""
    return replay_year(tmp_path_factory.mktemp("console-year"))


def _sqlite_copy(source: Path, target: Path) -> None:
    """A consistent copy of a SQLite file (its WAL included), by SQLite's backup."""
    with closing(sqlite3.connect(source)) as src, closing(sqlite3.connect(target)) as dst:
        src.backup(dst)


def store_copy(year: ReplayedYear, folder: Path) -> ReplayedYear:
    """A private copy of the store and of the country (the simulated bank and gateway write into
    the country file)."""
    folder.mkdir(parents=True, exist_ok=True)
    country, store = folder / "country.db", folder / "haqq.db"
    _sqlite_copy(year.store, store)
    _sqlite_copy(year.country, country)
    return ReplayedYear(folder=folder, country=country, store=store)


# --- who is who -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Account:
    username: str
    password: str
    role: str
    name: str
    fin: str | None = None


@dataclass(frozen=True)
class Citizen:
    """A citizen with an account, and the case of theirs a test works on."""

    account: Account
    fin: str
    name: str
    case_id: str
    program: str


@dataclass(frozen=True)
class Picks:
    """The records of interest, found by SQL in the replayed store and the country file."""

    #: A case in needs_review that the caseworker grants (above the approval threshold).
    review_case: str
    review_fin: str
    review_program: str
    #: Another case in needs_review, for the bad-input tests (never decided).
    spare_review_case: str
    #: A person with an active monthly benefit they may stop, and that benefit's case.
    stoppable_fin: str
    stoppable_name: str
    stoppable_case: str
    stoppable_program: str
    #: A person with a denied case (and no benefit to stop).
    denied_fin: str
    denied_name: str
    denied_case: str
    denied_program: str


def _rows(store: Path, country: Path, sql: str, params: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
    with closing(sqlite3.connect(f"file:{store}?mode=ro", uri=True)) as conn:
        conn.row_factory = sqlite3.Row
        conn.execute("ATTACH DATABASE ? AS country", (f"file:{country}?mode=ro",))
        return list(conn.execute(sql, params))


def pick_records(store: Path, country: Path) -> Picks:
    """The cases the scenarios work on. The people are alive, in the country's registry, and
    distinct; the stoppable person has a name shared by nobody else (the search finds them). The
    review case is one a grant settles: its beneficiary has a mobile number (else the pipeline
    sends a granted case back to review, "consent cannot be asked") and the bank did not refuse
    them an account."""
    review = _rows(store, country, """
        SELECT c.id, c.beneficiary_fin AS fin, c.program_id FROM cases c
        JOIN country.persons p ON p.fin = c.beneficiary_fin
        WHERE c.state = 'needs_review' AND p.death_date IS NULL
        ORDER BY (p.phone IS NOT NULL AND c.review_reason NOT LIKE '%mobile%'
                  AND c.review_reason NOT LIKE '%refused%') DESC,
                 c.program_id = 'birth_benefit' DESC, c.id""")
    assert len(review) >= 2, "the replayed year has fewer than two cases in needs_review"
    stoppable = _rows(store, country, """
        SELECT e.id, e.fin, e.program_id, p.name FROM entitlements e
        JOIN cases c ON c.id = e.id
        JOIN country.persons p ON p.fin = e.fin
        WHERE e.status = 'active' AND e.schedule = 'monthly' AND p.death_date IS NULL
          AND (SELECT count(*) FROM country.persons q WHERE q.name = p.name) = 1
          AND e.fin NOT IN (SELECT beneficiary_fin FROM cases WHERE state = 'needs_review')
        ORDER BY e.program_id = 'disability_payment' DESC, e.id""")
    assert stoppable, "the replayed year has no active monthly benefit to stop"
    s = stoppable[0]
    denied = _rows(store, country, """
        SELECT c.id, c.beneficiary_fin AS fin, c.program_id, p.name FROM cases c
        JOIN country.persons p ON p.fin = c.beneficiary_fin
        WHERE c.state = 'denied' AND p.death_date IS NULL AND c.beneficiary_fin != ?
          AND c.beneficiary_fin NOT IN (SELECT fin FROM entitlements WHERE status IN ('active', 'pending'))
        ORDER BY c.id""", (s["fin"],))
    assert denied, "the replayed year has no denied case"
    d = denied[0]
    return Picks(
        review_case=review[0]["id"], review_fin=review[0]["fin"], review_program=review[0]["program_id"],
        spare_review_case=review[1]["id"],
        stoppable_fin=s["fin"], stoppable_name=s["name"], stoppable_case=s["id"], stoppable_program=s["program_id"],
        denied_fin=d["fin"], denied_name=d["name"], denied_case=d["id"], denied_program=d["program_id"],
    )


def store_rows(store: Path, sql: str, params: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
    """Rows of a read-only query on a (served) store."""
    with closing(sqlite3.connect(f"file:{store}?mode=ro", uri=True, timeout=30)) as conn:
        conn.row_factory = sqlite3.Row
        return list(conn.execute(sql, params))


# --- the served console ---------------------------------------------------------------------------


@dataclass
class ConsoleServer:
    """``haqq serve`` on a private copy of the replayed year, with an account for every role."""

    base_url: str
    store: Path
    country: Path
    picks: Picks
    caseworker: Account
    caseworker2: Account
    supervisor: Account
    auditor: Account
    #: Holds the stoppable benefit (:attr:`Picks.stoppable_case`).
    citizen: Citizen
    #: Holds the denied case (:attr:`Picks.denied_case`).
    denied_citizen: Citizen
    log: Path
    env: dict[str, str] = field(default_factory=dict)

    def url(self, path: str) -> str:
        return self.base_url + path

    def api_token(self, account: Account) -> str:
        """A bearer token for ``account``, by signing in to the API as a client would."""
        r = httpx.post(self.url("/api/v1/auth/token"),
                       data={"username": account.username, "password": account.password}, timeout=30)
        assert r.status_code == 200, f"signing in {account.username} to the API: {r.status_code} {r.text}"
        token = r.json()["access_token"]
        assert isinstance(token, str)
        return token

    def server_log(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace") if self.log.exists() else ""


def _add(account: Account, *, cwd: Path, env: Mapping[str, str]) -> Account:
    args = ["users", "add", account.username, "--role", account.role, "--name", account.name,
            "--password", account.password]
    if account.fin:
        args += ["--fin", account.fin]
    run_haqq(*args, cwd=cwd, env=env)
    return account


def _wait_until_up(proc: subprocess.Popen[bytes], base_url: str, log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"haqq serve exited with {proc.returncode}:\n{log.read_text(errors='replace')}")
        try:
            if httpx.get(base_url + "/login", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    pytest.fail(f"haqq serve did not answer at {base_url} within {timeout:.0f} s:\n{log.read_text(errors='replace')}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the server (uvicorn stops, and stops its pipeline workers), then SIGKILL to what
    is left of its own process group."""
    if proc.poll() is None:
        proc.terminate()
        with suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=20)
    with suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)  # the server's own group (start_new_session): its workers
    if proc.poll() is None:
        proc.wait(timeout=10)


@pytest.fixture(scope="module")
def console_server(replayed_year: ReplayedYear, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsoleServer]:
    """``haqq serve --workers 1`` on a private copy of the replayed year, with accounts: two
    caseworkers, a supervisor, an auditor, and two citizens (one with a benefit to stop, one with
    a denied case). Stopped at the end of the module."""
    own = store_copy(replayed_year, tmp_path_factory.mktemp("console-served"))
    env = haqq_env(own.store, own.country)
    picks = pick_records(own.store, own.country)
    cwd = own.folder

    caseworker = _add(Account("aysel", "aysel-pass-1", "caseworker", "Aysel Caseworker"), cwd=cwd, env=env)
    caseworker2 = _add(Account("rauf", "rauf-pass-12", "caseworker", "Rauf Caseworker"), cwd=cwd, env=env)
    supervisor = _add(Account("leyla", "leyla-pass-1", "supervisor", "Leyla Supervisor"), cwd=cwd, env=env)
    auditor = _add(Account("murad", "murad-pass-1", "auditor", "Murad Auditor"), cwd=cwd, env=env)
    citizen_account = _add(Account("citizen-stop", "citizen-pass-1", "citizen", picks.stoppable_name,
                                   picks.stoppable_fin), cwd=cwd, env=env)
    denied_account = _add(Account("citizen-denied", "citizen-pass-2", "citizen", picks.denied_name,
                                  picks.denied_fin), cwd=cwd, env=env)

    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    log = own.folder / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([*COMMAND, "serve", "--workers", "1", "--port", str(port)], cwd=cwd, env=env,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait_until_up(proc, base_url, log)
        yield ConsoleServer(
            base_url=base_url, store=own.store, country=own.country, picks=picks,
            caseworker=caseworker, caseworker2=caseworker2, supervisor=supervisor, auditor=auditor,
            citizen=Citizen(citizen_account, picks.stoppable_fin, picks.stoppable_name, picks.stoppable_case,
                            picks.stoppable_program),
            denied_citizen=Citizen(denied_account, picks.denied_fin, picks.denied_name, picks.denied_case,
                                   picks.denied_program),
            log=log, env=env,
        )
    finally:
        _stop(proc)


def copy_artifact(source: Path, name: str) -> Path:
    """Keep a file (a server log, say) beside the screenshots."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    target = ARTIFACTS / name
    shutil.copyfile(source, target)
    return target
