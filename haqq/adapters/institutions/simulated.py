"""Simulated institutions over a synthetic country file (see :mod:`haqq.country`).

Three adapters, one per port of :mod:`haqq.ports`:

- :class:`SimulatedInstitutions` answers the registries' services from the country's data,
  as of a moment (a person not yet born is unknown, the dead are not alive, a status is
  active only between its dates, a spouse is a spouse only from the wedding);
- :class:`SimulatedBank` ("HAQB") finds accounts, opens new ones 1-5 days after being asked,
  accepts or rejects transfers, and takes ISO 20022 payment files (``pain.001``), answering
  each with a ``pain.002`` status report and a ``camt.054`` debit notification;
- :class:`SimulatedSmsGateway` records outgoing messages and makes citizens answer consent
  requests, in their own language and with their own typing habits.

All three write to the same SQLite file and are safe to use from several OS processes at once:
WAL mode, a 30 s busy timeout, short ``BEGIN IMMEDIATE`` transactions, and a connection opened
lazily per process (an adapter object can be pickled into a worker process). Every effect is
idempotent by its key, and every random choice is a hash of ``(seed, key)``, so a run gives the
same answers whatever the order or number of calls.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import sqlite3
import threading
import uuid
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any, Literal

from haqq.adapters.bank.iso20022 import (
    InvalidPaymentRun,
    MalformedBankFile,
    Notification,
    NotificationEntry,
    PaymentRun,
    StatusReport,
    TransactionStatus,
    check_identifier,
    credit_transfer_initiation,
    notification_file,
    status_report_file,
)
from haqq.adapters.turns import WriteTurns
from haqq.country.schema import (
    BAKU,
    baku_date,
    baku_iso,
    ensure_institution_tables,
    parse_baku,
)
from haqq.domain import sms
from haqq.domain.errors import InstitutionError
from haqq.domain.iban import iban_is_valid, make_iban
from haqq.ports import (
    Account,
    AccountAnswer,
    AccountRequest,
    BankFile,
    DeliveryReceipt,
    Exchange,
    InboundSms,
    OutgoingSms,
    Service,
    ServiceAnswer,
    SubmitResult,
    Transfer,
    TransferResult,
)

__all__ = [
    "SimulatedBank",
    "SimulatedInstitutions",
    "SimulatedSmsGateway",
    "iban_is_valid",
]

#: SQLite's classic limit on bound parameters is 999; stay under it.
_IN_CHUNK = 900
_PHONE_RE = re.compile(r"^\+994[0-9]{9}$")

BANK_NAME = "HAQB"
REFUSAL_SHARE = 0.02
REFUSED_IDENTITY = "identity could not be confirmed"
REFUSED_DECEASED = "the person is registered as deceased"
AC01 = "AC01 incorrect account number"
AC04 = "AC04 closed account"
AM12 = "AM12 invalid amount"
AM03 = "AM03 currency not allowed"
#: The only currency the bank pays in.
CURRENCY = "AZN"
#: When the bank pays a file's transfers on their requested execution date (Baku time).
EXECUTION_TIME = time(9)
#: A status report is ready this long after its file arrived.
STATUS_REPORT_DELAY = timedelta(hours=2)
#: A notification is ready at this hour (Baku time) on the day after the payment.
NOTIFICATION_TIME = time(10)
_REASON_CODE_RE = re.compile(r"[A-Z0-9]{4}")
YES_SHARE = 0.80
NO_SHARE = 0.10

_YES = {"az": ("BƏLİ", "Bəli", "bəli"), "ru": ("ДА", "Да", "да"), "en": ("YES", "Yes", "yes")}
_NO = {"az": ("XEYR", "Xeyr", "xeyr"), "ru": ("НЕТ", "Нет", "нет"), "en": ("NO", "No", "no")}


def _chunks(items: Sequence[str]) -> Iterator[list[str]]:
    for i in range(0, len(items), _IN_CHUNK):
        yield list(items[i : i + _IN_CHUNK])


def _marks(n: int) -> str:
    return ",".join("?" * n)


def _uniform(seed: int, purpose: str, key: str) -> tuple[float, float, float, float]:
    """Four independent uniforms in [0, 1) from a hash of (seed, purpose, key)."""
    digest = hashlib.blake2b(f"{seed}\x1f{purpose}\x1f{key}".encode(), digest_size=32).digest()
    return tuple(  # type: ignore[return-value]
        int.from_bytes(digest[i : i + 8], "big") / 2**64 for i in range(0, 32, 8)
    )


def _part_ids(gateway_id: str, text: str) -> tuple[str, ...]:
    """The ids the gateway gives a message's parts: its own, then ``.2``, ``.3`` …"""
    return (gateway_id,) + tuple(f"{gateway_id}.{i}" for i in range(2, sms.segments(text) + 1))


@functools.lru_cache(maxsize=4096)
def _iso(moment: datetime) -> str:
    """:func:`baku_iso`, remembered: a batch of messages shares few moments."""
    return baku_iso(moment)


def _hex(seed: int, purpose: str, key: str, n: int = 16) -> str:
    return hashlib.blake2b(f"{seed}\x1f{purpose}\x1f{key}".encode(), digest_size=16).hexdigest()[:n]


