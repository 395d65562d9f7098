"""Dispatch: send what the outbox holds, and take in what comes back.

Each sender claims due outbox rows, hands them to the port with their idempotency keys and
records the result in the same transaction. A crash between the hand-over and the commit means
the rows are sent again with the same keys, and the bank or gateway recognises them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

import structlog
from sqlalchemy import Connection, Row, bindparam, func, select, update

from haqq.adapters.store import bulk
from haqq.adapters.store.repository import account_status, insert_ignore, skip_locked
from haqq.adapters.store.schema import (
    accounts,
    cases,
    citizen_choices,
    inbound_sms,
    notifications,
    payments,
    recovery_claims,
)
from haqq.domain.cases import CaseState
from haqq.domain.quiet import QuietHours
from haqq.pipeline import choices
from haqq.pipeline.choices import GRANTS
from haqq.pipeline.consent import parse_reply
from haqq.ports import (
    AccountAnswer,
    AccountRequest,
    Bank,
    Transfer,
    TransferResult,
)
from haqq.rules.messages import MessageCatalogue

log = structlog.get_logger("haqq.replies")


def _awaiting_bank(
    conn: Connection, status: str, limit: int, shard: tuple[int, int] | None
) -> list[Row[Any]]:
    stmt = select(accounts.c.fin, accounts.c.request_key, accounts.c.requested_at, accounts.c.holder).where(
        *account_status(status)
    ).limit(limit)
    if shard is not None:  # by the FIN's last character (SQLite only: unicode())
        stmt = stmt.where(func.unicode(func.substr(accounts.c.fin, 7, 1)) % shard[1] == shard[0])
    return list(conn.execute(skip_locked(stmt, conn, accounts)).all())


def requested_accounts(
    conn: Connection, limit: int, shard: tuple[int, int] | None = None
) -> list[Row[Any]]:
    """Account requests in the outbox; ``shard`` as for :func:`due_payments`."""
    return _awaiting_bank(conn, "requested", limit, shard)


def request_accounts(bank: Bank, rows: Sequence[Row[Any]]) -> None:
    """Hand the requests to the bank, each with its idempotency key."""
    if rows:
        bank.request_accounts([AccountRequest(r.request_key, r.fin, r.holder or "", r.requested_at) for r in rows])


def record_requests(conn: Connection, rows: Sequence[Row[Any]]) -> int:
    bulk.update_rows(
        conn, accounts, "fin", [{"status": "sent", "fin": r.fin} for r in rows],
        only_if={"status": "requested"},
    )
    return len(rows)


def send_account_requests(conn: Connection, bank: Bank, limit: int) -> int:
    rows = requested_accounts(conn, limit)
    request_accounts(bank, rows)
    return record_requests(conn, rows)


def awaited_accounts(
    conn: Connection, limit: int, shard: tuple[int, int] | None = None
) -> list[Row[Any]]:
    """Account requests the bank has not answered yet; ``shard`` as for :func:`due_payments`."""
    return _awaiting_bank(conn, "sent", limit, shard)


def ask_bank(bank: Bank, rows: Sequence[Row[Any]], now: datetime) -> Mapping[str, AccountAnswer]:
    """The bank's answers to these requests, as of ``now``."""
    return bank.account_answers([r.request_key for r in rows], as_of=now) if rows else {}


def record_answers(
    conn: Connection, rows: Sequence[Row[Any]], answers: Mapping[str, AccountAnswer], now: datetime
) -> int:
    """Keep the bank's answers; an answer wakes the cases waiting on that person."""
    done = []
    for r in rows:
        answer = answers.get(r.request_key)
        if answer is None or answer.status == "pending":
            continue
        done.append(
            {
                "status": "open" if answer.status == "opened" else "refused",
                "iban": answer.iban,
                "card_status": "issued" if answer.status == "opened" else "none",
                "refusal": answer.reason,
                "holder": answer.holder or r.holder,
                "answered_at": answer.answered_at or now,
                "fin": r.fin,
            }
        )
    if done:
        bulk.update_rows(conn, accounts, "fin", done, only_if={"status": "sent"})
        conn.execute(
            update(cases)
            .where(
                cases.c.beneficiary_fin == bindparam("b_fin"),
                cases.c.state == CaseState.ACCOUNT_REQUESTED.value,
            )
            .values(due_at=bindparam("b_at"), version=cases.c.version + 1),
            [{"b_fin": d["fin"], "b_at": d["answered_at"]} for d in done],
        )
    return len(done)


