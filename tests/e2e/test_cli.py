"""The ``haqq`` console script, run for real in a scratch directory, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, inspect, select

from haqq.adapters.store import db
from haqq.adapters.store.reports import HANDED_OVER
from haqq.adapters.store.schema import (
    case_transitions,
    cases,
    data_access_log,
    decisions,
    events,
    metadata,
    notifications,
    payment_runs,
    payments,
)
from haqq.domain.money import format_azn
from tests.helpers import write_jsonl

SCRIPT = Path(sys.executable).with_name("haqq")
COMMAND = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "haqq.entrypoints.cli"]
POPULATION = 3_000
SEED = 7


def haqq(*args: str, cwd: Path, database_url: str | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run ``haqq ARGS`` in ``cwd`` with a clean environment (no inherited HAQQ_* settings)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HAQQ_")}
    env["COLUMNS"] = "250"  # rich wraps at 80 columns when writing to a pipe
    # These runs are on the wall clock: quiet hours would hold every SMS when run at night.
    env["HAQQ_SMS_QUIET"] = "off"
    if database_url:
        env["HAQQ_DATABASE_URL"] = database_url
    return subprocess.run(
        [*COMMAND, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    assert "Traceback" not in result.stderr
    return result.stdout


def count(engine: Engine, table: Any, *where: Any) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table).where(*where)).scalar_one())


def payment_outcomes(engine: Engine) -> str:
    """What became of the payments, for a failure message."""
    with engine.connect() as conn:
        found = conn.execute(
            select(payments.c.status, payments.c.reason, payments.c.iban.is_(None), func.count())
            .group_by(payments.c.status, payments.c.reason, payments.c.iban.is_(None))
        ).all()
    return "payments (status, reason, no IBAN, count): " + repr([tuple(r) for r in found])


def jsonl_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


@pytest.fixture(scope="module")
def country_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory with ``country.db`` and its events exported to ``events.jsonl`` by the CLI."""
    where = tmp_path_factory.mktemp("cli")
    out = ok(haqq("country", "generate", "--population", str(POPULATION), "--seed", str(SEED), cwd=where))
    assert re.search(r"[\d,]+ persons and [\d,]+ events of 2025 in country\.db", out), out
    out = ok(haqq("country", "export", "events.jsonl", cwd=where))
    n = len(jsonl_lines(where / "events.jsonl"))
    assert n > 100
    assert f"{n:,} events written to events.jsonl" in out
    return where


@dataclass
class Flow:
    """A fresh store taken through ``db upgrade``, ``ingest`` twice and ``run``."""

    url: str
    engine: Engine
    events: int
    upgrade: subprocess.CompletedProcess[str]
    first: subprocess.CompletedProcess[str]
    second: subprocess.CompletedProcess[str]
    run: subprocess.CompletedProcess[str]


def run_flow(cwd: Path, url: str) -> Flow:
    n = len(jsonl_lines(cwd / "events.jsonl"))
    upgrade = haqq("db", "upgrade", cwd=cwd, database_url=url)
    first = haqq("ingest", "events.jsonl", cwd=cwd, database_url=url)
    second = haqq("ingest", "events.jsonl", cwd=cwd, database_url=url)
    run = haqq("run", cwd=cwd, database_url=url)
    return Flow(url, db.make_engine(url), n, upgrade, first, second, run)


@pytest.fixture(scope="module")
def sqlite_flow(country_dir: Path) -> Iterator[Flow]:
    flow = run_flow(country_dir, f"sqlite:///{country_dir / 'store.db'}")
    yield flow
    flow.engine.dispose()