class _Db:
    """A per-process, lazily opened connection to the country file, shared by threads."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._conn: sqlite3.Connection | None = None
        self._pid: int | None = None
        self._lock = threading.RLock()
        self._turns = WriteTurns(self.path)

    def __getstate__(self) -> dict[str, Any]:
        # A connection cannot cross a process boundary: the copy opens its own.
        return {"path": self.path}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["path"])  # type: ignore[misc]

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None or self._pid != os.getpid():
            if not self.path.exists():
                raise InstitutionError(f"no country file at {self.path}: generate one first")
            conn = sqlite3.connect(
                self.path, timeout=30.0, isolation_level=None, check_same_thread=False
            )
            conn.execute("PRAGMA busy_timeout=30000")
            if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            ensure_institution_tables(conn)
            self._conn, self._pid = conn, os.getpid()
        return self._conn

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            yield self._connection()

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """A short write transaction; IMMEDIATE takes the write lock up front, so two processes
        never both read "key unseen" and then both insert it."""
        with self._lock:
            conn = self._connection()
            self._turns.take()
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    yield conn
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
            finally:
                self._turns.end()

    def close(self) -> None:
        with self._lock:
            if self._conn is not None and self._pid == os.getpid():
                self._conn.close()
            self._conn = None


def _bool(value: object) -> bool:
    return bool(value)


# ---- registries ---------------------------------------------------------------------------------

_SQL: dict[Service, str] = {
    Service.CIVIL_PERSON: (
        "SELECT fin, name, sex, birth_date, death_date FROM persons "
        "WHERE fin IN ({marks}) AND birth_date <= ?"
    ),
    Service.CIVIL_FAMILY: (
        "SELECT p.fin, p.mother_fin, p.father_fin, p.spouse_fin, p.married_on, "
        "(SELECT group_concat(c.fin) FROM persons c "
        " WHERE c.mother_fin = p.fin AND c.birth_date <= :d), "
        "(SELECT group_concat(c.fin) FROM persons c "
        " WHERE c.father_fin = p.fin AND c.birth_date <= :d) "
        "FROM persons p WHERE p.fin IN ({marks}) AND p.birth_date <= :d"
    ),
    Service.INTERIOR_IDENTITY: (
        "SELECT fin, doc_valid_until, doc_number, coalesce(mia_birth_date, birth_date), "
        "address, resident FROM persons WHERE fin IN ({marks}) AND birth_date <= ?"
    ),
    Service.TAX_INCOME: (
        "SELECT fin, employed, monthly_income, employment_end FROM persons "
        "WHERE fin IN ({marks}) AND birth_date <= ?"
    ),
    Service.PENSION_RECORD: (
        "SELECT fin, pension_capital, insurance_months, pensions FROM persons "
        "WHERE fin IN ({marks}) AND birth_date <= ?"
    ),
    Service.DISABILITY_STATUS: (
        "SELECT fin, disability_group, disability_since, disability_until FROM persons "
        "WHERE fin IN ({marks}) AND birth_date <= ?"
    ),
    Service.MOBILE_NUMBER: (
        "SELECT fin, phone, language FROM persons WHERE fin IN ({marks}) AND birth_date <= ?"
    ),
}


def _record(service: Service, row: tuple[Any, ...], d: str) -> dict[str, Any]:
    """One person's answer, as of the Baku date ``d`` (``YYYY-MM-DD``)."""
    if service is Service.CIVIL_PERSON:
        _, name, sex, birth, death = row
        dead = death is not None and death <= d
        return {
            "name": name,
            "sex": sex,
            "birth_date": birth,
            "alive": not dead,
            "death_date": death if dead else None,
        }
    if service is Service.CIVIL_FAMILY:
        _, mother, father, spouse, married_on, by_mother, by_father = row
        children = sorted(filter(None, f"{by_mother or ''},{by_father or ''}".split(",")))
        married = spouse is not None and married_on is not None and married_on <= d
        return {
            "mother_fin": mother,
            "father_fin": father,
            "spouse_fin": spouse if married else None,
            "children": children,
        }
    if service is Service.INTERIOR_IDENTITY:
        _, valid_until, number, birth, address, resident = row
        return {
            "document_valid": valid_until is None or valid_until >= d,
            "document_number": number,
            "birth_date": birth,
            "address": address,
            "resident": _bool(resident),
        }
    if service is Service.TAX_INCOME:
        _, employed, income, ended = row
        working = bool(employed) and (ended is None or d < ended)
        return {"employed": working, "monthly_income": int(income) if working else 0}
    if service is Service.PENSION_RECORD:
        _, capital, months, pensions = row
        return {
            "pension_capital": int(capital),
            "insurance_months": int(months),
            "pensions": [p for p in pensions.split(",") if p],
        }
    if service is Service.DISABILITY_STATUS:
        _, group, since, until = row
        if group is None or since is None or since > d:
            return {"active": False, "group": None, "since": None, "until": None}
        return {
            "active": until is None or d < until,
            "group": int(group),
            "since": since,
            "until": until,
        }
    if service is Service.MOBILE_NUMBER:
        _, phone, language = row
        return {"phone": phone, "language": language}
    raise InstitutionError(f"unknown service {service!r}")  # pragma: no cover


