"""The message log: every exchange with another institution, in a hash chain.

Each entry's ``hash`` is SHA-256 over the previous entry's hash and the entry's own fields, in
a fixed order (:func:`entry_hash`); the first entry follows :data:`GENESIS`. Changing an entry
breaks its hash, deleting one breaks the next entry's ``prev_hash`` (and leaves a gap in
``seq``), so :func:`verify` names the first entry that does not hold. Removing entries from the
end leaves a shorter chain that still holds: compare :attr:`Verification.head` with a head
recorded elsewhere (a report, a registry of heads) to see that too.

Entries are appended in the transaction of the work they belong to, last, under a lock that
orders the chain (PostgreSQL: a transaction-level advisory lock; SQLite: its one writer), so
the chain is as durable as the decisions it backs.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, insert, select, text

from haqq.adapters.store.schema import message_log
from haqq.ports import Exchange

GENESIS = "0" * 64
#: pg_advisory_xact_lock key of the chain's head ("haqq-msg" in ASCII).
_LOCK = 0x68617171_6D7367
_FIELDS = (
    "seq", "message_id", "direction", "client", "service", "user_id", "issue", "at",
    "outcome", "status", "request_hash", "persons", "detail",
)


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat(timespec="microseconds")
    return str(value)


def entry_hash(prev_hash: str, entry: dict[str, Any]) -> str:
    """SHA-256 (hex) of the previous hash and the entry's fields, unit-separated."""
    body = "\x1f".join([prev_hash, *(_text(entry.get(f)) for f in _FIELDS)])
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


def row(exchange: Exchange) -> dict[str, Any]:
    """An exchange as a log entry, before it is placed in the chain."""
    return {
        "message_id": exchange.message_id,
        "direction": exchange.direction,
        "client": exchange.client,
        "service": exchange.service,
        "user_id": exchange.user,
        "issue": exchange.issue,
        "at": exchange.at,
        "outcome": exchange.outcome,
        "status": exchange.status,
        "request_hash": exchange.request_hash,
        "persons": exchange.persons,
        "detail": exchange.detail,
    }


def append(conn: Connection, exchanges: Sequence[Exchange]) -> int:
    """Chain ``exchanges`` onto the log in the caller's transaction; returns how many."""
    if not exchanges:
        return 0
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK})
    head = conn.execute(
        select(message_log.c.seq, message_log.c.hash).order_by(message_log.c.seq.desc()).limit(1)
    ).first()
    seq, prev = (head.seq, head.hash) if head is not None else (0, GENESIS)
    rows = []
    for exchange in exchanges:
        seq += 1
        entry = {"seq": seq, **row(exchange)}
        entry["prev_hash"] = prev
        entry["hash"] = prev = entry_hash(prev, entry)
        rows.append(entry)
    conn.execute(insert(message_log), rows)
    return len(rows)


@dataclass(frozen=True)
class Verification:
    """What :func:`verify` found."""

    entries: int
    #: The last entry's seq and hash (None for an empty log).
    head: tuple[int, str] | None
    #: The first entry that does not hold, and why (None: the whole chain holds).
    bad_seq: int | None = None
    reason: str | None = None

    @property
    def ok(self) -> bool:
        return self.bad_seq is None


def verify(conn: Connection, *, chunk: int = 50_000) -> Verification:
    """Walk the chain in order and check every link."""
    return check(_entries(conn, chunk))


def check(entries: Iterable[dict[str, Any]]) -> Verification:
    """Check a chain given its entries in ``seq`` order (each a dict of the table's columns)."""
    prev, expected, count = GENESIS, 1, 0
    head: tuple[int, str] | None = None
    for entry in entries:
        seq = int(entry["seq"])
        if seq != expected:
            gap = f"entries {expected}..{seq - 1} are missing" if seq > expected else "seq out of order"
            return Verification(count, head, seq, gap)
        if entry["prev_hash"] != prev:
            return Verification(count, head, seq, "its prev_hash is not the previous entry's hash (an entry before it was changed or removed)")
        if entry_hash(prev, entry) != entry["hash"]:
            return Verification(count, head, seq, "its content does not match its hash (the entry was changed)")
        prev = entry["hash"]
        head = (seq, prev)
        expected += 1
        count += 1
    return Verification(count, head)


def _entries(conn: Connection, chunk: int) -> Iterable[dict[str, Any]]:
    after = 0
    while True:
        rows = conn.execute(
            select(message_log).where(message_log.c.seq > after).order_by(message_log.c.seq).limit(chunk)
        ).mappings().all()
        if not rows:
            return
        for r in rows:
            yield dict(r)
        after = rows[-1]["seq"]
