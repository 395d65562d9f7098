"""The review queue: cases the pipeline could not decide, worked by caseworkers and supervisors.

Every step (take, release, decide, propose, approve, reject) is one transaction in the caller's
``conn``: a ``review_actions`` row, the ``reviews`` row, a ``case_transitions`` row when the case
changes state (its cause names the official and the reason), the case's ``version`` raised and
an entry in the beneficiary's data-access log. A step that does not apply (wrong state, wrong
stage, wrong person) raises a typed error before anything is written.

A decision applied here writes what the pipeline's verify step would have: the decision row
(updated, or inserted when the case never reached verify), the entitlement (as
:mod:`haqq.pipeline.verify` writes it: the program's schedule, its end date, its once-key) and
the case moved to ``decided`` and due now, so the worker carries it on (assign, account, pay,
SMS). A re-run moves the case to ``gathering``, due now; its earlier decision (and an
entitlement never paid) is archived into a ``review_actions`` row (``superseded``, the old rows
as JSON in its reason) and removed, so the pipeline decides afresh (the decision's key is the
case). See :func:`rerun_case`, shared with appeals.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import Connection, Row, delete, func, insert, or_, select, update

from haqq.adapters.store import repository
from haqq.adapters.store.schema import (
    case_transitions,
    cases,
    decisions,
    entitlements,
    events,
    payments,
    review_actions,
    reviews,
)
from haqq.domain.access import Action, Principal, Role, require
from haqq.domain.cases import CaseState, reopen, transition
from haqq.domain.errors import HaqqError, NaiveDatetime
from haqq.domain.money import format_azn
from haqq.domain.review import (
    TARGETS,
    InvalidReviewStep,
    ReviewDecision,
    ReviewOutcome,
    Stage,
    Step,
    check_four_eyes,
    check_holder,
    current_stage,
    needs_second_approval,
    next_stage,
    review_decision,
    written_reason,
)
from haqq.office.access import log_access
from haqq.pipeline.verify import end_date, once_key
from haqq.pipeline.work import local_date
from haqq.rules.catalogue import Catalogue, Mode, Program

#: Payments that never reached the citizen and never will: an entitlement with only these may
#: be undone.
UNPAID = ("cancelled", "rejected")


class NoSuchCase(HaqqError):
    def __init__(self, case_id: str) -> None:
        super().__init__(f"there is no case {case_id}")
        self.case_id = case_id


class NotUnderReview(InvalidReviewStep):
    """The case is not in ``needs_review`` (any more)."""

    def __init__(self, case_id: str, state: str, step: str) -> None:
        HaqqError.__init__(self, f"case {case_id} is {state}, not under review: cannot {step} it")
        self.case_id = case_id
        self.stage = state
        self.step = step


class CannotGrant(HaqqError):
    """A grant that would break a rule of the store: paid twice, or a program that pays nothing."""


class ChangedMeanwhile(HaqqError):
    """Someone else changed the case between reading and writing it: nothing was written."""


@dataclass(frozen=True, slots=True)
class QueueItem:
    case_id: str
    program_id: str
    program_name: Mapping[str, str]
    subject_fin: str
    beneficiary_fin: str
    reason: str | None
    waiting_since: datetime | None
    stage: Stage
    assignee: str | None
    proposed_outcome: str | None
    proposed_amount: int | None
    proposed_by: str | None


@dataclass(frozen=True, slots=True)
class ActionView:
    action: str
    by: str
    role: str
    outcome: str | None
    amount: int | None
    reason: str | None
    at: datetime


@dataclass(frozen=True, slots=True)
class TransitionView:
    source: str | None
    target: str
    at: datetime
    cause: str


@dataclass(frozen=True, slots=True)
class CaseReview:
    """One case as the reviewer sees it: where it is, why, what the pipeline found so far."""

    case_id: str
    program_id: str
    program_name: Mapping[str, str]
    state: CaseState
    subject_fin: str
    beneficiary_fin: str
    created_at: datetime
    occurred_at: datetime
    reason: str | None
    stage: Stage | None
    assignee: str | None
    proposed_outcome: str | None
    proposed_amount: int | None
    proposed_reason: str | None
    proposed_by: str | None
    decision: Mapping[str, Any] | None
    entitlement: Mapping[str, Any] | None
    transitions: Sequence[TransitionView] = field(default_factory=tuple)
    actions: Sequence[ActionView] = field(default_factory=tuple)
    #: What the program's amount table would give (for the reviewer's reference), if known.
    suggested_amount: int | None = None


@dataclass(frozen=True, slots=True)
class StepResult:
    case_id: str
    state: CaseState
    stage: Stage


# --- reading ---------------------------------------------------------------------------------


def _aware(at: datetime) -> None:
    if at.tzinfo is None:
        raise NaiveDatetime("the time of a review step")


def _names(catalogue: Catalogue | None, program_id: str) -> Mapping[str, str]:
    if catalogue is not None and program_id in catalogue.programs:
        names: dict[str, str] = catalogue.programs[program_id].names.model_dump()
        return names
    return {"az": program_id, "ru": program_id, "en": program_id}


def _waiting_since() -> Any:
    return (
        select(func.max(case_transitions.c.at))
        .where(case_transitions.c.case_id == cases.c.id, case_transitions.c.target == CaseState.NEEDS_REVIEW.value)
        .scalar_subquery()
    )


def queue(
    conn: Connection, principal: Principal, stage: Stage | str | None = None, program: str | None = None,
    limit: int = 50, offset: int = 0, *, catalogue: Catalogue | None = None, at: datetime | None = None,
) -> list[QueueItem]:
    """Cases in ``needs_review``, oldest first, with their stage; up to ``limit + 1`` rows (the
    extra one says there is a next page). With ``at``, the look is logged for each beneficiary
    listed (the queue shows why each case waits, which may name their records)."""
    require(principal, Action.WORK_REVIEW)
    waiting = _waiting_since().label("waiting_since")
    stmt = (
        select(
            cases.c.id, cases.c.program_id, cases.c.subject_fin, cases.c.beneficiary_fin, cases.c.review_reason,
            waiting, reviews.c.stage, reviews.c.assignee, reviews.c.proposed_outcome, reviews.c.proposed_amount,
            reviews.c.proposed_by,
        )
        .outerjoin(reviews, reviews.c.case_id == cases.c.id)
        .where(cases.c.state == CaseState.NEEDS_REVIEW.value)
        .order_by(waiting, cases.c.id)
        .limit(limit + 1)
        .offset(offset)
    )
    if stage is not None:
        chosen = Stage(stage)
        if chosen is Stage.OPEN:
            stmt = stmt.where(or_(reviews.c.stage.is_(None), reviews.c.stage.in_((Stage.OPEN.value, Stage.DONE.value))))
        else:
            stmt = stmt.where(reviews.c.stage == chosen.value)
    if program:
        stmt = stmt.where(cases.c.program_id == program)
    items = []
    for r in conn.execute(stmt):
        taken = current_stage(Stage(r.stage) if r.stage else None)
        fresh = taken is not Stage.OPEN
        items.append(QueueItem(
            case_id=r.id, program_id=r.program_id, program_name=_names(catalogue, r.program_id),
            subject_fin=r.subject_fin, beneficiary_fin=r.beneficiary_fin, reason=r.review_reason,
            waiting_since=r.waiting_since, stage=taken, assignee=r.assignee if fresh else None,
            proposed_outcome=r.proposed_outcome if taken is Stage.AWAITING_APPROVAL else None,
            proposed_amount=r.proposed_amount if taken is Stage.AWAITING_APPROVAL else None,
            proposed_by=r.proposed_by if taken is Stage.AWAITING_APPROVAL else None,
        ))
    if at is not None and items:
        for item in items[:limit]:
            log_access(conn, principal, [item.beneficiary_fin], what="review queue",
                       purpose="the review queue", at=at, case_id=item.case_id)
    return items


def case_row(conn: Connection, case_id: str, *, lock: bool = False) -> Row[Any]:
    stmt = (
        select(cases, events.c.occurred_at)
        .join(events, events.c.id == cases.c.event_id)
        .where(cases.c.id == case_id)
    )
    if lock and conn.dialect.name == "postgresql":
        stmt = stmt.with_for_update(of=cases)
    row = conn.execute(stmt).first()
    if row is None:
        raise NoSuchCase(case_id)
    return row


def _review_row(conn: Connection, case_id: str) -> Row[Any] | None:
    return conn.execute(select(reviews).where(reviews.c.case_id == case_id)).first()


def case_review(
    conn: Connection, principal: Principal, case_id: str, at: datetime, *, catalogue: Catalogue | None = None,
) -> CaseReview:
    """One case with what a reviewer needs; the look is logged for the beneficiary."""
    _aware(at)
    require(principal, Action.WORK_REVIEW)
    case = case_row(conn, case_id)
    review = _review_row(conn, case_id)
    decision = conn.execute(select(decisions).where(decisions.c.case_id == case_id)).first()
    right = conn.execute(select(entitlements).where(entitlements.c.id == case_id)).first()
    steps = conn.execute(
        select(case_transitions).where(case_transitions.c.case_id == case_id)
        .order_by(case_transitions.c.at, case_transitions.c.id)
    ).all()
    acts = conn.execute(
        select(review_actions).where(review_actions.c.case_id == case_id).order_by(review_actions.c.id)
    ).all()
    state = CaseState(case.state)
    stage: Stage | None = None
    if state is CaseState.NEEDS_REVIEW:
        stage = current_stage(Stage(review.stage) if review is not None else None)
    waiting = review is not None and stage is Stage.AWAITING_APPROVAL
    suggested = None
    if decision is not None and decision.amount:
        suggested = int(decision.amount)
    log_access(conn, principal, [case.beneficiary_fin], what="review case",
               purpose=f"reviewing case {case_id}", at=at, case_id=case_id)
    return CaseReview(
        case_id=case.id, program_id=case.program_id, program_name=_names(catalogue, case.program_id),
        state=state, subject_fin=case.subject_fin, beneficiary_fin=case.beneficiary_fin,
        created_at=case.created_at, occurred_at=case.occurred_at, reason=case.review_reason, stage=stage,
        assignee=review.assignee if review is not None and stage in (Stage.TAKEN, Stage.AWAITING_APPROVAL) else None,
        proposed_outcome=review.proposed_outcome if waiting and review is not None else None,
        proposed_amount=review.proposed_amount if waiting and review is not None else None,
        proposed_reason=review.proposed_reason if waiting and review is not None else None,
        proposed_by=review.proposed_by if waiting and review is not None else None,
        decision=None if decision is None else dict(decision._mapping),
        entitlement=None if right is None else dict(right._mapping),
        transitions=tuple(TransitionView(s.source, s.target, s.at, s.cause) for s in steps),
        actions=tuple(ActionView(a.action, a.by, a.role, a.outcome, a.amount, a.reason, a.at) for a in acts),
        suggested_amount=suggested,
    )


# --- writing ---------------------------------------------------------------------------------


def official(principal: Principal) -> str:
    """How an official is named in a case's audit trail."""
    return f"{principal.role.value} {principal.name} ({principal.subject})"


