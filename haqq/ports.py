"""The ports: every way the pipeline reaches outside itself.

The pipeline asks for data only through :class:`Institutions`, naming the institution and the
service; it opens accounts and pays through :class:`Bank`; it texts through :class:`SmsGateway`;
it reads the time from :class:`Clock`. Adapters implement these: simulated in-process over the
synthetic country by default, real protocols in production.

Every call is batched (many persons per call) and every effect carries an idempotency key, so a
retried call never opens, pays or texts twice.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal, Protocol


class Service(StrEnum):
    """``institution/service``. What each answers, per FIN (a FIN it does not know is absent):

    - ``civil_registry/person``: ``name`` str, ``sex`` "F"|"M", ``birth_date`` ISO date,
      ``alive`` bool (as of the query), ``death_date`` ISO date | None
    - ``civil_registry/family``: ``mother_fin``, ``father_fin``, ``spouse_fin`` (str | None),
      ``children`` list[str]
    - ``interior/identity``: ``document_valid`` bool, ``document_number`` str,
      ``birth_date`` ISO date, ``address`` str, ``resident`` bool
    - ``tax/income``: ``employed`` bool, ``monthly_income`` int (qəpik)
    - ``pension_fund/record``: ``pension_capital`` int (qəpik), ``insurance_months`` int,
      ``pensions`` list[str]
    - ``disability/status``: ``active`` bool, ``group`` int (1..3) | None, ``since``/``until``
      ISO date | None
    - ``mobile_registry/number``: ``phone`` "+994xxxxxxxxx" | None, ``language`` "az"|"ru"|"en"
    """

    CIVIL_PERSON = "civil_registry/person"
    CIVIL_FAMILY = "civil_registry/family"
    INTERIOR_IDENTITY = "interior/identity"
    TAX_INCOME = "tax/income"
    PENSION_RECORD = "pension_fund/record"
    DISABILITY_STATUS = "disability/status"
    MOBILE_NUMBER = "mobile_registry/number"

    @property
    def institution(self) -> str:
        return self.partition("/")[0]


@dataclass(frozen=True, slots=True)
class Exchange:
    """One message exchanged with another institution, as the message log keeps it.

    ``client`` and ``service`` are the data-exchange layer's identifiers of who asked and who
    answered; ``user`` is the official whose action caused the request (``haqq`` for automatic
    work); ``issue`` the case, or the batch of cases, it served; ``request_hash`` the provider's
    hash of the request, the proof that this answer was given to this question.
    """

    message_id: str
    direction: Literal["out", "in"]
    client: str
    service: str
    user: str
    issue: str | None
    at: datetime
    outcome: str = "ok"
    status: int | None = None
    request_hash: str | None = None
    persons: int = 0
    detail: str | None = None


@dataclass(frozen=True, slots=True)
class ServiceAnswer:
    """One institution's answer to one (batched) request: the evidence behind a decision."""

    service: Service
    message_id: str
    answered_at: datetime
    records: Mapping[str, Mapping[str, Any]]
    #: The exchange that carried it (the message log's entry).
    exchange: Exchange | None = None


class Institutions(Protocol):
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
        """Ask one service about many persons at once, as of a moment.

        ``issue``: the case (or batch of cases) the request serves; ``user``: the official who
        caused it (None: haqq itself). A failure raises :class:`haqq.domain.errors.InstitutionError`.
        """
        ...


@dataclass(frozen=True, slots=True)
class Account:
    iban: str
    bank: str
    card_status: Literal["issued", "requested", "none"] = "issued"
    #: The account holder's name as the bank knows it (the creditor in payment files).
    holder: str | None = None


@dataclass(frozen=True, slots=True)
class AccountRequest:
    key: str
    fin: str
    name: str
    requested_at: datetime


@dataclass(frozen=True, slots=True)
class AccountAnswer:
    key: str
    status: Literal["pending", "opened", "refused"]
    iban: str | None = None
    reason: str | None = None
    answered_at: datetime | None = None
    holder: str | None = None


@dataclass(frozen=True, slots=True)
class Transfer:
    key: str
    fin: str
    iban: str
    amount: int
    reference: str
    at: datetime


@dataclass(frozen=True, slots=True)
class TransferResult:
    key: str
    status: Literal["accepted", "rejected"]
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class BankFile:
    """A file exchanged with the bank: ``name`` is its ISO 20022 message id (unique per bank)."""

    name: str
    kind: Literal["pain.001", "pain.002", "camt.054"]
    content: bytes
    #: When the bank made it available (for a file haqq sent: when it was sent).
    at: datetime


