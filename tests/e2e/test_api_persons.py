"""The API's persons, cases and events routes and the console's person and citizen pages, through
the whole app (``haqq serve``'s) on a real store: tokens, the error shapes, paging, logging, the
pages in az, ru and en with the ids and classes other tests rely on."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select

from haqq.adapters.auth.passwords import add_account
from haqq.adapters.auth.tokens import token_keys
from haqq.adapters.events.keys import EventKeys
from haqq.adapters.institutions.directory import CountryDirectory
from haqq.adapters.store import db
from haqq.adapters.store.schema import cases, data_access_log, entitlements, payments
from haqq.bootstrap import Settings, build
from haqq.domain.access import Principal, Role
from haqq.entrypoints.cli_serve import make_http_app
from haqq.entrypoints.web.app import make_app
from haqq.entrypoints.web.context import WebContext
from haqq.replay import replay
from tests.helpers import country_copy, generated_country

PASSWORD = "a-long-enough-password"
SECTIONS = ("identity", "family", "registry-data", "timeline", "cases", "entitlements", "payments", "sms", "access-log")


@dataclass
class Site:
    client: TestClient
    engine: Engine
    ctx: WebContext
    #: A mother paid a monthly benefit; her case; another person with a case.
    fin: str
    case_id: str
    other_fin: str
    name: str
    #: Another person paid monthly (account "second"), whose benefit the console test stops.
    second_fin: str
    second_case: str

    def token(self, principal: Principal) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.ctx.keys.issue(principal, now=datetime.now(UTC))}"}


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """A replayed small country on SQLite, served whole with the registries' directory."""
    country_file = generated_country(tmp_path_factory, population=2000, seed=11)
    folder = tmp_path_factory.mktemp("site")
    country = country_copy(country_file, folder)
    app = build(Settings(database_url=f"sqlite:///{folder / 'haqq.db'}", country=country, batch_size=300))
    db.upgrade(app.engine)
    replay(app, year=2025, tick=timedelta(days=7))
    now = datetime.now(UTC)
    ctx = WebContext(engine=app.engine, keys=token_keys(app.engine, now=now), catalogue=app.catalogue,
                     directory=CountryDirectory(country), messages=app.messages)
    with app.engine.begin() as conn:
        running = conn.execute(
            select(entitlements.c.id, entitlements.c.fin).where(
                entitlements.c.status == "active", entitlements.c.schedule == "monthly",
                select(payments.c.id).where(payments.c.entitlement_id == entitlements.c.id,
                                            payments.c.status == "accepted").exists(),
            ).order_by(entitlements.c.id)
        ).all()
        paid = running[0]
        second = next(r for r in running if r.fin != paid.fin)
        other = conn.execute(select(cases.c.beneficiary_fin).where(cases.c.beneficiary_fin != paid.fin)
                             .order_by(cases.c.id)).scalars().first()
        assert other is not None
        add_account(conn, "aysel", PASSWORD, role=Role.CASEWORKER, name="Aysel Məmmədova", fin=None, now=now)
        add_account(conn, "registry", PASSWORD, role=Role.SYSTEM, name="Civil registry", fin=None, now=now)
        add_account(conn, "mother", PASSWORD, role=Role.CITIZEN, name="A mother", fin=paid.fin, now=now)
        add_account(conn, "second", PASSWORD, role=Role.CITIZEN, name="Another", fin=second.fin, now=now)
    card = ctx.directory.card(paid.fin) if ctx.directory else None
    assert card is not None
    yield Site(TestClient(make_app(ctx, EventKeys())), app.engine, ctx, paid.fin, paid.id, other, card.name,
               second.fin, second.id)
    app.engine.dispose()


def sign_in(site: Site, username: str) -> dict[str, str]:
    answer = site.client.post("/api/v1/auth/token", data={"username": username, "password": PASSWORD})
    assert answer.status_code == 200, answer.text
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}


def problem(answer: Any, status: int, code: str) -> str:
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert set(body) == {"error", "code"} and body["code"] == code and body["error"]
    return str(body["error"])


def logged(site: Site, fin: str) -> int:
    with site.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(data_access_log)
                                .where(data_access_log.c.fin == fin, data_access_log.c.institution == "haqq")).scalar_one())


