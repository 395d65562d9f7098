"""``haqq serve``'s app: the events endpoint and the Data Tracker mounted together on one store."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from haqq.adapters.events.keys import EventKeys, WebhookSender
from haqq.adapters.events.webhooks import hub_signature
from haqq.adapters.store import db
from haqq.entrypoints.cli_serve import make_http_app

SECRET = "a-shared-webhook-secret-of-some-length"


def test_both_endpoints_answer_on_one_store(tmp_path: Path) -> None:
    engine = db.make_engine(f"sqlite:///{tmp_path / 'h.db'}")
    db.upgrade(engine)
    keys = EventKeys(webhooks={"opencrvs": WebhookSender(source="opencrvs", secret=SECRET)})
    client = TestClient(make_http_app(engine, keys))
    beat = client.get("/datatracker/v3/heartbeat")
    assert beat.status_code == 200 and beat.json()["status"] == "OK"
    body = b'{"event": {}}'
    refused = client.post("/events/webhooks/opencrvs", content=body, headers={"X-Hub-Signature": hub_signature(body, "wrong-secret-wrong-secret")})
    assert refused.status_code == 401
    usage = client.get("/datatracker/v3/findUsage", params={"userCode": "5ZK7N2R"}, headers={"X-Road-UserId": "5ZK7N2R"})
    assert usage.status_code == 200 and usage.json()["totalUsages"] == 0
    engine.dispose()
