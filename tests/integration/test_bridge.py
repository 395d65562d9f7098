"""The pipeline through the data-exchange layer: X-Road REST in-process (the embedded default),
the direct simulated calls, an institution that is down, and the message log they leave."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from haqq.adapters.store import db, messagelog
from haqq.adapters.store.schema import (
    cases,
    data_access_log,
    decisions,
    message_log,
    notifications,
    payments,
)
from haqq.adapters.xroad.directory import Fault, load_directory
from haqq.adapters.xroad.ids import ClientId
from haqq.bootstrap import ConfigurationError, Haqq, Settings, build, institutions
from haqq.replay import replay
from tests.helpers import generated_country, rows
from tests.invariants import check_invariants

YEAR = 2025


@pytest.fixture(scope="module")
def country_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generated_country(tmp_path_factory, population=3000, seed=5)


def fresh_app(country_file: Path, tmp_path: Path, url: str, **settings: object) -> Haqq:
    country = tmp_path / "country.db"
    shutil.copyfile(country_file, country)
    app = build(Settings(database_url=url, country=country, batch_size=200, **settings))  # type: ignore[arg-type]
    db.upgrade(app.engine)
    return app


def test_the_embedded_default_asks_through_xroad_and_logs_every_message(
    store_url: str, country_file: Path, tmp_path: Path
) -> None:
    app = fresh_app(country_file, tmp_path, store_url)
    replay(app, year=YEAR, tick=timedelta(days=7))
    check_invariants(app)
    with app.engine.connect() as conn:
        log = rows(app.engine, message_log)
        verified = messagelog.verify(conn)
        accessed = {r.message_id for r in conn.execute(select(data_access_log.c.message_id))}
        traces = [r.trace for r in conn.execute(select(decisions.c.trace))]
    assert verified.ok and verified.entries == len(log) > 20
    directory = load_directory()
    services = {str(r.service) for r in directory.routes.values()}
    # The registries' exchanges (the bank's and the gateway's are logged too: see below).
    asked = [r for r in log if not r["service"].startswith(("bank:", "sms:"))]
    assert asked and {r["service"] for r in asked} <= services
    assert all(r["client"] == "AZ/GOV/MLSPP/HAQQ" and r["user_id"] == "haqq" for r in asked)
    assert all(r["outcome"] == "ok" and r["status"] == 200 and r["request_hash"] for r in asked)
    assert all(r["issue"].startswith(("case-", "event-")) for r in asked)
    # Every record logged as read about a person came in a logged message.
    assert accessed and accessed <= {r["message_id"] for r in log}
    # The decision's evidence names the message and the provider's request hash.
    sources = [s for t in traces for s in t.get("sources", {}).values()]
    assert sources and all(s["request_hash"] and s["xroad_service"] in services for s in sources)


def test_direct_simulated_calls_are_logged_too(country_file: Path, tmp_path: Path, sqlite_url: str) -> None:
    app = fresh_app(country_file, tmp_path, sqlite_url, registries="simulated")
    replay(app, year=YEAR, tick=timedelta(days=14))
    check_invariants(app)
    log = rows(app.engine, message_log)
    assert log and all(r["client"] == "haqq" and r["request_hash"] is None for r in log)
    assert {r["service"] for r in log} >= {"civil_registry/person", "bank:HAQB/send_file", "bank:HAQB/files"}
    with app.engine.connect() as conn:
        assert messagelog.verify(conn).ok


def test_an_institution_down_sends_cases_to_review_and_logs_the_failures(
    country_file: Path, tmp_path: Path, sqlite_url: str
) -> None:
    app = fresh_app(country_file, tmp_path, sqlite_url)
    # The tax service is down all year: programs that read incomes cannot decide.
    xr = app.institutions
    down = Fault(down=((datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC)),))
    server = xr._transport.server  # type: ignore[attr-defined]
    server.directory = server.directory.with_faults({ClientId.parse("AZ/GOV/STS/INCOME"): down})
    xr._sleep = lambda _s: None  # type: ignore[attr-defined]
    replay(app, year=YEAR, tick=timedelta(days=14))
    log = rows(app.engine, message_log)
    failed = [r for r in log if r["outcome"] != "ok"]
    assert failed and all(r["service"] == "AZ/GOV/STS/INCOME/income" for r in failed)
    assert any(r["service"] == "bank:HAQB/send_file" for r in log)
    # Refused by the security server, then, once the breaker opened, not even sent.
    assert {r["outcome"] for r in failed} == {"Server.ServerProxy.NetworkError", "haqq.CircuitOpen"}
    reviewed = rows(app.engine, cases, cases.c.state == "needs_review")
    unavailable = [c for c in reviewed if "institution unavailable" in (c["review_reason"] or "")]
    assert unavailable and all("income" in c["review_reason"] for c in unavailable)
    with app.engine.connect() as conn:
        assert messagelog.verify(conn).ok


def test_registries_settings_are_checked(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="unknown registries"):
        institutions(Settings(country=tmp_path / "c.db", registries="carrier-pigeon"))
    with pytest.raises(ConfigurationError, match="HAQQ_XROAD_URL"):
        institutions(Settings(country=tmp_path / "c.db", registries="http"))
    with pytest.raises(ConfigurationError, match="both"):
        institutions(Settings(
            country=tmp_path / "c.db", registries="http", xroad_url="https://ss", xroad_cert=tmp_path / "c.pem",
        ))


def test_a_replay_survives_transient_failures_and_an_institution_down_for_30_seconds(
    country_file: Path, tmp_path: Path, sqlite_url: str
) -> None:
    """1 % of all institution calls fail transiently, and the disability subsystem is down for
    30 seconds from the start: every case still finishes, or waits for a person with the reason
    where its data never came; nothing is paid or texted twice; every failure is logged."""
    app = fresh_app(country_file, tmp_path, sqlite_url)
    xr = app.institutions
    server = xr._transport.server  # type: ignore[attr-defined]
    start = datetime.now(UTC)
    flaky = {p: Fault(error_rate=0.01) for p in server.directory.providers}
    disability = ClientId.parse("AZ/GOV/MLSPP/DISABILITY")
    flaky[disability] = Fault(error_rate=0.01, down=((start, start + timedelta(seconds=30)),))
    server.directory = server.directory.with_faults(flaky)
    xr._sleep = lambda _s: None  # type: ignore[attr-defined]
    replay(app, year=YEAR, tick=timedelta(days=7))
    states = check_invariants(app)
    assert states["closed"] > 0
    log = rows(app.engine, message_log)
    outcomes = {(r["service"].rsplit("/", 1)[0], r["outcome"]) for r in log}
    # Transient failures hit every institution; most were retried into answers.
    assert ("AZ/GOV/MLSPP/DISABILITY", "Server.ServerProxy.NetworkError") in outcomes
    assert sum(r["outcome"] == "ok" for r in log) > 20 * sum(
        r["outcome"] != "ok" for r in log if "DISABILITY" not in r["service"]
    )
    reviewed = rows(app.engine, cases, cases.c.state == "needs_review")
    waiting = [c for c in reviewed if "institution unavailable" in (c["review_reason"] or "")]
    assert waiting and all("disability" in c["review_reason"].lower() for c in waiting)
    with app.engine.connect() as conn:
        assert messagelog.verify(conn).ok


def test_the_bank_and_the_gateway_are_in_the_message_log_too(
    country_file: Path, tmp_path: Path, sqlite_url: str
) -> None:
    app = fresh_app(country_file, tmp_path, sqlite_url)
    replay(app, year=YEAR, tick=timedelta(days=14))
    log = rows(app.engine, message_log)
    by_service: dict[str, int] = {}
    for r in log:
        by_service[r["service"]] = by_service.get(r["service"], 0) + r["persons"]
    assert {"bank:HAQB/find_accounts", "bank:HAQB/request_accounts", "bank:HAQB/account_answers",
            "bank:HAQB/send_file", "bank:HAQB/files", "sms:simulated/submit", "sms:simulated/inbound", "sms:simulated/receipts"} <= set(by_service)
    with app.engine.connect() as conn:
        paid = conn.execute(select(func.count()).select_from(payments).where(payments.c.sent_at.is_not(None))).scalar_one()
        texted = conn.execute(select(func.count()).select_from(notifications).where(notifications.c.sent_at.is_not(None))).scalar_one()
        assert messagelog.verify(conn).ok
    # Every payment sent (in a run's file) and every SMS handed over went in a logged exchange
    # (a repeat after a lost race may be logged twice, never less); every status came in one.
    assert by_service["bank:HAQB/send_file"] >= paid > 0
    assert by_service["bank:HAQB/files"] >= paid
    assert by_service["sms:simulated/submit"] >= texted > 0
    inbound = [r for r in log if r["service"] == "sms:simulated/inbound"]
    assert inbound and all(r["direction"] == "in" for r in inbound)
