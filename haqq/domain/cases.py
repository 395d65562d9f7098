"""Cases: one run of one program for one person, with an explicit state machine.

Every transition is recorded with its time and cause; those records are the case's audit trail.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from haqq.domain.errors import InvalidTransition, NaiveDatetime


class CaseState(StrEnum):
    DETECTED = "detected"
    GATHERING = "gathering"
    VERIFYING = "verifying"
    DECIDED = "decided"
    AWAITING_CONSENT = "awaiting_consent"
    ASSIGNED = "assigned"
    ACCOUNT_REQUESTED = "account_requested"
    ACCOUNT_READY = "account_ready"
    PAYMENT_SCHEDULED = "payment_scheduled"
    NOTIFIED = "notified"
    CLOSED = "closed"
    DENIED = "denied"
    NEEDS_REVIEW = "needs_review"
    DECLINED = "declined"
    LAPSED = "lapsed"
    FAILED = "failed"


S = CaseState

#: The only transitions a case may make. Anything else raises :class:`InvalidTransition`.
TRANSITIONS: Mapping[CaseState, frozenset[CaseState]] = {
    S.DETECTED: frozenset({S.GATHERING, S.NEEDS_REVIEW, S.FAILED}),
    S.GATHERING: frozenset({S.VERIFYING, S.NEEDS_REVIEW, S.FAILED}),
    S.VERIFYING: frozenset({S.DECIDED, S.DENIED, S.NEEDS_REVIEW}),
    # decided -> closed: a stop (ends entitlements) or a notice with nothing to assign.
    S.DECIDED: frozenset({S.ASSIGNED, S.AWAITING_CONSENT, S.DENIED, S.CLOSED, S.NEEDS_REVIEW}),
    S.AWAITING_CONSENT: frozenset({S.ASSIGNED, S.DECLINED, S.LAPSED, S.NEEDS_REVIEW}),
    S.ASSIGNED: frozenset({S.ACCOUNT_REQUESTED, S.ACCOUNT_READY, S.DECLINED, S.NEEDS_REVIEW}),
    S.ACCOUNT_REQUESTED: frozenset({S.ACCOUNT_READY, S.FAILED, S.NEEDS_REVIEW}),
    S.ACCOUNT_READY: frozenset({S.PAYMENT_SCHEDULED, S.CLOSED, S.NEEDS_REVIEW}),
    S.PAYMENT_SCHEDULED: frozenset({S.NOTIFIED, S.NEEDS_REVIEW}),
    S.NOTIFIED: frozenset({S.CLOSED}),
    S.NEEDS_REVIEW: frozenset({S.GATHERING, S.DECIDED, S.DENIED, S.CLOSED}),
    S.CLOSED: frozenset(),
    S.DENIED: frozenset(),
    S.DECLINED: frozenset(),
    S.LAPSED: frozenset(),
    S.FAILED: frozenset(),
}

#: Where the pipeline ends a case: it never moves one out of these (an appeal may, see
#: :data:`REOPENING`). Named, not derived from :data:`TRANSITIONS`.
TERMINAL: frozenset[CaseState] = frozenset({S.CLOSED, S.DENIED, S.DECLINED, S.LAPSED, S.FAILED})
#: States in which the pipeline has nothing more to do without a person or an outside answer.
RESTING: frozenset[CaseState] = TERMINAL | {S.NEEDS_REVIEW}


#: The moves out of a terminal state that only people make: an appeal decided ``rerun`` runs a
#: denied or lapsed case again from gathering. Kept apart from :data:`TRANSITIONS` (the
#: pipeline's own moves, in which terminal states stay final), and checked by :func:`reopen`.
REOPENING: Mapping[CaseState, frozenset[CaseState]] = {
    S.DENIED: frozenset({S.GATHERING}),
    S.LAPSED: frozenset({S.GATHERING}),
}


def can_transition(source: CaseState, target: CaseState) -> bool:
    return target in TRANSITIONS[source]


def can_reopen(source: CaseState, target: CaseState) -> bool:
    return target in REOPENING.get(source, frozenset())


@dataclass(frozen=True, slots=True)
class Transition:
    """One step of a case's audit trail."""

    case_id: str
    source: CaseState | None
    target: CaseState
    at: datetime
    cause: str

    def __post_init__(self) -> None:
        if self.at.tzinfo is None:
            raise NaiveDatetime("transition time")


def transition(
    case_id: str, source: CaseState, target: CaseState, at: datetime, cause: str
) -> Transition:
    """Check one move against :data:`TRANSITIONS` and return its audit record."""
    if not can_transition(source, target):
        raise InvalidTransition(case_id, source.value, target.value)
    return Transition(case_id, source, target, at, cause)


def reopen(case_id: str, source: CaseState, target: CaseState, at: datetime, cause: str) -> Transition:
    """Check a move out of a terminal state against :data:`REOPENING` (an appeal's re-run) and
    return its audit record."""
    if not can_reopen(source, target):
        raise InvalidTransition(case_id, source.value, target.value)
    return Transition(case_id, source, target, at, cause)
