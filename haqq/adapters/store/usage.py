"""Who read one person's data: the set-wise read behind the Data Tracker (``findUsage``).

One row per entry of ``data_access_log`` (a person x a message x a case) with the message that
carried the data from ``message_log``: the data-exchange service, the client, the official (or
``haqq``), the provider's request hash and the outcome. ``haqq person`` (:func:`haqq.adapters.store.reports.person`) reads the
same query unpaged.

The join takes, for each access-log row, the first message-log entry with its message id (the
lowest ``seq``), so a message id logged twice can never duplicate a row or skew a page; a row
whose message is missing from the log still comes back, with the message's fields ``None``.
Read-only; works on SQLite and PostgreSQL.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, Select, func, select

from haqq.adapters.store.schema import data_access_log, message_log
from haqq.domain.errors import HaqqError, NaiveDatetime


class InvalidPage(HaqqError):
    """An offset below 0 or a limit below 1."""


@dataclass(frozen=True, slots=True)
class UsageRow:
    """One record read about a person, with the message that carried it."""

    id: int
    fin: str
    #: When the data was read, on haqq's clock (the pipeline's moment for the case).
    at: datetime
    #: The host's wall clock at the same moment.
    wall_at: datetime
    institution: str
    #: The port's service, ``institution/service`` (e.g. ``civil_registry/person``).
    service: str
    message_id: str
    case_id: str | None
    event_id: int | None
    requester: str
    purpose: str
    legal_basis: str
    #: From ``message_log`` (``None`` when the message is not in the log).
    xroad_service: str | None
    client: str | None
    user_id: str | None
    issue: str | None
    request_hash: str | None
    outcome: str | None


def _where(fin: str, since: datetime | None, until: datetime | None) -> list[ColumnElement[bool]]:
    conds: list[ColumnElement[bool]] = [data_access_log.c.fin == fin]
    if since is not None:
        if since.tzinfo is None:
            raise NaiveDatetime("the start of the period")
        conds.append(data_access_log.c.at >= since)
    if until is not None:
        if until.tzinfo is None:
            raise NaiveDatetime("the end of the period")
        conds.append(data_access_log.c.at <= until)
    return conds


def count_usage(
    conn: Connection, fin: str, *, since: datetime | None = None, until: datetime | None = None
) -> int:
    """How many records were read about ``fin`` in the period (both ends included)."""
    stmt = select(func.count()).select_from(data_access_log).where(*_where(fin, since, until))
    return int(conn.execute(stmt).scalar_one())


def usage_query(
    fin: str,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    offset: int | None = None,
    limit: int | None = None,
) -> Select[Any]:
    """The records read about ``fin`` (from ``since`` to ``until``, both included, either
    open), with the message that carried each, in time order then id; a page when ``offset``
    or ``limit`` is given."""
    dal = data_access_log
    page = select(dal).where(*_where(fin, since, until)).order_by(dal.c.at, dal.c.id)
    if offset:
        page = page.offset(offset)
    if limit is not None:
        page = page.limit(limit)
    rows = page.subquery("page")
    first = message_log.alias("first")
    first_seq = (
        select(func.min(first.c.seq))
        .where(first.c.message_id == rows.c.message_id)
        .scalar_subquery()
    )
    ml = message_log
    return (
        select(
            rows,
            ml.c.service.label("xroad_service"),
            ml.c.client,
            ml.c.user_id,
            ml.c.issue,
            ml.c.request_hash,
            ml.c.outcome,
        )
        .select_from(rows.outerjoin(ml, ml.c.seq == first_seq))
        .order_by(rows.c.at, rows.c.id)
    )


def find_usage(
    conn: Connection,
    fin: str,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    offset: int = 0,
    limit: int = 1000,
) -> tuple[list[UsageRow], int]:
    """One page of the records read about ``fin`` from ``since`` to ``until`` (both included,
    either open), in time order then id; and how many there are in the period in all."""
    if offset < 0 or limit < 1:
        raise InvalidPage(f"offset must be >= 0 and limit >= 1, not offset={offset}, limit={limit}")
    total = count_usage(conn, fin, since=since, until=until)
    if total <= offset:
        return [], total
    stmt = usage_query(fin, since=since, until=until, offset=offset, limit=limit)
    return [UsageRow(**dict(r._mapping)) for r in conn.execute(stmt)], total
