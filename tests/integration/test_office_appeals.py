"""Appeals on both stores: a citizen contests a decision, an official upholds it or runs the case
again, and the pipeline decides it afresh (its earlier decision archived)."""

from __future__ import annotations

import pytest
from sqlalchemy import update

from haqq.adapters.store.schema import (
    appeals,
    case_transitions,
    cases,
    data_access_log,
    decisions,
    entitlements,
    review_actions,
)
from haqq.bootstrap import Haqq
from haqq.domain.access import AccessDenied, Principal, Role
from haqq.domain.review import AppealStatus, InvalidAppeal, InvalidReview
from haqq.office import appeals as office
from haqq.office import review
from tests.helpers import rows, run_at
from tests.integration import test_office_review as shared
from tests.integration.test_office_review import (
    ALICE,
    BOB,
    HOUR,
    SUE,
    T0,
    THRESHOLD,
    one,
    review_cases,
    snapshot,
)

#: The review tests' fixtures: a small country made once per module, an app per store.
pristine_country = shared.pristine_country
app = shared.app


def citizen(fin: str) -> Principal:
    return Principal(f"c-{fin}", Role.CITIZEN, "A Citizen", fin=fin)


def deny(app: Haqq, case_id: str) -> None:
    with app.engine.begin() as conn:
        review.decide(conn, BOB, case_id, "deny", None, "The status was withdrawn.", T0, catalogue=app.catalogue,
                      threshold=THRESHOLD)


def test_a_citizen_appeals_their_own_denied_case_once(app: Haqq) -> None:
    mine, other = review_cases(app, 2)
    deny(app, mine["id"])
    me = citizen(mine["beneficiary_fin"])
    frozen = snapshot(app)
    refusals: list[tuple[type[Exception], Principal, str, str]] = [
        (AccessDenied, citizen(other["beneficiary_fin"]), mine["id"], "Not mine, but still."),
        (InvalidAppeal, citizen(other["beneficiary_fin"]), other["id"], "Still under review."),
        (InvalidReview, me, mine["id"], "   "),
    ]
    for error, who, case_id, reason in refusals:
        with pytest.raises(error), app.engine.begin() as conn:
            office.open_appeal(conn, who, case_id, reason, T0 + HOUR, "web")
    assert snapshot(app) == frozen
    with app.engine.begin() as conn:
        opened = office.open_appeal(conn, me, mine["id"], "I have had the status since 2019.", T0 + HOUR, "web")
    assert (opened.status, opened.case_state.value, opened.decision_outcome) == (AppealStatus.OPEN, "denied", "denied")
    assert opened.fin == mine["beneficiary_fin"] and opened.channel == "web"
    with pytest.raises(InvalidAppeal, match="already has an open appeal"), app.engine.begin() as conn:
        office.open_appeal(conn, me, mine["id"], "Again.", T0 + HOUR, "web")
    with app.engine.connect() as conn:
        assert [a.id for a in office.appeals(conn, me)] == [opened.id]
        assert office.appeals(conn, citizen(other["beneficiary_fin"])) == []
        assert [a.id for a in office.appeals(conn, ALICE, status="open")] == [opened.id]
        with pytest.raises(AccessDenied):
            office.appeal(conn, citizen(other["beneficiary_fin"]), opened.id)
    # The citizen's own step is not in their access log; an official's look is.
    assert not rows(app.engine, data_access_log, data_access_log.c.requester.like("citizen:%"))


