"""Texting: send the SMS outbox through the gateway, and take in what the network says.

- **Sending.** Due notifications are claimed, handed to the gateway with their keys (a repeat
  after a crash is recognised by the key) and recorded in one transaction with the answer:
  accepted (with the id of every part), refused for good, or refused for now. A message
  refused for now, or one the gateway could not take at all, is offered again after a
  growing pause, up to ``max_attempts`` times; then it is undeliverable.
- **Rate.** Each worker offers at most ``rate`` messages a second (0: no limit), the gateway's
  contracted throughput shared between the workers.
- **Quiet hours** are applied when a message is queued (see :mod:`haqq.domain.quiet`) and
  again when a retry is put off.
- **Receipts.** Delivery receipts (from the gateway's connection, or pushed to haqq's HTTP
  endpoint) are stored in the ``sms_receipts`` inbox and applied here: a message is
  delivered when every part is; failed or expired when any part is.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import Connection, Row, select

from haqq.adapters.store import bulk
from haqq.adapters.store.repository import chunks, insert_ignore, skip_locked
from haqq.adapters.store.schema import inbound_sms, notifications, sms_parts, sms_receipts
from haqq.domain.quiet import QuietHours
from haqq.ports import (
    DeliveryReceipt,
    GatewayUnavailable,
    InboundSms,
    OutgoingSms,
    SmsGateway,
    SubmitResult,
)

log = structlog.get_logger("haqq.sms")

#: The situations that ask the citizen for an answer.
ASKING = frozenset({"consent_request", "reminder"})
#: Receipt statuses that settle a part, and what a message becomes when a part has it.
FINAL = {"delivered": "delivered", "failed": "failed", "expired": "failed"}


@dataclass(frozen=True, slots=True)
class SmsPolicy:
    quiet: QuietHours | None = None
    #: Messages a second this worker may offer the gateway (0: no limit).
    rate: float = 0.0
    max_attempts: int = 8
    backoff: timedelta = timedelta(seconds=30)
    max_backoff: timedelta = timedelta(hours=1)

    def retry_at(self, now: datetime, attempts: int) -> datetime:
        """When a message refused for the ``attempts``-th time is offered again."""
        pause = min(self.backoff * (2 ** max(attempts - 1, 0)), self.max_backoff)
        later = now + pause
        return self.quiet.next_allowed(later) if self.quiet else later


@dataclass(slots=True)
class RateLimit:
    """A token bucket: ``rate`` tokens a second, at most one second's worth saved up."""

    rate: float
    clock: Callable[[], float] = time.monotonic
    _tokens: float = field(default=0.0)
    _at: float | None = None

    def take(self, wanted: int) -> int:
        """How many of ``wanted`` messages may go now (all when there is no limit)."""
        if self.rate <= 0:
            return wanted
        now = self.clock()
        if self._at is None:
            self._tokens = self.rate
        else:
            self._tokens = min(self.rate, self._tokens + (now - self._at) * self.rate)
        self._at = now
        allowed = min(wanted, int(self._tokens))
        self._tokens -= allowed
        return allowed


def due(conn: Connection, now: datetime, limit: int, shard: tuple[int, int] | None = None) -> list[Row[Any]]:
    """Pending notifications due by ``now``, oldest first (claimed on PostgreSQL); with
    ``shard`` ``(i, n)``, only those whose id is ``i`` modulo ``n``."""
    if limit <= 0:
        return []
    stmt = (
        select(notifications.c.id, notifications.c.key, notifications.c.phone,
               notifications.c.text, notifications.c.due_at, notifications.c.reply_code,
               notifications.c.attempts, notifications.c.kind)
        .where(notifications.c.status == "pending", notifications.c.due_at <= now)
        .order_by(notifications.c.due_at)
        .limit(limit)
    )
    if shard is not None:
        stmt = stmt.where(notifications.c.id % shard[1] == shard[0])
    return list(conn.execute(skip_locked(stmt, conn, notifications)).all())


@dataclass(frozen=True, slots=True)
class Offered:
    """What the gateway said to a batch: answers by key, or why it could take none."""

    results: Mapping[str, SubmitResult]
    unavailable: str | None = None


def submit(gateway: SmsGateway, rows: Sequence[Any]) -> Offered:
    """Hand the messages to the gateway, each with its idempotency key."""
    if not rows:
        return Offered({})
    try:
        return Offered(gateway.submit([
            # Only a consent request (or its reminder) awaits an answer; a grant's code is for
            # a STOP the citizen may send, or not.
            OutgoingSms(key, phone, text, due_at, code if kind in ASKING else None)
            for _, key, phone, text, due_at, code, _, kind in rows
        ]))
    except GatewayUnavailable as exc:
        log.warning("SMS gateway unavailable", gateway=gateway.name, error=str(exc), messages=len(rows))
        return Offered({}, unavailable=str(exc) or "gateway unavailable")


