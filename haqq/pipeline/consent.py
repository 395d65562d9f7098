"""Consent, the Kazakh way: a YES assigns, a NO declines, silence brings one reminder, then lapses.

Replies reach a case through :mod:`haqq.pipeline.dispatch`, which records the answer on the
case and wakes it; this step acts on the answer or on the timeout.
"""

from __future__ import annotations

from collections.abc import Sequence

from haqq.domain.cases import CaseState
from haqq.pipeline import notify
from haqq.pipeline.work import CaseWork, StepContext
from haqq.rules.messages import reply_code

YES = frozenset({"YES", "Y", "HƏ", "HE", "BƏLİ", "BELI", "BƏLI", "ДА", "DA"})
NO = frozenset({"NO", "N", "YOX", "XEYR", "НЕТ", "NET"})
#: Decline a benefit assigned automatically, or stop a recurring one (the grant's SMS says how).
STOP = frozenset({"STOP", "СТОП", "DAYAN", "DAYANDIR", "İMTİNA", "IMTINA", "ОТКАЗ", "OTKAZ"})


def _plain(word: str) -> str:
    """Upper case with the dotted İ as I: "imtina", "İmtina" and "İMTİNA" are one word."""
    return word.upper().replace("I\u0307", "I").replace("İ", "I")


WORDS = {_plain(w): answer for words, answer in ((YES, "yes"), (NO, "no"), (STOP, "stop")) for w in words}


def parse_reply(text: str) -> tuple[str, str] | None:
    """``' bəli 4821 '`` -> ``('yes', '4821')``, ``'stop 4821'`` -> ``('stop', '4821')``; None
    when it is not a reply haqq understands (a word and a four-digit code)."""
    words = _plain(text.strip()).split()
    if len(words) != 2 or not (words[1].isascii() and words[1].isdigit() and len(words[1]) == 4):
        return None
    answer = WORDS.get(words[0])
    return (answer, words[1]) if answer else None


def run(cases: Sequence[CaseWork], ctx: StepContext) -> None:
    for case in cases:
        if case.consent_answer == "yes":
            ctx.move(case, CaseState.ASSIGNED, "citizen agreed by SMS")
            case.due_at = case.at
        elif case.consent_answer == "no":
            ctx.move(case, CaseState.DECLINED, "citizen declined by SMS")
            ctx.writes.stops.append(
                {"kind": "decline", "case_id": case.id, "reason": "declined by the citizen"}
            )
            notify.queue(ctx, case, "declined", case.at)
            ctx.rest(case)
        elif case.reminders == 0:
            notify.queue(
                ctx, case, "reminder", case.at, code=reply_code(case.id), serial=1
            )
            case.reminders = 1
            case.due_at = case.at + ctx.lapse_after
            case.changed = True
        else:
            ctx.move(case, CaseState.LAPSED, "no answer to the request or the reminder")
            notify.queue(ctx, case, "lapsed", case.at)
            ctx.writes.stops.append(
                {"kind": "decline", "case_id": case.id, "reason": "lapsed: no answer"}
            )
            ctx.rest(case)
