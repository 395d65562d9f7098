"""Life events: registry facts that can create or end a right."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from haqq.domain.errors import InvalidEvent, InvalidFin, NaiveDatetime
from haqq.domain.fin import check_fin


class EventType(StrEnum):
    BIRTH_REGISTERED = "birth_registered"
    DEATH_REGISTERED = "death_registered"
    DISABILITY_STATUS_GRANTED = "disability_status_granted"
    DISABILITY_STATUS_ENDED = "disability_status_ended"
    EMPLOYMENT_TERMINATED = "employment_terminated"
    MARRIAGE_REGISTERED = "marriage_registered"
    AGE_REACHED = "age_reached"


#: Payload fields an event of each type must carry (besides the subject FIN).
REQUIRED_PAYLOAD: Mapping[EventType, tuple[str, ...]] = {
    EventType.BIRTH_REGISTERED: ("mother_fin",),
    EventType.DEATH_REGISTERED: (),
    EventType.DISABILITY_STATUS_GRANTED: ("group",),
    EventType.DISABILITY_STATUS_ENDED: (),
    EventType.EMPLOYMENT_TERMINATED: (),
    EventType.MARRIAGE_REGISTERED: ("spouse_fin",),
    EventType.AGE_REACHED: ("age",),
}

#: Payload fields that hold a FIN and are checked as such.
FIN_FIELDS = ("mother_fin", "father_fin", "spouse_fin")


@dataclass(frozen=True, slots=True)
class LifeEvent:
    """One fact from a registry. ``event_id`` is the source's own id: intake is keyed by it."""

    source: str
    event_id: str
    type: EventType
    fin: str
    occurred_at: datetime
    payload: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.occurred_at.tzinfo is None:
            raise NaiveDatetime("occurred_at")


def parse_event(raw: object, *, default_source: str = "file") -> LifeEvent:
    """Build a :class:`LifeEvent` from a decoded JSON object, or raise :class:`InvalidEvent`.

    Shape: ``{"event_id", "type", "fin", "occurred_at" (ISO 8601 with offset),
    "source"?, "payload"?}``.
    """
    if not isinstance(raw, Mapping):
        raise InvalidEvent(f"an event must be a JSON object, got {type(raw).__name__}")
    missing = [k for k in ("event_id", "type", "fin", "occurred_at") if k not in raw]
    if missing:
        raise InvalidEvent(f"event is missing field(s): {', '.join(missing)}")
    event_id = raw["event_id"]
    if not isinstance(event_id, str) or not event_id or len(event_id) > 100:
        raise InvalidEvent("event_id must be a non-empty string of at most 100 characters")
    try:
        etype = EventType(raw["type"])
    except ValueError:
        known = ", ".join(t.value for t in EventType)
        raise InvalidEvent(
            f"event {event_id}: unknown event type {raw['type']!r} (known: {known})"
        ) from None
    try:
        fin = check_fin(raw["fin"])
    except InvalidFin as exc:
        raise InvalidEvent(f"event {event_id}: {exc}") from None
    occurred = raw["occurred_at"]
    try:
        occurred_at = datetime.fromisoformat(str(occurred))
    except ValueError:
        raise InvalidEvent(
            f"event {event_id}: occurred_at {occurred!r} is not an ISO 8601 date-time"
        ) from None
    if occurred_at.tzinfo is None:
        raise InvalidEvent(f"event {event_id}: occurred_at {occurred!r} has no UTC offset")
    payload = raw.get("payload")
    if payload is None:
        payload = {}
    if not isinstance(payload, Mapping):
        raise InvalidEvent(f"event {event_id}: payload must be a JSON object")
    absent = [k for k in REQUIRED_PAYLOAD[etype] if payload.get(k) is None]
    if absent:
        raise InvalidEvent(f"event {event_id}: {etype.value} needs payload field(s) {', '.join(absent)}")
    for key in FIN_FIELDS:
        if key in payload and payload[key] is not None:
            try:
                check_fin(payload[key])
            except InvalidFin as exc:
                raise InvalidEvent(f"event {event_id}: payload.{key}: {exc}") from None
    source = raw.get("source", default_source)
    if not isinstance(source, str) or not source:
        raise InvalidEvent(f"event {event_id}: source must be a non-empty string")
    return LifeEvent(source, event_id, etype, fin, occurred_at, dict(payload))
