"""Who may do what: the permission table, and a citizen's rights on their own records only."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from haqq.domain.access import (
    OFFICIALS,
    ON_A_PERSON,
    PERMISSIONS,
    AccessDenied,
    Action,
    Principal,
    Role,
    allowed,
    require,
)

fins = st.from_regex(r"[0-9A-Z]{7}", fullmatch=True)


def test_every_action_has_a_rule() -> None:
    assert set(PERMISSIONS) == set(Action)


@pytest.mark.parametrize("action", sorted(ON_A_PERSON))
def test_a_citizen_acts_on_their_own_records(action: Action) -> None:
    me = Principal("5ZK7N2R", Role.CITIZEN, "Aysel", fin="5ZK7N2R")
    assert allowed(me, action, fin="5ZK7N2R")
    assert not allowed(me, action, fin="7ABCDEF")
    assert not allowed(me, action)
    with pytest.raises(AccessDenied, match="own records only"):
        require(me, action, fin="7ABCDEF")


@given(mine=fins, other=fins, action=st.sampled_from(sorted(ON_A_PERSON)))
def test_a_citizen_never_reaches_another_persons_records(mine: str, other: str, action: Action) -> None:
    me = Principal(mine, Role.CITIZEN, "x", fin=mine)
    assert allowed(me, action, fin=other) == (mine == other)


@pytest.mark.parametrize(
    ("role", "action", "expected"),
    [
        (Role.CASEWORKER, Action.WORK_REVIEW, True),
        (Role.CASEWORKER, Action.APPROVE_REVIEW, False),
        (Role.SUPERVISOR, Action.APPROVE_REVIEW, True),
        (Role.AUDITOR, Action.WORK_REVIEW, False),
        (Role.AUDITOR, Action.VIEW_ACCESS_LOG, True),
        (Role.CITIZEN, Action.SEARCH_PERSONS, False),
        (Role.CITIZEN, Action.VIEW_DASHBOARD, False),
        (Role.SYSTEM, Action.INTAKE_EVENTS, True),
        (Role.SYSTEM, Action.VIEW_PERSON, False),
        (Role.CASEWORKER, Action.INTAKE_EVENTS, False),
    ],
)
def test_roles(role: Role, action: Action, expected: bool) -> None:
    who = Principal("u", role, "u", fin="5ZK7N2R" if role is Role.CITIZEN else None)
    assert allowed(who, action, fin="5ZK7N2R") is expected
    if not expected:
        with pytest.raises(AccessDenied):
            require(who, action, fin="5ZK7N2R")


def test_officials_may_act_on_anyone_and_are_officials() -> None:
    for role in OFFICIALS:
        who = Principal("u", role, "u")
        assert who.is_official
        assert allowed(who, Action.VIEW_PERSON, fin="7ABCDEF")
    assert not Principal("s", Role.SYSTEM, "registry").is_official


def test_a_citizen_principal_needs_a_fin() -> None:
    with pytest.raises(AccessDenied, match="FIN"):
        Principal("someone", Role.CITIZEN, "x")
