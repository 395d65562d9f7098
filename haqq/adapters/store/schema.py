"""The tables of haqq's store. Alembic migrations are generated from and checked against this.

Tables that hold an outside effect are also its outbox: a payment, a notification or an account
request is written in the same transaction as the case change that causes it, with a unique
idempotency key, and sent later by the dispatcher.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

from haqq.domain.errors import NaiveDatetime

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

class UtcDateTime(TypeDecorator[datetime]):
    """Timezone-aware in, timezone-aware out: stored as UTC on every backend."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise NaiveDatetime("a stored time")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


TS = UtcDateTime()
Id = BigInteger().with_variant(Integer, "sqlite")

events = Table(
    "events",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("source", String(40), nullable=False),
    Column("source_event_id", String(100), nullable=False),
    Column("type", String(40), nullable=False),
    Column("fin", String(7), nullable=False, index=True),
    Column("occurred_at", TS, nullable=False),
    Column("payload", JSON, nullable=False),
    Column("received_at", TS, nullable=False),
    Column("received_wall", TS, nullable=False),
    # received -> triggered | no_program
    Column("status", String(20), nullable=False),
    Column("processed_at", TS),
    UniqueConstraint("source", "source_event_id"),
    Index(
        "ix_events_due",
        "received_at",
        postgresql_where=text("status = 'received'"),
        sqlite_where=text("status = 'received'"),
    ),
)

cases = Table(
    "cases",
    metadata,
    Column("id", String(24), primary_key=True),
    Column("program_id", String(60), nullable=False),
    Column("program_version", Integer, nullable=False),
    Column("catalogue_version", String(20), nullable=False),
    Column("pipeline_version", String(20), nullable=False),
    Column("event_id", ForeignKey("events.id"), nullable=False),
    Column("subject_fin", String(7), nullable=False, index=True),
    Column("beneficiary_fin", String(7), nullable=False, index=True),
    Column("state", String(20), nullable=False),
    # When the pipeline should next look at the case; NULL while it rests or waits outside.
    Column("due_at", TS),
    Column("created_at", TS, nullable=False),
    Column("created_wall", TS, nullable=False),
    Column("updated_at", TS, nullable=False),
    Column("facts", JSON),
    Column("review_reason", Text),
    Column("consent_answer", String(10)),
    Column("reminders", Integer, nullable=False, server_default="0"),
    Column("attempts", Integer, nullable=False, server_default="0"),
    # Raised by every write to the row: a worker that read the case outside the write lock
    # writes it only if nobody else wrote it meanwhile.
    Column("version", Integer, nullable=False, server_default="0"),
    UniqueConstraint("program_id", "event_id", "subject_fin", "beneficiary_fin"),
    Index(
        "ix_cases_due",
        "due_at",
        postgresql_where=text("due_at IS NOT NULL"),
        sqlite_where=text("due_at IS NOT NULL"),
    ),
)

case_transitions = Table(
    "case_transitions",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("case_id", ForeignKey("cases.id"), nullable=False, index=True),
    Column("source", String(20)),
    Column("target", String(20), nullable=False),
    Column("at", TS, nullable=False),
    Column("wall_at", TS, nullable=False),
    Column("cause", Text, nullable=False),
)

