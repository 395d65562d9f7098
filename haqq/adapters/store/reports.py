"""Read models: the demo's summary and everything haqq holds about one person."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import Connection, func, select

from haqq.adapters.store.schema import (
    accounts,
    case_transitions,
    cases,
    citizen_choices,
    decisions,
    entitlements,
    events,
    inbound_sms,
    notifications,
    payments,
    recovery_claims,
)
from haqq.adapters.store.usage import usage_query
from haqq.domain.cases import RESTING
from haqq.pipeline.work import BAKU

#: A notification the gateway took: sent, and since delivered or failed.
HANDED_OVER = ("sent", "delivered", "failed")


@dataclass
class Summary:
    events: dict[str, int] = field(default_factory=dict)
    cases: dict[str, dict[str, int]] = field(default_factory=dict)
    paid: dict[str, tuple[int, int]] = field(default_factory=dict)
    accounts_opened: int = 0
    accounts_refused: int = 0
    sms_sent: int = 0
    sms_by_kind: dict[str, int] = field(default_factory=dict)
    replies: dict[str, int] = field(default_factory=dict)
    recoveries: tuple[int, int] = (0, 0)
    latency_sim_hours: dict[str, float] = field(default_factory=dict)
    latency_wall_ms: dict[str, float] = field(default_factory=dict)

    @property
    def cases_total(self) -> int:
        return sum(sum(v.values()) for v in self.cases.values())

    def cases_finished(self) -> int:
        return sum(n for v in self.cases.values() for s, n in v.items() if s in RESTING)


def percentiles(values: list[float], scale: float) -> dict[str, float]:
    """p50, p95 and p99 of ``values`` times ``scale`` (empty when there are none)."""
    if not values:
        return {}
    arr = np.asarray(values, dtype=float) * scale
    p50, p95, p99 = np.percentile(arr, [50, 95, 99])
    return {"p50": float(p50), "p95": float(p95), "p99": float(p99)}


def first_sms_latencies(conn: Connection) -> tuple[list[float], list[float]]:
    """Seconds from each event to its case's first SMS handed to the gateway: (sim, wall)."""
    first = (
        select(
            notifications.c.case_id,
            func.min(notifications.c.sent_at).label("sent_at"),
            func.min(notifications.c.sent_wall).label("sent_wall"),
        )
        .where(notifications.c.status.in_(HANDED_OVER))
        .group_by(notifications.c.case_id)
        .subquery()
    )
    rows = conn.execute(
        select(first.c.sent_at, first.c.sent_wall, events.c.occurred_at, events.c.received_wall)
        .join(cases, cases.c.id == first.c.case_id)
        .join(events, events.c.id == cases.c.event_id)
    ).all()
    sim = [(r.sent_at - r.occurred_at).total_seconds() for r in rows]
    wall = [(r.sent_wall - r.received_wall).total_seconds() for r in rows]
    return sim, wall


def summary(conn: Connection) -> Summary:
    s = Summary()
    for etype, n in conn.execute(select(events.c.type, func.count()).group_by(events.c.type)):
        s.events[etype] = n
    for program, state, n in conn.execute(
        select(cases.c.program_id, cases.c.state, func.count()).group_by(cases.c.program_id, cases.c.state)
    ):
        s.cases.setdefault(program, {})[state] = n
    for program, n, total in conn.execute(
        select(payments.c.program_id, func.count(), func.coalesce(func.sum(payments.c.amount), 0))
        .where(payments.c.status == "accepted")
        .group_by(payments.c.program_id)
    ):
        s.paid[program] = (n, int(total))
    for status, n in conn.execute(select(accounts.c.status, func.count()).group_by(accounts.c.status)):
        if status == "open":
            s.accounts_opened = n
        elif status == "refused":
            s.accounts_refused = n
    for kind, n in conn.execute(
        select(notifications.c.kind, func.count()).where(notifications.c.status.in_(HANDED_OVER)).group_by(notifications.c.kind)
    ):
        s.sms_by_kind[kind] = n
    s.sms_sent = sum(s.sms_by_kind.values())
    for status, outcome, n in conn.execute(
        select(inbound_sms.c.status, inbound_sms.c.outcome, func.count())
        .group_by(inbound_sms.c.status, inbound_sms.c.outcome)
    ):
        # Applied: what it said (yes, no, stop); refused or new: only how many.
        key = (outcome or "").split(":")[0] if status == "applied" else status
        s.replies[key] = s.replies.get(key, 0) + n
    n, total = conn.execute(
        select(func.count(), func.coalesce(func.sum(recovery_claims.c.amount), 0))
    ).one()
    s.recoveries = (n, int(total))
    sim, wall = first_sms_latencies(conn)
    s.latency_sim_hours = percentiles(sim, 1 / 3600)
    s.latency_wall_ms = percentiles(wall, 1000)
    return s


