"""The one-stop shop's people use cases (:mod:`haqq.office.people`) on a small replayed country,
on SQLite and PostgreSQL: search, a person's whole picture, a citizen's benefits, declining and
stopping, the data-access log, and who may see what."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, event, func, insert, select, text

from haqq.adapters.institutions.directory import CountryDirectory
from haqq.adapters.store import db
from haqq.adapters.store.schema import (
    appeals,
    cases,
    data_access_log,
    entitlements,
    message_log,
    payments,
)
from haqq.bootstrap import Haqq, Settings, build
from haqq.domain.access import AccessDenied, Principal, Role
from haqq.office import people
from haqq.replay import replay
from tests.helpers import country_copy, generated_country

CASEWORKER = Principal("aysel", Role.CASEWORKER, "Aysel Məmmədova")
SUPERVISOR = Principal("rauf", Role.SUPERVISOR, "Rauf Quliyev")


@pytest.fixture(scope="module")
def country_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generated_country(tmp_path_factory, population=2000, seed=11)


@dataclass
class Store:
    app: Haqq
    directory: CountryDirectory

    def begin(self) -> Any:
        return self.app.engine.begin()


def replayed(url: str, country_file: Path, folder: Path) -> Store:
    country = country_copy(country_file, folder)
    app = build(Settings(database_url=url, country=country, batch_size=300))
    db.upgrade(app.engine)
    replay(app, year=2025, tick=timedelta(days=7))
    return Store(app, CountryDirectory(country))


@pytest.fixture
def store(store_url: str, country_file: Path, tmp_path: Path) -> Iterator[Store]:
    """A year replayed on each store."""
    done = replayed(store_url, country_file, tmp_path)
    yield done
    done.app.engine.dispose()


@pytest.fixture
def sqlite_store(sqlite_url: str, country_file: Path, tmp_path: Path) -> Iterator[Store]:
    done = replayed(sqlite_url, country_file, tmp_path)
    yield done
    done.app.engine.dispose()


def now() -> datetime:
    return datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def citizen(fin: str) -> Principal:
    return Principal(f"citizen-{fin}", Role.CITIZEN, "A citizen", fin=fin)


def paid_monthly(conn: Connection) -> list[str]:
    """Active monthly entitlements with a payment at the bank (stopping them is a stop)."""
    return list(conn.execute(
        select(entitlements.c.id).where(
            entitlements.c.status == "active", entitlements.c.schedule == "monthly",
            select(payments.c.id).where(payments.c.entitlement_id == entitlements.c.id,
                                        payments.c.status == "accepted").exists(),
        ).order_by(entitlements.c.id)
    ).scalars())


def beneficiary(conn: Connection, case_id: str) -> str:
    return str(conn.execute(select(cases.c.beneficiary_fin).where(cases.c.id == case_id)).scalar_one())


def logged(conn: Connection, fin: str, service: str | None = None) -> int:
    stmt = select(func.count()).select_from(data_access_log).where(data_access_log.c.fin == fin,
                                                                   data_access_log.c.institution == "haqq")
    if service is not None:
        stmt = stmt.where(data_access_log.c.service == service)
    return int(conn.execute(stmt).scalar_one())


def test_search_by_fin_name_and_phone_is_logged_for_each_person_found(store: Store) -> None:
    with store.begin() as conn:
        [case_id, *_] = paid_monthly(conn)
        fin = beneficiary(conn, case_id)
        card = store.directory.card(fin)
        assert card is not None and card.phone is not None
        by_fin = people.search(conn, store.directory, CASEWORKER, fin.lower(), 10, 0, at=now())
        assert [h.fin for h in by_fin.hits] == [fin]
        assert by_fin.hits[0].name == card.name and by_fin.hits[0].cases >= 1 and not by_fin.more
        by_phone = people.search(conn, store.directory, CASEWORKER, card.phone, 10, 0, at=now())
        assert fin in [h.fin for h in by_phone.hits]
        by_name = people.search(conn, store.directory, CASEWORKER, card.name, 50, 0, at=now())
        assert fin in [h.fin for h in by_name.hits]
        assert all(h.name and h.name.startswith(card.name) for h in by_name.hits)
        assert logged(conn, fin, "search") == 3
        purposes = conn.execute(select(data_access_log.c.purpose, data_access_log.c.requester)
                                .where(data_access_log.c.fin == fin, data_access_log.c.service == "search")).all()
        assert {p.requester for p in purposes} == {"caseworker:aysel"}
        assert any(f"search for '{card.phone}'" in p.purpose for p in purposes)
        # Pages: a name prefix shared by many, two at a time, without overlap.
        prefix = card.name[:2]
        first = people.search(conn, store.directory, CASEWORKER, prefix, 2, 0, at=now())
        second = people.search(conn, store.directory, CASEWORKER, prefix, 2, 2, at=now())
        assert first.more and len(first.hits) == 2 and second.hits
        assert not {h.fin for h in first.hits} & {h.fin for h in second.hits}
        with pytest.raises(AccessDenied):
            people.search(conn, store.directory, citizen(fin), fin, 10, 0, at=now())


def test_without_a_directory_search_is_by_fin_over_haqqs_records(store: Store) -> None:
    with store.begin() as conn:
        [case_id, *_] = paid_monthly(conn)
        fin = beneficiary(conn, case_id)
        found = people.search(conn, None, CASEWORKER, fin, 10, 0, at=now())
        assert [(h.fin, h.name) for h in found.hits] == [(fin, None)] and found.hits[0].cases >= 1
        assert people.search(conn, None, CASEWORKER, "ZZZZZZ9", 10, 0, at=now()).hits == []
        assert people.search(conn, None, CASEWORKER, "Gül", 10, 0, at=now()).hits == []


def test_a_persons_picture_is_whole_and_the_look_is_logged(store: Store) -> None:
    catalogue = store.app.catalogue
    with store.begin() as conn:
        [case_id, *_] = paid_monthly(conn)
        fin = beneficiary(conn, case_id)
        before = logged(conn, fin)
        pic = people.picture(conn, store.directory, CASEWORKER, fin, now(), "ru", catalogue=catalogue)
        assert logged(conn, fin) == before + 1
        card = store.directory.card(fin)
        assert card is not None and pic.identity is not None
        assert pic.identity.name == card.name and pic.identity.source and pic.identity.read_at
        kin = {r.fin for r in pic.family}
        assert kin == {f for fins in card.family.values() for f in fins}
        assert all(r.name for r in pic.family)
        [mine] = [c for c in pic.cases if c.id == case_id]
        assert mine.decision is not None and mine.decision.outcome == "granted"
        assert any("Назначено" in line for line in mine.decision.explanation)
        assert mine.decision.legal_basis.get("act")
        assert [t.target for t in mine.transitions][-1] == mine.state
        assert any(e.id == case_id and e.status == "active" for e in pic.entitlements)
        assert any(p.case_id == case_id and p.status == "accepted" for p in pic.payments)
        assert any(s.case_id == case_id for s in pic.sms)
        # The registry data behind the decision, each fact with the message that brought it.
        facts = [f for f in pic.registry_data if f.case_id == case_id]
        assert facts and all(f.institution for f in facts)
        ids = {f.message_id for f in facts if f.message_id}
        assert ids and ids <= set(conn.execute(select(message_log.c.message_id)).scalars())
        # The look itself is the newest entry of the access log shown.
        newest = pic.access_log[0]
        assert (newest.service, newest.requester, newest.institution) == ("person page", "caseworker:aysel", "haqq")
        assert pic.access_log == sorted(pic.access_log, key=lambda a: (a.at, a.id), reverse=True)
        # The citizen sees their own, unlogged; another citizen is refused, and nothing is logged.
        own = people.picture(conn, store.directory, citizen(fin), fin, now(), "en", catalogue=catalogue)
        assert own.fin == fin and logged(conn, fin) == before + 1
        other = next(f for f in kin if f != fin)
        with pytest.raises(AccessDenied):
            people.picture(conn, store.directory, citizen(other), fin, now(), "en", catalogue=catalogue)
        assert logged(conn, fin) == before + 1
        with pytest.raises(people.UnknownPerson):
            people.picture(conn, store.directory, CASEWORKER, "ZZZZZZ9", now(), "en", catalogue=catalogue)
        # Without the directory, haqq's own records still make a picture.
        bare = people.picture(conn, None, CASEWORKER, fin, now(), "en", catalogue=catalogue)
        assert bare.identity is None and bare.identity_note and bare.cases


def test_the_picture_reads_through_indexes_only(sqlite_store: Store) -> None:
    """The bench's 100 ms on a million persons holds only if no read scans a table (SQLite's
    plans say so whatever the size; PostgreSQL's planner would scan a table this small)."""
    store = sqlite_store
    seen: list[tuple[str, Any]] = []

    def record(_conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, _many: bool) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            seen.append((statement, parameters))

    engine = store.app.engine
    with engine.connect() as conn:
        [case_id, *_] = paid_monthly(conn)
        fin = beneficiary(conn, case_id)
    event.listen(engine, "before_cursor_execute", record)
    try:
        with engine.begin() as conn:
            people.picture(conn, store.directory, CASEWORKER, fin, now(), "en", catalogue=store.app.catalogue)
            people.my_benefits(conn, citizen(fin), now(), "en", catalogue=store.app.catalogue)
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert 5 <= len(seen) <= 16
    with engine.connect() as conn:
        for statement, parameters in seen:
            plan = [str(r[-1]) for r in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters)]
            scans = [p for p in plan if p.startswith("SCAN")]
            assert not scans, f"{statement}\n{plan}"