def record(
    conn: Connection,
    rows: Sequence[Row[Any]],
    offered: Offered,
    *,
    gateway: str,
    now: datetime,
    at: datetime,
    policy: SmsPolicy,
) -> int:
    """Record what the gateway answered, for notifications still pending."""
    sent: list[dict[str, Any]] = []
    refused: list[dict[str, Any]] = []
    later: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    for r in rows:
        result = offered.results.get(r.key)
        if result is not None and result.status == "accepted":
            ids = result.parts or (result.gateway_id,)
            sent.append({"status": "sent", "gateway": gateway, "gateway_id": result.gateway_id,
                         "parts": len(ids), "attempts": r.attempts + 1, "sent_at": r.due_at,
                         "sent_wall": at, "id": r.id})
            parts.extend({"message_id": m, "notification_id": r.id, "seq": i, "status": "sent", "at": None}
                         for i, m in enumerate(ids, 1))
        elif result is not None and result.status == "rejected":
            refused.append({"status": "rejected", "gateway": gateway, "gateway_id": result.gateway_id,
                            "reason": result.reason, "attempts": r.attempts + 1, "sent_wall": at,
                            "id": r.id})
        else:
            attempts = r.attempts + 1
            reason = offered.unavailable or (result.reason if result else None) or "not answered"
            if attempts >= policy.max_attempts:
                refused.append({"status": "undeliverable", "gateway": gateway, "gateway_id": None,
                                "reason": f"gave up after {attempts} attempts: {reason}",
                                "attempts": attempts, "sent_wall": at, "id": r.id})
            else:
                later.append({"due_at": policy.retry_at(now, attempts), "attempts": attempts,
                              "reason": reason, "id": r.id})
    pending = {"status": "pending"}
    done = bulk.update_rows(conn, notifications, "id", sent, only_if=pending)
    bulk.update_rows(conn, notifications, "id", refused, only_if=pending)
    bulk.update_rows(conn, notifications, "id", later, only_if=pending)
    if parts:
        insert_ignore(conn, sms_parts, parts, ["message_id"])
    if later:
        log.info("SMS put off", gateway=gateway, messages=len(later), reason=later[0]["reason"])
    return done + len(refused) + len(later)


@dataclass(frozen=True)
class Inbox:
    """What the gateway holds for haqq, taken before the write transaction that stores it:
    the replies, the receipts, and the parts of the receipts found in the store then (a part
    once sent is never removed, nor moved to another message)."""

    received: Sequence[InboundSms]
    receipts: Sequence[DeliveryReceipt]
    parts: Mapping[str, int]


def collect(gateway: SmsGateway, now: datetime, limit: int, conn: Connection | None = None) -> Inbox:
    """Take what the gateway holds up to ``now`` (``conn``: a read of the store, to find the
    receipts' parts in too; else they are found when applied)."""
    receipts = gateway.receipts(as_of=now, limit=limit)
    received = gateway.inbound(as_of=now, limit=limit)
    return Inbox(received, receipts, _parts(conn, {r.message_id for r in receipts}) if conn is not None else {})


@dataclass
class Unplaced:
    """Receipts for parts haqq has not recorded yet, by when this process first saw each. A
    worker records the parts of a message after the gateway took it, so the message's receipt
    can come first (another worker takes the receipts in): such a receipt is left at the
    gateway, not acknowledged, to come again; only one still unplaced ``grace`` seconds after
    it was first seen is refused (a part haqq never sent)."""

    grace: float = 30.0
    clock: Callable[[], float] = time.monotonic
    first_seen: dict[str, float] = field(default_factory=dict)

    def waits(self, receipt_id: str) -> bool:
        now = self.clock()
        return now - self.first_seen.setdefault(receipt_id, now) < self.grace

    def forget(self, receipt_ids: Sequence[str]) -> None:
        for r in receipt_ids:
            self.first_seen.pop(r, None)


def fetch(
    conn: Connection, gateway: SmsGateway, now: datetime, limit: int, inbox: Inbox | None = None,
    unplaced: Unplaced | None = None,
) -> list[str]:
    """Store the replies received up to ``now`` and apply the receipts (``inbox``: taken from
    the gateway before this transaction); returns the ids to acknowledge to the gateway after
    the commit (so a crash before it means they come again). With ``unplaced``, a receipt whose
    part is not recorded yet waits at the gateway (see :class:`Unplaced`); without, it is
    refused at once."""
    taken = inbox or collect(gateway, now, limit)
    received = taken.received
    insert_ignore(
        conn, inbound_sms,
        [{"gateway_id": m.gateway_id, "gateway": gateway.name, "phone": m.phone, "text": m.text,
          "received_at": m.received_at, "status": "new"} for m in received],
        ["gateway_id"],
    )
    known = dict(taken.parts)
    known.update(_parts(conn, {r.message_id for r in taken.receipts} - known.keys()))
    waiting = {r.receipt_id for r in taken.receipts
               if r.message_id not in known and unplaced is not None and unplaced.waits(r.receipt_id)}
    receipts = [r for r in taken.receipts if r.receipt_id not in waiting]
    # Receipts taken from the gateway's connection are applied at once; only those haqq cannot
    # place are kept in the inbox, refused, for a person to see.
    unknown = apply(conn, receipts, known)
    store_receipts(conn, gateway.name, [r for r in receipts if r.message_id in unknown], now,
                   state="refused", outcome=NOT_SENT)
    taken_ids = [r.receipt_id for r in receipts]
    if unplaced is not None:
        unplaced.forget(taken_ids)
    return [m.gateway_id for m in received] + taken_ids


