"""The dashboard's figures on a small replayed country, on SQLite and on PostgreSQL: each equals
the same figure counted directly from the store's rows, in plain Python; and the per-process
cache serves held figures and refreshes them in the background."""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from sqlalchemy import Connection, select, update

from haqq.adapters.store import db
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
from haqq.bootstrap import Haqq, Settings, build
from haqq.domain.access import AccessDenied, Principal, Role
from haqq.domain.cases import TERMINAL
from haqq.office.dashboard import Dashboard, DashboardCache, compute, dashboard, reason_kind
from haqq.replay import replay
from haqq.rules.catalogue import Mode, load_catalogue
from tests.helpers import country_copy, generated_country

BAKU = ZoneInfo("Asia/Baku")


@pytest.fixture(scope="module")
def country_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generated_country(tmp_path_factory, population=3000, seed=23)


def replayed(country_file: Path, tmp_path: Path, url: str) -> Haqq:
    country = country_copy(country_file, tmp_path)
    app = build(Settings(database_url=url, country=country, batch_size=300))
    db.upgrade(app.engine)
    replay(app, year=2025, tick=timedelta(days=7))
    return app


def direct(conn: Connection, consenting: set[str]) -> dict[str, object]:
    """Every figure, counted from the raw rows in Python (no GROUP BY)."""
    all_cases = {r.id: r for r in conn.execute(select(cases))}
    occurred = {r.id: r.occurred_at for r in conn.execute(select(events.c.id, events.c.occurred_at))}
    latest = max(c.updated_at for c in all_cases.values())
    end = latest.astimezone(BAKU).date()
    start = end - timedelta(days=89)
    first_assigned: dict[str, datetime] = {}
    for t in conn.execute(select(case_transitions.c.case_id, case_transitions.c.at, case_transitions.c.target)):
        if t.target == "assigned" and (t.case_id not in first_assigned or t.at < first_assigned[t.case_id]):
            first_assigned[t.case_id] = t.at
    per_day: Counter[tuple[date, str]] = Counter()
    for case_id, at in first_assigned.items():
        day = at.astimezone(BAKU).date()
        if start <= day <= end:
            per_day[(day, all_cases[case_id].program_id)] += 1
    first_paid: dict[str, datetime] = {}
    pay: Counter[tuple[str, str]] = Counter()
    amounts: Counter[tuple[str, str]] = Counter()
    for p in conn.execute(select(payments)):
        pay[(p.program_id, p.status)] += 1
        amounts[(p.program_id, p.status)] += p.amount
        if p.status == "accepted" and p.sent_at is not None and (p.case_id not in first_paid or p.sent_at < first_paid[p.case_id]):
            first_paid[p.case_id] = p.sent_at
    spans: dict[str, list[float]] = defaultdict(list)
    for case_id, sent in first_paid.items():
        c = all_cases[case_id]
        spans[c.program_id].append((sent - occurred[c.event_id]).total_seconds() / 3600)
    latency = {p: (len(v), round(float(np.median(v)), 2), round(float(np.percentile(v, 95)), 2)) for p, v in spans.items()}
    waiting = Counter(c.state for c in all_cases.values() if c.state not in {s.value for s in TERMINAL})
    reasons = Counter(reason_kind(c.review_reason) for c in all_cases.values() if c.state == "needs_review")
    consent: dict[str, Counter[str]] = {p: Counter() for p in consenting}
    for c in all_cases.values():
        if c.program_id in consenting:
            if c.consent_answer in ("yes", "no"):
                consent[c.program_id][c.consent_answer] += 1
            elif c.state == "lapsed":
                consent[c.program_id]["lapsed"] += 1
            elif c.state == "awaiting_consent":
                consent[c.program_id]["waiting"] += 1
    choices = Counter(
        (all_cases[r.case_id].program_id, r.choice, r.channel) for r in conn.execute(select(citizen_choices))
    )
    appealed = {r.case_id for r in conn.execute(select(appeals.c.case_id))}
    reviewed = {r.case_id for r in conn.execute(select(case_transitions.c.case_id, case_transitions.c.target)) if r.target == "needs_review"}
    reviewed |= {r.case_id for r in conn.execute(select(review_actions.c.case_id))}
    claimed = {r.case_id for r in conn.execute(select(citizen_choices.c.case_id, citizen_choices.c.choice)) if r.choice == "claimed"}
    how: Counter[str] = Counter()
    for e in conn.execute(select(entitlements.c.id, entitlements.c.status)):
        if e.status == "declined":
            continue
        c = all_cases[e.id]
        how["appeal" if e.id in appealed else "review" if e.id in reviewed else "claim" if e.id in claimed
            else "consent" if c.consent_answer == "yes" else "automatic"] += 1
    return {
        "cases": len(all_cases), "by_program": Counter(c.program_id for c in all_cases.values()),
        "latest": latest, "start": start, "end": end, "per_day": per_day, "latency": latency,
        "waiting": waiting, "reasons": reasons, "consent": consent, "choices": choices,
        "payments": pay, "amounts": amounts, "how": how,
    }