def test_a_citizen_stops_a_monthly_benefit_in_one_step(store: Store) -> None:
    catalogue = store.app.catalogue
    with store.begin() as conn:
        first, second, *_ = paid_monthly(conn)
        fin = beneficiary(conn, first)
        me = citizen(fin)
        [benefit] = [b for b in people.my_benefits(conn, me, now(), "en", catalogue=catalogue) if b.case_id == first]
        assert (benefit.can_stop, benefit.stop_kind, benefit.status) == (True, "stop", "active")
        assert benefit.explanation and benefit.amount and benefit.program_name != benefit.program_id
        assert not benefit.can_appeal
        with pytest.raises(AccessDenied):
            people.decline(conn, citizen(beneficiary(conn, second)), first, now(), None, None)
        done = people.decline(conn, me, first, now(), None, None, channel="console")
        assert done.choice == "stop" and done.outcome.startswith("ended from")
        [after] = [b for b in people.my_benefits(conn, me, now(), "en", catalogue=catalogue) if b.case_id == first]
        assert (after.status, after.can_stop, after.stop_kind) == ("ended", False, None)
        assert after.next_payments == []
        with pytest.raises(people.CannotDecline, match="already ended"):
            people.decline(conn, me, first, now(), None, None)
        with pytest.raises(people.UnknownCase):
            people.decline(conn, me, "C-NO-SUCH-CASE", now(), None, None)
        # A citizen's own step is not logged in their access log.
        assert logged(conn, fin, "stop on behalf") == 0


