"""parse_event: a good event of every type is accepted; every malformed one is refused by name."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from haqq.domain.errors import InvalidEvent, NaiveDatetime
from haqq.domain.events import REQUIRED_PAYLOAD, EventType, LifeEvent, parse_event

GOOD_PAYLOAD: dict[EventType, dict[str, Any]] = {
    EventType.BIRTH_REGISTERED: {"mother_fin": "M0THER1", "father_fin": "FATHER2"},
    EventType.DEATH_REGISTERED: {},
    EventType.DISABILITY_STATUS_GRANTED: {"group": 2},
    EventType.DISABILITY_STATUS_ENDED: {},
    EventType.EMPLOYMENT_TERMINATED: {},
    EventType.MARRIAGE_REGISTERED: {"spouse_fin": "SP0USE3"},
    EventType.AGE_REACHED: {"age": 65},
}


def raw(etype: EventType | str = EventType.DEATH_REGISTERED, **over: Any) -> dict[str, Any]:
    kind = EventType(etype) if etype in set(EventType) else None
    event: dict[str, Any] = {
        "event_id": "ev-1",
        "type": str(etype),
        "fin": "5ABC12D",
        "occurred_at": "2025-03-14T10:15:00+04:00",
        "payload": dict(GOOD_PAYLOAD[kind]) if kind else {},
    }
    event.update(over)
    return event


def refused(event: object) -> str:
    with pytest.raises(InvalidEvent) as info:
        parse_event(event)
    return str(info.value)


def test_every_event_type_has_a_good_example() -> None:
    assert set(GOOD_PAYLOAD) == set(EventType) == set(REQUIRED_PAYLOAD)


@pytest.mark.parametrize("etype", list(EventType), ids=lambda t: t.value)
def test_a_good_event_of_each_type_is_accepted(etype: EventType) -> None:
    event = parse_event(raw(etype, source="civil_registry"))
    assert isinstance(event, LifeEvent)
    assert event.type is etype
    assert event.event_id == "ev-1"
    assert event.fin == "5ABC12D"
    assert event.source == "civil_registry"
    assert event.occurred_at == datetime(2025, 3, 14, 6, 15, tzinfo=UTC)
    assert event.occurred_at.utcoffset() == timedelta(hours=4)
    assert dict(event.payload) == GOOD_PAYLOAD[etype]


def test_source_defaults_and_payload_is_optional() -> None:
    body = raw(EventType.DEATH_REGISTERED)
    del body["payload"]
    event = parse_event(body)
    assert event.source == "file"
    assert dict(event.payload) == {}
    assert parse_event(body, default_source="kafka").source == "kafka"


def test_null_payload_is_an_empty_payload() -> None:
    assert dict(parse_event(raw(EventType.DEATH_REGISTERED, payload=None)).payload) == {}


def test_utc_z_suffix_is_accepted() -> None:
    event = parse_event(raw(occurred_at="2025-03-14T06:15:00Z"))
    assert event.occurred_at == datetime(2025, 3, 14, 6, 15, tzinfo=UTC)


def test_payload_is_copied_not_shared() -> None:
    body = raw(EventType.AGE_REACHED)
    event = parse_event(body)
    body["payload"]["age"] = 1
    assert event.payload["age"] == 65


@pytest.mark.parametrize(
    ("value", "kind"),
    [([], "list"), ("event", "str"), (None, "NoneType"), (42, "int"), (("a", 1), "tuple")],
)
def test_non_objects_are_refused(value: object, kind: str) -> None:
    assert refused(value) == f"an event must be a JSON object, got {kind}"


@pytest.mark.parametrize("field", ["event_id", "type", "fin", "occurred_at"])
def test_a_missing_field_is_named(field: str) -> None:
    body = raw()
    del body[field]
    assert refused(body) == f"event is missing field(s): {field}"


def test_all_missing_fields_are_named() -> None:
    message = refused({"payload": {}})
    assert message == "event is missing field(s): event_id, type, fin, occurred_at"


@pytest.mark.parametrize("event_id", ["", 7, None, "x" * 101])
def test_bad_event_id(event_id: object) -> None:
    assert "event_id must be a non-empty string" in refused(raw(event_id=event_id))


def test_event_id_of_100_characters_is_accepted() -> None:
    assert parse_event(raw(event_id="x" * 100)).event_id == "x" * 100


@pytest.mark.parametrize("etype", ["wedding", "BIRTH_REGISTERED", "", 3, None])
def test_unknown_type_lists_the_known_types(etype: object) -> None:
    message = refused(raw(type=etype))
    assert message.startswith(f"event ev-1: unknown event type {etype!r}")
    for known in EventType:
        assert known.value in message
    assert "(known: birth_registered, death_registered," in message


@pytest.mark.parametrize("fin", ["5abc12d", "5ABC12", "5ABC12DE", "5AB-12D", "", 5123456, None])
def test_bad_fin_is_refused(fin: object) -> None:
    message = refused(raw(fin=fin))
    assert message.startswith("event ev-1: invalid FIN")
    assert repr(fin) in message


def test_fin_with_a_trailing_newline_is_refused() -> None:
    assert refused(raw(fin="5ABC12D\n")).startswith("event ev-1: invalid FIN")


@pytest.mark.parametrize(
    "occurred",
    ["2025-03-14T10:15:00", "2025-03-14", "20250314", datetime(2025, 3, 14)],  # noqa: DTZ001
)
def test_naive_occurred_at_is_refused(occurred: object) -> None:
    message = refused(raw(occurred_at=occurred))
    assert message.startswith("event ev-1: occurred_at")
    assert message.endswith("has no UTC offset")


@pytest.mark.parametrize(
    "occurred", ["yesterday", "14/03/2025 10:15+04:00", "", "2025-13-01T00:00+00:00", None]
)
def test_non_iso_occurred_at_is_refused(occurred: object) -> None:
    message = refused(raw(occurred_at=occurred))
    assert message == f"event ev-1: occurred_at {occurred!r} is not an ISO 8601 date-time"


@pytest.mark.parametrize("payload", [["mother_fin"], "mother_fin=X", 5, True])
def test_payload_that_is_not_an_object_is_refused(payload: object) -> None:
    assert refused(raw(EventType.BIRTH_REGISTERED, payload=payload)) == (
        "event ev-1: payload must be a JSON object"
    )


@pytest.mark.parametrize("payload", [[], "", 0, False])
def test_falsy_payload_that_is_not_an_object_is_refused(payload: object) -> None:
    assert refused(raw(EventType.DEATH_REGISTERED, payload=payload)) == (
        "event ev-1: payload must be a JSON object"
    )


@pytest.mark.parametrize(
    ("etype", "field"),
    [
        (EventType.BIRTH_REGISTERED, "mother_fin"),
        (EventType.DISABILITY_STATUS_GRANTED, "group"),
        (EventType.MARRIAGE_REGISTERED, "spouse_fin"),
        (EventType.AGE_REACHED, "age"),
    ],
)
def test_missing_required_payload_field_is_named(etype: EventType, field: str) -> None:
    body = raw(etype)
    del body["payload"][field]
    assert refused(body) == f"event ev-1: {etype.value} needs payload field(s) {field}"


def test_missing_payload_on_a_type_that_needs_one() -> None:
    body = raw(EventType.BIRTH_REGISTERED)
    del body["payload"]
    assert refused(body) == "event ev-1: birth_registered needs payload field(s) mother_fin"


def test_required_fin_field_that_is_null_is_refused() -> None:
    refused(raw(EventType.BIRTH_REGISTERED, payload={"mother_fin": None}))


@pytest.mark.parametrize("field", ["mother_fin", "father_fin", "spouse_fin"])
def test_bad_fin_in_payload_is_named(field: str) -> None:
    payload = dict(GOOD_PAYLOAD[EventType.BIRTH_REGISTERED])
    payload[field] = "bad"
    message = refused(raw(EventType.BIRTH_REGISTERED, payload=payload))
    assert message.startswith(f"event ev-1: payload.{field}: invalid FIN 'bad'")


def test_optional_fin_field_may_be_null() -> None:
    payload = {"mother_fin": "M0THER1", "father_fin": None}
    assert (
        parse_event(raw(EventType.BIRTH_REGISTERED, payload=payload)).payload["father_fin"] is None
    )


@pytest.mark.parametrize("source", ["", 3, None])
def test_bad_source_is_refused(source: object) -> None:
    assert refused(raw(source=source)) == "event ev-1: source must be a non-empty string"


def test_life_event_refuses_a_naive_time() -> None:
    with pytest.raises(NaiveDatetime):
        LifeEvent("s", "e", EventType.DEATH_REGISTERED, "5ABC12D", datetime(2025, 1, 1))  # noqa: DTZ001


fins = st.text(alphabet="0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=7, max_size=7)
moments = st.datetimes(
    min_value=datetime(1900, 1, 1),  # noqa: DTZ001
    max_value=datetime(2100, 1, 1),  # noqa: DTZ001
    timezones=st.sampled_from([UTC, timezone(timedelta(hours=4)), timezone(timedelta(hours=-5))]),
)


@settings(max_examples=100, deadline=None)
@given(
    etype=st.sampled_from(list(EventType)),
    fin=fins,
    at=moments,
    event_id=st.text(min_size=1, max_size=100),
)
def test_round_trip(etype: EventType, fin: str, at: datetime, event_id: str) -> None:
    body = raw(etype, fin=fin, occurred_at=at.isoformat(), event_id=event_id)
    event = parse_event(body)
    assert (event.type, event.fin, event.occurred_at, event.event_id) == (etype, fin, at, event_id)
    assert event.occurred_at.utcoffset() == at.utcoffset()


def test_dates_in_payload_are_kept_as_given() -> None:
    event = parse_event(
        raw(EventType.AGE_REACHED, payload={"age": 65, "on": date(2025, 1, 1).isoformat()})
    )
    assert event.payload == {"age": 65, "on": "2025-01-01"}
