"""The program catalogue: the built-in files load; a bad file is refused naming file, line and
what is wrong."""

from __future__ import annotations

import re
import shutil
from datetime import date
from pathlib import Path

import pytest

from haqq.domain.errors import CatalogueError
from haqq.domain.events import EventType
from haqq.ports import Service
from haqq.rules.catalogue import (
    DEFAULT_DIRECTORY,
    Beneficiary,
    Catalogue,
    Mode,
    Program,
    ScheduleKind,
    load_catalogue,
    load_program,
)

BENEFITS = {
    "birth_benefit",
    "child_care_allowance",
    "disability_payment",
    "funeral_allowance",
    "old_age_pension",
    "survivors_pension",
    "unemployment_insurance",
}
STOPS = {"stop_on_death", "disability_status_end"}


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    """A writable copy of the built-in catalogue."""
    folder = tmp_path / "programs"
    shutil.copytree(DEFAULT_DIRECTORY, folder)
    return folder


def edit(path: Path, old: str, new: str) -> Path:
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} is not in {path.name}"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return path


def line_of(path: Path, text: str) -> int:
    """The 1-based line of the first line of ``path`` containing ``text``."""
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if text in line:
            return number
    raise AssertionError(f"{text!r} not in {path}")


def refused(path: Path) -> str:
    with pytest.raises(CatalogueError) as info:
        load_program(path)
    return str(info.value)


# --- the built-in catalogue ------------------------------------------------------------------


def test_default_catalogue_has_the_seven_programs_and_the_two_stops() -> None:
    catalogue = load_catalogue()
    assert isinstance(catalogue, Catalogue)
    assert set(catalogue.programs) == BENEFITS | STOPS
    for program_id, program in catalogue.programs.items():
        assert program.id == program_id
        assert catalogue[program_id] is program
        assert (program.mode is Mode.STOP) == (program_id in STOPS)
        # Amounts are illustrative and say so.
        assert program.illustrative == (program_id in BENEFITS)


def test_an_unknown_program_is_named() -> None:
    with pytest.raises(CatalogueError, match="no program 'pension' in the catalogue"):
        load_catalogue()["pension"]


def test_version_is_stable_and_names_every_file(copy: Path) -> None:
    first = load_catalogue()
    assert re.fullmatch(r"[0-9a-f]{12}", first.version)
    assert load_catalogue().version == first.version
    assert load_catalogue(copy).version == first.version
    # One more byte in a program, or in the shared checks, is another catalogue.
    edit(copy / "funeral_allowance.yaml", "id: funeral_allowance", "id: funeral_allowance  # x")
    second = load_catalogue(copy).version
    assert second != first.version
    edit(copy / "_checks.yaml", "checks:", "checks:  # x")
    assert load_catalogue(copy).version not in {first.version, second}


def test_built_in_programs_say_what_they_are() -> None:
    c = load_catalogue()
    birth = c["birth_benefit"]
    assert birth.mode is Mode.AUTOMATIC
    assert birth.schedule.kind is ScheduleKind.LUMP_SUM
    assert birth.beneficiary is Beneficiary.MOTHER_ELSE_FATHER
    assert birth.triggers == [EventType.BIRTH_REGISTERED]
    assert [ch.id for ch in birth.table.checks][-1] == "not_already_paid"
    assert birth.legal_reference() == "Law on Social Benefits (illustrative), Article 12.1"
    disability = c["disability_payment"]
    assert disability.schedule.kind is ScheduleKind.MONTHLY
    assert [b.id for b in disability.table.amount] == [
        "labour_pension_for_disability",
        "social_allowance_group_1",
        "social_allowance_group_2",
        "social_allowance_group_3",
    ]
    assert disability.table.amount[-1].when is None
    assert c["funeral_allowance"].mode is Mode.CONSENT
    assert c["unemployment_insurance"].mode is Mode.NOTIFY
    assert c["child_care_allowance"].schedule.until_age == 3
    assert c["survivors_pension"].schedule.until_age == 18
    assert c["survivors_pension"].beneficiary is Beneficiary.MINOR_CHILDREN_VIA_SURVIVING_PARENT
    assert c["stop_on_death"].stops == "all"
    assert c["disability_status_end"].stops == ["disability_payment"]


def test_shared_checks_keep_their_texts_in_three_languages() -> None:
    check = next(ch for ch in load_catalogue()["birth_benefit"].table.checks if ch.id == "resident")
    assert check.reason.en == "the beneficiary is not resident in Azerbaijan"
    assert check.reason.az and check.reason.ru
    assert check.otherwise.value == "denied"