def take_account_answers(conn: Connection, bank: Bank, now: datetime, limit: int) -> int:
    """Ask the bank about open requests; an answer wakes the cases waiting on that person."""
    rows = awaited_accounts(conn, limit)
    return record_answers(conn, rows, ask_bank(bank, rows, now), now)


def due_payments(
    conn: Connection, now: datetime, limit: int, shard: tuple[int, int] | None = None
) -> list[Row[Any]]:
    """Scheduled payments due by ``now``, oldest first (claimed on PostgreSQL); with ``shard``
    ``(i, n)``, only those whose id is ``i`` modulo ``n``."""
    stmt = (
        select(payments.c.id, payments.c.key, payments.c.fin, payments.c.iban,
               payments.c.amount, payments.c.due_at, payments.c.program_id, payments.c.period)
        .where(payments.c.status == "scheduled", payments.c.due_at <= now)
        .order_by(payments.c.due_at)
        .limit(limit)
    )
    if shard is not None:
        stmt = stmt.where(payments.c.id % shard[1] == shard[0])
    return list(conn.execute(skip_locked(stmt, conn, payments)).all())


def transfer(bank: Bank, rows: Sequence[Row[Any]]) -> Mapping[str, TransferResult]:
    """Hand the payments to the bank, each with its idempotency key."""
    if not rows:
        return {}
    return bank.transfer(
        [
            Transfer(r.key, r.fin, r.iban or "", r.amount, f"{r.program_id} {r.period}", r.due_at)
            for r in rows
        ]
    )


def record_payments(
    conn: Connection,
    rows: Sequence[Row[Any]],
    results: Mapping[str, TransferResult],
    at: datetime,
) -> int:
    """Record what the bank answered, for payments still scheduled.

    A payment sent while a stop cancelled it (possible only when it was sent outside the write
    lock) was paid all the same: it is recorded as the bank answered, and the money it paid
    after the stop becomes a recovery claim, as for any payment the stop found already paid.
    """
    if not rows:
        return 0
    answered = [
        {
            "status": results[r.key].status,
            "reason": results[r.key].reason,
            # The ISO 20022 code the bank's reason starts with ("AC04 closed account").
            "reason_code": (results[r.key].reason or "")[:4] or None,
            "sent_at": r.due_at,
            "sent_wall": at,
            "id": r.id,
        }
        for r in rows
    ]
    done = bulk.update_rows(conn, payments, "id", answered, only_if={"status": "scheduled"})
    if done < len(rows):
        _paid_while_cancelled(conn, answered, at)
    return len(rows)


def _paid_while_cancelled(conn: Connection, answered: Sequence[dict[str, Any]], at: datetime) -> None:
    by_id = {a["id"]: a for a in answered}
    raced = conn.execute(
        select(payments.c.id, payments.c.fin, payments.c.amount, payments.c.reason).where(
            payments.c.id.in_(sorted(by_id)), payments.c.status == "cancelled"
        )
    ).all()
    paid = [r for r in raced if by_id[r.id]["status"] == "accepted"]
    if not paid:
        return
    bulk.update_rows(
        conn, payments, "id", [{**by_id[r.id], "reason": r.reason} for r in paid],
        only_if={"status": "cancelled"},
    )
    insert_ignore(
        conn,
        recovery_claims,
        [
            {"payment_id": r.id, "fin": r.fin, "amount": r.amount,
             "reason": r.reason or "stopped", "status": "open", "created_at": at}
            for r in paid
        ],
        ["payment_id"],
    )


def send_payments(
    conn: Connection, bank: Bank, now: datetime, wall: Callable[[], datetime], limit: int
) -> int:
    rows = due_payments(conn, now, limit)
    return record_payments(conn, rows, transfer(bank, rows), wall())