def record_action(
    conn: Connection, case_id: str, action: str, principal: Principal, at: datetime, *,
    outcome: str | None = None, amount: int | None = None, reason: str | None = None,
) -> None:
    conn.execute(insert(review_actions).values(
        case_id=case_id, action=action, by=principal.subject[:60], role=principal.role.value,
        outcome=outcome, amount=amount, reason=reason, at=at,
    ))


def bump_case(conn: Connection, case: Row[Any], values: Mapping[str, Any] | None = None) -> None:
    """Write the case (at the version it was read at) and raise its version."""
    done = conn.execute(
        update(cases).where(cases.c.id == case.id, cases.c.version == case.version)
        .values(version=cases.c.version + 1, **(values or {}))
    ).rowcount
    if done != 1:
        raise ChangedMeanwhile(f"case {case.id} was changed meanwhile; look again")


def _move(conn: Connection, case: Row[Any], target: CaseState, at: datetime, cause: str, *,
          reopening: bool = False, values: Mapping[str, Any] | None = None) -> None:
    source = CaseState(case.state)
    step = (reopen if reopening else transition)(case.id, source, target, at, cause)
    bump_case(conn, case, {"state": target.value, "updated_at": at, **(values or {})})
    conn.execute(insert(case_transitions).values(
        case_id=case.id, source=source.value, target=step.target.value, at=at, wall_at=at, cause=cause,
    ))


