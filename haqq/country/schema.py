"""The layout of a country file and the time conventions shared by its writers and readers.

Times are stored as ISO 8601 text in Asia/Baku with a ``+04:00`` offset and whole seconds
(``2025-03-04T10:15:00+04:00``); dates as ``YYYY-MM-DD``. Azerbaijan has kept a fixed UTC+04:00
offset since 2016, so these strings sort in time order and SQL can compare them as text.
"""

from __future__ import annotations

import sqlite3
from datetime import date, datetime
from zoneinfo import ZoneInfo

from haqq.domain.errors import NaiveDatetime

BAKU = ZoneInfo("Asia/Baku")
SCHEMA_VERSION = "1"

#: Registry tables, filled by the generator. Indexes come after loading (see INDEXES).
REGISTRY_DDL = (
    """CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS persons (
        id INTEGER PRIMARY KEY,
        fin TEXT NOT NULL,
        name TEXT NOT NULL,
        sex TEXT NOT NULL,
        birth_date TEXT NOT NULL,
        mia_birth_date TEXT,
        death_date TEXT,
        mother_fin TEXT,
        father_fin TEXT,
        spouse_fin TEXT,
        married_on TEXT,
        household INTEGER NOT NULL,
        address TEXT NOT NULL,
        resident INTEGER NOT NULL,
        doc_number TEXT NOT NULL,
        doc_valid_until TEXT,
        phone TEXT,
        language TEXT NOT NULL,
        employed INTEGER NOT NULL,
        employer TEXT,
        monthly_income INTEGER NOT NULL,
        employment_end TEXT,
        insurance_months INTEGER NOT NULL,
        pension_capital INTEGER NOT NULL,
        pensions TEXT NOT NULL,
        disability_group INTEGER,
        disability_since TEXT,
        disability_until TEXT
    )""",
    """CREATE TABLE IF NOT EXISTS life_events (
        seq INTEGER PRIMARY KEY,
        id TEXT NOT NULL,
        type TEXT NOT NULL,
        fin TEXT NOT NULL,
        occurred_at TEXT NOT NULL,
        payload TEXT NOT NULL,
        source TEXT NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS bank_accounts (
        iban TEXT NOT NULL,
        fin TEXT NOT NULL,
        bank TEXT NOT NULL,
        opened_at TEXT NOT NULL,
        closed_at TEXT,
        card_status TEXT NOT NULL,
        origin TEXT NOT NULL
    )""",
)

INDEXES = (
    "CREATE UNIQUE INDEX IF NOT EXISTS persons_fin ON persons(fin)",
    "CREATE INDEX IF NOT EXISTS persons_mother ON persons(mother_fin) WHERE mother_fin IS NOT NULL",
    "CREATE INDEX IF NOT EXISTS persons_father ON persons(father_fin) WHERE father_fin IS NOT NULL",
    "CREATE UNIQUE INDEX IF NOT EXISTS persons_phone ON persons(phone) WHERE phone IS NOT NULL",
    "CREATE UNIQUE INDEX IF NOT EXISTS life_events_id ON life_events(id)",
    "CREATE INDEX IF NOT EXISTS life_events_time ON life_events(occurred_at, id)",
    "CREATE UNIQUE INDEX IF NOT EXISTS bank_accounts_iban ON bank_accounts(iban)",
    "CREATE INDEX IF NOT EXISTS bank_accounts_fin ON bank_accounts(fin)",
)