def test_an_official_opens_an_appeal_for_the_citizen_and_upholds_it(app: Haqq) -> None:
    (case,) = review_cases(app, 1)
    deny(app, case["id"])
    with app.engine.begin() as conn:
        opened = office.open_appeal(conn, ALICE, case["id"], "Came to the office with papers.", T0, "office")
    with pytest.raises(InvalidReview, match="reason"), app.engine.begin() as conn:
        office.decide_appeal(conn, SUE, opened.id, "upheld", "", T0 + HOUR)
    with app.engine.begin() as conn:
        decided = office.decide_appeal(conn, SUE, opened.id, "upheld", "The papers show no status.", T0 + HOUR)
    assert (decided.status, decided.decided_by, decided.case_state.value) == (AppealStatus.UPHELD, "sue", "denied")
    with pytest.raises(InvalidAppeal, match="already decided"), app.engine.begin() as conn:
        office.decide_appeal(conn, SUE, opened.id, "rerun", "Changed my mind.", T0 + HOUR)
    with pytest.raises(AccessDenied), app.engine.begin() as conn:
        office.decide_appeal(conn, citizen(case["beneficiary_fin"]), opened.id, "rerun", "Please.", T0 + HOUR)
    assert one(app, cases, cases.c.id == case["id"])["state"] == "denied"
    acts = [a["action"] for a in rows(app.engine, review_actions, review_actions.c.case_id == case["id"])]
    assert acts[-2:] == ["appeal", "appeal_upheld"]
    logged = rows(app.engine, data_access_log, data_access_log.c.case_id == case["id"])
    assert {"appeal: open", "appeal: upheld"} <= {r["service"] for r in logged}


def test_an_appeal_decided_rerun_runs_the_case_again(app: Haqq) -> None:
    (case,) = review_cases(app, 1)
    deny(app, case["id"])
    me = citizen(case["beneficiary_fin"])
    with app.engine.begin() as conn:
        opened = office.open_appeal(conn, me, case["id"], "My status is valid.", T0, "api")
        decided = office.decide_appeal(conn, ALICE, opened.id, "rerun", "Let the registries answer again.", T0)
    assert (decided.status, decided.case_state.value) == (AppealStatus.RERUN, "gathering")
    moved = rows(app.engine, case_transitions, case_transitions.c.case_id == case["id"])[-1]
    assert (moved["source"], moved["target"]) == ("denied", "gathering")
    assert f"appeal {opened.id}" in moved["cause"] and "Alice Caseworker" in moved["cause"]
    assert not rows(app.engine, decisions, decisions.c.case_id == case["id"])
    archived = one(app, review_actions, review_actions.c.case_id == case["id"],
                   review_actions.c.action == "superseded", review_actions.c.outcome == "denied")
    assert "The status was withdrawn" in archived["reason"]
    # The pipeline decides it afresh (a new decision row for the same case), to a person again.
    run_at(app, T0 + HOUR)
    assert one(app, cases, cases.c.id == case["id"])["state"] == "needs_review"
    assert one(app, decisions, decisions.c.case_id == case["id"])["outcome"] == "needs_review"
    # And now it can be granted and paid.
    with app.engine.begin() as conn:
        review.decide(conn, BOB, case["id"], "grant", 20_000, "The appeal showed the status.", T0 + 2 * HOUR,
                      catalogue=app.catalogue, threshold=THRESHOLD)
    run_at(app, T0 + 3 * HOUR, T0 + 6 * HOUR, T0 + 48 * HOUR)
    assert one(app, cases, cases.c.id == case["id"])["state"] == "closed"


def test_a_lapsed_case_reruns_and_its_unpaid_entitlement_is_archived(app: Haqq) -> None:
    (case,) = review_cases(app, 1)
    with app.engine.begin() as conn:
        review.decide(conn, BOB, case["id"], "grant", 20_000, "Fine.", T0, catalogue=app.catalogue,
                      threshold=THRESHOLD)
        # As if consent had been asked and never answered.
        conn.execute(update(cases).where(cases.c.id == case["id"]).values(state="lapsed", due_at=None))
        conn.execute(update(entitlements).where(entitlements.c.id == case["id"]).values(status="declined"))
        opened = office.open_appeal(conn, citizen(case["beneficiary_fin"]), case["id"], "I was abroad.", T0, "web")
        office.decide_appeal(conn, SUE, opened.id, "rerun", "Ask again.", T0)
    assert not rows(app.engine, entitlements, entitlements.c.id == case["id"])
    archived = one(app, review_actions, review_actions.c.case_id == case["id"], review_actions.c.action == "superseded",
                   review_actions.c.outcome == "granted")
    assert '"status": "declined"' in archived["reason"]
    run_at(app, T0 + HOUR)
    assert one(app, cases, cases.c.id == case["id"])["state"] == "needs_review"
    assert one(app, appeals, appeals.c.id == opened.id)["status"] == "rerun"