class SimulatedInstitutions:
    """The registries of the synthetic country, behind :class:`haqq.ports.Institutions`."""

    def __init__(self, path: Path | str) -> None:
        self._db = _Db(path)

    def records(
        self, service: Service, fins: Sequence[str], *, as_of: datetime
    ) -> dict[str, dict[str, Any]]:
        """What ``service`` knows of each FIN as of a moment (unknown or not-yet-born FINs are
        absent). One SQL statement per 900 FINs."""
        try:
            service = Service(service)
        except ValueError:
            raise InstitutionError(f"unknown service {service!r}") from None
        d = baku_date(as_of)
        unique = list(dict.fromkeys(fins))
        records: dict[str, dict[str, Any]] = {}
        template = _SQL[service]
        with self._db.read() as conn:
            for batch in _chunks(unique):
                params: list[str] | dict[str, str]
                if service is Service.CIVIL_FAMILY:
                    # Named :d and positional ? cannot mix; name the FIN parameters too.
                    sql = template.format(marks=",".join(f":f{i}" for i in range(len(batch))))
                    params = {"d": d, **{f"f{i}": fin for i, fin in enumerate(batch)}}
                else:
                    sql = template.format(marks=_marks(len(batch)))
                    params = [*batch, d]
                for row in conn.execute(sql, params):
                    records[row[0]] = _record(service, row, d)
        return records

    def query(
        self,
        service: Service,
        fins: Sequence[str],
        *,
        as_of: datetime,
        purpose: str,
        issue: str | None = None,
        user: str | None = None,
    ) -> ServiceAnswer:
        """Answer ``service`` directly, in-process (no data-exchange protocol): the exchange is
        logged with haqq as client and the port's service name. ``purpose`` is kept by a real
        data-exchange layer; the simulation does not need it."""
        records = self.records(service, fins, as_of=as_of)
        message_id = str(uuid.uuid4())
        exchange = Exchange(
            message_id=message_id, direction="out", client="haqq", service=str(service),
            user=user or "haqq", issue=issue, at=datetime.now(UTC), persons=len(fins),
        )
        return ServiceAnswer(
            service=Service(service), message_id=message_id, answered_at=as_of, records=records,
            exchange=exchange,
        )

    def close(self) -> None:
        """Close this process's connection (it reopens on next use)."""
        self._db.close()


# ---- the partner bank -----------------------------------------------------------------------------