#: Tables the simulated bank and SMS gateway write while haqq runs.
INSTITUTION_DDL = (
    """CREATE TABLE IF NOT EXISTS bank_account_requests (
        key TEXT PRIMARY KEY,
        fin TEXT NOT NULL,
        name TEXT NOT NULL,
        requested_at TEXT NOT NULL,
        answer_at TEXT NOT NULL,
        outcome TEXT NOT NULL,
        iban TEXT,
        reason TEXT
    )""",
    """CREATE TABLE IF NOT EXISTS bank_transfers (
        key TEXT PRIMARY KEY,
        fin TEXT NOT NULL,
        iban TEXT NOT NULL,
        amount INTEGER NOT NULL,
        reference TEXT NOT NULL,
        at TEXT NOT NULL,
        status TEXT NOT NULL,
        reason TEXT,
        attempts INTEGER NOT NULL DEFAULT 1
    )""",
    """CREATE TABLE IF NOT EXISTS sms_sent (
        key TEXT PRIMARY KEY,
        gateway_id TEXT NOT NULL,
        phone TEXT NOT NULL,
        text TEXT NOT NULL,
        at TEXT NOT NULL,
        reply_code TEXT,
        status TEXT NOT NULL,
        reason TEXT,
        attempts INTEGER NOT NULL DEFAULT 1
    )""",
    # Delivery receipts the network will send for a message (one per part, the parts' ids
    # being the message's and ``.2``, ``.3`` …), returned from ``at`` until acknowledged.
    """CREATE TABLE IF NOT EXISTS sms_dlr (
        gateway_id TEXT PRIMARY KEY,
        parts INTEGER NOT NULL,
        status TEXT NOT NULL,
        at TEXT NOT NULL,
        detail TEXT,
        acked INTEGER NOT NULL DEFAULT 0
    ) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS sms_inbound (
        gateway_id TEXT PRIMARY KEY,
        phone TEXT NOT NULL,
        text TEXT NOT NULL,
        received_at TEXT NOT NULL,
        acked INTEGER NOT NULL DEFAULT 0,
        in_reply_to TEXT
    )""",
    # Payment files (ISO 20022) the bank received: a name seen before is ignored.
    """CREATE TABLE IF NOT EXISTS bank_files_in (
        name TEXT PRIMARY KEY,
        received_at TEXT NOT NULL,
        paid_at TEXT,
        transactions INTEGER NOT NULL,
        sha256 TEXT NOT NULL,
        outcome TEXT NOT NULL
    )""",
    # Reports (pain.002, camt.054) the bank made, returned from ready_at until acknowledged.
    """CREATE TABLE IF NOT EXISTS bank_files_out (
        name TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        answers TEXT NOT NULL,
        ready_at TEXT NOT NULL,
        content BLOB NOT NULL,
        acked INTEGER NOT NULL DEFAULT 0
    )""",
    "CREATE INDEX IF NOT EXISTS bank_files_out_pending ON bank_files_out(acked, ready_at)",
    "CREATE INDEX IF NOT EXISTS sms_inbound_pending ON sms_inbound(acked, received_at)",
    "CREATE INDEX IF NOT EXISTS sms_dlr_pending ON sms_dlr(acked, at)",
    "CREATE INDEX IF NOT EXISTS sms_inbound_reply_to ON sms_inbound(in_reply_to)",
    "CREATE INDEX IF NOT EXISTS sms_sent_code ON sms_sent(phone, reply_code) WHERE reply_code IS NOT NULL",
)


def baku_iso(moment: datetime) -> str:
    """``moment`` as stored: Asia/Baku, ISO 8601 with offset (microseconds only if non-zero).

    Keeping microseconds when present keeps text comparisons exact: ``…:05+04:00`` sorts before
    ``…:05.5+04:00`` because ``+`` sorts before ``.``.
    """
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise NaiveDatetime("a time given to the simulated institutions")
    return moment.astimezone(BAKU).isoformat()


def baku_date(moment: datetime) -> str:
    """The Asia/Baku calendar date of ``moment`` as ``YYYY-MM-DD``."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise NaiveDatetime("a time given to the simulated institutions")
    return moment.astimezone(BAKU).date().isoformat()


def parse_baku(text: str) -> datetime:
    """Read back a stored time (or a stored date, taken as midnight in Baku)."""
    if len(text) == 10:
        d = date.fromisoformat(text)
        return datetime(d.year, d.month, d.day, tzinfo=BAKU)
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        return moment.replace(tzinfo=BAKU)
    return moment.astimezone(BAKU)


def ensure_institution_tables(conn: sqlite3.Connection) -> None:
    """Create the bank and gateway tables if missing (idempotent; safe across processes)."""
    for ddl in INSTITUTION_DDL:
        conn.execute(ddl)
