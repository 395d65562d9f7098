"""The in-memory form of a claimed batch: cases being advanced and the rows they will write.

Steps change :class:`CaseWork` objects and append rows to :class:`Writes`; the worker writes
everything of a batch in one transaction, so a crash leaves either all of it or none.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from haqq.domain.cases import CaseState, transition
from haqq.domain.errors import InstitutionError
from haqq.domain.events import EventType
from haqq.domain.quiet import QuietHours
from haqq.ports import Bank, Exchange, Institutions, Service, ServiceAnswer, SmsGateway
from haqq.rules.catalogue import Catalogue, Program
from haqq.rules.messages import MessageCatalogue, default_messages

if TYPE_CHECKING:
    from haqq.adapters.store.repository import Lookup

BAKU = ZoneInfo("Asia/Baku")
#: The most persons one request to an institution carries.
MAX_PERSONS_PER_REQUEST = 5_000


def issue_of(kind: str, ids: Sequence[object]) -> str:
    """The ``X-Road-Issue`` of a request: the one case (or event) it serves, or its batch's
    stable name (the message log and the access log link the batch to each case)."""
    if len(ids) == 1:
        return f"{kind}-{ids[0]}"
    digest = hashlib.blake2b("\x1f".join(sorted(map(str, ids))).encode(), digest_size=6).hexdigest()
    return f"{kind}-batch-{digest}-{len(ids)}"


def local_date(moment: datetime) -> date:
    """The calendar date in Baku of an aware moment."""
    return moment.astimezone(BAKU).date()


@dataclass(slots=True)
class CaseWork:
    """One claimed case, as the steps see it."""

    id: str
    program: Program
    state: CaseState
    due_at: datetime | None
    event_id: int
    event_type: EventType
    occurred_at: datetime
    subject_fin: str
    beneficiary_fin: str
    created_at: datetime
    facts: dict[str, Any] | None = None
    review_reason: str | None = None
    consent_answer: str | None = None
    reminders: int = 0
    attempts: int = 0
    #: The row's version when it was read (see ``cases.version``).
    version: int = 0
    decision: dict[str, Any] | None = None
    changed: bool = False
    facts_changed: bool = False

    @property
    def at(self) -> datetime:
        """The simulated moment the case's current step happens: when it became due."""
        return self.due_at or self.created_at


@dataclass(slots=True)
class Writes:
    """Rows a batch will write, per table."""

    transitions: list[dict[str, Any]] = field(default_factory=list)
    decisions: list[dict[str, Any]] = field(default_factory=list)
    entitlements: list[dict[str, Any]] = field(default_factory=list)
    accounts: list[dict[str, Any]] = field(default_factory=list)
    payments: list[dict[str, Any]] = field(default_factory=list)
    notifications: list[dict[str, Any]] = field(default_factory=list)
    access_log: list[dict[str, Any]] = field(default_factory=list)
    stops: list[dict[str, Any]] = field(default_factory=list)
    #: Every exchange with an institution, answered or failed (the message log).
    messages: list[Exchange] = field(default_factory=list)


@dataclass(slots=True)
class StepContext:
    """What every step may use: the catalogue, the ports, the time and the batch's writes."""

    catalogue: Catalogue
    institutions: Institutions
    bank: Bank
    sms: SmsGateway
    now: datetime
    wall: Callable[[], datetime]
    #: Read-only access to the store for set-wise lookups (one query per step per batch).
    lookup: Lookup
    writes: Writes = field(default_factory=Writes)
    #: The moment registry data is asked "as of" for this batch (None: each step decides).
    as_of: datetime | None = None
    #: Answers already received in this batch, per service and moment, by FIN: a person's data
    #: is asked once per batch, however many steps need it.
    answers: dict[tuple[Service, datetime], dict[str, ServiceAnswer]] = field(default_factory=dict)
    #: The wall-clock moment of the step being run (set by the worker before each step).
    stamp: datetime | None = None
    #: What the citizen is told, in their language (see :mod:`haqq.rules.messages`).
    messages: MessageCatalogue = field(default_factory=default_messages)
    #: No SMS at night: a message due then is queued until they end.
    quiet: QuietHours | None = None
    reminder_after: timedelta = timedelta(days=3)
    lapse_after: timedelta = timedelta(days=4)
    retry_after: timedelta = timedelta(hours=1)
    recheck_after: timedelta = timedelta(days=3)
    max_attempts: int = 5

    def query(
        self,
        service: Service,
        fins: Iterable[str],
        *,
        as_of: datetime,
        purpose: str,
        issue: str | None = None,
    ) -> dict[str, ServiceAnswer]:
        """The answer that carries each FIN's record (or its absence), asking only once.

        ``issue``: the case or batch the request serves. Every exchange, answered or failed,
        goes to the message log with the batch's writes.
        """
        known = self.answers.setdefault((service, as_of), {})
        wanted = set(fins)
        missing = sorted(wanted - known.keys())
        for i in range(0, len(missing), MAX_PERSONS_PER_REQUEST):
            part = missing[i : i + MAX_PERSONS_PER_REQUEST]
            try:
                answer = self.institutions.query(service, part, as_of=as_of, purpose=purpose, issue=issue)
            except InstitutionError as exc:
                if isinstance(exc.exchange, Exchange):
                    self.writes.messages.append(exc.exchange)
                raise
            if answer.exchange is not None:
                self.writes.messages.append(answer.exchange)
            known.update(dict.fromkeys(part, answer))
        return {fin: known[fin] for fin in wanted}

    def move(self, case: CaseWork, target: CaseState, cause: str) -> None:
        """Move a case, checked against the state machine, and record the step."""
        step = transition(case.id, case.state, target, case.at, cause)
        self.writes.transitions.append(
            {
                "case_id": case.id,
                "source": str(step.source) if step.source else None,
                "target": str(step.target),
                "at": step.at,
                "wall_at": self.stamp or self.wall(),
                "cause": cause,
            }
        )
        case.state = target
        case.changed = True

    def rest(self, case: CaseWork) -> None:
        """Nothing more to do until a person or an outside answer wakes the case."""
        case.due_at = None
        case.changed = True

    def review(self, case: CaseWork, reason: str) -> None:
        self.move(case, CaseState.NEEDS_REVIEW, reason)
        case.review_reason = reason
        self.rest(case)
