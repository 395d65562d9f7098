"""Payments and payment runs: their states, the approval rule and the payment's bank identity.

Pure: no store, no clock. The store keeps these states as text; every change goes through
:func:`check_payment` or :func:`check_run`, so an unexpected change is an error, not a quiet
overwrite.

A payment is ``scheduled`` (due, in no run), ``queued`` in a run not yet sent, ``sent`` in a
file the bank has, then ``accepted`` (paid) or ``rejected`` with the bank's reason code. It is
``held`` when it cannot go into a file (no account, an IBAN failing its checksum) until a person
corrects it, and ``cancelled`` when a stop (death, status ended) came before it was sent. A
rejected or held payment goes back to ``scheduled`` when corrected, with a new attempt number,
so its new end-to-end id is not mistaken by the bank for the rejected one.
"""

from __future__ import annotations

from enum import StrEnum

from haqq.domain.errors import HaqqError


class PaymentStatus(StrEnum):
    SCHEDULED = "scheduled"
    QUEUED = "queued"
    SENT = "sent"
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    HELD = "held"
    CANCELLED = "cancelled"


P = PaymentStatus
PAYMENT_TRANSITIONS: dict[PaymentStatus, frozenset[PaymentStatus]] = {
    P.SCHEDULED: frozenset({P.QUEUED, P.HELD, P.CANCELLED, P.ACCEPTED, P.REJECTED}),
    P.QUEUED: frozenset({P.SENT, P.SCHEDULED, P.CANCELLED}),
    P.SENT: frozenset({P.ACCEPTED, P.REJECTED}),
    P.ACCEPTED: frozenset(),
    P.REJECTED: frozenset({P.SCHEDULED, P.CANCELLED}),
    P.HELD: frozenset({P.SCHEDULED, P.CANCELLED}),
    P.CANCELLED: frozenset(),
}
#: Payments whose money may still go out (what "open" means in reconciliation).
OPEN = frozenset({P.SCHEDULED, P.QUEUED, P.SENT, P.REJECTED, P.HELD})


class RunStatus(StrEnum):
    DRAFT = "draft"
    APPROVED = "approved"
    SENT = "sent"
    #: Every payment of the run has its final answer: settled, or rejected.
    CLOSED = "closed"
    CANCELLED = "cancelled"


R = RunStatus
RUN_TRANSITIONS: dict[RunStatus, frozenset[RunStatus]] = {
    R.DRAFT: frozenset({R.APPROVED, R.CANCELLED}),
    R.APPROVED: frozenset({R.SENT, R.CANCELLED}),
    R.SENT: frozenset({R.CLOSED}),
    R.CLOSED: frozenset(),
    R.CANCELLED: frozenset(),
}


class PaymentError(HaqqError):
    """A payment or payment run operation that cannot be done; the message says why."""


class UnknownRun(PaymentError):
    def __init__(self, run: object) -> None:
        super().__init__(f"no payment run {run}")


class RunStateError(PaymentError):
    """The run is not in a state that allows this (approving a sent run, sending twice...)."""


class ApprovalError(PaymentError):
    """An approval that does not count: the same person twice, or the run's creator alone."""


class PaymentStateError(PaymentError):
    """A payment change its state does not allow."""


def check_payment(payment: str, source: PaymentStatus, target: PaymentStatus) -> None:
    if target not in PAYMENT_TRANSITIONS[source]:
        raise PaymentStateError(f"payment {payment} is {source}: it cannot become {target}")


def check_run(run: str, source: RunStatus, target: RunStatus) -> None:
    if target not in RUN_TRANSITIONS[source]:
        raise RunStateError(f"payment run {run} is {source}: it cannot become {target}")


def approvals_needed(total: int, threshold: int) -> int:
    """One approval; two, by different people, when the run's total is above ``threshold``."""
    return 2 if total > threshold else 1


def next_approval(
    run: str, approvers: tuple[str, ...], by: str, total: int, threshold: int
) -> tuple[str, ...]:
    """The run's approvers after ``by`` approves; refuses an approval that would not count."""
    if not by.strip():
        raise ApprovalError("an approval names who approves (--by)")
    needed = approvals_needed(total, threshold)
    if len(approvers) >= needed:
        raise RunStateError(f"payment run {run} is already approved by {', '.join(approvers)}")
    if by in approvers:
        raise ApprovalError(
            f"payment run {run} totals above the threshold and needs a second person: "
            f"{by} approved it already"
        )
    return (*approvers, by)


def end_to_end_id(entitlement_id: str, period: str, attempt: int = 0) -> str:
    """The payment's end-to-end id in bank files, made of what identifies the payment (its
    entitlement and period) and the attempt: the same in every file that carries this attempt,
    so a re-sent file is recognised and never paid twice, and a new id for a corrected retry.
    ``C0067A0E35A9604B9EDE-202503-0``: March 2025 of that entitlement, first attempt (``L``:
    the lump sum)."""
    return f"{entitlement_id}-{'L' if period == 'lump' else period.replace('-', '')}-{attempt}"


def parse_end_to_end_id(value: str) -> tuple[str, str, int] | None:
    """``(entitlement id, period, attempt)`` of one of haqq's end-to-end ids; None otherwise."""
    entitlement, _, rest = value.rpartition("-")
    entitlement, _, period = entitlement.rpartition("-")
    if not entitlement or not rest.isdigit() or not (period == "L" or (len(period) == 6 and period.isdigit())):
        return None
    return entitlement, "lump" if period == "L" else f"{period[:4]}-{period[4:]}", int(rest)


#: The bank's ISO 20022 reason codes a person can act on, and what to do.
REASONS: dict[str, str] = {
    "AC01": "account number wrong or unknown: correct the IBAN",
    "AC04": "account closed: ask for the new account, or open one",
    "AC06": "account blocked: ask the bank",
    "AM12": "amount not valid",
    "BE01": "name does not match the account holder: check the name",
    "MD07": "account holder deceased: stop and recover",
}


def explain_reason(code: str | None) -> str:
    if not code:
        return ""
    return REASONS.get(code, "see the bank's report")
