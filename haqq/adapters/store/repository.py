"""Set-wise reads and writes of the pipeline: one statement per step per batch.

Claims use ``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so several workers share the load without
stepping on each other. On SQLite the write lock taken by ``BEGIN IMMEDIATE`` serializes a lone
worker's units; several workers each take a shard and write guarded (see ``prepare_flush``).
"""

from __future__ import annotations

import zlib
from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from datetime import date, datetime
from functools import lru_cache
from typing import Any, TypeVar

from sqlalchemy import (
    Connection,
    Table,
    and_,
    bindparam,
    exists,
    func,
    literal_column,
    or_,
    select,
    text,
)

from haqq.adapters.store import bulk, messagelog
from haqq.adapters.store.schema import (
    accounts,
    case_transitions,
    cases,
    data_access_log,
    decisions,
    entitlements,
    events,
    inbound_sms,
    notifications,
    payment_files,
    payment_runs,
    payments,
    payroll_runs,
    sms_receipts,
)
from haqq.adapters.store.schema import stops as stops_table
from haqq.domain.cases import CaseState
from haqq.domain.errors import HaqqError
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
) -> int:
    """Insert rows, skipping those whose unique ``keys`` are already present."""
    return bulk.insert_rows(conn, table, rows, on_conflict_ignore=keys)


def skip_locked(stmt: Any, conn: Connection, of: Table) -> Any:
    """Claim the selected rows: locked for this transaction, skipped by other workers."""
    if conn.dialect.name == "postgresql":
        return stmt.with_for_update(skip_locked=True, of=of)
    return stmt


# --- claims ----------------------------------------------------------------------------------


class ClaimLost(HaqqError):
    """Work read outside the write lock was taken or changed by another writer before it was
    written: nothing of it is written, and the next round reads again."""


def claim_cases(
    conn: Connection,
    catalogue: Catalogue,
    now: datetime,
    limit: int,
    shard: tuple[int, int] | None = None,
    *,
    others: bool = False,
) -> list[CaseWork]:
    """Cases due by ``now``, oldest first (claimed on PostgreSQL); with ``shard`` ``(i, n)``,
    only the cases of events whose id is ``i`` modulo ``n``, or with ``others`` those of the
    other shards, newest first and beyond their owners' next batch (a worker done with its own
    shard helping from the far end of the others' queues)."""
    stmt = (
        select(
            cases.c.id, cases.c.program_id, cases.c.state, cases.c.due_at, cases.c.event_id,
            cases.c.subject_fin, cases.c.beneficiary_fin, cases.c.created_at, cases.c.facts,
            cases.c.review_reason, cases.c.consent_answer, cases.c.reminders, cases.c.attempts,
            cases.c.version, events.c.type, events.c.occurred_at,
            decisions.c.outcome, decisions.c.amount,
        )
        .join(events, events.c.id == cases.c.event_id)
        .outerjoin(decisions, decisions.c.case_id == cases.c.id)
        .where(cases.c.due_at <= now)
        .order_by(cases.c.due_at.desc() if others else cases.c.due_at)
        .limit(limit)
    )
    if shard is not None:
        mine = cases.c.event_id % shard[1] == shard[0]
        stmt = stmt.where(~mine if others else mine)
        if others:
            # Leave the owners their next batch (the oldest): help only beyond it, so the two
            # do not work on the same cases (the later write would lose).
            boundary = conn.execute(
                select(cases.c.due_at).where(cases.c.due_at <= now, ~mine)
                .order_by(cases.c.due_at).offset(limit - 1).limit(1)
            ).scalar()
            if boundary is None:
                return []
            stmt = stmt.where(cases.c.due_at > boundary)
    rows = conn.execute(skip_locked(stmt, conn, cases)).all()
    return [
        CaseWork(
            id=r.id,
            program=catalogue[r.program_id],
            state=CaseState(r.state),
            due_at=r.due_at,
            event_id=r.event_id,
            event_type=EventType(r.type),
            occurred_at=r.occurred_at,
            subject_fin=r.subject_fin,
            beneficiary_fin=r.beneficiary_fin,
            created_at=r.created_at,
            facts=r.facts,
            review_reason=r.review_reason,
            consent_answer=r.consent_answer,
            reminders=r.reminders,
            attempts=r.attempts,
            version=r.version,
            decision=None if r.outcome is None else {"outcome": r.outcome, "amount": r.amount},
        )
        for r in rows
    ]