class SimulatedBank:
    """The partner bank "HAQB", behind :class:`haqq.ports.Bank`.

    Accounts come from the country file (``origin='country'``; a tiny share close during the
    year) and from requests this bank answered (``origin='request'``). A request is answered
    1-5 days after it was made: ~98 % opened with a fresh IBAN, ~2 % refused; the outcome, the
    delay and the IBAN are all a hash of ``(seed, key)``, fixed when the request is recorded.
    """

    name = BANK_NAME

    def __init__(self, path: Path | str, *, seed: int = 1) -> None:
        self._db = _Db(path)
        self.seed = seed

    def find_accounts(self, fins: Sequence[str], *, as_of: datetime) -> Mapping[str, Account]:
        """Open accounts of these persons as of ``as_of`` (the latest opened, if several)."""
        at = baku_iso(as_of)
        found: dict[str, Account] = {}
        with self._db.read() as conn:
            for batch in _chunks(list(dict.fromkeys(fins))):
                rows = conn.execute(
                    "SELECT a.fin, a.iban, a.card_status, p.name FROM bank_accounts a "
                    "LEFT JOIN persons p ON p.fin = a.fin WHERE a.fin IN "
                    f"({_marks(len(batch))}) AND a.opened_at <= ? "
                    "AND (a.closed_at IS NULL OR a.closed_at > ?) ORDER BY a.fin, a.opened_at, a.iban",
                    [*batch, at, at],
                ).fetchall()
                for fin, iban, card, holder in rows:
                    found[fin] = Account(iban=iban, bank=BANK_NAME, card_status=card, holder=holder)
        return found

    def request_accounts(self, requests: Sequence[AccountRequest]) -> None:
        """Record account requests; a key seen before is ignored (idempotent)."""
        first: dict[str, AccountRequest] = {}
        for req in requests:
            first.setdefault(req.key, req)
        if not first:
            return
        fins = list(dict.fromkeys(r.fin for r in first.values()))
        with self._db.write() as conn:
            known: dict[str, str | None] = {}
            for batch in _chunks(fins):
                known.update(
                    conn.execute(
                        f"SELECT fin, death_date FROM persons WHERE fin IN ({_marks(len(batch))})",
                        batch,
                    ).fetchall()
                )
            for req in first.values():
                self._record_request(conn, req, known)

    def _record_request(
        self, conn: sqlite3.Connection, req: AccountRequest, known: Mapping[str, str | None]
    ) -> None:
        u_delay, u_outcome, _, _ = _uniform(self.seed, "account", req.key)
        requested = baku_iso(req.requested_at)
        answer_at = req.requested_at + timedelta(seconds=int(86_400 * (1 + 4 * u_delay)))
        outcome: Literal["opened", "refused"] = "opened"
        reason: str | None = None
        iban: str | None = None
        death = known.get(req.fin)
        if req.fin not in known or u_outcome < REFUSAL_SHARE:
            outcome, reason = "refused", REFUSED_IDENTITY
        elif death is not None and death <= baku_date(req.requested_at):
            outcome, reason = "refused", REFUSED_DECEASED
        else:
            # Branch digits 9xxx never occur among the country's own accounts (1000-1099).
            number = int(_hex(self.seed, "iban", req.key, 32), 16) % 10**19
            iban = make_iban("AZ", f"{BANK_NAME}9{number:019d}")
        cur = conn.execute(
            "INSERT OR IGNORE INTO bank_account_requests "
            "(key, fin, name, requested_at, answer_at, outcome, iban, reason) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (req.key, req.fin, req.name, requested, baku_iso(answer_at), outcome, iban, reason),
        )
        if cur.rowcount == 1 and iban is not None:
            # Visible to find_accounts from the moment the answer is due, not before.
            conn.execute(
                "INSERT OR IGNORE INTO bank_accounts "
                "(iban, fin, bank, opened_at, closed_at, card_status, origin) "
                "VALUES (?, ?, ?, ?, NULL, 'issued', 'request')",
                (iban, req.fin, BANK_NAME, baku_iso(answer_at)),
            )

    def account_answers(
        self, keys: Sequence[str], *, as_of: datetime
    ) -> Mapping[str, AccountAnswer]:
        """The state of each request as of ``as_of``; keys never requested are absent."""
        at = baku_iso(as_of)
        answers: dict[str, AccountAnswer] = {}
        with self._db.read() as conn:
            for batch in _chunks(list(dict.fromkeys(keys))):
                rows = conn.execute(
                    "SELECT r.key, r.answer_at, r.outcome, r.iban, r.reason, p.name "
                    "FROM bank_account_requests r LEFT JOIN persons p ON p.fin = r.fin "
                    f"WHERE r.key IN ({_marks(len(batch))})",
                    batch,
                ).fetchall()
                for key, answer_at, outcome, iban, reason, holder in rows:
                    if parse_baku(answer_at) > parse_baku(at):
                        answers[key] = AccountAnswer(key=key, status="pending")
                    else:
                        answers[key] = AccountAnswer(
                            key=key,
                            status=outcome,
                            iban=iban,
                            reason=reason,
                            answered_at=parse_baku(answer_at),
                            holder=holder if outcome == "opened" else None,
                        )
        return answers

    def transfer(self, transfers: Sequence[Transfer]) -> Mapping[str, TransferResult]:
        """Pay; a key seen before returns its first result and is not paid again.

        Rejections use ISO 20022 reason codes: AC01 (IBAN fails its checksum or is unknown),
        AC04 (account closed at the time of the transfer), AM12 (amount not positive).
        """
        keys = list(dict.fromkeys(t.key for t in transfers))
        if not keys:
            return {}
        with self._db.write() as conn:
            plan = self._plan(conn, transfers)
            self._record(conn, plan)
        return {k: plan.results[k] for k in keys}

    def _plan(
        self,
        conn: sqlite3.Connection,
        transfers: Sequence[Transfer],
        refusals: Mapping[str, str] | None = None,
    ) -> _PaymentPlan:
        """Decide every payment of ``transfers`` without writing: the direct channel and the
        file channel both come here, so a key (an end-to-end id) is paid once whichever way it
        came.

        A key seen before gets its first result (and, when recorded, one more attempt; a key
        twice in ``transfers`` is two attempts); a fresh key is checked at its own ``at``.
        ``refusals`` maps a key to the reason its fresh payment is refused whatever the account
        (checks only the caller can make, such as the currency of a file).
        """
        first: dict[str, Transfer] = {}
        for t in transfers:
            first.setdefault(t.key, t)
        results: dict[str, TransferResult] = {}
        keys = list(first)
        for batch in _chunks(keys):
            for key, first_status, first_reason in conn.execute(
                f"SELECT key, status, reason FROM bank_transfers WHERE key IN "
                f"({_marks(len(batch))})",
                batch,
            ):
                results[key] = TransferResult(key, first_status, first_reason)
        # Every attempt is counted (a key twice in one batch is two attempts).
        tries = Counter(t.key for t in transfers)
        seen = [(tries[key], key) for key in keys if key in results]
        fresh = [first[k] for k in keys if k not in results]
        # Each account's holder, opening and closing, read once per IBAN (absent: not a valid
        # IBAN of this bank).
        accounts: dict[str, tuple[str, datetime, datetime | None]] = {}
        ibans = [i for i in dict.fromkeys(t.iban for t in fresh) if iban_is_valid(i)]
        for batch in _chunks(ibans):
            for iban, holder, opened_at, closed_at in conn.execute(
                f"SELECT iban, fin, opened_at, closed_at FROM bank_accounts WHERE iban IN "
                f"({_marks(len(batch))})",
                batch,
            ):
                accounts[iban] = (
                    holder,
                    parse_baku(opened_at),
                    None if closed_at is None else parse_baku(closed_at),
                )
        refused = refusals or {}
        rows: list[tuple[Any, ...]] = []
        for t in fresh:
            at = baku_iso(t.at)
            status: Literal["accepted", "rejected"] = "accepted"
            reason: str | None = None
            account = accounts.get(t.iban)
            if t.amount <= 0:
                status, reason = "rejected", AM12
            elif t.key in refused:
                status, reason = "rejected", refused[t.key]
            elif account is None or account[1] > t.at:
                status, reason = "rejected", AC01
            elif account[2] is not None and account[2] <= t.at:
                status, reason = "rejected", AC04
            # A file names no FIN: the account's holder is recorded when the IBAN is known.
            fin = t.fin or (account[0] if account is not None else "")
            rows.append(
                (t.key, fin, t.iban, int(t.amount), t.reference, at, status, reason, tries[t.key])
            )
            results[t.key] = TransferResult(key=t.key, status=status, reason=reason)
        return _PaymentPlan(results=results, fresh=[t.key for t in fresh], seen=seen, rows=rows)

    @staticmethod
    def _record(conn: sqlite3.Connection, plan: _PaymentPlan) -> None:
        """Write a plan inside an open write transaction: the fresh payments, the attempts."""
        conn.executemany(
            "UPDATE bank_transfers SET attempts = attempts + ? WHERE key = ?", plan.seen
        )
        conn.executemany(
            "INSERT INTO bank_transfers "
            "(key, fin, iban, amount, reference, at, status, reason, attempts) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            plan.rows,
        )

    @staticmethod
    def _still_fresh(conn: sqlite3.Connection, plan: _PaymentPlan) -> bool:
        """Whether no key the plan takes as fresh was recorded since it was made."""
        for batch in _chunks(plan.fresh):
            found = conn.execute(
                f"SELECT 1 FROM bank_transfers WHERE key IN ({_marks(len(batch))}) LIMIT 1",
                batch,
            ).fetchone()
            if found is not None:
                return False
        return True

    # ---- the file channel (ISO 20022) ----------------------------------------------------------

    def send_file(self, name: str, content: bytes, *, at: datetime) -> None:
        """Take a ``pain.001.001.09`` payment file; a name (message id) seen before is ignored.

        Each transaction is paid as :meth:`transfer` pays, keyed by its end-to-end id (an id
        seen before, by either channel, is not paid again and keeps its first result), at the
        later of ``at`` and 09:00 (Baku) on the requested execution date. Two reports are made:
        a ``pain.002.001.10`` status report, ready 2 hours after ``at`` (per transaction ACCP,
        or RJCT with its ISO reason code; group status ACCP, PART or RJCT), and, when some
        transaction was paid now, a ``camt.054.001.08`` notification on the debtor's account
        with one booked debit per payment, ready at 10:00 (Baku) the day after the payment.
        Their message ids derive from ``name``, so they are unique and the same on every run.

        The file is parsed as a stream and not validated against the XSD (a run can hold 100k
        payments). A file the bank cannot read at all (not a pain.001, its ``MsgId`` is not
        ``name``, an end-to-end id that is not an ISO reference) raises
        :class:`~haqq.adapters.bank.iso20022.MalformedBankFile` and is not recorded, so it can
        be corrected and sent again under the same name; a ``name`` that is not an ISO 20022
        reference raises :class:`~haqq.adapters.bank.iso20022.InvalidPaymentRun`.
        """
        check_identifier(name, "file name")
        received = baku_iso(at)
        if not isinstance(content, bytes | bytearray):
            raise MalformedBankFile(f"file {name}: expected bytes, got {type(content).__name__}")
        with self._db.read() as conn:
            if conn.execute("SELECT 1 FROM bank_files_in WHERE name = ?", (name,)).fetchone():
                return
        run = credit_transfer_initiation(bytes(content))
        if run.message_id != name:
            raise MalformedBankFile(f"file {name}: its MsgId is {run.message_id!r}, not {name!r}")
        try:
            # The reports repeat these references, so they must be ISO references.
            check_identifier(run.payment_info_id, "payment information id")
            for t in run.transfers:
                check_identifier(t.end_to_end_id, "end-to-end id")
        except InvalidPaymentRun as error:
            raise MalformedBankFile(f"file {name}: {error}") from error
        moment = max(at, datetime.combine(run.requested_execution, EXECUTION_TIME, tzinfo=BAKU))
        transfers = [
            Transfer(
                key=t.end_to_end_id,
                fin="",
                iban=t.creditor_iban,
                amount=t.amount_minor,
                reference=t.remittance,
                at=moment,
            )
            for t in run.transfers
        ]
        refusals = {t.end_to_end_id: AM03 for t in run.transfers if t.currency != CURRENCY}
        digest = hashlib.sha256(content).hexdigest()
        # Decide and write the reports before taking the write lock (a run of 100k payments
        # takes seconds to report on), then write them only if no end-to-end id of the file
        # was paid meanwhile; if one was, decide again under the lock.
        with self._db.read() as conn:
            plan = self._plan(conn, transfers, refusals)
        reports = _reports(run, plan, at, moment)
        with self._db.write() as conn:
            if conn.execute("SELECT 1 FROM bank_files_in WHERE name = ?", (name,)).fetchone():
                return  # another process took the same file meanwhile
            if not self._still_fresh(conn, plan):
                plan = self._plan(conn, transfers, refusals)
                reports = _reports(run, plan, at, moment)
            self._record(conn, plan)
            conn.executemany(
                "INSERT INTO bank_files_out (name, kind, answers, ready_at, content, acked) "
                "VALUES (?, ?, ?, ?, ?, 0)",
                [(r.name, r.kind, name, baku_iso(r.at), r.content) for r in reports],
            )
            conn.execute(
                "INSERT INTO bank_files_in "
                "(name, received_at, paid_at, transactions, sha256, outcome) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (
                    name,
                    received,
                    baku_iso(moment),
                    len(transfers),
                    digest,
                    _group_status(run, plan.results),
                ),
            )

    def files(self, *, as_of: datetime) -> Sequence[BankFile]:
        """Reports ready by ``as_of`` and not acknowledged, oldest first."""
        at = baku_iso(as_of)
        with self._db.read() as conn:
            rows = conn.execute(
                "SELECT name, kind, content, ready_at FROM bank_files_out "
                "WHERE acked = 0 AND ready_at <= ? ORDER BY ready_at, name",
                (at,),
            ).fetchall()
        return [BankFile(n, k, bytes(c), parse_baku(r)) for n, k, c, r in rows]

    def ready_files(self, *, as_of: datetime) -> Sequence[str]:
        """The names of the reports ready by ``as_of`` and not acknowledged, oldest first."""
        with self._db.read() as conn:
            rows = conn.execute(
                "SELECT name FROM bank_files_out WHERE acked = 0 AND ready_at <= ? ORDER BY ready_at, name",
                (baku_iso(as_of),),
            ).fetchall()
        return [n for (n,) in rows]

    def file(self, name: str) -> BankFile | None:
        """One report by name, acknowledged or not, whenever it is ready (None: no such report).

        The bank's archive: callers that care about time compare ``at`` with their moment.
        """
        with self._db.read() as conn:
            row = conn.execute(
                "SELECT name, kind, content, ready_at FROM bank_files_out WHERE name = ?",
                (name,),
            ).fetchone()
        if row is None:
            return None
        return BankFile(row[0], row[1], bytes(row[2]), parse_baku(row[3]))

    def ack_files(self, names: Sequence[str]) -> None:
        """Acknowledge reports; :meth:`files` does not return them again (unknown names are
        ignored)."""
        unique = list(dict.fromkeys(names))
        if not unique:
            return
        with self._db.write() as conn:
            for batch in _chunks(unique):
                conn.execute(
                    f"UPDATE bank_files_out SET acked = 1 WHERE name IN ({_marks(len(batch))})",
                    batch,
                )

    def transfer_count(self) -> int:
        """How many distinct transfers the bank recorded (for tests)."""
        with self._db.read() as conn:
            return int(conn.execute("SELECT count(*) FROM bank_transfers").fetchone()[0])

    def close(self) -> None:
        """Close this process's connection (it reopens on next use)."""
        self._db.close()