decisions = Table(
    "decisions",
    metadata,
    Column("case_id", ForeignKey("cases.id"), primary_key=True),
    Column("outcome", String(20), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("branch", String(60)),
    Column("legal_basis", JSON, nullable=False),
    Column("catalogue_version", String(20), nullable=False),
    # Reasons, parameters with their references, facts and the messages that brought them.
    Column("trace", JSON, nullable=False),
    Column("decided_at", TS, nullable=False),
)

entitlements = Table(
    "entitlements",
    metadata,
    # One entitlement per granted case: its id is the case's.
    Column("id", ForeignKey("cases.id"), primary_key=True),
    Column("program_id", String(60), nullable=False),
    # "Never twice": one entitlement per program and key (the child, the deceased, the person).
    Column("once_key", String(40), nullable=False),
    Column("fin", String(7), nullable=False, index=True),
    Column("subject_fin", String(7), nullable=False, index=True),
    Column("schedule", String(20), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("start_date", Date, nullable=False),
    Column("end_date", Date),
    # pending (awaiting account) | active | ended | declined
    Column("status", String(20), nullable=False),
    Column("ended_reason", Text),
    Column("created_at", TS, nullable=False),
    UniqueConstraint("program_id", "once_key"),
)

accounts = Table(
    "accounts",
    metadata,
    Column("fin", String(7), primary_key=True),
    Column("bank", String(20), nullable=False),
    Column("iban", String(34)),
    # existing | requested (outbox) | sent | open | refused
    Column("status", String(20), nullable=False),
    Column("request_key", String(60), unique=True),
    Column("card_status", String(20), nullable=False),
    Column("refusal", Text),
    # The account holder's name as the civil registry gives it (the creditor in bank files).
    Column("holder", Text),
    Column("requested_at", TS),
    Column("answered_at", TS),
    Index(
        "ix_accounts_pending",
        "status",
        postgresql_where=text("status IN ('requested', 'sent')"),
        sqlite_where=text("status IN ('requested', 'sent')"),
    ),
)

payments = Table(
    "payments",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("key", String(80), nullable=False, unique=True),
    # Looked up through the unique (entitlement_id, period) key, which leads with it.
    Column("entitlement_id", ForeignKey("entitlements.id"), nullable=False),
    Column("case_id", ForeignKey("cases.id"), nullable=False),
    Column("fin", String(7), nullable=False, index=True),
    Column("program_id", String(60), nullable=False),
    # "lump" or the month paid for, "YYYY-MM".
    Column("period", String(7), nullable=False),
    Column("period_start", Date, nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("due_at", TS, nullable=False),
    # See haqq.domain.payments: scheduled | queued | sent | accepted | rejected | held | cancelled
    Column("status", String(20), nullable=False),
    Column("iban", String(34)),
    Column("sent_at", TS),
    Column("sent_wall", TS),
    Column("reason", Text),
    # case (scheduled when the right was assigned) | payroll (the monthly payroll)
    Column("source", String(10), nullable=False, server_default="case"),
    # The payment run that carries it and the attempt (a corrected retry is a new attempt);
    # the two make its end-to-end id in bank files (haqq.domain.payments.end_to_end_id).
    Column("run_id", ForeignKey("payment_runs.id"), index=True),
    Column("attempt", Integer, nullable=False, server_default="0"),
    # The bank's ISO 20022 reason code of a rejection; when camt.054 confirmed settlement.
    Column("reason_code", String(4)),
    Column("settled_at", TS),
    UniqueConstraint("entitlement_id", "period"),
    Index(
        "ix_payments_due",
        "due_at",
        postgresql_where=text("status = 'scheduled'"),
        sqlite_where=text("status = 'scheduled'"),
    ),
)

#: Payment runs: a daily run of lump sums and arrears, a monthly payroll; each is previewed,
#: approved (by two people above the threshold), sent once as pain.001 files per bank.
payment_runs = Table(
    "payment_runs",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    # "daily 2026-03-05" | "payroll 2026-03" | "retry 2026-03-05": one run per label.
    Column("label", String(40), nullable=False, unique=True),
    Column("kind", String(10), nullable=False),
    # The requested execution date in the files.
    Column("run_date", Date, nullable=False),
    # draft | approved | sent | cancelled (haqq.domain.payments.RunStatus)
    Column("status", String(20), nullable=False),
    Column("payments", Integer, nullable=False),
    Column("total", BigInteger, nullable=False),
    # The approval threshold in force when the run was made (above it: two approvers).
    Column("threshold", BigInteger, nullable=False),
    Column("created_at", TS, nullable=False),
    Column("created_by", String(60), nullable=False),
    # Random, made with the run: its files' names start with it, so they are unique at the bank.
    Column("file_prefix", String(8), nullable=False),
    Column("approved_by", String(60)),
    Column("approved_at", TS),
    Column("second_approved_by", String(60)),
    Column("second_approved_at", TS),
    Column("sent_by", String(60)),
    Column("sent_at", TS),
)

#: Every bank file: pain.001 sent (out), pain.002 and camt.054 taken in (in). ``sha256`` makes a
#: file received twice recognisable; the content is kept as evidence.
payment_files = Table(
    "payment_files",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("direction", String(3), nullable=False),
    Column("kind", String(10), nullable=False),
    Column("bank", String(20), nullable=False),
    Column("message_id", String(35), nullable=False),
    Column("run_id", ForeignKey("payment_runs.id"), index=True),
    # For a report: the message it reports on.
    Column("original_message_id", String(35)),
    Column("transactions", Integer, nullable=False),
    Column("total", BigInteger, nullable=False),
    Column("sha256", String(64), nullable=False, unique=True),
    Column("content", LargeBinary, nullable=False),
    Column("at", TS, nullable=False),
    # For a file out: when the bank took it (None: recorded as sent, not yet handed over).
    Column("delivered_at", TS),
    Column("note", Text),
    UniqueConstraint("direction", "kind", "message_id"),
)

recovery_claims = Table(
    "recovery_claims",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("payment_id", ForeignKey("payments.id"), nullable=False, unique=True),
    Column("fin", String(7), nullable=False, index=True),
    Column("amount", BigInteger, nullable=False),
    Column("reason", Text, nullable=False),
    # open | returned | written_off
    Column("status", String(20), nullable=False),
    Column("created_at", TS, nullable=False),
    # Who closed it, when, and why (a write-off always says why).
    Column("closed_at", TS),
    Column("closed_by", String(60)),
    Column("note", Text),
)

#: Every stop applied: whose rights ended, from when, which programs (None: all of them), why.
#: A right written later (a case decided after the stop, on data as of before it) is held
#: against these, so an event handled out of order never leaves it running past its end.
stops = Table(
    "stops",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("case_id", ForeignKey("cases.id"), nullable=False, index=True),
    Column("fin", String(7), nullable=False, index=True),
    Column("end_date", Date, nullable=False),
    Column("programs", JSON),
    Column("reason", Text, nullable=False),
    Column("applied_at", TS, nullable=False),
)

notifications = Table(
    "notifications",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("key", String(80), nullable=False, unique=True),
    Column("case_id", ForeignKey("cases.id"), nullable=False, index=True),
    Column("fin", String(7), nullable=False, index=True),
    Column("phone", String(16)),
    Column("language", String(2), nullable=False),
    # granted | payment_sent | card_ready | consent_request | reminder | declined | stopped |
    # may_claim | lapsed | refused_reply (see haqq.notify.catalogue)
    Column("kind", String(20), nullable=False),
    Column("text", Text, nullable=False),
    Column("reply_code", String(8)),
    Column("due_at", TS, nullable=False),
    # pending (outbox) | sent (the gateway took it) | delivered | failed (the network said so) |
    # rejected (the gateway refused it for good) | undeliverable (gave up after retries)
    Column("status", String(20), nullable=False),
    Column("gateway_id", String(60)),
    Column("sent_at", TS),
    Column("sent_wall", TS),
    # Which gateway took it, in how many parts, after how many tries, and what came back.
    Column("gateway", String(20)),
    Column("parts", Integer),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("reason", Text),
    Column("delivered_at", TS),
    Index(
        "ix_notifications_due",
        "due_at",
        postgresql_where=text("status = 'pending'"),
        sqlite_where=text("status = 'pending'"),
    ),
    Index("ix_notifications_reply", "phone", "reply_code"),
)

#: What a citizen chose about a case, with its time and channel: consent given or refused,
#: a benefit declined or a recurring one stopped, a notify-mode benefit claimed later.
citizen_choices = Table(
    "citizen_choices",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("case_id", ForeignKey("cases.id"), nullable=False, index=True),
    Column("fin", String(7), nullable=False, index=True),
    # consent | refuse | decline | stop | claimed
    Column("choice", String(20), nullable=False),
    # sms | api | office | registry
    Column("channel", String(20), nullable=False),
    Column("at", TS, nullable=False),
    Column("recorded_at", TS, nullable=False),
    # The message or request it came in (an inbound SMS's gateway id, an API request id).
    Column("source", String(120)),
    Column("note", Text),
)

#: Every part of every message a gateway took, by the gateway's id for it: delivery receipts
#: name the part, and a message is delivered when all its parts are.
sms_parts = Table(
    "sms_parts",
    metadata,
    Column("message_id", String(80), primary_key=True),
    Column("notification_id", ForeignKey("notifications.id"), nullable=False, index=True),
    Column("seq", Integer, nullable=False),
    # sent | delivered | failed | expired | buffered
    Column("status", String(20), nullable=False),
    Column("at", TS),
    sqlite_with_rowid=False,
)

#: The inbox of delivery receipts: stored as they arrive (from a gateway's connection or
#: pushed to haqq's HTTP endpoint), applied to their notifications by the worker.
sms_receipts = Table(
    "sms_receipts",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("gateway", String(20), nullable=False),
    Column("receipt_id", String(120), nullable=False, unique=True),
    Column("message_id", String(80), nullable=False),
    # delivered | failed | expired | buffered
    Column("status", String(20), nullable=False),
    Column("at", TS, nullable=False),
    Column("detail", Text),
    Column("received_at", TS, nullable=False),
    # new | applied | refused
    Column("state", String(20), nullable=False),
    Column("outcome", Text),
    Index(
        "ix_sms_receipts_new",
        "id",
        postgresql_where=text("state = 'new'"),
        sqlite_where=text("state = 'new'"),
    ),
)

inbound_sms = Table(
    "inbound_sms",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("gateway_id", String(60), nullable=False, unique=True),
    Column("gateway", String(20)),
    Column("phone", String(16), nullable=False),
    Column("text", Text, nullable=False),
    Column("received_at", TS, nullable=False),
    # new | applied | refused
    Column("status", String(20), nullable=False),
    Column("case_id", String(24)),
    Column("outcome", Text),
    Index(
        "ix_inbound_new",
        "received_at",
        postgresql_where=text("status = 'new'"),
        sqlite_where=text("status = 'new'"),
    ),
)

data_access_log = Table(
    "data_access_log",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("fin", String(7), nullable=False, index=True),
    Column("at", TS, nullable=False),
    Column("wall_at", TS, nullable=False),
    Column("institution", String(40), nullable=False),
    Column("service", String(60), nullable=False),
    Column("message_id", String(60), nullable=False),
    Column("case_id", String(24)),
    Column("event_id", BigInteger),
    Column("requester", String(60), nullable=False),
    Column("purpose", Text, nullable=False),
    Column("legal_basis", Text, nullable=False),
)

#: Every message exchanged with another institution, out and in, hash-chained: ``seq`` orders
#: the chain and ``hash`` covers the entry and the previous entry's hash, so a changed or deleted
#: entry breaks it (``haqq audit verify``). See :mod:`haqq.adapters.store.messagelog`.
message_log = Table(
    "message_log",
    metadata,
    Column("seq", Id, primary_key=True, autoincrement=False),
    Column("message_id", String(60), nullable=False),
    # out: haqq asked; in: a registry (or a bank, a gateway) told haqq
    Column("direction", String(3), nullable=False),
    Column("client", String(200), nullable=False),
    Column("service", String(300), nullable=False),
    Column("user_id", String(60), nullable=False),
    Column("issue", String(80)),
    Column("at", TS, nullable=False),
    Column("outcome", String(80), nullable=False),
    Column("status", Integer),
    Column("request_hash", String(100)),
    Column("persons", Integer, nullable=False),
    Column("detail", Text),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    Index("ix_message_log_message_id", "message_id"),
)

payroll_runs = Table(
    "payroll_runs",
    metadata,
    Column("period", String(7), primary_key=True),
    Column("run_at", TS, nullable=False),
    Column("payments", Integer, nullable=False),
)

#: The simulated clock shared by worker processes during a replay (one row).
sim_clock = Table(
    "sim_clock",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("now", TS, nullable=False),
    Column("drain", Boolean, nullable=False, server_default="0"),
)

# --- the one-stop shop: officials, reviews, appeals ------------------------------------------

#: People who sign in to haqq's own issuer (the embedded mode; a ministry's identity provider
#: replaces it): officials, and citizens where no national e-ID is wired. Passwords are argon2id
#: hashes, never the password.
officials = Table(
    "officials",
    metadata,
    Column("username", String(60), primary_key=True),
    Column("name", Text, nullable=False),
    # caseworker | supervisor | auditor | citizen | system
    Column("role", String(20), nullable=False),
    Column("fin", String(7)),
    Column("password_hash", Text, nullable=False),
    Column("created_at", TS, nullable=False),
    Column("disabled", Boolean, nullable=False, server_default="0"),
)

#: Keys haqq made for itself (the local token issuer's secret), kept with the data they protect.
service_keys = Table(
    "service_keys",
    metadata,
    Column("name", String(60), primary_key=True),
    Column("value", Text, nullable=False),
    Column("created_at", TS, nullable=False),
)

#: A case in the review queue as people work it: who took it, and a decision waiting for a
#: supervisor's second approval (above the configured amount).
reviews = Table(
    "reviews",
    metadata,
    Column("case_id", ForeignKey("cases.id"), primary_key=True),
    # open | taken | awaiting_approval | done
    Column("stage", String(20), nullable=False),
    Column("assignee", String(60)),
    Column("taken_at", TS),
    Column("proposed_outcome", String(20)),
    Column("proposed_amount", BigInteger),
    Column("proposed_reason", Text),
    Column("proposed_by", String(60)),
    Column("proposed_at", TS),
    Column("updated_at", TS, nullable=False),
    Index("ix_reviews_stage", "stage"),
)

#: Every step people took on a case (take, release, propose, decide, approve, reject, appeal):
#: with the case's transitions, the audit trail of human decisions.
review_actions = Table(
    "review_actions",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("case_id", ForeignKey("cases.id"), nullable=False, index=True),
    Column("action", String(20), nullable=False),
    Column("by", String(60), nullable=False),
    Column("role", String(20), nullable=False),
    Column("outcome", String(20)),
    Column("amount", BigInteger),
    Column("reason", Text),
    Column("at", TS, nullable=False),
)

#: A citizen contests a decision. ``rerun``: the decision changes and the case runs again;
#: ``upheld``: the decision stands, with the official's written reason.
appeals = Table(
    "appeals",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("case_id", ForeignKey("cases.id"), nullable=False, index=True),
    Column("fin", String(7), nullable=False, index=True),
    Column("reason", Text, nullable=False),
    Column("opened_by", String(60), nullable=False),
    Column("channel", String(20), nullable=False),
    Column("opened_at", TS, nullable=False),
    # open | upheld | rerun
    Column("status", String(20), nullable=False),
    Column("decided_by", String(60)),
    Column("decision_reason", Text),
    Column("decided_at", TS),
    Index("ix_appeals_status", "status"),
)