def test_persons_need_a_token_and_answer_errors_in_one_shape(site: Site) -> None:
    c = site.client
    problem(c.get("/api/v1/persons", params={"q": site.fin}), 401, "not_signed_in")
    problem(c.get(f"/api/v1/persons/{site.fin}", headers={"Authorization": "Bearer forged"}), 401, "not_signed_in")
    official = sign_in(site, "aysel")
    mother = sign_in(site, "mother")
    problem(c.get("/api/v1/persons", params={"q": site.fin}, headers=mother), 403, "forbidden")
    problem(c.get(f"/api/v1/persons/{site.other_fin}", headers=mother), 403, "forbidden")
    problem(c.get(f"/api/v1/persons/{site.other_fin}/access-log", headers=mother), 403, "forbidden")
    problem(c.get("/api/v1/cases", headers=mother), 403, "forbidden")
    problem(c.get("/api/v1/persons/ZZZZZZ9", headers=official), 404, "not_found")
    problem(c.get("/api/v1/cases/C-NO-SUCH", headers=official), 404, "not_found")
    assert "fin" in problem(c.get("/api/v1/persons/abc", headers=official), 422, "invalid")
    problem(c.get("/api/v1/persons", params={"q": site.fin, "limit": 0}, headers=official), 422, "invalid")
    problem(c.get("/api/v1/persons", headers=official), 422, "invalid")


def test_an_official_searches_and_reads_a_person_and_each_look_is_logged(site: Site) -> None:
    c, official = site.client, sign_in(site, "aysel")
    before = logged(site, site.fin)
    found = c.get("/api/v1/persons", params={"q": site.fin}, headers=official).json()
    assert [p["fin"] for p in found["items"]] == [site.fin] and found["next_offset"] is None
    assert found["items"][0]["name"] == site.name and found["items"][0]["cases"] >= 1
    prefix = site.name[:2]
    first = c.get("/api/v1/persons", params={"q": prefix, "limit": 2}, headers=official).json()
    assert len(first["items"]) == 2 and first["next_offset"] == 2
    second = c.get("/api/v1/persons", params={"q": prefix, "limit": 2, "offset": 2}, headers=official).json()
    assert second["items"] and not {p["fin"] for p in first["items"]} & {p["fin"] for p in second["items"]}
    picture = c.get(f"/api/v1/persons/{site.fin}", params={"lang": "az"}, headers=official)
    assert picture.status_code == 200
    body = picture.json()
    assert body["identity"]["name"] == site.name and body["family"]
    [case] = [x for x in body["cases"] if x["id"] == site.case_id]
    assert any("Təyin edildi" in line for line in case["decision"]["explanation"])
    assert body["registry_data"] and body["payments"] and body["sms"]
    assert body["access_log"][0]["service"] == "person api"
    assert logged(site, site.fin) == before + 2
    log = c.get(f"/api/v1/persons/{site.fin}/access-log", params={"limit": 1}, headers=official).json()
    assert len(log["items"]) == 1 and log["next_offset"] == 1 and log["items"][0]["service"] == "access log"
    decision = c.get(f"/api/v1/cases/{site.case_id}/decision", params={"lang": "ru"}, headers=official).json()
    assert decision["outcome"] == "granted" and decision["trace"]["facts"]
    assert any("Назначено" in line for line in decision["explanation"])
    detail = c.get(f"/api/v1/cases/{site.case_id}", headers=official).json()
    assert detail["transitions"][0]["target"] == "detected" and detail["beneficiary_fin"] == site.fin
    listed = c.get("/api/v1/cases", params={"fin": site.fin}, headers=official).json()
    assert site.case_id in [x["id"] for x in listed["items"]]
    for route in ("entitlements", "payments", "notifications"):
        page = c.get(f"/api/v1/{route}", params={"fin": site.fin, "limit": 1}, headers=official).json()
        assert len(page["items"]) == 1, route
    paid = c.get("/api/v1/payments", params={"fin": site.fin, "limit": 200}, headers=official).json()["items"]
    assert all(isinstance(p["amount"], int) for p in paid)


