"""Explain what a program decides for a person on a date, from the registries, without acting.

The pipeline's own steps run on an in-memory case (triggers find the beneficiary, gather asks
the institutions, verify decides), so the explanation is exactly what the pipeline would decide.
Nothing is assigned, paid or sent; only the data access is recorded, against the person whose
data was read, with the official who asked and why (a citizen can see it).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Any

from haqq.adapters.store import bulk, repository
from haqq.adapters.store.schema import data_access_log
from haqq.bootstrap import Haqq
from haqq.domain.cases import CaseState
from haqq.domain.errors import HaqqError
from haqq.domain.fin import check_fin
from haqq.pipeline import gather, triggers, verify
from haqq.pipeline.work import BAKU, CaseWork, StepContext, Writes


class NothingToExplain(HaqqError):
    """The program starts no case for this person (no one to pay, or not that kind of event)."""


@dataclass(frozen=True, slots=True)
class Explained:
    subject_fin: str
    beneficiary_fin: str
    state: str
    review_reason: str | None
    trace: dict[str, Any] | None


class _NothingPaid(repository.Lookup):
    """The store as if the program had assigned nothing yet."""

    def existing_entitlements(self, keys: Iterable[tuple[str, str]]) -> set[tuple[str, str]]:
        return set()


def explain(
    app: Haqq, fin: str, program_id: str, day: date, *, requester: str, as_new: bool = False
) -> list[Explained]:
    """What ``program_id`` decides for ``fin`` on ``day`` (several cases for some programs).

    ``as_new``: as if nothing had been assigned yet, to show how a person already paid would be
    decided today.
    """
    fin = check_fin(fin.strip().upper())
    program = app.catalogue[program_id]
    moment = datetime.combine(day, time(12), tzinfo=BAKU)
    writes = Writes()
    explained: list[Explained] = []
    with app.engine.begin() as conn:
        ctx = StepContext(
            catalogue=app.catalogue, institutions=app.institutions, bank=app.bank, sms=app.sms,
            now=moment, wall=app.wall, writes=writes,
            lookup=(_NothingPaid if as_new else repository.Lookup)(conn),
        )
        event = triggers.ClaimedEvent(0, program.triggers[0], fin, moment, {}, moment)
        rows = [r for r in triggers.run([event], ctx) if r["program_id"] == program_id]
        if not rows:
            raise NothingToExplain(f"{program_id} starts no case for {fin} on {day.isoformat()}")
        batch = [
            CaseWork(
                id=r["id"], program=program, state=CaseState(r["state"]), due_at=r["due_at"],
                event_id=0, event_type=event.type, occurred_at=moment,
                subject_fin=r["subject_fin"], beneficiary_fin=r["beneficiary_fin"],
                created_at=moment, review_reason=r["review_reason"],
            )
            for r in rows
        ]
        ctx.stamp = app.wall()
        due = [c for c in batch if c.state is CaseState.DETECTED]
        if due:
            gather.run(due, ctx)
            verify.run([c for c in due if c.state is CaseState.VERIFYING], ctx)
        traces = {d["case_id"]: d for d in writes.decisions}
        for case in batch:
            decision = traces.get(case.id)
            explained.append(
                Explained(
                    case.subject_fin, case.beneficiary_fin, case.state.value, case.review_reason,
                    None if decision is None else {**decision["trace"], "legal_basis": decision["legal_basis"]},
                )
            )
        # The data read is logged as read by this official, for this purpose: not for a case.
        purpose = f"explaining {program_id} to a caseworker"
        bulk.insert_rows(
            conn,
            data_access_log,
            repository.one_per_use(
                [
                    {**row, "case_id": None, "event_id": None, "requester": requester, "purpose": purpose}
                    for row in writes.access_log
                ]
            ),
        )
    return explained
