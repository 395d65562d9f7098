"""The programs beyond the foundation, through the whole pipeline on real stores: one case per
orphan paid to the surviving parent until 18, a means-tested allowance until the child is 3, a
notice for a right haqq cannot assign, and an event the sweep raised for one program only."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path

import pytest

from haqq.adapters.store import db
from haqq.adapters.store.schema import cases, decisions, entitlements, notifications
from haqq.bootstrap import Haqq, Settings, build
from haqq.pipeline.work import BAKU
from tests.helpers import country_event, country_query, generated_country, rows, run_at, take_events

DAY = timedelta(days=1)


@pytest.fixture(scope="module")
def country_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generated_country(tmp_path_factory, population=30_000, seed=11)


@pytest.fixture
def app(store_url: str, country_file: Path) -> Haqq:
    haqq = build(Settings(database_url=store_url, country=country_file))
    db.upgrade(haqq.engine)
    return haqq


def consent_and_pay(app: Haqq, start: datetime) -> None:
    """Run long enough for consent replies, the bank's account and the payments."""
    run_at(app, *(start + k * DAY for k in (0, 1, 2, 3, 4, 6, 8, 10)))


def test_a_parent_dies_each_minor_child_gets_a_case_paid_to_the_surviving_parent(app: Haqq, country_file: Path) -> None:
    found = country_query(
        country_file,
        "SELECT p.fin, p.death_date, count(*) AS kids FROM persons p JOIN persons c "
        "ON (c.mother_fin = p.fin OR c.father_fin = p.fin) AND c.birth_date > '2008-01-01' "
        "AND c.death_date IS NULL "
        "WHERE p.death_date IS NOT NULL GROUP BY p.fin HAVING kids >= 2 ORDER BY p.fin LIMIT 1",
    )
    assert found, "the country has no parent of two minors who dies this year"
    deceased = found[0]["fin"]
    death = country_event(country_file, deceased, "death_registered")
    at = datetime.fromisoformat(death["occurred_at"])
    take_events(app, [death], at)
    consent_and_pay(app, at)
    made = rows(app.engine, cases, cases.c.program_id == "survivors_pension")
    kids = country_query(
        country_file,
        "SELECT fin, birth_date, mother_fin, father_fin FROM persons WHERE (mother_fin = ? OR father_fin = ?) "
        "AND birth_date > ? AND death_date IS NULL",
        (deceased, deceased, (at.date() - timedelta(days=18 * 365 + 4)).isoformat()),
    )
    assert sorted(c["subject_fin"] for c in made) == sorted(k["fin"] for k in kids)
    assert len({c["id"] for c in made}) == len(made) >= 2
    survivor = {k["mother_fin"] if k["father_fin"] == deceased else k["father_fin"] for k in kids}
    assert {c["beneficiary_fin"] for c in made if c["review_reason"] is None} <= survivor
    for right in rows(app.engine, entitlements, entitlements.c.program_id == "survivors_pension"):
        kid = next(k for k in kids if k["fin"] == right["subject_fin"])
        born = date.fromisoformat(kid["birth_date"])
        # Monthly until 18: the last day is the day before the 18th birthday.
        assert right["end_date"] == date(born.year + 18, born.month, born.day) - DAY
        assert right["once_key"] == kid["fin"]


def test_the_child_care_allowance_is_means_tested_with_the_family_it_read(app: Haqq, country_file: Path) -> None:
    births = country_query(
        country_file,
        "SELECT e.fin FROM life_events e JOIN persons m ON m.fin = json_extract(e.payload, '$.mother_fin') "
        "WHERE e.type = 'birth_registered' AND m.phone IS NOT NULL AND m.resident = 1 "
        "AND m.mia_birth_date IS NULL AND m.death_date IS NULL ORDER BY e.fin LIMIT 12",
    )
    events = [country_event(country_file, b["fin"], "birth_registered") for b in births]
    first = min(datetime.fromisoformat(e["occurred_at"]) for e in events)
    take_events(app, events, first)
    consent_and_pay(app, max(datetime.fromisoformat(e["occurred_at"]) for e in events))
    care = rows(app.engine, cases, cases.c.program_id == "child_care_allowance")
    assert len(care) == len(events)
    traces = {d["case_id"]: d for d in rows(app.engine, decisions)}
    tested = [traces[c["id"]] for c in care if c["id"] in traces]
    assert tested
    outcomes = set()
    for decision in tested:
        trace = decision["trace"]
        read = {f["name"]: f for f in trace["facts"]}
        outcomes.add(decision["branch"])
        if "beneficiary_known" in trace["checks_passed"] and "consistent_records" in trace["checks_passed"]:
            # The means test read the mother's and her husband's incomes and the children.
            assert read["beneficiary.monthly_income"]["source"] in ("tax/income", "default")
            assert "beneficiary.spouse.exists" in read
            assert "beneficiary.children.birth_date" in read
            income = read["beneficiary.monthly_income"]["value"] + read["beneficiary.spouse.monthly_income"]["value"]
            members = 1 + read["beneficiary.spouse.exists"]["value"] + sum(
                1 for d in read["beneficiary.children.birth_date"]["value"]
                if date.fromisoformat(d) > date.fromisoformat(trace["date"]) - timedelta(days=18 * 365 + 4)
            )
            under = income // members < 24600
            assert (decision["branch"] == "standard") == under, trace
    for right in rows(app.engine, entitlements, entitlements.c.program_id == "child_care_allowance"):
        born = date.fromisoformat(country_query(country_file, "SELECT birth_date FROM persons WHERE fin = ?", (right["subject_fin"],))[0]["birth_date"])
        assert right["end_date"] == date(born.year + 3, born.month, born.day) - DAY
    assert outcomes & {"standard", "means_test"}


def test_unemployment_insurance_is_a_notice_not_an_assignment(app: Haqq, country_file: Path) -> None:
    found = country_query(
        country_file,
        "SELECT e.fin FROM life_events e JOIN persons p ON p.fin = e.fin WHERE e.type = 'employment_terminated' "
        "AND p.phone IS NOT NULL AND p.resident = 1 AND p.insurance_months >= 12 AND p.death_date IS NULL "
        "AND p.birth_date > '1965-01-01' ORDER BY e.fin LIMIT 3",
    )
    events = [country_event(country_file, f["fin"], "employment_terminated") for f in found]
    at = max(datetime.fromisoformat(e["occurred_at"]) for e in events)
    take_events(app, events, at)
    run_at(app, at, at + DAY)
    made = rows(app.engine, cases, cases.c.program_id == "unemployment_insurance")
    assert len(made) == 3
    assert {c["state"] for c in made} == {"closed"}
    assert rows(app.engine, entitlements, entitlements.c.program_id == "unemployment_insurance") == []
    sms = rows(app.engine, notifications, notifications.c.kind == "may_claim")
    assert len(sms) == 3 and all("/" in s["text"] for s in sms)


def test_an_event_naming_one_program_starts_only_that_program(app: Haqq, country_file: Path) -> None:
    birth = country_query(country_file, "SELECT fin FROM life_events WHERE type = 'birth_registered' ORDER BY fin LIMIT 1")[0]
    event = country_event(country_file, birth["fin"], "birth_registered")
    event = {**event, "event_id": "SWEEP-1", "source": "sweep", "payload": {**event["payload"], "program": "child_care_allowance"}}
    at = datetime(2025, 12, 1, 10, tzinfo=BAKU)
    take_events(app, [event], at)
    run_at(app, at)
    assert [c["program_id"] for c in rows(app.engine, cases)] == ["child_care_allowance"]
