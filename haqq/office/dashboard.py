"""The one-stop shop's dashboard: what haqq did, from the store.

The figures (each defined where it is computed, :func:`compute`):

- **assignments per day by program**: cases that reached ``assigned`` (a benefit assigned), by
  the local (Baku) day they first reached it, over the :data:`WINDOW_DAYS` days ending on the
  data's own "today", the day of the latest case update. During a replay the store's clock is
  simulated time, so the wall clock would show an empty window;
- **time from event to money** per program: from the life event's ``occurred_at`` to the
  ``sent_at`` of the case's first payment the bank accepted (the moment the payment left in the
  run's file; the bank's acceptance follows within hours), median and 95th percentile, in hours,
  over every such case in the store;
- **cases waiting and why**: cases in a state that is not final, by state; the reasons of those
  in ``needs_review``, grouped by their kind (the reason's text up to its first ``:``, numbers
  written as ``N``: "institution unavailable after N attempts");
- **consent answers** for the programs in consent mode: yes, no, and no answer (still waiting,
  or lapsed after the reminder);
- **citizens' choices** (``citizen_choices``): declines, stops, claims, consent by channel;
- **payments** by program and status, with their amounts (qəpik);
- **the proactive share**: of the benefits assigned (entitlements, less those declined: a
  consent refused or lapsed, a benefit turned down), how each came about, in
  this order of precedence: after an appeal; after a caseworker's review (the case went through
  ``needs_review`` or a person acted on it); after the citizen's claim (notify mode); with the
  citizen's YES by SMS (consent mode: asked, but no application); automatically (nobody did
  anything). *Proactive* = automatic + with consent: started by a registry event and assigned
  with no application and no caseworker. *No step* = automatic alone.

**Speed.** On the store of a whole country (a million persons after their year) these are
GROUP BYs over hundreds of thousands to millions of rows: seconds on SQLite. So the figures are
computed in full, in one read transaction, and kept per process (:class:`DashboardCache`, one per
store): a request gets the figures in memory, with the moment they were computed
(``computed_at``, shown on the page as "as of HH:MM"); figures older than ``max_age`` (60 s by
default) are recomputed on a background thread while requests keep getting the previous ones.
Only the very first request of a process waits for a computation (concurrent first requests wait
for the same one). No table is added to the store.
"""

from __future__ import annotations

import re
import threading
import time
import weakref
from collections import Counter, defaultdict
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import structlog
from pydantic import BaseModel, Field
from sqlalchemy import Connection, Engine, and_, case, func, literal, select

from haqq.adapters.store.schema import (
    appeals,
    case_transitions,
    cases,
    citizen_choices,
    entitlements,
    events,
    payments,
    review_actions,
)
from haqq.domain.access import Action, Principal, require
from haqq.domain.cases import TERMINAL, CaseState
from haqq.rules.catalogue import Catalogue, Mode

log = structlog.get_logger()

BAKU = ZoneInfo("Asia/Baku")
#: Days of assignments shown, ending on the data's latest day.
WINDOW_DAYS = 90
#: Figures older than this are recomputed in the background.
MAX_AGE = timedelta(seconds=60)
#: Review reasons shown (the most frequent; the rest summed as "other").
TOP_REASONS = 12

#: How an assigned benefit came about (see the module's docstring), in order of precedence.
HOW = ("appeal", "review", "claim", "consent", "automatic")


class DayCount(BaseModel):
    day: date
    program_id: str
    cases: int


class Latency(BaseModel):
    program_id: str
    cases: int = Field(description="cases with an accepted payment")
    median_hours: float
    p95_hours: float


class StateCount(BaseModel):
    state: str
    cases: int


class ReasonCount(BaseModel):
    reason: str = Field(description="the kind of reason: its text up to the first ':', numbers as N")
    cases: int


class ConsentCount(BaseModel):
    program_id: str
    yes: int
    no: int
    waiting: int = Field(description="asked, no answer yet")
    lapsed: int = Field(description="asked and reminded, never answered")

    @property
    def none(self) -> int:
        return self.waiting + self.lapsed


class ChoiceCount(BaseModel):
    program_id: str
    choice: str = Field(description="consent | refuse | decline | stop | claimed")
    channel: str
    count: int


class PaymentCount(BaseModel):
    program_id: str
    status: str = Field(description="scheduled | queued | sent | accepted | rejected | held | cancelled")
    payments: int
    amount: int = Field(description="qəpik")