def check_equal(figures: Dashboard, want: dict[str, object]) -> None:
    assert figures.cases == want["cases"]
    assert figures.cases_by_program == dict(want["by_program"])  # type: ignore[call-overload]
    assert figures.data_until == want["latest"]
    assert (figures.window_start, figures.window_end) == (want["start"], want["end"])
    assert Counter({(d.day, d.program_id): d.cases for d in figures.assignments}) == want["per_day"]
    assert {x.program_id: (x.cases, x.median_hours, x.p95_hours) for x in figures.latency} == want["latency"]
    assert Counter({w.state: w.cases for w in figures.waiting}) == want["waiting"]
    assert figures.waiting_total == sum(want["waiting"].values())  # type: ignore[attr-defined]
    assert Counter({r.reason: r.cases for r in figures.review_reasons}) == want["reasons"]
    consent = want["consent"]
    assert isinstance(consent, dict)
    assert {c.program_id: Counter({k: v for k, v in (("yes", c.yes), ("no", c.no), ("waiting", c.waiting),
                                                     ("lapsed", c.lapsed)) if v}) for c in figures.consent} == consent
    assert Counter({(c.program_id, c.choice, c.channel): c.count for c in figures.choices}) == want["choices"]
    assert Counter({(p.program_id, p.status): p.payments for p in figures.payments}) == want["payments"]
    assert Counter({(p.program_id, p.status): p.amount for p in figures.payments if p.amount}) == want["amounts"]
    how = want["how"]
    assert isinstance(how, Counter)
    pro = figures.proactive
    assert Counter({k: v for k, v in (("automatic", pro.automatic), ("consent", pro.consent), ("claim", pro.claim),
                                      ("review", pro.review), ("appeal", pro.appeal)) if v}) == how
    assert pro.assigned == sum(how.values()) == sum(h.cases for h in figures.how_assigned)
    assert pro.proactive_share == round((how["automatic"] + how["consent"]) / pro.assigned, 4)


def test_the_figures_equal_direct_counts(store_url: str, country_file: Path, tmp_path: Path) -> None:
    app = replayed(country_file, tmp_path, store_url)
    catalogue = load_catalogue()
    consenting = {p.id for p in catalogue.programs.values() if p.mode is Mode.CONSENT}
    with app.engine.connect() as conn:
        figures = compute(conn, catalogue)
        want = direct(conn, consenting)
    # The small country still tells every kind of story the dashboard shows.
    assert figures.assignments and figures.latency and figures.payments
    assert figures.proactive.automatic > 0 and figures.proactive.consent > 0
    assert any(c.yes for c in figures.consent) and figures.choices
    check_equal(figures, want)
    app.engine.dispose()


def test_the_cache_serves_held_figures_and_refreshes_in_the_background(
    sqlite_url: str, country_file: Path, tmp_path: Path
) -> None:
    app = replayed(country_file, tmp_path, sqlite_url)
    catalogue = load_catalogue()
    now = [datetime(2026, 3, 1, 9, 0, tzinfo=UTC)]
    cache = DashboardCache(app.engine, catalogue, max_age=timedelta(seconds=60), clock=lambda: now[0])
    first = cache.figures()
    assert first.computed_at == now[0]
    # A change in the store: a closed case goes back to a person.
    with app.engine.begin() as conn:
        case_id = conn.execute(select(cases.c.id).where(cases.c.state == "closed").order_by(cases.c.id).limit(1)).scalar_one()
        conn.execute(update(cases).where(cases.c.id == case_id).values(
            state="needs_review", review_reason="a test reason: about case 12"))
    now[0] += timedelta(seconds=30)
    assert cache.figures() is first  # fresh enough: held, not recomputed
    now[0] += timedelta(seconds=31)
    assert cache.figures() is first  # stale: still answered at once, a refresh starts
    deadline = time.monotonic() + 30
    while (latest := cache.figures()) is first and time.monotonic() < deadline:
        time.sleep(0.05)
    assert latest is not first and latest.computed_at == now[0]
    assert {r.reason: r.cases for r in latest.review_reasons}.get("a test reason") == 1
    assert "a test reason" not in {r.reason for r in first.review_reasons}
    waiting = {w.state: w.cases for w in latest.waiting}
    assert waiting["needs_review"] == {w.state: w.cases for w in first.waiting}.get("needs_review", 0) + 1
    with app.engine.connect() as conn:
        check_equal(latest, direct(conn, {p.id for p in catalogue.programs.values() if p.mode is Mode.CONSENT}))
    app.engine.dispose()


def test_only_officials_see_the_dashboard(sqlite_url: str) -> None:
    engine = db.make_engine(sqlite_url)
    db.upgrade(engine)
    catalogue = load_catalogue()
    citizen = Principal("c", Role.CITIZEN, "A citizen", fin="ABC1234")
    with pytest.raises(AccessDenied):
        dashboard(citizen, engine, catalogue)
    empty = dashboard(Principal("a", Role.AUDITOR, "An auditor"), engine, catalogue)
    assert empty.cases == 0 and empty.data_until is None and empty.assignments == []
    assert empty.proactive.assigned == 0 and empty.proactive.proactive_share == 0.0
    engine.dispose()


def test_review_reasons_are_grouped_by_kind() -> None:
    assert reason_kind("institution unavailable after 3 attempts: tax/income timed out") == (
        "institution unavailable after N attempts")
    assert reason_kind("HAQB refused to open an account") == "HAQB refused to open an account"
    assert reason_kind(None) == "(none)"
