"""The case state machine: exactly the moves of TRANSITIONS, each with an audit record."""

from __future__ import annotations

from collections import deque
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from haqq.domain.cases import (
    RESTING,
    TERMINAL,
    TRANSITIONS,
    CaseState,
    Transition,
    can_transition,
    transition,
)
from haqq.domain.errors import HaqqError, InvalidTransition, NaiveDatetime

S = CaseState
AT = datetime(2025, 3, 14, 9, 30, tzinfo=UTC)

ALLOWED = sorted((s, t) for s in CaseState for t in TRANSITIONS[s])
FORBIDDEN = sorted((s, t) for s in CaseState for t in CaseState if t not in TRANSITIONS[s])

MAIN_PATH = [
    S.DETECTED,
    S.GATHERING,
    S.VERIFYING,
    S.DECIDED,
    S.AWAITING_CONSENT,
    S.ASSIGNED,
    S.ACCOUNT_REQUESTED,
    S.ACCOUNT_READY,
    S.PAYMENT_SCHEDULED,
    S.NOTIFIED,
    S.CLOSED,
]


def reachable(start: CaseState) -> set[CaseState]:
    seen = {start}
    todo = deque([start])
    while todo:
        for nxt in TRANSITIONS[todo.popleft()]:
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def test_table_covers_every_state_and_only_states() -> None:
    assert set(TRANSITIONS) == set(CaseState)
    for targets in TRANSITIONS.values():
        assert targets <= set(CaseState)
        assert all(isinstance(t, CaseState) for t in targets)


def test_the_pair_enumeration_is_complete() -> None:
    assert len(ALLOWED) + len(FORBIDDEN) == len(CaseState) ** 2
    # The table as written: 35 allowed moves out of 16 * 16 pairs.
    assert len(ALLOWED) == 35


@pytest.mark.parametrize(("source", "target"), ALLOWED, ids=lambda s: s.value)
def test_every_allowed_move_returns_its_record(source: CaseState, target: CaseState) -> None:
    assert can_transition(source, target)
    record = transition("case-1", source, target, AT, "because")
    assert isinstance(record, Transition)
    assert record == Transition("case-1", source, target, AT, "because")
    assert (record.case_id, record.source, record.target) == ("case-1", source, target)
    assert record.at == AT
    assert record.cause == "because"


@pytest.mark.parametrize(("source", "target"), FORBIDDEN, ids=lambda s: s.value)
def test_every_other_move_raises(source: CaseState, target: CaseState) -> None:
    assert not can_transition(source, target)
    with pytest.raises(InvalidTransition) as info:
        transition("case-7", source, target, AT, "because")
    err = info.value
    assert isinstance(err, HaqqError)
    assert (err.case_id, err.source, err.target) == ("case-7", source.value, target.value)
    assert str(err) == f"case case-7: transition {source.value} -> {target.value} is not allowed"


def test_self_loops_are_never_allowed() -> None:
    for state in CaseState:
        assert not can_transition(state, state)


def test_terminal_states_have_no_exits() -> None:
    assert {S.CLOSED, S.DENIED, S.DECLINED, S.LAPSED, S.FAILED} == TERMINAL
    for state in TERMINAL:
        assert TRANSITIONS[state] == frozenset()
        for target in CaseState:
            with pytest.raises(InvalidTransition):
                transition("c", state, target, AT, "x")


def test_resting_is_terminal_plus_review() -> None:
    assert TERMINAL | {S.NEEDS_REVIEW} == RESTING
    assert S.NEEDS_REVIEW not in TERMINAL


def test_non_terminal_states_have_exits_and_can_end() -> None:
    for state in set(CaseState) - TERMINAL:
        assert TRANSITIONS[state], state
        assert reachable(state) & TERMINAL, f"{state} can never end"


def test_every_state_is_reachable_from_detected() -> None:
    assert reachable(S.DETECTED) == set(CaseState)


def test_main_path_is_a_chain_of_allowed_moves() -> None:
    for source, target in zip(MAIN_PATH, MAIN_PATH[1:], strict=False):
        transition("c", source, target, AT, "main path")
    assert set(MAIN_PATH) <= reachable(S.DETECTED)


def test_nothing_leads_back_to_detected() -> None:
    assert all(S.DETECTED not in targets for targets in TRANSITIONS.values())


def test_naive_datetime_is_refused() -> None:
    naive = datetime(2025, 3, 14, 9, 30)  # noqa: DTZ001 - on purpose
    with pytest.raises(NaiveDatetime, match="transition time must be a timezone-aware"):
        transition("c", S.DETECTED, S.GATHERING, naive, "x")
    with pytest.raises(NaiveDatetime):
        Transition("c", None, S.DETECTED, naive, "created")


def test_disallowed_move_is_refused_before_the_time_is_checked() -> None:
    naive = datetime(2025, 3, 14, 9, 30)  # noqa: DTZ001 - on purpose
    with pytest.raises(InvalidTransition):
        transition("c", S.CLOSED, S.GATHERING, naive, "x")


def test_any_offset_is_accepted_and_kept() -> None:
    baku = timezone(timedelta(hours=4))
    at = datetime(2025, 3, 14, 13, 30, tzinfo=baku)
    record = transition("c", S.DETECTED, S.GATHERING, at, "x")
    assert record.at.utcoffset() == timedelta(hours=4)
    assert record.at == AT


def test_a_record_is_frozen() -> None:
    record = transition("c", S.DETECTED, S.GATHERING, AT, "x")
    with pytest.raises((AttributeError, TypeError)):
        record.target = S.CLOSED  # type: ignore[misc]


# --- random walks ----------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(list(CaseState)), max_size=40))
def test_random_walk_only_follows_the_table(attempts: list[CaseState]) -> None:
    state = S.DETECTED
    trail: list[Transition] = []
    for i, target in enumerate(attempts):
        at = AT + timedelta(minutes=i)
        if target in TRANSITIONS[state]:
            trail.append(transition("walk", state, target, at, f"step {i}"))
            state = target
        else:
            with pytest.raises(InvalidTransition):
                transition("walk", state, target, at, f"step {i}")
    previous = S.DETECTED
    for record in trail:
        assert record.source == previous
        assert record.target in TRANSITIONS[previous]
        previous = record.target
    assert previous == state


class CaseMachine(RuleBasedStateMachine):
    """Attempts arbitrary moves; the case only ever follows TRANSITIONS."""

    @initialize()
    def start(self) -> None:
        self.state = S.DETECTED
        self.trail: list[Transition] = []
        self.visited = {S.DETECTED}

    @rule(goal=st.sampled_from(list(CaseState)))
    def attempt(self, goal: CaseState) -> None:
        before = self.state
        try:
            record = transition("sm", before, goal, AT, "attempt")
        except InvalidTransition:
            assert goal not in TRANSITIONS[before]
            assert self.state == before
            return
        assert goal in TRANSITIONS[before]
        assert record.source == before and record.target == goal
        self.trail.append(record)
        self.state = goal
        self.visited.add(goal)

    @invariant()
    def trail_follows_the_table(self) -> None:
        current = S.DETECTED
        for record in self.trail:
            assert record.source == current
            assert can_transition(current, record.target)
            current = record.target
        assert current == self.state

    @invariant()
    def terminal_is_final(self) -> None:
        if self.trail:
            for record in self.trail[:-1]:
                assert record.target not in TERMINAL


CaseMachine.TestCase.settings = settings(max_examples=100, stateful_step_count=30, deadline=None)
TestCaseMachine = CaseMachine.TestCase
