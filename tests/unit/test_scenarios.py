"""The catalogue's scenarios: every program has them, they pass on both backends, and a wrong
expectation or a bad file is reported where it is."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from haqq.domain.errors import CatalogueError
from haqq.rules import plain, scenarios
from haqq.rules.catalogue import load_catalogue

CATALOGUE = load_catalogue()


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    copy = tmp_path / "scenarios"
    shutil.copytree(scenarios.DEFAULT_DIRECTORY, copy)
    return copy


def test_every_program_has_at_least_five_scenarios_and_all_pass() -> None:
    results = scenarios.run_all(CATALOGUE)
    assert min(scenarios.coverage(CATALOGUE, results).values()) >= 5
    failed = [(r.program, r.name, r.expected, r.interpreter, r.vectorised) for r in results if not r.passed]
    assert failed == []
    # The scenarios reach every outcome and most branches.
    assert {r.expected.outcome for r in results} == {"granted", "denied", "needs_review", "stop"}


def test_a_wrong_expectation_is_reported_with_what_each_backend_said(folder: Path) -> None:
    path = folder / "old_age_pension.yaml"
    path.write_text(path.read_text(encoding="utf-8").replace("amount: 13500}", "amount: 13400}", 1), encoding="utf-8")
    results = scenarios.run_all(CATALOGUE, folder, "old_age_pension")
    bad = [r for r in results if not r.passed]
    assert len(bad) == 1
    assert (bad[0].expected.amount, bad[0].interpreter.amount, bad[0].vectorised.amount) == (13400, 13500, 13500)
    assert bad[0].line > 0


def test_an_unknown_fact_in_a_scenario_names_file_and_line(folder: Path) -> None:
    path = folder / "birth_benefit.yaml"
    path.write_text(path.read_text(encoding="utf-8").replace("beneficiary: {resident: false}", "beneficiary: {resdent: false}"), encoding="utf-8")
    with pytest.raises(CatalogueError, match=r"birth_benefit\.yaml:\d+: scenario 'a mother living abroad is not paid': beneficiary: unknown fact 'resdent'"):
        scenarios.load_all(CATALOGUE, folder)


def test_an_unknown_branch_is_refused(folder: Path) -> None:
    path = folder / "funeral_allowance.yaml"
    path.write_text(path.read_text(encoding="utf-8").replace("branch: beneficiary_alive", "branch: alive"), encoding="utf-8")
    with pytest.raises(CatalogueError, match="funeral_allowance has no check or branch 'alive'"):
        scenarios.load_all(CATALOGUE, folder)


def test_a_fact_of_the_wrong_type_is_refused(folder: Path) -> None:
    path = folder / "unemployment_insurance.yaml"
    path.write_text(path.read_text(encoding="utf-8").replace("insurance_months: 11}", "insurance_months: eleven}"), encoding="utf-8")
    with pytest.raises(CatalogueError, match="fact 'insurance_months' must be int, got 'eleven'"):
        scenarios.load_all(CATALOGUE, folder)


TRACE = {
    "program": "disability_payment",
    "program_version": 2,
    "outcome": "granted",
    "amount": 28000,
    "branch": "labour_pension_for_disability",
    "date": "2025-06-01",
    "checks_passed": ["beneficiary_known", "disability_active"],
    "reasons": [{"code": "labour_pension_for_disability", "text": "all conditions are met",
                 "reference": "Law on Labour Pensions, Article 9.2 (illustrative)", "texts": {}}],
    "parameters": [{"name": "labour_pension_minimum", "value": 28000, "effective_from": "2025-01-01",
                    "reference": "Decree No. 305 of 2024 (illustrative)"}],
    "facts": [
        {"name": "subject.pension_capital", "value": 1500000, "source": "pension_fund/record"},
        {"name": "subject.disability_group", "value": 0, "source": "default"},
    ],
    "sources": {"pension_fund/record": {"institution": "pension_fund", "message_id": "m-1", "answered_at": "2025-06-01T08:00:00+00:00"}},
}


@pytest.mark.parametrize(
    ("lang", "granted", "why"),
    [
        ("en", "Granted: 280.00 AZN a month.", "Why: all conditions are met (rule labour_pension_for_disability;"),
        ("az", "Təyin edildi: ayda 280.00 AZN.", "Səbəb: bütün şərtlər ödənilir (qayda labour_pension_for_disability;"),
        ("ru", "Назначено: 280.00 AZN в месяц.", "Почему: все условия выполнены (правило labour_pension_for_disability;"),
    ],
)
def test_plain_language_in_three_languages(lang: str, granted: str, why: str) -> None:
    lines = plain.explain(TRACE, program_name="X", fin="AAAAAAA", lang=lang, monthly=True,
                          units={"labour_pension_minimum": "qepik"})
    assert lines[1] == granted
    assert lines[2].startswith(why)
    text = "\n".join(lines)
    assert "subject.pension_capital = 15,000.00 AZN" in text and "m-1" in text
    assert "labour_pension_minimum = 280.00 AZN" in text and "2025-01-01" in text
    assert "subject.disability_group = 0" in text


def test_plain_language_refuses_an_unknown_language() -> None:
    with pytest.raises(ValueError, match="language 'fr'"):
        plain.explain(TRACE, program_name="X", fin="AAAAAAA", lang="fr")