def _save_review(conn: Connection, case_id: str, exists: bool, at: datetime, **values: Any) -> None:
    if exists:
        conn.execute(update(reviews).where(reviews.c.case_id == case_id).values(updated_at=at, **values))
    else:
        conn.execute(insert(reviews).values(case_id=case_id, updated_at=at, **values))


@dataclass(frozen=True, slots=True)
class _Under:
    case: Row[Any]
    review: Row[Any] | None
    stage: Stage


def _under_review(conn: Connection, case_id: str, step: Step) -> _Under:
    case = case_row(conn, case_id, lock=True)
    if case.state != CaseState.NEEDS_REVIEW.value:
        raise NotUnderReview(case_id, case.state, step.value)
    review = _review_row(conn, case_id)
    return _Under(case, review, current_stage(Stage(review.stage) if review is not None else None))


def _log(conn: Connection, principal: Principal, case: Row[Any], what: str, purpose: str, at: datetime) -> None:
    log_access(conn, principal, [case.beneficiary_fin], what=what, purpose=purpose, at=at, case_id=case.id)


def take(conn: Connection, principal: Principal, case_id: str, at: datetime) -> StepResult:
    """Take a case from the queue: it is yours to decide until you release or decide it."""
    _aware(at)
    require(principal, Action.WORK_REVIEW)
    under = _under_review(conn, case_id, Step.TAKE)
    stage = next_stage(case_id, under.stage, Step.TAKE)
    _save_review(conn, case_id, under.review is not None, at, stage=stage.value, assignee=principal.subject[:60],
                 taken_at=at, proposed_outcome=None, proposed_amount=None, proposed_reason=None,
                 proposed_by=None, proposed_at=None)
    record_action(conn, case_id, Step.TAKE.value, principal, at)
    bump_case(conn, under.case)
    _log(conn, principal, under.case, "review: take", f"took case {case_id} for review", at)
    return StepResult(case_id, CaseState.NEEDS_REVIEW, stage)