NOT_SENT = "no message part with this id was sent"


def store_receipts(
    conn: Connection, gateway: str, receipts: Sequence[Any], now: datetime, *, state: str = "new",
    outcome: str | None = None,
) -> int:
    """Put receipts in the inbox (a receipt seen before is ignored)."""
    return insert_ignore(
        conn, sms_receipts,
        [{"gateway": gateway, "receipt_id": r.receipt_id, "message_id": r.message_id,
          "status": r.status, "at": r.at, "detail": r.detail, "received_at": now, "state": state,
          "outcome": outcome}
         for r in receipts],
        ["receipt_id"],
    )


def apply_receipts(conn: Connection, limit: int) -> int:
    """Apply the receipts waiting in the inbox (pushed to haqq's HTTP endpoint); a receipt for a
    part haqq never sent is refused and kept with the reason."""
    stmt = (
        select(sms_receipts.c.id, sms_receipts.c.message_id, sms_receipts.c.status, sms_receipts.c.at,
               sms_receipts.c.detail)
        .where(sms_receipts.c.state == "new")
        .order_by(sms_receipts.c.id)
        .limit(limit)
    )
    rows = conn.execute(skip_locked(stmt, conn, sms_receipts)).all()
    if not rows:
        return 0
    unplaced = apply(conn, rows)
    bulk.update_rows(
        conn, sms_receipts, "id",
        [{"state": "refused" if r.message_id in unplaced else "applied",
          "outcome": NOT_SENT if r.message_id in unplaced else None, "id": r.id} for r in rows],
        only_if={"state": "new"},
    )
    return len(rows)


def _parts(conn: Connection, message_ids: set[str]) -> dict[str, int]:
    """The message (notification id) of each of these parts haqq sent."""
    found: dict[str, int] = {}
    for part in chunks(sorted(message_ids)):
        found.update(conn.execute(
            select(sms_parts.c.message_id, sms_parts.c.notification_id).where(sms_parts.c.message_id.in_(part))
        ).all())
    return found


def apply(conn: Connection, receipts: Sequence[Any], parts: Mapping[str, int] | None = None) -> set[str]:
    """Apply receipts (in the order they came) to their parts, and settle the messages whose
    parts all have their final word; returns the message ids haqq never sent. ``parts``: the
    parts found before (the rest are looked up here)."""
    if not receipts:
        return set()
    known = dict(parts or {})
    known.update(_parts(conn, {r.message_id for r in receipts} - known.keys()))
    # The last word on each part.
    word: dict[str, Any] = {}
    for r in receipts:
        if r.message_id in known and (r.status in FINAL or r.message_id not in word):
            word[r.message_id] = r
    bulk.update_rows(
        conn, sms_parts, "message_id",
        [{"status": r.status, "at": r.at, "message_id": m} for m, r in word.items()],
    )
    _settle(conn, sorted({known[m] for m, r in word.items() if r.status in FINAL}))
    return {r.message_id for r in receipts if r.message_id not in known}


def _settle(conn: Connection, ids: Sequence[int]) -> None:
    """Set each message's status from its parts: delivered when all are, failed when one is."""
    updates = []
    for part in chunks(ids):
        found = conn.execute(
            select(sms_parts.c.notification_id, sms_parts.c.status, sms_parts.c.at)
            .where(sms_parts.c.notification_id.in_(part))
        ).all()
        by_message: dict[int, list[Any]] = {}
        for f in found:
            by_message.setdefault(f.notification_id, []).append(f)
        for nid, got in by_message.items():
            failed = [g for g in got if FINAL.get(g.status) == "failed"]
            if failed:
                updates.append({"status": "failed", "reason": f"the network reported {failed[0].status}",
                                "delivered_at": None, "id": nid})
            elif all(g.status == "delivered" for g in got):
                updates.append({"status": "delivered", "reason": None,
                                "delivered_at": max(g.at for g in got), "id": nid})
    bulk.update_rows(conn, notifications, "id", updates, only_if={"status": "sent"})