def report_id(prefix: str, name: str) -> str:
    """The message id of a report about the file ``name``: ``PS-<name>`` (status) or
    ``NT-<name>`` (notification) while that fits in 35 characters, else ``PS:`` or ``NT:`` and
    32 hex digits of a hash of the name. The two forms cannot meet (``-`` against ``:``), the
    first is one to one and the second collision-resistant, so ids stay unique per bank."""
    if len(prefix) + 1 + len(name) <= 35:
        return f"{prefix}-{name}"
    return f"{prefix}:{hashlib.blake2b(name.encode(), digest_size=16).hexdigest()}"


def _reason_parts(reason: str | None) -> tuple[str | None, str | None]:
    """``"AC04 closed account"`` -> ``("AC04", "closed account")``; a reason without a leading
    code becomes NARR (narrative) with the whole text."""
    if reason is None:
        return None, None
    code, _, text = reason.partition(" ")
    if _REASON_CODE_RE.fullmatch(code):
        return code, text.strip() or None
    return "NARR", reason


@dataclass(frozen=True, slots=True)
class _PaymentPlan:
    """Payments decided, not yet written: every key's result, the keys paid now (in order),
    ``(attempts, key)`` of the keys seen before and the rows to insert."""

    results: dict[str, TransferResult]
    fresh: list[str]
    seen: list[tuple[int, str]]
    rows: list[tuple[Any, ...]]


