"""Verify and decide: the program's checks, then its amount table (see :mod:`haqq.rules`).

"Not already paid" is answered set-wise: one query for the whole batch, plus the batch itself,
so two events about the same child in one batch cannot both be granted. A granted decision
reserves its entitlement at once (status ``pending``); the store's unique key on
(program, once_key) is the last guard between two workers.
"""

from __future__ import annotations

from collections.abc import Sequence

from haqq.domain.cases import CaseState
from haqq.pipeline.work import CaseWork, StepContext, local_date
from haqq.ports import Service
from haqq.rules.catalogue import Program
from haqq.rules.evaluate import Outcome, decide

CONTACT = Service.MOBILE_NUMBER.value


def once_key(program: Program, subject_fin: str, beneficiary_fin: str) -> str:
    """The key under which a program pays at most once."""
    return subject_fin if program.once_per == "subject" else beneficiary_fin


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
        decision = decide(
            case.program,
            beneficiary=facts.get("beneficiary") or {},
            subject=facts.get("subject") or {},
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
        reason = "; ".join(r.text for r in decision.reasons)
        if decision.outcome is Outcome.DENIED:
            ctx.move(case, CaseState.DENIED, reason)
            ctx.rest(case)
        elif decision.outcome is Outcome.NEEDS_REVIEW:
            ctx.review(case, reason)
        else:
            if case.program.once_per:
                taken.add(key)
            if decision.outcome is Outcome.GRANTED:
                ctx.writes.entitlements.append(
                    {
                        "id": case.id,
                        "program_id": case.program.id,
                        "once_key": key[1] if case.program.once_per else case.id,
                        "fin": case.beneficiary_fin,
                        "subject_fin": case.subject_fin,
                        "schedule": case.program.schedule.value,
                        "amount": decision.amount,
                        "start_date": local_date(case.occurred_at),
                        "end_date": None,
                        "status": "pending",
                        "ended_reason": None,
                        "created_at": case.at,
                    }
                )
            ctx.move(case, CaseState.DECIDED, f"{decision.outcome.value}: {reason}")
