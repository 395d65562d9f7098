"""Account: make sure the beneficiary has an account (and card) at the partner bank.

A person who already has one is never given a second. Otherwise haqq asks the bank (through the
outbox) and the case waits; the bank's answer, days later, wakes it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from haqq.domain.cases import CaseState
from haqq.pipeline.work import CaseWork, StepContext
from haqq.ports import Service

USABLE = frozenset({"existing", "open"})
WAITING = frozenset({"requested", "sent"})


def holder(case: CaseWork) -> str | None:
    """The beneficiary's name as the civil registry gave it, when the program asked for it."""
    facts = case.facts or {}
    record: Any = (facts.get("beneficiary") or {}).get(Service.CIVIL_PERSON.value) or {}
    return record.get("name") or None


def run(cases: Sequence[CaseWork], ctx: StepContext) -> None:
    fins = {c.beneficiary_fin for c in cases}
    stored = ctx.lookup.account_status(fins)
    known = {fin: status for fin, (status, _) in stored.items()}
    since = {fin: at for fin, (_, at) in stored.items() if at is not None}
    # Accounts this batch already asked for or found are not in the store yet.
    known.update({a["fin"]: a["status"] for a in ctx.writes.accounts if a["fin"] in fins})
    names = {c.beneficiary_fin: n for c in cases if (n := holder(c))}
    unknown = sorted(f for f in fins if f not in known)
    if unknown:
        as_of = max(c.at for c in cases)
        for fin, account in ctx.bank.find_accounts(unknown, as_of=as_of).items():
            known[fin] = "existing"
            ctx.writes.accounts.append(
                {
                    "fin": fin,
                    "bank": account.bank,
                    "iban": account.iban,
                    "status": "existing",
                    "request_key": None,
                    "card_status": account.card_status,
                    "holder": account.holder or names.get(fin),
                    "requested_at": None,
                    "answered_at": as_of,
                }
            )
    for case in cases:
        fin = case.beneficiary_fin
        status = known.get(fin)
        if status in USABLE:
            # A case due before the account opened (another case of the same person asked for
            # it) is ready only from the opening: nothing is paid to an account not yet open.
            opened = since.get(fin)
            if opened is not None and case.due_at is not None and opened > case.due_at:
                case.due_at = opened
            ctx.move(case, CaseState.ACCOUNT_READY, f"account at {ctx.bank.name} ({status})")
        elif status == "refused":
            ctx.review(case, f"{ctx.bank.name} refused to open an account")
        elif status in WAITING:
            if case.state is not CaseState.ACCOUNT_REQUESTED:
                ctx.move(case, CaseState.ACCOUNT_REQUESTED, "waiting for the bank's answer")
            _wait(case, ctx)
        else:
            # Unknown to the store and to the bank: ask for an account and a card.
            known[fin] = "requested"
            ctx.writes.accounts.append(
                {
                    "fin": fin,
                    "bank": ctx.bank.name,
                    "iban": None,
                    "status": "requested",
                    "request_key": f"acct:{ctx.bank.name}:{fin}",
                    "card_status": "requested",
                    "holder": names.get(fin),
                    "requested_at": case.at,
                    "answered_at": None,
                }
            )
            ctx.move(case, CaseState.ACCOUNT_REQUESTED, f"asked {ctx.bank.name} for an account and card")
            _wait(case, ctx)


def _wait(case: CaseWork, ctx: StepContext) -> None:
    """Wait for the bank. Its answer wakes the case at once; a late look, in case the answer
    came while this very case was being moved (another worker could not wake it then), makes
    sure no case waits forever."""
    case.due_at = case.at + ctx.recheck_after
    case.changed = True