def _rows(conn: Connection, stmt: Any) -> list[dict[str, Any]]:
    return [dict(r._mapping) for r in conn.execute(stmt)]


def person(conn: Connection, fin: str) -> dict[str, Any]:
    """Everything haqq holds about one person, each part in time order."""
    case_rows = _rows(
        conn,
        select(cases, decisions.c.outcome, decisions.c.amount, decisions.c.branch, decisions.c.trace, decisions.c.legal_basis)
        .outerjoin(decisions, decisions.c.case_id == cases.c.id)
        .where((cases.c.beneficiary_fin == fin) | (cases.c.subject_fin == fin))
        .order_by(cases.c.created_at),
    )
    ids = [c["id"] for c in case_rows]
    steps: dict[str, list[dict[str, Any]]] = {}
    if ids:
        for t in _rows(conn, select(case_transitions).where(case_transitions.c.case_id.in_(ids)).order_by(case_transitions.c.id)):
            steps.setdefault(t["case_id"], []).append(t)
    for c in case_rows:
        c["transitions"] = steps.get(c["id"], [])
    return {
        "fin": fin,
        "events": _rows(conn, select(events).where(events.c.fin == fin).order_by(events.c.occurred_at)),
        "cases": case_rows,
        "entitlements": _rows(conn, select(entitlements).where((entitlements.c.fin == fin) | (entitlements.c.subject_fin == fin))),
        "payments": _rows(conn, select(payments).where(payments.c.fin == fin).order_by(payments.c.period_start)),
        "recoveries": _rows(conn, select(recovery_claims).where(recovery_claims.c.fin == fin)),
        "account": _rows(conn, select(accounts).where(accounts.c.fin == fin)),
        "notifications": _rows(conn, select(notifications).where(notifications.c.fin == fin).order_by(notifications.c.due_at)),
        # Consent given or refused, a benefit declined or stopped, a claim: when and how.
        "choices": _rows(conn, select(citizen_choices).where(citizen_choices.c.fin == fin).order_by(citizen_choices.c.at)),
        # With the message that carried the data: the data-exchange service, the official and
        # the provider's request hash (the proof of what was asked and answered).
        "data_access": _rows(conn, usage_query(fin)),
    }


def iso(value: Any) -> str:
    """A moment as people in Baku read it (a date or anything else as it is)."""
    if isinstance(value, datetime):
        return value.astimezone(BAKU).strftime("%Y-%m-%d %H:%M")
    return str(value)


def examples(conn: Connection) -> list[tuple[str, str]]:
    """A few people worth looking at after a replay: one per kind of story."""
    stories = [
        ("birth_benefit", "closed", "a parent paid the birth benefit"),
        ("disability_payment", "closed", "a person paid the disability payment monthly"),
        ("funeral_allowance", "declined", "a spouse or child who declined the funeral allowance by SMS"),
        ("funeral_allowance", "needs_review", "a case a caseworker must look at"),
    ]
    found = []
    for program, state, what in stories:
        fin = conn.execute(
            select(cases.c.beneficiary_fin)
            .where(cases.c.program_id == program, cases.c.state == state)
            .order_by(cases.c.id)
            .limit(1)
        ).scalar()
        if fin:
            found.append((fin, what))
    return found

