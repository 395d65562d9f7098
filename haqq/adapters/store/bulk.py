"""Bulk writes at driver speed: one ``executemany`` per table, values converted once.

SQLAlchemy Core processes every bound value through its type system; for the hundreds of
thousands of rows a replay writes (transitions, the data-access log) that costs more than the
database does. These helpers render the statement once per table and dialect and hand plain
tuples to the driver. Values are converted exactly as the column types would: aware datetimes
to UTC, JSON to text.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, date, datetime
from functools import cache, lru_cache
from operator import itemgetter
from typing import Any

import orjson
from sqlalchemy import JSON, Boolean, Connection, Date, Integer, Table
from sqlalchemy.types import TypeEngine

from haqq.adapters.store.schema import UtcDateTime
from haqq.domain.errors import NaiveDatetime

Convert = Callable[[Any], Any] | None


@lru_cache(maxsize=65_536)
def _sqlite_text(value: datetime) -> str:
    if value.tzinfo is None:
        raise NaiveDatetime("a stored time")
    # The very text SQLAlchemy's SQLite DATETIME writes, so comparisons in SQL agree.
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")


def _sqlite_time(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is UTC:  # the common case: times read from the store are UTC already
        return value.isoformat(" ", "microseconds")[:26]
    return _sqlite_text(value)


def _pg_time(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        raise NaiveDatetime("a stored time")
    return value


def _sqlite_date(value: date | None) -> str | None:
    return None if value is None else value.isoformat()


def _json_text(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value).decode()


def _pg_json(value: Any) -> Any:
    from psycopg.types.json import Json

    return None if value is None else Json(value, dumps=lambda v: orjson.dumps(v).decode())


def _converter(dialect: str, column_type: TypeEngine[Any]) -> Convert:
    sqlite = dialect == "sqlite"
    if isinstance(column_type, UtcDateTime):
        return _sqlite_time if sqlite else _pg_time
    if isinstance(column_type, JSON):
        return _json_text if sqlite else _pg_json
    if isinstance(column_type, Date):
        return _sqlite_date if sqlite else None
    return None


@cache
def _plan(
    dialect: str, table: Table, columns: tuple[str, ...], conflict: tuple[str, ...] | None, mark: str
) -> tuple[str, tuple[Convert, ...]]:
    names = ", ".join(columns)
    marks = ", ".join([mark] * len(columns))
    sql = f"INSERT INTO {table.name} ({names}) VALUES ({marks})"
    if conflict is not None:
        sql += f" ON CONFLICT ({', '.join(conflict)}) DO NOTHING"
    return sql, tuple(_converter(dialect, table.c[c].type) for c in columns)


def values(
    plan: Sequence[Convert], columns: Sequence[str], rows: Sequence[dict[str, Any]]
) -> list[Any]:
    """Rows as driver parameters, converting only the columns that need it."""
    get = itemgetter(*columns)
    converting = [(i, f) for i, f in enumerate(plan) if f is not None]
    if len(columns) == 1:
        only = converting[0][1] if converting else None
        return [(only(get(r)) if only else get(r),) for r in rows]
    if not converting:
        return [get(r) for r in rows]
    # A batch stamps many rows with the very same few moments: convert each object once. Keyed
    # by identity (hashing an aware datetime asks its zone for the offset): every object stays
    # alive in ``rows`` during the call, so an id cannot be reused.
    memos: list[tuple[int, Callable[[Any], Any], dict[int, Any]]] = [
        (i, f, {}) for i, f in converting
    ]
    out = []
    for r in rows:
        row = list(get(r))
        for i, f, memo in memos:
            v = row[i]
            if type(v) is datetime:
                hit = memo.get(id(v))
                row[i] = hit if hit is not None else memo.setdefault(id(v), f(v))
            else:
                row[i] = f(v)
        out.append(tuple(row))
    return out


def insert_rows(
    conn: Connection,
    table: Table,
    rows: Sequence[dict[str, Any]],
    *,
    on_conflict_ignore: Sequence[str] | None = None,
) -> int:
    """Insert rows (all with the keys of the first); returns how many were written.

    With ``on_conflict_ignore``, rows whose unique key is already present are skipped.
    """
    if not rows:
        return 0
    if conn.dialect.name != "postgresql":
        return prepare_insert(conn.dialect.name, table, rows, on_conflict_ignore=on_conflict_ignore)(conn)
    columns = tuple(rows[0])
    if on_conflict_ignore is None:
        return _copy_rows(conn, table, columns, rows)
    return _insert_unnest(conn, table, columns, rows, tuple(on_conflict_ignore))


Write = Callable[[Connection], int]


def prepare_insert(
    dialect: str,
    table: Table,
    rows: Sequence[dict[str, Any]],
    *,
    on_conflict_ignore: Sequence[str] | None = None,
) -> Write:
    """:func:`insert_rows` in two halves: the values are converted now, the write runs later.

    On SQLite, where one writer at a time holds the whole database, converting before taking
    the write lock keeps the lock's turns short (this is also how :func:`insert_rows` writes
    there). On PostgreSQL the write does all the work.
    """
    if not rows:
        return lambda conn: 0
    if dialect == "postgresql":
        return lambda conn: insert_rows(conn, table, rows, on_conflict_ignore=on_conflict_ignore)
    columns = tuple(rows[0])
    conflict = tuple(on_conflict_ignore) if on_conflict_ignore is not None else None
    sql, plan = _plan(dialect, table, columns, conflict, "?")
    params = values(plan, columns, rows)

    def write(conn: Connection) -> int:
        result = conn.exec_driver_sql(sql, params)
        return len(params) if conflict is None else max(result.rowcount, 0)

    return write


def prepare_update(
    dialect: str,
    table: Table,
    key: str,
    rows: Sequence[dict[str, Any]],
    *,
    only_if: Mapping[str, str] | None = None,
    bump: str | None = None,
) -> Write:
    """:func:`update_rows` in two halves, like :func:`prepare_insert`."""
    if not rows:
        return lambda conn: 0
    if dialect == "postgresql":
        return lambda conn: update_rows(conn, table, key, rows, only_if=only_if, bump=bump)
    columns = tuple(c for c in rows[0] if c not in (key, bump))
    sql, order = _update_sql(table, key, columns, only_if, bump)
    params = values([_converter(dialect, table.c[c].type) for c in order], order, rows)

    def write(conn: Connection) -> int:
        return max(conn.exec_driver_sql(sql, params).rowcount, 0)

    return write


def _copy_rows(conn: Connection, table: Table, columns: tuple[str, ...], rows: Sequence[dict[str, Any]]) -> int:
    """PostgreSQL's COPY: many times cheaper for the server than row-by-row INSERTs."""
    plan = tuple(_json_text if isinstance(table.c[c].type, JSON) else None for c in columns)
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    with cursor.copy(f"COPY {table.name} ({', '.join(columns)}) FROM STDIN") as copy:
        for row in values(plan, columns, rows):
            copy.write_row(row)
    return len(rows)


