"""Triggers: which programs an event starts, and a case per program and beneficiary.

Beneficiaries are found through the civil registry (family links) and the interior ministry
(residence): three requests per batch of events, each logged against the event it served.
A case's id is derived from (program, event, beneficiary), so re-running a batch creates nothing
twice; when no beneficiary can be found, the case goes to a person with the reason.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from haqq import PIPELINE_VERSION
from haqq.domain.cases import CaseState
from haqq.domain.events import EventType
from haqq.pipeline.work import StepContext, local_date
from haqq.ports import Service, ServiceAnswer
from haqq.rules.catalogue import Beneficiary, Program
from haqq.rules.evaluate import Candidate, resolve_beneficiary


@dataclass(frozen=True, slots=True)
class ClaimedEvent:
    id: int
    type: EventType
    fin: str
    occurred_at: datetime
    payload: Mapping[str, Any]
    #: When haqq learnt of it: the moment its cases can start.
    received_at: datetime


def case_id(program_id: str, event_id: int, beneficiary: str, occurred_at: datetime) -> str:
    """A stable id: the event's time (so ids, and the indexes on them, grow in time order)
    and a digest of what makes the case unique."""
    digest = hashlib.sha256(f"{program_id}|{event_id}|{beneficiary}".encode()).hexdigest()
    return f"C{int(occurred_at.timestamp()):010X}{digest[:9].upper()}"


def _candidate(fin: str | None, person: ServiceAnswer, identity: ServiceAnswer) -> Candidate | None:
    if not fin:
        return None
    p = person.records.get(fin)
    if p is None:
        return None
    ident = identity.records.get(fin) or {}
    born = p.get("birth_date")
    return Candidate(
        fin=fin,
        alive=bool(p.get("alive")),
        resident=bool(ident.get("resident")),
        birth_date=date.fromisoformat(born) if born else None,
    )


def run(claimed: Sequence[ClaimedEvent], ctx: StepContext) -> list[dict[str, Any]]:
    """The rows of the cases the events start (none for an event no program takes)."""
    programs = {e.id: ctx.catalogue.triggered_by(e.type) for e in claimed}
    relational = [e for e in claimed if any(p.beneficiary is not Beneficiary.SELF for p in programs[e.id])]
    as_of = ctx.as_of = max(e.received_at for e in claimed)
    family = person = identity = None
    if relational:
        purpose = "finding the beneficiary of a life event"
        family = ctx.institutions.query(
            Service.CIVIL_FAMILY, sorted({e.fin for e in relational}), as_of=as_of, purpose=purpose
        )
        related: set[str] = set()
        for e in relational:
            links = family.records.get(e.fin) or {}
            related.update(
                f for f in (
                    e.payload.get("mother_fin"), e.payload.get("father_fin"),
                    links.get("mother_fin"), links.get("father_fin"), links.get("spouse_fin"),
                    *links.get("children", []), e.fin,
                ) if f
            )
        person = ctx.institutions.query(Service.CIVIL_PERSON, sorted(related), as_of=as_of, purpose=purpose)
        identity = ctx.institutions.query(
            Service.INTERIOR_IDENTITY, sorted(related), as_of=as_of, purpose=purpose
        )
        # Later steps of this batch reuse these answers instead of asking again.
        for answer, fins in ((family, {e.fin for e in relational}), (person, related), (identity, related)):
            ctx.answers.setdefault((answer.service, as_of), {}).update(dict.fromkeys(fins, answer))
        wall = ctx.wall()
        for answer in (family, person, identity):
            for fin in answer.records:
                ctx.writes.access_log.append(
                    {
                        "fin": fin, "at": as_of, "wall_at": wall,
                        "institution": answer.service.institution,
                        "service": answer.service.value, "message_id": answer.message_id,
                        "case_id": None, "event_id": None, "requester": "haqq",
                        "purpose": purpose, "legal_basis": "Law on Social Benefits, Article 4 (illustrative)",
                    }
                )
    rows: list[dict[str, Any]] = []
    wall = ctx.wall()
    for event in claimed:
        for program in programs[event.id]:
            beneficiary, reason = _beneficiary(program, event, family, person, identity)
            fin = beneficiary or event.fin
            cid = case_id(program.id, event.id, fin, event.occurred_at)
            review = reason if beneficiary is None else None
            rows.append(
                {
                    "id": cid,
                    "program_id": program.id,
                    "program_version": program.version,
                    "catalogue_version": ctx.catalogue.version,
                    "pipeline_version": PIPELINE_VERSION,
                    "event_id": event.id,
                    "subject_fin": event.fin,
                    "beneficiary_fin": fin,
                    "state": (CaseState.NEEDS_REVIEW if review else CaseState.DETECTED).value,
                    "due_at": None if review else event.received_at,
                    "created_at": event.received_at,
                    "created_wall": wall,
                    "updated_at": event.received_at,
                    "review_reason": review,
                    "consent_answer": None,
                    "facts": None,
                    "reminders": 0,
                    "attempts": 0,
                }
            )
            ctx.writes.transitions.append(
                {
                    "case_id": cid, "source": None, "target": CaseState.DETECTED.value,
                    "at": event.received_at, "wall_at": wall,
                    "cause": f"{event.type.value} (event {event.id})",
                }
            )
            if review:
                ctx.writes.transitions.append(
                    {
                        "case_id": cid, "source": CaseState.DETECTED.value,
                        "target": CaseState.NEEDS_REVIEW.value, "at": event.received_at,
                        "wall_at": wall, "cause": review,
                    }
                )
    return rows


def _beneficiary(
    program: Program,
    event: ClaimedEvent,
    family: ServiceAnswer | None,
    person: ServiceAnswer | None,
    identity: ServiceAnswer | None,
) -> tuple[str | None, str]:
    if program.beneficiary is Beneficiary.SELF:
        return event.fin, ""
    if family is None or person is None or identity is None:
        return None, "family data unavailable"
    links = family.records.get(event.fin) or {}
    subject = person.records.get(event.fin)
    born = (subject or {}).get("birth_date")

    def cand(fin: str | None) -> Candidate | None:
        return _candidate(fin, person, identity)

    found = resolve_beneficiary(
        program.beneficiary,
        subject=event.fin,
        subject_birth=date.fromisoformat(born) if born else None,
        mother=cand(event.payload.get("mother_fin") or links.get("mother_fin")),
        father=cand(event.payload.get("father_fin") or links.get("father_fin")),
        spouse=cand(links.get("spouse_fin")),
        children=[c for c in (cand(f) for f in links.get("children", [])) if c is not None],
        day=local_date(event.occurred_at),
    )
    if found is None:
        if subject is None and not links:
            return None, "the civil registry does not know the person of the event"
        return None, f"no beneficiary found ({program.beneficiary.value})"
    return found, ""