def release(conn: Connection, principal: Principal, case_id: str, at: datetime) -> StepResult:
    """Put a taken case back in the queue, for anyone to take."""
    _aware(at)
    require(principal, Action.WORK_REVIEW)
    under = _under_review(conn, case_id, Step.RELEASE)
    stage = next_stage(case_id, under.stage, Step.RELEASE)
    check_holder(case_id, under.stage, Step.RELEASE, assignee=under.review.assignee if under.review else None,
                 actor=principal.subject, supervisor=principal.role is Role.SUPERVISOR)
    _save_review(conn, case_id, under.review is not None, at, stage=stage.value, assignee=None, taken_at=None)
    record_action(conn, case_id, Step.RELEASE.value, principal, at)
    bump_case(conn, under.case)
    _log(conn, principal, under.case, "review: release", f"released case {case_id}", at)
    return StepResult(case_id, CaseState.NEEDS_REVIEW, stage)


def decide(
    conn: Connection, principal: Principal, case_id: str, outcome: ReviewOutcome | str, amount: int | None,
    reason: str | None, at: datetime, *, catalogue: Catalogue, threshold: int,
) -> StepResult:
    """Decide a case under review: deny or re-run it, or grant it (above ``threshold`` qəpik
    the grant waits for a supervisor's approval: stage ``awaiting_approval``)."""
    _aware(at)
    require(principal, Action.WORK_REVIEW)
    chosen = review_decision(outcome, amount, reason)
    under = _under_review(conn, case_id, Step.DECIDE)
    second = needs_second_approval(chosen.outcome, chosen.amount, threshold)
    step = Step.PROPOSE if second else Step.DECIDE
    stage = next_stage(case_id, under.stage, step)
    check_holder(case_id, under.stage, step, assignee=under.review.assignee if under.review else None,
                 actor=principal.subject, supervisor=principal.role is Role.SUPERVISOR)
    exists = under.review is not None
    if second:
        _grant_check(conn, under.case, chosen, catalogue)  # refused now, not at approval
        _save_review(conn, case_id, exists, at, stage=stage.value, assignee=principal.subject[:60],
                     taken_at=under.review.taken_at if under.review is not None and under.review.taken_at else at,
                     proposed_outcome=chosen.outcome.value, proposed_amount=chosen.amount,
                     proposed_reason=chosen.reason, proposed_by=principal.subject[:60], proposed_at=at)
        record_action(conn, case_id, Step.PROPOSE.value, principal, at, outcome=chosen.outcome.value,
             amount=chosen.amount, reason=chosen.reason)
        bump_case(conn, under.case)
        _log(conn, principal, under.case, "review: propose", f"proposed: {chosen.outcome.value}: {chosen.reason}", at)
        return StepResult(case_id, CaseState.NEEDS_REVIEW, stage)
    target = _apply(conn, under.case, chosen, catalogue, at, f"{official(principal)}: {chosen.reason}")
    _save_review(conn, case_id, exists, at, stage=stage.value, assignee=principal.subject[:60],
                 proposed_outcome=None, proposed_amount=None, proposed_reason=None, proposed_by=None,
                 proposed_at=None)
    record_action(conn, case_id, Step.DECIDE.value, principal, at, outcome=chosen.outcome.value, amount=chosen.amount,
         reason=chosen.reason)
    _log(conn, principal, under.case, "review: decide", f"decided: {chosen.outcome.value}: {chosen.reason}", at)
    return StepResult(case_id, target, stage)


