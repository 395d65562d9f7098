"""SPDCI registry envelopes (registry_core_api / dr_api v1.0.0): build, check, map to events.

An envelope is ``{"signature", "header", "message"}``. A ``notify`` (``POST /registry/notify``,
header ``MsgCallbackHeader_V1.0.0``, message ``NotifyEventRequest``) is taken in by
:func:`accept_notify`: the signature (:mod:`haqq.adapters.events.signature`) is checked first,
then the header, then each ``notify_event`` is mapped to a haqq life-event dict that
:func:`haqq.domain.events.parse_event` accepts. Refusals carry the spec's codes: ``err.*``
(``Error.code``) for the transport checks, ``rjct.*`` (``MsgHeaderStatusReasonCode``,
``SubscribeStatusReasonCode``) for the header and event checks.

Event mapping (``data.reg_event_type``, the spec's name from ``subscribe_criteria``; the last
``:``-segment of ``spdci-common:RegistryEventType:LiveBirth`` style values is used too):

- ``live_birth`` / ``LiveBirth`` -> ``birth_registered``: subject ``reg_records.identifier``,
  ``parent1_identifier`` -> ``mother_fin``, ``parent2_identifier`` -> ``father_fin``;
- ``death`` -> ``death_registered``; ``marriage`` -> ``marriage_registered`` with
  ``spouse_identifier`` (an extension with the shape of ``parent1_identifier``) -> ``spouse_fin``;
- ``DisabledPerson`` (dr_api): ``reg_records.disability_status`` Approved/Active/Granted ->
  ``disability_status_granted`` (``disability_level`` -> ``group``, see :data:`GROUPS`);
  Revoked/Expired/Ended/Inactive/Withdrawn -> ``disability_status_ended``; FIN from
  ``personal_details.identifier``.

``occurred_at`` is the notify event's ``timestamp`` (the registration); the registry's own
dates go into the payload. The event id is ``{transaction_id}/{reference_id}`` (a
``reference_id`` is unique only within its transaction).
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from haqq.adapters.events import signature as sig
from haqq.adapters.events.errors import Malformed, Replayed, Unauthenticated, UnknownEventType
from haqq.adapters.events.keys import EventKeys

VERSION = "1.0.0"
BAD = "err.request.bad"

VITAL = {"live_birth": "birth_registered", "livebirth": "birth_registered",
         "birth": "birth_registered", "death": "death_registered",
         "marriage": "marriage_registered"}
DISABILITY = {"disabledperson", "disability"}
GRANTED = {"approved", "active", "granted"}
ENDED = {"revoked", "expired", "ended", "inactive", "withdrawn"}
#: ``disability_level`` (cd.dr.15) -> haqq's disability group (1 the most severe).
GROUPS = {"profound": 1, "severe": 2, "moderate": 3, "1": 1, "2": 2, "3": 3,
          "i": 1, "ii": 2, "iii": 3}


@dataclass(frozen=True, slots=True)
class Notify:
    """A verified notify: who sent it, its ids, and haqq life-event dicts."""

    sender_id: str
    message_id: str
    message_ts: datetime
    transaction_id: str
    events: list[dict[str, Any]]


def _obj(value: object, what: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise Malformed(BAD, f"{what} must be a JSON object")
    return value


def _str(m: Mapping[str, Any], key: str, what: str) -> str:
    value = m.get(key)
    if not isinstance(value, str) or not value:
        raise Malformed(BAD, f"{what}.{key} must be a non-empty string")
    return value


def _ts(value: object, what: str, code: str = BAD) -> datetime:
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        raise Malformed(code, f"{what} {value!r} is not an ISO 8601 date-time") from None
    if moment.tzinfo is None:
        raise Malformed(code, f"{what} {value!r} has no UTC offset")
    return moment


def envelope(header: Mapping[str, Any], message: Any, signature: str | None) -> dict[str, Any]:
    out: dict[str, Any] = {"header": dict(header), "message": message}
    if signature is not None:
        out["signature"] = signature
    return out


def check_header(
    header: Mapping[str, Any], *, action: str, keys: EventKeys, now: datetime
) -> datetime:
    """Version, action and freshness of ``message_ts``; returns ``message_ts``."""
    version = header.get("version", VERSION)
    if version != VERSION:
        raise Malformed("err.version.not_supported", f"version {version!r} is not {VERSION}")
    if header.get("action") != action:
        raise Malformed("rjct.action.invalid", f"action must be {action!r}")
    _str(header, "message_id", "header")
    if header.get("is_msg_encrypted") is True:
        raise Malformed("err.encryption.invalid", "encrypted messages are not supported")
    receiver = header.get("receiver_id")
    if keys.receiver_id is not None and receiver not in (None, keys.receiver_id):
        raise Unauthenticated("err.receiver_id.invalid", f"receiver_id {receiver!r} is not haqq")
    ts = _ts(header.get("message_ts"), "header.message_ts", "rjct.message_ts.invalid")
    if not (now - timedelta(seconds=keys.max_age_seconds) <= ts
            <= now + timedelta(seconds=keys.max_skew_seconds)):
        raise Malformed("rjct.message_ts.invalid", f"message_ts {ts.isoformat()} is outside "
                        f"the {keys.max_age_seconds} s freshness window")
    return ts


def verify_envelope(raw: object, *, action: str, keys: EventKeys, now: datetime) -> tuple[
        str, Mapping[str, Any], Mapping[str, Any]]:
    """Signature then header of an envelope; returns ``(sender_id, header, message)``."""
    env = _obj(raw, "the request body")
    header = _obj(env.get("header"), "header")
    params = sig.parse_signature(env.get("signature"))
    sender_id = header.get("sender_id")
    if sender_id is not None and sender_id != params.sender_id:
        raise Unauthenticated("err.sender_id.invalid", "header.sender_id is not the signer")
    key = keys.spdci.get(params.sender_id)
    if key is None:
        raise Unauthenticated("err.sender_id.invalid", f"unknown sender {params.sender_id!r}")
    sig.verify(params, env.get("header"), env.get("message"), key, now=now,
               skew=timedelta(seconds=keys.max_skew_seconds))
    check_header(header, action=action, keys=keys, now=now)
    return params.sender_id, header, _obj(env.get("message"), "message")


def accept_notify(raw: object, *, keys: EventKeys, now: datetime) -> Notify:
    """A verified ``notify`` envelope as haqq life-event dicts, or an EventRefused."""
    sender_id, header, message = verify_envelope(raw, action="notify", keys=keys, now=now)
    items = message.get("notify_event")
    if not isinstance(items, list) or not items:
        raise Malformed(BAD, "message.notify_event must be a non-empty array")
    total = header.get("total_count")
    if total is not None and total != len(items):
        raise Malformed("rjct.total_count.invalid",
                        f"total_count {total} but {len(items)} notify_event(s)")
    txn = _str(message, "transaction_id", "message")
    source = keys.spdci[sender_id].source
    events = [map_event(_obj(item, "notify_event[]"), transaction_id=txn, source=source)
              for item in items]
    return Notify(sender_id, header["message_id"], _ts(header["message_ts"], "message_ts"),
                  txn, events)


def event_id(transaction_id: str, reference_id: str) -> str:
    joined = f"{transaction_id}/{reference_id}"
    if len(joined) <= 100:
        return joined
    return "sha256:" + hashlib.sha256(joined.encode("utf-8")).hexdigest()


def _person(value: object, what: str) -> str:
    """A FIN from ``{identifier_type?, identifier}`` (the type, when given, must be UIN)."""
    rec = _obj(value, what)
    kind = rec.get("identifier_type", "UIN")
    if kind != "UIN":
        raise Malformed(BAD, f"{what}.identifier_type must be UIN (the FIN), got {kind!r}")
    return _str(rec, "identifier", what)


def map_event(item: Mapping[str, Any], *, transaction_id: str, source: str) -> dict[str, Any]:
    """One ``notify_event`` as a haqq life-event dict (see the module docstring)."""
    reference = _str(item, "reference_id", "notify_event")
    data = _obj(item.get("data"), "notify_event.data")
    records = data.get("reg_records")
    if isinstance(records, list) and len(records) == 1:
        records = records[0]
    rec = _obj(records, "data.reg_records")
    kind = data.get("reg_event_type")
    if not isinstance(kind, str) or not kind:
        raise UnknownEventType("rjct.notify_types.invalid", f"{reference}: no reg_event_type")
    name = kind.rsplit(":", 1)[-1].lower()
    payload: dict[str, Any] = {}
    if name in VITAL:
        etype = VITAL[name]
        fin = _person(rec, "reg_records")
        if etype == "birth_registered":
            payload["mother_fin"] = _person(rec.get("parent1_identifier"), "parent1_identifier")
            if rec.get("parent2_identifier") is not None:
                payload["father_fin"] = _person(rec["parent2_identifier"], "parent2_identifier")
            names = _obj(rec.get("name", {}), "reg_records.name")
            full = " ".join(str(names[k]) for k in ("given_name", "sur_name") if names.get(k))
            payload |= {"child_name": full or None, "birth_date": rec.get("birthdate")}
            if rec.get("sex") in ("male", "female"):
                payload["sex"] = "M" if rec["sex"] == "male" else "F"
        elif etype == "marriage_registered":
            payload["spouse_fin"] = _person(rec.get("spouse_identifier"), "spouse_identifier")
            payload["marriage_date"] = rec.get("marriagedate")
        else:
            payload["death_date"] = rec.get("deathdate")
    elif name in DISABILITY:
        fin = _person(rec.get("personal_details"), "reg_records.personal_details")
        status = str(rec.get("disability_status", "")).lower()
        if status in GRANTED:
            etype = "disability_status_granted"
            level = str(rec.get("disability_level", "")).lower()
            if level not in GROUPS:
                raise Malformed(BAD, f"{reference}: disability_level {level!r} has no group")
            payload["group"] = GROUPS[level]
        elif status in ENDED:
            etype = "disability_status_ended"
        else:
            raise UnknownEventType("rjct.notify_types.invalid",
                                   f"{reference}: disability_status {status!r} is not known")
    else:
        raise UnknownEventType("rjct.notify_types.invalid",
                               f"{reference}: reg_event_type {kind!r} is not taken in")
    occurred = _ts(item.get("timestamp"), f"{reference}.timestamp")
    return {"source": source, "event_id": event_id(transaction_id, reference), "type": etype,
            "fin": fin, "occurred_at": occurred.isoformat(), "payload": payload}


def ack(correlation_id: str, now: datetime) -> dict[str, Any]:
    """The spec's ``Response``: ``message.ack_status`` ACK."""
    return {"message": {"ack_status": "ACK", "timestamp": now.isoformat(),
                        "correlation_id": correlation_id}}


