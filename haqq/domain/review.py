"""The rules of people's decisions on cases: the review of a case the pipeline could not decide,
and the appeal of a decision a citizen contests. Pure: no store, no clock.

Review. A case in ``needs_review`` is worked in stages::

    open --take--> taken --decide--> done
      ^              |  \\--propose--> awaiting_approval --approve--> done
      +---release----+                       |
      +--------------------reject------------+

A case nobody took may be decided (or a decision proposed) directly: deciding takes it.
The decision is one of grant (with an amount in qəpik), deny or rerun, always with a written
reason. A grant above the configured threshold is only *proposed*: a supervisor who is not the
proposer approves it (the four-eyes rule) or rejects it (the case goes back to the queue).

Appeal. A citizen (or an official on their behalf) contests a decision on a case that is
``denied`` or ``lapsed``. An official decides it: ``upheld`` (the decision stands, with a written
reason) or ``rerun`` (the case runs again from gathering, with the data as it is now).
A ``closed`` case is *not* appealable: it was paid, or it ended entitlements (a stop), or it told
the citizen what they may claim; running it again would pay or stop twice. A ``declined`` case
was the citizen's own choice. Both go to an office, not to the pipeline.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from haqq.domain.access import AccessDenied
from haqq.domain.cases import CaseState
from haqq.domain.errors import HaqqError

#: The longest written reason kept (a paragraph or two, not a file).
MAX_REASON = 4000


class ReviewOutcome(StrEnum):
    GRANT = "grant"
    DENY = "deny"
    RERUN = "rerun"


class Stage(StrEnum):
    OPEN = "open"
    TAKEN = "taken"
    AWAITING_APPROVAL = "awaiting_approval"
    DONE = "done"


class Step(StrEnum):
    """What a person does to a case under review (also the ``review_actions.action``)."""

    TAKE = "take"
    RELEASE = "release"
    #: A decision applied at once.
    DECIDE = "decide"
    #: A decision that waits for a supervisor's approval.
    PROPOSE = "propose"
    APPROVE = "approve"
    REJECT = "reject"


class InvalidReview(HaqqError):
    """A review decision that cannot be taken as written: the message names the field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class InvalidReviewStep(HaqqError):
    """A step the case's review stage does not allow (or the case is not under review)."""

    def __init__(self, case_id: str, stage: str, step: str, why: str = "") -> None:
        detail = f": {why}" if why else ""
        super().__init__(f"case {case_id}: cannot {step} a review that is {stage.replace('_', ' ')}{detail}")
        self.case_id = case_id
        self.stage = stage
        self.step = step


class FourEyes(AccessDenied):
    """The approver of a decision is the one who proposed it."""


#: The review's stage machine: (stage, step) -> the next stage. Anything else is refused.
STAGE_MOVES: Mapping[tuple[Stage, Step], Stage] = {
    (Stage.OPEN, Step.TAKE): Stage.TAKEN,
    (Stage.OPEN, Step.DECIDE): Stage.DONE,
    (Stage.OPEN, Step.PROPOSE): Stage.AWAITING_APPROVAL,
    (Stage.TAKEN, Step.RELEASE): Stage.OPEN,
    (Stage.TAKEN, Step.DECIDE): Stage.DONE,
    (Stage.TAKEN, Step.PROPOSE): Stage.AWAITING_APPROVAL,
    (Stage.AWAITING_APPROVAL, Step.APPROVE): Stage.DONE,
    (Stage.AWAITING_APPROVAL, Step.REJECT): Stage.OPEN,
}


def current_stage(stored: Stage | None) -> Stage:
    """The stage of a case that is in ``needs_review`` now, from its stored review row: none yet,
    or one ``done`` with an earlier review (the case came back), is ``open``."""
    return Stage.OPEN if stored is None or stored is Stage.DONE else stored


def next_stage(case_id: str, stage: Stage, step: Step) -> Stage:
    """The stage after ``step``, or :class:`InvalidReviewStep`."""
    after = STAGE_MOVES.get((stage, step))
    if after is None:
        raise InvalidReviewStep(case_id, stage.value, step.value)
    return after