def apply_replies(
    conn: Connection,
    limit: int,
    *,
    now: datetime,
    quiet: QuietHours | None = None,
    messages: MessageCatalogue | None = None,
) -> int:
    """Act on new replies: a consent answer wakes its case; ``STOP <code>`` declines or stops
    the benefit a grant's SMS told of.

    A reply must come from the number the SMS went to and carry its code; anything else is
    refused and kept with the reason (and logged), and changes nothing.
    """
    stmt = (
        select(inbound_sms.c.id, inbound_sms.c.gateway_id, inbound_sms.c.phone, inbound_sms.c.text,
               inbound_sms.c.received_at)
        .where(inbound_sms.c.status == "new")
        .order_by(inbound_sms.c.received_at)
        .limit(limit)
    )
    rows = conn.execute(skip_locked(stmt, conn, inbound_sms)).all()
    if not rows:
        return 0
    parsed = {r.id: parse_reply(r.text) for r in rows}
    pairs = {(r.phone, p[1]) for r in rows if (p := parsed[r.id])}
    targets: dict[tuple[str, str, str], tuple[str, str]] = {}
    if pairs:
        found = conn.execute(
            select(notifications.c.phone, notifications.c.reply_code, notifications.c.kind, cases.c.id,
                   cases.c.state)
            .join(cases, cases.c.id == notifications.c.case_id)
            .where(
                notifications.c.kind.in_(("consent_request", *GRANTS)),
                notifications.c.phone.in_(sorted({p for p, _ in pairs})),
                notifications.c.reply_code.is_not(None),
            )
        ).all()
        for f in found:
            kind = "consent" if f.kind == "consent_request" else "grant"
            targets[(f.phone, f.reply_code, kind)] = (f.id, f.state)
    outcomes: list[tuple[int, str, str | None, str]] = []
    wakes = []
    answered = []
    for r in rows:
        reply = parsed[r.id]
        if reply is None:
            outcomes.append((r.id, "refused", None, "not a reply haqq understands (a word and a four-digit code)"))
            continue
        word, code = reply
        target = targets.get((r.phone, code, "grant" if word == "stop" else "consent"))
        if target is None:
            what = "grant" if word == "stop" else "consent request"
            outcomes.append((r.id, "refused", None, f"no {what} with code {code} was sent to this number"))
        elif word == "stop":
            try:
                done = choices.stop(conn, target[0], at=r.received_at, now=now, channel="sms",
                                    source=r.gateway_id, quiet=quiet, messages=messages)
                outcomes.append((r.id, "applied", target[0], f"{done.choice}: {done.outcome}"))
            except choices.ChoiceRefused as exc:
                outcomes.append((r.id, "refused", target[0], str(exc)))
        elif target[1] != CaseState.AWAITING_CONSENT.value:
            outcomes.append((r.id, "refused", target[0], f"case is {target[1]}, no longer awaiting consent"))
        else:
            outcomes.append((r.id, "applied", target[0], word))
            wakes.append({"b_id": target[0], "b_answer": word, "b_at": r.received_at})
            answered.append((target[0], word, r))
    for i, status, case_id, outcome in outcomes:
        if status == "refused":
            log.info("reply refused", inbound=i, case=case_id, reason=outcome)
    conn.execute(
        update(inbound_sms)
        .where(inbound_sms.c.id == bindparam("b_id"))
        .values(status=bindparam("b_status"), case_id=bindparam("b_case"), outcome=bindparam("b_out")),
        [{"b_id": i, "b_status": s, "b_case": c, "b_out": o} for i, s, c, o in outcomes],
    )
    if wakes:
        conn.execute(
            update(cases)
            .where(cases.c.id == bindparam("b_id"), cases.c.state == CaseState.AWAITING_CONSENT.value,
                   cases.c.consent_answer.is_(None))
            .values(
                consent_answer=bindparam("b_answer"), due_at=bindparam("b_at"),
                version=cases.c.version + 1,
            ),
            wakes,
        )
        fins = dict(conn.execute(
            select(cases.c.id, cases.c.beneficiary_fin).where(cases.c.id.in_(sorted({c for c, _, _ in answered})))
        ).all())
        bulk.insert_rows(conn, citizen_choices, [
            {"case_id": c, "fin": fins[c], "choice": "consent" if w == "yes" else "refuse", "channel": "sms",
             "at": r.received_at, "recorded_at": now, "source": r.gateway_id, "note": None}
            for c, w, r in answered
        ])
    return len(rows)
