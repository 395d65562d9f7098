"""Assign: act on a decision by the program's mode.

automatic: assign at once; consent: ask by SMS first; notify: tell the person what they may
claim and where (haqq cannot assign it); stop: end the person's entitlements.
"""

from __future__ import annotations

from collections.abc import Sequence

from haqq.domain.cases import CaseState
from haqq.pipeline import notify, stop
from haqq.pipeline.work import CaseWork, StepContext
from haqq.rules.catalogue import Mode
from haqq.rules.messages import reply_code


def run(cases: Sequence[CaseWork], ctx: StepContext) -> None:
    for case in cases:
        mode = case.program.mode
        if mode is Mode.STOP:
            stop.apply(case, ctx)
            ctx.move(case, CaseState.CLOSED, "entitlements stopped")
            ctx.rest(case)
        elif mode is Mode.CONSENT:
            code = reply_code(case.id)
            if notify.queue(ctx, case, "consent_request", case.at, code=code):
                ctx.move(case, CaseState.AWAITING_CONSENT, f"consent asked by SMS, code {code}")
                case.due_at = case.at + ctx.reminder_after
            else:
                ctx.review(case, "consent cannot be asked: no mobile number on record")
        elif mode is Mode.NOTIFY:
            if notify.queue(ctx, case, "may_claim", case.at):
                ctx.move(case, CaseState.CLOSED, "told the citizen by SMS what they may claim and where")
                ctx.rest(case)
            else:
                ctx.review(case, "the citizen cannot be told: no mobile number on record")
        else:
            ctx.move(case, CaseState.ASSIGNED, "assigned automatically, as the law allows")
