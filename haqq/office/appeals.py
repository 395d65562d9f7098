"""Appeals: a citizen contests a decision; an official upholds it or runs the case again.

A citizen appeals their own case (the beneficiary's), or an official opens the appeal on their
behalf (``channel`` says how it came: ``web``, ``api``, ``office``). Only a case ``denied`` or
``lapsed`` may be appealed (see :mod:`haqq.domain.review`), and one appeal per case is open at
a time. Deciding it ``upheld`` leaves the case as it is, with the official's written reason;
``rerun`` moves the case ``denied|lapsed -> gathering``, due now: the pipeline gathers and
decides again, and its earlier decision is archived and removed first (see
:func:`haqq.office.review.rerun_case`).

Each step writes a ``review_actions`` row (``appeal``, ``appeal_upheld``, ``appeal_rerun``), the
case's ``version`` raised, a transition when the case moves, and the beneficiary's data-access
log entry for an official's step, in the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, insert, select, update

from haqq.adapters.store.schema import appeals as appeals_table
from haqq.adapters.store.schema import cases, decisions
from haqq.domain.access import Action, Principal, Role, require
from haqq.domain.cases import CaseState
from haqq.domain.errors import HaqqError, NaiveDatetime
from haqq.domain.review import (
    AppealDecision,
    AppealStatus,
    InvalidAppeal,
    appeal_outcome,
    check_appealable,
    written_reason,
)
from haqq.office.access import log_access
from haqq.office.review import NoSuchCase, bump_case, case_row, official, record_action, rerun_case

#: How an appeal may come in.
CHANNELS = frozenset({"web", "api", "office", "sms", "post"})


class NoSuchAppeal(HaqqError):
    def __init__(self, appeal_id: int) -> None:
        super().__init__(f"there is no appeal {appeal_id}")
        self.appeal_id = appeal_id


@dataclass(frozen=True, slots=True)
class AppealView:
    id: int
    case_id: str
    fin: str
    reason: str
    opened_by: str
    channel: str
    opened_at: datetime
    status: AppealStatus
    decided_by: str | None
    decision_reason: str | None
    decided_at: datetime | None
    #: The case as it is now, and the decision appealed (None when the case has none yet).
    case_state: CaseState
    program_id: str
    decision_outcome: str | None
    decision_amount: int | None
    decision_reasons: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class AppealableCase:
    """A case as the appeal form shows it: what was decided and whether it may be appealed."""

    case_id: str
    program_id: str
    state: CaseState
    beneficiary_fin: str
    decision_outcome: str | None
    decision_amount: int | None
    decision_reasons: tuple[str, ...]
    #: An appeal of it is open already.
    pending: bool


def _reasons(trace: Mapping[str, Any] | None) -> tuple[str, ...]:
    if not trace:
        return ()
    found = tuple(str(r.get("text", "")) for r in trace.get("reasons") or [] if isinstance(r, dict))
    return found + tuple(str(r.get("reason", "")) for r in trace.get("reviews") or [] if isinstance(r, dict))


def appealable(conn: Connection, principal: Principal, case_id: str) -> AppealableCase:
    """A case the principal may appeal (a citizen: only their own; else :class:`AccessDenied`)."""
    case = case_row(conn, case_id)
    require(principal, Action.OPEN_APPEAL, fin=case.beneficiary_fin)
    decision = conn.execute(
        select(decisions.c.outcome, decisions.c.amount, decisions.c.trace).where(decisions.c.case_id == case_id)
    ).first()
    pending = conn.execute(
        select(appeals_table.c.id).where(appeals_table.c.case_id == case_id,
                                         appeals_table.c.status == AppealStatus.OPEN.value)
    ).first()
    return AppealableCase(
        case_id=case.id, program_id=case.program_id, state=CaseState(case.state), beneficiary_fin=case.beneficiary_fin,
        decision_outcome=decision.outcome if decision else None, decision_amount=decision.amount if decision else None,
        decision_reasons=_reasons(decision.trace) if decision else (), pending=pending is not None,
    )


def _aware(at: datetime) -> None:
    if at.tzinfo is None:
        raise NaiveDatetime("the time of an appeal step")


def _view(row: Row[Any]) -> AppealView:
    reasons = _reasons(row.trace)
    return AppealView(
        id=row.id, case_id=row.case_id, fin=row.fin, reason=row.reason, opened_by=row.opened_by,
        channel=row.channel, opened_at=row.opened_at, status=AppealStatus(row.status), decided_by=row.decided_by,
        decision_reason=row.decision_reason, decided_at=row.decided_at, case_state=CaseState(row.state),
        program_id=row.program_id, decision_outcome=row.outcome, decision_amount=row.amount, decision_reasons=reasons,
    )


def _select() -> Any:
    return (
        select(appeals_table, cases.c.state, cases.c.program_id, decisions.c.outcome, decisions.c.amount,
               decisions.c.trace)
        .join(cases, cases.c.id == appeals_table.c.case_id)
        .outerjoin(decisions, decisions.c.case_id == appeals_table.c.case_id)
    )


def open_appeal(
    conn: Connection, principal: Principal, case_id: str, reason: str | None, at: datetime, channel: str = "web",
) -> AppealView:
    """Open an appeal of a case's decision: the citizen on their own case, or an official for
    them. Refused (nothing written) for a case that may not be appealed or already is."""
    _aware(at)
    if channel not in CHANNELS:
        raise InvalidAppeal(f"channel: one of {', '.join(sorted(CHANNELS))}")
    case = case_row(conn, case_id, lock=True)
    require(principal, Action.OPEN_APPEAL, fin=case.beneficiary_fin)
    why = written_reason(reason)
    check_appealable(case_id, CaseState(case.state))
    pending = conn.execute(
        select(appeals_table.c.id).where(appeals_table.c.case_id == case_id,
                                         appeals_table.c.status == AppealStatus.OPEN.value)
    ).first()
    if pending is not None:
        raise InvalidAppeal(f"case {case_id} already has an open appeal ({pending.id})")
    appeal_id = conn.execute(insert(appeals_table).values(
        case_id=case_id, fin=case.beneficiary_fin, reason=why, opened_by=principal.subject[:60], channel=channel,
        opened_at=at, status=AppealStatus.OPEN.value,
    ).returning(appeals_table.c.id)).scalar_one()
    record_action(conn, case_id, "appeal", principal, at, reason=why)
    bump_case(conn, case)
    log_access(conn, principal, [case.beneficiary_fin], what="appeal: open",
               purpose=f"opened appeal {appeal_id} for the citizen", at=at, case_id=case_id)
    return appeal(conn, principal, int(appeal_id), at=None)


def appeals(
    conn: Connection, principal: Principal, status: AppealStatus | str | None = None, limit: int = 50,
    offset: int = 0,
) -> list[AppealView]:
    """Appeals, oldest first (officials: all; a citizen: their own); up to ``limit + 1`` rows."""
    stmt = _select().order_by(appeals_table.c.opened_at, appeals_table.c.id).limit(limit + 1).offset(offset)
    if principal.role is Role.CITIZEN:
        require(principal, Action.VIEW_CASES, fin=principal.fin)
        stmt = stmt.where(appeals_table.c.fin == principal.fin)
    else:
        require(principal, Action.VIEW_CASES)
    if status is not None:
        stmt = stmt.where(appeals_table.c.status == AppealStatus(status).value)
    return [_view(r) for r in conn.execute(stmt)]


def appeal(conn: Connection, principal: Principal, appeal_id: int, *, at: datetime | None = None) -> AppealView:
    """One appeal, with the case and the decision appealed; an official's look (with ``at``)
    is logged for the citizen."""
    row = conn.execute(_select().where(appeals_table.c.id == appeal_id)).first()
    if row is None:
        raise NoSuchAppeal(appeal_id)
    require(principal, Action.VIEW_CASES, fin=row.fin)
    if at is not None:
        log_access(conn, principal, [row.fin], what="appeal", purpose=f"appeal {appeal_id}", at=at,
                   case_id=row.case_id)
    return _view(row)


def decide_appeal(
    conn: Connection, principal: Principal, appeal_id: int, decision: AppealDecision | str, reason: str | None,
    at: datetime,
) -> AppealView:
    """Decide an open appeal: ``upheld`` (the decision stands) or ``rerun`` (the case runs again)."""
    _aware(at)
    require(principal, Action.DECIDE_APPEAL)
    row = conn.execute(select(appeals_table).where(appeals_table.c.id == appeal_id)).first()
    if row is None:
        raise NoSuchAppeal(appeal_id)
    status = appeal_outcome(appeal_id, AppealStatus(row.status), decision)
    why = written_reason(reason)
    try:
        case = case_row(conn, row.case_id, lock=True)
    except NoSuchCase:  # the foreign key says it exists
        raise NoSuchAppeal(appeal_id) from None
    if status is AppealStatus.RERUN:
        check_appealable(row.case_id, CaseState(case.state))
        rerun_case(conn, case, at, f"appeal {appeal_id} decided rerun by {official(principal)}: {why}",
                   reopening=True)
    else:
        bump_case(conn, case)
    done = conn.execute(
        update(appeals_table).where(appeals_table.c.id == appeal_id, appeals_table.c.status == AppealStatus.OPEN.value)
        .values(status=status.value, decided_by=principal.subject[:60], decision_reason=why, decided_at=at)
    ).rowcount
    if done != 1:
        raise InvalidAppeal(f"appeal {appeal_id} was decided meanwhile")
    record_action(conn, row.case_id, f"appeal_{status.value}", principal, at, reason=why)
    log_access(conn, principal, [row.fin], what=f"appeal: {status.value}",
               purpose=f"decided appeal {appeal_id}: {status.value}: {why}", at=at, case_id=row.case_id)
    return appeal(conn, principal, appeal_id)