def a_mother_of_a_newborn(engine: Engine) -> dict[str, Any]:
    """A birth-benefit case paid to the child's mother, with its SMS sent."""
    with engine.connect() as conn:
        found = conn.execute(
            select(cases.c.id, cases.c.beneficiary_fin, events.c.payload)
            .join(events, events.c.id == cases.c.event_id)
            .where(cases.c.program_id == "birth_benefit", cases.c.state == "closed")
            .order_by(cases.c.id)
        ).all()
        for case_id, fin, payload in found:
            sent = conn.execute(
                select(func.count()).select_from(notifications)
                .where(notifications.c.case_id == case_id, notifications.c.status.in_(HANDED_OVER))
            ).scalar_one()
            if payload["mother_fin"] == fin and sent:
                return {"case_id": case_id, "fin": fin}
    raise AssertionError("no mother of a newborn was paid and told")


def check_person_text(engine: Engine, fin: str, case_id: str, out: str) -> None:
    """``haqq person FIN`` shows the case, its decision and legal basis, its steps, the SMS and
    who requested the person's data, with the store's own values."""
    with engine.connect() as conn:
        (decision,) = conn.execute(select(decisions).where(decisions.c.case_id == case_id)).all()
        steps = conn.execute(
            select(case_transitions).where(case_transitions.c.case_id == case_id).order_by(case_transitions.c.id)
        ).all()
        sms = conn.execute(select(notifications).where(notifications.c.case_id == case_id)).all()
        access = conn.execute(select(data_access_log).where(data_access_log.c.fin == fin)).all()
    assert fin in out
    assert f"case {case_id}" in out
    assert "birth_benefit" in out
    assert f"decision: {decision.outcome} {format_azn(decision.amount)}" in out
    basis = decision.legal_basis
    assert f"legal basis: {basis['act']}, {basis['article']}" in out
    assert decision.outcome == "granted"
    assert len(steps) >= 5
    for step in steps:
        assert re.search(rf"-> {step.target}\s+{re.escape(step.cause)}", out), f"step {step.target} missing"
    assert [s.target for s in steps][-1] == "closed"
    assert sms
    for message in sms:
        assert message.phone in out
    assert "Who requested this person's data" in out
    assert access
    for row in access:
        assert row.message_id[:8] in out
    assert any(row.case_id == case_id for row in access)


# --- demo and store ---------------------------------------------------------------------------


def test_demo_replays_a_small_year_and_prints_the_summary(tmp_path: Path) -> None:
    result = haqq("demo", "--population", str(POPULATION), cwd=tmp_path, timeout=60)
    out = ok(result)
    assert "Life events" in out
    assert "Cases by program and outcome" in out
    assert "event to SMS" in out
    assert "birth_benefit" in out
    found = re.search(r"replayed ([\d,]+) events into ([\d,]+) cases", out)
    assert found, out
    replayed, made = (int(g.replace(",", "")) for g in found.groups())
    assert replayed > 100
    assert made > 0
    engine = db.make_engine(f"sqlite:///{tmp_path / 'haqq.db'}")
    try:
        assert count(engine, cases) == made
        assert count(engine, events) == replayed
        assert count(engine, payments, payments.c.status == "accepted") > 0
    finally:
        engine.dispose()
    assert (tmp_path / "country.db").exists()
    assert "haqq audit verify" in out
    # Every exchange of the replay is in the message log, and its chain holds.
    verified = json.loads(ok(haqq("audit", "verify", "--json", cwd=tmp_path)))
    assert verified["ok"] is True and verified["entries_verified"] > made / 10


