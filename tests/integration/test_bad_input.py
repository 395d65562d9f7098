"""Bad input, on both stores: what the world sends haqq is refused, queued for a person, or
taken in spite of its disorder, and never crashes the pipeline or half-writes a batch.

Every test runs on a real small country (2,900 people, seed 7) and a real store, through
intake and the worker on a simulated clock, and asserts on the store's tables.
"""

from __future__ import annotations

import shutil
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from haqq.adapters.store import bulk, db
from haqq.adapters.store.schema import (
    accounts,
    case_transitions,
    cases,
    data_access_log,
    decisions,
    entitlements,
    events,
    notifications,
    payments,
)
from haqq.bootstrap import Haqq, Settings, build
from haqq.country import generate_country
from haqq.domain.events import EventType
from haqq.pipeline import intake, pay, verify
from haqq.pipeline import worker as worker_module
from tests.helpers import (
    POPULATION,
    SEED,
    catalogue_of,
    country_event,
    country_query,
    event_json,
    rows,
    run_at,
    take_events,
    take_in,
    unused_fins,
    write_jsonl,
)

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
#: A moment in the country's year at which synthetic test events happen.
JUNE = datetime.fromisoformat("2025-06-02T11:00:00+04:00")
#: Tables a batch of cases writes to.
BATCH_TABLES = (cases, case_transitions, decisions, entitlements, payments, notifications, data_access_log, accounts)


@pytest.fixture(scope="module")
def pristine_country(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("country") / "country.db"
    generate_country(path, population=POPULATION, seed=SEED, year=2025)
    return path


@pytest.fixture
def country(pristine_country: Path, tmp_path: Path) -> Path:
    """A copy per test: the simulated bank and SMS gateway write into the country file."""
    path = tmp_path / "country.db"
    shutil.copyfile(pristine_country, path)
    return path


@pytest.fixture
def app(store_url: str, country: Path, tmp_path: Path) -> Iterator[Haqq]:
    # The programs these tests were written for: one case per birth, per death, per status.
    programs = catalogue_of(tmp_path / "programs")
    haqq = build(Settings(database_url=store_url, country=country, catalogue_dir=programs))
    db.upgrade(haqq.engine)
    yield haqq
    haqq.engine.dispose()


def count(app: Haqq, table: Any, *where: Any) -> int:
    with app.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table).where(*where)).scalar_one())


def births(country: Path, limit: int) -> list[dict[str, Any]]:
    found = country_query(
        country,
        "SELECT id, type, fin, occurred_at, payload, source FROM life_events "
        "WHERE type = 'birth_registered' ORDER BY occurred_at, id LIMIT ?",
        (limit,),
    )
    assert len(found) == limit, "the country has too few births for this test"
    return [event_json(r) for r in found]


