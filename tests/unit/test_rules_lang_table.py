"""Decision tables: validation, first match, traces, facts and their sources, both backends."""

from __future__ import annotations

import copy
from datetime import date
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import yaml

from haqq.rules.lang import (
    Case,
    FactError,
    FactRead,
    FactSpec,
    Interpreter,
    Outcome,
    ParameterRead,
    RuleError,
    VectorProgram,
    evaluate_programs,
    load_schema,
    load_table,
    load_table_file,
    to_frames,
)
from tests.unit.rules_lang_tables import DISABILITY, FUNERAL

SCHEMA = load_schema()
DAY = date(2025, 3, 1)


def disabled(fin: str, capital: int, group: int = 2, **extra: Any) -> Any:
    answers = {
        "civil_registry/person": {"alive": True, "birth_date": "1970-01-01"},
        "interior/identity": {"resident": True},
        "disability/status": {"active": True, "group": group},
        "pension_fund/record": {"pension_capital": capital},
        **extra,
    }
    return SCHEMA.person(fin, answers)


def both(raw: dict[str, Any], cases: list[Case], day: date = DAY) -> list[tuple[str, str, int]]:
    """The results of the interpreter, checked equal to the Polars backend's."""
    table = load_table(raw, SCHEMA)
    interpreter = Interpreter(table)
    mine = [interpreter.evaluate(c, day).result for c in cases]
    expected = [(r.outcome.value, r.branch, r.amount) for r in mine]
    frame, kids = to_frames(cases, SCHEMA)
    got = VectorProgram(table).evaluate(frame, today=day, children=kids)
    assert got.select("outcome", "branch", "amount").rows() == expected
    return expected


def test_the_disability_table_decides_by_first_match() -> None:
    cases = [
        Case(disabled("A", 1_200_000)),  # at the threshold: capital / 144 = 8333.3 -> minimum
        Case(disabled("B", 1_199_999)),  # one qəpik below: the allowance of group 2
        Case(disabled("C", 5_000_000)),  # 34722.2 -> 34722
        Case(disabled("D", 5_000_040)),  # 34722.5 -> half_up 34723
        Case(disabled("E", 0, group=1)),
        Case(disabled("F", 0, group=3)),
        Case(disabled("G", 0), already_paid=True),
        Case(SCHEMA.person("H", {})),
    ]
    assert both(DISABILITY, cases) == [
        ("granted", "labour_pension_for_disability", 28_000),
        ("granted", "social_allowance_group_2", 18_000),
        ("granted", "labour_pension_for_disability", 34_722),
        ("granted", "labour_pension_for_disability", 34_723),
        ("granted", "social_allowance_group_1", 22_000),
        ("granted", "social_allowance_group_3", 14_000),
        ("denied", "not_already_paid", 0),
        ("needs_review", "known_person", 0),
    ]


def test_a_parameter_changes_on_its_from_date() -> None:
    case = [Case(disabled("A", 1_200_000))]
    assert both(DISABILITY, case, date(2024, 12, 31))[0][2] == 24_000
    assert both(DISABILITY, case, date(2025, 1, 1))[0][2] == 28_000
    # Before any value is in force the amount is undefined: a person must review.
    assert both(DISABILITY, case, date(2019, 12, 31))[0] == (
        "needs_review", "labour_pension_for_disability", 0)


def test_the_trace_names_branch_facts_sources_and_parameters() -> None:
    evaluation = Interpreter(load_table(DISABILITY, SCHEMA)).evaluate(
        Case(disabled("A", 5_000_000)), DAY)
    trace = evaluation.trace
    assert trace.branch == "labour_pension_for_disability"
    assert trace.reference == "Law on Labour Pensions, Article 9.2 (illustrative)"
    assert trace.checks_passed == (
        "known_person", "alive", "resident", "disability_active", "not_already_paid")
    assert trace.facts == (
        FactRead("subject.known", True, "civil_registry/person"),
        FactRead("subject.alive", True, "civil_registry/person"),
        FactRead("subject.resident", True, "interior/identity"),
        FactRead("subject.disability_active", True, "disability/status"),
        FactRead("already_paid", False, "caller"),
        FactRead("subject.pension_capital", 5_000_000, "pension_fund/record"),
    )
    assert trace.parameters == (
        ParameterRead("minimum_capital", 1_200_000, date(2020, 1, 1),
                      "Law on Labour Pensions, Art. 9.1"),
        ParameterRead("capital_months", 144, date(2020, 1, 1), "Law on Labour Pensions, Art. 9.3"),
        ParameterRead("labour_pension_minimum", 28_000, date(2025, 1, 1), "Decree No. 305 of 2024"),
    )
    assert trace.error is None


