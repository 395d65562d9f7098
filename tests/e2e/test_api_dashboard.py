"""The dashboard and the program catalogue through the app (API and console), on a small
replayed country: who may see them, their typed figures, the charts, the parameters' history,
in az, ru and en."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from markupsafe import escape
from sqlalchemy import Engine, func, select

from haqq.adapters.auth.tokens import token_keys
from haqq.adapters.events.keys import EventKeys
from haqq.adapters.store import db
from haqq.adapters.store.schema import cases, payments
from haqq.bootstrap import Settings, build
from haqq.domain.access import Principal, Role
from haqq.entrypoints.cli_serve import make_http_app
from haqq.office.dashboard import Dashboard
from haqq.replay import replay
from haqq.rules.catalogue import load_catalogue
from tests.helpers import country_copy, generated_country

CHARTS = ("chart-assignments", "chart-latency", "chart-waiting", "chart-consent", "chart-payments")


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    source = generated_country(tmp_path_factory, population=2000, seed=5)
    folder = tmp_path_factory.mktemp("store")
    country = country_copy(source, folder)
    app = build(Settings(database_url=f"sqlite:///{folder / 'haqq.db'}", country=country, batch_size=300))
    db.upgrade(app.engine)
    replay(app, year=2025, tick=timedelta(days=7))
    yield app.engine
    app.engine.dispose()


@pytest.fixture(scope="module")
def client(store: Engine) -> TestClient:
    return TestClient(make_http_app(store, EventKeys()))


def bearer(engine: Engine, role: Role, fin: str | None = None) -> dict[str, str]:
    keys = token_keys(engine, now=datetime.now(UTC))
    token = keys.issue(Principal(f"t-{role.value}", role, f"Test {role.value}", fin=fin), now=datetime.now(UTC))
    return {"Authorization": f"Bearer {token}"}


def test_the_dashboard_api_needs_an_official(client: TestClient, store: Engine) -> None:
    assert client.get("/api/v1/dashboard").status_code == 401
    refused = client.get("/api/v1/dashboard", headers=bearer(store, Role.CITIZEN, "ABC1234"))
    assert refused.status_code == 403 and refused.json()["code"] == "forbidden"


@pytest.mark.parametrize("role", [Role.CASEWORKER, Role.SUPERVISOR, Role.AUDITOR])
def test_the_dashboard_api_gives_typed_figures(client: TestClient, store: Engine, role: Role) -> None:
    got = client.get("/api/v1/dashboard", headers=bearer(store, role))
    assert got.status_code == 200
    figures = Dashboard.model_validate(got.json())
    with store.connect() as conn:
        assert figures.cases == conn.execute(select(func.count()).select_from(cases)).scalar_one()
        accepted = conn.execute(select(func.count()).select_from(payments).where(payments.c.status == "accepted")).scalar_one()
    assert sum(p.payments for p in figures.payments if p.status == "accepted") == accepted > 0
    assert figures.assignments and figures.latency and figures.consent
    assert 0 < figures.proactive.proactive_share <= 1
    assert got.json()["computed_at"].endswith("Z") or "+" in got.json()["computed_at"]
    schema = client.get("/api/v1/openapi.json").json()
    op = schema["paths"]["/dashboard"]["get"]
    assert op["operationId"] == "getDashboard"
    assert op["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith("/Dashboard")
    assert {"401", "403"} <= set(op["responses"])


@pytest.mark.parametrize(("lang", "title"), [("az", "Göstəricilər"), ("ru", "Показатели"), ("en", "Dashboard")])
def test_the_dashboard_page_draws_its_charts(client: TestClient, store: Engine, lang: str, title: str) -> None:
    page = client.get(f"/dashboard?lang={lang}", headers=bearer(store, Role.CASEWORKER))
    assert page.status_code == 200
    html = page.text
    assert f'<h1>{title}</h1>' in html and 'id="dashboard"' in html and 'hx-trigger="every 30s"' in html
    for chart in CHARTS:
        found = re.search(rf'<figure class="chart" id="{chart}">(.*?)</figure>', html, re.S)
        assert found, chart
        assert "<svg" in found.group(1) and f'<title id="{chart}-title">' in found.group(1)
        assert "<figcaption>" in found.group(1)
    assert html.count("<rect") > 20  # bars, not just axes
    assert "t(" not in html and "{{" not in html


def test_the_dashboard_refresh_gets_the_figures_alone(client: TestClient, store: Engine) -> None:
    part = client.get("/dashboard?lang=en", headers={**bearer(store, Role.CASEWORKER), "HX-Request": "true"})
    assert part.status_code == 200
    assert 'id="chart-assignments"' in part.text and "<html" not in part.text


def test_the_dashboard_page_is_for_officials(client: TestClient, store: Engine) -> None:
    assert client.get("/dashboard", follow_redirects=False).status_code == 303
    refused = client.get("/dashboard?lang=en", headers=bearer(store, Role.CITIZEN, "ABC1234"))
    assert refused.status_code == 403


def test_the_programs_api_lists_the_catalogue(client: TestClient, store: Engine) -> None:
    assert client.get("/api/v1/programs").status_code == 401
    got = client.get("/api/v1/programs", headers=bearer(store, Role.CITIZEN, "ABC1234"))
    assert got.status_code == 200
    body = got.json()
    catalogue = load_catalogue()
    assert body["version"] == catalogue.version
    assert [p["id"] for p in body["programs"]] == sorted(catalogue.programs)
    child = next(p for p in body["programs"] if p["id"] == "child_care_allowance")
    assert child["names"]["az"] == catalogue["child_care_allowance"].names.az
    assert child["mode"] == "consent" and child["triggers"] == ["birth_registered"]
    assert child["legal_basis"]["article"] == "Article 14"


def test_a_program_has_its_parameters_history(client: TestClient, store: Engine) -> None:
    headers = bearer(store, Role.CASEWORKER)
    got = client.get("/api/v1/programs/child_care_allowance?as_of=2024-06-01", headers=headers)
    assert got.status_code == 200
    params = {p["name"]: p for p in got.json()["parameter_values"]}
    threshold = params["income_per_member_threshold"]
    assert [(v["value"], v["effective_from"], v["effective_until"]) for v in threshold["history"]] == [
        (20000, "2020-01-01", "2024-12-31"), (24600, "2025-01-01", None)]
    assert threshold["current"]["value"] == 20000 and "No. 40 of 2020" in threshold["current"]["reference"]
    later = client.get("/api/v1/programs/child_care_allowance/parameters/income_per_member_threshold?as_of=2025-03-01",
                       headers=headers)
    assert later.status_code == 200 and later.json()["current"]["value"] == 24600
    assert [v["applies"] for v in later.json()["history"]] == [False, True]
    before = client.get("/api/v1/programs/child_care_allowance/parameters/amount?as_of=2000-01-01", headers=headers)
    assert before.status_code == 200 and before.json()["current"] is None
    missing = client.get("/api/v1/programs/no_such_program", headers=headers)
    assert missing.status_code == 404 and missing.json()["code"] == "not_found"
    assert client.get("/api/v1/programs/child_care_allowance/parameters/nope", headers=headers).status_code == 404
    assert client.get("/api/v1/programs/child_care_allowance?as_of=yesterday", headers=headers).status_code == 422


@pytest.mark.parametrize(("lang", "heading", "source"), [
    ("az", "Parametrlər", "Hüquqi akt"), ("ru", "Параметры", "Правовой акт"), ("en", "Parameters", "Legal act")])
def test_the_program_pages_show_the_history(
    client: TestClient, store: Engine, lang: str, heading: str, source: str
) -> None:
    headers = bearer(store, Role.CASEWORKER)
    catalogue = load_catalogue()
    listing = client.get(f"/programs?lang={lang}", headers=headers)
    assert listing.status_code == 200
    for program in catalogue.programs.values():
        assert f'href="/programs/{program.id}"' in listing.text
        assert str(escape(getattr(program.names, lang))) in listing.text
    assert catalogue.version in listing.text
    page = client.get(f"/programs/child_care_allowance?as_of=2024-06-01&lang={lang}", headers=headers)
    assert page.status_code == 200
    html = page.text
    assert heading in html and source in html
    assert "Cabinet of Ministers Decision No. 40 of 2020" in html and "Cabinet of Ministers Decision No. 401 of 2024" in html
    table = re.search(r'<h3 id="param-income_per_member_threshold">.*?</table>', html, re.S)
    assert table is not None
    applying = re.findall(r'<tr class="applies">\s*<td>(.*?)</td>', table.group(0), re.S)
    assert len(applying) == 1 and "200" in applying[0]
    assert client.get("/programs/no_such_program", headers=headers).status_code == 404
