"""The synthetic country: deterministic, consistent, believable, and its events parse."""

from __future__ import annotations

import hashlib
import io
import json
import re
import sqlite3
from collections import Counter
from contextlib import closing
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest

import haqq.country.generate as gen
from haqq.country import (
    count_events,
    export_jsonl,
    generate_country,
    iter_events,
    read_info,
    year_bounds,
)
from haqq.country.schema import BAKU
from haqq.domain.events import EventType, parse_event
from haqq.domain.fin import FIN_ALPHABET
from haqq.domain.iban import iban_is_valid, make_iban

SMALL = 5_000


def checksum(path: Path) -> str:
    digest = hashlib.sha256()
    with closing(sqlite3.connect(path)) as conn:
        for table, order in (("persons", "id"), ("life_events", "id"), ("bank_accounts", "iban")):
            for row in conn.execute(f"SELECT * FROM {table} ORDER BY {order}"):
                digest.update(repr(row).encode())
    return digest.hexdigest()


def rows(path: Path, sql: str, *args: object) -> list[tuple]:  # type: ignore[type-arg]
    with closing(sqlite3.connect(path)) as conn:
        return conn.execute(sql, args).fetchall()


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("country") / "small.db"
    generate_country(path, population=SMALL, seed=7)
    return path


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("country") / "big.db"
    generate_country(path, population=100_000, seed=3)
    return path


# ---- determinism and file handling -------------------------------------------------------------


def test_same_seed_same_country_other_seed_other_country(tmp_path: Path, small: Path) -> None:
    again = tmp_path / "again.db"
    info = generate_country(again, population=SMALL, seed=7)
    assert checksum(again) == checksum(small)
    other = tmp_path / "other.db"
    generate_country(other, population=SMALL, seed=8)
    assert checksum(other) != checksum(small)
    assert info.population == SMALL and info.seed == 7 and info.year == 2025
    assert info.persons == rows(again, "SELECT count(*) FROM persons")[0][0] > SMALL
    assert info.events == rows(again, "SELECT count(*) FROM life_events")[0][0] > 0
    assert read_info(again) == info