def test_each_program_asks_for_what_its_rules_read_and_nothing_more() -> None:
    c = load_catalogue()
    needs = c["disability_payment"].needs
    assert needs[("subject", None)] == {Service.PENSION_RECORD, Service.DISABILITY_STATUS}
    assert Service.MOBILE_NUMBER in needs[("beneficiary", None)]
    care = c["child_care_allowance"].needs
    # The means test reads the spouse's income and the children's birth dates.
    assert care[("beneficiary", "spouse")] == {Service.TAX_INCOME}
    assert care[("beneficiary", "children")] == {Service.CIVIL_PERSON}
    assert Service.CIVIL_FAMILY in care[("beneficiary", None)]
    assert c["stop_on_death"].needs == {("subject", None): {Service.CIVIL_PERSON}}


def test_triggered_by() -> None:
    c = load_catalogue()
    assert {p.id for p in c.triggered_by(EventType.DEATH_REGISTERED)} == {
        "funeral_allowance",
        "stop_on_death",
        "survivors_pension",
    }
    assert {p.id for p in c.triggered_by(EventType.BIRTH_REGISTERED)} == {
        "birth_benefit",
        "child_care_allowance",
    }
    assert [p.id for p in c.triggered_by(EventType.AGE_REACHED)] == ["old_age_pension"]
    assert c.triggered_by(EventType.MARRIAGE_REGISTERED) == []


def test_parameters_by_effective_date_with_their_history() -> None:
    amount = load_catalogue()["birth_benefit"].parameter_history["amount"]
    assert [(v.from_, v.value) for v in amount.values] == [
        (date(2020, 1, 1), 25000),
        (date(2025, 1, 1), 30000),
    ]
    assert amount.as_of(date(2019, 12, 31)) is None
    first = amount.as_of(date(2024, 12, 31))
    assert first is not None and first.value == 25000 and "No. 112 of 2019" in first.reference
    second = amount.as_of(date(2025, 1, 1))
    assert second is not None and second.value == 30000 and "No. 418 of 2024" in second.reference


def test_only_swept_programs_have_a_universe() -> None:
    for program in load_catalogue().programs.values():
        swept = program.mode not in (Mode.STOP, Mode.NOTIFY)
        assert (program.universe_rule is not None) == swept, program.id


# --- refused files: file, line, what -----------------------------------------------------------


def test_the_copy_itself_loads(copy: Path) -> None:
    program = load_program(copy / "birth_benefit.yaml")
    assert isinstance(program, Program)
    assert program == load_catalogue()["birth_benefit"]


def test_an_unknown_key_names_its_line(copy: Path) -> None:
    path = edit(copy / "birth_benefit.yaml", "mode: automatic", "mode: automatic\ncolour: blue")
    assert refused(path) == f"{path}:{line_of(path, 'colour')}: colour: Extra inputs are not permitted"


def test_a_wrong_mode(copy: Path) -> None:
    path = edit(copy / "birth_benefit.yaml", "mode: automatic", "mode: manual")
    message = refused(path)
    assert message.startswith(f"{path}:{line_of(path, 'mode: manual')}: mode: ")
    assert "'automatic', 'consent', 'notify' or 'stop'" in message


def test_an_unknown_trigger(copy: Path) -> None:
    path = edit(copy / "birth_benefit.yaml", "[birth_registered]", "[wedding]")
    assert refused(path).startswith(f"{path}:{line_of(path, 'wedding')}: triggers.0: ")


def test_an_unknown_shared_check(copy: Path) -> None:
    path = edit(copy / "birth_benefit.yaml", "  - resident\n", "  - rich\n")
    message = refused(path)
    assert message.startswith(f"{path}:{line_of(path, '- rich')}: no shared check 'rich'")
    assert "beneficiary_alive" in message


@pytest.mark.parametrize(
    ("file", "old", "new", "marker", "expected"),
    [
        (
            "birth_benefit.yaml", "value: param.amount", "value: param.bonus", "param.bonus",
            "branch standard: `param.bonus` (column 0): unknown parameter `bonus`",
        ),
        (
            "disability_payment.yaml", "require: subject.disability_active",
            "require: subject.disabled", "subject.disabled",
            "check disability_active: `subject.disabled` (column 0): unknown fact `disabled`",
        ),
        (
            "disability_payment.yaml", "  - pension_fund/record\n", "", "services:",
            "the rules read pension_fund/record but 'services' does not declare it",
        ),
    ],
    ids=["unknown-parameter", "unknown-fact", "undeclared-service"],
)
def test_an_error_names_file_line_and_what(
    copy: Path, file: str, old: str, new: str, marker: str, expected: str
) -> None:
    path = edit(copy / file, old, new)
    assert refused(path) == f"{path}:{line_of(path, marker)}: {expected}"