def account_status(status: str) -> tuple[Any, Any]:
    """``accounts.status = status`` for a status awaiting the bank, said so that SQLite's
    planner sees its partial index applies (it cannot infer ``IN (…)`` from ``=``)."""
    # Literals: the planner matches the index's predicate only to a term written the same way.
    pending: list[Any] = [literal_column(f"'{s}'") for s in ("requested", "sent")]
    return accounts.c.status == status, accounts.c.status.in_(pending)


def due_kinds(conn: Connection, now: datetime, month: str, daily_run: str | None = None) -> set[str]:
    """Which kinds of stored work are due at ``now``, in one cheap read.

    ``events``, ``cases``, ``account_requests`` (to send), ``account_answers`` (awaited),
    ``payments``, ``sms``, ``replies``, and ``payroll`` when ``month`` has no run yet. With
    ``daily_run`` (payments go in runs: the label of today's daily run), ``payments`` is due
    only while today's run is not made, ``approved_runs`` while an approved run waits to be
    sent, ``bank_reports`` while payments await the bank's status
    or settlement, and ``deliveries`` while sent files wait to be handed to the bank.
    """
    names, statement = _due_statement(daily_run is not None)
    values = {"now": now, "month": month, "daily_run": daily_run or ""}
    row = conn.execute(statement, values).one()
    due = {name for name, value in zip(names, row, strict=True) if value}
    return due ^ {"payroll"}  # payroll is due when the month has *no* run yet


@lru_cache(maxsize=2)
def _due_statement(runs: bool) -> tuple[tuple[str, ...], Any]:
    """The query of :func:`due_kinds`, built once (workers ask it every round): its moment,
    month and daily run label are bound parameters."""

    def earliest(column: Any, *where: Any) -> Any:
        # The first due moment through the partial index, compared with ``now``: an EXISTS with
        # ``due_at <= now`` lets the planner pick a sequential scan over resting rows.
        first = select(column).where(column.is_not(None), *where).order_by(column).limit(1)
        return func.coalesce(first.scalar_subquery() <= bindparam("now", type_=column.type), False)

    month = bindparam("month", type_=payroll_runs.c.period.type)
    daily_run = bindparam("daily_run", type_=payment_runs.c.label.type)
    checks = {
        "events": earliest(events.c.received_at, events.c.status == "received"),
        "cases": earliest(cases.c.due_at),
        "account_requests": exists(select(accounts.c.fin).where(*account_status("requested"))),
        "account_answers": exists(select(accounts.c.fin).where(*account_status("sent"))),
        "payments": earliest(payments.c.due_at, payments.c.status == "scheduled")
        if not runs
        else and_(
            earliest(payments.c.due_at, payments.c.status == "scheduled"),
            ~exists(select(payment_runs.c.id).where(payment_runs.c.label == daily_run)),
        ),
        "sms": earliest(notifications.c.due_at, notifications.c.status == "pending"),
        "replies": exists(select(inbound_sms.c.id).where(inbound_sms.c.status == "new")),
        "receipts": exists(select(sms_receipts.c.id).where(sms_receipts.c.state == "new")),
        "payroll": exists(select(payroll_runs.c.period).where(payroll_runs.c.period == month)),
    }
    if runs:
        checks["approved_runs"] = exists(select(payment_runs.c.id).where(payment_runs.c.status == "approved"))
        checks["bank_reports"] = exists(select(payment_runs.c.id).where(payment_runs.c.status == "sent"))
        checks["deliveries"] = exists(select(payment_files.c.id).where(
            payment_files.c.direction == "out", payment_files.c.delivered_at.is_(None)))
    return tuple(checks), select(*(q.label(name) for name, q in checks.items()))


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

    def account_status(self, fins: Iterable[str]) -> dict[str, tuple[str, datetime | None]]:
        """Each known account's status and when the bank answered (None: not yet)."""
        rows = self._in(accounts.c.fin, fins, accounts.c.fin, accounts.c.status, accounts.c.answered_at)
        return {r.fin: (r.status, r.answered_at) for r in rows}

    def ibans(self, fins: Iterable[str]) -> dict[str, str]:
        rows = self._in(accounts.c.fin, fins, accounts.c.fin, accounts.c.iban)
        return {r.fin: r.iban for r in rows if r.iban}

    def opened_accounts(self, fins: Iterable[str]) -> set[str]:
        rows = self._in(accounts.c.fin, fins, accounts.c.fin, accounts.c.status)
        return {r.fin for r in rows if r.status == "open"}

    def entitlement_status(self, ids: Iterable[str]) -> dict[str, str]:
        rows = self._in(entitlements.c.id, ids, entitlements.c.id, entitlements.c.status)
        return {r.id: r.status for r in rows}

    def entitlement_ends(self, ids: Iterable[str]) -> dict[str, date]:
        """The end dates set on these entitlements (by a stop, or the law's last day)."""
        rows = self._in(entitlements.c.id, ids, entitlements.c.id, entitlements.c.end_date)
        return {r.id: r.end_date for r in rows if r.end_date is not None}


