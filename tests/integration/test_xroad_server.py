"""The simulated institutions as X-Road REST services behind the security-server simulator, over a
real (small) country file: in-process through ``httpx.MockTransport``, and once over real HTTP."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import os
import re
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from typer.testing import CliRunner

from haqq.adapters.institutions.simulated import SimulatedInstitutions
from haqq.adapters.xroad.directory import Directory, Fault, load_directory
from haqq.adapters.xroad.ids import ClientId, ServiceId
from haqq.adapters.xroad.providers import Endpoint, simulated_providers
from haqq.adapters.xroad.security_server import PROVIDER_HOST, SecurityServer, request_hash
from haqq.country.schema import BAKU
from haqq.entrypoints.cli import app as cli_app
from haqq.ports import Service
from tests.helpers import country_query, generated_country

NOON = datetime(2025, 7, 1, 12, tzinfo=BAKU)
HAQQ = "AZ/GOV/MLSPP/HAQQ"
STRANGER = "AZ/GOV/OTHER/APP"
REGISTRY = ClientId("AZ", "GOV", "MOJ", "CIVIL-REGISTRY")
PERSON = ServiceId(REGISTRY, "person")
PERSON_QUERY = f"/r1/{PERSON}/v1/persons/query"
JSON = "application/json; charset=utf-8"
FIELDS = {
    "civil_registry/person": {"name", "sex", "birth_date", "alive", "death_date"},
    "civil_registry/family": {"mother_fin", "father_fin", "spouse_fin", "children"},
    "interior/identity": {"document_valid", "document_number", "birth_date", "address", "resident"},
    "tax/income": {"employed", "monthly_income"},
    "pension_fund/record": {"pension_capital", "insurance_months", "pensions"},
    "disability/status": {"active", "group", "since", "until"},
    "mobile_registry/number": {"phone", "language"},
}


@pytest.fixture(scope="module")
def country(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generated_country(tmp_path_factory, 1_200, 5)


@pytest.fixture(scope="module")
def fins(country: Path) -> list[str]:
    rows = country_query(country, "SELECT fin FROM persons WHERE birth_date < '2025' ORDER BY id LIMIT 60")
    return [r["fin"] for r in rows]


@pytest.fixture(scope="module")
def directory() -> Directory:
    return load_directory()


def make_server(country: Path, directory: Directory, **kw: Any) -> SecurityServer:
    return SecurityServer(directory, simulated_providers(directory, SimulatedInstitutions(country)), **kw)


def client_of(server: SecurityServer) -> httpx.Client:
    return httpx.Client(transport=httpx.MockTransport(server.handle), base_url="http://ss.test")


@pytest.fixture
def ss(country: Path, directory: Directory) -> Iterator[httpx.Client]:
    with client_of(make_server(country, directory)) as c:
        yield c


def query(c: httpx.Client, fins: Sequence[str], *, client: str | None = HAQQ, path: str = PERSON_QUERY,
          as_of: str = NOON.isoformat(), **headers: str) -> httpx.Response:
    h = {"X-Road-Client": client} if client else {}
    return c.post(path, json={"asOf": as_of, "fins": list(fins)}, headers={**h, **headers})


def assert_xroad_error(r: httpx.Response, status: int, error_type: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["X-Road-Error"] == error_type
    assert r.headers["Content-Type"] == JSON
    body = r.json()
    assert set(body) == {"type", "message", "detail"}
    assert body["type"] == error_type and body["message"]
    uuid.UUID(body["detail"])
    return dict(body)


def conforms(value: Any, schema: dict[str, Any]) -> bool:
    """A record against the OpenAPI 3.0 subset the providers' descriptions use."""
    if value is None:
        return bool(schema.get("nullable"))
    kind = schema["type"]
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "integer":
        return (isinstance(value, int) and not isinstance(value, bool)
                and schema.get("minimum", value) <= value <= schema.get("maximum", value))
    if kind == "array":
        return isinstance(value, list) and all(conforms(v, schema["items"]) for v in value)
    if kind == "string":
        if not isinstance(value, str) or ("enum" in schema and value not in schema["enum"]):
            return False
        if "pattern" in schema and not re.search(schema["pattern"], value):
            return False
        if schema.get("format") == "date":
            date.fromisoformat(value)
        return True
    return False