class HowAssigned(BaseModel):
    program_id: str
    how: str = Field(description="appeal | review | claim | consent | automatic")
    cases: int


class Proactive(BaseModel):
    """Of the benefits assigned, how many came with no application (see the module's docstring)."""

    assigned: int
    automatic: int
    consent: int
    claim: int
    review: int
    appeal: int
    proactive_share: float = Field(description="(automatic + consent) / assigned; 0 when nothing was assigned")
    no_step_share: float = Field(description="automatic / assigned")


class Dashboard(BaseModel):
    computed_at: datetime = Field(description="when these figures were computed (they are kept up to 60 s)")
    compute_ms: float = Field(description="how long computing them took")
    data_until: datetime | None = Field(description="the latest case update: the data's own 'now'")
    window_start: date | None
    window_end: date | None
    cases: int
    cases_by_program: dict[str, int]
    assignments: list[DayCount] = Field(description="benefits assigned per day and program, in the window")
    assignments_by_program: dict[str, int] = Field(description="benefits assigned in the window, per program")
    latency: list[Latency]
    waiting: list[StateCount]
    waiting_total: int
    review_reasons: list[ReasonCount]
    consent: list[ConsentCount]
    choices: list[ChoiceCount]
    payments: list[PaymentCount]
    how_assigned: list[HowAssigned]
    proactive: Proactive


class DashboardUnavailable(RuntimeError):
    """The figures could not be computed (the store did not answer); the message says why."""


def reason_kind(text: str | None) -> str:
    """A review reason without its particulars: up to the first ':', numbers as ``N``."""
    if not text:
        return "(none)"
    head = text.split(":", 1)[0].strip()
    return re.sub(r"\d+", "N", head)[:120] or "(none)"


def local_day(moment: datetime) -> date:
    return moment.astimezone(BAKU).date()


def _hours(seconds: list[float]) -> tuple[float, float]:
    arr = np.asarray(seconds, dtype=float) / 3600.0
    p50, p95 = np.percentile(arr, [50, 95])
    return round(float(p50), 2), round(float(p95), 2)


