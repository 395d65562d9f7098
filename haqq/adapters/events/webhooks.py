"""OpenCRVS-style webhooks: ``X-Hub-Signature`` and birth/death registration notifications.

Signature: the header is ``sha256=<hex HMAC-SHA256 of the raw body with the shared secret>``,
compared in constant time (:func:`verify_hub_signature`).

Payload (the OpenCRVS webhook shape, reduced to what haqq needs)::

    {"id": "...", "timestamp": "...",
     "event": {"hub": {"topic": "BIRTH_REGISTERED" | "DEATH_REGISTERED"},
               "context": [{"resourceType": "Bundle", "entry": [{"fullUrl", "resource"}...]}]}}

In the Bundle: the ``Task`` carries the tracking id (an ``identifier`` whose ``system`` ends in
``tracking-id``; the haqq event id) and ``lastModified`` (when it was registered); the
``Composition`` has sections coded ``child-details``, ``mother-details``, ``father-details`` or
``deceased-details`` referring to ``Patient`` resources, whose FIN is the ``identifier`` typed
``NATIONAL_ID``. Refusals: 401 ``signature_missing``/``signature_invalid``, 400 ``malformed``,
422 ``unknown_event``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from haqq.adapters.events.errors import Malformed, Unauthenticated, UnknownEventType

TOPICS = {"BIRTH_REGISTERED": "birth_registered", "DEATH_REGISTERED": "death_registered"}
FIN_TYPE = "NATIONAL_ID"


def hub_signature(body: bytes, secret: str) -> str:
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def verify_hub_signature(body: bytes, header: str | None, secret: str) -> None:
    if not header:
        raise Unauthenticated("signature_missing", "no X-Hub-Signature header")
    if not header.startswith("sha256="):
        raise Unauthenticated("signature_invalid", "X-Hub-Signature must be sha256=<hex>")
    if not hmac.compare_digest(hub_signature(body, secret).encode(), header.strip().encode()):
        raise Unauthenticated("signature_invalid", "X-Hub-Signature does not match the body")


def _obj(value: object, what: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise Malformed("malformed", f"{what} must be a JSON object")
    return value


def _list(value: object, what: str) -> list[Any]:
    if not isinstance(value, list):
        raise Malformed("malformed", f"{what} must be an array")
    return value


def _codes(concept: object) -> set[str]:
    if not isinstance(concept, Mapping):
        return set()
    codings = concept.get("coding")
    if not isinstance(codings, list):
        return set()
    return {str(c.get("code")) for c in codings if isinstance(c, Mapping)}


def _items(value: object) -> list[Any]:
    """A JSON array as a list; anything else (absent, null, a number) as no items."""
    return value if isinstance(value, list) else []


def _fin(patient: Mapping[str, Any], role: str) -> str:
    for ident in _items(patient.get("identifier")):
        if isinstance(ident, Mapping) and FIN_TYPE in _codes(ident.get("type")):
            value = ident.get("value")
            if isinstance(value, str) and value:
                return value
    raise Malformed("malformed", f"{role}: no {FIN_TYPE} identifier")


def _when(value: object, what: str) -> datetime:
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        raise Malformed("malformed", f"{what} {value!r} is not an ISO 8601 date-time") from None
    if moment.tzinfo is None:
        raise Malformed("malformed", f"{what} {value!r} has no UTC offset")
    return moment


def parse_body(body: bytes) -> Mapping[str, Any]:
    try:
        return _obj(json.loads(body), "the body")
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise Malformed("malformed", f"the body is not JSON: {exc}") from None


def to_events(payload: Mapping[str, Any], *, source: str) -> list[dict[str, Any]]:
    """The notification as haqq life-event dicts (one, today)."""
    event = _obj(payload.get("event"), "event")
    topic = _obj(event.get("hub"), "event.hub").get("topic")
    if topic not in TOPICS:
        raise UnknownEventType("unknown_event", f"topic {topic!r} is not taken in "
                               f"(known: {', '.join(TOPICS)})")
    etype = TOPICS[str(topic)]
    context = _list(event.get("context"), "event.context")
    if not context:
        raise Malformed("malformed", "event.context is empty")
    bundle = _obj(context[0], "event.context[0]")
    if bundle.get("resourceType") != "Bundle":
        raise Malformed("malformed", "event.context[0] must be a FHIR Bundle")
    by_ref: dict[str, Mapping[str, Any]] = {}
    by_type: dict[str, Mapping[str, Any]] = {}
    for entry in _list(bundle.get("entry"), "Bundle.entry"):
        resource = _obj(_obj(entry, "Bundle.entry[]").get("resource"), "entry.resource")
        kind = str(resource.get("resourceType"))
        by_type.setdefault(kind, resource)
        if entry.get("fullUrl"):
            by_ref[str(entry["fullUrl"])] = resource
        if resource.get("id"):
            by_ref[f"{kind}/{resource['id']}"] = resource
    task = _obj(by_type.get("Task"), "the Bundle's Task")
    tracking = [i.get("value") for i in _items(task.get("identifier"))
                if isinstance(i, Mapping) and str(i.get("system", "")).endswith("tracking-id")]
    if not tracking or not isinstance(tracking[0], str) or not tracking[0]:
        raise Malformed("malformed", "the Task has no tracking-id identifier")
    composition = _obj(by_type.get("Composition"), "the Bundle's Composition")
    people: dict[str, Mapping[str, Any]] = {}
    for section in _items(composition.get("section")):
        if not isinstance(section, Mapping):
            continue
        refs = [e.get("reference") for e in _items(section.get("entry")) if isinstance(e, Mapping)]
        for code in _codes(section.get("code")):
            if refs and isinstance(refs[0], str) and refs[0] in by_ref:
                people[code] = by_ref[str(refs[0])]
    occurred = _when(task.get("lastModified") or composition.get("date")
                     or payload.get("timestamp"), "registration date")
    out: dict[str, Any] = {"source": source, "event_id": tracking[0], "type": etype,
                           "occurred_at": occurred.isoformat()}
    if etype == "birth_registered":
        child = _obj(people.get("child-details"), "child-details")
        out["fin"] = _fin(child, "child-details")
        payload_out: dict[str, Any] = {
            "mother_fin": _fin(_obj(people.get("mother-details"), "mother-details"),
                               "mother-details"),
            "birth_date": child.get("birthDate")}
        if "father-details" in people:
            payload_out["father_fin"] = _fin(people["father-details"], "father-details")
    else:
        deceased = _obj(people.get("deceased-details"), "deceased-details")
        out["fin"] = _fin(deceased, "deceased-details")
        payload_out = {"death_date": deceased.get("deceasedDateTime")}
    out["payload"] = payload_out
    return [out]


def error_body(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message[:999]}}