# ---- the provider services ------------------------------------------------------------------------


def test_a_batch_query_answers_what_the_registries_hold_for_every_service(
    country: Path, directory: Directory, fins: list[str], ss: httpx.Client
) -> None:
    institutions = SimulatedInstitutions(country)
    asked = [*fins, "ZZZZZZZ"]
    for service, route in directory.routes.items():
        message_id = str(uuid.uuid4())
        r = query(ss, asked, path=f"/r1/{route.service.encoded()}{route.path}", **{"X-Road-Id": message_id})
        assert r.status_code == 200, r.text
        assert "X-Road-Error" not in r.headers
        assert r.headers["X-Road-Client"] == HAQQ
        assert r.headers["X-Road-Service"] == str(route.service)
        assert r.headers["X-Road-Id"] == message_id
        uuid.UUID(r.headers["X-Road-Request-Id"])
        body = r.json()
        expected = institutions.records(service, asked, as_of=NOON)
        assert body["records"] == expected and len(expected) == len(fins)
        assert "ZZZZZZZ" not in body["records"]
        assert datetime.fromisoformat(body["asOf"]) == NOON
        schema = ss.get(f"/r1/{route.service.provider.encoded()}/getOpenAPI",
                        params={"serviceCode": route.service.code}, headers={"X-Road-Client": HAQQ}).json()
        record = schema["components"]["schemas"]["Record"]
        assert set(record["properties"]) == set(record["required"]) == FIELDS[service.value]
        for fin, rec in body["records"].items():
            assert set(rec) == FIELDS[service.value]
            bad = {k: v for k, v in rec.items() if not conforms(v, record["properties"][k])}
            assert not bad, f"{service} {fin}: {bad} break the OpenAPI description"


def test_each_request_gets_its_own_request_id_and_a_message_id_when_none_is_given(
    fins: list[str], ss: httpx.Client
) -> None:
    a, b = query(ss, fins[:2]), query(ss, fins[:2])
    assert a.headers["X-Road-Request-Id"] != b.headers["X-Road-Request-Id"]
    assert a.headers["X-Road-Id"] != b.headers["X-Road-Id"]
    uuid.UUID(a.headers["X-Road-Id"])


def test_one_person_by_get(country: Path, fins: list[str], ss: httpx.Client) -> None:
    fin = fins[3]
    r = ss.get(f"/r1/{PERSON}/v1/persons/{fin}", params={"asOf": NOON.isoformat()},
               headers={"X-Road-Client": HAQQ})
    assert r.status_code == 200, r.text
    assert r.json() == {
        "asOf": NOON.isoformat(), "fin": fin,
        "record": SimulatedInstitutions(country).records(Service.CIVIL_PERSON, [fin], as_of=NOON)[fin],
    }
    unknown = ss.get(f"/r1/{PERSON}/v1/persons/ZZZZZZZ", params={"asOf": NOON.isoformat()},
                     headers={"X-Road-Client": HAQQ})
    assert unknown.status_code == 404 and "X-Road-Error" not in unknown.headers
    assert unknown.json()["status"] == 404 and "ZZZZZZZ" in unknown.json()["message"]
    for params, words in (({}, "asOf"), ({"asOf": "2025-07-01T12:00:00"}, "timezone"),
                          ({"asOf": NOON.isoformat(), "x": "1"}, "unknown query parameter")):
        r = ss.get(f"/r1/{PERSON}/v1/persons/{fin}", params=params, headers={"X-Road-Client": HAQQ})
        assert r.status_code == 400 and words in r.json()["message"] and "X-Road-Error" not in r.headers
    bad_fin = ss.get(f"/r1/{PERSON}/v1/persons/abc", params={"asOf": NOON.isoformat()},
                     headers={"X-Road-Client": HAQQ})
    assert bad_fin.status_code == 400 and "'abc' is not a FIN" in bad_fin.json()["message"]