def test_a_denial_traces_only_the_checks_it_ran() -> None:
    person = SCHEMA.person("A", {"civil_registry/person": {"alive": False}})
    trace = Interpreter(load_table(DISABILITY, SCHEMA)).evaluate(Case(person), DAY).trace
    assert trace.branch == "alive"
    assert trace.checks_passed == ("known_person",)
    assert [f.name for f in trace.facts] == ["subject.known", "subject.alive"]
    assert trace.parameters == ()


def test_the_funeral_allowance_goes_to_the_spouse_else_an_adult_child() -> None:
    dead = {"civil_registry/person": {"alive": False, "death_date": "2025-02-01"}}
    alive = {"civil_registry/person": {"alive": True, "birth_date": "1960-01-01"}}
    adult = ("K1", {"civil_registry/person": {"alive": True, "birth_date": "2007-03-01"}})
    minor = ("K2", {"civil_registry/person": {"alive": True, "birth_date": "2007-03-02"}})
    cases = [
        Case(SCHEMA.person("A", dead, spouse=("S", alive), children=[adult])),
        Case(SCHEMA.person("B", dead, children=[adult, minor])),  # 18 on the day
        Case(SCHEMA.person("C", dead, children=[minor])),
        Case(SCHEMA.person("D", dead, spouse=("S2", dead))),
        Case(SCHEMA.person("E", dead)),
    ]
    assert both(FUNERAL, cases) == [
        ("granted", "to_spouse", 15_000),
        ("granted", "to_adult_child", 15_000),
        ("needs_review", "someone_to_pay", 0),
        ("needs_review", "someone_to_pay", 0),
        ("needs_review", "someone_to_pay", 0),
    ]
    trace = Interpreter(load_table(FUNERAL, SCHEMA)).evaluate(cases[1], DAY).trace
    assert FactRead("subject.spouse.alive", False, "default") in trace.facts
    assert FactRead("subject.children.birth_date", (date(2007, 3, 1), date(2007, 3, 2)),
                    "civil_registry/person") in trace.facts


def test_undefined_values_need_review_with_the_deciding_id() -> None:
    raw = {
        "checks": [{"id": "c", "require": 'div(10, subject.insurance_months, "down") >= 0',
                    "otherwise": "denied", "reference": "r", "reason": {"en": "", "az": "", "ru": ""}}],
        "amount": [
            {"id": "guarded", "reference": "r",
             "when": 'subject.monthly_income == 0 '
                     'or div(1000000, subject.monthly_income, "down") == 0',
             "value": "subject.monthly_income - 5"},
            {"id": "rest", "reference": "r", "value": "add_days(today, 3000000) > today and 1 == 1"},
        ],
    }
    with pytest.raises(RuleError, match="must be int, not bool"):
        load_table(raw, SCHEMA)
    raw["amount"][1]["value"] = "year(add_months(today, subject.monthly_income))"

    def person(months: int, income: int) -> Case:
        return Case(SCHEMA.person("P", {"pension_fund/record": {"insurance_months": months},
                                        "tax/income": {"monthly_income": income}}))

    assert both(raw, [person(0, 0), person(1, 0), person(1, 2_000_000), person(1, -1),
                      person(1, 6), person(1, 10**6)]) == [
        ("needs_review", "c", 0),  # division by zero in a check
        ("needs_review", "guarded", 0),  # 0 - 5 is not a positive amount
        ("granted", "guarded", 1_999_995),  # 1000000 // 2000000 == 0
        ("needs_review", "guarded", 0),  # the divisor -1 is undefined
        ("granted", "rest", 2025),  # the year six months after 1 March 2025
        ("needs_review", "rest", 0),  # a million months later is out of range
    ]
    trace = Interpreter(load_table(raw, SCHEMA)).evaluate(person(1, -1), DAY).trace
    assert trace.error == "division by -1"


def _table(**changes: Any) -> dict[str, Any]:
    raw = copy.deepcopy(DISABILITY)
    raw.update(changes)
    return raw


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (_table(amount=[{"id": "a", "reference": "r", "when": "True", "value": "1"}]),
         "t: branch a: the last branch must have no 'when': the table must be total"),
        (_table(amount=[{"id": "a", "reference": "r", "value": "1"},
                        {"id": "b", "reference": "r", "value": "2"}]),
         "t: branch a: only the last branch can have no 'when' (the branches after it could "
         "never apply)"),
        (_table(amount=[{"id": "alive", "reference": "r", "value": "1"}]),
         "t: the id 'alive' is used twice"),
        (_table(amount=[]), "t: amount: List should have at least 1 item after validation, not 0"),
        (_table(amount=[{"id": "a", "reference": "r", "value": "param.nope"}]),
         "t: branch a: `param.nope` (column 0): unknown parameter `nope`"),
        (_table(amount=[{"id": "a", "reference": "r", "value": "subject.alive"}]),
         "t: branch a: `subject.alive` (column 0): must be int, not bool"),
    ],
)
def test_invalid_tables_are_refused(raw: dict[str, Any], message: str) -> None:
    with pytest.raises(RuleError) as caught:
        load_table(raw, SCHEMA, name="t")
    assert str(caught.value) == message