# --- writes ----------------------------------------------------------------------------------

def _case_row(c: CaseWork, now: datetime) -> dict[str, Any]:
    return {
        "state": c.state.value,
        "due_at": c.due_at,
        "updated_at": now,
        "review_reason": c.review_reason,
        "consent_answer": c.consent_answer,
        "reminders": c.reminders,
        "attempts": c.attempts,
        "version": c.version,
        "id": c.id,
    }


def flush(conn: Connection, batch: Sequence[CaseWork], writes: Writes, now: datetime) -> None:
    """Write everything a batch produced. The caller's transaction makes it all-or-nothing."""
    prepare_flush(conn.dialect.name, batch, writes, now)(conn)


def prepare_flush(
    dialect: str, batch: Sequence[CaseWork], writes: Writes, now: datetime
) -> Callable[[Connection], None]:
    """:func:`flush` in two halves: the rows are converted now, written when the result is
    called (in the caller's transaction)."""
    changed = [_case_row(c, now) for c in batch if c.changed and not c.facts_changed]
    gathered = [{**_case_row(c, now), "facts": c.facts} for c in batch if c.facts_changed]
    # Entitlements first: their unique key is the guard against paying twice.
    entitle = bulk.prepare_insert(dialect, entitlements, writes.entitlements)
    # Two statements: every row of one statement sets the same columns. Each writes a case
    # only at the version it was read at, and raises it.
    moves = [
        bulk.prepare_update(dialect, cases, "id", changed, bump="version"),
        bulk.prepare_update(dialect, cases, "id", gathered, bump="version"),
    ]
    expected = len(changed) + len(gathered)
    rest = [
        bulk.prepare_insert(dialect, case_transitions, writes.transitions),
        bulk.prepare_insert(dialect, decisions, writes.decisions),
        bulk.prepare_insert(dialect, data_access_log, one_per_use(writes.access_log)),
        bulk.prepare_insert(dialect, accounts, writes.accounts, on_conflict_ignore=["fin"]),
        bulk.prepare_insert(dialect, payments, writes.payments, on_conflict_ignore=["key"]),
        bulk.prepare_insert(dialect, notifications, writes.notifications, on_conflict_ignore=["key"]),
    ]
    stops = list(writes.stops)
    new_rights = list(writes.entitlements)
    messages = list(writes.messages)
    ending = [s["fin"] for s in stops if s["kind"] == "end"]
    # Stops and new rights of the same people take turns (PostgreSQL; SQLite's write lock
    # already serializes the writes), so neither misses the other.
    people = _people_of(new_rights)

    def write(conn: Connection) -> None:
        lock_people(conn, shared=people, exclusive=ending)
        entitle(conn)
        written = sum(move(conn) for move in moves)
        if written != expected:
            raise ClaimLost(f"{expected - written} of {expected} cases were written meanwhile")
        for step in rest:
            step(conn)
        _apply_stops(conn, stops, now)
        hold_to_stops(conn, new_rights, now)
        # Last: the chain's head is locked until the commit, so keep that short.
        messagelog.append(conn, messages)

    return write


