"""``haqq rules``: check, test, params and explain, through the real command line."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from sqlalchemy import select

from haqq.adapters.store import db
from haqq.adapters.store.schema import data_access_log
from haqq.rules.catalogue import DEFAULT_DIRECTORY
from haqq.rules.scenarios import DEFAULT_DIRECTORY as SCENARIOS
from tests.e2e.test_cli import haqq, ok
from tests.helpers import country_query


@pytest.fixture(scope="module")
def country_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    where = tmp_path_factory.mktemp("rules")
    ok(haqq("country", "generate", "--population", "3000", "--seed", "5", cwd=where))
    ok(haqq("db", "upgrade", cwd=where))
    return where


def test_check_lists_every_program_with_its_scenarios(tmp_path: Path) -> None:
    out = ok(haqq("rules", "check", cwd=tmp_path))
    assert "ok: 9 programs" in out
    for program in ("birth_benefit", "child_care_allowance", "survivors_pension", "unemployment_insurance"):
        assert program in out


def test_check_names_file_and_line_of_a_mistake(tmp_path: Path) -> None:
    folder = tmp_path / "programs"
    shutil.copytree(DEFAULT_DIRECTORY, folder)
    path = folder / "birth_benefit.yaml"
    path.write_text(path.read_text(encoding="utf-8").replace("value: param.amount", "value: param.amont"), encoding="utf-8")
    result = haqq("rules", "check", "--catalogue", str(folder), cwd=tmp_path)
    assert result.returncode == 2
    assert "birth_benefit.yaml:" in result.stderr and "unknown parameter `amont`" in result.stderr
    assert "Traceback" not in result.stderr


def test_test_runs_every_scenario_on_both_backends(tmp_path: Path) -> None:
    out = ok(haqq("rules", "test", cwd=tmp_path))
    assert "scenarios pass on both backends" in out


def test_test_fails_naming_the_scenario_whose_expectation_is_wrong(tmp_path: Path) -> None:
    folder = tmp_path / "scenarios"
    shutil.copytree(SCENARIOS, folder)
    path = folder / "disability_payment.yaml"
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace("amount: 30001}", "amount: 30000}", 1), encoding="utf-8")
    result = haqq("rules", "test", "--scenarios", str(folder), "--program", "disability_payment", cwd=tmp_path)
    assert result.returncode == 1
    assert "FAIL disability_payment line" in result.stdout
    assert "expected    granted by labour_pension_for_disability, 30000" in result.stdout
    assert "interpreter granted by labour_pension_for_disability, 30001" in result.stdout
    assert "vectorised  granted by labour_pension_for_disability, 30001" in result.stdout


def test_params_show_the_history_of_each_parameter(tmp_path: Path) -> None:
    out = ok(haqq("rules", "params", "birth_benefit", cwd=tmp_path))
    assert "250.00 AZN" in out and "300.00 AZN" in out
    assert "2025-01-01" in out and "No. 418 of 2024" in out
    result = haqq("rules", "params", "pension", cwd=tmp_path)
    assert result.returncode == 2 and "no program 'pension'" in result.stderr


def test_explain_in_three_languages_and_logs_the_access(country_dir: Path) -> None:
    row = country_query(
        country_dir / "country.db",
        "SELECT fin FROM persons WHERE disability_group IS NOT NULL AND death_date IS NULL "
        "AND mia_birth_date IS NULL AND resident = 1 AND birth_date < '1990-01-01' "
        "AND disability_since < '2025-01-01' AND disability_until IS NULL "
        "AND pensions NOT LIKE '%disability%' ORDER BY fin LIMIT 1",
    )[0]
    fin = row["fin"]
    en = ok(haqq("rules", "explain", fin, "disability_payment", "--date", "2025-06-01", cwd=country_dir))
    assert f"Disability payment for {fin}, as of 2025-06-01" in en
    assert "Granted:" in en and "a month" in en
    assert "subject.disability_active = yes (from disability/status, message " in en
    assert "labour_pension_minimum" in en or "allowance_group_" in en
    az = ok(haqq("rules", "explain", fin, "disability_payment", "--date", "2025-06-01", "--lang", "az", cwd=country_dir))
    assert "Əlilliyə görə ödəniş" in az and "Təyin edildi: ayda" in az
    ru = ok(haqq("rules", "explain", fin, "disability_payment", "--date", "2025-06-01", "--lang", "ru", cwd=country_dir))
    assert "Назначено:" in ru
    engine = db.make_engine(f"sqlite:///{country_dir / 'haqq.db'}")
    with engine.connect() as conn:
        logged = conn.execute(
            select(data_access_log.c.requester, data_access_log.c.purpose).where(data_access_log.c.fin == fin)
        ).all()
    engine.dispose()
    assert logged and all(r.requester.startswith("cli:") for r in logged)
    assert {r.purpose for r in logged} == {"explaining disability_payment to a caseworker"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["ABC", "birth_benefit"], "invalid FIN"),
        (["AAAAAAA", "pension"], "no program 'pension'"),
        (["AAAAAAA", "birth_benefit", "--date", "2025-13-01"], "--date '2025-13-01'"),
        (["AAAAAAA", "birth_benefit", "--lang", "fr"], "--lang 'fr'"),
    ],
)
def test_explain_refuses_bad_input_in_one_line(country_dir: Path, args: list[str], message: str) -> None:
    result = haqq("rules", "explain", *args, cwd=country_dir)
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_explain_as_new_shows_the_amount_for_a_person_already_paid(tmp_path: Path) -> None:
    """After a replay the person is paid: plain explain says so, --as-new shows the computation."""
    ok(haqq("demo", "--population", "3000", cwd=tmp_path, timeout=300))
    engine = db.make_engine(f"sqlite:///{tmp_path / 'haqq.db'}")
    from haqq.adapters.store.schema import entitlements

    with engine.connect() as conn:
        fin = conn.execute(
            select(entitlements.c.subject_fin).where(
                entitlements.c.program_id == "disability_payment", entitlements.c.fin == entitlements.c.subject_fin
            ).order_by(entitlements.c.subject_fin)
        ).scalars().first()
    engine.dispose()
    assert fin is not None
    paid = ok(haqq("rules", "explain", fin, "disability_payment", "--date", "2025-12-31", cwd=tmp_path))
    assert "Not granted." in paid and "rule not_already_paid" in paid
    fresh = ok(haqq("rules", "explain", fin, "disability_payment", "--date", "2025-12-31", "--as-new", cwd=tmp_path))
    assert "Granted:" in fresh and "already_paid = no" in fresh