def approve(
    conn: Connection, principal: Principal, case_id: str, reason: str | None, at: datetime, *, catalogue: Catalogue,
) -> StepResult:
    """A supervisor (not the proposer) approves a proposed decision: it is applied."""
    _aware(at)
    require(principal, Action.APPROVE_REVIEW)
    why = written_reason(reason)
    under = _under_review(conn, case_id, Step.APPROVE)
    stage = next_stage(case_id, under.stage, Step.APPROVE)
    review = under.review
    if review is None or review.proposed_outcome is None:  # the stage says a proposal exists
        raise InvalidReviewStep(case_id, under.stage.value, Step.APPROVE.value, "nothing was proposed")
    check_four_eyes(case_id, review.proposed_by, principal.subject)
    proposal = ReviewDecision(ReviewOutcome(review.proposed_outcome), review.proposed_amount, review.proposed_reason)
    cause = f"proposed by {review.proposed_by}: {proposal.reason}; approved by {official(principal)}: {why}"
    target = _apply(conn, under.case, proposal, catalogue, at, cause)
    _save_review(conn, case_id, True, at, stage=stage.value)
    record_action(conn, case_id, Step.APPROVE.value, principal, at, outcome=proposal.outcome.value, amount=proposal.amount,
         reason=why)
    _log(conn, principal, under.case, "review: approve", f"approved {proposal.outcome.value}: {why}", at)
    return StepResult(case_id, target, stage)


def reject(conn: Connection, principal: Principal, case_id: str, reason: str | None, at: datetime) -> StepResult:
    """A supervisor rejects a proposed decision: the case goes back to the queue, open."""
    _aware(at)
    require(principal, Action.APPROVE_REVIEW)
    why = written_reason(reason)
    under = _under_review(conn, case_id, Step.REJECT)
    stage = next_stage(case_id, under.stage, Step.REJECT)
    review = under.review
    _save_review(conn, case_id, review is not None, at, stage=stage.value, assignee=None, taken_at=None,
                 proposed_outcome=None, proposed_amount=None, proposed_reason=None, proposed_by=None,
                 proposed_at=None)
    record_action(conn, case_id, Step.REJECT.value, principal, at,
         outcome=review.proposed_outcome if review is not None else None,
         amount=review.proposed_amount if review is not None else None, reason=why)
    bump_case(conn, under.case)
    _log(conn, principal, under.case, "review: reject", f"rejected the proposal: {why}", at)
    return StepResult(case_id, CaseState.NEEDS_REVIEW, stage)