@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b"{not json", "not valid JSON"),
        (b"[]", "JSON object"),
        (json.dumps({"fins": ["ABC1234"]}).encode(), "asOf is missing"),
        (json.dumps({"asOf": "2025-07-01T12:00:00", "fins": []}).encode(), "no timezone"),
        (json.dumps({"asOf": "yesterday", "fins": []}).encode(), "not an ISO 8601"),
        (json.dumps({"asOf": NOON.isoformat(), "fins": "ABC1234"}).encode(), "fins is missing or not a list"),
        (json.dumps({"asOf": NOON.isoformat(), "fins": ["ABC1234", "abc1234"]}).encode(), "fins[1] 'abc1234'"),
        (json.dumps({"asOf": NOON.isoformat(), "fins": ["ABC12345"]}).encode(), "fins[0]"),
        (json.dumps({"asOf": NOON.isoformat(), "fins": [1234567]}).encode(), "fins[0] 1234567"),
        (json.dumps({"asOf": NOON.isoformat(), "fins": ["ABC1234"] * 10_001}).encode(), "at most 10,000"),
        (json.dumps({"asOf": NOON.isoformat(), "fins": [], "fin": "X"}).encode(), "unknown field(s) fin"),
    ],
)
def test_bad_input_is_the_providers_400_passed_through_without_x_road_error(
    ss: httpx.Client, body: bytes, words: str
) -> None:
    r = ss.post(PERSON_QUERY, content=body, headers={"X-Road-Client": HAQQ, "Content-Type": "application/json"})
    assert r.status_code == 400
    assert "X-Road-Error" not in r.headers
    assert r.headers["X-Road-Service"] == str(PERSON)  # it did go through X-Road
    error = r.json()
    assert error["status"] == 400 and error["error"] == "Bad Request"
    assert words in error["message"], error["message"]


def test_ten_thousand_fins_and_a_purpose_are_accepted(fins: list[str], ss: httpx.Client) -> None:
    many = [*fins, *[f"Z{i:06d}" for i in range(10_000 - len(fins))]]
    r = ss.post(PERSON_QUERY, json={"asOf": NOON.isoformat(), "fins": many, "purpose": "test"},
                headers={"X-Road-Client": HAQQ})
    assert r.status_code == 200 and set(r.json()["records"]) == set(fins)


# ---- the security server ------------------------------------------------------------------------


def test_the_client_header_is_mandatory_and_must_be_an_identifier(fins: list[str], ss: httpx.Client) -> None:
    r = query(ss, fins[:1], client=None)
    assert "X-Road-Client" in assert_xroad_error(r, 400, "Client.BadRequest")["message"]
    for bad in ("AZ/GOV", "AZ/GOV/MLSPP/HA QQ", "AZ/GOV/MLSPP/HAQQ/X/Y", ""):
        assert_xroad_error(query(ss, fins[:1], client=bad), 400, "Client.BadRequest")
    # Percent-encoded parts are decoded.
    assert query(ss, fins[:1], client="AZ/GOV/MLSPP/HAQ%51").status_code == 200


def test_the_last_client_header_wins(fins: list[str], ss: httpx.Client) -> None:
    body = json.dumps({"asOf": NOON.isoformat(), "fins": fins[:1]}).encode()
    first_bad = ss.post(PERSON_QUERY, content=body, headers=[("X-Road-Client", STRANGER), ("x-road-client", HAQQ)])
    assert first_bad.status_code == 200 and first_bad.headers["X-Road-Client"] == HAQQ
    last_bad = ss.post(PERSON_QUERY, content=body, headers=[("X-Road-Client", HAQQ), ("X-Road-Client", STRANGER)])
    assert_xroad_error(last_bad, 500, "Server.ServerProxy.AccessDenied")