def test_db_upgrade_creates_a_fresh_sqlite_store(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    out = ok(haqq("db", "upgrade", cwd=tmp_path, database_url=url))
    assert f"store at schema {db.head_revision()}" in out
    engine = db.make_engine(url)
    try:
        assert set(metadata.tables) <= set(inspect(engine).get_table_names())
        assert db.current_revision(engine) == db.head_revision()
    finally:
        engine.dispose()
    # Again: nothing to do, still fine.
    assert f"store at schema {db.head_revision()}" in ok(haqq("db", "upgrade", cwd=tmp_path, database_url=url))


# --- ingest, run, person on SQLite ------------------------------------------------------------


def test_ingest_counts_accepted_then_duplicates(sqlite_flow: Flow) -> None:
    assert ok(sqlite_flow.upgrade)
    n = sqlite_flow.events
    assert f"accepted {n}, duplicates 0, refused 0" in ok(sqlite_flow.first)
    assert f"accepted 0, duplicates {n}, refused 0" in ok(sqlite_flow.second)
    assert count(sqlite_flow.engine, events) == n


def test_run_processes_the_ingested_events(sqlite_flow: Flow) -> None:
    out = ok(sqlite_flow.run)
    done = re.search(r"done: .*'events': (\d+)", out)
    assert done, out
    assert int(done.group(1)) == sqlite_flow.events
    engine = sqlite_flow.engine
    assert count(engine, events, events.c.status == "received") == 0
    triggered = count(engine, events, events.c.status == "triggered")
    assert triggered > 0
    assert triggered + count(engine, events, events.c.status == "no_program") == sqlite_flow.events
    assert count(engine, cases) >= triggered
    assert count(engine, notifications, notifications.c.status.in_(HANDED_OVER)) > 0
    # On the wall clock the day's run is sent at once; the bank's status report comes hours later.
    assert count(engine, payments, payments.c.status == "sent") > 0, payment_outcomes(engine)
    assert count(engine, payment_runs, payment_runs.c.status == "sent") > 0


def test_person_shows_case_decision_steps_sms_and_data_access(sqlite_flow: Flow) -> None:
    ok(sqlite_flow.run)
    mother = a_mother_of_a_newborn(sqlite_flow.engine)
    out = ok(haqq("person", mother["fin"], cwd=Path(sqlite_flow.url.removeprefix("sqlite:///")).parent,
                  database_url=sqlite_flow.url))
    check_person_text(sqlite_flow.engine, mother["fin"], mother["case_id"], out)


def test_person_json_parses(sqlite_flow: Flow) -> None:
    ok(sqlite_flow.run)
    engine = sqlite_flow.engine
    mother = a_mother_of_a_newborn(engine)
    cwd = Path(sqlite_flow.url.removeprefix("sqlite:///")).parent
    data = json.loads(ok(haqq("person", mother["fin"].lower(), "--json", cwd=cwd, database_url=sqlite_flow.url)))
    assert data["fin"] == mother["fin"]
    by_id = {c["id"]: c for c in data["cases"]}
    case = by_id[mother["case_id"]]
    assert case["program_id"] == "birth_benefit"
    assert case["outcome"] == "granted"
    assert case["legal_basis"]["article"]
    assert len(case["transitions"]) == count(engine, case_transitions, case_transitions.c.case_id == mother["case_id"])
    assert [n["case_id"] for n in data["notifications"] if n["case_id"] == mother["case_id"]]
    assert len(data["data_access"]) == count(engine, data_access_log, data_access_log.c.fin == mother["fin"])
    assert {p["fin"] for p in data["payments"]} == {mother["fin"]}


@pytest.mark.parametrize("bad", ["abc", "ABC12345", "AB_12CD", "ab 12 c"])
def test_person_with_an_invalid_fin_exits_2_with_a_message(sqlite_flow: Flow, bad: str) -> None:
    cwd = Path(sqlite_flow.url.removeprefix("sqlite:///")).parent
    result = haqq("person", bad, cwd=cwd, database_url=sqlite_flow.url)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "invalid FIN" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_person_unknown_to_haqq_exits_2_with_a_message(sqlite_flow: Flow) -> None:
    cwd = Path(sqlite_flow.url.removeprefix("sqlite:///")).parent
    result = haqq("person", "ZZZZZZZ", cwd=cwd, database_url=sqlite_flow.url)
    assert result.returncode == 2
    assert "holds nothing about ZZZZZZZ" in result.stderr
    assert "Traceback" not in result.stderr


def test_ingest_of_a_bad_line_exits_1_and_names_the_line(country_dir: Path, tmp_path: Path) -> None:
    good = jsonl_lines(country_dir / "events.jsonl")[:3]
    write_jsonl(
        tmp_path / "bad.jsonl",
        [good[0], '{"event_id": "X-1", "type": ', good[1], {**good[2], "type": "adoption_registered"}, good[2]],
    )
    url = f"sqlite:///{tmp_path / 'store.db'}"
    ok(haqq("db", "upgrade", cwd=tmp_path, database_url=url))
    result = haqq("ingest", "bad.jsonl", cwd=tmp_path, database_url=url)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert re.search(r"bad\.jsonl:2: malformed JSON", result.stderr), result.stderr
    assert re.search(r"bad\.jsonl:4: .*unknown event type 'adoption_registered'", result.stderr), result.stderr
    assert "accepted 3, duplicates 0, refused 2" in result.stdout
    engine = db.make_engine(url)
    try:
        assert count(engine, events) == 3
    finally:
        engine.dispose()


@pytest.mark.parametrize("command", [["person", "ABCDEFG"], ["ingest", "events.jsonl"], ["run"]])
def test_a_store_not_upgraded_is_refused_with_a_message(
    country_dir: Path, tmp_path: Path, command: list[str]
) -> None:
    (tmp_path / "events.jsonl").write_text((country_dir / "events.jsonl").read_text(encoding="utf-8"))
    (tmp_path / "country.db").symlink_to(country_dir / "country.db")
    result = haqq(*command, cwd=tmp_path, database_url=f"sqlite:///{tmp_path / 'empty.db'}")
    assert "haqq db upgrade" in result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == 2


# --- the same on PostgreSQL -------------------------------------------------------------------


def test_upgrade_ingest_run_person_on_postgresql(
    country_dir: Path, postgres_url: str, tmp_path: Path
) -> None:
    # Its own copy of the country: the simulated bank and SMS gateway write into it.
    for name in ("country.db", "events.jsonl"):
        shutil.copyfile(country_dir / name, tmp_path / name)
    flow = run_flow(tmp_path, postgres_url)
    try:
        assert f"store at schema {db.head_revision()}" in ok(flow.upgrade)
        assert "postgresql" in flow.upgrade.stdout
        assert f"accepted {flow.events}, duplicates 0, refused 0" in ok(flow.first)
        assert f"accepted 0, duplicates {flow.events}, refused 0" in ok(flow.second)
        ok(flow.run)
        engine = flow.engine
        assert engine.dialect.name == "postgresql"
        assert count(engine, events) == flow.events
        assert count(engine, events, events.c.status == "received") == 0
        mother = a_mother_of_a_newborn(engine)
        out = ok(haqq("person", mother["fin"], cwd=tmp_path, database_url=postgres_url))
        check_person_text(engine, mother["fin"], mother["case_id"], out)
        data = json.loads(ok(haqq("person", mother["fin"], "--json", cwd=tmp_path, database_url=postgres_url)))
        assert mother["case_id"] in {c["id"] for c in data["cases"]}
        assert count(engine, payments, payments.c.status == "sent") > 0, payment_outcomes(engine)
    finally:
        flow.engine.dispose()


def test_bench_pipeline_prints_its_figures_as_one_json_object(tmp_path: Path) -> None:
    """The benchmark runs end to end on a tiny country and reports every key it promises
    (its speed is measured by running it, never asserted here)."""
    cache = tmp_path / "cache"
    out = ok(haqq("bench", "pipeline", "--population", "2000", "--json", cwd=tmp_path, timeout=300))
    figures = json.loads(out.strip().splitlines()[-1])
    for key in ("cases_per_second", "events_per_second", "latency_p50_ms", "latency_p95_ms",
                "latency_p99_ms", "store", "workers"):
        assert key in figures, key
    assert figures["store"] == "sqlite" and figures["workers"] == 1
    assert figures["cases"] > 0 and figures["cases_finished"] == figures["cases"]
    assert figures["cases_per_second"] > 0
    # The replay's CPU time is counted; one process keeps about one core busy at most (a little
    # more when a library's threads run beside it).
    assert figures["cpu_seconds"] > 0 and 0 < figures["cores_busy"] <= 1.2, figures
    assert figures["machine_busy_share"] is None or 0 < figures["machine_busy_share"] <= 1, figures
    # SQLite's write lock: taken in turns, held for part of the replay.
    assert figures["write_lock_turns"] > 0, figures
    assert 0 < figures["write_lock_held_share"] <= 1, figures
    assert 0 < figures["write_lock_held_seconds"] <= figures["wall_seconds"], figures
    assert figures["write_lock_waited_seconds"] >= 0, figures
    assert not cache.exists()  # the default cache lives in the working directory
    assert (tmp_path / ".bench-cache").is_dir()


def test_run_with_two_workers_shares_the_work(
    country_dir: Path, store_url: str, tmp_path: Path
) -> None:
    """``haqq run --workers 2`` on the system clock: both worker processes take batches, and
    every event is handled exactly once (PostgreSQL: skipping locked rows; SQLite: shards)."""
    for name in ("country.db", "events.jsonl"):
        shutil.copyfile(country_dir / name, tmp_path / name)
    ok(haqq("db", "upgrade", cwd=tmp_path, database_url=store_url))
    ok(haqq("ingest", "events.jsonl", cwd=tmp_path, database_url=store_url))
    out = ok(haqq("run", "--workers", "2", "--batch-size", "10", cwd=tmp_path, database_url=store_url, timeout=180))
    reports = re.findall(r"done: (\{.*?\})", out.replace("\n", " "))
    assert len(reports) == 2, out
    assert all("'events'" in r for r in reports), "a worker took no batch of events"
    if store_url.startswith("sqlite"):
        # The payment office is the parent process's: the workers make no runs.
        assert all("'payment_runs'" not in r for r in reports), out
        office = re.findall(r"the payment office: (\{.*?\})", out.replace("\n", " "))
        assert len(office) == 1 and "'payment_runs'" in office[0], out
    engine = db.make_engine(store_url)
    try:
        assert count(engine, events, events.c.status == "received") == 0
        with engine.connect() as conn:
            trails = conn.execute(
                select(case_transitions.c.case_id, func.count())
                .where(case_transitions.c.target == "detected")
                .group_by(case_transitions.c.case_id)
                .having(func.count() > 1)
            ).all()
        assert trails == [], "a case was started twice"
        assert count(engine, cases) > 0
    finally:
        engine.dispose()


def test_sms_status_templates_replies_and_a_stop_by_a_caseworker(sqlite_flow: Flow) -> None:
    ok(sqlite_flow.run)
    engine = sqlite_flow.engine
    cwd = Path(sqlite_flow.url.removeprefix("sqlite:///")).parent
    status = json.loads(ok(haqq("sms", "status", "--json", cwd=cwd, database_url=sqlite_flow.url)))
    handed = sum(r["count"] for r in status["outbox"] if r["status"] in HANDED_OVER)
    assert handed == count(engine, notifications, notifications.c.status.in_(HANDED_OVER)) > 0
    texts = json.loads(ok(haqq("sms", "templates", "--json", cwd=cwd)))["texts"]
    assert {t["situation"] for t in texts} >= {"granted", "consent_request", "stopped", "may_claim"}
    assert max(t["segments"] for t in texts) <= 2
    assert "replies" in json.loads(ok(haqq("sms", "replies", "--json", cwd=cwd, database_url=sqlite_flow.url)))

    unknown = haqq("sms", "stop", "C-NO-SUCH-CASE", cwd=cwd, database_url=sqlite_flow.url)
    assert unknown.returncode == 2 and "no benefit was assigned" in unknown.stderr + unknown.stdout
    assert "Traceback" not in unknown.stderr
    mother = a_mother_of_a_newborn(engine)  # a lump sum, paid by now: nothing left to decline
    paid = haqq("sms", "stop", mother["case_id"], cwd=cwd, database_url=sqlite_flow.url)
    assert paid.returncode == 2 and "already" in paid.stderr + paid.stdout
    bad = haqq("sms", "stop", mother["case_id"], "--channel", "fax", cwd=cwd, database_url=sqlite_flow.url)
    assert bad.returncode == 2 and "unknown channel 'fax'" in bad.stderr + bad.stdout
