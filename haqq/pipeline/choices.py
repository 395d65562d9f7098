"""A citizen's choices about what haqq decided for them: decline, stop, claim.

Any benefit haqq assigned automatically can be declined, and a recurring one stopped, by a reply
to its SMS (``STOP 4821``) or through the API. The choice is recorded with its time and
channel; payments not yet at the bank are cancelled (a recurring benefit keeps the months up to
the day of the stop); and a confirmation SMS is queued. A choice that cannot be applied (the
benefit already ended, a lump sum already paid) is refused with the reason and changes nothing.

For a program in notify mode, haqq only told the person what they may claim; a claim made
later (reported by the office or system that took it) is recorded here too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, func, select, update

from haqq.adapters.store.repository import insert_ignore
from haqq.adapters.store.schema import (
    cases,
    citizen_choices,
    entitlements,
    notifications,
    payments,
    recovery_claims,
)
from haqq.domain.errors import HaqqError
from haqq.domain.quiet import QuietHours
from haqq.pipeline.work import local_date
from haqq.rules.messages import MessageCatalogue, default_messages

CHANNELS = ("sms", "api", "office", "registry", "console")
#: Payments the bank does not have yet: a decline or a stop cancels them.
NOT_AT_BANK = ("scheduled", "queued", "held", "rejected")
#: The SMS that told a person of a grant (a STOP reply names one of these by its code).
GRANTS = ("granted", "card_ready", "payment_sent")


class ChoiceRefused(HaqqError):
    """The choice cannot be applied; the message says why (nothing was changed)."""


@dataclass(frozen=True, slots=True)
class Choice:
    case_id: str
    choice: str
    #: What it did: the benefit ended (from ``end_date``), or declined outright.
    outcome: str
    cancelled: int
    confirmation: str | None


def stop(
    conn: Connection,
    case_id: str,
    *,
    at: datetime,
    now: datetime,
    channel: str,
    source: str | None = None,
    fin: str | None = None,
    quiet: QuietHours | None = None,
    messages: MessageCatalogue | None = None,
) -> Choice:
    """Decline (nothing paid yet, or a lump sum) or stop (a recurring benefit) the case's
    entitlement as the citizen asked at ``at``. ``fin``, when given, must be the beneficiary's."""
    if channel not in CHANNELS:
        raise ChoiceRefused(f"unknown channel {channel!r}: one of {', '.join(CHANNELS)}")
    ent = conn.execute(
        select(entitlements.c.id, entitlements.c.fin, entitlements.c.program_id, entitlements.c.schedule,
               entitlements.c.status, entitlements.c.start_date)
        .where(entitlements.c.id == case_id)
    ).one_or_none()
    if ent is None:
        raise ChoiceRefused(f"case {case_id}: no benefit was assigned, so there is nothing to decline")
    if fin is not None and fin != ent.fin:
        raise ChoiceRefused(f"case {case_id}: only the beneficiary can decline or stop this benefit")
    if ent.status not in ("pending", "active"):
        raise ChoiceRefused(f"case {case_id}: the benefit is already {ent.status}, nothing to stop")
    day = local_date(at)
    paid = conn.execute(
        select(func.count()).select_from(payments)
        .where(payments.c.entitlement_id == case_id, payments.c.status.not_in((*NOT_AT_BANK, "cancelled")))
    ).scalar_one()
    recurring = ent.schedule == "monthly"
    if not recurring and paid:
        raise ChoiceRefused(f"case {case_id}: the lump sum is already paid, nothing left to decline")
    how = "by SMS" if channel == "sms" else f"through the {channel}"
    before = _cancelled(conn, case_id)
    if recurring and paid:
        choice, situation = "stop", "stopped"
        reason = f"stopped by the citizen {how} on {day.isoformat()}"
        # This entitlement only: a guardian paid for two children stops one of them.
        conn.execute(
            update(entitlements).where(entitlements.c.id == case_id, entitlements.c.status.in_(("pending", "active")))
            .values(status="ended", end_date=day, ended_reason=reason)
        )
        later = (payments.c.entitlement_id == case_id, payments.c.period != "lump", payments.c.period_start > day)
        conn.execute(update(payments).where(*later, payments.c.status.in_(NOT_AT_BANK))
                     .values(status="cancelled", reason=reason))
        paid_ahead = conn.execute(
            select(payments.c.id, payments.c.fin, payments.c.amount).where(*later, payments.c.status == "accepted")
        ).all()
        insert_ignore(conn, recovery_claims, [
            {"payment_id": p.id, "fin": p.fin, "amount": p.amount, "reason": reason, "status": "open",
             "created_at": now} for p in paid_ahead
        ], ["payment_id"])
        outcome = f"ended from {day.isoformat()}"
    else:
        choice, situation = "decline", "declined"
        reason = f"declined by the citizen {how} on {day.isoformat()}"
        conn.execute(
            update(entitlements).where(entitlements.c.id == case_id, entitlements.c.status.in_(("pending", "active")))
            .values(status="declined", end_date=day, ended_reason=reason)
        )
        conn.execute(
            update(payments).where(payments.c.entitlement_id == case_id, payments.c.status.in_(NOT_AT_BANK))
            .values(status="cancelled", reason=reason)
        )
        outcome = "declined"
    cancelled = _cancelled(conn, case_id) - before
    conn.execute(citizen_choices.insert().values(
        case_id=case_id, fin=ent.fin, choice=choice, channel=channel, at=at, recorded_at=now,
        source=source, note=f"{outcome}; {cancelled} payment(s) cancelled",
    ))
    key = confirm(conn, case_id, situation, at=at, quiet=quiet, messages=messages,
                  program=ent.program_id, date=day.isoformat())
    return Choice(case_id, choice, outcome, cancelled, key)