def test_a_citizen_reads_their_own_benefits_and_stops_one(site: Site) -> None:
    c, mother = site.client, sign_in(site, "mother")
    assert c.get(f"/api/v1/persons/{site.fin}", headers=mother).status_code == 200
    benefits = c.get(f"/api/v1/persons/{site.fin}/benefits", params={"lang": "en"}, headers=mother).json()
    [mine] = [b for b in benefits if b["case_id"] == site.case_id]
    assert mine["can_stop"] and mine["stop_kind"] == "stop" and mine["status"] == "active"
    assert c.get("/api/v1/cases", params={"fin": site.fin}, headers=mother).status_code == 200
    problem(c.post(f"/api/v1/cases/{site.case_id}/stop", headers=sign_in(site, "registry")), 403, "forbidden")
    stopped = c.post(f"/api/v1/cases/{site.case_id}/stop", json={"note": "we moved abroad"}, headers=mother)
    assert stopped.status_code == 200, stopped.text
    assert stopped.json()["choice"] == "stop"
    assert "already ended" in problem(c.post(f"/api/v1/cases/{site.case_id}/stop", headers=mother), 409, "conflict")
    problem(c.post("/api/v1/cases/C-NO-SUCH/stop", headers=mother), 404, "not_found")
    after = c.get(f"/api/v1/persons/{site.fin}/benefits", headers=mother).json()
    assert [b["status"] for b in after if b["case_id"] == site.case_id] == ["ended"]


def test_the_openapi_document_names_every_route_with_typed_answers(site: Site) -> None:
    spec = site.client.get("/api/v1/openapi.json").json()
    ops = {op["operationId"]: (path, op) for path, item in spec["paths"].items() for op in item.values()}
    for name in ("searchPersons", "getPerson", "getPersonAccessLog", "getPersonBenefits", "listCases", "getCase",
                 "getDecision", "stopBenefit", "listEntitlements", "listPayments", "listNotifications",
                 "takeInEvents", "listEvents"):
        path, op = ops[name]
        assert "$ref" in str(op["responses"]["200"]), name
        assert "403" in op["responses"], name


@pytest.mark.parametrize("lang", ["az", "ru", "en"])
def test_the_console_pages_for_an_official(site: Site, lang: str) -> None:
    c = TestClient(site.client.app)
    signed = c.post("/login", data={"username": "aysel", "password": PASSWORD}, follow_redirects=False)
    assert signed.status_code == 303 and signed.headers["location"] == "/search"
    page = c.get("/search", params={"q": site.name, "lang": lang})
    assert page.status_code == 200 and f'<html lang="{lang}">' in page.text
    assert 'name="q"' in page.text and 'id="results"' in page.text
    assert f'<a class="person" href="/persons/{site.fin}">' in page.text
    live = c.get("/search", params={"q": site.fin}, headers={"HX-Request": "true"})
    assert "<html" not in live.text and f'href="/persons/{site.fin}"' in live.text
    before = logged(site, site.fin)
    person = c.get(f"/persons/{site.fin}", params={"lang": lang})
    assert person.status_code == 200
    assert logged(site, site.fin) == before + 1
    for section in SECTIONS:
        assert re.search(rf'<section id="{section}"', person.text), section
    assert f'data-case="{site.case_id}"' in person.text
    words = {"az": "Təyin edildi", "ru": "Назначено", "en": "Granted"}
    assert words[lang] in person.text
    with site.engine.connect() as conn:
        review = conn.execute(select(cases.c.id, cases.c.beneficiary_fin).where(cases.c.state == "needs_review")
                              .order_by(cases.c.id)).first()
    assert review is not None
    held = c.get(f"/persons/{review.beneficiary_fin}", params={"lang": lang})
    assert f'href="/review/{review.id}"' in held.text
    assert c.get("/persons/ZZZZZZ9").status_code == 404


