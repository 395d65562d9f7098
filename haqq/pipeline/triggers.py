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
from haqq.pipeline.work import StepContext, issue_of, local_date
from haqq.ports import Service, ServiceAnswer
from haqq.rules.catalogue import Beneficiary, Program
from haqq.rules.evaluate import Candidate, Pick, resolve_beneficiary

#: The answers of one service, by FIN (see :meth:`StepContext.query`).
Answers = Mapping[str, ServiceAnswer]
PURPOSE = "finding the beneficiary of a life event"


@dataclass(frozen=True, slots=True)
class ClaimedEvent:
    id: int
    type: EventType
    fin: str
    occurred_at: datetime
    payload: Mapping[str, Any]
    #: When haqq learnt of it: the moment its cases can start.
    received_at: datetime


def case_id(
    program_id: str,
    event_id: int,
    beneficiary: str,
    occurred_at: datetime,
    *,
    subject: str | None = None,
    event_fin: str | None = None,
) -> str:
    """A stable id: the event's time (so ids, and the indexes on them, grow in time order)
    and a digest of what makes the case unique (the subject too, when it is not the person of
    the event: two orphans paid to the same parent are two cases)."""
    key = f"{program_id}|{event_id}|{beneficiary}"
    if subject is not None and subject != event_fin:
        key += f"|{subject}"
    digest = hashlib.sha256(key.encode()).hexdigest()
    return f"C{int(occurred_at.timestamp()):010X}{digest[:9].upper()}"


def _programs(ctx: StepContext, event: ClaimedEvent) -> list[Program]:
    """The programs an event starts: all its type triggers, or the one it names (an event the
    sweep raised for a missed right names the program it found)."""
    only = event.payload.get("program")
    return [p for p in ctx.catalogue.triggered_by(event.type) if only is None or p.id == only]


def _candidate(fin: str | None, person: Answers, identity: Answers) -> Candidate | None:
    if not fin or fin not in person:
        return None
    p = person[fin].records.get(fin)
    if p is None:
        return None
    ident = identity[fin].records.get(fin) or {} if fin in identity else {}
    born = p.get("birth_date")
    return Candidate(
        fin=fin,
        alive=bool(p.get("alive")),
        resident=bool(ident.get("resident")),
        birth_date=date.fromisoformat(born) if born else None,
    )


def _links(family: Answers, fin: str) -> Mapping[str, Any]:
    answer = family.get(fin)
    return (answer.records.get(fin) if answer is not None else None) or {}


def run(claimed: Sequence[ClaimedEvent], ctx: StepContext) -> list[dict[str, Any]]:
    """The rows of the cases the events start (none for an event no program takes)."""
    programs = {e.id: _programs(ctx, e) for e in claimed}
    relational = [e for e in claimed if any(p.beneficiary is not Beneficiary.SELF for p in programs[e.id])]
    as_of = ctx.as_of = max(e.received_at for e in claimed)
    family: Answers = {}
    person: Answers = {}
    identity: Answers = {}
    if relational:
        issue = issue_of("event", [e.id for e in relational])
        family = dict(ctx.query(Service.CIVIL_FAMILY, {e.fin for e in relational}, as_of=as_of, purpose=PURPOSE, issue=issue))
        # Relations through a child's other parent need the children's own family records.
        via_child = [
            e for e in relational
            if any(p.beneficiary is Beneficiary.MINOR_CHILDREN_VIA_SURVIVING_PARENT for p in programs[e.id])
        ]
        kids = {k for e in via_child for k in _links(family, e.fin).get("children", [])}
        if kids:
            family.update(ctx.query(Service.CIVIL_FAMILY, kids, as_of=as_of, purpose=PURPOSE, issue=issue))
        related: set[str] = set()
        for e in relational:
            links = _links(family, e.fin)
            related.update(
                f for f in (
                    e.payload.get("mother_fin"), e.payload.get("father_fin"),
                    links.get("mother_fin"), links.get("father_fin"), links.get("spouse_fin"),
                    *links.get("children", []), e.fin,
                ) if f
            )
        for kid in kids:
            links = _links(family, kid)
            related.update(f for f in (links.get("mother_fin"), links.get("father_fin")) if f)
        person = ctx.query(Service.CIVIL_PERSON, related, as_of=as_of, purpose=PURPOSE, issue=issue)
        identity = ctx.query(Service.INTERIOR_IDENTITY, related, as_of=as_of, purpose=PURPOSE, issue=issue)
        wall = ctx.wall()
        for answers in (family, person, identity):
            for fin, answer in answers.items():
                if fin not in answer.records:
                    continue
                ctx.writes.access_log.append(
                    {
                        "fin": fin, "at": as_of, "wall_at": wall,
                        "institution": answer.service.institution,
                        "service": str(answer.service), "message_id": answer.message_id,
                        "case_id": None, "event_id": None, "requester": "haqq",
                        "purpose": PURPOSE, "legal_basis": "Law on Social Benefits, Article 4 (illustrative)",
                    }
                )
    rows: list[dict[str, Any]] = []
    wall = ctx.wall()
    for event in claimed:
        for program in programs[event.id]:
            for pick in _picks(program, event, family, person, identity):
                if event.payload.get("subject") not in (None, pick.subject):
                    continue  # the sweep raised this event for one child of the deceased
                fin = pick.beneficiary or event.fin
                cid = case_id(program.id, event.id, fin, event.occurred_at, subject=pick.subject, event_fin=event.fin)
                review = pick.reason if pick.beneficiary is None else None
                rows.append(
                    {
                        "id": cid,
                        "program_id": program.id,
                        "program_version": program.version,
                        "catalogue_version": ctx.catalogue.version,
                        "pipeline_version": PIPELINE_VERSION,
                        "event_id": event.id,
                        "subject_fin": pick.subject,
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


def _picks(
    program: Program,
    event: ClaimedEvent,
    family: Answers,
    person: Answers,
    identity: Answers,
) -> list[Pick]:
    if program.beneficiary is Beneficiary.SELF:
        return [Pick(event.fin, event.fin)]
    links = _links(family, event.fin)
    subject = person[event.fin].records.get(event.fin) if event.fin in person else None
    born = (subject or {}).get("birth_date")

    def cand(fin: str | None) -> Candidate | None:
        return _candidate(fin, person, identity)

    children = [c for c in (cand(f) for f in links.get("children", [])) if c is not None]
    parents = {c.fin: (_links(family, c.fin).get("mother_fin"), _links(family, c.fin).get("father_fin")) for c in children}
    people = {f: c for f in {p for pair in parents.values() for p in pair if p} if (c := cand(f)) is not None}
    picks = resolve_beneficiary(
        program.beneficiary,
        subject=event.fin,
        subject_birth=date.fromisoformat(born) if born else None,
        mother=cand(event.payload.get("mother_fin") or links.get("mother_fin")),
        father=cand(event.payload.get("father_fin") or links.get("father_fin")),
        spouse=cand(links.get("spouse_fin")),
        children=children,
        day=local_date(event.occurred_at),
        child_parents=parents,
        people=people,
    )
    if subject is None and not links and all(p.beneficiary is None for p in picks):
        unknown = "the civil registry does not know the person of the event"
        return [Pick(event.fin, None, unknown)]
    return picks
