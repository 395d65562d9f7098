"""Set-wise reads and writes of the pipeline: one statement per step per batch.

Claims use ``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so several workers share the load without
stepping on each other; on SQLite the write lock taken by ``BEGIN IMMEDIATE`` does the same.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from datetime import date, datetime
from typing import Any, TypeVar

from sqlalchemy import (
    Connection,
    Table,
    and_,
    bindparam,
    exists,
    insert,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from haqq.adapters.store.schema import (
    TS,
    accounts,
    case_transitions,
    cases,
    data_access_log,
    decisions,
    entitlements,
    events,
    notifications,
    payments,
    recovery_claims,
)
from haqq.domain.cases import CaseState
from haqq.domain.events import EventType
from haqq.pipeline.work import CaseWork, Writes
from haqq.rules.catalogue import Catalogue

T = TypeVar("T")
CHUNK = 900


def chunks(items: Sequence[T], size: int = CHUNK) -> Iterator[Sequence[T]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def insert_ignore(
    conn: Connection, table: Table, rows: Sequence[dict[str, Any]], keys: Sequence[str]
) -> None:
    """Insert rows, skipping those whose unique ``keys`` are already present."""
    if not rows:
        return
    if conn.dialect.name == "postgresql":
        pstmt = pg_insert(table).on_conflict_do_nothing(index_elements=list(keys))
        conn.execute(pstmt, list(rows))
    else:
        sstmt = sqlite_insert(table).on_conflict_do_nothing(index_elements=list(keys))
        conn.execute(sstmt, list(rows))


def _locked(stmt: Any, conn: Connection, of: Table) -> Any:
    if conn.dialect.name == "postgresql":
        return stmt.with_for_update(skip_locked=True, of=of)
    return stmt


# --- claims ----------------------------------------------------------------------------------


def claim_cases(
    conn: Connection, catalogue: Catalogue, now: datetime, limit: int
) -> list[CaseWork]:
    stmt = (
        select(
            cases.c.id, cases.c.program_id, cases.c.state, cases.c.due_at, cases.c.event_id,
            cases.c.subject_fin, cases.c.beneficiary_fin, cases.c.created_at, cases.c.facts,
            cases.c.review_reason, cases.c.consent_answer, cases.c.reminders, cases.c.attempts,
            events.c.type, events.c.payload, events.c.occurred_at,
            decisions.c.outcome, decisions.c.amount,
        )
        .join(events, events.c.id == cases.c.event_id)
        .outerjoin(decisions, decisions.c.case_id == cases.c.id)
        .where(cases.c.due_at <= now)
        .order_by(cases.c.due_at)
        .limit(limit)
    )
    rows = conn.execute(_locked(stmt, conn, cases)).all()
    return [
        CaseWork(
            id=r.id,
            program=catalogue[r.program_id],
            state=CaseState(r.state),
            due_at=r.due_at,
            event_id=r.event_id,
            event_type=EventType(r.type),
            event_payload=r.payload,
            occurred_at=r.occurred_at,
            subject_fin=r.subject_fin,
            beneficiary_fin=r.beneficiary_fin,
            created_at=r.created_at,
            facts=r.facts,
            review_reason=r.review_reason,
            consent_answer=r.consent_answer,
            reminders=r.reminders,
            attempts=r.attempts,
            decision=None if r.outcome is None else {"outcome": r.outcome, "amount": r.amount},
        )
        for r in rows
    ]


# --- lookups ---------------------------------------------------------------------------------


class Lookup:
    """Read-only, set-wise questions the steps ask of the store within the batch's transaction."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def _in(self, column: Any, values: Iterable[Any], *cols: Any) -> list[Any]:
        ordered = sorted(set(values))
        out: list[Any] = []
        for part in chunks(ordered):
            out.extend(self.conn.execute(select(*cols).where(column.in_(part))).all())
        return out

    def existing_entitlements(self, keys: Iterable[tuple[str, str]]) -> set[tuple[str, str]]:
        by_program: dict[str, set[str]] = defaultdict(set)
        for program_id, key in keys:
            by_program[program_id].add(key)
        found: set[tuple[str, str]] = set()
        for program_id, once in by_program.items():
            for part in chunks(sorted(once)):
                rows = self.conn.execute(
                    select(entitlements.c.once_key).where(
                        entitlements.c.program_id == program_id,
                        entitlements.c.once_key.in_(part),
                    )
                )
                found.update((program_id, k) for (k,) in rows)
        return found

    def account_status(self, fins: Iterable[str]) -> dict[str, str]:
        rows = self._in(accounts.c.fin, fins, accounts.c.fin, accounts.c.status)
        return {r.fin: r.status for r in rows}

    def ibans(self, fins: Iterable[str]) -> dict[str, str]:
        rows = self._in(accounts.c.fin, fins, accounts.c.fin, accounts.c.iban)
        return {r.fin: r.iban for r in rows if r.iban}

    def opened_accounts(self, fins: Iterable[str]) -> set[str]:
        rows = self._in(accounts.c.fin, fins, accounts.c.fin, accounts.c.status)
        return {r.fin for r in rows if r.status == "open"}

    def entitlement_status(self, ids: Iterable[str]) -> dict[str, str]:
        rows = self._in(entitlements.c.id, ids, entitlements.c.id, entitlements.c.status)
        return {r.id: r.status for r in rows}


