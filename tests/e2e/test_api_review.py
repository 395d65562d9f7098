"""The review queue and appeals through the whole HTTP app (the API and the console), on cases
the pipeline sent to a person: sign-in, roles, the four-eyes rule, the error shapes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi.testclient import TestClient

from haqq.adapters.auth.passwords import add_account
from haqq.adapters.events.keys import EventKeys
from haqq.adapters.store.schema import cases, entitlements, reviews
from haqq.bootstrap import Haqq
from haqq.domain.access import Role
from haqq.entrypoints.cli_serve import make_http_app
from tests.helpers import rows
from tests.integration import test_office_review as shared
from tests.integration.test_office_review import review_cases

#: The review tests' fixtures: a small country made once per module, an app per store.
pristine_country = shared.pristine_country
app = shared.app

PASSWORD = "a long password"
#: The web context's default: a grant above 500.00 AZN needs a supervisor.
ABOVE = 90_000


def accounts(app: Haqq, beneficiaries: list[str]) -> None:
    now = datetime.now(UTC)
    with app.engine.begin() as conn:
        add_account(conn, "alice", PASSWORD, role=Role.CASEWORKER, name="Alice C.", fin=None, now=now)
        add_account(conn, "sue", PASSWORD, role=Role.SUPERVISOR, name="Sue S.", fin=None, now=now)
        add_account(conn, "sam", PASSWORD, role=Role.SUPERVISOR, name="Sam S.", fin=None, now=now)
        for i, fin in enumerate(beneficiaries):
            add_account(conn, f"citizen{i}", PASSWORD, role=Role.CITIZEN, name=f"Citizen {i}", fin=fin, now=now)


def bearer(client: TestClient, username: str) -> dict[str, str]:
    answer = client.post("/api/v1/auth/token", data={"username": username, "password": PASSWORD})
    assert answer.status_code == 200, answer.text
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}


def problem(answer: Any, status: int, code: str) -> str:
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert set(body) == {"error", "code"} and body["code"] == code, body
    return str(body["error"])


def test_the_review_api(app: Haqq) -> None:
    made = review_cases(app, 3)
    first, second, third = (c["id"] for c in made)
    accounts(app, [c["beneficiary_fin"] for c in made])
    client = TestClient(make_http_app(app.engine, EventKeys()))
    alice, sue, sam = bearer(client, "alice"), bearer(client, "sue"), bearer(client, "sam")
    citizen = bearer(client, "citizen0")

    problem(client.get("/api/v1/review"), 401, "not_signed_in")
    problem(client.get("/api/v1/review", headers=citizen), 403, "forbidden")
    page = client.get("/api/v1/review", params={"limit": 2}, headers=alice)
    assert page.status_code == 200, page.text
    body = page.json()
    assert len(body["items"]) == 2 and body["next_offset"] == 2
    assert {i["stage"] for i in body["items"]} == {"open"}
    problem(client.get("/api/v1/review", params={"stage": "nonsense"}, headers=alice), 422, "invalid")

    one = client.get(f"/api/v1/review/{first}", headers=alice).json()
    assert one["state"] == "needs_review" and one["decision"]["outcome"] == "needs_review"
    assert one["transitions"][-1]["target"] == "needs_review"
    problem(client.get("/api/v1/review/NOPE", headers=alice), 404, "not_found")

    # Take, then a grant above the threshold: it waits for a supervisor.
    taken = client.post(f"/api/v1/review/{first}/take", headers=alice)
    assert taken.json() == {"case_id": first, "state": "needs_review", "stage": "taken"}
    problem(client.post(f"/api/v1/review/{first}/take", headers=sue), 409, "conflict")
    bad = [
        ({"outcome": "maybe", "reason": "x"}, "outcome"),
        ({"outcome": "grant", "amount": -1, "reason": "x"}, "amount"),
        ({"outcome": "grant", "amount": 100, "reason": ""}, "reason"),
        ({"outcome": "grant", "amount": 100, "reason": "   "}, "reason"),
        ({"outcome": "grant", "reason": "x"}, "amount"),
        ({"outcome": "deny", "reason": 5}, "reason"),
    ]
    for payload, field in bad:
        assert field in problem(client.post(f"/api/v1/review/{first}/decide", json=payload, headers=alice),
                                422, "invalid"), payload
    proposed = client.post(f"/api/v1/review/{first}/decide", headers=alice,
                           json={"outcome": "grant", "amount": ABOVE, "reason": "Certificate seen."})
    assert proposed.json() == {"case_id": first, "state": "needs_review", "stage": "awaiting_approval"}
    problem(client.post(f"/api/v1/review/{first}/approve", json={"reason": "ok"}, headers=alice), 403, "forbidden")
    problem(client.post(f"/api/v1/review/{first}/approve", json={"reason": "ok"}), 401, "not_signed_in")
    approved = client.post(f"/api/v1/review/{first}/approve", json={"reason": "Checked."}, headers=sue)
    assert approved.json() == {"case_id": first, "state": "decided", "stage": "done"}
    assert rows(app.engine, entitlements, entitlements.c.id == first)[0]["amount"] == ABOVE
    problem(client.post(f"/api/v1/review/{first}/take", headers=alice), 409, "conflict")

    # A supervisor's own proposal needs another supervisor.
    client.post(f"/api/v1/review/{second}/decide", headers=sue,
                json={"outcome": "grant", "amount": ABOVE, "reason": "Arrears."})
    assert "another supervisor" in problem(
        client.post(f"/api/v1/review/{second}/approve", json={"reason": "mine"}, headers=sue), 403, "forbidden")
    rejected = client.post(f"/api/v1/review/{second}/reject", json={"reason": "No arrears."}, headers=sam)
    assert rejected.json()["stage"] == "open"
    assert rows(app.engine, reviews, reviews.c.case_id == second)[0]["stage"] == "open"

    # Deny, appeal, re-run.
    denied = client.post(f"/api/v1/review/{third}/decide", headers=alice,
                         json={"outcome": "deny", "reason": "Withdrawn."})
    assert denied.json()["state"] == "denied"
    mine = bearer(client, "citizen2")
    problem(client.post(f"/api/v1/cases/{third}/appeals", json={"reason": "Not mine."}, headers=citizen),
            403, "forbidden")
    problem(client.post(f"/api/v1/cases/{third}/appeals", json={"reason": ""}, headers=mine), 422, "invalid")
    opened = client.post(f"/api/v1/cases/{third}/appeals", json={"reason": "My status is valid."}, headers=mine)
    assert opened.status_code == 201, opened.text
    appeal = opened.json()
    assert (appeal["status"], appeal["channel"], appeal["decision_outcome"]) == ("open", "api", "denied")
    problem(client.post(f"/api/v1/cases/{third}/appeals", json={"reason": "Again."}, headers=mine), 409, "conflict")
    listed = client.get("/api/v1/appeals", params={"status": "open"}, headers=alice).json()
    assert [a["id"] for a in listed["items"]] == [appeal["id"]]
    assert client.get("/api/v1/appeals", headers=citizen).json()["items"] == []
    problem(client.get(f"/api/v1/appeals/{appeal['id']}", headers=citizen), 403, "forbidden")
    problem(client.get("/api/v1/appeals/999", headers=alice), 404, "not_found")
    problem(client.post(f"/api/v1/appeals/{appeal['id']}/decide", json={"decision": "rerun", "reason": "x"},
                        headers=mine), 403, "forbidden")
    problem(client.post(f"/api/v1/appeals/{appeal['id']}/decide", json={"decision": "maybe", "reason": "x"},
                        headers=alice), 422, "invalid")
    rerun = client.post(f"/api/v1/appeals/{appeal['id']}/decide", headers=alice,
                        json={"decision": "rerun", "reason": "Let the registries answer again."})
    assert (rerun.json()["status"], rerun.json()["case_state"]) == ("rerun", "gathering")
    assert rows(app.engine, cases, cases.c.id == third)[0]["state"] == "gathering"


def sign_in(client: TestClient, username: str) -> None:
    answer = client.post("/login", data={"username": username, "password": PASSWORD}, follow_redirects=False)
    assert answer.status_code == 303, answer.text


def test_the_review_console(app: Haqq) -> None:
    made = review_cases(app, 2)
    first, second = (c["id"] for c in made)
    accounts(app, [c["beneficiary_fin"] for c in made])
    official = TestClient(make_http_app(app.engine, EventKeys()))
    sign_in(official, "alice")
    queue = official.get("/review?lang=en")
    assert queue.status_code == 200 and 'id="queue"' in queue.text
    assert f'data-case="{first}"' in queue.text and f'href="/review/{first}"' in queue.text
    page = official.get(f"/review/{first}?lang=en")
    assert 'id="take"' in page.text and 'id="decide"' in page.text and "registries disagree" in page.text
    assert official.post(f"/review/{first}/take", follow_redirects=False).status_code == 303
    for amount, reason, field in (("abc", "x", "amount"), ("-5", "x", "amount"), ("10.00", " ", "reason")):
        answer = official.post(f"/review/{first}/decide?lang=en",
                               data={"outcome": "grant", "amount": amount, "reason": reason})
        assert answer.status_code == 422 and field in answer.text and "Traceback" not in answer.text
    answer = official.post(f"/review/{first}/decide", data={"outcome": "grant", "amount": "900.00", "reason": "Seen."},
                           follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"] == f"/review/{first}"
    page = official.get(f"/review/{first}?lang=en")
    assert 'id="stage"' in page.text and "awaiting approval" in page.text and 'id="approve"' not in page.text
    supervisor = TestClient(make_http_app(app.engine, EventKeys()))
    sign_in(supervisor, "sue")
    page = supervisor.get(f"/review/{first}?lang=en")
    assert 'id="approve"' in page.text and 'id="reject"' in page.text
    supervisor.post(f"/review/{first}/approve", data={"reason": "Checked."})
    page = supervisor.get(f"/review/{first}?lang=en")
    assert 'id="case-state"' in page.text and ">decided<" in page.text

    official.post(f"/review/{second}/decide", data={"outcome": "deny", "amount": "", "reason": "Withdrawn."})
    citizen = TestClient(make_http_app(app.engine, EventKeys()))
    sign_in(citizen, "citizen1")
    form = citizen.get(f"/me/cases/{second}/appeal?lang=en")
    assert 'id="appeal"' in form.text and "Appeal" in form.text
    assert citizen.get(f"/me/cases/{first}/appeal?lang=en").status_code == 403
    assert citizen.post(f"/me/cases/{first}/appeal", data={"reason": "x"}).status_code == 403
    empty = citizen.post(f"/me/cases/{second}/appeal?lang=en", data={"reason": ""})
    assert empty.status_code == 422 and "reason" in empty.text
    sent = citizen.post(f"/me/cases/{second}/appeal", data={"reason": "It is wrong."}, follow_redirects=False)
    assert sent.status_code == 303 and sent.headers["location"] == "/me"
    listing = official.get("/appeals?lang=en")
    assert 'id="appeals"' in listing.text and "data-appeal=" in listing.text
    appeal_id = listing.text.split('data-appeal="')[1].split('"')[0]
    page = official.get(f"/appeals/{appeal_id}?lang=en")
    assert 'id="decide-appeal"' in page.text
    done = official.post(f"/appeals/{appeal_id}/decide", data={"decision": "upheld", "reason": "Stands."},
                         follow_redirects=False)
    assert done.status_code == 303
    assert "Stands." in official.get(f"/appeals/{appeal_id}").text
    for lang in ("az", "ru"):
        assert official.get(f"/review?lang={lang}").status_code == 200
        assert official.get(f"/appeals/{appeal_id}?lang={lang}").status_code == 200
        assert official.get(f"/review/{second}?lang={lang}").status_code == 200