def compute(
    conn: Connection, catalogue: Catalogue, *, now: datetime | None = None, window_days: int = WINDOW_DAYS
) -> Dashboard:
    """Every figure, straight from the store (slow on a big store: see :class:`DashboardCache`)."""
    began = time.perf_counter()
    computed_at = now or datetime.now(UTC)
    by_program = {p: n for p, n in conn.execute(select(cases.c.program_id, func.count()).group_by(cases.c.program_id))}
    data_until: datetime | None = conn.execute(select(func.max(cases.c.updated_at))).scalar()

    # Assignments: the first time each case reached "assigned", by local day, in the window.
    window_start = window_end = None
    per_day: Counter[tuple[date, str]] = Counter()
    if data_until is not None:
        window_end = local_day(data_until)
        window_start = window_end - timedelta(days=window_days - 1)
        since = datetime.combine(window_start, datetime.min.time(), BAKU)
        first = (
            select(case_transitions.c.case_id, func.min(case_transitions.c.at).label("at"))
            .where(case_transitions.c.target == CaseState.ASSIGNED.value)
            .group_by(case_transitions.c.case_id)
            .having(func.min(case_transitions.c.at) >= since)
            .subquery()
        )
        for program_id, at in conn.execute(
            select(cases.c.program_id, first.c.at).join(cases, cases.c.id == first.c.case_id)
        ):
            day = local_day(at)
            if day <= window_end:
                per_day[(day, program_id)] += 1
    assignments = [DayCount(day=d, program_id=p, cases=n) for (d, p), n in sorted(per_day.items())]
    assigned_in_window: Counter[str] = Counter()
    for (_, p), n in per_day.items():
        assigned_in_window[p] += n

    # Event to money: occurred_at -> sent_at of the first accepted payment of each case.
    paid = (
        select(payments.c.case_id, func.min(payments.c.sent_at).label("sent_at"))
        .where(payments.c.status == "accepted", payments.c.sent_at.is_not(None))
        .group_by(payments.c.case_id)
        .subquery()
    )
    spans: dict[str, list[float]] = defaultdict(list)
    for program_id, occurred, sent in conn.execute(
        select(cases.c.program_id, events.c.occurred_at, paid.c.sent_at)
        .join(cases, cases.c.id == paid.c.case_id)
        .join(events, events.c.id == cases.c.event_id)
    ):
        spans[program_id].append((sent - occurred).total_seconds())
    latency = []
    for program_id in sorted(spans):
        p50, p95 = _hours(spans[program_id])
        latency.append(Latency(program_id=program_id, cases=len(spans[program_id]), median_hours=p50, p95_hours=p95))

    # Waiting: every state that is not final; needs_review by kind of reason.
    final = sorted(s.value for s in TERMINAL)
    waiting = [
        StateCount(state=s, cases=n)
        for s, n in conn.execute(
            select(cases.c.state, func.count()).where(cases.c.state.not_in(final)).group_by(cases.c.state)
        )
    ]
    waiting.sort(key=lambda w: (-w.cases, w.state))
    kinds: Counter[str] = Counter()
    for text, n in conn.execute(
        select(cases.c.review_reason, func.count())
        .where(cases.c.state == CaseState.NEEDS_REVIEW.value)
        .group_by(cases.c.review_reason)
    ):
        kinds[reason_kind(text)] += n
    top = kinds.most_common(TOP_REASONS)
    other = sum(kinds.values()) - sum(n for _, n in top)
    reasons = [ReasonCount(reason=r, cases=n) for r, n in top]
    if other:
        reasons.append(ReasonCount(reason="(other)", cases=other))

    # Consent answers, for the programs in consent mode.
    consenting = sorted(p.id for p in catalogue.programs.values() if p.mode is Mode.CONSENT)
    consent_rows: dict[str, dict[str, int]] = {p: {"yes": 0, "no": 0, "waiting": 0, "lapsed": 0} for p in consenting}
    if consenting:
        for program_id, answer, state, n in conn.execute(
            select(cases.c.program_id, cases.c.consent_answer, cases.c.state, func.count())
            .where(cases.c.program_id.in_(consenting))
            .where(
                cases.c.consent_answer.is_not(None)
                | cases.c.state.in_([CaseState.AWAITING_CONSENT.value, CaseState.LAPSED.value])
            )
            .group_by(cases.c.program_id, cases.c.consent_answer, cases.c.state)
        ):
            row = consent_rows[program_id]
            if answer in ("yes", "no"):
                row[answer] += n
            elif answer is None and state == CaseState.LAPSED.value:
                row["lapsed"] += n
            elif answer is None:
                row["waiting"] += n
    consent = [ConsentCount(program_id=p, **v) for p, v in consent_rows.items()]

    choices = [
        ChoiceCount(program_id=p, choice=c, channel=ch, count=n)
        for p, c, ch, n in conn.execute(
            select(cases.c.program_id, citizen_choices.c.choice, citizen_choices.c.channel, func.count())
            .join(cases, cases.c.id == citizen_choices.c.case_id)
            .group_by(cases.c.program_id, citizen_choices.c.choice, citizen_choices.c.channel)
            .order_by(cases.c.program_id, citizen_choices.c.choice, citizen_choices.c.channel)
        )
    ]
    pay = [
        PaymentCount(program_id=p, status=s, payments=n, amount=int(total))
        for p, s, n, total in conn.execute(
            select(payments.c.program_id, payments.c.status, func.count(), func.coalesce(func.sum(payments.c.amount), 0))
            .group_by(payments.c.program_id, payments.c.status)
            .order_by(payments.c.program_id, payments.c.status)
        )
    ]

    # How each assigned benefit came about (one scan of each table for the IN lists).
    how = case(
        (cases.c.id.in_(select(appeals.c.case_id)), literal("appeal")),
        (
            cases.c.id.in_(
                select(case_transitions.c.case_id).where(case_transitions.c.target == CaseState.NEEDS_REVIEW.value)
            )
            | cases.c.id.in_(select(review_actions.c.case_id)),
            literal("review"),
        ),
        (cases.c.id.in_(select(citizen_choices.c.case_id).where(citizen_choices.c.choice == "claimed")), literal("claim")),
        (cases.c.consent_answer == "yes", literal("consent")),
        else_=literal("automatic"),
    ).label("how")
    how_rows = [
        HowAssigned(program_id=p, how=h, cases=n)
        for p, h, n in conn.execute(
            select(cases.c.program_id, how, func.count())
            .select_from(entitlements.join(cases, and_(cases.c.id == entitlements.c.id)))
            .where(entitlements.c.status != "declined")
            .group_by(cases.c.program_id, how)
            .order_by(cases.c.program_id, how)
        )
    ]
    totals: Counter[str] = Counter()
    for assigned_row in how_rows:
        totals[assigned_row.how] += assigned_row.cases
    assigned = sum(totals.values())
    proactive = Proactive(
        assigned=assigned, automatic=totals["automatic"], consent=totals["consent"], claim=totals["claim"],
        review=totals["review"], appeal=totals["appeal"],
        proactive_share=round((totals["automatic"] + totals["consent"]) / assigned, 4) if assigned else 0.0,
        no_step_share=round(totals["automatic"] / assigned, 4) if assigned else 0.0,
    )
    return Dashboard(
        computed_at=computed_at,
        compute_ms=round((time.perf_counter() - began) * 1000, 1),
        data_until=data_until,
        window_start=window_start,
        window_end=window_end,
        cases=sum(by_program.values()),
        cases_by_program=dict(sorted(by_program.items())),
        assignments=assignments,
        assignments_by_program=dict(sorted(assigned_in_window.items())),
        latency=latency,
        waiting=waiting,
        waiting_total=sum(w.cases for w in waiting),
        review_reasons=reasons,
        consent=consent,
        choices=choices,
        payments=pay,
        how_assigned=how_rows,
        proactive=proactive,
    )