class Bank(Protocol):
    """The partner bank. Opening an account is answered later, not at once.

    Payments go two ways: :meth:`transfer` pays a batch at once and answers per payment (the
    direct channel); :meth:`send_file` hands over a payment run as an ISO 20022 ``pain.001``
    file, answered later by ``pain.002`` status reports and ``camt.054`` notifications that
    :meth:`files` returns until they are acknowledged.
    """

    name: str

    def find_accounts(self, fins: Sequence[str], *, as_of: datetime) -> Mapping[str, Account]: ...

    def request_accounts(self, requests: Sequence[AccountRequest]) -> None:
        """Ask for accounts and cards; idempotent by ``key``."""
        ...

    def account_answers(
        self, keys: Sequence[str], *, as_of: datetime
    ) -> Mapping[str, AccountAnswer]: ...

    def transfer(self, transfers: Sequence[Transfer]) -> Mapping[str, TransferResult]:
        """Pay; idempotent by ``key`` (a key seen before returns its first result)."""
        ...

    def send_file(self, name: str, content: bytes, *, at: datetime) -> None:
        """Hand over a ``pain.001`` file. A name (message id) seen before is ignored, and a
        transaction whose end-to-end id was seen before is not paid again."""
        ...

    def files(self, *, as_of: datetime) -> Sequence[BankFile]:
        """Reports (``pain.002``, ``camt.054``) available by ``as_of`` and not acknowledged,
        oldest first."""
        ...

    def ready_files(self, *, as_of: datetime) -> Sequence[str]:
        """The names of the reports :meth:`files` would return (a cheap look, no content)."""
        ...

    def ack_files(self, names: Sequence[str]) -> None:
        """Acknowledge reports taken in; they are not returned again."""
        ...


@dataclass(frozen=True, slots=True)
class OutgoingSms:
    key: str
    phone: str
    text: str
    at: datetime
    #: Set on a consent request: the code a reply must carry. Simulators use it to answer.
    reply_code: str | None = None


@dataclass(frozen=True, slots=True)
class SubmitResult:
    """What the gateway said to one message.

    ``accepted``: it took the message; ``parts`` holds the gateway's id of every part (a long
    text goes as several concatenated parts), ``gateway_id`` the first. ``rejected``: refused
    for good (a bad number); ``retry``: refused for now (throttled, queue full, not bound), to
    be offered again later with the same key.
    """

    key: str
    gateway_id: str
    status: Literal["accepted", "rejected", "retry"]
    reason: str | None = None
    parts: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class InboundSms:
    gateway_id: str
    phone: str
    text: str
    received_at: datetime


@dataclass(frozen=True, slots=True)
class DeliveryReceipt:
    """The network's word on one part of a message sent earlier.

    ``receipt_id`` is unique per receipt (acknowledged like an inbound SMS); ``message_id`` is
    the part's id from :attr:`SubmitResult.parts`. ``detail`` keeps the gateway's own code
    (SMPP ``stat:``/``err:``, Kannel's DLR type).
    """

    receipt_id: str
    message_id: str
    status: Literal["delivered", "failed", "expired", "buffered"]
    at: datetime
    detail: str | None = None


class SmsGateway(Protocol):
    #: The gateway's name in the message log and in settings (``simulated``, ``kannel``, ``smpp``).
    name: str

    def submit(self, messages: Sequence[OutgoingSms]) -> Mapping[str, SubmitResult]:
        """Hand messages to the gateway; idempotent by ``key``. A gateway that cannot be
        reached raises :class:`GatewayUnavailable`, and nothing counts as sent."""
        ...

    def inbound(self, *, as_of: datetime, limit: int = 10_000) -> Sequence[InboundSms]:
        """Mobile-originated messages received up to ``as_of`` and not yet acknowledged.

        A gateway that pushes them to haqq's HTTP endpoints instead (Kannel) returns none."""
        ...

    def receipts(self, *, as_of: datetime, limit: int = 10_000) -> Sequence[DeliveryReceipt]:
        """Delivery receipts received up to ``as_of`` and not yet acknowledged (none from a
        pushing gateway, as for :meth:`inbound`)."""
        ...

    def ack(self, ids: Sequence[str]) -> None:
        """Acknowledge inbound messages and receipts (by ``gateway_id`` / ``receipt_id``) once
        they are stored; a gateway may hand back what was not acknowledged."""
        ...


class GatewayUnavailable(Exception):
    """The SMS gateway (or its SMSC link) cannot take messages now; try again later."""


class Clock(Protocol):
    def now(self) -> datetime: ...


@dataclass(frozen=True, slots=True)
class PersonCard:
    """Who a person is, as the civil and mobile registries hold it: what the one-stop shop shows
    a caseworker at the top of a person's page, with where it came from and when."""

    fin: str
    name: str
    birth_date: str
    sex: str
    address: str | None
    phone: str | None
    language: str | None
    death_date: str | None
    #: Family links the civil registry holds: ``mother``, ``father``, ``spouse``, ``children``.
    family: Mapping[str, Sequence[str]]
    source: str
    read_at: datetime


class PersonDirectory(Protocol):
    """The registries' person search, for the one-stop shop (by FIN, name or phone).

    In production the civil registry's search service over the data exchange; embedded, the
    synthetic country. Callers log every look at a person (see :mod:`haqq.office.access`)."""

    def search(self, query: str, *, limit: int = 20) -> Sequence[PersonCard]:
        """Persons whose FIN or phone is ``query`` exactly, or whose name starts with it."""
        ...

    def card(self, fin: str) -> PersonCard | None: ...

    def cards(self, fins: Sequence[str]) -> Mapping[str, PersonCard]: ...