def refusal(code: str, text: str, correlation_id: str, now: datetime) -> dict[str, Any]:
    """``Response`` with ack_status ERR and ``error``, plus ``errors`` (``HttpErrorResponse``)."""
    error = {"code": code, "message": text[:999]}
    return {"message": {"ack_status": "ERR", "timestamp": now.isoformat(),
                        "correlation_id": correlation_id, "error": error},
            "errors": [error]}


class ReplayGuard:
    """``(sender_id, message_id)`` seen within the freshness window, in memory (bounded).

    Messages older than the window are refused by :func:`check_header` anyway, so an entry
    can be forgotten once its ``message_ts`` has left the window. Across processes or restarts
    the store's unique ``(source, source_event_id)`` still keeps a replay from writing twice.
    """

    def __init__(self, window: timedelta, capacity: int = 100_000) -> None:
        self.window = window
        self.capacity = capacity
        self._seen: OrderedDict[tuple[str, str], datetime] = OrderedDict()
        self._lock = threading.Lock()

    def claim(self, sender_id: str, message_id: str, ts: datetime, now: datetime) -> None:
        """Reserve the id, or raise :class:`Replayed` if it was seen."""
        with self._lock:
            while self._seen:
                oldest_key, oldest = next(iter(self._seen.items()))
                if oldest >= now - self.window - timedelta(minutes=1) and (
                        len(self._seen) < self.capacity):
                    break
                del self._seen[oldest_key]
            if (sender_id, message_id) in self._seen:
                raise Replayed("rjct.message_id.duplicate",
                               f"message_id {message_id!r} of {sender_id} was already received")
            self._seen[(sender_id, message_id)] = ts

    def release(self, sender_id: str, message_id: str) -> None:
        """Forget a claim whose message was not taken in (so a retry is not a replay)."""
        with self._lock:
            self._seen.pop((sender_id, message_id), None)