def test_a_client_without_rights_is_denied(fins: list[str], ss: httpx.Client) -> None:
    r = query(ss, fins[:1], client=STRANGER)
    body = assert_xroad_error(r, 500, "Server.ServerProxy.AccessDenied")
    assert STRANGER in body["message"] and str(PERSON) in body["message"]
    assert r.headers["X-Road-Client"] == STRANGER and r.headers["X-Road-Service"] == str(PERSON)
    assert "records" not in r.text


@pytest.mark.parametrize(
    ("path", "status", "error_type"),
    [
        ("/r1/AZ/GOV/MOJ/CIVIL-REGISTRY/nosuch/v1/persons/query", 500, "Server.ServerProxy.UnknownService"),
        ("/r1/AZ/GOV/MOJ/CIVIL-REGISTRY/identity/v1/identities/query", 500, "Server.ServerProxy.UnknownService"),
        ("/r1/AZ/GOV/NOPE/SUB/person/v1/persons/query", 500, "Server.ServerProxy.UnknownMember"),
        ("/r1/EE/GOV/MOJ/CIVIL-REGISTRY/person/v1/persons/query", 500, "Server.ServerProxy.UnknownMember"),
        ("/r2/AZ/GOV/MOJ/CIVIL-REGISTRY/person/v1/persons/query", 400, "Client.BadRequest"),
        ("/r1/AZ/GOV/MOJ", 400, "Client.BadRequest"),
        ("/r1/AZ/GOV/MOJ/CIVIL%20REGISTRY/person/v1/persons/query", 400, "Client.BadRequest"),
        ("/r1/AZ/GOV/MOJ/CIVIL-REGISTRY/" + "x" * 2100, 400, "Client.BadRequest"),
    ],
)
def test_unknown_or_malformed_services(ss: httpx.Client, fins: list[str], path: str, status: int, error_type: str) -> None:
    assert_xroad_error(query(ss, fins[:1], path=path), status, error_type)


def test_the_request_hash_follows_its_documented_canonical_form(fins: list[str], ss: httpx.Client) -> None:
    request = ss.build_request(
        "POST", PERSON_QUERY + "?b=2&a=%20",
        content=json.dumps({"asOf": NOON.isoformat(), "fins": fins[:2]}).encode(),
        headers={"X-Road-Client": HAQQ, "X-Road-UserId": "AZ1234567", "Content-Type": "application/json",
                 "X-Custom": "not hashed", "X-Road-Issue": " case-7 "},
    )
    canonical = (
        f"POST {PERSON_QUERY}?b=2&a=%20\n"
        "content-type: application/json\n"
        f"x-road-client: {HAQQ}\n"
        "x-road-issue: case-7\n"
        "x-road-userid: AZ1234567\n"
    ).encode()
    head = hashlib.sha512(canonical).digest()
    expected = base64.b64encode(hashlib.sha512(head + hashlib.sha512(request.content).digest()).digest()).decode()
    r = ss.send(request)
    assert r.status_code == 400  # the provider refuses the query string, but the hash is there
    assert r.headers["X-Road-Request-Hash"] == expected == request_hash(request)
    # No body: the headers' digest alone.
    get = ss.build_request("GET", f"/r1/{REGISTRY}/listMethods", headers={"X-Road-Client": HAQQ})
    bare = base64.b64encode(hashlib.sha512(f"GET /r1/{REGISTRY}/listMethods\nx-road-client: {HAQQ}\n".encode()).digest())
    assert ss.send(get).headers["X-Road-Request-Hash"] == bare.decode() == request_hash(get)
    # Another body, another hash.
    other = query(ss, fins[2:4])
    assert other.headers["X-Road-Request-Hash"] != expected


