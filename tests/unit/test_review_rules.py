"""The rules of review and appeal decisions (pure): the decision, the threshold, the stage machine,
the four-eyes rule, what may be appealed."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from haqq.domain.access import AccessDenied
from haqq.domain.cases import TERMINAL, CaseState, can_reopen, can_transition
from haqq.domain.review import (
    APPEALABLE,
    STAGE_MOVES,
    TARGETS,
    AppealStatus,
    FourEyes,
    InvalidAppeal,
    InvalidReview,
    InvalidReviewStep,
    ReviewOutcome,
    Stage,
    Step,
    appeal_outcome,
    check_appealable,
    check_four_eyes,
    check_holder,
    current_stage,
    needs_second_approval,
    next_stage,
    review_decision,
)


def test_a_grant_needs_a_positive_amount_and_a_reason() -> None:
    d = review_decision("grant", 25_000, "  the certificate was seen  ")
    assert (d.outcome, d.amount, d.reason) == (ReviewOutcome.GRANT, 25_000, "the certificate was seen")
    with pytest.raises(InvalidReview, match="amount"):
        review_decision("grant", None, "why")
    with pytest.raises(InvalidReview, match="amount"):
        review_decision("grant", 0, "why")
    with pytest.raises(InvalidReview, match="amount"):
        review_decision("grant", -5, "why")


@pytest.mark.parametrize("reason", ["", "   ", "\n\t", None])
@pytest.mark.parametrize("outcome", ["grant", "deny", "rerun"])
def test_every_decision_needs_a_written_reason(outcome: str, reason: str | None) -> None:
    with pytest.raises(InvalidReview, match="reason"):
        review_decision(outcome, 100 if outcome == "grant" else None, reason)


def test_deny_and_rerun_carry_no_amount() -> None:
    assert review_decision("deny", None, "not resident").amount is None
    assert review_decision("rerun", None, "the registry is fixed").outcome is ReviewOutcome.RERUN
    with pytest.raises(InvalidReview, match="amount"):
        review_decision("deny", 100, "why")


def test_an_unknown_outcome_is_named() -> None:
    with pytest.raises(InvalidReview, match="outcome"):
        review_decision("approve", None, "why")


def test_a_reason_has_a_limit() -> None:
    with pytest.raises(InvalidReview, match="reason"):
        review_decision("deny", None, "x" * 5000)


@given(amount=st.integers(min_value=1, max_value=10**9), threshold=st.integers(min_value=0, max_value=10**9))
def test_only_a_grant_above_the_threshold_needs_a_second_approval(amount: int, threshold: int) -> None:
    assert needs_second_approval(ReviewOutcome.GRANT, amount, threshold) is (amount > threshold)
    assert not needs_second_approval(ReviewOutcome.DENY, None, threshold)
    assert not needs_second_approval(ReviewOutcome.RERUN, None, threshold)


def test_each_outcome_moves_the_case_by_the_state_machine() -> None:
    for target in TARGETS.values():
        assert can_transition(CaseState.NEEDS_REVIEW, target)


def test_the_four_eyes_rule() -> None:
    check_four_eyes("c1", "alice", "bob")
    with pytest.raises(FourEyes, match="another supervisor"):
        check_four_eyes("c1", "alice", "alice")
    assert issubclass(FourEyes, AccessDenied)  # answered as forbidden


@given(proposer=st.text(min_size=1, max_size=10), approver=st.text(min_size=1, max_size=10))
def test_the_approver_is_never_the_proposer(proposer: str, approver: str) -> None:
    if proposer == approver:
        with pytest.raises(FourEyes):
            check_four_eyes("c", proposer, approver)
    else:
        check_four_eyes("c", proposer, approver)


def test_a_taken_case_is_worked_by_its_holder_or_a_supervisor() -> None:
    check_holder("c", Stage.TAKEN, Step.DECIDE, assignee="alice", actor="alice", supervisor=False)
    check_holder("c", Stage.TAKEN, Step.DECIDE, assignee="alice", actor="carol", supervisor=True)
    with pytest.raises(InvalidReviewStep, match="alice has taken it"):
        check_holder("c", Stage.TAKEN, Step.RELEASE, assignee="alice", actor="bob", supervisor=False)


def test_a_case_back_in_review_is_open_again() -> None:
    assert current_stage(None) is Stage.OPEN
    assert current_stage(Stage.DONE) is Stage.OPEN
    assert current_stage(Stage.AWAITING_APPROVAL) is Stage.AWAITING_APPROVAL


def test_done_is_final_and_every_stage_but_done_has_a_way_on() -> None:
    assert not [k for k in STAGE_MOVES if k[0] is Stage.DONE]
    for stage in set(Stage) - {Stage.DONE}:
        assert any(k[0] is stage for k in STAGE_MOVES), stage


class ReviewMachine(RuleBasedStateMachine):
    """Arbitrary steps: the stage only ever follows STAGE_MOVES; a refused step changes nothing."""

    def __init__(self) -> None:
        super().__init__()
        self.stage = Stage.OPEN
        self.trail: list[tuple[Stage, Step, Stage]] = []

    @rule(step=st.sampled_from(list(Step)))
    def attempt(self, step: Step) -> None:
        before = self.stage
        try:
            after = next_stage("c", before, step)
        except InvalidReviewStep:
            assert (before, step) not in STAGE_MOVES
            assert self.stage is before
            return
        assert STAGE_MOVES[(before, step)] is after
        self.trail.append((before, step, after))
        self.stage = after

    @invariant()
    def follows_the_table(self) -> None:
        current = Stage.OPEN
        for before, step, after in self.trail:
            assert before is current and STAGE_MOVES[(before, step)] is after
            current = after
        assert current is self.stage

    @invariant()
    def approval_only_after_a_proposal(self) -> None:
        for i, (_, step, _) in enumerate(self.trail):
            if step in (Step.APPROVE, Step.REJECT):
                assert self.trail[i - 1][1] is Step.PROPOSE


ReviewMachine.TestCase.settings = settings(max_examples=100, stateful_step_count=25, deadline=None)
TestReviewMachine = ReviewMachine.TestCase


def test_appealable_states_are_terminal_and_reopen_to_gathering() -> None:
    assert {CaseState.DENIED, CaseState.LAPSED} == APPEALABLE
    for state in APPEALABLE:
        assert state in TERMINAL
        assert can_reopen(state, CaseState.GATHERING)
        assert not can_transition(state, CaseState.GATHERING)  # the pipeline never does it
    for state in set(CaseState) - APPEALABLE:
        assert not can_reopen(state, CaseState.GATHERING)
        if state is not CaseState.NEEDS_REVIEW:
            with pytest.raises(InvalidAppeal):
                check_appealable("c", state)


def test_an_appeal_is_decided_once() -> None:
    assert appeal_outcome(1, AppealStatus.OPEN, "upheld") is AppealStatus.UPHELD
    assert appeal_outcome(1, AppealStatus.OPEN, "rerun") is AppealStatus.RERUN
    with pytest.raises(InvalidAppeal, match="already decided"):
        appeal_outcome(1, AppealStatus.UPHELD, "rerun")
    with pytest.raises(InvalidAppeal, match="decision"):
        appeal_outcome(1, AppealStatus.OPEN, "maybe")
