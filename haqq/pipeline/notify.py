"""Notify: write the SMS that tells the citizen what was decided (sent later by dispatch)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from haqq.domain.cases import CaseState
from haqq.pipeline.work import CaseWork, StepContext
from haqq.ports import Service
from haqq.rules.messages import reply_code


def contact(case: CaseWork) -> tuple[str | None, str]:
    """The beneficiary's phone and language, as the mobile number registry said."""
    facts = case.facts or {}
    record: Any = (facts.get("beneficiary") or {}).get(Service.MOBILE_NUMBER.value) or {}
    return record.get("phone"), record.get("language") or "az"


def queue(
    ctx: StepContext,
    case: CaseWork,
    situation: str,
    at: datetime,
    *,
    code: str | None = None,
    serial: int = 0,
    **values: Any,
) -> bool:
    """Queue one SMS for a case; False (and nothing queued) when there is no phone.

    ``code``: the reply code the text carries (a consent request's YES/NO, a grant's STOP);
    replies are matched by the phone and this code."""
    phone, language = contact(case)
    if not phone:
        return False
    lang = ctx.messages.language(language)
    text = ctx.messages.render(
        situation,
        lang,
        case.program.id,
        amount=int((case.decision or {}).get("amount") or 0),
        case=case.id,
        code=code or "",
        bank=ctx.bank.name,
        **values,
    )
    ctx.writes.notifications.append(
        {
            "key": f"{case.id}:{situation}:{serial}",
            "case_id": case.id,
            "fin": case.beneficiary_fin,
            "phone": phone,
            "language": lang,
            "kind": situation,
            "text": text,
            "reply_code": code,
            "due_at": ctx.quiet.next_allowed(at) if ctx.quiet else at,
            "status": "pending",
        }
    )
    return True


def run(cases: Sequence[CaseWork], ctx: StepContext) -> None:
    opened = ctx.lookup.opened_accounts({c.beneficiary_fin for c in cases})
    for case in cases:
        situation = "card_ready" if case.beneficiary_fin in opened else "granted"
        if queue(ctx, case, situation, case.at, code=reply_code(case.id)):
            ctx.move(case, CaseState.NOTIFIED, f"SMS queued: {situation}")
            ctx.move(case, CaseState.CLOSED, "done")
            ctx.rest(case)
        else:
            ctx.review(case, "paid, but no mobile number on record: tell the citizen another way")
