"""Dispatch: send what the outbox holds, and take in what comes back.

Each sender claims due outbox rows, hands them to the port with their idempotency keys and
records the result in the same transaction. A crash between the hand-over and the commit means
the rows are sent again with the same keys, and the bank or gateway recognises them.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sqlalchemy import Connection, bindparam, select, update

from haqq.adapters.store import bulk
from haqq.adapters.store.repository import insert_ignore, skip_locked
from haqq.adapters.store.schema import accounts, cases, inbound_sms, notifications, payments
from haqq.domain.cases import CaseState
from haqq.pipeline.consent import parse_reply
from haqq.ports import AccountRequest, Bank, OutgoingSms, SmsGateway, Transfer


def send_account_requests(conn: Connection, bank: Bank, limit: int) -> int:
    stmt = select(accounts.c.fin, accounts.c.request_key, accounts.c.requested_at).where(
        accounts.c.status == "requested"
    ).limit(limit)
    rows = conn.execute(skip_locked(stmt, conn, accounts)).all()
    if not rows:
        return 0
    bank.request_accounts(
        [AccountRequest(r.request_key, r.fin, "", r.requested_at) for r in rows]
    )
    bulk.update_rows(conn, accounts, "fin", [{"status": "sent", "fin": r.fin} for r in rows])
    return len(rows)


def take_account_answers(conn: Connection, bank: Bank, now: datetime, limit: int) -> int:
    """Ask the bank about open requests; an answer wakes the cases waiting on that person."""
    stmt = select(accounts.c.fin, accounts.c.request_key).where(accounts.c.status == "sent").limit(limit)
    rows = conn.execute(skip_locked(stmt, conn, accounts)).all()
    if not rows:
        return 0
    answers = bank.account_answers([r.request_key for r in rows], as_of=now)
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
                "answered_at": answer.answered_at or now,
                "fin": r.fin,
            }
        )
    if done:
        bulk.update_rows(conn, accounts, "fin", done)
        conn.execute(
            update(cases)
            .where(
                cases.c.beneficiary_fin == bindparam("b_fin"),
                cases.c.state == CaseState.ACCOUNT_REQUESTED.value,
            )
            .values(due_at=bindparam("b_at")),
            [{"b_fin": d["fin"], "b_at": d["answered_at"]} for d in done],
        )
    return len(done)


def send_payments(
    conn: Connection, bank: Bank, now: datetime, wall: Callable[[], datetime], limit: int
) -> int:
    stmt = (
        select(payments.c.id, payments.c.key, payments.c.fin, payments.c.iban,
               payments.c.amount, payments.c.due_at, payments.c.program_id, payments.c.period)
        .where(payments.c.status == "scheduled", payments.c.due_at <= now)
        .order_by(payments.c.due_at)
        .limit(limit)
    )
    rows = conn.execute(skip_locked(stmt, conn, payments)).all()
    if not rows:
        return 0
    results = bank.transfer(
        [
            Transfer(r.key, r.fin, r.iban or "", r.amount, f"{r.program_id} {r.period}", r.due_at)
            for r in rows
        ]
    )
    at = wall()
    bulk.update_rows(
        conn,
        payments,
        "id",
        [
            {
                "status": results[r.key].status,
                "reason": results[r.key].reason,
                "sent_at": r.due_at,
                "sent_wall": at,
                "id": r.id,
            }
            for r in rows
        ],
    )
    return len(rows)


def send_sms(
    conn: Connection, sms: SmsGateway, now: datetime, wall: Callable[[], datetime], limit: int
) -> int:
    stmt = (
        select(notifications.c.id, notifications.c.key, notifications.c.phone,
               notifications.c.text, notifications.c.due_at, notifications.c.reply_code)
        .where(notifications.c.status == "pending", notifications.c.due_at <= now)
        .order_by(notifications.c.due_at)
        .limit(limit)
    )
    rows = conn.execute(skip_locked(stmt, conn, notifications)).all()
    if not rows:
        return 0
    results = sms.submit(
        [OutgoingSms(r.key, r.phone, r.text, r.due_at, r.reply_code) for r in rows]
    )
    at = wall()
    bulk.update_rows(
        conn,
        notifications,
        "id",
        [
            {
                "status": "sent" if results[r.key].status == "accepted" else "rejected",
                "gateway_id": results[r.key].gateway_id,
                "sent_at": r.due_at,
                "sent_wall": at,
                "id": r.id,
            }
            for r in rows
        ],
    )
    return len(rows)


def fetch_inbound(conn: Connection, sms: SmsGateway, now: datetime, limit: int) -> list[str]:
    """Store replies received up to ``now``; returns the gateway ids to acknowledge after commit."""
    received = sms.inbound(as_of=now, limit=limit)
    insert_ignore(
        conn,
        inbound_sms,
        [
            {"gateway_id": m.gateway_id, "phone": m.phone, "text": m.text,
             "received_at": m.received_at, "status": "new"}
            for m in received
        ],
        ["gateway_id"],
    )
    return [m.gateway_id for m in received]


def apply_replies(conn: Connection, limit: int) -> int:
    """Match new replies to the consent requests they answer and wake those cases.

    A reply must come from the number the request went to and carry its code; anything else is
    refused and kept with the reason.
    """
    stmt = (
        select(inbound_sms.c.id, inbound_sms.c.phone, inbound_sms.c.text, inbound_sms.c.received_at)
        .where(inbound_sms.c.status == "new")
        .order_by(inbound_sms.c.received_at)
        .limit(limit)
    )
    rows = conn.execute(skip_locked(stmt, conn, inbound_sms)).all()
    if not rows:
        return 0
    parsed = {r.id: parse_reply(r.text) for r in rows}
    pairs = {(r.phone, p[1]) for r in rows if (p := parsed[r.id])}
    targets: dict[tuple[str, str], tuple[str, str]] = {}
    if pairs:
        found = conn.execute(
            select(notifications.c.phone, notifications.c.reply_code, cases.c.id, cases.c.state)
            .join(cases, cases.c.id == notifications.c.case_id)
            .where(
                notifications.c.kind == "consent_request",
                notifications.c.phone.in_(sorted({p for p, _ in pairs})),
            )
        ).all()
        targets = {(f.phone, f.reply_code): (f.id, f.state) for f in found}
    outcomes: list[tuple[int, str, str | None, str]] = []
    wakes = []
    for r in rows:
        reply = parsed[r.id]
        target = targets.get((r.phone, reply[1])) if reply else None
        if reply is None:
            outcomes.append((r.id, "refused", None, "not a consent reply"))
        elif target is None:
            outcomes.append((r.id, "refused", None, "no consent request with this code for this number"))
        elif target[1] != CaseState.AWAITING_CONSENT.value:
            outcomes.append((r.id, "refused", target[0], f"case is {target[1]}, no longer awaiting consent"))
        else:
            outcomes.append((r.id, "applied", target[0], reply[0]))
            wakes.append({"b_id": target[0], "b_answer": reply[0], "b_at": r.received_at})
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
            .values(consent_answer=bindparam("b_answer"), due_at=bindparam("b_at")),
            wakes,
        )
    return len(rows)