def _group_status(run: PaymentRun, results: Mapping[str, TransferResult]) -> str:
    """ACCP when every transaction of ``run`` is accepted, RJCT when none is, else PART."""
    accepted = sum(results[t.end_to_end_id].status == "accepted" for t in run.transfers)
    return "ACCP" if accepted == len(run.transfers) else "RJCT" if accepted == 0 else "PART"


def _reports(run: PaymentRun, plan: _PaymentPlan, at: datetime, moment: datetime) -> list[BankFile]:
    """The pain.002 about ``run`` (ready 2 hours after ``at``) and, when it paid something
    now, the camt.054 of those debits."""
    report = _status_report(run, plan.results, at + STATUS_REPORT_DELAY)
    out = [BankFile(report.message_id, "pain.002", status_report_file(report), report.created_at)]
    notification = _notification(run, plan.results, set(plan.fresh), moment)
    if notification is not None:
        out.append(
            BankFile(
                notification.message_id,
                "camt.054",
                notification_file(notification),
                notification.created_at,
            )
        )
    return out


def _status_report(
    run: PaymentRun, results: Mapping[str, TransferResult], ready: datetime
) -> StatusReport:
    """The pain.002 about ``run``: every transaction in file order, with its (first) result."""
    statuses: list[TransactionStatus] = []
    for t in run.transfers:
        result = results[t.end_to_end_id]
        if result.status == "accepted":
            statuses.append(TransactionStatus(t.end_to_end_id, "ACCP"))
        else:
            code, text = _reason_parts(result.reason)
            statuses.append(TransactionStatus(t.end_to_end_id, "RJCT", code, text))
    group = _group_status(run, results)
    return StatusReport(
        message_id=report_id("PS", run.message_id),
        created_at=ready.astimezone(BAKU),
        original_message_id=run.message_id,
        group_status=group,
        transactions=tuple(statuses),
        original_payment_info_id=run.payment_info_id,
        payment_info_status=group,
    )


def _notification(
    run: PaymentRun,
    results: Mapping[str, TransferResult],
    fresh: set[str],
    moment: datetime,
) -> Notification | None:
    """The camt.054 of the debits ``run`` caused now (None when it paid nothing new): one
    booked entry per payment made now; a transaction paid before was notified then."""
    booked: date = moment.astimezone(BAKU).date()
    entries: list[NotificationEntry] = []
    unbooked = set(fresh)
    for t in run.transfers:
        key = t.end_to_end_id
        if key in unbooked and results[key].status == "accepted":
            unbooked.discard(key)  # a transaction twice in the file was paid once
            entries.append(
                NotificationEntry(
                    end_to_end_id=key,
                    amount_minor=t.amount_minor,
                    currency=t.currency,
                    credit_debit="DBIT",
                    status="BOOK",
                    booking_date=booked,
                )
            )
    if not entries:
        return None
    ready = datetime.combine(booked + timedelta(days=1), NOTIFICATION_TIME, tzinfo=BAKU)
    return Notification(
        message_id=report_id("NT", run.message_id),
        created_at=ready,
        account=run.debtor.iban,
        entries=tuple(entries),
    )


