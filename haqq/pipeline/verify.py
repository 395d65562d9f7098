"""Verify and decide: the program's checks, then its amount table (see :mod:`haqq.rules`).

"Not already paid" is answered set-wise: one query for the whole batch, plus the batch itself,
so two events about the same child in one batch cannot both be granted. A granted decision
reserves its entitlement at once (status ``pending``); the store's unique key on
(program, once_key) is the last guard between two workers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, timedelta
from typing import Any

from haqq.domain.cases import CaseState
from haqq.pipeline.work import CaseWork, StepContext, local_date
from haqq.ports import Service
from haqq.rules.catalogue import Mode, Program, Schedule
from haqq.rules.evaluate import Outcome, Relations, decide, person
from haqq.rules.lang import add_months

CONTACT = Service.MOBILE_NUMBER.value


def once_key(program: Program, subject_fin: str, beneficiary_fin: str) -> str:
    """The key under which a program pays at most once."""
    return subject_fin if program.once_per == "subject" else beneficiary_fin


def end_date(schedule: Schedule, start: date, birth: object) -> date | None:
    """The last day a monthly entitlement runs by its schedule (None: until something ends it)."""
    ends: list[date] = []
    if schedule.until_age and isinstance(birth, date):
        ends.append(add_months(birth, 12 * schedule.until_age) - timedelta(days=1))
    if schedule.months:
        ends.append(add_months(start, schedule.months) - timedelta(days=1))
    return min(ends) if ends else None


def _relations(facts: Mapping[str, Any], role: str) -> Relations:
    """The relations of ``role`` that gather fetched: ``[fin, answers]`` pairs by relation."""
    found = facts.get("relations") or {}

    def one(relation: str) -> tuple[str, Mapping[str, Any]] | None:
        people = found.get(f"{role}.{relation}") or []
        return (people[0][0], people[0][1]) if people else None

    return Relations(
        mother=one("mother"),
        father=one("father"),
        spouse=one("spouse"),
        children=[(fin, answers) for fin, answers in found.get(f"{role}.children") or []],
    )


def run(cases: Sequence[CaseWork], ctx: StepContext) -> None:
    keys = {
        (c.program.id, once_key(c.program, c.subject_fin, c.beneficiary_fin))
        for c in cases
        if c.program.once_per
    }
    taken = set(ctx.lookup.existing_entitlements(keys)) if keys else set()
    for case in cases:
        facts = case.facts or {}
        key = (case.program.id, once_key(case.program, case.subject_fin, case.beneficiary_fin))
        schema = ctx.catalogue.schema
        only = case.program.fact_names
        subject = person(
            schema, case.subject_fin, facts.get("subject") or {}, _relations(facts, "subject"), only
        )
        decision = decide(
            case.program,
            subject=subject,
            beneficiary=person(
                schema, case.beneficiary_fin, facts.get("beneficiary") or {},
                _relations(facts, "beneficiary"), only,
            ),
            already_paid=key in taken,
            day=local_date(case.occurred_at),
        )
        record = decision.as_dict()
        record["sources"] = facts.get("sources", {})
        case.decision = {"outcome": decision.outcome.value, "amount": decision.amount}
        # The decision keeps the data it used; the case keeps only what later steps need (how
        # to reach the beneficiary), not a second copy of everyone's records.
        case.facts = {"beneficiary": {CONTACT: (facts.get("beneficiary") or {}).get(CONTACT)}}
        case.facts_changed = True
        ctx.writes.decisions.append(
            {
                "case_id": case.id,
                "outcome": decision.outcome.value,
                "amount": decision.amount,
                "branch": decision.branch,
                "legal_basis": case.program.legal_basis.model_dump(),
                "catalogue_version": ctx.catalogue.version,
                "trace": record,
                "decided_at": case.at,
            }
        )
        text = "; ".join(r.text for r in decision.reasons)
        reason = f"{decision.branch}: {text}" if decision.outcome is not Outcome.STOP else text
        if decision.outcome is Outcome.DENIED:
            ctx.move(case, CaseState.DENIED, reason)
            ctx.rest(case)
        elif decision.outcome is Outcome.NEEDS_REVIEW:
            ctx.review(case, reason)
        else:
            if case.program.once_per:
                taken.add(key)
            if decision.outcome is Outcome.GRANTED and case.program.mode is not Mode.NOTIFY:
                start = local_date(case.occurred_at)
                ctx.writes.entitlements.append(
                    {
                        "id": case.id,
                        "program_id": case.program.id,
                        "once_key": key[1] if case.program.once_per else case.id,
                        "fin": case.beneficiary_fin,
                        "subject_fin": case.subject_fin,
                        "schedule": case.program.schedule.kind.value,
                        "amount": decision.amount,
                        "start_date": start,
                        "end_date": end_date(case.program.schedule, start, subject.values.get("birth_date")),
                        "status": "pending",
                        "ended_reason": None,
                        "created_at": case.at,
                    }
                )
            cause = f"granted by branch {reason}" if decision.outcome is Outcome.GRANTED else reason
            ctx.move(case, CaseState.DECIDED, cause)