# ---- the metadata protocol ----------------------------------------------------------------------

REGISTRY_SERVICES = [
    {"member_class": "GOV", "member_code": "MOJ", "object_type": "SERVICE", "service_code": "family",
     "service_type": "OPENAPI", "subsystem_code": "CIVIL-REGISTRY", "xroad_instance": "AZ",
     "endpoint_list": [{"method": "POST", "path": "/v1/families/query"}, {"method": "GET", "path": "/v1/families/*"}]},
    {"member_class": "GOV", "member_code": "MOJ", "object_type": "SERVICE", "service_code": "person",
     "service_type": "OPENAPI", "subsystem_code": "CIVIL-REGISTRY", "xroad_instance": "AZ",
     "endpoint_list": [{"method": "POST", "path": "/v1/persons/query"}, {"method": "GET", "path": "/v1/persons/*"}]},
]


def test_list_methods_and_allowed_methods(country: Path, directory: Directory, ss: httpx.Client) -> None:
    listed = ss.get(f"/r1/{REGISTRY}/listMethods", headers={"X-Road-Client": STRANGER})
    assert listed.status_code == 200 and listed.headers["Content-Type"] == JSON
    assert listed.json() == {"service": REGISTRY_SERVICES}
    assert listed.headers["X-Road-Service"] == f"{REGISTRY}/listMethods"
    assert ss.get(f"/r1/{REGISTRY}/allowedMethods", headers={"X-Road-Client": HAQQ}).json() == {"service": REGISTRY_SERVICES}
    assert ss.get(f"/r1/{REGISTRY}/allowedMethods", headers={"X-Road-Client": STRANGER}).json() == {"service": []}
    only_person = dataclasses.replace(directory, access={ClientId.parse(STRANGER): frozenset({PERSON})})
    with client_of(make_server(country, only_person)) as c:
        allowed = c.get(f"/r1/{REGISTRY}/allowedMethods", headers={"X-Road-Client": STRANGER}).json()
    assert allowed == {"service": REGISTRY_SERVICES[1:]}
    names = {s["service_code"] for s in ss.get("/r1/AZ/GOV/MIA/IDENTITY/listMethods", headers={"X-Road-Client": HAQQ}).json()["service"]}
    assert names == {"identity"}
    assert_xroad_error(ss.post(f"/r1/{REGISTRY}/listMethods", headers={"X-Road-Client": HAQQ}), 400, "Client.BadRequest")
    assert_xroad_error(ss.get(f"/r1/{REGISTRY}/listMethods"), 400, "Client.BadRequest")


def test_get_openapi_describes_the_service(ss: httpx.Client) -> None:
    h = {"X-Road-Client": HAQQ}
    r = ss.get(f"/r1/{REGISTRY}/getOpenAPI", params={"serviceCode": "person"}, headers=h)
    assert r.status_code == 200 and r.headers["Content-Type"] == JSON
    spec = r.json()
    assert spec["openapi"].startswith("3.0.")
    assert set(spec["paths"]) == {"/v1/persons/query", "/v1/persons/{fin}"}
    assert set(spec["paths"]["/v1/persons/query"]) == {"post"} and set(spec["paths"]["/v1/persons/{fin}"]) == {"get"}
    schemas = spec["components"]["schemas"]
    assert schemas["Query"]["required"] == ["asOf", "fins"] and schemas["Query"]["properties"]["fins"]["maxItems"] == 10_000
    assert schemas["Record"]["properties"]["sex"]["enum"] == ["F", "M"]
    as_yaml = ss.get(f"/r1/{REGISTRY}/getOpenAPI", params={"serviceCode": "person"}, headers={**h, "Accept": "text/yaml"})
    assert as_yaml.headers["Content-Type"].startswith("text/yaml") and yaml.safe_load(as_yaml.text) == spec
    assert_xroad_error(ss.get(f"/r1/{REGISTRY}/getOpenAPI", headers=h), 400, "Client.BadRequest")
    for code in ("nosuch", "listMethods", "identity"):
        r = ss.get(f"/r1/{REGISTRY}/getOpenAPI", params={"serviceCode": code}, headers=h)
        assert_xroad_error(r, 500, "Server.ServerProxy.UnknownService")


