"""The review queue on both stores: cases the pipeline sent to a person (the registries disagree
on the beneficiary's birth date), worked by caseworkers and supervisors through
:mod:`haqq.office.review`, then carried on by the worker."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from haqq.adapters.store import db, repository
from haqq.adapters.store.schema import (
    case_transitions,
    cases,
    data_access_log,
    decisions,
    entitlements,
    payments,
    review_actions,
    reviews,
    stops,
)
from haqq.bootstrap import Haqq, Settings, build
from haqq.country import generate_country
from haqq.domain.access import AccessDenied, Principal, Role
from haqq.domain.review import FourEyes, InvalidReview, InvalidReviewStep, Stage
from haqq.office import review
from haqq.office.review import CannotGrant, NoSuchCase, NotUnderReview
from tests.helpers import POPULATION, SEED, catalogue_of, country_query, rows, run_at, take_events

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
JUNE = datetime.fromisoformat("2025-06-02T11:00:00+04:00")
#: After the pipeline sent the cases to review.
T0 = JUNE + 2 * HOUR
THRESHOLD = 50_000

ALICE = Principal("alice", Role.CASEWORKER, "Alice Caseworker")
BOB = Principal("bob", Role.CASEWORKER, "Bob Caseworker")
SUE = Principal("sue", Role.SUPERVISOR, "Sue Supervisor")
SAM = Principal("sam", Role.SUPERVISOR, "Sam Supervisor")
AUDITOR = Principal("audrey", Role.AUDITOR, "Audrey Auditor")
#: The tables a review step writes to.
TABLES = (cases, case_transitions, decisions, entitlements, reviews, review_actions, data_access_log)


@pytest.fixture(scope="module")
def pristine_country(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("country") / "country.db"
    generate_country(path, population=POPULATION, seed=SEED, year=2025)
    return path


@pytest.fixture
def app(store_url: str, pristine_country: Path, tmp_path: Path) -> Iterator[Haqq]:
    country = tmp_path / "country.db"
    shutil.copyfile(pristine_country, country)
    haqq = build(Settings(database_url=store_url, country=country, catalogue_dir=catalogue_of(tmp_path / "programs")))
    db.upgrade(haqq.engine)
    yield haqq
    haqq.engine.dispose()


def review_cases(app: Haqq, n: int = 3) -> list[dict[str, Any]]:
    """``n`` disability cases in needs_review: the registries disagree on the person's birth date
    (people with a phone, so the pipeline can tell them when paid)."""
    country = Path(app.settings.country)
    odd = country_query(
        country,
        "SELECT fin FROM persons WHERE mia_birth_date IS NOT NULL AND death_date IS NULL AND resident = 1 "
        "AND birth_date <= '2007-01-01' AND doc_valid_until > '2026-01-01' AND phone IS NOT NULL ORDER BY fin",
    )
    assert len(odd) >= n, "the country has too few persons the registries disagree on"
    raws = [
        {"source": "test", "event_id": f"T-R{i}", "type": "disability_status_granted", "fin": p["fin"],
         "occurred_at": JUNE.isoformat(), "payload": {"group": 2}}
        for i, p in enumerate(odd[:n])
    ]
    take_events(app, raws, JUNE)
    run_at(app, JUNE + HOUR)
    made = rows(app.engine, cases, cases.c.state == "needs_review")
    assert len(made) == n, [c["state"] for c in rows(app.engine, cases)]
    return sorted(made, key=lambda c: c["id"])


def snapshot(app: Haqq) -> dict[str, int]:
    with app.engine.connect() as conn:
        counts = {t.name: conn.execute(select(func.count()).select_from(t)).scalar_one() for t in TABLES}
        counts["versions"] = int(conn.execute(select(func.sum(cases.c.version))).scalar_one() or 0)
    return counts


def one(app: Haqq, table: Any, *where: Any) -> dict[str, Any]:
    found = rows(app.engine, table, *where)
    assert len(found) == 1, found
    return found[0]


def test_the_queue_lists_cases_oldest_first_with_their_stage(app: Haqq) -> None:
    made = review_cases(app)
    with app.engine.begin() as conn:
        queue = review.queue(conn, ALICE, catalogue=app.catalogue, at=T0)
        assert {i.case_id for i in queue} == {c["id"] for c in made}
        assert all(i.stage is Stage.OPEN and i.assignee is None for i in queue)
        assert all("registries disagree" in (i.reason or "") for i in queue)
        assert all(i.program_name["en"] for i in queue)
        assert [i.waiting_since for i in queue] == sorted(i.waiting_since for i in queue if i.waiting_since)
        review.take(conn, ALICE, made[0]["id"], T0)
        taken = review.queue(conn, BOB, stage="taken")
        assert [(i.case_id, i.assignee) for i in taken] == [(made[0]["id"], "alice")]
        assert {i.case_id for i in review.queue(conn, BOB, stage="open")} == {c["id"] for c in made[1:]}
        page = review.queue(conn, BOB, limit=1, offset=1)
        assert len(page) == 2  # one, and one more: there is a next page
        with pytest.raises(AccessDenied):
            review.queue(conn, AUDITOR)
    # Every look is in the person's access log.
    logged = rows(app.engine, data_access_log, data_access_log.c.requester == "caseworker:alice")
    assert {r["fin"] for r in logged} >= {c["beneficiary_fin"] for c in made}


def test_take_and_release(app: Haqq) -> None:
    case_id = review_cases(app, 1)[0]["id"]
    with app.engine.begin() as conn:
        assert review.take(conn, ALICE, case_id, T0).stage is Stage.TAKEN
    with app.engine.begin() as conn, pytest.raises(InvalidReviewStep, match="taken"):
        review.take(conn, BOB, case_id, T0)
    with app.engine.begin() as conn, pytest.raises(InvalidReviewStep, match="alice has taken it"):
        review.release(conn, BOB, case_id, T0)
    with app.engine.begin() as conn:
        assert review.release(conn, ALICE, case_id, T0).stage is Stage.OPEN
    acts = [a["action"] for a in rows(app.engine, review_actions, review_actions.c.case_id == case_id)]
    assert acts == ["take", "release"]
    assert one(app, cases, cases.c.id == case_id)["version"] >= 2
    assert one(app, cases, cases.c.id == case_id)["state"] == "needs_review"


def test_a_grant_below_the_threshold_is_paid_by_the_pipeline(app: Haqq) -> None:
    case = review_cases(app, 1)[0]
    before = one(app, decisions, decisions.c.case_id == case["id"])
    assert before["outcome"] == "needs_review"
    with app.engine.begin() as conn:
        review.take(conn, ALICE, case["id"], T0)
        done = review.decide(conn, ALICE, case["id"], "grant", 20_000, "The birth certificate settles it.",
                             T0, catalogue=app.catalogue, threshold=THRESHOLD)
    assert (done.state.value, done.stage) == ("decided", Stage.DONE)
    decision = one(app, decisions, decisions.c.case_id == case["id"])
    assert (decision["outcome"], decision["amount"], decision["branch"]) == ("granted", 20_000, "review")
    assert decision["trace"]["reasons"] == before["trace"]["reasons"]  # what the pipeline found stays
    assert "Alice Caseworker" in decision["trace"]["reviews"][0]["reason"]
    right = one(app, entitlements, entitlements.c.id == case["id"])
    assert (right["amount"], right["status"], right["schedule"]) == (20_000, "pending", "monthly")
    moved = rows(app.engine, case_transitions, case_transitions.c.case_id == case["id"])[-1]
    assert (moved["source"], moved["target"]) == ("needs_review", "decided")
    assert "alice" in moved["cause"] and "birth certificate" in moved["cause"]
    assert one(app, reviews, reviews.c.case_id == case["id"])["stage"] == "done"

    run_at(app, T0 + HOUR, T0 + 4 * HOUR, T0 + 2 * DAY)
    after = one(app, cases, cases.c.id == case["id"])
    assert after["state"] == "closed", rows(app.engine, case_transitions, case_transitions.c.case_id == case["id"])
    paid = rows(app.engine, payments, payments.c.case_id == case["id"])
    assert paid and 0 < paid[0]["amount"] <= 20_000  # the first month, from the event's day


def test_a_grant_on_review_is_held_against_a_stop_applied_meanwhile(app: Haqq) -> None:
    # The person died (the death handled by the pipeline) while their case waited for a
    # caseworker: the grant on review ends at the death, as the pipeline's own grants do.
    case, other = review_cases(app, 2)
    fin, died = case["beneficiary_fin"], JUNE.date()
    death = {"kind": "end", "case_id": case["id"], "fin": fin, "end_date": died, "programs": None,
             "reason": f"death_registered on {died}"}
    with app.engine.begin() as conn:
        repository.end_rights(conn, [death], T0)
    assert [s["fin"] for s in rows(app.engine, stops)] == [fin]
    with app.engine.begin() as conn:
        review.take(conn, ALICE, case["id"], T0)
        review.decide(conn, ALICE, case["id"], "grant", 20_000, "The birth certificate settles it.",
                      T0, catalogue=app.catalogue, threshold=THRESHOLD)
    right = one(app, entitlements, entitlements.c.id == case["id"])
    assert (right["status"], right["end_date"], right["start_date"]) == ("ended", died, died), right
    assert right["ended_reason"] == f"death_registered on {died}"
    run_at(app, T0 + HOUR, T0 + 4 * HOUR, T0 + 2 * DAY)
    paid = rows(app.engine, payments, payments.c.case_id == case["id"])
    # The pipeline carries the case on without reviving the right: the month of the death is
    # paid (from the first day of the right), nothing after it.
    assert one(app, cases, cases.c.id == case["id"])["state"] == "closed"
    assert one(app, entitlements, entitlements.c.id == case["id"])["status"] == "ended"
    assert [p["period"] for p in paid] == ["2025-06"], paid
    # A stop of someone else, or one before the right began, leaves a grant alone.
    before = {**death, "fin": other["beneficiary_fin"], "end_date": date(2025, 6, 1)}
    with app.engine.begin() as conn:
        repository.end_rights(conn, [before], T0)
        review.take(conn, ALICE, other["id"], T0)
        review.decide(conn, ALICE, other["id"], "grant", 20_000, "Settled.", T0, catalogue=app.catalogue,
                      threshold=THRESHOLD)
    assert one(app, entitlements, entitlements.c.id == other["id"])["status"] == "pending"


def test_a_grant_above_the_threshold_waits_for_another_supervisor(app: Haqq) -> None:
    case_id = review_cases(app, 1)[0]["id"]
    with app.engine.begin() as conn:
        done = review.decide(conn, SUE, case_id, "grant", 90_000, "Arrears since March.", T0,
                             catalogue=app.catalogue, threshold=THRESHOLD)
    assert (done.state.value, done.stage) == ("needs_review", Stage.AWAITING_APPROVAL)
    waiting = one(app, reviews, reviews.c.case_id == case_id)
    assert (waiting["proposed_amount"], waiting["proposed_by"]) == (90_000, "sue")
    assert not rows(app.engine, entitlements)
    frozen = snapshot(app)
    # The proposer may not approve it; a caseworker may not at all.
    with app.engine.begin() as conn, pytest.raises(FourEyes):
        review.approve(conn, SUE, case_id, "Looks right.", T0, catalogue=app.catalogue)
    with app.engine.begin() as conn, pytest.raises(AccessDenied):
        review.approve(conn, ALICE, case_id, "Looks right.", T0, catalogue=app.catalogue)
    with app.engine.begin() as conn, pytest.raises(InvalidReview, match="reason"):
        review.approve(conn, SAM, case_id, "  ", T0, catalogue=app.catalogue)
    with app.engine.begin() as conn, pytest.raises(InvalidReviewStep):
        review.decide(conn, ALICE, case_id, "deny", None, "No.", T0, catalogue=app.catalogue, threshold=THRESHOLD)
    assert snapshot(app) == frozen
    with app.engine.begin() as conn:
        done = review.approve(conn, SAM, case_id, "Checked the certificate.", T0, catalogue=app.catalogue)
    assert done.state.value == "decided"
    cause = rows(app.engine, case_transitions, case_transitions.c.case_id == case_id)[-1]["cause"]
    assert "sue" in cause and "Sam Supervisor" in cause
    assert one(app, entitlements, entitlements.c.id == case_id)["amount"] == 90_000


def test_a_rejected_proposal_goes_back_to_the_queue(app: Haqq) -> None:
    case_id = review_cases(app, 1)[0]["id"]
    with app.engine.begin() as conn:
        review.take(conn, ALICE, case_id, T0)
        review.decide(conn, ALICE, case_id, "grant", 90_000, "Arrears.", T0, catalogue=app.catalogue,
                      threshold=THRESHOLD)
        assert review.reject(conn, SAM, case_id, "No arrears are due.", T0).stage is Stage.OPEN
        assert review.take(conn, BOB, case_id, T0).stage is Stage.TAKEN
    acts = [(a["action"], a["by"]) for a in rows(app.engine, review_actions, review_actions.c.case_id == case_id)]
    assert acts == [("take", "alice"), ("propose", "alice"), ("reject", "sam"), ("take", "bob")]


def test_deny_and_rerun(app: Haqq) -> None:
    denied, rerun = (c["id"] for c in review_cases(app, 2))
    with app.engine.begin() as conn:
        review.decide(conn, BOB, denied, "deny", None, "The status was withdrawn.", T0, catalogue=app.catalogue,
                      threshold=THRESHOLD)
        review.decide(conn, BOB, rerun, "rerun", None, "The registry corrected the date.", T0,
                      catalogue=app.catalogue, threshold=THRESHOLD)
    d = one(app, decisions, decisions.c.case_id == denied)
    assert (d["outcome"], d["amount"]) == ("denied", 0)
    c = one(app, cases, cases.c.id == denied)
    assert (c["state"], c["due_at"]) == ("denied", None)
    c = one(app, cases, cases.c.id == rerun)
    assert (c["state"], c["due_at"]) == ("gathering", T0)
    assert not rows(app.engine, decisions, decisions.c.case_id == rerun)
    archived = one(app, review_actions, review_actions.c.case_id == rerun, review_actions.c.action == "superseded")
    assert archived["outcome"] == "needs_review" and "consistent_records" in archived["reason"]
    # The worker runs it again: the registries still disagree, so back to a person, decided afresh.
    run_at(app, T0 + HOUR)
    assert one(app, cases, cases.c.id == rerun)["state"] == "needs_review"
    assert one(app, decisions, decisions.c.case_id == rerun)["outcome"] == "needs_review"
    with app.engine.begin() as conn:
        assert review.queue(conn, BOB, stage="open")[0].case_id == rerun  # a done review is open again


def test_a_step_on_a_case_in_the_wrong_state_writes_nothing(app: Haqq) -> None:
    made = review_cases(app, 2)
    with app.engine.begin() as conn:
        review.decide(conn, BOB, made[0]["id"], "deny", None, "Withdrawn.", T0, catalogue=app.catalogue,
                      threshold=THRESHOLD)
    frozen = snapshot(app)
    for attempt in (
        lambda conn: review.take(conn, ALICE, made[0]["id"], T0),
        lambda conn: review.decide(conn, ALICE, made[0]["id"], "grant", 100, "x", T0, catalogue=app.catalogue,
                                   threshold=THRESHOLD),
        lambda conn: review.release(conn, ALICE, made[1]["id"], T0),
        lambda conn: review.reject(conn, SAM, made[1]["id"], "x", T0),
        lambda conn: review.take(conn, ALICE, "no-such-case", T0),
    ):
        with pytest.raises((NotUnderReview, InvalidReviewStep, NoSuchCase)), app.engine.begin() as conn:
            attempt(conn)
    for bad in (("grant", None, "x"), ("grant", 100, " "), ("deny", 5, "x"), ("maybe", None, "x")):
        with pytest.raises(InvalidReview), app.engine.begin() as conn:
            review.decide(conn, ALICE, made[1]["id"], bad[0], bad[1], bad[2], T0, catalogue=app.catalogue,
                          threshold=THRESHOLD)
    with pytest.raises(ValueError), app.engine.begin() as conn:  # a failure after a write: rolled back
        review.take(conn, ALICE, made[1]["id"], T0)
        raise ValueError("the request failed after the step")
    assert snapshot(app) == frozen


def test_once_per_programs_are_not_granted_twice(app: Haqq) -> None:
    case_id = review_cases(app, 1)[0]["id"]
    program = app.catalogue.programs["disability_payment"]
    with app.engine.begin() as conn:
        case = conn.execute(select(cases).where(cases.c.id == case_id)).one()
    if not program.once_per:
        pytest.skip("disability_payment is not once-per in this catalogue")
    key = case.subject_fin if program.once_per == "subject" else case.beneficiary_fin
    with app.engine.begin() as conn:  # another case of the same person already holds the right
        other = dict(conn.execute(select(cases).where(cases.c.id == case_id)).one()._mapping)
        other.update(id="other-case", event_id=other["event_id"], subject_fin=other["subject_fin"],
                     state="closed", program_id=program.id, beneficiary_fin="ZZZZZ00")
        conn.execute(cases.insert().values(**other))
        conn.execute(entitlements.insert().values(
            id="other-case", program_id=program.id, once_key=key, fin=case.beneficiary_fin,
            subject_fin=case.subject_fin, schedule="monthly", amount=100, start_date=JUNE.date(),
            status="active", created_at=T0))
    frozen = snapshot(app)
    with pytest.raises(CannotGrant, match="once"), app.engine.begin() as conn:
        review.decide(conn, ALICE, case_id, "grant", 100, "x", T0, catalogue=app.catalogue, threshold=THRESHOLD)
    assert snapshot(app) == frozen