@pytest.mark.parametrize("lang", ["az", "ru", "en"])
def test_the_citizens_pages(site: Site, lang: str) -> None:
    c = TestClient(site.client.app)
    c.post("/login", data={"username": "mother", "password": PASSWORD}, follow_redirects=False)
    me = c.get("/me", params={"lang": lang})
    assert me.status_code == 200 and f'<html lang="{lang}">' in me.text
    assert f'class="card benefit" data-case="{site.case_id}"' in me.text
    assert c.get(f"/persons/{site.fin}", follow_redirects=False).headers["location"] == "/me"
    denied = c.get(f"/persons/{site.other_fin}")
    assert denied.status_code == 403 and "<html" in denied.text
    assert c.get("/search", params={"q": site.fin}).status_code == 403
    access = c.get("/me/access", params={"lang": lang})
    assert access.status_code == 200 and 'id="access-log"' in access.text and "haqq" in access.text


def test_a_citizen_stops_a_benefit_from_their_page(site: Site) -> None:
    c = TestClient(site.client.app)
    c.post("/login", data={"username": "second", "password": PASSWORD}, follow_redirects=False)

    def block() -> str:
        page = c.get("/me", params={"lang": "en"})
        assert page.status_code == 200
        return str(page.text).split(f'data-case="{site.second_case}"', 1)[1].split("</section>", 1)[0]

    before = block()
    assert 'class="tag active"' in before
    assert f'<form class="decline" method="post" action="/me/cases/{site.second_case}/decline">' in before
    assert ">Stop</button>" in before
    # Another person's case: refused, nothing changed.
    assert c.post(f"/me/cases/{site.case_id}/decline", follow_redirects=False).status_code == 403
    done = c.post(f"/me/cases/{site.second_case}/decline", follow_redirects=False)
    assert done.status_code == 303 and done.headers["location"].startswith("/me")
    after = block()
    assert 'class="tag ended"' in after and 'class="decline"' not in after
    again = c.post(f"/me/cases/{site.second_case}/decline", follow_redirects=False)
    assert again.status_code == 409 and "already ended" in again.text


def test_events_in_and_out_on_both_stores(engine: Engine) -> None:
    client = TestClient(make_http_app(engine, EventKeys()))
    now = datetime.now(UTC)
    with engine.begin() as conn:
        add_account(conn, "registry", PASSWORD, role=Role.SYSTEM, name="Civil registry", fin=None, now=now)
        add_account(conn, "aysel", PASSWORD, role=Role.CASEWORKER, name="Aysel", fin=None, now=now)
    def token(user: str) -> dict[str, str]:
        answer = client.post("/api/v1/auth/token", data={"username": user, "password": PASSWORD})
        return {"Authorization": f"Bearer {answer.json()['access_token']}"}
    registry, official = token("registry"), token("aysel")
    events = [
        {"event_id": "CR-9", "type": "death_registered", "fin": "7T5NL6V", "source": "civil_registry",
         "occurred_at": "2026-03-01T10:00:00+04:00"},
        {"event_id": "CR-10", "type": "birth_registered", "fin": "7T5NL6W", "occurred_at": "2026-03-01T10:00:00+04:00"},
    ]
    problem(client.post("/api/v1/events", json={"events": events}), 401, "not_signed_in")
    problem(client.post("/api/v1/events", json={"events": events}, headers=official), 403, "forbidden")
    problem(client.post("/api/v1/events", json={"events": []}, headers=registry), 422, "invalid")
    taken = client.post("/api/v1/events", json={"events": events}, headers=registry)
    assert taken.status_code == 200, taken.text
    body = taken.json()
    assert body["accepted"] == 1 and body["duplicates"] == 0
    assert [(r["index"], r["event_id"]) for r in body["refused"]] == [(1, "CR-10")]
    assert "mother_fin" in body["refused"][0]["error"]
    again = client.post("/api/v1/events", json={"events": events[:1]}, headers=registry).json()
    assert (again["accepted"], again["duplicates"]) == (0, 1)
    listed = client.get("/api/v1/events", params={"fin": "7T5NL6V"}, headers=official).json()
    assert [e["source_event_id"] for e in listed["items"]] == ["CR-9"] and listed["next_offset"] is None
    # haqq knows the person from the event alone (no directory here): a picture, and a search by FIN.
    assert client.get("/api/v1/persons/7T5NL6V", headers=official).json()["events"][0]["type"] == "death_registered"
    assert [p["fin"] for p in client.get("/api/v1/persons", params={"q": "7T5NL6V"}, headers=official).json()["items"]] == ["7T5NL6V"]