def test_parallel_build_gives_the_same_country(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Chunks built in worker processes and merged equal chunks built in-process."""
    monkeypatch.setattr(gen, "CHUNK", 1_000)
    monkeypatch.setattr(gen, "_PARALLEL_FROM_CHUNKS", 10**9)
    serial = tmp_path / "serial.db"
    generate_country(serial, population=3_500, seed=2)
    monkeypatch.setattr(gen, "_PARALLEL_FROM_CHUNKS", 2)
    parallel = tmp_path / "parallel.db"
    seen: list[int] = []
    generate_country(parallel, population=3_500, seed=2, progress=lambda d, n: seen.append(d))
    assert checksum(parallel) == checksum(serial)
    assert seen == [1_000, 2_000, 3_000, 3_500]
    assert not [p for p in tmp_path.iterdir() if ".part" in p.name or p.name.endswith(".tmp")]


def test_regenerating_replaces_the_file_atomically(tmp_path: Path) -> None:
    path = tmp_path / "country.db"
    generate_country(path, population=500, seed=1)
    before = checksum(path)

    def boom(done: int, total: int) -> None:
        raise RuntimeError("crash mid-way")

    with pytest.raises(RuntimeError):
        generate_country(path, population=800, seed=2, progress=boom)
    assert checksum(path) == before, "a crash must leave the old country untouched"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["country.db", "country.registry"]
    generate_country(path, population=800, seed=2)
    assert rows(path, "SELECT value FROM meta WHERE key='population'") == [("800",)]
    assert rows(path, "PRAGMA journal_mode") == [("wal",)]


def test_bad_arguments_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        generate_country(tmp_path / "x.db", population=0)
    with pytest.raises(ValueError, match="offset"):
        generate_country(tmp_path / "x.db", population=10, year=2010)  # Baku still had DST


# ---- consistency --------------------------------------------------------------------------------


def test_fins_phones_documents_are_unique_and_well_formed(small: Path) -> None:
    fins = [r[0] for r in rows(small, "SELECT fin FROM persons")]
    assert len(fins) == len(set(fins))
    assert all(len(f) == 7 and set(f) <= set(FIN_ALPHABET) for f in fins)
    phones = [r[0] for r in rows(small, "SELECT phone FROM persons WHERE phone IS NOT NULL")]
    assert len(phones) == len(set(phones))
    assert all(re.fullmatch(r"\+994[0-9]{9}", p) for p in phones)
    docs = [r[0] for r in rows(small, "SELECT doc_number FROM persons")]
    assert len(docs) == len(set(docs))


def test_family_links_are_consistent(small: Path) -> None:
    bad_mothers = rows(
        small,
        "SELECT c.fin FROM persons c LEFT JOIN persons m ON m.fin = c.mother_fin "
        "WHERE c.mother_fin IS NOT NULL AND (m.fin IS NULL OR m.sex != 'F' "
        "OR julianday(c.birth_date) - julianday(m.birth_date) < 18 * 365)",
    )
    assert bad_mothers == []
    bad_fathers = rows(
        small,
        "SELECT c.fin FROM persons c LEFT JOIN persons f ON f.fin = c.father_fin "
        "WHERE c.father_fin IS NOT NULL AND (f.fin IS NULL OR f.sex != 'M')",
    )
    assert bad_fathers == []
    bad_spouses = rows(
        small,
        "SELECT a.fin FROM persons a LEFT JOIN persons b ON b.fin = a.spouse_fin "
        "WHERE a.spouse_fin IS NOT NULL AND (b.fin IS NULL OR b.spouse_fin != a.fin "
        "OR b.sex = a.sex OR b.married_on != a.married_on)",
    )
    assert bad_spouses == []
    assert (
        rows(small, "SELECT count(*) FROM persons WHERE spouse_fin IS NOT NULL")[0][0] > SMALL / 4
    )
    assert (
        rows(small, "SELECT count(*) FROM persons WHERE mother_fin IS NOT NULL")[0][0] > SMALL / 5
    )
    # A child with a father on record bears his surname root.
    pairs = rows(
        small,
        "SELECT c.name, f.name FROM persons c JOIN persons f ON f.fin = c.father_fin",
    )
    same = sum(c.split()[-1].rstrip("a") == f.split()[-1].rstrip("a") for c, f in pairs)
    assert same > 0.9 * len(pairs)


def test_ibans_are_valid_and_belong_to_adults(small: Path) -> None:
    accounts = rows(
        small,
        "SELECT a.iban, p.birth_date FROM bank_accounts a JOIN persons p ON p.fin = a.fin",
    )
    assert len(accounts) > 0
    for iban, birth in accounts:
        assert iban_is_valid(iban), iban
        assert iban.startswith("AZ") and iban[4:8] == "HAQB" and len(iban) == 28
        assert date.fromisoformat(birth) <= date(2007, 1, 1)
    assert len({a[0] for a in accounts}) == len(accounts)


def test_iban_helpers() -> None:
    assert iban_is_valid("GB82WEST12345698765432")
    assert iban_is_valid("AZ21NABZ00000000137010001944")
    assert not iban_is_valid("AZ21NABZ00000000137010001945")
    assert not iban_is_valid("AZ21NABZ0000000013701000194")  # one digit short for AZ
    assert not iban_is_valid("az21NABZ00000000137010001944")
    assert not iban_is_valid("AZ21 NABZ 0000 0000 1370 1000 1944")
    built = make_iban("AZ", "HAQB" + "0" * 19 + "7")
    assert iban_is_valid(built) and built[4:] == "HAQB" + "0" * 19 + "7"


# ---- events ---------------------------------------------------------------------------------------


def all_events(path: Path) -> list[dict]:  # type: ignore[type-arg]
    return [e for batch in iter_events(path) for e in batch]


def test_every_event_parses_and_matches_the_registry(small: Path) -> None:
    events = all_events(small)
    assert {e["type"] for e in events} == {t.value for t in EventType}
    start, end = year_bounds(2025)
    persons = {
        r[0]: r
        for r in rows(
            small,
            "SELECT fin, sex, birth_date, death_date, "
            "disability_since, employment_end, spouse_fin, married_on, "
            "mother_fin, father_fin FROM persons",
        )
    }
    ids = set()
    for raw in events:
        event = parse_event(raw)
        assert event.event_id not in ids
        ids.add(event.event_id)
        assert start <= event.occurred_at < end
        assert event.occurred_at.utcoffset() == timedelta(hours=4)
        day = event.occurred_at.date().isoformat()
        person = persons[event.fin]
        if event.type is EventType.BIRTH_REGISTERED:
            assert person[2] == day
            mother = persons[event.payload["mother_fin"]]
            assert mother[1] == "F" and person[8] == mother[0]
            age = (date.fromisoformat(day) - date.fromisoformat(mother[2])).days / 365.25
            assert 18 <= age <= 46
            assert mother[3] is None or mother[3] >= day
            assert person[9] == event.payload["father_fin"]
            assert event.payload["sex"] in ("F", "M") and event.payload["child_name"]
        elif event.type is EventType.DEATH_REGISTERED:
            assert person[3] == day
        elif event.type is EventType.DISABILITY_STATUS_GRANTED:
            assert person[4] == day and event.payload["group"] in (1, 2, 3)
        elif event.type is EventType.EMPLOYMENT_TERMINATED:
            assert person[5] == day and event.payload["employer"]
        elif event.type is EventType.MARRIAGE_REGISTERED:
            assert person[6] == event.payload["spouse_fin"] and person[7] == day
        elif event.type is EventType.AGE_REACHED:
            assert event.payload == {"age": 65}
            born = date.fromisoformat(person[2])
            assert (born.month, born.day) == (event.occurred_at.month, event.occurred_at.day) or (
                born.month == 2 and born.day == 29
            )
            assert born.year == 2025 - 65
        if person[3] is not None and event.type is not EventType.DEATH_REGISTERED:
            assert day <= person[3], f"{event.type} after the death of {event.fin}"


def test_iter_events_is_ordered_chunked_and_filtered(small: Path) -> None:
    batches = list(iter_events(small, chunk=50))
    assert all(len(b) <= 50 for b in batches) and len(batches) > 2
    flat = [e for b in batches for e in b]
    stamps = [datetime.fromisoformat(e["occurred_at"]) for e in flat]
    assert stamps == sorted(stamps)
    assert len(flat) == count_events(small)
    start = datetime(2025, 3, 1, tzinfo=BAKU)
    end = datetime(2025, 4, 1, tzinfo=BAKU)
    march = [e for b in iter_events(small, start=start, end=end, chunk=7) for e in b]
    assert march and len(march) == count_events(small, start, end)
    assert all(start <= datetime.fromisoformat(e["occurred_at"]) < end for e in march)
    expected = [e for e in flat if start <= datetime.fromisoformat(e["occurred_at"]) < end]
    assert march == expected


def test_export_jsonl(small: Path, tmp_path: Path) -> None:
    buffer = io.StringIO()
    n = export_jsonl(small, buffer)
    lines = buffer.getvalue().splitlines()
    assert n == len(lines) == count_events(small)
    assert parse_event(json.loads(lines[0])).event_id == all_events(small)[0]["event_id"]
    out = tmp_path / "events.jsonl"
    assert export_jsonl(small, out) == n
    assert out.read_text(encoding="utf-8") == buffer.getvalue()


# ---- rates ----------------------------------------------------------------------------------------


def test_rates_are_believable(big: Path) -> None:
    n = 100_000
    per_1000 = {
        k: v * 1000 / n
        for k, v in rows(big, "SELECT type, count(*) FROM life_events GROUP BY type")
    }
    assert 9 <= per_1000["birth_registered"] <= 13
    assert 4.5 <= per_1000["death_registered"] <= 7.5
    assert 4 <= per_1000["disability_status_granted"] <= 6
    assert 1 <= per_1000["disability_status_ended"] <= 8
    assert 34 <= per_1000["employment_terminated"] <= 46
    assert 5 <= per_1000["marriage_registered"] <= 7
    assert 8 <= per_1000["age_reached"] <= 16
    (total, non_res, disabled, odd, expired, adults, adult_no_phone) = rows(
        big,
        "SELECT count(*), sum(resident = 0), sum(disability_group IS NOT NULL), "
        "sum(mia_birth_date IS NOT NULL), sum(doc_valid_until < '2025-01-01'), "
        "sum(birth_date <= '2009-01-01'), "
        "sum(birth_date <= '2009-01-01' AND phone IS NULL) FROM persons",
    )[0]
    assert 0.006 <= non_res / total <= 0.014
    assert 0.05 <= disabled / total <= 0.075
    assert 0.001 <= odd / total <= 0.003
    assert 0.003 <= expired / total <= 0.007
    assert 0.01 <= adult_no_phone / adults <= 0.03
    languages = dict(rows(big, "SELECT language, count(*) FROM persons GROUP BY language"))
    assert 0.75 <= languages["az"] / total <= 0.85
    assert 0.11 <= languages["ru"] / total <= 0.19
    assert 0.03 <= languages["en"] / total <= 0.07
    holders = rows(
        big,
        "SELECT count(DISTINCT fin) FROM bank_accounts WHERE origin = 'country'",
    )[0][0]
    assert (
        0.36
        <= holders
        / rows(big, "SELECT count(*) FROM persons WHERE birth_date <= '2007-01-01'")[0][0]
        <= 0.44
    )
    # Older people die more often.
    deaths = Counter(
        (2025 - int(r[0][:4])) // 20
        for r in rows(big, "SELECT birth_date FROM persons WHERE death_date IS NOT NULL")
    )
    assert deaths[3] + deaths[4] + deaths[5] > deaths[1] + deaths[2]
    # Everybody born in 1960 who is alive on their birthday reaches 65 exactly once.
    eligible = rows(
        big,
        "SELECT count(*) FROM persons WHERE birth_date LIKE '1960-%' AND (death_date IS NULL "
        "OR death_date > '2025' || substr(birth_date, 5))",
    )[0][0]
    assert abs(eligible - per_1000["age_reached"] * n / 1000) <= 3
    sample = rows(big, "SELECT name FROM persons LIMIT 2000")
    assert any(set(name) & set("əğıöşüç") for (name,) in sample)
    assert any(
        name.split()[-1]
        in (
            "Ivanov",
            "Ivanova",
            "Petrov",
            "Petrova",
            "Smirnov",
            "Smirnova",
            "Kuznetsov",
            "Kuznetsova",
            "Popov",
            "Popova",
            "Sokolov",
            "Sokolova",
            "Volkov",
            "Volkova",
            "Morozov",
            "Morozova",
            "Novikov",
            "Novikova",
            "Fyodorov",
            "Fyodorova",
            "Orlov",
            "Orlova",
            "Belov",
            "Belova",
        )
        for (name,) in sample
    )