def test_facts_come_with_defaults_and_sources() -> None:
    person = SCHEMA.person("A", {"civil_registry/person": {"alive": True, "death_date": None},
                                 "pension_fund/record": {"pensions": ["old_age", "survivor"]}})
    assert person.values["known"] is True and person.sources["known"] == "civil_registry/person"
    assert person.values["death_registered"] is False
    assert person.values["birth_date"] == date(1900, 1, 1)
    assert person.sources["birth_date"] == "default"
    assert person.values["pension_count"] == 2
    assert person.values["disability_until"] == date(9999, 12, 31)
    assert person.values["identity_known"] is False
    with pytest.raises(FactError, match="expected int for pension_capital, got '12'"):
        SCHEMA.person("A", {"pension_fund/record": {"pension_capital": "12"}})
    with pytest.raises(FactError, match="'2025-13-01' is not an ISO date"):
        SCHEMA.person("A", {"civil_registry/person": {"birth_date": "2025-13-01"}})


def test_polars_reads_nulls_as_defaults_and_names_missing_columns() -> None:
    program = VectorProgram(load_table(DISABILITY, SCHEMA))
    frame = pl.DataFrame({
        "fin": ["A"], "subject__known": [True], "subject__alive": [True],
        "subject__resident": [True], "subject__disability_active": [True],
        "already_paid": [None], "subject__pension_capital": [None],
        "subject__disability_group": [None],
    }, schema_overrides={"already_paid": pl.Boolean, "subject__pension_capital": pl.Int64,
                         "subject__disability_group": pl.Int32})
    assert program.evaluate(frame, today=DAY).rows() == [
        ("A", "granted", "social_allowance_group_3", 14_000)]
    with pytest.raises(RuleError, match="lacks the column\\(s\\) subject__pension_capital"):
        program.evaluate(frame.drop("subject__pension_capital"), today=DAY)


def test_several_programs_in_one_pass() -> None:
    cases = [Case(disabled("A", 5_000_000))]
    frame, kids = to_frames(cases, SCHEMA)
    tables = {"disability": load_table(DISABILITY, SCHEMA), "funeral": load_table(FUNERAL, SCHEMA)}
    out = evaluate_programs(tables, frame, today=DAY, children=kids).collect()
    assert out.columns == ["fin", "disability__outcome", "disability__branch", "disability__amount",
                           "funeral__outcome", "funeral__branch", "funeral__amount"]
    assert out.row(0) == ("A", "granted", "labour_pension_for_disability", 34_722,
                          "needs_review", "deceased", 0)
    assert Outcome("granted") is Outcome.GRANTED


def test_a_table_file_is_read_from_yaml(tmp_path: Path) -> None:
    path = tmp_path / "disability.yaml"
    path.write_text(yaml.safe_dump({"rules": DISABILITY}), encoding="utf-8")
    assert load_table_file(path, SCHEMA, key="rules").name == "disability"
    path.write_text("rules: [", encoding="utf-8")
    with pytest.raises(RuleError, match="disability.yaml: not valid YAML"):
        load_table_file(path, SCHEMA, key="rules")


def test_a_contains_fact_says_whether_a_list_field_holds_any_of_its_values() -> None:
    record = SCHEMA.record("AAAAAAA", {"pension_fund/record": {"pensions": ["elderly_social_allowance"]}})
    assert record.values["receives_old_age_pension"] is True
    assert record.values["receives_disability_pension"] is False
    assert record.sources["receives_old_age_pension"] == "pension_fund/record"
    none = SCHEMA.record("AAAAAAA", {"pension_fund/record": {"pensions": []}})
    assert none.values["receives_old_age_pension"] is False
    absent = SCHEMA.record("AAAAAAA", {})
    assert (absent.values["receives_old_age_pension"], absent.sources["receives_old_age_pension"]) == (False, "default")
    with pytest.raises(FactError, match="expected a list for receives_old_age_pension"):
        SCHEMA.record("AAAAAAA", {"pension_fund/record": {"pensions": "old_age_labour_pension"}}, only=["receives_old_age_pension"])


def test_a_contains_fact_must_name_its_values() -> None:
    with pytest.raises(ValueError, match="a 'contains' fact is a bool"):
        FactSpec.model_validate({"type": "bool", "from": "pension_fund/record.pensions", "kind": "contains"})