def test_a_caseworker_stops_on_the_persons_behalf_and_it_is_logged(store: Store) -> None:
    with store.begin() as conn:
        _, case_id, *_ = paid_monthly(conn)
        fin = beneficiary(conn, case_id)
        done = people.decline(conn, SUPERVISOR, case_id, now(), None, None, channel="console", note="asked at the office")
        assert done.choice == "stop"
        row = conn.execute(select(data_access_log).where(data_access_log.c.fin == fin,
                                                         data_access_log.c.service == "stop on behalf")).one()
        assert row.case_id == case_id and row.requester == "supervisor:rauf"
        status = conn.execute(select(entitlements.c.status).where(entitlements.c.id == case_id)).scalar_one()
        assert status == "ended"
        with pytest.raises(AccessDenied):
            people.decline(conn, Principal("audit", Role.AUDITOR, "An auditor"), case_id, now(), None, None)


def test_a_denied_case_can_be_appealed_until_an_appeal_is_open(store: Store) -> None:
    with store.begin() as conn:
        case_id = conn.execute(select(cases.c.id).where(cases.c.state == "denied").order_by(cases.c.id)).scalars().first()
        assert case_id is not None
        fin = beneficiary(conn, case_id)
        [b] = [b for b in people.my_benefits(conn, citizen(fin), now(), "az") if b.case_id == case_id]
        assert b.can_appeal and not b.can_stop and b.status == "denied"
        conn.execute(insert(appeals).values(case_id=case_id, fin=fin, reason="I was employed", opened_by=fin,
                                            channel="console", opened_at=now(), status="open"))
        [b] = [b for b in people.my_benefits(conn, citizen(fin), now(), "az") if b.case_id == case_id]
        assert not b.can_appeal and b.appeal_status == "open"
        pic = people.picture(conn, None, CASEWORKER, fin, now(), "az")
        assert [a.reason for a in pic.appeals] == ["I was employed"]


