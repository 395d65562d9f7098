"""Stop: end a person's active entitlements when a right ends (death, end of a status).

Payments for periods after the end are cancelled; money already paid for them becomes a
recovery claim. The store applies these set-wise when the batch is written.
"""

from __future__ import annotations

from haqq.pipeline.work import CaseWork, StepContext, local_date


def apply(case: CaseWork, ctx: StepContext) -> None:
    stops = case.program.stops
    ctx.writes.stops.append(
        {
            "kind": "end",
            "case_id": case.id,
            "fin": case.subject_fin,
            "end_date": local_date(case.occurred_at),
            "programs": None if stops == "all" else list(stops or []),
            "reason": f"{case.event_type.value} on {local_date(case.occurred_at).isoformat()} "
            f"(case {case.id}, {case.program.legal_reference()})",
        }
    )
