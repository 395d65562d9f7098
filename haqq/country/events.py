"""Reading a country file: its event feed (:func:`iter_events`), JSONL export and meta."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from haqq.country.generate import CountryInfo
from haqq.country.schema import BAKU, baku_iso


def _bounds(start: datetime | None, end: datetime | None) -> tuple[str, list[str]]:
    clauses: list[str] = []
    params: list[str] = []
    if start is not None:
        clauses.append("occurred_at >= ?")
        params.append(baku_iso(start))
    if end is not None:
        clauses.append("occurred_at < ?")
        params.append(baku_iso(end))
    return (" AND ".join(clauses) or "1"), params


def _read_only(path: Path) -> sqlite3.Connection:
    if not Path(path).exists():
        raise FileNotFoundError(f"no country file at {path}")
    conn = sqlite3.connect(path, timeout=30.0)
    conn.execute("PRAGMA busy_timeout=30000")
    return conn


def _raw(row: tuple[Any, ...]) -> dict[str, Any]:
    event_id, etype, fin, occurred_at, payload, source = row
    return {
        "source": source,
        "event_id": event_id,
        "type": etype,
        "fin": fin,
        "occurred_at": occurred_at,
        "payload": json.loads(payload),
    }


def iter_events(
    path: Path,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    chunk: int = 10_000,
) -> Iterator[list[dict[str, Any]]]:
    """Yield the country's life events as raw JSON objects, in chunks, ordered by time.

    ``start`` is inclusive, ``end`` exclusive. Each object has the shape
    :func:`haqq.domain.events.parse_event` accepts. Memory stays bounded by ``chunk``: pages
    are read by keyset (``occurred_at``, ``id``), never with OFFSET.
    """
    if chunk < 1:
        raise ValueError("chunk must be at least 1")
    where, params = _bounds(start, end)
    conn = _read_only(path)
    try:
        cursor: tuple[str, str] | None = None
        while True:
            sql = (
                "SELECT id, type, fin, occurred_at, payload, source FROM life_events WHERE " + where
            )
            args: list[Any] = list(params)
            if cursor is not None:
                sql += " AND (occurred_at, id) > (?, ?)"
                args.extend(cursor)
            sql += " ORDER BY occurred_at, id LIMIT ?"
            args.append(chunk)
            rows = conn.execute(sql, args).fetchall()
            if not rows:
                return
            yield [_raw(r) for r in rows]
            last = rows[-1]
            cursor = (last[3], last[0])
            if len(rows) < chunk:
                return
    finally:
        conn.close()


def count_events(path: Path, start: datetime | None = None, end: datetime | None = None) -> int:
    """How many life events fall in ``[start, end)`` (all of them by default)."""
    where, params = _bounds(start, end)
    conn = _read_only(path)
    try:
        (count,) = conn.execute(
            f"SELECT count(*) FROM life_events WHERE {where}", params
        ).fetchone()
        return int(count)
    finally:
        conn.close()


def export_jsonl(path: Path, out_file: Path | TextIO) -> int:
    """Write every life event as one JSON object per line, in time order; returns the count."""
    if isinstance(out_file, (str, Path)):
        with open(out_file, "w", encoding="utf-8") as fh:
            return export_jsonl(path, fh)
    written = 0
    for batch in iter_events(path):
        for raw in batch:
            out_file.write(json.dumps(raw, ensure_ascii=False) + "\n")
        written += len(batch)
    return written


def read_info(path: Path) -> CountryInfo:
    """The :class:`CountryInfo` of an existing country file (from its ``meta`` table)."""
    conn = _read_only(path)
    try:
        meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
    finally:
        conn.close()
    return CountryInfo(
        path=Path(path),
        population=int(meta["population"]),
        seed=int(meta["seed"]),
        year=int(meta["year"]),
        events=int(meta["events"]),
        persons=int(meta["persons"]),
    )


def year_bounds(year: int) -> tuple[datetime, datetime]:
    """Start of ``year`` and of the next, in Asia/Baku (handy bounds for :func:`iter_events`)."""
    return datetime(year, 1, 1, tzinfo=BAKU), datetime(year + 1, 1, 1, tzinfo=BAKU)