def test_a_condition_that_is_not_a_condition(copy: Path) -> None:
    path = edit(
        copy / "disability_payment.yaml",
        "when: subject.disability_group == 1",
        "when: subject.disability_group + 1",
    )
    assert refused(path).endswith("`subject.disability_group + 1` (column 0): must be bool, not int")


def test_no_code_can_hide_in_a_rule(copy: Path) -> None:
    path = edit(copy / "birth_benefit.yaml", "value: param.amount", 'value: __import__("os").system("x")')
    assert "only the functions of the language can be called" in refused(path)


def test_a_service_declared_but_never_read(copy: Path) -> None:
    path = edit(copy / "birth_benefit.yaml", "  - interior/identity\n", "  - interior/identity\n  - tax/income\n")
    message = refused(path)
    assert message.startswith(f"{path}:{line_of(path, 'services:')}: tax/income is declared but no rule reads it")


def test_the_last_branch_must_have_no_condition(copy: Path) -> None:
    path = edit(
        copy / "disability_payment.yaml",
        "    value: param.allowance_group_3",
        "    when: subject.disability_group == 3\n    value: param.allowance_group_3",
    )
    assert "the last branch must have no 'when': the table must be total" in refused(path)


def test_a_benefit_without_branches(copy: Path) -> None:
    path = copy / "funeral_allowance.yaml"
    text = path.read_text(encoding="utf-8")
    cut = text.index("amount:\n  - id: standard")
    path.write_text(text[:cut] + "amount: []\n" + text[text.index("parameters:"):], encoding="utf-8")
    assert "a benefit needs at least one amount branch" in refused(path)


def test_a_stop_must_say_what_it_stops(copy: Path) -> None:
    path = edit(copy / "stop_on_death.yaml", "stops: all", "")
    assert "a program in mode 'stop' must say what it 'stops'" in refused(path)


def test_a_universe_reads_the_subject_only(copy: Path) -> None:
    path = edit(
        copy / "disability_payment.yaml",
        "universe: subject.alive and subject.disability_active",
        "universe: beneficiary.alive",
    )
    assert refused(path) == f"{path}:{line_of(path, 'universe:')}: universe: a universe reads the subject's facts only"


def test_unordered_parameter_dates(copy: Path) -> None:
    path = edit(copy / "birth_benefit.yaml", "{from: 2025-01-01, value: 30000", "{from: 2019-01-01, value: 30000")
    assert "values must be in increasing order of 'from', one per date" in refused(path)


def test_id_not_matching_the_file_name(copy: Path) -> None:
    path = copy / "birth_grant.yaml"
    (copy / "birth_benefit.yaml").rename(path)
    assert refused(path) == f"{path}:{line_of(path, 'id: birth_benefit')}: id 'birth_benefit' must match the file name 'birth_grant'"


def test_invalid_yaml(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("id: broken\namount: [\n  - {id: x\n", encoding="utf-8")
    assert refused(path).startswith(f"{path}: not valid YAML: ")


@pytest.mark.parametrize("text", ["- a\n- b\n", "just a string\n", ""])
def test_a_file_that_is_not_a_mapping(tmp_path: Path, text: str) -> None:
    path = tmp_path / "odd.yaml"
    path.write_text(text, encoding="utf-8")
    assert refused(path) == f"{path}: a program file must be a mapping"


def test_catalogue_names_the_bad_file(copy: Path) -> None:
    bad = edit(copy / "disability_payment.yaml", "mode: automatic", "mode: sometimes")
    with pytest.raises(CatalogueError, match=re.escape(f"{bad}:{line_of(bad, 'sometimes')}: mode:")):
        load_catalogue(copy)


def test_catalogue_refuses_a_stop_of_an_unknown_program(copy: Path) -> None:
    (copy / "disability_payment.yaml").unlink()
    with pytest.raises(CatalogueError) as info:
        load_catalogue(copy)
    assert str(info.value) == (
        f"{copy / 'disability_status_end'}.yaml: stops: unknown program(s) ['disability_payment']"
    )


def test_empty_directory(tmp_path: Path) -> None:
    with pytest.raises(CatalogueError, match=r"no program files \(\*\.yaml\)"):
        load_catalogue(tmp_path)


def test_a_reason_may_quote_only_what_its_check_reads(copy: Path) -> None:
    edit(
        copy / "_checks.yaml",
        "en: the beneficiary is not resident in Azerbaijan",
        "en: the beneficiary is not resident ({beneficiary.phone})",
    )
    with pytest.raises(CatalogueError) as info:
        load_program(copy / "birth_benefit.yaml")
    assert "check resident: the en reason quotes {beneficiary.phone}, which the check does not read" in str(info.value)
    assert str(info.value).startswith(f"{copy / 'birth_benefit.yaml'}:")
