"""The program catalogue: the built-in files load; a bad file is refused naming file and field."""

from __future__ import annotations

import copy
import re
import shutil
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import yaml

from haqq.domain.errors import CatalogueError
from haqq.domain.events import EventType
from haqq.rules.catalogue import (
    DEFAULT_DIRECTORY,
    Beneficiary,
    Catalogue,
    Mode,
    Parameter,
    Program,
    Schedule,
    load_catalogue,
    load_program,
)

PROGRAM_IDS = {
    "birth_benefit",
    "disability_payment",
    "disability_status_end",
    "funeral_allowance",
    "stop_on_death",
}


def _source(program_id: str) -> dict[str, Any]:
    data = yaml.safe_load((DEFAULT_DIRECTORY / f"{program_id}.yaml").read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


BIRTH = _source("birth_benefit")
DISABILITY = _source("disability_payment")


def write(tmp_path: Path, data: dict[str, Any], name: str | None = None) -> Path:
    path = tmp_path / f"{name or data['id']}.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def refused(path: Path) -> str:
    with pytest.raises(CatalogueError) as info:
        load_program(path)
    message = str(info.value)
    assert message.startswith(f"{path}: "), message
    return message


def mutated(base: dict[str, Any], change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    data = copy.deepcopy(base)
    change(data)
    return data


# --- the built-in catalogue ------------------------------------------------------------------


def test_default_catalogue_loads_five_programs() -> None:
    catalogue = load_catalogue()
    assert isinstance(catalogue, Catalogue)
    assert set(catalogue.programs) == PROGRAM_IDS
    assert len(catalogue.programs) == 5
    for program_id, program in catalogue.programs.items():
        assert program.id == program_id
        assert catalogue[program_id] is program


def test_version_is_stable_and_names_the_files(tmp_path: Path) -> None:
    first = load_catalogue()
    assert re.fullmatch(r"[0-9a-f]{12}", first.version)
    assert load_catalogue().version == first.version
    assert load_catalogue(DEFAULT_DIRECTORY).version == first.version
    copy_dir = tmp_path / "copy"
    shutil.copytree(DEFAULT_DIRECTORY, copy_dir)
    assert load_catalogue(copy_dir).version == first.version
    # One more byte in one file is another catalogue.
    path = copy_dir / "funeral_allowance.yaml"
    path.write_bytes(path.read_bytes() + b"\n# changed\n")
    assert load_catalogue(copy_dir).version != first.version


def test_built_in_programs_say_what_they_are() -> None:
    c = load_catalogue()
    birth = c["birth_benefit"]
    assert birth.mode is Mode.AUTOMATIC
    assert birth.schedule is Schedule.LUMP_SUM
    assert birth.beneficiary is Beneficiary.MOTHER_ELSE_FATHER
    assert birth.triggers == [EventType.BIRTH_REGISTERED]
    assert birth.checks[-1] == "not_already_paid"
    assert birth.legal_reference() == "Law on Social Benefits (illustrative), Article 12.1"
    disability = c["disability_payment"]
    assert disability.schedule is Schedule.MONTHLY
    assert [b.id for b in disability.amount] == [
        "labour_pension_for_disability",
        "social_allowance_group_1",
        "social_allowance_group_2",
        "social_allowance_group_3",
    ]
    assert disability.amount[-1].when is None
    assert c["funeral_allowance"].mode is Mode.CONSENT
    assert c["stop_on_death"].mode is Mode.STOP
    assert c["stop_on_death"].stops == "all"
    assert c["disability_status_end"].stops == ["disability_payment"]


def test_triggered_by() -> None:
    c = load_catalogue()
    assert {p.id for p in c.triggered_by(EventType.DEATH_REGISTERED)} == {
        "funeral_allowance",
        "stop_on_death",
    }
    assert [p.id for p in c.triggered_by(EventType.BIRTH_REGISTERED)] == ["birth_benefit"]
    assert [p.id for p in c.triggered_by(EventType.DISABILITY_STATUS_ENDED)] == [
        "disability_status_end"
    ]
    assert c.triggered_by(EventType.MARRIAGE_REGISTERED) == []


# --- parameters by effective date ------------------------------------------------------------


def test_as_of_picks_the_value_in_force() -> None:
    amount = load_catalogue()["birth_benefit"].parameters["amount"]
    assert amount.as_of(date(2019, 12, 31)) is None
    first = amount.as_of(date(2020, 1, 1))
    assert first is not None
    assert (first.value, first.from_) == (25000, date(2020, 1, 1))
    assert "No. 112 of 2019" in first.reference
    assert amount.as_of(date(2024, 12, 31)) == first
    second = amount.as_of(date(2025, 1, 1))
    assert second is not None
    assert (second.value, second.from_) == (30000, date(2025, 1, 1))
    assert "No. 418 of 2024" in second.reference
    assert amount.as_of(date(2099, 1, 1)) == second


def test_as_of_with_three_values() -> None:
    p = Parameter.model_validate(
        {
            "unit": "qepik",
            "values": [
                {"from": date(2020, 1, 1), "value": 1, "reference": "a"},
                {"from": date(2021, 6, 15), "value": 2, "reference": "b"},
                {"from": date(2023, 3, 1), "value": 3, "reference": "c"},
            ],
        }
    )
    picks = {
        date(2019, 12, 31): None,
        date(2020, 1, 1): 1,
        date(2021, 6, 14): 1,
        date(2021, 6, 15): 2,
        date(2023, 2, 28): 2,
        date(2023, 3, 1): 3,
    }
    for day, expected in picks.items():
        found = p.as_of(day)
        assert (found.value if found else None) == expected, day


# --- refused files ---------------------------------------------------------------------------


def test_the_fixture_copy_itself_loads(tmp_path: Path) -> None:
    program = load_program(write(tmp_path, BIRTH))
    assert isinstance(program, Program)
    assert program == load_catalogue()["birth_benefit"]


def test_unknown_key(tmp_path: Path) -> None:
    message = refused(write(tmp_path, mutated(BIRTH, lambda d: d.update(colour="blue"))))
    assert "colour: Extra inputs are not permitted" in message


def test_unknown_key_in_a_nested_object(tmp_path: Path) -> None:
    data = mutated(BIRTH, lambda d: d["amount"][0]["value"].update(multiply_by=2))
    message = refused(write(tmp_path, data))
    assert "amount.0.value.multiply_by: Extra inputs are not permitted" in message


def test_wrong_mode(tmp_path: Path) -> None:
    message = refused(write(tmp_path, mutated(BIRTH, lambda d: d.update(mode="manual"))))
    assert "mode: Input should be 'automatic', 'consent', 'notify' or 'stop'" in message


def test_unknown_check_and_trigger(tmp_path: Path) -> None:
    data = mutated(BIRTH, lambda d: d.update(checks=["alive", "rich"], triggers=["wedding"]))
    message = refused(write(tmp_path, data))
    assert "checks.1:" in message
    assert "triggers.0:" in message


def test_parameter_referenced_but_not_defined(tmp_path: Path) -> None:
    data = mutated(BIRTH, lambda d: d["amount"][0]["value"].update(parameter="bonus"))
    message = refused(write(tmp_path, data))
    assert "branch 'standard' names unknown parameter 'bonus'" in message


def test_parameter_in_a_condition_must_be_defined(tmp_path: Path) -> None:
    def change(d: dict[str, Any]) -> None:
        del d["parameters"]["minimum_capital"]

    message = refused(write(tmp_path, mutated(DISABILITY, change)))
    assert (
        "branch 'labour_pension_for_disability' names unknown parameter 'minimum_capital'"
        in message
    )


def test_branch_reading_an_undeclared_service(tmp_path: Path) -> None:
    def change(d: dict[str, Any]) -> None:
        d["services"].remove("pension_fund/record")

    message = refused(write(tmp_path, mutated(DISABILITY, change)))
    assert (
        "branch 'labour_pension_for_disability' reads 'pension_fund/record.pension_capital' "
        "but the program does not declare the service 'pension_fund/record'"
    ) in message


def test_condition_reading_an_undeclared_service(tmp_path: Path) -> None:
    def change(d: dict[str, Any]) -> None:
        d["amount"].insert(
            0,
            {
                "id": "rich",
                "reference": "x",
                "when": {"fact": "tax/income.monthly_income", "at_least": 100},
                "value": {"parameter": "amount"},
            },
        )

    message = refused(write(tmp_path, mutated(BIRTH, change)))
    assert "branch 'rich' reads 'tax/income.monthly_income'" in message
    assert "'tax/income'" in message


def test_unknown_service(tmp_path: Path) -> None:
    data = mutated(BIRTH, lambda d: d["services"].append("secret_police/file"))
    assert "services.4:" in refused(write(tmp_path, data))


def test_last_branch_with_a_condition(tmp_path: Path) -> None:
    def change(d: dict[str, Any]) -> None:
        d["amount"][-1]["when"] = {"fact": "disability/status.group", "equals": 3}

    message = refused(write(tmp_path, mutated(DISABILITY, change)))
    assert "the last amount branch must have no 'when': the table must be total" in message


def test_a_benefit_without_branches(tmp_path: Path) -> None:
    message = refused(write(tmp_path, mutated(BIRTH, lambda d: d.update(amount=[]))))
    assert "a benefit needs at least one amount branch" in message


def test_a_stop_must_say_what_it_stops(tmp_path: Path) -> None:
    data = mutated(_source("stop_on_death"), lambda d: d.pop("stops"))
    assert "a program in mode 'stop' must say what it 'stops'" in refused(write(tmp_path, data))


def test_a_value_takes_exactly_one_source(tmp_path: Path) -> None:
    both = mutated(BIRTH, lambda d: d["amount"][0]["value"].update(fact="civil_registry/person.x"))
    assert "exactly one of 'parameter' or 'fact'" in refused(write(tmp_path, both))
    neither = mutated(BIRTH, lambda d: d["amount"][0].update(value={"rounding": "half_up"}))
    assert "exactly one of 'parameter' or 'fact'" in refused(write(tmp_path, neither))


@pytest.mark.parametrize(
    "dates",
    [
        [date(2025, 1, 1), date(2020, 1, 1)],
        [date(2020, 1, 1), date(2020, 1, 1)],
    ],
    ids=["decreasing", "repeated"],
)
def test_unordered_parameter_dates(tmp_path: Path, dates: list[date]) -> None:
    def change(d: dict[str, Any]) -> None:
        for value, day in zip(d["parameters"]["amount"]["values"], dates, strict=True):
            value["from"] = day

    message = refused(write(tmp_path, mutated(BIRTH, change)))
    assert (
        "parameters.amount: Value error, values must be in increasing order of 'from', one per date"
        in message
    )


def test_parameter_without_values(tmp_path: Path) -> None:
    data = mutated(BIRTH, lambda d: d["parameters"]["amount"].update(values=[]))
    assert "parameters.amount.values:" in refused(write(tmp_path, data))


def test_id_not_matching_the_file_name(tmp_path: Path) -> None:
    path = write(tmp_path, BIRTH, name="birth_grant")
    assert refused(path) == f"{path}: id 'birth_benefit' must match the file name 'birth_grant'"


def test_invalid_yaml(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("id: broken\namount: [\n  - {id: x\n", encoding="utf-8")
    assert refused(path).startswith(f"{path}: not valid YAML: ")


@pytest.mark.parametrize("text", ["- a\n- b\n", "just a string\n", ""])
def test_a_file_that_is_not_a_mapping(tmp_path: Path, text: str) -> None:
    path = tmp_path / "odd.yaml"
    path.write_text(text, encoding="utf-8")
    assert refused(path) == f"{path}: a program file must be a mapping"


def test_catalogue_names_the_bad_file(tmp_path: Path) -> None:
    write(tmp_path, BIRTH)
    bad = write(tmp_path, mutated(DISABILITY, lambda d: d.update(mode="sometimes")))
    with pytest.raises(CatalogueError, match=re.escape(f"{bad}: mode:")):
        load_catalogue(tmp_path)


def test_catalogue_refuses_a_stop_of_an_unknown_program(tmp_path: Path) -> None:
    write(tmp_path, _source("disability_status_end"))
    with pytest.raises(CatalogueError) as info:
        load_catalogue(tmp_path)
    assert str(info.value) == (
        f"{tmp_path / 'disability_status_end'}.yaml: stops: unknown program(s) ['disability_payment']"
    )


def test_empty_directory(tmp_path: Path) -> None:
    with pytest.raises(CatalogueError, match=r"no program files \(\*\.yaml\)"):
        load_catalogue(tmp_path)
