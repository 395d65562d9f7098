"""Life events pushed over HTTP into a real SQLite store: SPDCI notify and OpenCRVS webhooks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select

from haqq.adapters.events import signature as sig
from haqq.adapters.events import spdci, webhooks
from haqq.adapters.store import db, messagelog
from haqq.adapters.store.schema import events, message_log
from haqq.entrypoints.events_api import make_events_app
from tests.helpers import CIVIL_REGISTRY_SIGNER, EVENT_KEYS, EVENTS_NOW, WEBHOOK_SECRET

NOW = EVENTS_NOW
CR = CIVIL_REGISTRY_SIGNER
SECRET = WEBHOOK_SECRET
KEYS = EVENT_KEYS


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    eng = db.make_engine(f"sqlite:///{tmp_path / 'h.db'}")
    db.upgrade(eng)
    return eng


@pytest.fixture
def client(engine: Engine) -> TestClient:
    return TestClient(make_events_app(KEYS, engine=engine, clock=lambda: NOW))


def rows(engine: Engine) -> list[tuple[Any, ...]]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(
            select(events.c.source, events.c.source_event_id, events.c.type, events.c.fin)
            .order_by(events.c.source_event_id))]


def count(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(events)).scalar_one())


def notify(message_id: str = "m-1", kind: str = "live_birth", *, signed: bool = True,
           key: str | None = None) -> dict[str, Any]:
    items = [{"reference_id": "r1", "timestamp": "2025-03-01T13:55:00+04:00",
              "data": {"reg_event_type": kind, "reg_record_type": "spdci-extensions-dci:Person",
                       "reg_records": {"identifier": "CHILD01",
                                       "parent1_identifier": {"identifier": "MOTHER1"}}}},
             {"reference_id": "r2", "timestamp": "2025-03-01T13:56:00+04:00",
              "data": {"reg_event_type": "death", "reg_record_type": "x",
                       "reg_records": {"identifier": "DEAD001"}}}]
    header = {"version": "1.0.0", "message_id": message_id, "message_ts": NOW.isoformat(),
              "action": "notify", "status": "succ", "sender_id": "cr.gov.az",
              "receiver_id": "haqq.gov.az", "total_count": 2}
    message = {"transaction_id": f"T-{message_id}", "notify_event": items}
    signer = CR if key is None else CR.model_copy(update={"key": key})
    return spdci.envelope(header, message,
                          sig.sign(header, message, signer, created=NOW) if signed else None)


def test_accepted_notify_writes_the_events(client: TestClient, engine: Engine) -> None:
    response = client.post("/spdci/registry/notify", json=notify())
    assert response.status_code == 200
    body = response.json()["message"]
    assert body["ack_status"] == "ACK" and body["correlation_id"]
    assert rows(engine) == [("civil_registry", "T-m-1/r1", "birth_registered", "CHILD01"),
                            ("civil_registry", "T-m-1/r2", "death_registered", "DEAD001")]
    # The message that carried them is in the message log, inbound, and the chain holds.
    with engine.connect() as conn:
        [entry] = conn.execute(select(message_log)).mappings().all()
        assert messagelog.verify(conn).ok
    assert entry["direction"] == "in" and entry["message_id"] == "m-1"
    assert entry["service"] == "spdci/registry/notify" and entry["persons"] == 2
    assert entry["request_hash"]


def test_replayed_notify_writes_nothing_more(client: TestClient, engine: Engine) -> None:
    assert client.post("/spdci/registry/notify", json=notify()).status_code == 200
    again = client.post("/spdci/registry/notify", json=notify())
    assert again.status_code == 409
    assert again.json()["message"]["ack_status"] == "ERR"
    assert again.json()["message"]["error"]["code"] == "rjct.message_id.duplicate"
    assert count(engine) == 2


def test_unsigned_or_badly_signed_writes_nothing(client: TestClient, engine: Engine) -> None:
    unsigned = client.post("/spdci/registry/notify", json=notify(signed=False))
    assert unsigned.status_code == 401
    assert unsigned.json()["message"]["error"]["code"] == "err.signature.missing"
    assert unsigned.json()["errors"][0]["code"] == "err.signature.missing"
    bad = client.post("/spdci/registry/notify", json=notify("m-2", key="a-wrong-secret"))
    assert bad.status_code == 401
    assert bad.json()["message"]["error"]["code"] == "err.signature.invalid"
    assert count(engine) == 0
    # a refused message is not remembered: the properly signed one is then taken in
    assert client.post("/spdci/registry/notify", json=notify("m-2")).status_code == 200
    assert count(engine) == 2


def test_unknown_event_type_is_refused_and_nothing_written(
    client: TestClient, engine: Engine
) -> None:
    response = client.post("/spdci/registry/notify", json=notify(kind="adoption"))
    assert response.status_code == 422
    assert response.json()["message"]["error"]["code"] == "rjct.notify_types.invalid"
    assert count(engine) == 0   # the good death in the same message is not written either
    garbled = client.post("/spdci/registry/notify", content=b"{oops",
                          headers={"content-type": "application/json"})
    assert garbled.status_code == 400
    assert garbled.json()["message"]["error"]["code"] == "err.request.bad"


def webhook_body() -> bytes:
    bundle = {"resourceType": "Bundle", "entry": [
        {"fullUrl": "urn:comp", "resource": {"resourceType": "Composition", "section": [
            {"code": {"coding": [{"code": "child-details"}]}, "entry": [{"reference": "urn:c"}]},
            {"code": {"coding": [{"code": "mother-details"}]},
             "entry": [{"reference": "urn:m"}]}]}},
        {"fullUrl": "urn:task", "resource": {
            "resourceType": "Task", "lastModified": "2025-03-01T13:00:00+04:00",
            "identifier": [{"system": "http://opencrvs.org/specs/id/birth-tracking-id",
                            "value": "BTRK001"}]}},
        *({"fullUrl": ref, "resource": {"resourceType": "Patient", "identifier": [
            {"value": fin, "type": {"coding": [{"code": "NATIONAL_ID"}]}}]}}
          for ref, fin in (("urn:c", "CHILD02"), ("urn:m", "MOTHER2")))]}
    return json.dumps({"id": "w1", "event": {"hub": {"topic": "BIRTH_REGISTERED"},
                                             "context": [bundle]}}).encode()


def test_webhook_good_hmac_stored_bad_refused(client: TestClient, engine: Engine) -> None:
    body = webhook_body()
    bad = client.post("/webhooks/opencrvs", content=body, headers={
        "X-Hub-Signature": webhooks.hub_signature(body, "not-the-secret-at-all")})
    assert bad.status_code == 401
    assert bad.json()["error"]["code"] == "signature_invalid"
    assert count(engine) == 0
    good = client.post("/webhooks/opencrvs", content=body,
                       headers={"X-Hub-Signature": webhooks.hub_signature(body, SECRET)})
    assert good.status_code == 200
    assert good.json() == {"status": "accepted", "accepted": 1, "duplicates": 0}
    assert rows(engine) == [("opencrvs", "BTRK001", "birth_registered", "CHILD02")]
    malformed = b'{"event": {}}'
    refused = client.post("/webhooks/opencrvs", content=malformed,
                          headers={"X-Hub-Signature": webhooks.hub_signature(malformed, SECRET)})
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "malformed"
    assert count(engine) == 1
    with engine.connect() as conn:
        logged = conn.execute(select(message_log.c.service, message_log.c.direction)).all()
    assert logged == [("webhooks/opencrvs", "in")]