def check_holder(case_id: str, stage: Stage, step: Step, *, assignee: str | None, actor: str,
                 supervisor: bool) -> None:
    """A taken case is released or decided by whoever took it, or by a supervisor."""
    if stage is Stage.TAKEN and step in (Step.RELEASE, Step.DECIDE, Step.PROPOSE) and not supervisor \
            and assignee is not None and assignee != actor:
        raise InvalidReviewStep(case_id, stage.value, step.value, f"{assignee} has taken it")


def check_four_eyes(case_id: str, proposer: str | None, approver: str) -> None:
    """The person who proposed a decision may not approve or reject it themselves."""
    if proposer is not None and proposer == approver:
        raise FourEyes(f"case {case_id}: {approver} proposed this decision; another supervisor must approve it")


def written_reason(reason: str | None, field: str = "reason") -> str:
    """A reason as it is kept: stripped, not empty, not longer than :data:`MAX_REASON`."""
    text = (reason or "").strip()
    if not text:
        raise InvalidReview(field, "a written reason is required")
    if len(text) > MAX_REASON:
        raise InvalidReview(field, f"at most {MAX_REASON} characters")
    return text


@dataclass(frozen=True, slots=True)
class ReviewDecision:
    """What a person decided on a case: the outcome, the amount of a grant, the reason."""

    outcome: ReviewOutcome
    amount: int | None
    reason: str

    def __post_init__(self) -> None:
        if self.outcome is ReviewOutcome.GRANT:
            if self.amount is None:
                raise InvalidReview("amount", "a grant needs an amount")
            if isinstance(self.amount, bool) or not isinstance(self.amount, int):
                raise InvalidReview("amount", "an amount is a whole number of qəpik")
            if self.amount <= 0:
                raise InvalidReview("amount", "a grant's amount must be more than zero")
        elif self.amount is not None:
            raise InvalidReview("amount", f"only a grant has an amount, not {self.outcome.value}")
        if self.reason != written_reason(self.reason):
            raise InvalidReview("reason", "the reason must be given stripped")


def review_decision(outcome: str | ReviewOutcome, amount: int | None, reason: str | None) -> ReviewDecision:
    """Check and build a :class:`ReviewDecision` from what was sent."""
    try:
        chosen = ReviewOutcome(outcome)
    except ValueError:
        raise InvalidReview("outcome", f"one of {', '.join(o.value for o in ReviewOutcome)}") from None
    return ReviewDecision(chosen, amount, written_reason(reason))


def needs_second_approval(outcome: ReviewOutcome, amount: int | None, threshold: int) -> bool:
    """A grant of more than ``threshold`` qəpik waits for a supervisor's approval."""
    return outcome is ReviewOutcome.GRANT and amount is not None and amount > threshold


#: Where each review outcome moves the case.
TARGETS: Mapping[ReviewOutcome, CaseState] = {
    ReviewOutcome.GRANT: CaseState.DECIDED,
    ReviewOutcome.DENY: CaseState.DENIED,
    ReviewOutcome.RERUN: CaseState.GATHERING,
}


# --- appeals ---------------------------------------------------------------------------------


class AppealStatus(StrEnum):
    OPEN = "open"
    UPHELD = "upheld"
    RERUN = "rerun"


class AppealDecision(StrEnum):
    UPHELD = "upheld"
    RERUN = "rerun"


#: The case states a decision may be appealed in (see the module's text for ``closed``).
APPEALABLE: frozenset[CaseState] = frozenset({CaseState.DENIED, CaseState.LAPSED})


class InvalidAppeal(HaqqError):
    """An appeal that cannot be opened or decided as asked."""


def check_appealable(case_id: str, state: CaseState) -> None:
    if state not in APPEALABLE:
        allowed = " or ".join(sorted(s.value for s in APPEALABLE))
        raise InvalidAppeal(f"case {case_id} is {state.value}: only a case {allowed} may be appealed")


def appeal_outcome(appeal_id: int, status: AppealStatus, decision: str | AppealDecision) -> AppealStatus:
    """The status an open appeal takes when decided, or :class:`InvalidAppeal`."""
    try:
        chosen = AppealDecision(decision)
    except ValueError:
        raise InvalidAppeal(f"decision: one of {', '.join(d.value for d in AppealDecision)}") from None
    if status is not AppealStatus.OPEN:
        raise InvalidAppeal(f"appeal {appeal_id} was already decided: {status.value}")
    return AppealStatus(chosen.value)