def _cancelled(conn: Connection, case_id: str) -> int:
    return int(conn.execute(
        select(func.count()).select_from(payments)
        .where(payments.c.entitlement_id == case_id, payments.c.status == "cancelled")
    ).scalar_one())


def confirm(
    conn: Connection,
    case_id: str,
    situation: str,
    *,
    at: datetime,
    program: str,
    quiet: QuietHours | None = None,
    messages: MessageCatalogue | None = None,
    serial: str = "0",
    **values: str | int,
) -> str | None:
    """Queue an SMS about a case to the number and in the language its first SMS went to;
    returns its key (None when haqq never texted this person about the case)."""
    first = conn.execute(
        select(notifications.c.fin, notifications.c.phone, notifications.c.language)
        .where(notifications.c.case_id == case_id, notifications.c.phone.is_not(None))
        .order_by(notifications.c.id).limit(1)
    ).one_or_none()
    if first is None:
        return None
    catalogue = messages or default_messages()
    key = f"{case_id}:{situation}:{serial}"
    text = catalogue.render(situation, first.language, program, case=case_id, **values)
    insert_ignore(conn, notifications, [{
        "key": key, "case_id": case_id, "fin": first.fin, "phone": first.phone,
        "language": first.language, "kind": situation, "text": text, "reply_code": None,
        "due_at": quiet.next_allowed(at) if quiet else at, "status": "pending",
    }], ["key"])
    return key


def record_claim(
    conn: Connection, case_id: str, *, at: datetime, now: datetime, channel: str, source: str | None = None
) -> None:
    """Record that the person claimed a benefit haqq told them of (notify mode)."""
    if channel not in CHANNELS:
        raise ChoiceRefused(f"unknown channel {channel!r}: one of {', '.join(CHANNELS)}")
    row = conn.execute(
        select(cases.c.beneficiary_fin, cases.c.program_id).where(cases.c.id == case_id)
    ).one_or_none()
    if row is None:
        raise ChoiceRefused(f"no case {case_id}")
    told = conn.execute(
        select(notifications.c.id).where(notifications.c.case_id == case_id, notifications.c.kind == "may_claim")
    ).first()
    if told is None:
        raise ChoiceRefused(f"case {case_id}: haqq did not tell this person they may claim, nothing to record")
    if conn.execute(
        select(citizen_choices.c.id).where(citizen_choices.c.case_id == case_id, citizen_choices.c.choice == "claimed")
    ).first():
        raise ChoiceRefused(f"case {case_id}: the claim is already recorded")
    conn.execute(citizen_choices.insert().values(
        case_id=case_id, fin=row.beneficiary_fin, choice="claimed", channel=channel, at=at,
        recorded_at=now, source=source, note=None,
    ))


def tell_paid_late(conn: Connection, payment_ids: Sequence[int], *, at: datetime, bank: str) -> int:
    """An SMS for each of these payments the bank accepted on a later attempt: the grant's SMS
    said the money was coming, and it came late (the first attempt was rejected)."""
    if not payment_ids:
        return 0
    late = conn.execute(
        select(payments.c.case_id, payments.c.program_id, payments.c.period, payments.c.amount)
        .where(payments.c.id.in_(sorted(payment_ids)), payments.c.attempt > 0)
    ).all()
    for p in late:
        confirm(conn, p.case_id, "payment_sent", at=at, program=p.program_id, serial=p.period,
                amount=p.amount, period=p.period, bank=bank)
    return len(late)