def one_per_use(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One log row per person, message and case: a message read again for a case it served
    is logged against that case only once, and a row naming a case supersedes one that doesn't."""
    served = {(r["fin"], r["message_id"]) for r in rows if r["case_id"] is not None}
    seen: set[tuple[str, str, str | None]] = set()
    out = []
    for r in rows:
        key = (r["fin"], r["message_id"], r["case_id"])
        if key in seen or (r["case_id"] is None and key[:2] in served):
            continue
        seen.add(key)
        out.append(r)
    return out


#: PostgreSQL advisory-lock space of people's rights (``pg_advisory_xact_lock(key, bucket)``).
_PEOPLE_LOCKS = 0x68617171  # "haqq"
#: People are locked by bucket, so a batch holds at most this many locks.
_PEOPLE_BUCKETS = 256


def _people_of(rights: Iterable[dict[str, Any]]) -> list[str]:
    """The people a stop of whom would end these rights: each beneficiary, and the subject of
    a recurring right paid to someone else (see :func:`end_rights`)."""
    people: set[str] = set()
    for right in rights:
        people.add(right["fin"])
        if right["schedule"] == "monthly" and right["subject_fin"] != right["fin"]:
            people.add(right["subject_fin"])
    return sorted(people)


def lock_people(conn: Connection, *, shared: Iterable[str] = (), exclusive: Iterable[str] = ()) -> None:
    """On PostgreSQL, until the transaction ends: a shared lock on the people whose new rights
    it writes, an exclusive one on those whose rights it stops. A stop and a new right of the
    same person then never commit unseen by each other (each reads the other's committed rows
    once it has its lock). Locks are taken by bucket, in order, so two writers never deadlock
    on them. SQLite's write lock already serializes every write: nothing to do there."""
    if conn.dialect.name != "postgresql":
        return
    wanted: dict[int, bool] = {}
    for fin in shared:
        wanted.setdefault(zlib.crc32(fin.encode()) % _PEOPLE_BUCKETS, False)
    for fin in exclusive:
        wanted[zlib.crc32(fin.encode()) % _PEOPLE_BUCKETS] = True
    if not wanted:
        return
    buckets = sorted(wanted)
    conn.execute(
        text(
            "SELECT CASE WHEN x.excl THEN pg_advisory_xact_lock(:space, x.b)::text "
            "ELSE pg_advisory_xact_lock_shared(:space, x.b)::text END "
            "FROM (SELECT b, excl FROM unnest(CAST(:buckets AS int[]), CAST(:excl AS bool[])) "
            "AS u(b, excl) ORDER BY b) AS x"
        ),
        {"space": _PEOPLE_LOCKS, "buckets": buckets, "excl": [wanted[b] for b in buckets]},
    ).all()


def hold_to_stops(conn: Connection, rights: Sequence[dict[str, Any]], now: datetime) -> None:
    """End new rights (just written) that a stop applied earlier ends: a grant decided after a
    death or a status's end was handled, on data as of before it (events handled out of
    order). The rights end as if the stop had come after them: at its date, later periods
    cancelled. A right that began after the stop's date stands."""
    if not rights:
        return
    people = _people_of(rights)
    found: list[Any] = []
    for part in chunks(people):
        found.extend(conn.execute(
            select(stops_table.c.case_id, stops_table.c.fin, stops_table.c.end_date,
                   stops_table.c.programs, stops_table.c.reason)
            .where(stops_table.c.fin.in_(part))
        ).all())
    if found:
        end_rights(
            conn,
            [{"kind": "end", **r._mapping} for r in found],
            now,
            only={r["id"] for r in rights},
            record=False,
        )


def _apply_stops(conn: Connection, stops: Sequence[dict[str, Any]], now: datetime) -> None:
    bulk.update_rows(
        conn,
        entitlements,
        "id",
        [{"status": "active", "id": s["case_id"]} for s in stops if s["kind"] == "activate"],
    )
    bulk.update_rows(
        conn,
        entitlements,
        "id",
        [
            {"status": "declined", "ended_reason": s["reason"], "id": s["case_id"]}
            for s in stops
            if s["kind"] == "decline"
        ],
    )
    end_rights(conn, [s for s in stops if s["kind"] == "end"], now)


def end_rights(
    conn: Connection,
    stops: Sequence[dict[str, Any]],
    now: datetime,
    *,
    only: Collection[str] | None = None,
    record: bool = True,
) -> None:
    """End people's live entitlements at their end dates; cancel or claim back later periods.

    Each stop names a person (``fin``), an ``end_date``, the ``programs`` it ends (None: all),
    a ``reason`` and the ``case_id`` it comes from. A person's own entitlements end, and
    recurring ones paid to someone else for them (a child's disability payment to a guardian);
    a lump sum *about* them (the funeral allowance, a birth benefit) stands, and so does a right
    that began after the stop's date (a status granted again after it ended). Set-wise: one
    query finds every affected entitlement. ``only``: these entitlements and no others.
    ``record``: keep the stops (in ``stops``), to be held against rights written later.
    """
    if not stops:
        return
    if record:
        bulk.insert_rows(conn, stops_table, [
            {"case_id": s["case_id"], "fin": s["fin"], "end_date": s["end_date"],
             "programs": s["programs"], "reason": s["reason"], "applied_at": now}
            for s in stops
        ])
    by_fin: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for stop in sorted(stops, key=lambda s: s["end_date"]):
        by_fin[stop["fin"]].append(stop)
    fins = sorted(by_fin)
    live: list[Any] = []
    for part in chunks(fins):
        live.extend(
            conn.execute(
                select(entitlements.c.id, entitlements.c.fin, entitlements.c.subject_fin,
                       entitlements.c.schedule, entitlements.c.program_id, entitlements.c.start_date)
                .where(
                    entitlements.c.status.in_(("pending", "active")),
                    or_(entitlements.c.fin.in_(part), entitlements.c.subject_fin.in_(part)),
                )
            ).all()
        )
    ended: list[dict[str, Any]] = []
    for row in live:
        if only is not None and row.id not in only:
            continue
        candidates = list(by_fin.get(row.fin, []))
        if row.schedule == "monthly" and row.subject_fin != row.fin:
            candidates += by_fin.get(row.subject_fin, [])
        applicable = [
            s for s in candidates
            if (s["programs"] is None or row.program_id in s["programs"]) and row.start_date <= s["end_date"]
        ]
        if not applicable:
            continue
        stop = min(applicable, key=lambda s: s["end_date"])
        ended.append({"status": "ended", "end_date": stop["end_date"], "ended_reason": stop["reason"], "id": row.id})
    if not ended:
        return
    bulk.update_rows(conn, entitlements, "id", ended)
    mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    later = (
        f"entitlement_id = {mark} AND period <> 'lump' AND period_start > {mark}"
    )
    sqlite = conn.dialect.name == "sqlite"

    def day(d: date) -> date | str:
        return d.isoformat() if sqlite else d

    stamp = bulk._sqlite_time(now) if sqlite else now
    conn.exec_driver_sql(
        # Not yet at the bank: cancelled (a queued payment leaves its unsent run's file).
        f"UPDATE payments SET status = 'cancelled', reason = {mark} WHERE {later} "
        "AND status IN ('scheduled', 'queued', 'held', 'rejected')",
        [(e["ended_reason"], e["id"], day(e["end_date"])) for e in ended],
    )
    conn.exec_driver_sql(
        "INSERT INTO recovery_claims (payment_id, fin, amount, reason, status, created_at) "
        f"SELECT id, fin, amount, {mark}, 'open', {mark} FROM payments WHERE {later} "
        "AND status = 'accepted' AND NOT EXISTS "
        "(SELECT 1 FROM recovery_claims r WHERE r.payment_id = payments.id)",
        [(e["ended_reason"], stamp, e["id"], day(e["end_date"])) for e in ended],
    )