# ---- faults -------------------------------------------------------------------------------------


def with_fault(directory: Directory, provider: ClientId, fault: Fault) -> Directory:
    return directory.with_faults({provider: fault})


def test_a_provider_down_answers_network_error_while_the_clock_is_in_the_period(
    country: Path, directory: Directory, fins: list[str]
) -> None:
    start = datetime(2025, 3, 1, tzinfo=BAKU)
    now = [start + timedelta(hours=3)]
    down = with_fault(directory, REGISTRY, Fault(down=((start, start + timedelta(days=1)),)))
    with client_of(make_server(country, down, clock=lambda: now[0])) as c:
        body = assert_xroad_error(query(c, fins[:1]), 500, "Server.ServerProxy.NetworkError")
        assert str(REGISTRY) in body["message"]
        other = c.post("/r1/AZ/GOV/STS/INCOME/income/v1/incomes/query", json={"asOf": NOON.isoformat(), "fins": fins[:1]},
                       headers={"X-Road-Client": HAQQ})
        assert other.status_code == 200
        now[0] = start + timedelta(days=1)
        assert query(c, fins[:1]).status_code == 200


def test_an_error_rate_of_one_fails_every_call_and_a_seed_makes_rates_repeatable(
    country: Path, directory: Directory, fins: list[str]
) -> None:
    always = with_fault(directory, REGISTRY, Fault(error_rate=1.0))
    with client_of(make_server(country, always)) as c:
        for _ in range(3):
            assert_xroad_error(query(c, fins[:1]), 500, "Server.ServerProxy.ServiceFailed")
    half = with_fault(directory, REGISTRY, Fault(error_rate=0.5))

    def outcomes(seed: int) -> list[int]:
        with client_of(make_server(country, half, seed=seed)) as c:
            return [query(c, fins[:1]).status_code for _ in range(30)]

    first = outcomes(3)
    assert first == outcomes(3)
    assert set(first) == {200, 500}
    assert first != outcomes(4)


def test_latency_is_spent_through_the_injected_sleep(country: Path, directory: Directory, fins: list[str]) -> None:
    slept: list[float] = []
    slow = with_fault(directory, REGISTRY, Fault(latency_ms=250))
    with client_of(make_server(country, slow, sleep=slept.append)) as c:
        assert query(c, fins[:1]).status_code == 200
        assert query(c, fins[:1]).status_code == 200
        assert c.get(f"/r1/{REGISTRY}/listMethods", headers={"X-Road-Client": HAQQ}).status_code == 200
        assert c.post("/r1/AZ/GOV/STS/INCOME/income/v1/incomes/query",
                      json={"asOf": NOON.isoformat(), "fins": fins[:1]}, headers={"X-Road-Client": HAQQ}).status_code == 200
    assert slept == [0.25, 0.25]


def test_a_provider_that_breaks_is_service_failed(tmp_path: Path, directory: Directory, fins: list[str]) -> None:
    broken = simulated_providers(directory, SimulatedInstitutions(tmp_path / "missing.db"))
    with client_of(SecurityServer(directory, broken)) as c:
        body = assert_xroad_error(query(c, fins[:1]), 500, "Server.ServerProxy.ServiceFailed")
    assert "no country file" in body["message"]


class Recorder:
    """A provider that answers with what it was sent, and with headers X-Road must rewrite."""

    def __init__(self, service_id: ServiceId) -> None:
        self.service_id = service_id
        self.seen: list[httpx.Request] = []

    def endpoints(self) -> Sequence[Endpoint]:
        return [Endpoint("GET", "/*")]

    def openapi(self) -> dict[str, Any]:
        return {"openapi": "3.0.3"}

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request)
        return httpx.Response(418, content=b"teapot", headers={
            "X-Provider": "kept", "Server": "secret-host", "X-Road-Request-Hash": "forged",
            "X-Road-Error": "Forged.Error", "Content-Type": "text/plain",
        })