# --- writes ----------------------------------------------------------------------------------

_CASE_UPDATE = (
    update(cases)
    .where(cases.c.id == bindparam("b_id"))
    .values(
        state=bindparam("b_state"),
        due_at=bindparam("b_due_at"),
        updated_at=bindparam("b_updated_at"),
        review_reason=bindparam("b_review_reason"),
        consent_answer=bindparam("b_consent_answer"),
        reminders=bindparam("b_reminders"),
        attempts=bindparam("b_attempts"),
    )
)


def flush(conn: Connection, batch: Sequence[CaseWork], writes: Writes, now: datetime) -> None:
    """Write everything a batch produced. The caller's transaction makes it all-or-nothing."""
    # Entitlements first: their unique key is the guard against paying twice.
    if writes.entitlements:
        conn.execute(insert(entitlements), writes.entitlements)
    changed = [c for c in batch if c.changed]
    if changed:
        conn.execute(
            _CASE_UPDATE,
            [
                {
                    "b_id": c.id,
                    "b_state": c.state.value,
                    "b_due_at": c.due_at,
                    "b_updated_at": now,
                    "b_review_reason": c.review_reason,
                    "b_consent_answer": c.consent_answer,
                    "b_reminders": c.reminders,
                    "b_attempts": c.attempts,
                }
                for c in changed
            ],
        )
    with_facts = [c for c in batch if c.facts_changed]
    if with_facts:
        conn.execute(
            update(cases).where(cases.c.id == bindparam("b_id")).values(facts=bindparam("b_facts")),
            [{"b_id": c.id, "b_facts": c.facts} for c in with_facts],
        )
    for table, rows in (
        (case_transitions, writes.transitions),
        (decisions, writes.decisions),
        (data_access_log, writes.access_log),
    ):
        if rows:
            conn.execute(insert(table), rows)
    insert_ignore(conn, accounts, writes.accounts, ["fin"])
    insert_ignore(conn, payments, writes.payments, ["key"])
    insert_ignore(conn, notifications, writes.notifications, ["key"])
    _apply_stops(conn, writes.stops, now)


def _apply_stops(conn: Connection, stops: Sequence[dict[str, Any]], now: datetime) -> None:
    activate = [{"b_id": s["case_id"]} for s in stops if s["kind"] == "activate"]
    if activate:
        conn.execute(
            update(entitlements)
            .where(entitlements.c.id == bindparam("b_id"), entitlements.c.status == "pending")
            .values(status="active"),
            activate,
        )
    declines = [{"b_id": s["case_id"], "b_reason": s["reason"]} for s in stops if s["kind"] == "decline"]
    if declines:
        conn.execute(
            update(entitlements)
            .where(entitlements.c.id == bindparam("b_id"))
            .values(status="declined", ended_reason=bindparam("b_reason")),
            declines,
        )
    for stop in (s for s in stops if s["kind"] == "end"):
        end_stop(conn, stop["fin"], stop["end_date"], stop["programs"], stop["reason"], now)


def end_stop(
    conn: Connection,
    fin: str,
    end_date: date,
    programs: Sequence[str] | None,
    reason: str,
    now: datetime,
) -> None:
    """End a person's live entitlements at ``end_date``; cancel or claim back later periods."""
    owned = or_(entitlements.c.fin == fin, entitlements.c.subject_fin == fin)
    scope = and_(owned, entitlements.c.status.in_(("pending", "active")))
    if programs is not None:
        scope = and_(scope, entitlements.c.program_id.in_(programs))
    ids = [r for (r,) in conn.execute(select(entitlements.c.id).where(scope))]
    if not ids:
        return
    conn.execute(
        update(entitlements)
        .where(entitlements.c.id.in_(ids))
        .values(status="ended", end_date=end_date, ended_reason=reason)
    )
    later = and_(
        payments.c.entitlement_id.in_(ids),
        payments.c.period != "lump",
        payments.c.period_start > end_date,
    )
    conn.execute(
        update(payments)
        .where(later, payments.c.status == "scheduled")
        .values(status="cancelled", reason=reason)
    )
    conn.execute(
        insert(recovery_claims).from_select(
            ["payment_id", "fin", "amount", "reason", "status", "created_at"],
            select(
                payments.c.id,
                payments.c.fin,
                payments.c.amount,
                literal(reason),
                literal("open"),
                literal(now, TS),
            ).where(
                later,
                payments.c.status == "accepted",
                ~exists().where(recovery_claims.c.payment_id == payments.c.id),
            ),
        )
    )