# --- applying a decision ---------------------------------------------------------------------


def _program(catalogue: Catalogue, program_id: str) -> Program:
    if program_id not in catalogue.programs:
        raise CannotGrant(f"program {program_id} is not in the catalogue in force: the case cannot be decided here")
    return catalogue.programs[program_id]


def _paid(conn: Connection, case_id: str) -> int:
    """How many payments of the case's entitlement were or may be made."""
    return int(conn.execute(
        select(func.count()).select_from(payments)
        .where(payments.c.entitlement_id == case_id, payments.c.status.not_in(UNPAID))
    ).scalar_one())


def _grant_check(conn: Connection, case: Row[Any], chosen: ReviewDecision, catalogue: Catalogue) -> None:
    """Refuse a grant the store would refuse, or that would pay twice."""
    program = _program(catalogue, case.program_id)
    if program.mode is Mode.STOP:
        raise CannotGrant(f"{program.id} ends other entitlements and pays nothing: deny or re-run the case")
    own = conn.execute(select(entitlements).where(entitlements.c.id == case.id)).first()
    if own is not None and _paid(conn, case.id) and own.amount != chosen.amount:
        raise CannotGrant(
            f"case {case.id} was already paid {format_azn(own.amount)}: a grant of another amount cannot be applied"
        )
    if program.once_per and program.mode is not Mode.NOTIFY:
        key = once_key(program, case.subject_fin, case.beneficiary_fin)
        other = conn.execute(
            select(entitlements.c.id).where(
                entitlements.c.program_id == program.id, entitlements.c.once_key == key, entitlements.c.id != case.id,
            )
        ).first()
        if other is not None:
            raise CannotGrant(f"{program.id} pays once per {program.once_per}, and case {other.id} already has it")


def _birth_date(trace: Mapping[str, Any] | None) -> date | None:
    """The subject's birth date as the decision's trace recorded it (for an end by age)."""
    for fact in (trace or {}).get("facts") or []:
        if fact.get("name") in ("subject.birth_date", "birth_date") and isinstance(fact.get("value"), str):
            try:
                return date.fromisoformat(fact["value"])
            except ValueError:
                return None
    return None


def _record_decision(
    conn: Connection, case: Row[Any], program: Program, catalogue: Catalogue, outcome: str, amount: int,
    review: Mapping[str, Any], at: datetime,
) -> Mapping[str, Any] | None:
    """Write the decision row: the pipeline's updated (its trace keeps what the pipeline found,
    with the review added), or a new one. Returns the trace before."""
    old = conn.execute(select(decisions.c.trace).where(decisions.c.case_id == case.id)).first()
    if old is not None:
        before: dict[str, Any] = dict(old.trace or {})
        reviews_done = [*before.get("reviews", []), review]
        conn.execute(update(decisions).where(decisions.c.case_id == case.id).values(
            outcome=outcome, amount=amount, branch="review", decided_at=at,
            trace={**before, "outcome": outcome, "amount": amount, "reviews": reviews_done},
        ))
        return before
    conn.execute(insert(decisions).values(
        case_id=case.id, outcome=outcome, amount=amount, branch="review",
        legal_basis=program.legal_basis.model_dump(), catalogue_version=catalogue.version,
        trace={"program": program.id, "program_version": program.version, "outcome": outcome, "amount": amount,
               "branch": "review", "reasons": [], "facts": [], "reviews": [review]},
        decided_at=at,
    ))
    return None


