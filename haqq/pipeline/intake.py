"""Intake: life events into the store, idempotent by the source's own event id.

A malformed or unknown event is refused with the reason and nothing of it is written; a
duplicate (same source and event id) is counted and skipped.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection

from haqq.adapters.store.repository import insert_ignore
from haqq.adapters.store.schema import events
from haqq.domain.errors import InvalidEvent
from haqq.domain.events import LifeEvent, parse_event


@dataclass(slots=True)
class IntakeReport:
    accepted: int = 0
    duplicates: int = 0
    rejected: list[tuple[str, str]] = field(default_factory=list)

    def merge(self, other: IntakeReport) -> None:
        self.accepted += other.accepted
        self.duplicates += other.duplicates
        self.rejected.extend(other.rejected)


def read_jsonl(path: Path) -> Iterator[tuple[str, Any]]:
    """``(where, decoded object or the JSON error)`` per non-empty line of a JSONL file."""
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            where = f"{path.name}:{number}"
            try:
                yield where, json.loads(line)
            except json.JSONDecodeError as exc:
                yield where, InvalidEvent(f"malformed JSON: {exc.msg} at column {exc.colno}")


def parse_all(items: Iterable[tuple[str, Any]], report: IntakeReport) -> list[LifeEvent]:
    parsed = []
    for where, raw in items:
        if isinstance(raw, InvalidEvent):
            report.rejected.append((where, str(raw)))
            continue
        try:
            parsed.append(parse_event(raw))
        except InvalidEvent as exc:
            report.rejected.append((where, str(exc)))
    return parsed


def store(
    conn: Connection,
    batch: Sequence[LifeEvent],
    *,
    received_at: datetime | None,
    wall: datetime,
) -> IntakeReport:
    """Write parsed events; duplicates within the batch and in the store are skipped.

    ``received_at`` is when haqq learnt of them (None: at the moment each occurred, as a
    registry that notifies at once would tell it in a simulated replay).
    """
    report = IntakeReport()
    rows = [
        {
            "source": e.source,
            "source_event_id": e.event_id,
            "type": e.type.value,
            "fin": e.fin,
            "occurred_at": e.occurred_at,
            "payload": dict(e.payload),
            "received_at": e.occurred_at if received_at is None else max(received_at, e.occurred_at),
            "received_wall": wall,
            "status": "received",
        }
        for e in batch
    ]
    # Duplicates, in the batch or already stored, are skipped by the unique key and counted.
    report.accepted = insert_ignore(conn, events, rows, ["source", "source_event_id"])
    report.duplicates = len(rows) - report.accepted
    return report
