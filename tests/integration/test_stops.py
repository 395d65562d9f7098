"""The stop on death, registered late: the monthly payment ends at the death, and money paid
for the months after it becomes a recovery claim."""

from __future__ import annotations

import threading
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine

from haqq.adapters.store import db, repository
from haqq.adapters.store.schema import entitlements, payments, recovery_claims, stops
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


def _disabled_who_dies(country_file: Path) -> dict[str, str]:
    found = country_query(
        country_file,
        "SELECT fin, death_date, disability_group FROM persons WHERE disability_group IS NOT NULL "
        "AND disability_since < '2025-01-01' AND (disability_until IS NULL OR disability_until > death_date) "
        "AND pensions NOT LIKE '%disability%' "
        "AND death_date BETWEEN '2025-04-15' AND '2025-10-01' AND birth_date < '1990-01-01' "
        "AND phone IS NOT NULL AND mia_birth_date IS NULL AND resident = 1 ORDER BY fin LIMIT 1",
    )
    assert found, "the country has nobody with a disability status who dies in the spring"
    return found[0]


#: When the registry says the statuses of these tests were granted (they began before the year).
JANUARY = datetime(2025, 1, 6, 10, tzinfo=BAKU)


def _grant(fin: str, group: str, at: datetime) -> dict[str, Any]:
    return {
        "source": "disability_registry", "event_id": f"TEST-DIS-{fin}", "type": "disability_status_granted",
        "fin": fin, "occurred_at": at.isoformat(), "payload": {"group": group},
    }


def test_a_late_registered_death_stops_payments_and_claims_back(store_url: str, country_file: Path, tmp_path: Path) -> None:
    # An adult whose disability status the registry holds since before the year, who dies in
    # the spring; the status is reported to haqq at the start of the year.
    person = _disabled_who_dies(country_file)
    fin, died = person["fin"], date.fromisoformat(person["death_date"])
    grant = _grant(fin, person["disability_group"], JANUARY)
    death = country_event(country_file, fin, "death_registered")
    app = build(Settings(database_url=store_url, country=country_file))
    db.upgrade(app.engine)

    granted_at = JANUARY
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
    grant = _grant(fin, found[0]["disability_group"], JANUARY)
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


def test_a_grant_handled_after_a_later_death_ends_at_the_death(
    store_url: str, country_file: Path, tmp_path: Path
) -> None:
    # Two workers can handle one person's events out of order: here the death (registered in
    # the spring) is handled first, and the disability status reported in January after it.
    # Its case asks the registries as of January, sees the person alive and grants; the stop,
    # already applied, must still end the new right at the death.
    person = _disabled_who_dies(country_file)
    fin, died = person["fin"], date.fromisoformat(person["death_date"])
    app = build(Settings(database_url=store_url, country=country_copy(country_file, tmp_path)))
    db.upgrade(app.engine)
    death = country_event(country_file, fin, "death_registered")
    death_at = datetime.fromisoformat(death["occurred_at"])
    take_events(app, [death], death_at)
    run_at(app, death_at + timedelta(hours=1))
    assert [s["fin"] for s in rows(app.engine, stops)] == [fin]

    granted_at = JANUARY
    grant = _grant(fin, person["disability_group"], granted_at)
    take_events(app, [grant], granted_at)  # received in January, handled now
    later = death_at + timedelta(days=50)
    run_at(app, later, later + timedelta(days=10))

    ent = rows(app.engine, entitlements, entitlements.c.fin == fin, entitlements.c.program_id == "disability_payment")
    assert len(ent) == 1, "the January status was not granted (as of January the person was alive)"
    assert ent[0]["status"] == "ended" and ent[0]["end_date"] == died, ent[0]
    assert "death_registered" in ent[0]["ended_reason"]
    monthly = [p for p in rows(app.engine, payments, payments.c.entitlement_id == ent[0]["id"])]
    owed = {p["period"] for p in monthly if p["status"] != "cancelled"}
    assert owed == {f"2025-{m:02d}" for m in range(1, died.month + 1)}, sorted(owed)
    assert all(p["status"] == "cancelled" for p in monthly if p["period_start"] > died)


def test_a_stop_leaves_a_right_that_began_after_its_date(
    store_url: str, country_file: Path, tmp_path: Path
) -> None:
    # A status ended last year and granted again in January: the old end, handled late, does
    # not end the new right.
    person = _disabled_who_dies(country_file)
    fin = person["fin"]
    app = build(Settings(database_url=store_url, country=country_copy(country_file, tmp_path)))
    db.upgrade(app.engine)
    granted_at = JANUARY
    grant = _grant(fin, person["disability_group"], granted_at)
    take_events(app, [grant], granted_at)
    run_at(app, granted_at + timedelta(hours=1), granted_at + timedelta(days=10))
    (ent,) = rows(app.engine, entitlements, entitlements.c.fin == fin)
    assert ent["status"] == "active"

    old_end = {"kind": "end", "case_id": ent["id"], "fin": fin, "end_date": date(2024, 11, 30),
               "programs": ["disability_payment"], "reason": "disability_status_ended on 2024-11-30"}
    on_the_day = {**old_end, "end_date": ent["start_date"], "reason": "death_registered on the day"}
    moment = granted_at + timedelta(days=20)
    with app.engine.begin() as conn:
        repository.end_rights(conn, [old_end], moment)
    assert rows(app.engine, entitlements, entitlements.c.id == ent["id"])[0]["status"] == "active"
    with app.engine.begin() as conn:
        repository.end_rights(conn, [on_the_day], moment)
    after = rows(app.engine, entitlements, entitlements.c.id == ent["id"])[0]
    assert (after["status"], after["end_date"]) == ("ended", ent["start_date"])
    assert sorted(s["reason"] for s in rows(app.engine, stops)) == sorted(
        [old_end["reason"], on_the_day["reason"]])


def test_a_stop_waits_for_a_new_right_of_the_same_person_to_commit(postgres_url: str) -> None:
    # PostgreSQL: a writer of new rights and a writer of a stop of the same person take turns.
    engine = create_engine(postgres_url)
    taken = threading.Event()
    try:
        with engine.connect() as granting:
            with granting.begin():
                repository.lock_people(granting, shared=["AAAAAAA", "BBBBBBB"])
                with engine.begin() as granting_too:  # new rights do not wait for each other
                    repository.lock_people(granting_too, shared=["BBBBBBB"])

                def stop() -> None:
                    with engine.begin() as stopping:
                        repository.lock_people(stopping, exclusive=["BBBBBBB"])
                        taken.set()

                other = threading.Thread(target=stop)
                other.start()
                assert not taken.wait(0.5), "the stop did not wait for the new right"
            assert taken.wait(10), "the stop did not go on once the new right was committed"
            other.join()
    finally:
        engine.dispose()
