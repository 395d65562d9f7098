"""OpenCRVS-style webhooks: X-Hub-Signature and the birth/death Bundle mapping."""

from __future__ import annotations

import json
from typing import Any

import pytest

from haqq.adapters.events import webhooks
from haqq.adapters.events.errors import Malformed, Unauthenticated, UnknownEventType
from haqq.domain.events import EventType, parse_event

SECRET = "opencrvs-test-shared-secret"


def patient(ref: str, fin: str, **more: Any) -> dict[str, Any]:
    return {"fullUrl": ref, "resource": {"resourceType": "Patient", "identifier": [
        {"value": fin, "type": {"coding": [{"code": "NATIONAL_ID"}]}}], **more}}


def section(code: str, ref: str) -> dict[str, Any]:
    return {"code": {"coding": [{"code": code}]}, "entry": [{"reference": ref}]}


def payload(topic: str = "BIRTH_REGISTERED", tracking: str = "B7TRK01") -> dict[str, Any]:
    kind = "birth" if topic.startswith("BIRTH") else "death"
    sections = ([section("child-details", "urn:c"), section("mother-details", "urn:m")]
                if kind == "birth" else [section("deceased-details", "urn:d")])
    people = ([patient("urn:c", "CHILD01", birthDate="2025-02-27"), patient("urn:m", "MOTHER1")]
              if kind == "birth" else [patient("urn:d", "DEAD001",
                                               deceasedDateTime="2025-02-28")])
    return {"id": "wh-1", "timestamp": "2025-03-01T10:00:00Z",
            "event": {"hub": {"topic": topic}, "context": [{"resourceType": "Bundle", "entry": [
                {"fullUrl": "urn:comp", "resource": {"resourceType": "Composition",
                                                     "section": sections}},
                {"fullUrl": "urn:task", "resource": {
                    "resourceType": "Task", "lastModified": "2025-03-01T13:00:00+04:00",
                    "identifier": [{"system": f"http://opencrvs.org/specs/id/{kind}-tracking-id",
                                    "value": tracking}]}},
                *people]}]}}


def test_signature_good_bad_missing() -> None:
    body = json.dumps(payload()).encode()
    good = webhooks.hub_signature(body, SECRET)
    assert good.startswith("sha256=") and len(good) == 7 + 64
    webhooks.verify_hub_signature(body, good, SECRET)
    cases = [(None, "signature_missing"), ("sha1=abc", "signature_invalid"),
             (webhooks.hub_signature(body, "another-secret-xxxxx"), "signature_invalid"),
             (webhooks.hub_signature(body + b" ", SECRET), "signature_invalid")]
    for header, code in cases:
        with pytest.raises(Unauthenticated) as exc:
            webhooks.verify_hub_signature(body, header, SECRET)
        assert exc.value.code == code and exc.value.status == 401


def test_birth_maps_to_a_life_event() -> None:
    (raw,) = webhooks.to_events(payload(), source="opencrvs")
    event = parse_event(raw)
    assert event.type is EventType.BIRTH_REGISTERED
    assert (event.source, event.event_id, event.fin) == ("opencrvs", "B7TRK01", "CHILD01")
    assert event.payload == {"mother_fin": "MOTHER1", "birth_date": "2025-02-27"}
    assert event.occurred_at.isoformat() == "2025-03-01T13:00:00+04:00"


def test_death_maps_to_a_life_event() -> None:
    (raw,) = webhooks.to_events(payload("DEATH_REGISTERED", "D1"), source="opencrvs")
    event = parse_event(raw)
    assert (event.type, event.fin, event.event_id) == (EventType.DEATH_REGISTERED, "DEAD001", "D1")


def test_malformed_and_unknown() -> None:
    with pytest.raises(Malformed):
        webhooks.parse_body(b"{not json")
    broken = payload()
    broken["event"]["context"][0]["entry"].pop(1)   # no Task: no tracking id
    with pytest.raises(Malformed) as exc:
        webhooks.to_events(broken, source="opencrvs")
    assert exc.value.status == 400
    with pytest.raises(UnknownEventType) as exc2:
        webhooks.to_events(payload("MARRIAGE_REGISTERED"), source="opencrvs")
    assert exc2.value.status == 422 and exc2.value.code == "unknown_event"
