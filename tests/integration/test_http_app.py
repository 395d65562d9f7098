"""``haqq serve``'s app: the events endpoint and the Data Tracker mounted together on one store."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from fastapi.testclient import TestClient

from haqq.adapters.events.keys import EventKeys, WebhookSender
from haqq.adapters.events.webhooks import hub_signature
from haqq.adapters.store import db
from haqq.entrypoints.cli_serve import make_http_app
from tests.helpers import serving

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


def test_haqq_subscribes_to_a_registry_with_a_signed_request(tmp_path: Path) -> None:
    """``haqq events subscribe`` sends the registry a subscribe envelope signed with haqq's key,
    naming haqq's notify endpoint; the registry (here a small real HTTP server) checks it."""
    import json

    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route
    from typer.testing import CliRunner

    from haqq.adapters.events import signature
    from haqq.adapters.events.keys import SenderKey
    from haqq.entrypoints.cli import app

    received: list[dict[str, object]] = []
    haqq_key = SenderKey(source="haqq", key_id="k1", algorithm="hmac-sha256", key="haqq-signing-secret-123")

    async def registry(request: Request) -> JSONResponse:
        body = json.loads(await request.body())
        received.append(body)
        signature.verify(  # raises if the signature does not hold
            signature.parse_signature(body["signature"]), body["header"], body["message"], haqq_key,
            now=datetime.now(UTC), skew=timedelta(seconds=60),
        )
        return JSONResponse({"message": {"ack_status": "ACK", "timestamp": "2025-03-01T10:00:00+04:00",
                                         "correlation_id": "c-1"}})

    keys = tmp_path / "keys.yaml"
    keys.write_text(
        "signer: {sender_id: haqq.gov.az, key_id: k1, algorithm: hmac-sha256, key: haqq-signing-secret-123}\n"
    )
    registry_app = Starlette(routes=[Route("/registry/subscribe", registry, methods=["POST"])])
    with serving(registry_app) as port:
        result = CliRunner().invoke(app, [
            "events", "subscribe", "--registry", f"http://127.0.0.1:{port}", "--receiver", "cr.gov.az",
            "--callback", "https://haqq.example/events/spdci/registry/notify",
            "--event", "live_birth", "--event", "death", "--keys", str(keys),
        ])
    assert result.exit_code == 0, result.output
    assert "ACK" in result.output
    [sent] = received
    header = sent["header"]
    assert isinstance(header, dict)
    assert header["action"] == "subscribe" and header["sender_id"] == "haqq.gov.az"
    assert header["sender_uri"] == "https://haqq.example/events/spdci/registry/notify"
    message = sent["message"]
    assert isinstance(message, dict)
    kinds = [r["subscribe_criteria"]["reg_event_type"] for r in message["subscribe_request"]]
    assert kinds == ["live_birth", "death"]


def test_the_console_and_the_api_share_one_sign_in(tmp_path: Path) -> None:
    from haqq.adapters.auth.passwords import add_account
    from haqq.domain.access import Role

    engine = db.make_engine(f"sqlite:///{tmp_path / 'h.db'}")
    db.upgrade(engine)
    with engine.begin() as conn:
        add_account(conn, "aynur", "a long password", role=Role.CASEWORKER, name="Aynur M.", fin=None,
                    now=datetime.now(UTC))
    client = TestClient(make_http_app(engine, EventKeys()))
    # The console sends a visitor to sign in, and back where they were going afterwards.
    first = client.get("/search", follow_redirects=False)
    assert first.status_code == 303 and first.headers["location"] == "/login?next=/search"
    wrong = client.post("/login?lang=en", data={"username": "aynur", "password": "nope", "next": "/search"})
    assert wrong.status_code == 401 and "Wrong username or password" in wrong.text
    signed = client.post("/login", data={"username": "aynur", "password": "a long password", "next": "//evil.example/"},
                         follow_redirects=False)
    assert signed.status_code == 303 and signed.headers["location"] == "/search"
    assert "httponly" in signed.headers["set-cookie"].lower() and "samesite=strict" in signed.headers["set-cookie"].lower()
    # The same person through the API, with a bearer token.
    token = client.post("/api/v1/auth/token", data={"username": "aynur", "password": "a long password"}).json()
    me = client.get("/api/v1/me", headers={"Authorization": f"Bearer {token['access_token']}"}).json()
    assert me == {"subject": "aynur", "role": "caseworker", "name": "Aynur M.", "fin": None}
    anonymous = TestClient(make_http_app(engine, EventKeys()))
    refused = anonymous.get("/api/v1/me")
    assert refused.status_code == 401 and refused.json()["code"] == "not_signed_in"
    assert refused.headers["www-authenticate"] == "Bearer"
    bad = anonymous.post("/api/v1/auth/token", data={"username": "aynur"})
    assert bad.status_code == 422 and bad.json() == {"error": "password: Field required", "code": "invalid"}
    missing = anonymous.get("/api/v1/no-such-thing")
    assert missing.status_code == 404 and missing.json()["code"] == "not_found"
    page = anonymous.get("/no-such-page?lang=ru")
    assert page.status_code == 404 and "Такой страницы нет" in page.text
    engine.dispose()