def update_rows(
    conn: Connection,
    table: Table,
    key: str,
    rows: Sequence[dict[str, Any]],
    *,
    only_if: Mapping[str, str] | None = None,
    bump: str | None = None,
) -> int:
    """``UPDATE table SET … WHERE key = …`` for each row (all with the keys of the first).

    ``only_if``: columns the stored row must still hold these values in (``{"status":
    "received"}``), so a row another writer changed meanwhile is left alone. ``bump``: a version
    column; each row's value is the version it was read at, the row is written only at that
    version and the stored version goes up by one. Returns how many rows were updated.
    """
    if not rows:
        return 0
    if conn.dialect.name != "postgresql":
        return prepare_update(conn.dialect.name, table, key, rows, only_if=only_if, bump=bump)(conn)
    columns = tuple(c for c in rows[0] if c not in (key, bump))
    return _update_unnest(conn, table, key, columns, rows, only_if, bump)


def _update_sql(
    table: Table,
    key: str,
    columns: tuple[str, ...],
    only_if: Mapping[str, str] | None,
    bump: str | None = None,
) -> tuple[str, tuple[str, ...]]:
    """The SQLite statement (``?`` marks) and the order of its parameters."""
    mark = "?"
    sets = [f"{c} = {mark}" for c in columns]
    if bump:
        sets.append(f"{bump} = {bump} + 1")
    sql = f"UPDATE {table.name} SET {', '.join(sets)} WHERE {key} = {mark}"
    if bump:
        sql += f" AND {bump} = {mark}"
    if only_if:
        sql += f" AND {_guard(table, only_if)}"
    return sql, (*columns, key, *((bump,) if bump else ()))


