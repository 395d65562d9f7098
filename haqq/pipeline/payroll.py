"""Payroll: the monthly payments of every active monthly entitlement, set-wise.

Run once per month (recorded in ``payroll_runs``); the unique (entitlement, period) key and the
NOT EXISTS guard make a re-run harmless.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import Connection, and_, exists, insert, literal, or_, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert

from haqq.adapters.store.repository import insert_ignore, skip_locked
from haqq.adapters.store.schema import TS, accounts, entitlements, payments, payroll_runs
from haqq.pipeline.pay import period_due


def run_month(conn: Connection, period: date, now: datetime) -> int | None:
    """Create the payments for ``period`` (a month's first day); returns how many (None: another
    worker is running this month's payroll)."""
    label = period.strftime("%Y-%m")
    if conn.dialect.name == "postgresql" and not conn.execute(
        # One worker runs a month's payroll; another that finds it running leaves it (it would
        # only compute the same payments and lose on their unique key).
        text("SELECT pg_try_advisory_xact_lock(hashtext('haqq payroll ' || :label))"),
        {"label": label},
    ).scalar_one():
        return None
    claimed = conn.execute(
        skip_locked(select(payroll_runs.c.period).where(payroll_runs.c.period == label), conn, payroll_runs)
    ).first()
    if claimed is not None:
        return 0
    e = entitlements
    query = (
        select(
            literal("pay:") + e.c.id + literal(":" + label),
            e.c.id,
            e.c.id,
            e.c.fin,
            e.c.program_id,
            literal(label),
            literal(period),
            e.c.amount,
            literal(period_due(period), TS),
            literal("scheduled"),
            accounts.c.iban,
            literal("payroll"),
        )
        .select_from(e.outerjoin(accounts, accounts.c.fin == e.c.fin))
        .where(
            e.c.schedule == "monthly",
            # An entitlement ended this month (a death, a status ended) is still owed the month.
            e.c.status.in_(("active", "ended")),
            e.c.start_date < period,
            or_(e.c.end_date.is_(None), e.c.end_date >= period),
        )
    )
    columns = ["key", "entitlement_id", "case_id", "fin", "program_id", "period", "period_start",
               "amount", "due_at", "status", "iban", "source"]
    if conn.dialect.name == "postgresql":
        # The unique (entitlement, period) key skips a month already paid. A NOT EXISTS on the
        # table being filled can be planned as a scan of it per row, quadratic in the payroll.
        stmt: Any = pg_insert(payments).from_select(columns, query).on_conflict_do_nothing(
            index_elements=["entitlement_id", "period"]
        )
    else:
        stmt = insert(payments).from_select(columns, query.where(
            ~exists().where(and_(payments.c.entitlement_id == e.c.id, payments.c.period == label))
        ))
    if conn.dialect.name == "postgresql":
        # Through the driver: SQLAlchemy reports no row count for INSERT … SELECT on psycopg
        # (the values are a date and an aware time, which psycopg binds as they are).
        compiled = stmt.compile(dialect=conn.dialect, compile_kwargs={"render_postcompile": True})
        count = conn.exec_driver_sql(str(compiled), compiled.params).rowcount
    else:
        count = conn.execute(stmt).rowcount
    count = max(count or 0, 0)
    insert_ignore(conn, payroll_runs, [{"period": label, "run_at": now, "payments": count}], ["period"])
    return count