# ---- the SMS gateway ------------------------------------------------------------------------------


_INSERT_SENT = (
    "INSERT INTO sms_sent (key, gateway_id, phone, text, at, reply_code, status, reason) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
_INSERT_RECEIPT = "INSERT OR IGNORE INTO sms_dlr (gateway_id, parts, status, at, detail) VALUES (?, ?, ?, ?, ?)"
#: The share of messages the network fails to deliver (a phone off for good), and that expire.
UNDELIVERED_SHARE = 0.02
EXPIRED_SHARE = 0.01


class SimulatedSmsGateway:
    """An SMS gateway whose citizens answer consent requests, behind :class:`haqq.ports.SmsGateway`.

    A message with a ``reply_code`` gets an answer (a hash of ``(seed, key)`` decides): ~80 %
    YES, ~10 % NO, ~10 % never, 10 minutes to 3 days later (mostly early), in the language the
    mobile registry holds for the number, typed carelessly (case, stray spaces).

    Each accepted message is split as a real gateway would (:func:`haqq.domain.sms.split`);
    each part gets a delivery receipt 5 to 120 seconds later: delivered, or for ~2 % of
    messages failed (``UNDELIV``) and ~1 % expired a day later.
    """

    name = "simulated"

    def __init__(self, path: Path | str, *, seed: int = 1) -> None:
        self._db = _Db(path)
        self.seed = seed

    def submit(self, messages: Sequence[OutgoingSms]) -> Mapping[str, SubmitResult]:
        """Send each key once; a repeated key returns its first result (and counts an attempt)."""
        results: dict[str, SubmitResult] = {}
        if not messages:
            return results
        order = list(dict.fromkeys(m.key for m in messages))
        with self._db.write() as conn:
            for batch in _chunks(order):
                for key, gateway_id, status, reason, text in conn.execute(
                    f"SELECT key, gateway_id, status, reason, text FROM sms_sent WHERE key IN "
                    f"({_marks(len(batch))})",
                    batch,
                ):
                    # The same answer as the first time, parts included.
                    results[key] = SubmitResult(key, gateway_id, status, reason,
                                                _part_ids(gateway_id, text) if status == "accepted" else ())
            phones = list(dict.fromkeys(m.phone for m in messages if m.reply_code))
            languages: dict[str, str] = {}
            for batch in _chunks(phones):
                languages.update(
                    conn.execute(
                        f"SELECT phone, language FROM persons WHERE phone IN ({_marks(len(batch))})",
                        batch,
                    ).fetchall()
                )
            plain: list[tuple[Any, ...]] = []
            receipts: list[tuple[Any, ...]] = []
            replies: list[tuple[Any, ...]] = []
            answered = self._answered(conn, [m for m in messages if m.reply_code and m.key not in results])
            for m in messages:
                if m.key in results:
                    # Every attempt is counted, so tests can see retries that did not resend.
                    conn.execute(
                        "UPDATE sms_sent SET attempts = attempts + 1 WHERE key = ?", (m.key,)
                    )
                    continue
                row, results[m.key] = self._accept(m)
                plain.append(row)
                receipts.extend(self._receipts(m, results[m.key]))
                # A citizen answers a request once: a reminder after an answer gets no second one.
                pair = (m.phone, m.reply_code)
                if m.reply_code and results[m.key].status == "accepted" and pair not in answered:
                    reply = self._citizen_reply(m, languages.get(m.phone, "az"))
                    if reply is not None:
                        text, received_at = reply
                        replies.append((f"MO-{_hex(self.seed, 'reply', m.key)}", m.phone, text,
                                        baku_iso(received_at), m.key))
                        answered.add(pair)
            conn.executemany(_INSERT_SENT, plain)
            conn.executemany(_INSERT_RECEIPT, receipts)
            conn.executemany(
                "INSERT OR IGNORE INTO sms_inbound (gateway_id, phone, text, received_at, acked, in_reply_to) "
                "VALUES (?, ?, ?, ?, 0, ?)",
                replies,
            )
        return {k: results[k] for k in order}

    def _accept(self, m: OutgoingSms) -> tuple[tuple[Any, ...], SubmitResult]:
        """The gateway's row and answer for one message."""
        gateway_id = f"SM-{_hex(self.seed, 'sms', m.key)}"
        status: Literal["accepted", "rejected"] = "accepted"
        reason: str | None = None
        parts: tuple[str, ...] = ()
        if not isinstance(m.phone, str) or not _PHONE_RE.match(m.phone):
            status, reason = "rejected", "invalid destination number (expected +994 and 9 digits)"
        elif not m.text:
            status, reason = "rejected", "empty message"
        else:
            parts = _part_ids(gateway_id, m.text)
        row = (m.key, gateway_id, m.phone, m.text, _iso(m.at), m.reply_code, status, reason)
        return row, SubmitResult(m.key, gateway_id, status, reason, parts)

    def _receipts(self, m: OutgoingSms, result: SubmitResult) -> list[tuple[Any, ...]]:
        """The delivery receipts the network will send for an accepted message (one row; a
        receipt per part when read)."""
        if result.status != "accepted":
            return []
        # The gateway id is already a hash of (seed, key): its digits decide the fate and delay.
        digits = result.gateway_id[3:]
        u_fate, u_delay = int(digits[:8], 16) / 2**32, int(digits[8:16], 16) / 2**32
        if u_fate < UNDELIVERED_SHARE:
            status, detail, delay = "failed", "stat:UNDELIV err:001", 5 + 115 * u_delay
        elif u_fate < UNDELIVERED_SHARE + EXPIRED_SHARE:
            status, detail, delay = "expired", "stat:EXPIRED err:000", 86_400.0
        else:
            status, detail, delay = "delivered", "stat:DELIVRD err:000", 5 + 115 * u_delay
        at = _iso(m.at + timedelta(seconds=int(delay)))
        return [(result.gateway_id, len(result.parts), status, at, detail)]

    def _answered(self, conn: sqlite3.Connection, asking: Sequence[OutgoingSms]) -> set[tuple[str, str | None]]:
        """The (phone, code) pairs among ``asking`` whose earlier request was answered."""
        wanted = {(m.phone, m.reply_code) for m in asking}
        found: set[tuple[str, str | None]] = set()
        phones = sorted({p for p, _ in wanted})
        for batch in _chunks(phones):
            found.update(
                (p, c) for p, c in conn.execute(
                    f"SELECT s.phone, s.reply_code FROM sms_sent s WHERE s.phone IN ({_marks(len(batch))}) "
                    "AND s.reply_code IS NOT NULL "
                    "AND EXISTS (SELECT 1 FROM sms_inbound i WHERE i.in_reply_to = s.key)",
                    batch,
                ) if (p, c) in wanted
            )
        return found

    def _citizen_reply(self, m: OutgoingSms, language: str) -> tuple[str, datetime] | None:
        # Whether and how a citizen answers is theirs (same for a reminder); when, per message.
        u_answer, _, u_word, u_style = _uniform(self.seed, "reply", f"{m.phone}:{m.reply_code}")
        _, u_delay, _, _ = _uniform(self.seed, "reply", m.key)
        if u_answer >= YES_SHARE + NO_SHARE:
            return None  # this citizen never answers
        words = (_YES if u_answer < YES_SHARE else _NO).get(language, _YES["az"])
        word = words[int(u_word * len(words))]
        # Careless typing: a leading or trailing space, or two spaces before the code.
        style = int(u_style * 10)
        lead = " " if style in (1, 2) else ""
        trail = " " if style in (3, 4) else ""
        gap = "  " if style == 5 else " "
        text = f"{lead}{word}{gap}{m.reply_code}{trail}"
        # 10 minutes to 3 days, cubed so most replies come within hours.
        delay = 600 + (3 * 86_400 - 600) * u_delay**3
        received = (m.at + timedelta(seconds=int(delay))).astimezone(BAKU)
        return text, received

    def inbound(self, *, as_of: datetime, limit: int = 10_000) -> Sequence[InboundSms]:
        """Unacknowledged replies received up to ``as_of``, oldest first."""
        at = baku_iso(as_of)
        with self._db.read() as conn:
            rows = conn.execute(
                "SELECT gateway_id, phone, text, received_at FROM sms_inbound "
                "WHERE acked = 0 AND received_at <= ? ORDER BY received_at, gateway_id LIMIT ?",
                (at, int(limit)),
            ).fetchall()
        return [InboundSms(g, p, t, parse_baku(r)) for g, p, t, r in rows]

    def receipts(self, *, as_of: datetime, limit: int = 10_000) -> Sequence[DeliveryReceipt]:
        """Unacknowledged delivery receipts due by ``as_of``, oldest first."""
        with self._db.read() as conn:
            rows = conn.execute(
                "SELECT gateway_id, parts, status, at, detail FROM sms_dlr "
                "WHERE acked = 0 AND at <= ? ORDER BY at, gateway_id LIMIT ?",
                (baku_iso(as_of), int(limit)),
            ).fetchall()
        out = []
        for gateway_id, parts, status, at, detail in rows:
            moment = parse_baku(at)
            for part in (gateway_id, *(f"{gateway_id}.{i}" for i in range(2, parts + 1))):
                out.append(DeliveryReceipt(f"DLR-{part}", part, status, moment, detail))
        return out

    def ack(self, ids: Sequence[str]) -> None:
        """Mark inbound messages and receipts as handled; they are not returned again."""
        unique = list(dict.fromkeys(ids))
        if not unique:
            return
        with self._db.write() as conn:
            for batch in _chunks(unique):
                marks = _marks(len(batch))
                conn.execute(f"UPDATE sms_inbound SET acked = 1 WHERE gateway_id IN ({marks})", batch)
                # A receipt's id names its part ("DLR-SM-….2"); the row is the message's.
                messages = [i.removeprefix("DLR-").split(".")[0] for i in batch]
                conn.execute(f"UPDATE sms_dlr SET acked = 1 WHERE gateway_id IN ({marks})", messages)

    def sent_count(self) -> int:
        """How many distinct messages were accepted for delivery."""
        with self._db.read() as conn:
            return int(
                conn.execute("SELECT count(*) FROM sms_sent WHERE status = 'accepted'").fetchone()[
                    0
                ]
            )

    def duplicates(self) -> dict[str, int]:
        """Keys submitted more than once, with their number of attempts."""
        with self._db.read() as conn:
            return dict(conn.execute("SELECT key, attempts FROM sms_sent WHERE attempts > 1"))

    def close(self) -> None:
        """Close this process's connection (it reopens on next use)."""
        self._db.close()