def _guard(table: Table, only_if: Mapping[str, str]) -> str:
    """``table.column = 'value' AND …``: constants of the code, quoted as SQL literals."""
    return " AND ".join(
        f"{table.name}.{table.c[column].name} = '{value.replace(chr(39), chr(39) * 2)}'"
        for column, value in only_if.items()
    )


def _pg_type(column_type: TypeEngine[Any]) -> str:
    if isinstance(column_type, UtcDateTime):
        return "timestamptz"
    if isinstance(column_type, JSON):
        return "text"  # sent as text, cast to json in the statement
    if isinstance(column_type, Date):
        return "date"
    if isinstance(column_type, Boolean):
        return "boolean"
    if isinstance(column_type, Integer):
        return "bigint"
    return "text"


def _update_unnest(
    conn: Connection,
    table: Table,
    key: str,
    columns: tuple[str, ...],
    rows: Sequence[dict[str, Any]],
    only_if: Mapping[str, str] | None,
    bump: str | None = None,
) -> int:
    """One statement for the whole batch: ``UPDATE … FROM unnest(arrays) WHERE key = …``."""
    order = (key, *columns, *((bump,) if bump else ()))
    types = [_pg_type(table.c[c].type) for c in order]
    sets = ", ".join(
        [f"{c} = v.{c}::json" if isinstance(table.c[c].type, JSON) else f"{c} = v.{c}"
         for c in columns]
        + ([f"{bump} = {table.name}.{bump} + 1"] if bump else [])
    )
    arrays = ", ".join(f"%s::{t}[]" for t in types)
    sql = (
        f"UPDATE {table.name} SET {sets} FROM unnest({arrays}) AS v({', '.join(order)}) "
        f"WHERE {table.name}.{key} = v.{key}"
    )
    if bump:
        sql += f" AND {table.name}.{bump} = v.{bump}"
    if only_if:
        sql += f" AND {_guard(table, only_if)}"
    plan = [_json_text if isinstance(table.c[c].type, JSON) else None for c in order]
    data = values(plan, order, rows)
    result = conn.exec_driver_sql(sql, tuple(list(col) for col in zip(*data, strict=True)))
    return max(result.rowcount, 0)


def _insert_unnest(
    conn: Connection,
    table: Table,
    columns: tuple[str, ...],
    rows: Sequence[dict[str, Any]],
    conflict: tuple[str, ...],
) -> int:
    """One ``INSERT … SELECT FROM unnest(arrays) ON CONFLICT DO NOTHING`` for the batch."""
    types = [_pg_type(table.c[c].type) for c in columns]
    arrays = ", ".join(f"%s::{t}[]" for t in types)
    picks = ", ".join(
        f"v.{c}::json" if isinstance(table.c[c].type, JSON) else f"v.{c}" for c in columns
    )
    sql = (
        f"INSERT INTO {table.name} ({', '.join(columns)}) "
        f"SELECT {picks} FROM unnest({arrays}) AS v({', '.join(columns)}) "
        f"ON CONFLICT ({', '.join(conflict)}) DO NOTHING"
    )
    plan = [_json_text if isinstance(table.c[c].type, JSON) else None for c in columns]
    data = values(plan, columns, rows)
    result = conn.exec_driver_sql(sql, tuple(list(col) for col in zip(*data, strict=True)))
    return max(result.rowcount, 0)

