"""Notify: write the SMS that tells the citizen what was decided (sent later by dispatch)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from haqq.domain.cases import CaseState
from haqq.pipeline import messages
from haqq.pipeline.work import CaseWork, StepContext
from haqq.ports import Service


def contact(case: CaseWork) -> tuple[str | None, str]:
    """The beneficiary's phone and language, as the mobile number registry said."""
    facts = case.facts or {}
    record: Any = (facts.get("beneficiary") or {}).get(Service.MOBILE_NUMBER.value) or {}
    return record.get("phone"), record.get("language") or "az"


def queue(
    ctx: StepContext,
    case: CaseWork,
    kind: str,
    at: datetime,
    *,
    code: str | None = None,
    how: str = "account",
    serial: int = 0,
) -> bool:
    """Queue one SMS for a case; False (and nothing queued) when there is no phone."""
    phone, language = contact(case)
    if not phone:
        return False
    amount = int((case.decision or {}).get("amount") or 0)
    text = messages.render(
        kind,
        language,
        program=case.program.names.model_dump(),
        amount=amount,
        case_id=case.id,
        code=code or "",
        how=how,
        bank=ctx.bank.name,
    )
    ctx.writes.notifications.append(
        {
            "key": f"{case.id}:{kind}:{serial}",
            "case_id": case.id,
            "fin": case.beneficiary_fin,
            "phone": phone,
            "language": language,
            "kind": kind,
            "text": text,
            "reply_code": code,
            "due_at": at,
            "status": "pending",
        }
    )
    return True


def run(cases: Sequence[CaseWork], ctx: StepContext) -> None:
    opened = ctx.lookup.opened_accounts({c.beneficiary_fin for c in cases})
    for case in cases:
        how = "card" if case.beneficiary_fin in opened else "account"
        if queue(ctx, case, "granted", case.at, how=how):
            ctx.move(case, CaseState.NOTIFIED, "SMS queued: granted")
            ctx.move(case, CaseState.CLOSED, "done")
            ctx.rest(case)
        else:
            ctx.review(case, "paid, but no mobile number on record: tell the citizen another way")
