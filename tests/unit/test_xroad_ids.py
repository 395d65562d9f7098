"""X-Road identifiers: parsing, percent-encoding, the protocol's character rules, request paths."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from haqq.adapters.xroad.ids import MAX_PATH, ClientId, InvalidIdentifier, ServiceId, split_path

HAQQ = ClientId("AZ", "GOV", "MLSPP", "HAQQ")
REGISTRY = ClientId("AZ", "GOV", "MOJ", "CIVIL-REGISTRY")
PART = st.text(alphabet="ABCxyz019'()+,-.=?", min_size=1, max_size=20)


def test_a_subsystem_and_a_member_parse_into_their_parts() -> None:
    assert ClientId.parse("AZ/GOV/MLSPP/HAQQ") == HAQQ
    member = ClientId.parse("AZ/GOV/MLSPP")
    assert member == ClientId("AZ", "GOV", "MLSPP") and member.subsystem is None
    assert member.parts() == ("AZ", "GOV", "MLSPP")
    assert str(HAQQ) == "AZ/GOV/MLSPP/HAQQ"
    assert ClientId.parse("  AZ/GOV/MLSPP/HAQQ ") == HAQQ


def test_parts_are_percent_decoded_one_by_one_and_encoded_back() -> None:
    odd = ClientId.parse("AZ/GOV/A%2BB/X%28Y%29")
    assert odd == ClientId("AZ", "GOV", "A+B", "X(Y)")
    assert odd.encoded() == "AZ/GOV/A%2BB/X%28Y%29"
    assert str(odd) == "AZ/GOV/A+B/X(Y)"
    assert ClientId.parse("AZ/GOV/MLSPP/HAQ%51") == HAQQ


@pytest.mark.parametrize(
    "text",
    [
        "AZ/GOV",  # too few parts
        "AZ/GOV/MLSPP/HAQQ/EXTRA",  # too many
        "AZ//MLSPP/HAQQ",  # an empty part
        "AZ/GOV/ML SPP/HAQQ",  # a space
        "AZ/GOV/MLSPP/HA%20QQ",  # an encoded space is still a space
        "AZ/GOV/MLŞPP/HAQQ",  # not ASCII
        "AZ/GOV/MLSPP/A%2FB",  # an encoded '/' decodes to a forbidden character
        "AZ/GOV/MLSPP/" + "X" * 256,  # longer than 255
        "AZ/GOV/MLSPP/a_b",  # '_' is not allowed
    ],
)
def test_clients_that_break_the_rules_are_refused_naming_the_text(text: str) -> None:
    with pytest.raises(InvalidIdentifier) as caught:
        ClientId.parse(text)
    assert "X-Road" in str(caught.value)


def test_every_allowed_symbol_is_accepted() -> None:
    symbols = "'()+,-.=?"
    client = ClientId("AZ", "GOV", symbols, "a0Z9")
    assert ClientId.parse(client.encoded()) == client
    assert "%" in client.encoded()  # symbols like '(' are percent-encoded in a path


@given(PART, PART, PART, st.one_of(st.none(), PART), PART)
def test_encoding_then_parsing_gives_the_same_identifiers(
    instance: str, cls: str, member: str, subsystem: str | None, code: str
) -> None:
    client = ClientId(instance, cls, member, subsystem)
    assert ClientId.parse(client.encoded()) == client
    service = ServiceId(client, code)
    assert ServiceId.parse(service.encoded()) == service
    assert "/" not in service.code


def test_services_of_a_subsystem_and_of_a_member() -> None:
    person = ServiceId.parse("AZ/GOV/MOJ/CIVIL-REGISTRY/person")
    assert person == ServiceId(REGISTRY, "person")
    assert str(person) == "AZ/GOV/MOJ/CIVIL-REGISTRY/person"
    assert ServiceId.parse("AZ/GOV/MOJ/person") == ServiceId(ClientId("AZ", "GOV", "MOJ"), "person")
    for bad in ("person", "AZ/GOV/person", "AZ/GOV/MOJ/CIVIL-REGISTRY/", "AZ/GOV/MOJ/CIVIL-REGISTRY/p q"):
        with pytest.raises(InvalidIdentifier):
            ServiceId.parse(bad)


def test_a_path_splits_into_the_service_and_the_providers_path() -> None:
    known = frozenset({REGISTRY})
    service, tail = split_path("/r1/AZ/GOV/MOJ/CIVIL-REGISTRY/person/v1/persons/query", subsystems=known)
    assert service == ServiceId(REGISTRY, "person") and tail == "/v1/persons/query"
    service, tail = split_path("/r1/AZ/GOV/MOJ/CIVIL-REGISTRY/listMethods", subsystems=known)
    assert service == ServiceId(REGISTRY, "listMethods") and tail == ""
    # The rest stays percent-encoded: the provider decodes its own path.
    _, tail = split_path("/r1/AZ/GOV/MOJ/CIVIL-REGISTRY/person/v1/a%2Fb", subsystems=known)
    assert tail == "/v1/a%2Fb"


def test_known_subsystems_decide_between_a_member_and_a_subsystem_service() -> None:
    path = "/r1/AZ/GOV/MOJ/person/v1/persons"
    # Without knowledge, five parts or more are read as a subsystem's service.
    guessed, tail = split_path(path)
    assert guessed == ServiceId(ClientId("AZ", "GOV", "MOJ", "person"), "v1") and tail == "/persons"
    # Knowing the providers, AZ/GOV/MOJ/person is no subsystem: a member's service.
    member, tail = split_path(path, subsystems=frozenset({REGISTRY}))
    assert member == ServiceId(ClientId("AZ", "GOV", "MOJ"), "person") and tail == "/v1/persons"
    exact, tail = split_path("/r1/AZ/GOV/MOJ/person", subsystems=frozenset({REGISTRY}))
    assert exact == ServiceId(ClientId("AZ", "GOV", "MOJ"), "person") and tail == ""


@pytest.mark.parametrize(
    "path",
    [
        "/r2/AZ/GOV/MOJ/CIVIL-REGISTRY/person",  # another protocol version
        "r1/AZ/GOV/MOJ/CIVIL-REGISTRY/person",  # not absolute
        "/r1/AZ/GOV/MOJ",  # the service id is incomplete
        "/r1",
        "/r1/AZ/GOV/MOJ/CIVIL REGISTRY/person",
        "/r1/AZ/GOV/MOJ/CIVIL-REGISTRY/" + "x" * MAX_PATH,  # too long
    ],
)
def test_bad_paths_are_refused(path: str) -> None:
    with pytest.raises(InvalidIdentifier):
        split_path(path, subsystems=frozenset({REGISTRY}))