def test_the_access_log_pages_newest_first_and_a_citizen_sees_only_their_own(store: Store) -> None:
    with store.begin() as conn:
        [case_id, *_] = paid_monthly(conn)
        fin = beneficiary(conn, case_id)
        total = int(conn.execute(select(func.count()).select_from(data_access_log)
                                 .where(data_access_log.c.fin == fin)).scalar_one())
        assert total >= 3
        mine = people.access_log(conn, citizen(fin), fin, 2, 0)
        assert len(mine.entries) == 2 and mine.more
        rest = people.access_log(conn, citizen(fin), fin, 1000, 2)
        assert len(rest.entries) == total - 2 and not rest.more
        everything = mine.entries + rest.entries
        assert [a.at for a in everything] == sorted((a.at for a in everything), reverse=True)
        assert {a.institution for a in everything} - {"haqq"}, "the registries' reads are in it too"
        with pytest.raises(AccessDenied):
            people.access_log(conn, citizen("ZZZZZZ9"), fin, 10, 0)
        people.access_log(conn, CASEWORKER, fin, 10, 0, at=now())
        assert logged(conn, fin, "access log") == 1


def test_a_registry_posts_events_and_each_bad_one_is_refused_alone(engine: Any) -> None:
    system = Principal("civil-registry", Role.SYSTEM, "Civil registry")
    good = {"event_id": "CR-1", "type": "death_registered", "fin": "7T5NL6V", "source": "civil_registry",
            "occurred_at": "2026-03-01T10:00:00+04:00"}
    bad = {"event_id": "CR-2", "type": "no_such_event", "fin": "7T5NL6V", "occurred_at": "2026-03-01T10:00:00+04:00"}
    with engine.begin() as conn:
        result = people.take_in(conn, system, [good, bad, "not an object"], at=now())
    assert result.accepted == 1 and result.duplicates == 0
    assert [(r.index, r.event_id) for r in result.refused] == [(1, "CR-2"), (2, None)]
    assert "unknown event type" in result.refused[0].error
    with engine.begin() as conn:
        again = people.take_in(conn, system, [good], at=now())
        assert (again.accepted, again.duplicates) == (0, 1)
        assert conn.execute(text("SELECT count(*) FROM events")).scalar_one() == 1
        with pytest.raises(AccessDenied):
            people.take_in(conn, CASEWORKER, [good], at=now())
        listed, more = people.events_of(conn, CASEWORKER, "7T5NL6V", limit=10, offset=0, at=now())
        assert [e.source_event_id for e in listed] == ["CR-1"] and not more
