"""Pay: schedule the payments of an assigned entitlement (sent later by dispatch).

A lump sum is one payment. A monthly entitlement is paid from its start month, the first month
pro rata (half up), up to the current month (the later of the case's moment and the worker's);
later months come from the payroll. The unique key
(entitlement, period) makes a second payment for the same period impossible.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterator, Sequence
from datetime import date, datetime, time

from haqq.domain.cases import CaseState
from haqq.domain.money import Rounding, divide
from haqq.pipeline.work import BAKU, CaseWork, StepContext, local_date
from haqq.rules.catalogue import ScheduleKind


def month_start(day: date) -> date:
    return day.replace(day=1)


def next_month(day: date) -> date:
    return date(day.year + day.month // 12, day.month % 12 + 1, 1)


def months(start: date, until: date) -> Iterator[date]:
    """First days of the months from ``start``'s month to ``until``'s month, inclusive."""
    current = month_start(start)
    while current <= until:
        yield current
        current = next_month(current)


def first_month_amount(monthly: int, start: date) -> int:
    """Pro rata for the days of the start month the entitlement covers, rounded half up."""
    days = calendar.monthrange(start.year, start.month)[1]
    return divide(monthly, days - start.day + 1, days, Rounding.HALF_UP)


def period_due(period: date) -> datetime:
    return datetime.combine(period, time(9, 0), tzinfo=BAKU)


def payment_row(
    case_id: str, fin: str, program_id: str, period: str, start: date, amount: int,
    due: datetime, iban: str | None,
) -> dict[str, object]:
    return {
        "key": f"pay:{case_id}:{period}",
        "entitlement_id": case_id,
        "case_id": case_id,
        "fin": fin,
        "program_id": program_id,
        "period": period,
        "period_start": start,
        "amount": amount,
        "due_at": due,
        "status": "scheduled",
        "iban": iban,
    }


def run(cases: Sequence[CaseWork], ctx: StepContext) -> None:
    ibans = ctx.lookup.ibans({c.beneficiary_fin for c in cases})
    # Accounts found earlier in this same batch are not in the store yet.
    ibans.update({a["fin"]: a["iban"] for a in ctx.writes.accounts if a["iban"]})
    statuses = ctx.lookup.entitlement_status([c.id for c in cases])
    # Entitlements reserved earlier in this same batch are not in the store yet.
    statuses.update({e["id"]: e["status"] for e in ctx.writes.entitlements})
    ends = ctx.lookup.entitlement_ends([c.id for c in cases if statuses.get(c.id) == "ended"])
    for case in cases:
        status = statuses.get(case.id)
        start = local_date(case.occurred_at)
        monthly = case.program.schedule.kind is not ScheduleKind.LUMP_SUM
        # A recurring right a stop ended while it waited (for the account) is still owed the
        # months up to its end.
        owed_until = ends.get(case.id) if status == "ended" and monthly else None
        if status not in ("pending", "active") and (owed_until is None or owed_until < start):
            ctx.move(case, CaseState.CLOSED, f"entitlement {status} before payment")
            ctx.rest(case)
            continue
        amount = int((case.decision or {})["amount"])
        iban = ibans.get(case.beneficiary_fin)
        rows = ctx.writes.payments
        if not monthly:
            rows.append(payment_row(case.id, case.beneficiary_fin, case.program.id, "lump",
                                    start, amount, case.at, iban))
        else:
            # Up to this month, not only up to the case's moment: a payroll that ran while the
            # entitlement waited (for the account) did not pay it the months since.
            until = local_date(max(case.at, ctx.now))
            for first in months(start, min(until, owed_until) if owed_until else until):
                part = first_month_amount(amount, start) if first <= start else amount
                rows.append(payment_row(case.id, case.beneficiary_fin, case.program.id,
                                        first.strftime("%Y-%m"), max(first, start), part,
                                        max(case.at, period_due(first)), iban))
        if owed_until is None:
            ctx.writes.stops.append({"kind": "activate", "case_id": case.id})
        ctx.move(case, CaseState.PAYMENT_SCHEDULED, f"payment scheduled to the account ending {(iban or '????')[-4:]}")
