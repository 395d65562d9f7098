"""SPDCI envelopes: the signature (good, bad, missing), the header checks, the mapping."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from haqq.adapters.events import signature as sig
from haqq.adapters.events import spdci
from haqq.adapters.events.errors import Malformed, Replayed, Unauthenticated, UnknownEventType
from haqq.adapters.events.keys import EventKeys, SenderKey, SignerKey, load_keys
from haqq.adapters.events.subscribe import SubscribeFailed, subscribe, subscribe_request
from haqq.domain.events import EventType, parse_event

NOW = datetime(2025, 3, 1, 10, 0, tzinfo=UTC)
_PRIVATE = Ed25519PrivateKey.generate()
CR_SIGNER = SignerKey(
    sender_id="cr.gov.az", key_id="k1", algorithm="ed25519",
    key=base64.b64encode(_PRIVATE.private_bytes_raw()).decode(),
)
CR_PUBLIC = base64.b64encode(
    _PRIVATE.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)).decode()
DR_SIGNER = SignerKey(sender_id="dr.gov.az", key_id="s1", algorithm="hmac-sha256",
                      key="disability-registry-test-secret")
KEYS = EventKeys(
    receiver_id="haqq.gov.az",
    spdci={
        "cr.gov.az": SenderKey(source="civil_registry", key_id="k1", algorithm="ed25519",
                               key=CR_PUBLIC),
        "dr.gov.az": SenderKey(source="disability_registry", key_id="s1",
                               algorithm="hmac-sha256", key="disability-registry-test-secret"),
    },
)


def birth(ref: str = "r1") -> dict[str, Any]:
    return {"reference_id": ref, "timestamp": "2025-03-01T13:55:00+04:00",
            "data": {"version": "1.0.0", "reg_type": "ns:org:RegistryType:Civil",
                     "reg_event_type": "spdci-common:RegistryEventType:LiveBirth",
                     "reg_record_type": "spdci-extensions-dci:Person",
                     "reg_records": {"identifier_type": "UIN", "identifier": "CHILD01",
                                     "name": {"given_name": "Rauf", "sur_name": "Sadıqlı"},
                                     "sex": "male", "birthdate": "2025-02-27",
                                     "parent1_identifier": {"identifier_type": "UIN",
                                                            "identifier": "MOTHER1"}}}}


def notify(items: list[dict[str, Any]], signer: SignerKey = CR_SIGNER, *,
           message_id: str = "m-1", ts: datetime = NOW, **extra: Any) -> dict[str, Any]:
    header = {"version": "1.0.0", "message_id": message_id, "message_ts": ts.isoformat(),
              "action": "notify", "status": "succ", "sender_id": signer.sender_id,
              "receiver_id": "haqq.gov.az", "total_count": len(items), **extra}
    message = {"transaction_id": "T-1", "notify_event": items}
    return spdci.envelope(header, message, sig.sign(header, message, signer, created=ts))


def test_signed_birth_maps_to_an_event_parse_event_accepts() -> None:
    got = spdci.accept_notify(notify([birth()]), keys=KEYS, now=NOW)
    assert (got.sender_id, got.message_id, got.transaction_id) == ("cr.gov.az", "m-1", "T-1")
    event = parse_event(got.events[0])
    assert event.type is EventType.BIRTH_REGISTERED
    assert (event.source, event.event_id, event.fin) == ("civil_registry", "T-1/r1", "CHILD01")
    assert event.payload["mother_fin"] == "MOTHER1"
    assert event.payload["child_name"] == "Rauf Sadıqlı"
    assert event.occurred_at == datetime(2025, 3, 1, 9, 55, tzinfo=UTC)


def test_signature_string_has_the_spec_parameters() -> None:
    env = notify([birth()])
    text = env["signature"]
    assert text.startswith('Signature: namespace="spdci", kidId="cr.gov.az|k1|ed25519"')
    params = sig.parse_signature(text)
    assert params.headers == ("(created)", "(expires)", "digest")
    assert params.expires - params.created == 300


def test_missing_signature() -> None:
    env = notify([birth()])
    del env["signature"]
    with pytest.raises(Unauthenticated) as exc:
        spdci.accept_notify(env, keys=KEYS, now=NOW)
    assert exc.value.code == "err.signature.missing"


@pytest.mark.parametrize("tamper", ["message", "header", "signature"])
def test_tampered_envelope_fails_the_signature(tamper: str) -> None:
    env = notify([birth()])
    if tamper == "message":
        env["message"]["notify_event"][0]["data"]["reg_records"]["identifier"] = "OTHER01"
    elif tamper == "header":
        env["header"]["message_id"] = "m-2"
    else:
        env["signature"] = env["signature"].replace('signature="', 'signature="AAAA')
    with pytest.raises(Unauthenticated) as exc:
        spdci.accept_notify(env, keys=KEYS, now=NOW)
    assert exc.value.code == "err.signature.invalid"


def test_signed_with_another_key_or_unknown_sender() -> None:
    stranger = CR_SIGNER.model_copy(update={"key": base64.b64encode(
        Ed25519PrivateKey.generate().private_bytes_raw()).decode()})
    with pytest.raises(Unauthenticated) as exc:
        spdci.accept_notify(notify([birth()], stranger), keys=KEYS, now=NOW)
    assert exc.value.code == "err.signature.invalid"
    unknown = DR_SIGNER.model_copy(update={"sender_id": "x.example"})
    with pytest.raises(Unauthenticated) as exc:
        spdci.accept_notify(notify([birth()], unknown), keys=KEYS, now=NOW)
    assert exc.value.code == "err.sender_id.invalid"


def test_expired_signature_and_stale_message() -> None:
    with pytest.raises(Unauthenticated) as exc:
        spdci.accept_notify(notify([birth()]), keys=KEYS, now=NOW + timedelta(hours=1))
    assert exc.value.code == "err.signature.invalid"
    old = notify([birth()], ts=NOW - timedelta(minutes=10))
    old_signed_now = spdci.envelope(old["header"], old["message"],
                                    sig.sign(old["header"], old["message"], CR_SIGNER,
                                             created=NOW))
    with pytest.raises(Malformed) as exc2:
        spdci.accept_notify(old_signed_now, keys=KEYS, now=NOW)
    assert exc2.value.code == "rjct.message_ts.invalid"


def test_header_checks() -> None:
    with pytest.raises(Malformed) as exc:
        spdci.accept_notify(notify([birth()], action="search"), keys=KEYS, now=NOW)
    assert exc.value.code == "rjct.action.invalid"
    with pytest.raises(Malformed) as exc:
        spdci.accept_notify(notify([birth()], total_count=2), keys=KEYS, now=NOW)
    assert exc.value.code == "rjct.total_count.invalid"
    with pytest.raises(Unauthenticated) as exc2:
        spdci.accept_notify(notify([birth()], receiver_id="else"), keys=KEYS, now=NOW)
    assert exc2.value.code == "err.receiver_id.invalid"


def test_disability_registry_granted_and_ended_with_hmac() -> None:
    def dr(ref: str, status: str, level: str | None = None) -> dict[str, Any]:
        rec: dict[str, Any] = {"personal_details": {"identifier": "PWD0001"},
                               "disability_status": status}
        if level:
            rec["disability_level"] = level
        return {"reference_id": ref, "timestamp": "2025-03-01T12:00:00+04:00",
                "data": {"reg_event_type": "spdci-common:RegistryEventType:DisabledPerson",
                         "reg_record_type": "spdci-extensions-dci:DisabledPerson",
                         "reg_records": rec}}
    got = spdci.accept_notify(notify([dr("a", "Approved", "Severe"), dr("b", "Revoked")],
                                     DR_SIGNER), keys=KEYS, now=NOW)
    events = [parse_event(e) for e in got.events]
    assert [e.type for e in events] == [EventType.DISABILITY_STATUS_GRANTED,
                                        EventType.DISABILITY_STATUS_ENDED]
    assert events[0].payload == {"group": 2}
    assert {e.source for e in events} == {"disability_registry"}
    with pytest.raises(UnknownEventType) as exc:
        spdci.accept_notify(notify([dr("c", "Pending")], DR_SIGNER), keys=KEYS, now=NOW)
    assert exc.value.code == "rjct.notify_types.invalid"


def test_death_marriage_and_unknown_type() -> None:
    item = birth()
    item["data"]["reg_event_type"] = "death"
    item["data"]["reg_records"] = {"identifier": "DEAD001", "deathdate": "2025-02-28"}
    marriage = birth("r2")
    marriage["data"]["reg_event_type"] = "marriage"
    marriage["data"]["reg_records"] = {"identifier": "WIFE001",
                                       "spouse_identifier": {"identifier": "HUSB001"}}
    got = spdci.accept_notify(notify([item, marriage]), keys=KEYS, now=NOW)
    death, wed = (parse_event(e) for e in got.events)
    assert (death.type, death.fin) == (EventType.DEATH_REGISTERED, "DEAD001")
    assert (wed.type, wed.payload["spouse_fin"]) == (EventType.MARRIAGE_REGISTERED, "HUSB001")
    item["data"]["reg_event_type"] = "adoption"
    with pytest.raises(UnknownEventType):
        spdci.accept_notify(notify([item]), keys=KEYS, now=NOW)


def test_replay_guard() -> None:
    guard = spdci.ReplayGuard(timedelta(minutes=5))
    guard.claim("cr", "m1", NOW, NOW)
    with pytest.raises(Replayed) as exc:
        guard.claim("cr", "m1", NOW, NOW)
    assert exc.value.code == "rjct.message_id.duplicate"
    guard.claim("dr", "m1", NOW, NOW)
    guard.release("cr", "m1")
    guard.claim("cr", "m1", NOW, NOW)


def test_subscribe_sends_a_signed_request_with_the_callback() -> None:
    seen: list[dict[str, Any]] = []

    def registry(request: httpx.Request) -> httpx.Response:
        seen.append(json.loads(request.content))
        return httpx.Response(200, json={"message": {"ack_status": "ACK", "timestamp":
                                                     NOW.isoformat(), "correlation_id": "c9"}})

    body = subscribe_request(signer=CR_SIGNER, receiver_id="cr.gov.az", now=NOW,
                             callback_url="https://haqq.gov.az/spdci/registry/notify",
                             event_types=["live_birth", "death"], transaction_id="T9")
    with httpx.Client(transport=httpx.MockTransport(registry)) as client:
        got = subscribe(client, "https://cr.gov.az/", body)
    assert (got.ack_status, got.correlation_id, got.transaction_id) == ("ACK", "c9", "T9")
    sent = seen[0]
    assert sent["header"]["sender_uri"] == "https://haqq.gov.az/spdci/registry/notify"
    assert sent["header"]["action"] == "subscribe" and sent["header"]["total_count"] == 2
    criteria = [r["subscribe_criteria"]["reg_event_type"]
                for r in sent["message"]["subscribe_request"]]
    assert criteria == ["live_birth", "death"]
    as_sender = EventKeys(spdci={"cr.gov.az": KEYS.spdci["cr.gov.az"]})
    params = sig.parse_signature(sent["signature"])
    sig.verify(params, sent["header"], sent["message"], as_sender.spdci["cr.gov.az"],
               now=NOW, skew=timedelta(0))

    def refusing(request: httpx.Request) -> httpx.Response:
        return httpx.Response(401, json={"message": {"ack_status": "ERR", "error": {
            "code": "err.signature.invalid", "message": "no"}}})

    with httpx.Client(transport=httpx.MockTransport(refusing)) as client, \
            pytest.raises(SubscribeFailed) as exc:
        subscribe(client, "https://cr.gov.az", body)
    assert exc.value.code == "err.signature.invalid"


def test_keys_from_env_inline() -> None:
    keys = load_keys(env={"HAQQ_EVENT_KEYS": json.dumps(
        {"spdci": {"a": {"source": "civil_registry", "key_id": "1",
                         "algorithm": "hmac-sha256", "key": "s"}}})})
    assert keys.spdci["a"].source == "civil_registry"
