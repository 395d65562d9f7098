"""The registry snapshot the generator writes agrees with the country file and its institutions."""

from __future__ import annotations

from datetime import date, datetime, time
from pathlib import Path

import polars as pl
import pytest

from haqq.adapters.institutions import SimulatedInstitutions
from haqq.country import generate_country, snapshot
from haqq.country.schema import BAKU
from haqq.ports import Service
from tests.helpers import country_query, generated_country

COLUMNS = {  # country file column -> snapshot column
    "fin": "fin", "sex": "sex", "birth_date": "birth_date", "mia_birth_date": "interior_birth_date",
    "death_date": "death_date", "mother_fin": "mother_fin", "father_fin": "father_fin",
    "spouse_fin": "spouse_fin", "married_on": "married_on", "household": "household",
    "resident": "resident", "doc_valid_until": "document_valid_until", "phone": "phone",
    "language": "language", "employed": "employed", "monthly_income": "monthly_income",
    "employment_end": "employment_end", "insurance_months": "insurance_months",
    "pension_capital": "pension_capital", "pensions": "pensions",
    "disability_group": "disability_group", "disability_since": "disability_since",
    "disability_until": "disability_until",
}


@pytest.fixture(scope="module")
def country(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generated_country(tmp_path_factory, 6_000, 3)


def test_snapshot_holds_every_person_as_the_country_file_does(country: Path) -> None:
    frame = snapshot.scan(country).collect().sort("fin")
    rows = country_query(country, f"SELECT {', '.join(COLUMNS)} FROM persons ORDER BY fin")
    assert frame.height == len(rows) > 6_000  # the standing population and the year's newborns
    for name, column in COLUMNS.items():
        series = frame[column]
        if series.dtype == pl.Date:
            series = series.cast(pl.String)
        elif series.dtype == pl.Boolean:
            series = series.cast(pl.Int64)
        assert series.to_list() == [r[name] for r in rows], name


def test_marriages_and_birth_dates_before_1970_are_kept(country: Path) -> None:
    # Day numbers before 1970 are negative: they must not be mistaken for "no date".
    old = country_query(country, "SELECT count(*) FROM persons WHERE married_on < '1970-01-01'")
    assert old[0][0] > 0
    frame = snapshot.scan(country).filter(pl.col("married_on") < date(1970, 1, 1)).collect()
    assert frame.height == old[0][0]


@pytest.mark.parametrize("day", [date(2025, 1, 1), date(2025, 7, 15), date(2025, 12, 31)])
def test_as_of_answers_as_the_institutions_do(country: Path, day: date) -> None:
    view = snapshot.as_of(snapshot.scan(country), day).collect()
    fins = view["fin"].to_list()
    moment = datetime.combine(day, time(12), tzinfo=BAKU)
    ask = SimulatedInstitutions(country)

    def answers(service: Service) -> dict[str, dict[str, object]]:
        return {k: dict(v) for k, v in ask.query(service, fins, as_of=moment, purpose="test").records.items()}

    person, identity = answers(Service.CIVIL_PERSON), answers(Service.INTERIOR_IDENTITY)
    family, income = answers(Service.CIVIL_FAMILY), answers(Service.TAX_INCOME)
    disability = answers(Service.DISABILITY_STATUS)
    assert set(person) == set(fins)  # the same people exist on that day
    dead = 0
    for row in view.iter_rows(named=True):
        fin = row["fin"]
        assert row["alive"] == person[fin]["alive"], fin
        dead += not row["alive"]
        death = row["death_date"]
        assert (death.isoformat() if death else None) == person[fin]["death_date"], fin
        assert row["interior_birth_date"].isoformat() == identity[fin]["birth_date"], fin
        assert row["document_valid"] == identity[fin]["document_valid"], fin
        assert row["resident"] == identity[fin]["resident"], fin
        assert row["spouse_fin"] == family[fin]["spouse_fin"], fin
        assert row["employed"] == income[fin]["employed"], fin
        assert row["monthly_income"] == income[fin]["monthly_income"], fin
        assert row["disability_active"] == disability[fin]["active"], fin
        assert row["disability_group"] == disability[fin]["group"], fin
    # Everyone of the standing population is alive on 1 January; deaths come with the year.
    assert (dead > 0) == (day > date(2025, 1, 1))


def test_a_missing_snapshot_is_named(tmp_path: Path) -> None:
    with pytest.raises(snapshot.SnapshotMissing, match="no registry snapshot at .*country.registry"):
        snapshot.scan(tmp_path / "country.db")


def test_regenerating_replaces_the_snapshot(tmp_path: Path) -> None:
    path = tmp_path / "country.db"
    generate_country(path, population=500, seed=1, year=2025)
    first = snapshot.scan(path).collect().height
    generate_country(path, population=800, seed=1, year=2025)
    assert snapshot.scan(path).collect().height > first
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
