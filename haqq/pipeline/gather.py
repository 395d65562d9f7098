"""Gather: ask each institution for what the case's program reads, for whom it reads it.

A program's rules name whose data they need (the subject, the beneficiary, a relation of
either: see :attr:`haqq.rules.catalogue.Program.needs`); gather asks for exactly that, one
request per service per batch for everyone the batch needs, in two rounds: the people of the
case, then their relations (whom the family record names). Each record received is logged
against the case it served, with its purpose and legal basis.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import datetime
from functools import lru_cache
from typing import Any

from haqq.domain.cases import CaseState
from haqq.domain.errors import InstitutionError
from haqq.pipeline.work import CaseWork, StepContext, issue_of
from haqq.ports import Service, ServiceAnswer

FAMILY = Service.CIVIL_FAMILY
SINGLE = ("mother", "father", "spouse")


def _role_fin(case: CaseWork, role: str) -> str:
    return case.subject_fin if role == "subject" else case.beneficiary_fin


class _Round:
    """One round of requests: who is asked what, then the answers (or why a service failed)."""

    def __init__(self) -> None:
        self.wanted: dict[Service, set[str]] = defaultdict(set)
        self.answers: dict[Service, Mapping[str, ServiceAnswer]] = {}
        self.failed: dict[Service, str] = {}

    def ask(self, ctx: StepContext, as_of: Any, issue: str) -> None:
        for service, fins in self.wanted.items():
            try:
                self.answers[service] = ctx.query(
                    service, fins, as_of=as_of, purpose="proactive social services", issue=issue
                )
            except InstitutionError as exc:
                self.failed[service] = str(exc)


def _relations(case: CaseWork, round1: _Round) -> dict[tuple[str, str], list[str]]:
    """The FINs of each relation the program reads, from the family records of round one."""
    found: dict[tuple[str, str], list[str]] = {}
    for (role, relation) in case.program.needs:
        if relation is None:
            continue
        fin = _role_fin(case, role)
        answer = round1.answers.get(FAMILY, {}).get(fin)
        links = (answer.records.get(fin) if answer is not None else None) or {}
        if relation == "children":
            found[(role, relation)] = list(links.get("children") or [])
        else:
            linked = links.get(f"{relation}_fin")
            found[(role, relation)] = [linked] if linked else []
    return found


def run(cases: Sequence[CaseWork], ctx: StepContext) -> None:
    for case in cases:
        if case.state is CaseState.DETECTED:
            ctx.move(case, CaseState.GATHERING, f"gathering {len(case.program.asked)} services")
    as_of = ctx.as_of or max(c.at for c in cases)
    issue = issue_of("case", [c.id for c in cases])
    first = _Round()
    for case in cases:
        for (role, relation), services in case.program.needs.items():
            if relation is None:
                for service in services:
                    first.wanted[service].add(_role_fin(case, role))
    first.ask(ctx, as_of, issue)
    second = _Round()
    related: dict[str, dict[tuple[str, str], list[str]]] = {}
    for case in cases:
        if FAMILY in first.failed:
            continue
        related[case.id] = _relations(case, first)
        for whose, fins in related[case.id].items():
            for service in case.program.needs[whose]:
                second.wanted[service].update(fins)
    if second.wanted:
        second.ask(ctx, as_of, issue)
    wall = ctx.wall()
    failed = {**first.failed, **second.failed}
    for case in cases:
        missing = sorted(s for s in case.program.asked if s in failed)
        if missing:
            case.attempts += 1
            case.changed = True
            if case.attempts >= ctx.max_attempts:
                ctx.review(case, f"institution unavailable after {case.attempts} attempts: "
                           + "; ".join(failed[s] for s in missing))
            else:
                case.due_at = case.at + ctx.retry_after
            continue
        _record(case, ctx, first, second, related.get(case.id, {}), wall)
        ctx.move(case, CaseState.VERIFYING, "data gathered")


@lru_cache(maxsize=1024)
def _iso(moment: datetime) -> str:
    # A batch's answers share a handful of moments.
    return moment.isoformat()


def _record(
    case: CaseWork,
    ctx: StepContext,
    first: _Round,
    second: _Round,
    related: Mapping[tuple[str, str], list[str]],
    wall: Any,
) -> None:
    """Keep what was received on the case, and log every record against it."""
    purpose = f"{case.program.names.en}: {case.event_type.value}"
    legal = case.program.legal_reference()
    facts: dict[str, Any] = {"subject": {}, "beneficiary": {}, "relations": {}, "sources": {}}
    logged: set[tuple[str, str]] = set()

    def take(answer: ServiceAnswer, fin: str, label: str) -> Mapping[str, Any] | None:
        name = str(answer.service)
        if label not in facts["sources"]:
            source = {
                "institution": answer.service.institution,
                "message_id": answer.message_id,
                "answered_at": _iso(answer.answered_at),
            }
            if answer.exchange is not None and answer.exchange.request_hash:
                # The provider's hash of the request: proof this answer was given to it.
                source["request_hash"] = answer.exchange.request_hash
                source["xroad_service"] = answer.exchange.service
            facts["sources"][label] = source
        if (fin, name) not in logged:
            logged.add((fin, name))
            ctx.writes.access_log.append(
                {
                    "fin": fin, "at": case.at, "wall_at": wall,
                    "institution": answer.service.institution, "service": name,
                    "message_id": answer.message_id, "case_id": case.id,
                    "event_id": case.event_id, "requester": "haqq",
                    "purpose": purpose, "legal_basis": legal,
                }
            )
        return answer.records.get(fin)

    for (role, relation), services in case.program.needs.items():
        if relation is not None:
            continue
        fin = _role_fin(case, role)
        for service in sorted(services):
            name = str(service)
            facts[role][name] = take(first.answers[service][fin], fin, name)
    for (role, relation), fins in related.items():
        people = []
        for fin in fins:
            answers = {
                s.value: take(second.answers[s][fin], fin, f"{s.value} ({role}.{relation})")
                for s in sorted(case.program.needs[(role, relation)])
            }
            people.append([fin, answers])
        facts["relations"][f"{role}.{relation}"] = people
    case.facts = facts
    case.facts_changed = True
