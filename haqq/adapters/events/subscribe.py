"""haqq subscribing to a registry's life events (SPDCI ``POST /registry/subscribe``).

:func:`subscribe_request` builds the signed envelope (header ``MsgHeader_V1.0.0`` with action
``subscribe`` and ``sender_uri`` = haqq's notify endpoint, where the registry will post
``notify`` messages; message ``SubscribeRequest``); :func:`subscribe` sends it with an
``httpx.Client`` and returns the registry's acknowledgement (the spec's ``Response``). The
subscription codes come later, on ``/registry/on-subscribe`` (:func:`parse_on_subscribe`).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx

from haqq.adapters.events import signature as sig
from haqq.adapters.events.errors import EventRefused, Malformed
from haqq.adapters.events.keys import SignerKey
from haqq.adapters.events.spdci import BAD, VERSION, envelope


class SubscribeFailed(EventRefused):
    """The registry did not acknowledge the subscription (transport error or ERR)."""

    status = 502


@dataclass(frozen=True, slots=True)
class SubscribeAck:
    ack_status: str
    correlation_id: str | None
    message_id: str
    transaction_id: str


def subscribe_request(
    *, signer: SignerKey, receiver_id: str, callback_url: str, event_types: Sequence[str],
    now: datetime, reg_type: str | None = None, notify_record_type: str = "spdci-extensions-dci:Person",
    filter_type: str = "predicate", query: Any = None, transaction_id: str | None = None,
    message_id: str | None = None,
) -> dict[str, Any]:
    """The signed subscribe envelope, one ``subscribe_request`` per event type."""
    if not event_types:
        raise Malformed(BAD, "subscribe needs at least one event type")
    txn = transaction_id or uuid.uuid4().hex
    stamp = now.isoformat()
    criteria_base: dict[str, Any] = {"version": VERSION, "filter_type": filter_type,
                                     "filter": [] if query is None else query,
                                     "notify_record_type": notify_record_type}
    if reg_type is not None:
        criteria_base["reg_type"] = reg_type
    items = [{"reference_id": f"{txn}-{n}", "timestamp": stamp,
              "subscribe_criteria": {**criteria_base, "reg_event_type": kind}}
             for n, kind in enumerate(event_types, 1)]
    header = {"version": VERSION, "message_id": message_id or uuid.uuid4().hex,
              "message_ts": stamp, "action": "subscribe", "sender_id": signer.sender_id,
              "sender_uri": callback_url, "receiver_id": receiver_id,
              "total_count": len(items), "is_msg_encrypted": False}
    message = {"transaction_id": txn, "subscribe_request": items}
    return envelope(header, message, sig.sign(header, message, signer, created=now))


def subscribe(client: httpx.Client, registry_url: str, request: Mapping[str, Any]) -> SubscribeAck:
    """POST ``request`` to ``{registry_url}/registry/subscribe``; the registry's ack."""
    url = registry_url.rstrip("/") + "/registry/subscribe"
    try:
        response = client.post(url, json=dict(request))
        body = response.json()
    except (httpx.HTTPError, ValueError) as exc:
        raise SubscribeFailed("err.service.unavailable", f"{url}: {exc}") from None
    message = body.get("message") if isinstance(body, Mapping) else None
    status = message.get("ack_status") if isinstance(message, Mapping) else None
    if response.status_code >= 400 or status not in ("ACK", "NACK") or message is None:
        error = message.get("error") if isinstance(message, Mapping) else None
        code = error.get("code") if isinstance(error, Mapping) else None
        raise SubscribeFailed(str(code or "err.request.bad"),
                              f"{url} answered {response.status_code}: {body!r}"[:999])
    return SubscribeAck(str(status), message.get("correlation_id"),
                        request["header"]["message_id"], request["message"]["transaction_id"])


def parse_on_subscribe(message: Mapping[str, Any]) -> list[dict[str, Any]]:
    """``SubscribeResponse`` items: reference_id, status, reason and subscription codes."""
    items = message.get("subscribe_response")
    if not isinstance(items, list):
        raise Malformed(BAD, "message.subscribe_response must be an array")
    out = []
    for item in items:
        if not isinstance(item, Mapping):
            raise Malformed(BAD, "subscribe_response[] must be objects")
        subs = item.get("subscriptions")
        subs = subs if isinstance(subs, list) else []
        out.append({"reference_id": item.get("reference_id"), "status": item.get("status"),
                    "status_reason_code": item.get("status_reason_code"),
                    "codes": [s.get("code") for s in subs if isinstance(s, Mapping)]})
    return out