class DashboardCache:
    """The figures of one store, kept in this process and recomputed in the background when
    older than ``max_age``. Thread-safe; one computation at a time."""

    def __init__(
        self, engine: Engine, catalogue: Catalogue, *, max_age: timedelta = MAX_AGE,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.engine = engine
        self.catalogue = catalogue
        self.max_age = max_age
        self.clock = clock or (lambda: datetime.now(UTC))
        self._figures: Dashboard | None = None
        self._computing = threading.Lock()
        self._refreshing = False
        self._state = threading.Lock()

    def _compute(self) -> Dashboard:
        with self.engine.connect() as conn, conn.begin():
            return compute(conn, self.catalogue, now=self.clock())

    def refresh(self) -> Dashboard:
        """Compute the figures now (waiting for a computation already running, then again)."""
        with self._computing:
            figures = self._compute()
            with self._state:
                self._figures = figures
            return figures

    def _background(self) -> None:
        try:
            self.refresh()
        except Exception as exc:  # keep the previous figures; the next request tries again
            log.error("dashboard.refresh_failed", error=repr(exc))
        finally:
            with self._state:
                self._refreshing = False

    def figures(self) -> Dashboard:
        """The latest figures: computed now if there are none yet, else the ones held (and a
        background refresh started when they are older than ``max_age``)."""
        with self._state:
            held = self._figures
        if held is None:
            with self._computing:
                with self._state:
                    held = self._figures
                if held is None:
                    try:
                        held = self._compute()
                    except Exception as exc:
                        raise DashboardUnavailable(f"the dashboard could not be computed: {exc}") from exc
                    with self._state:
                        self._figures = held
            return held
        if self.clock() - held.computed_at >= self.max_age:
            with self._state:
                start = not self._refreshing
                self._refreshing = True
            if start:
                threading.Thread(target=self._background, name="dashboard-refresh", daemon=True).start()
        return held


_caches: weakref.WeakKeyDictionary[Engine, DashboardCache] = weakref.WeakKeyDictionary()
_caches_lock = threading.Lock()


def cache_for(engine: Engine, catalogue: Catalogue) -> DashboardCache:
    """The process's cache of ``engine``'s figures (made on first use)."""
    with _caches_lock:
        found = _caches.get(engine)
        if found is None or found.catalogue is not catalogue:
            found = DashboardCache(engine, catalogue)
            _caches[engine] = found
        return found


def warm(engine: Engine, catalogue: Catalogue) -> None:
    """Compute the figures before the first request asks (``haqq serve`` calls it in each HTTP
    process as it starts), so no one waits for a first computation; a failure is logged and the
    first request tries again."""
    try:
        cache_for(engine, catalogue).refresh()
    except Exception as exc:
        log.error("dashboard.warm_failed", error=repr(exc))


def dashboard(principal: Principal, engine: Engine, catalogue: Catalogue) -> Dashboard:
    """The dashboard for ``principal`` (who must be allowed to view it)."""
    require(principal, Action.VIEW_DASHBOARD)
    return cache_for(engine, catalogue).figures()


__all__ = [
    "HOW",
    "ChoiceCount",
    "ConsentCount",
    "Dashboard",
    "DashboardCache",
    "DashboardUnavailable",
    "DayCount",
    "HowAssigned",
    "Latency",
    "PaymentCount",
    "Proactive",
    "ReasonCount",
    "StateCount",
    "cache_for",
    "compute",
    "dashboard",
    "reason_kind",
]
