"""The Data Tracker (Andmejälgija) ``findUsage`` service over a real store (SQLite and PostgreSQL):
who read a person's data, when, from which institution, for which case, why and on what legal
basis; nobody else's rows; the period and the paging; the errors; the heartbeat; a replayed
country; and schemathesis against the app's own OpenAPI.

(The schema is loaded at import from an app over an empty in-memory store, so
``schema.parametrize()`` makes one test per operation; the app the cases are sent to comes from a
fixture, as in ``test_openapi_conformance.py``.)
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from schemathesis.checks import CheckFunction, not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    positive_data_acceptance,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy import Engine, create_engine, func, insert, select

from haqq.adapters.store import db, messagelog
from haqq.adapters.store.schema import data_access_log, message_log
from haqq.bootstrap import Settings, build
from haqq.entrypoints.tracker_api import EXAMPLE_FIN, make_tracker_app
from haqq.ports import Exchange
from haqq.replay import replay
from tests.helpers import generated_country

ME, OTHER, ASKER = "5ZK7N2R", "7HX3M9P", "2AB4C6D"
HAQQ = "AZ/GOV/MLSPP/HAQQ"
CIVIL = "AZ/GOV/MOJ/CIVIL-REGISTRY/person"
TAX = "AZ/GOV/STS/INCOME/income"
T0 = datetime(2025, 3, 1, 8, 30, 15, 123456, tzinfo=UTC)
LAW = "Law on Social Benefits, Article 12 (illustrative)"


def exchange(message_id: str, service: str, at: datetime, *, user: str = "haqq",
             issue: str | None = None) -> Exchange:
    return Exchange(message_id=message_id, direction="out", client=HAQQ, service=service, user=user,
                    issue=issue, at=at, status=200, request_hash=f"hash-{message_id}", persons=2)


def access(fin: str, message_id: str, at: datetime, *, institution: str = "civil_registry",
           service: str = "civil_registry/person", case_id: str | None = "case-1",
           purpose: str = "birth benefit: check the parent", requester: str = "haqq") -> dict[str, Any]:
    return {"fin": fin, "at": at, "wall_at": at, "institution": institution, "service": service,
            "message_id": message_id, "case_id": case_id, "event_id": 1 if case_id else None,
            "requester": requester, "purpose": purpose, "legal_basis": LAW}


def seed(engine: Engine, exchanges: list[Exchange], rows: list[dict[str, Any]]) -> None:
    with engine.begin() as conn:
        messagelog.append(conn, exchanges)
        conn.execute(insert(data_access_log), rows)


def find(client: TestClient, fin: str = ME, *, asker: str = ASKER, **params: Any) -> Any:
    return client.get("/v3/findUsage", params={"userCode": fin, **params},
                      headers={"X-Road-UserId": asker})


@pytest.fixture
def client(engine: Engine) -> Iterator[TestClient]:
    """Two messages read ME (one for two cases), one read OTHER, one by an official."""
    seed(
        engine,
        [exchange("m1", CIVIL, T0, issue="case-1"), exchange("m2", TAX, T0 + timedelta(days=1)),
         exchange("m3", CIVIL, T0 + timedelta(days=2), user="official-17")],
        [access(ME, "m1", T0),
         access(ME, "m2", T0 + timedelta(days=1), institution="tax", service="tax/income",
                case_id="case-2", purpose="disability payment: income test"),
         access(ME, "m2", T0 + timedelta(days=1), institution="tax", service="tax/income",
                case_id="case-3", purpose="disability payment: income test"),
         access(OTHER, "m1", T0, case_id="case-9"),
         access(ME, "m3", T0 + timedelta(days=2), case_id=None, requester="official-17",
                purpose="a caseworker's review")],
    )
    with TestClient(make_tracker_app(engine)) as c:
        yield c


def test_a_person_sees_who_read_their_data_and_why(client: TestClient) -> None:
    r = find(client)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["totalUsages"] == body["returnedUsages"] == 4
    assert body["dataResponses"] == body["dataProcessings"] == body["internalProcessings"] == []
    first, second, third = body["dataRequests"][:3]
    assert first == {
        "logTime": "2025-03-01T12:30:15.123456+04:00",
        "purpose": "birth benefit: check the parent",
        "logSourceSystem": "haqq",
        "bulkProcessing": False,
        "legalBasis": LAW,
        "queryId": "m1",
        "queryGroupId": "case-1",
        "initiatorOrg": {"type": "GOV", "name": "MLSPP", "systemName": "HAQQ"},
        "requestHash": "hash-m1",
        "xRoadService": CIVIL,
        "target": {"type": "GOV", "name": "civil_registry", "systemName": "CIVIL-REGISTRY"},
    }
    assert datetime.fromisoformat(first["logTime"]) == T0
    assert (second["queryGroupId"], second["target"]["name"], second["requestHash"]) == ("case-2", "tax", "hash-m2")
    assert second["purpose"] == "disability payment: income test"
    assert third["queryGroupId"] == "case-3" and third["target"]["systemName"] == "INCOME"


def test_all_of_a_persons_rows_and_no_one_elses(client: TestClient, engine: Engine) -> None:
    body = find(client).json()
    with engine.connect() as conn:
        mine = conn.execute(select(func.count()).select_from(data_access_log)
                            .where(data_access_log.c.fin == ME)).scalar_one()
    assert body["totalUsages"] == body["returnedUsages"] == mine == 4
    rows = body["dataRequests"]
    assert [(u["queryId"], u.get("queryGroupId")) for u in rows] == [
        ("m1", "case-1"), ("m2", "case-2"), ("m2", "case-3"), ("m3", None)]
    assert "case-9" not in find(client).text
    # The official who caused the last read is named; automatic work names no person.
    assert rows[3]["initiatorPerson"] == {"alternativeCode": "official-17"}
    assert all("initiatorPerson" not in u for u in rows[:3])
    other = find(client, OTHER, asker=OTHER).json()
    assert [(u["queryId"], u["queryGroupId"]) for u in other["dataRequests"]] == [("m1", "case-9")]
    nobody = find(client, "9ZZZZZZ").json()
    assert nobody["totalUsages"] == nobody["returnedUsages"] == 0 and nobody["dataRequests"] == []


def test_period_and_paging(client: TestClient) -> None:
    def ids(**params: Any) -> tuple[int, list[tuple[str, str | None]]]:
        r = find(client, **params)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["returnedUsages"] == len(body["dataRequests"])
        return body["totalUsages"], [(u["queryId"], u.get("queryGroupId")) for u in body["dataRequests"]]

    day1 = (T0 + timedelta(days=1)).isoformat()
    assert ids(periodStart=day1) == (3, [("m2", "case-2"), ("m2", "case-3"), ("m3", None)])
    assert ids(periodEnd=day1) == (3, [("m1", "case-1"), ("m2", "case-2"), ("m2", "case-3")])
    assert ids(periodStart=day1, periodEnd=day1) == (2, [("m2", "case-2"), ("m2", "case-3")])
    # Another offset, the same moment: Baku time is UTC+4.
    baku = (T0 + timedelta(days=2)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")
    assert ids(periodStart=baku + "Z")[0] == 1
    assert ids(periodStart="2025-03-03T12:30:15.123456+04:00")[0] == 1
    assert ids(periodStart="2026-01-01T00:00:00Z") == (0, [])
    # A period that ends before it starts is valid and holds nothing (the spec does not refuse it).
    assert ids(periodStart=day1, periodEnd=T0.isoformat()) == (0, [])
    # Pages: the total ignores them; they follow time then id.
    assert ids(limit=2) == (4, [("m1", "case-1"), ("m2", "case-2")])
    assert ids(limit=2, offset=2) == (4, [("m2", "case-3"), ("m3", None)])
    assert ids(limit=2, offset=4) == (4, [])
    assert ids(limit=1, offset=1, periodStart=day1) == (3, [("m2", "case-3")])


def test_filters_of_the_spec(client: TestClient) -> None:
    assert find(client, processingType=["DATA_RESPONSE"]).json()["totalUsages"] == 0
    assert find(client, processingType=["DATA_REQUEST", "DATA_RESPONSE"]).json()["totalUsages"] == 4
    assert find(client, logSourceSystems=["Terviseportaal"]).json()["totalUsages"] == 0
    assert find(client, logSourceSystems=["haqq"]).json()["totalUsages"] == 4
    assert find(client, includeBulkProcessing="true").json()["totalUsages"] == 4


@pytest.mark.parametrize(
    ("params", "headers", "code"),
    [
        ({"userCode": "5zk7n2r"}, {"X-Road-UserId": ASKER}, "INVALID_FIN"),
        ({"userCode": "5ZK7N2"}, {"X-Road-UserId": ASKER}, "INVALID_FIN"),
        ({"userCode": "EE12345678901"}, {"X-Road-UserId": ASKER}, "INVALID_FIN"),
        ({"userCode": ME}, {"X-Road-UserId": "nobody"}, "INVALID_FIN"),
        ({"userCode": ME}, {}, "MISSING_PARAMETER"),
        ({}, {"X-Road-UserId": ASKER}, "MISSING_PARAMETER"),
        ({"userCode": ME, "periodStart": "yesterday"}, {"X-Road-UserId": ASKER}, "INVALID_PARAMETER"),
        ({"userCode": ME, "periodEnd": "2025-03-01T10:00:00"}, {"X-Road-UserId": ASKER}, "INVALID_PARAMETER"),
        ({"userCode": ME, "periodEnd": "1740819600"}, {"X-Road-UserId": ASKER}, "INVALID_PARAMETER"),
        ({"userCode": ME, "periodStart": "2025-03-01"}, {"X-Road-UserId": ASKER}, "INVALID_PARAMETER"),
        ({"userCode": ME, "limit": 0}, {"X-Road-UserId": ASKER}, "INVALID_PARAMETER"),
        ({"userCode": ME, "limit": 10_001}, {"X-Road-UserId": ASKER}, "INVALID_PARAMETER"),
        ({"userCode": ME, "limit": "ten"}, {"X-Road-UserId": ASKER}, "INVALID_PARAMETER"),
        ({"userCode": ME, "offset": -1}, {"X-Road-UserId": ASKER}, "INVALID_PARAMETER"),
        ({"userCode": ME, "processingType": "EVERYTHING"}, {"X-Road-UserId": ASKER}, "INVALID_PARAMETER"),
    ],
)
def test_bad_requests_get_400_with_the_specs_error(
    client: TestClient, params: dict[str, Any], headers: dict[str, str], code: str
) -> None:
    r = client.get("/v3/findUsage", params=params, headers=headers)
    assert r.status_code == 400, r.text
    body = r.json()
    assert set(body) == {"code", "message"} and body["code"] == code and body["message"]


def test_a_message_missing_from_the_log_or_logged_twice(engine: Engine) -> None:
    seed(engine, [exchange("m1", CIVIL, T0), exchange("m1", TAX, T0)],
         [access(ME, "m1", T0), access(ME, "gone", T0 + timedelta(hours=1), case_id="case-2")])
    with TestClient(make_tracker_app(engine)) as client:
        body = find(client).json()
    assert body["totalUsages"] == body["returnedUsages"] == 2
    logged, gone = body["dataRequests"]
    assert logged["xRoadService"] == CIVIL  # the first entry with that message id
    assert gone["queryId"] == "gone" and "requestHash" not in gone
    assert gone["target"] == {"type": "GOV", "name": "civil_registry", "systemName": "civil_registry/person"}
    assert gone["initiatorOrg"] == {"type": "GOV", "name": "haqq"}


def test_heartbeat(client: TestClient) -> None:
    r = client.get("/v3/heartbeat")
    assert r.status_code == 200 and r.json() == {"status": "OK", "message": "API is ready"}


def test_a_store_that_cannot_be_read(tmp_path: Path) -> None:
    broken = create_engine(f"sqlite:///{tmp_path / 'no' / 'such' / 'dir.db'}")
    with TestClient(make_tracker_app(broken)) as client:
        beat = client.get("/v3/heartbeat")
        r = find(client)
    assert beat.status_code == 200 and beat.json()["status"] == "FAIL"
    assert r.status_code == 500 and r.json()["code"] == "STORE_UNAVAILABLE"


def test_the_description_names_the_operations_and_their_errors(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    get = spec["paths"]["/v3/findUsage"]["get"]
    assert get["operationId"] == "findUsage"
    assert spec["paths"]["/v3/heartbeat"]["get"]["operationId"] == "heartbeat"
    assert set(get["responses"]) == {"200", "400", "500"}
    assert get["responses"]["400"]["content"]["application/json"]["schema"]["$ref"].endswith("/Error")
    names = {p["name"] for p in get["parameters"]}
    assert names == {"X-Road-UserId", "userCode", "processingType", "includeBulkProcessing",
                     "logSourceSystems", "periodStart", "periodEnd", "limit", "offset"}
    usage = spec["components"]["schemas"]["UsageTransfer"]
    assert {"logTime", "purpose", "legalBasis", "queryId", "queryGroupId", "target",
            "initiatorOrg", "requestHash"} <= set(usage["properties"])


# ---- a replayed country ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def country_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generated_country(tmp_path_factory, population=2000, seed=5)


def test_a_replayed_country_is_reported_exactly(country_file: Path, tmp_path: Path) -> None:
    country = tmp_path / "country.db"
    shutil.copyfile(country_file, country)
    app = build(Settings(database_url=f"sqlite:///{tmp_path / 'haqq.db'}", country=country, batch_size=200))
    db.upgrade(app.engine)
    replay(app, year=2025, tick=timedelta(days=7))
    dal, ml = data_access_log, message_log
    with app.engine.connect() as conn:
        fin = conn.execute(select(dal.c.fin).group_by(dal.c.fin)
                           .order_by(func.count().desc(), dal.c.fin).limit(1)).scalar_one()
        expected = conn.execute(
            select(dal.c.message_id, dal.c.case_id, dal.c.at, dal.c.purpose, dal.c.legal_basis,
                   dal.c.institution, ml.c.request_hash)
            .outerjoin(ml, ml.c.message_id == dal.c.message_id)
            .where(dal.c.fin == fin).order_by(dal.c.at, dal.c.id)).all()
    assert len(expected) > 3
    with TestClient(make_tracker_app(app.engine)) as client:
        body = find(client, fin, asker=fin, limit=10_000).json()
        paged = [u for off in range(0, len(expected), 2)
                 for u in find(client, fin, asker=fin, limit=2, offset=off).json()["dataRequests"]]
    got = [(u["queryId"], u.get("queryGroupId"), datetime.fromisoformat(u["logTime"]), u["purpose"],
            u["legalBasis"], u["target"]["name"], u.get("requestHash")) for u in body["dataRequests"]]
    assert body["totalUsages"] == body["returnedUsages"] == len(expected)
    assert got == [tuple(r) for r in expected]
    assert paged == body["dataRequests"]
    assert all(u["requestHash"] and u["xRoadService"].startswith("AZ/GOV/") for u in body["dataRequests"])


# ---- schemathesis against the app's own description --------------------------------------------

#: No 5xx; documented statuses and content types; answers that match the schema; and requests
#: that match it accepted. Not ``negative_data_rejection``: a query string cannot tell a generated
#: "wrong type" from a valid string (``logSourceSystems=false`` is the system named "false").
CHECKS: list[CheckFunction] = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    positive_data_acceptance,
]
TRACKER = schemathesis.openapi.from_asgi("/openapi.json", make_tracker_app(create_engine("sqlite://")))


@pytest.fixture
def tracker_app(tmp_path: Path) -> Any:
    """A SQLite store where the description's example FIN has records (so some answers carry
    usages to check against the schema)."""
    engine = db.make_engine(f"sqlite:///{tmp_path / 'h.db'}")
    db.upgrade(engine)
    seed(engine, [exchange("m1", CIVIL, T0), exchange("m2", TAX, T0, user="official-17")],
         [access(EXAMPLE_FIN, "m1", T0), access(EXAMPLE_FIN, "m2", T0, case_id=None),
          access(EXAMPLE_FIN, "gone", T0, requester=EXAMPLE_FIN)])
    return make_tracker_app(engine)


@TRACKER.parametrize()
@settings(max_examples=30, deadline=None, database=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                                 HealthCheck.function_scoped_fixture])
def test_the_tracker_keeps_its_description(case: schemathesis.Case[Any], tracker_app: Any) -> None:
    case.call_and_validate(app=tracker_app, checks=CHECKS)