def _apply(
    conn: Connection, case: Row[Any], chosen: ReviewDecision, catalogue: Catalogue, at: datetime, cause: str,
) -> CaseState:
    """Apply a decision to a case in ``needs_review``: the rows verify would write, the move."""
    review = {"outcome": chosen.outcome.value, "amount": chosen.amount, "reason": cause, "at": at.isoformat()}
    if chosen.outcome is ReviewOutcome.RERUN:
        rerun_case(conn, case, at, f"re-run on review by {cause}", reopening=False)
        return CaseState.GATHERING
    program = _program(catalogue, case.program_id)
    own = conn.execute(select(entitlements).where(entitlements.c.id == case.id)).first()
    if chosen.outcome is ReviewOutcome.DENY:
        if own is not None and _paid(conn, case.id):
            raise CannotGrant(f"case {case.id} was already paid: it cannot be denied here (a recovery is an office matter)")
        _record_decision(conn, case, program, catalogue, "denied", 0, review, at)
        if own is not None and own.status in ("pending", "active"):
            conn.execute(update(entitlements).where(entitlements.c.id == case.id).values(
                status="ended", ended_reason=f"denied on review: {chosen.reason}"[:2000]))
        _move(conn, case, CaseState.DENIED, at, f"denied on review by {cause}", values={"due_at": None})
        return CaseState.DENIED
    amount = chosen.amount or 0
    _grant_check(conn, case, chosen, catalogue)
    before = _record_decision(conn, case, program, catalogue, "granted", amount, review, at)
    if own is not None and _paid(conn, case.id):
        # Paid already (the pipeline sent it to a person afterwards): confirmed, it ends here.
        _move(conn, case, CaseState.CLOSED, at, f"paid; confirmed on review by {cause}", values={"due_at": None})
        return CaseState.CLOSED
    if program.mode is not Mode.NOTIFY:
        start = local_date(case.occurred_at)
        row = {
            "program_id": program.id,
            "once_key": once_key(program, case.subject_fin, case.beneficiary_fin) if program.once_per else case.id,
            "fin": case.beneficiary_fin,
            "subject_fin": case.subject_fin,
            "schedule": program.schedule.kind.value,
            "amount": amount,
            "start_date": start,
            "end_date": end_date(program.schedule, start, _birth_date(before)),
            "status": "pending",
            "ended_reason": None,
        }
        repository.lock_people(conn, shared=[case.beneficiary_fin, case.subject_fin])
        if own is None:
            conn.execute(insert(entitlements).values(id=case.id, created_at=at, **row))
        else:
            conn.execute(update(entitlements).where(entitlements.c.id == case.id).values(**row))
        # A stop of the person applied meanwhile (a death) ends it as it would have ended it.
        repository.hold_to_stops(conn, [{"id": case.id, **row}], at)
    target = TARGETS[ReviewOutcome.GRANT]
    _move(conn, case, target, at, f"granted {format_azn(amount)} on review by {cause}", values={"due_at": at})
    return target


def _json(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def rerun_case(conn: Connection, case: Row[Any], at: datetime, cause: str, *, reopening: bool) -> None:
    """Run a case again from gathering, due now. Its decision and an entitlement never paid are
    archived (a ``superseded`` review action, the rows as JSON) and removed: the pipeline writes
    them afresh (both are keyed by the case). A case with any payment is refused."""
    made = conn.execute(
        select(func.count()).select_from(payments).where(payments.c.entitlement_id == case.id)
    ).scalar_one()
    if made:
        raise CannotGrant(f"case {case.id} has payments: it cannot be run again (that is an office matter)")
    old = conn.execute(select(decisions).where(decisions.c.case_id == case.id)).first()
    right = conn.execute(select(entitlements).where(entitlements.c.id == case.id)).first()
    if old is not None or right is not None:
        archive = {
            "decision": None if old is None else {k: _json(v) for k, v in old._mapping.items()},
            "entitlement": None if right is None else {k: _json(v) for k, v in right._mapping.items()},
        }
        conn.execute(insert(review_actions).values(
            case_id=case.id, action="superseded", by="haqq", role=Role.SYSTEM.value,
            outcome=None if old is None else old.outcome, amount=None if old is None else old.amount,
            reason=json.dumps(archive, ensure_ascii=False, sort_keys=True), at=at,
        ))
        if right is not None:
            conn.execute(delete(entitlements).where(entitlements.c.id == case.id))
        if old is not None:
            conn.execute(delete(decisions).where(decisions.c.case_id == case.id))
    _move(conn, case, CaseState.GATHERING, at, cause, reopening=reopening,
          values={"due_at": at, "attempts": 0, "reminders": 0, "consent_answer": None})

