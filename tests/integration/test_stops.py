"""The stop on death, registered late: the monthly payment ends at the death, and money paid
for the months after it becomes a recovery claim."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path

import pytest

from haqq.adapters.store import db
from haqq.adapters.store.schema import entitlements, payments, recovery_claims
from haqq.bootstrap import Settings, build
from haqq.pipeline.work import BAKU
from tests.helpers import (
    country_copy,
    country_event,
    country_query,
    generated_country,
    rows,
    run_at,
    take_events,
)


@pytest.fixture(scope="module")
def country_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generated_country(tmp_path_factory, population=40_000, seed=3)


def test_a_late_registered_death_stops_payments_and_claims_back(store_url: str, country_file: Path, tmp_path: Path) -> None:
    # An adult whose disability status the registry holds since before the year, who dies in
    # the spring; the status is reported to haqq at the start of the year.
    found = country_query(
        country_file,
        "SELECT fin, death_date, disability_group FROM persons WHERE disability_group IS NOT NULL "
        "AND disability_since < '2025-01-01' AND (disability_until IS NULL OR disability_until > death_date) "
        "AND pensions NOT LIKE '%disability%' "
        "AND death_date BETWEEN '2025-04-15' AND '2025-10-01' AND birth_date < '1990-01-01' "
        "AND phone IS NOT NULL AND mia_birth_date IS NULL AND resident = 1 ORDER BY fin LIMIT 1",
    )
    assert found, "the country has nobody with a disability status who dies in the spring"
    fin, died = found[0]["fin"], date.fromisoformat(found[0]["death_date"])
    grant = {
        "source": "disability_registry", "event_id": f"TEST-DIS-{fin}", "type": "disability_status_granted",
        "fin": fin, "occurred_at": "2025-01-06T10:00:00+04:00", "payload": {"group": found[0]["disability_group"]},
    }
    death = country_event(country_file, fin, "death_registered")
    app = build(Settings(database_url=store_url, country=country_file))
    db.upgrade(app.engine)

    granted_at = datetime.fromisoformat(grant["occurred_at"])
    take_events(app, [grant], granted_at)
    # Run the months until six weeks after the death, without knowing of it yet.
    moment = granted_at
    late = datetime(died.year, died.month, died.day, tzinfo=BAKU) + timedelta(days=45)
    while moment < late:
        moment = min(moment + timedelta(days=5), late)
        run_at(app, moment)
    ent = rows(app.engine, entitlements, entitlements.c.fin == fin, entitlements.c.program_id == "disability_payment")
    assert len(ent) == 1 and ent[0]["status"] == "active"
    paid_after = [p for p in rows(app.engine, payments, payments.c.fin == fin) if p["period"] != "lump" and p["period_start"] > died]
    assert paid_after and all(p["status"] == "accepted" for p in paid_after), "no month after the death was paid yet"

    # The civil registry tells haqq of the death six weeks late.
    take_events(app, [death], late)
    run_at(app, late + timedelta(hours=1), late + timedelta(days=40))

    ent = rows(app.engine, entitlements, entitlements.c.id == ent[0]["id"])[0]
    assert ent["status"] == "ended" and ent["end_date"] == died
    assert "death_registered" in ent["ended_reason"]
    claims = rows(app.engine, recovery_claims, recovery_claims.c.fin == fin)
    assert sorted(c["payment_id"] for c in claims) == sorted(p["id"] for p in paid_after)
    assert sum(c["amount"] for c in claims) == sum(p["amount"] for p in paid_after)
    assert all(c["status"] == "open" for c in claims)
    # Nothing paid for a month after the death once it was known, and the month of the death stands.
    later = [p for p in rows(app.engine, payments, payments.c.fin == fin) if p["period"] != "lump" and p["period_start"] > died]
    assert {p["id"] for p in later} == {p["id"] for p in paid_after}
    month_of_death = [p for p in rows(app.engine, payments, payments.c.fin == fin) if p["period"] == died.strftime("%Y-%m")]
    assert month_of_death and month_of_death[0]["status"] == "accepted"


def test_the_months_before_an_end_are_paid_when_the_end_is_known_before_the_account(
    store_url: str, country_file: Path, tmp_path: Path
) -> None:
    # A status granted in January is reported in May; its end (in June) is registered while
    # the worker is down, and taken in the same round as the bank's answer on the account: the
    # case then finds its entitlement ended, and is still owed January to June.
    found = country_query(
        country_file,
        "SELECT fin, disability_group, disability_until FROM persons WHERE disability_group IS NOT NULL "
        "AND disability_since < '2025-01-01' AND disability_until BETWEEN '2025-06-01' AND '2025-06-30' "
        "AND pensions NOT LIKE '%disability%' AND death_date IS NULL AND birth_date < '1990-01-01' "
        "AND phone IS NOT NULL AND mia_birth_date IS NULL AND resident = 1 ORDER BY fin LIMIT 1",
    )
    assert found, "the country has nobody whose disability status ends in June"
    fin, ended = found[0]["fin"], date.fromisoformat(found[0]["disability_until"])
    app = build(Settings(database_url=store_url, country=country_copy(country_file, tmp_path)))
    db.upgrade(app.engine)
    reported = datetime(2025, 5, 25, 10, tzinfo=BAKU)
    grant = {
        "source": "disability_registry", "event_id": f"TEST-DIS-{fin}", "type": "disability_status_granted",
        "fin": fin, "occurred_at": "2025-01-06T10:00:00+04:00", "payload": {"group": found[0]["disability_group"]},
    }
    take_events(app, [grant], reported)
    run_at(app, reported)  # the case asks the bank for an account, and waits
    end = country_event(country_file, fin, "disability_status_ended")
    back = datetime(ended.year, ended.month, ended.day, tzinfo=BAKU) + timedelta(days=5)
    take_events(app, [end], back)
    run_at(app, back, back + timedelta(days=2))
    ent = rows(app.engine, entitlements, entitlements.c.fin == fin, entitlements.c.program_id == "disability_payment")
    assert len(ent) == 1 and ent[0]["status"] == "ended" and ent[0]["end_date"] == ended
    months = {p["period"]: p["status"] for p in rows(app.engine, payments, payments.c.entitlement_id == ent[0]["id"])}
    assert sorted(months) == [f"2025-{m:02d}" for m in range(1, ended.month + 1)], months
    assert "cancelled" not in months.values()
