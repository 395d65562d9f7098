"""Gather: ask each institution for what the case's program declares, and nothing more.

One request per service per batch, for every person the batch needs. Each request is logged per
person with the case it served and its legal basis.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from haqq.domain.cases import CaseState
from haqq.domain.errors import InstitutionError
from haqq.pipeline.work import CaseWork, StepContext
from haqq.ports import Service, ServiceAnswer


def run(cases: Sequence[CaseWork], ctx: StepContext) -> None:
    for case in cases:
        if case.state is CaseState.DETECTED:
            ctx.move(case, CaseState.GATHERING, f"gathering {len(case.program.services)} services")
    wanted: dict[Service, set[str]] = defaultdict(set)
    for case in cases:
        for service in case.program.services:
            wanted[service].update((case.beneficiary_fin, case.subject_fin))
    as_of = ctx.as_of or max(c.at for c in cases)
    answers: dict[Service, dict[str, ServiceAnswer]] = {}
    failed: dict[Service, str] = {}
    for service, fins in wanted.items():
        try:
            answers[service] = ctx.query(service, fins, as_of=as_of, purpose="proactive social services")
        except InstitutionError as exc:
            failed[service] = str(exc)
    wall = ctx.wall()
    names = {s: (s.value, s.institution) for s in wanted}
    for case in cases:
        missing = [s for s in case.program.services if s in failed]
        if missing:
            case.attempts += 1
            case.changed = True
            if case.attempts >= ctx.max_attempts:
                ctx.review(case, f"institution unavailable after {case.attempts} attempts: "
                           + "; ".join(failed[s] for s in missing))
            else:
                case.due_at = case.at + ctx.retry_after
            continue
        beneficiary: dict[str, object] = {}
        subject: dict[str, object] = {}
        sources: dict[str, object] = {}
        purpose = f"{case.program.names.en}: {case.event_type.value}"
        legal = case.program.legal_reference()
        people = {case.beneficiary_fin, case.subject_fin}
        for service in case.program.services:
            name, institution = names[service]
            found = answers[service]
            b_answer, s_answer = found[case.beneficiary_fin], found[case.subject_fin]
            beneficiary[name] = b_answer.records.get(case.beneficiary_fin)
            subject[name] = s_answer.records.get(case.subject_fin)
            sources[name] = {
                "institution": institution,
                "message_id": b_answer.message_id,
                "answered_at": b_answer.answered_at.isoformat(),
            }
            for fin in people:
                ctx.writes.access_log.append(
                    {
                        "fin": fin,
                        "at": case.at,
                        "wall_at": wall,
                        "institution": institution,
                        "service": name,
                        "message_id": found[fin].message_id,
                        "case_id": case.id,
                        "event_id": case.event_id,
                        "requester": "haqq",
                        "purpose": purpose,
                        "legal_basis": legal,
                    }
                )
        case.facts = {"beneficiary": beneficiary, "subject": subject, "sources": sources}
        case.facts_changed = True
        ctx.move(case, CaseState.VERIFYING, "data gathered")