def at(raw: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(raw["occurred_at"])


def transitions_of(app: Haqq, case_id: str) -> list[dict[str, Any]]:
    return sorted(rows(app.engine, case_transitions, case_transitions.c.case_id == case_id), key=lambda t: t["id"])


# --- refused at intake ------------------------------------------------------------------------


def test_malformed_json_lines_are_refused_by_line_and_the_good_ones_taken(
    app: Haqq, country: Path, tmp_path: Path
) -> None:
    good = births(country, 3)
    path = write_jsonl(
        tmp_path / "feed.jsonl",
        [
            good[0],
            '{"event_id": "CR-X-1", "type": "birth_registered", "fin": ',  # line 2: cut short
            "",  # line 3: blank, skipped without complaint
            good[1],
            "this is not JSON at all",  # line 5
            "{'event_id': 'CR-X-2'}",  # line 6: Python, not JSON
            good[2],
        ],
    )
    report = intake.IntakeReport()
    parsed = intake.parse_all(intake.read_jsonl(path), report)
    with app.engine.begin() as conn:
        report.merge(intake.store(conn, parsed, received_at=at(good[2]), wall=app.wall()))

    assert [where for where, _ in report.rejected] == ["feed.jsonl:2", "feed.jsonl:5", "feed.jsonl:6"]
    for _, reason in report.rejected:
        assert reason.startswith("malformed JSON"), reason
        assert "column" in reason
    assert report.accepted == 3
    assert report.duplicates == 0
    stored = rows(app.engine, events)
    assert sorted(e["source_event_id"] for e in stored) == sorted(g["event_id"] for g in good)
    assert {e["status"] for e in stored} == {"received"}

    run_at(app, at(good[2]) + HOUR)
    stored = rows(app.engine, events)
    assert {e["status"] for e in stored} == {"triggered"}
    made = rows(app.engine, cases)
    assert Counter(c["program_id"] for c in made) == {"birth_benefit": 3}
    assert {c["subject_fin"] for c in made} == {g["fin"] for g in good}


def test_unknown_event_type_is_refused_with_the_known_types(app: Haqq, country: Path) -> None:
    good = births(country, 1)[0]
    odd = {**good, "event_id": "CR-2025-ODD-1", "type": "adoption_registered"}
    also_odd = {**good, "event_id": "CR-2025-ODD-2", "type": "BIRTH_REGISTERED"}
    report = take_in(app, [("feed.jsonl:1", odd), ("feed.jsonl:2", good), ("feed.jsonl:3", also_odd)], at(good))

    assert [where for where, _ in report.rejected] == ["feed.jsonl:1", "feed.jsonl:3"]
    first, second = (reason for _, reason in report.rejected)
    assert "'adoption_registered'" in first
    assert "'BIRTH_REGISTERED'" in second
    for reason in (first, second):
        assert "unknown event type" in reason
        for known in EventType:
            assert known.value in reason, f"{known.value} missing from: {reason}"
    assert report.accepted == 1
    assert [e["source_event_id"] for e in rows(app.engine, events)] == [good["event_id"]]

    run_at(app, at(good) + HOUR)
    assert [c["subject_fin"] for c in rows(app.engine, cases)] == [good["fin"]]


def test_duplicate_event_ids_are_counted_and_make_one_case(app: Haqq, country: Path) -> None:
    birth = births(country, 1)[0]
    # The same source and id twice, and once more with other content: all one event.
    changed = {**birth, "occurred_at": "2025-03-01T10:00:00+04:00"}
    report = take_events(app, [birth, birth, changed], at(birth))
    assert (report.accepted, report.duplicates, report.rejected) == (1, 2, [])

    run_at(app, at(birth) + HOUR, at(birth) + 10 * DAY)
    again = take_events(app, [birth, changed], at(birth) + 10 * DAY)
    assert (again.accepted, again.duplicates) == (0, 2)
    run_at(app, at(birth) + 11 * DAY)

    stored = rows(app.engine, events)
    assert len(stored) == 1
    assert stored[0]["occurred_at"] == at(birth)  # the first copy is the one kept
    made = rows(app.engine, cases)
    assert [(c["program_id"], c["subject_fin"]) for c in made] == [("birth_benefit", birth["fin"])]
    starts = [t for t in rows(app.engine, case_transitions) if t["target"] == "detected"]
    assert len(starts) == 1
    assert count(app, entitlements) <= 1
    assert count(app, payments) <= 1
    assert count(app, decisions) == 1


# --- taken, and sent to a person --------------------------------------------------------------


def test_an_unknown_fin_goes_to_review_naming_the_registry(app: Haqq, country: Path) -> None:
    nobody, stranger, baby, mother = unused_fins(country, 4)
    raws = [
        {"source": "test", "event_id": "T-1", "type": "death_registered", "fin": nobody,
         "occurred_at": JUNE.isoformat(), "payload": {}},
        {"source": "test", "event_id": "T-2", "type": "disability_status_granted", "fin": stranger,
         "occurred_at": JUNE.isoformat(), "payload": {"group": 2}},
        {"source": "test", "event_id": "T-3", "type": "birth_registered", "fin": baby,
         "occurred_at": JUNE.isoformat(), "payload": {"mother_fin": mother}},
    ]
    report = take_events(app, raws, JUNE)
    assert (report.accepted, report.rejected) == (3, [])

    run_at(app, JUNE + HOUR, JUNE + 10 * DAY)  # no exception: the pipeline copes

    assert {e["status"] for e in rows(app.engine, events)} == {"triggered"}
    made = rows(app.engine, cases)
    assert Counter(c["program_id"] for c in made) == {
        "funeral_allowance": 1, "stop_on_death": 1, "disability_payment": 1, "birth_benefit": 1,
    }
    for case in made:
        assert case["state"] == "needs_review", case
        assert "civil registry" in case["review_reason"], case
        assert case["due_at"] is None
        steps = transitions_of(app, case["id"])
        assert steps[0]["target"] == "detected"
        assert steps[-1]["target"] == "needs_review"
        assert steps[-1]["cause"] == case["review_reason"]
    for table in (entitlements, payments, notifications, accounts):
        assert count(app, table) == 0, table.name


def test_events_out_of_order_death_before_the_earlier_birth(app: Haqq, country: Path) -> None:
    family = country_query(
        country,
        "SELECT e.fin AS child, m.fin AS mother, f.fin AS father, m.death_date "
        "FROM life_events e "
        "JOIN persons m ON m.fin = json_extract(e.payload, '$.mother_fin') "
        "JOIN persons f ON f.fin = json_extract(e.payload, '$.father_fin') "
        "WHERE e.type = 'birth_registered' AND m.death_date IS NOT NULL "
        "AND f.death_date IS NULL AND f.resident = 1 ORDER BY e.occurred_at",
    )
    assert family, "the country has no mother who died after giving birth"
    child, mother, father = family[0]["child"], family[0]["mother"], family[0]["father"]
    birth = country_event(country, child, "birth_registered")
    death = country_event(country, mother, "death_registered")
    assert at(birth) < at(death)

    # The death arrives and is processed first ...
    take_events(app, [death], at(death))
    run_at(app, at(death) + HOUR, at(death) + 6 * DAY)
    # ... then the registry sends the earlier birth.
    late = at(death) + 6 * DAY
    assert take_events(app, [birth], late).accepted == 1
    run_at(app, late + HOUR, late + 7 * DAY, late + 14 * DAY)

    stored = {e["type"]: e for e in rows(app.engine, events)}
    assert stored["death_registered"]["status"] == "triggered"
    assert stored["birth_registered"]["status"] == "triggered"
    stop = rows(app.engine, cases, cases.c.program_id == "stop_on_death")
    assert [(c["beneficiary_fin"], c["state"]) for c in stop] == [(mother, "closed")]
    benefit = rows(app.engine, cases, cases.c.program_id == "birth_benefit")
    assert len(benefit) == 1
    # The mother is dead by the time the birth is handled: the father receives the benefit.
    assert benefit[0]["beneficiary_fin"] == father, (
        f"birth benefit went to {benefit[0]['beneficiary_fin']} (mother {mother}, died "
        f"{family[0]['death_date']}), not to the father {father}"
    )
    assert rows(app.engine, payments, payments.c.fin == mother) == []
    paid = rows(app.engine, payments, payments.c.program_id == "birth_benefit")
    assert [(p["fin"], p["status"]) for p in paid] == [(father, "accepted")]
    assert paid[0]["amount"] > 0


def test_no_phone_automatic_program_still_pays_and_goes_to_review(app: Haqq, country: Path) -> None:
    mothers = country_query(
        country,
        "SELECT fin FROM persons p WHERE sex = 'F' AND phone IS NULL AND death_date IS NULL "
        "AND mia_birth_date IS NULL AND resident = 1 AND doc_valid_until > '2026-01-01' "
        "AND birth_date BETWEEN '1981-01-01' AND '2005-01-01' "
        "AND NOT EXISTS (SELECT 1 FROM bank_accounts b WHERE b.fin = p.fin) ORDER BY fin LIMIT 2",
    )
    assert len(mothers) == 2, "the country has too few women without a phone"
    babies = unused_fins(country, 2)
    raws = [
        {"source": "test", "event_id": f"T-B{i}", "type": "birth_registered", "fin": baby,
         "occurred_at": JUNE.isoformat(), "payload": {"mother_fin": m["fin"]}}
        for i, (baby, m) in enumerate(zip(babies, mothers, strict=True))
    ]
    take_events(app, raws, JUNE)
    # The bank opens an account 1-5 days after being asked.
    run_at(app, JUNE + HOUR, JUNE + 6 * DAY, JUNE + 7 * DAY)

    made = rows(app.engine, cases)
    assert sorted(c["beneficiary_fin"] for c in made) == sorted(m["fin"] for m in mothers)
    for case in made:
        assert case["program_id"] == "birth_benefit"
        assert case["state"] == "needs_review", case
        assert "mobile number" in case["review_reason"]
        targets = [t["target"] for t in transitions_of(app, case["id"])]
        assert targets[-2:] == ["payment_scheduled", "needs_review"]
        decision = rows(app.engine, decisions, decisions.c.case_id == case["id"])
        assert [d["outcome"] for d in decision] == ["granted"]
        paid = rows(app.engine, payments, payments.c.case_id == case["id"])
        assert len(paid) == 1
        assert paid[0]["status"] in ("scheduled", "accepted")
        assert paid[0]["amount"] == decision[0]["amount"] > 0
        account = rows(app.engine, accounts, accounts.c.fin == case["beneficiary_fin"])
        assert account and account[0]["status"] == "open"
        assert paid[0]["iban"] == account[0]["iban"]
        assert rows(app.engine, notifications, notifications.c.case_id == case["id"]) == []


def test_a_payment_to_an_account_found_in_the_same_batch_carries_its_iban(
    app: Haqq, country: Path
) -> None:
    """A beneficiary who already banks with the partner bank is paid into that account
    (found while testing the bad-input paths: the IBAN was lost)."""
    found = country_query(
        country,
        "SELECT e.fin AS child, m.fin AS mother, b.iban FROM life_events e "
        "JOIN persons m ON m.fin = json_extract(e.payload, '$.mother_fin') "
        "JOIN bank_accounts b ON b.fin = m.fin AND b.closed_at IS NULL "
        "WHERE e.type = 'birth_registered' AND m.death_date IS NULL AND m.phone IS NOT NULL "
        "AND m.mia_birth_date IS NULL AND m.resident = 1 ORDER BY e.occurred_at LIMIT 1",
    )
    assert found, "the country has no mother with a bank account"
    birth = country_event(country, found[0]["child"], "birth_registered")
    take_events(app, [birth], at(birth))
    # Paid in the day's run; the bank's status report comes two hours later.
    run_at(app, at(birth) + HOUR, at(birth) + 4 * HOUR)

    (case,) = rows(app.engine, cases)
    assert case["beneficiary_fin"] == found[0]["mother"]
    (paid,) = rows(app.engine, payments)
    assert paid["iban"] == found[0]["iban"], f"payment {paid['key']} has IBAN {paid['iban']!r}"
    assert paid["status"] == "accepted", paid["reason"]


def test_registries_that_disagree_send_the_case_to_review(app: Haqq, country: Path) -> None:
    odd = country_query(
        country,
        "SELECT fin, birth_date, mia_birth_date FROM persons WHERE mia_birth_date IS NOT NULL "
        "AND death_date IS NULL AND resident = 1 AND birth_date <= '2007-01-01' "
        "AND doc_valid_until > '2026-01-01' ORDER BY fin",
    )
    assert len(odd) >= 2, "the country has too few persons the registries disagree on"
    raws = [
        {"source": "test", "event_id": f"T-D{i}", "type": "disability_status_granted",
         "fin": p["fin"], "occurred_at": JUNE.isoformat(), "payload": {"group": 2}}
        for i, p in enumerate(odd)
    ]
    take_events(app, raws, JUNE)
    run_at(app, JUNE + HOUR)

    made = {c["beneficiary_fin"]: c for c in rows(app.engine, cases)}
    assert set(made) == {p["fin"] for p in odd}
    for person in odd:
        case = made[person["fin"]]
        assert case["state"] == "needs_review"
        reason = case["review_reason"]
        assert "registries disagree on the beneficiary's birth date" in reason
        assert person["birth_date"] in reason and person["mia_birth_date"] in reason
        (decision,) = rows(app.engine, decisions, decisions.c.case_id == case["id"])
        assert decision["outcome"] == "needs_review"
        assert decision["trace"]["reasons"][0]["code"] == "consistent_records"
    for table in (entitlements, payments, notifications):
        assert count(app, table) == 0, table.name


# --- nothing half-written ---------------------------------------------------------------------


def _fail_halfway(step: Any) -> Any:
    """The step, run on the first half of its group, then failing."""

    def run(group: Any, ctx: Any) -> None:
        step(list(group)[: max(1, len(group) // 2)], ctx)
        raise RuntimeError("injected failure midway through the batch")

    return run


def _patch_step(monkeypatch: pytest.MonkeyPatch, target: Any) -> None:
    patched = tuple((states, _fail_halfway(step) if step is target else step) for states, step in worker_module.STEPS)
    assert patched != worker_module.STEPS
    monkeypatch.setattr(worker_module, "STEPS", patched)


@pytest.mark.parametrize("where", ["in_a_step", "while_writing"])
def test_a_failing_batch_writes_nothing_and_a_rerun_finishes_it(
    app: Haqq, country: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    batch = births(country, 8)
    take_events(app, batch, at(batch[-1]))
    moment = at(batch[-1]) + HOUR
    written_before_failure: list[int] = []
    if where == "in_a_step":
        _patch_step(monkeypatch, verify.run)
    else:
        real = bulk.prepare_insert

        def prepare_insert(dialect: str, table: Any, values: Any, *args: Any, **kw: Any) -> Any:
            write = real(dialect, table, values, *args, **kw)
            if table is not accounts:
                return write

            def fail(conn: Any) -> Any:
                # Accounts are written after cases, transitions, decisions and the access log.
                written_before_failure.append(
                    conn.execute(select(func.count()).select_from(case_transitions)).scalar_one()
                )
                raise RuntimeError("injected failure while writing the batch")

            return fail

        monkeypatch.setattr(bulk, "prepare_insert", prepare_insert)

    with pytest.raises(RuntimeError, match="injected failure"):
        run_at(app, moment)

    if where == "while_writing":
        assert written_before_failure and written_before_failure[0] > 0, "the failure came too early"
    for table in BATCH_TABLES:
        assert count(app, table) == 0, f"{table.name} holds rows of the failed batch"
    assert {e["status"] for e in rows(app.engine, events)} == {"received"}

    monkeypatch.undo()
    run_at(app, moment)

    assert {e["status"] for e in rows(app.engine, events)} == {"triggered"}
    made = rows(app.engine, cases)
    assert sorted(c["subject_fin"] for c in made) == sorted(b["fin"] for b in batch)
    assert {c["program_id"] for c in made} == {"birth_benefit"}
    assert count(app, decisions) == len(made)
    starts = Counter(t["case_id"] for t in rows(app.engine, case_transitions) if t["target"] == "detected")
    assert starts == dict.fromkeys((c["id"] for c in made), 1)
    assert {c["state"] for c in made} <= {"account_requested", "closed", "needs_review"}


def test_a_failing_later_unit_writes_nothing_and_a_rerun_finishes_it(
    app: Haqq, country: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    batch = births(country, 8)
    take_events(app, batch, at(batch[-1]))
    run_at(app, at(batch[-1]) + HOUR)
    waiting = {c["id"] for c in rows(app.engine, cases, cases.c.state == "account_requested")}
    assert len(waiting) >= 2, "too few cases wait for the bank"
    payments_before = {p["key"] for p in rows(app.engine, payments)}
    steps_before = count(app, case_transitions)

    _patch_step(monkeypatch, pay.run)
    later = at(batch[-1]) + 10 * DAY  # the bank has answered by then
    with pytest.raises(RuntimeError, match="injected failure"):
        run_at(app, later)

    assert {p["key"] for p in rows(app.engine, payments)} == payments_before
    assert count(app, case_transitions) == steps_before
    assert {c["state"] for c in rows(app.engine, cases, cases.c.id.in_(waiting))} == {"account_requested"}

    monkeypatch.undo()
    run_at(app, later)
    for case_id in waiting:
        (case,) = rows(app.engine, cases, cases.c.id == case_id)
        assert case["state"] in ("closed", "needs_review"), case
        assert len(rows(app.engine, payments, payments.c.case_id == case_id)) == 1
        targets = [t["target"] for t in transitions_of(app, case_id)]
        assert targets.count("payment_scheduled") == 1