def test_headers_are_filtered_to_the_provider_and_back(directory: Directory) -> None:
    recorder = Recorder(PERSON)
    server = SecurityServer(directory, {PERSON: recorder})
    with client_of(server) as c:
        r = c.get(f"/r1/{PERSON}/v1/a%2Fb/c?b=2&a=1&a=%20", headers={
            "X-Road-Client": HAQQ, "X-Road-UserId": "AZ1", "X-Custom": "Value  As-Is",
            "User-Agent": "secret-agent", "Connection": "keep-alive, X-Hop", "X-Hop": "1",
            "Proxy-Authorization": "Basic x", "Accept": "application/xml",
        })
    sent = recorder.seen[0]
    assert sent.url.raw_path == b"/v1/a%2Fb/c?b=2&a=1&a=%20" and sent.url.host == PROVIDER_HOST
    assert sent.headers["X-Custom"] == "Value  As-Is" and sent.headers["Accept"] == "application/xml"
    assert sent.headers["X-Road-UserId"] == "AZ1" and sent.headers["X-Road-Client"] == HAQQ
    assert sent.headers["X-Road-Id"] == r.headers["X-Road-Id"]
    for dropped in ("User-Agent", "Connection", "X-Hop", "Proxy-Authorization"):
        assert dropped not in sent.headers, dropped
    # The provider's answer, error status included, comes back as-is but for X-Road's headers.
    assert r.status_code == 418 and r.content == b"teapot" and r.headers["X-Provider"] == "kept"
    assert "Server" not in r.headers and "X-Road-Error" not in r.headers
    assert r.headers["X-Road-Request-Hash"] == request_hash(r.request)


# ---- over real HTTP -----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(ready: Callable[[], bool], proc: subprocess.Popen[str], seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the server exited: {proc.communicate()}")
        if ready():
            return
        time.sleep(0.1)
    raise AssertionError("the server did not start")


def test_haqq_registries_serve_answers_over_http(country: Path, fins: list[str]) -> None:
    port = free_port()
    script = Path(sys.executable).with_name("haqq")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "haqq.entrypoints.cli"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("HAQQ_")}
    proc = subprocess.Popen(
        [*command, "registries", "serve", "--port", str(port), "--country", str(country)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    base = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        try:
            return bool(httpx.get(f"{base}/healthz", timeout=1).json()["status"] == "ok")
        except httpx.TransportError:
            return False

    try:
        wait_until(ready, proc)
        with httpx.Client(base_url=base, timeout=10) as c:
            request = c.build_request("POST", PERSON_QUERY, json={"asOf": NOON.isoformat(), "fins": fins[:5]},
                                      headers={"X-Road-Client": "AZ/GOV/MLSPP/HAQ%51", "X-Road-Id": "m-1"})
            r = c.send(request)
            denied = query(c, fins[:1], client=STRANGER)
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=20)
    assert r.status_code == 200, r.text
    assert r.json()["records"] == SimulatedInstitutions(country).records(Service.CIVIL_PERSON, fins[:5], as_of=NOON)
    assert r.headers["X-Road-Id"] == "m-1" and r.headers["X-Road-Client"] == HAQQ
    assert r.headers["X-Road-Request-Hash"] == request_hash(request)
    assert_xroad_error(denied, 500, "Server.ServerProxy.AccessDenied")
    assert f"http://127.0.0.1:{port}/r1/" in out


def test_serve_without_a_country_file_fails_with_a_message(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli_app, ["registries", "serve", "--country", str(tmp_path / "none.db")])
    assert result.exit_code == 2
    assert "no country file" in result.output
