"""decide(): checks in order, then the first matching amount branch, with the trace of why."""

from __future__ import annotations

import json
from datetime import date
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from haqq.rules.catalogue import Beneficiary, Program, load_catalogue
from haqq.rules.evaluate import (
    Candidate,
    Decision,
    FactUse,
    Outcome,
    ParameterUse,
    Pick,
    decide,
    person,
    resolve_beneficiary,
)

CATALOGUE = load_catalogue()
SCHEMA = CATALOGUE.schema
BIRTH = CATALOGUE["birth_benefit"]
DISABILITY = CATALOGUE["disability_payment"]
FUNERAL = CATALOGUE["funeral_allowance"]
STOP_ON_DEATH = CATALOGUE["stop_on_death"]
STATUS_END = CATALOGUE["disability_status_end"]

DAY = date(2024, 6, 1)
NEW_YEAR = date(2025, 1, 1)

# References of the parameters, as the catalogue states them.
REF_BIRTH_2020 = "Cabinet of Ministers Decision No. 112 of 2019 (illustrative)"
REF_BIRTH_2025 = "Cabinet of Ministers Decision No. 418 of 2024 (illustrative)"
REF_MIN_CAPITAL = "Law on Labour Pensions, Art. 9.1 (illustrative)"
REF_MONTHS = "Law on Labour Pensions, Art. 9.3 (illustrative)"
REF_FLOOR_2020 = "Decree No. 77 of 2019 (illustrative)"
REF_FLOOR_2025 = "Decree No. 305 of 2024 (illustrative)"

MIN_CAPITAL = 1_200_000
CAPITAL = "subject.pension_capital"
GROUP = "subject.disability_group"


def facts(
    *,
    known: bool = True,
    alive: bool = True,
    death_date: str | None = None,
    identity: bool = True,
    document_valid: bool = True,
    resident: bool = True,
    civil_birth: str = "1990-01-01",
    interior_birth: str = "1990-01-01",
    capital: int | None = None,
    disability: bool | None = None,
    group: int | None = 2,
) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    if known:
        out["civil_registry/person"] = {
            "name": "Aysel",
            "sex": "F",
            "alive": alive,
            "birth_date": civil_birth,
            "death_date": death_date,
        }
    if identity:
        out["interior/identity"] = {
            "document_valid": document_valid,
            "document_number": "AA1234567",
            "resident": resident,
            "birth_date": interior_birth,
            "address": "Baku",
        }
    if capital is not None:
        out["pension_fund/record"] = {"pension_capital": capital, "insurance_months": 120, "pensions": []}
    if disability is not None:
        out["disability/status"] = {"active": disability, "group": group}
    return out


def judge(
    program: Program,
    beneficiary: dict[str, dict[str, Any]],
    subject: dict[str, dict[str, Any]] | None = None,
    *,
    already_paid: bool = False,
    day: date = DAY,
) -> Decision:
    return decide(
        program,
        subject=person(SCHEMA, "SUBJECT", beneficiary if subject is None else subject),
        beneficiary=person(SCHEMA, "BENEFIC", beneficiary),
        already_paid=already_paid,
        day=day,
    )


def run(
    program: Program,
    day: date = DAY,
    already_paid: bool = False,
    subject: dict[str, dict[str, Any]] | None = None,
    **kw: Any,
) -> Decision:
    return judge(program, facts(**kw), subject, already_paid=already_paid, day=day)


def read(d: Decision) -> dict[str, Any]:
    """The facts a decision read, by name."""
    return {f.name: f.value for f in d.facts}


def disabled(capital: int | None, group: int | None = 2, day: date = DAY) -> Decision:
    return run(DISABILITY, day=day, capital=capital, disability=True, group=group)


# --- birth benefit ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("day", "amount", "since", "reference"),
    [
        (date(2020, 1, 1), 25000, date(2020, 1, 1), REF_BIRTH_2020),
        (date(2024, 12, 31), 25000, date(2020, 1, 1), REF_BIRTH_2020),
        (date(2025, 1, 1), 30000, date(2025, 1, 1), REF_BIRTH_2025),
        (date(2026, 7, 9), 30000, date(2025, 1, 1), REF_BIRTH_2025),
    ],
)
def test_birth_benefit_amount_by_date(day: date, amount: int, since: date, reference: str) -> None:
    d = run(BIRTH, day=day)
    assert d.outcome is Outcome.GRANTED
    assert d.amount == amount
    assert d.branch == "standard"
    assert d.program_id == "birth_benefit"
    assert d.program_version == 2
    assert d.parameters == (ParameterUse("amount", amount, since, reference),)
    assert [(r.code, r.reference) for r in d.reasons] == [
        ("standard", "Law on Social Benefits, Article 12.2 (illustrative)")
    ]
    assert d.checks_passed == (
        "beneficiary_known", "beneficiary_alive", "identity_valid", "resident",
        "consistent_records", "not_already_paid",
    )
    # Every fact the checks read, with the institution it came from.
    assert FactUse("beneficiary.resident", True, "interior/identity") in d.facts
    assert FactUse("already_paid", False, "caller") in d.facts


def test_birth_benefit_before_any_amount_needs_review() -> None:
    d = run(BIRTH, day=date(2019, 12, 31))
    assert d.outcome is Outcome.NEEDS_REVIEW
    assert d.amount == 0
    assert d.branch == "standard"
    assert d.reasons[0].text.startswith("no amount could be computed: ")
    assert "amount" in d.reasons[0].text


def test_funeral_allowance_amount() -> None:
    deceased = facts(alive=False, death_date="2024-05-30")
    d = run(FUNERAL, subject=deceased)
    assert (d.outcome, d.amount, d.branch) == (Outcome.GRANTED, 15000, "standard")
    # The death must be on record, whoever asks.
    alive = run(FUNERAL)
    assert (alive.outcome, alive.branch) == (Outcome.NEEDS_REVIEW, "death_confirmed")


def test_as_dict_is_plain_data() -> None:
    d = run(BIRTH, day=NEW_YEAR)
    data = d.as_dict()
    assert {k: data[k] for k in ("program", "program_version", "outcome", "amount", "branch", "date")} == {
        "program": "birth_benefit",
        "program_version": 2,
        "outcome": "granted",
        "amount": 30000,
        "branch": "standard",
        "date": "2025-01-01",
    }
    assert data["reasons"] == [
        {
            "code": "standard",
            "text": "all conditions are met",
            "reference": "Law on Social Benefits, Article 12.2 (illustrative)",
            "texts": {},
        }
    ]
    assert data["parameters"] == [
        {"name": "amount", "value": 30000, "effective_from": "2025-01-01", "reference": REF_BIRTH_2025}
    ]
    assert {"name": "beneficiary.birth_date", "value": "1990-01-01", "source": "civil_registry/person"} in data["facts"]
    assert json.loads(json.dumps(data)) == data


# --- disability payment ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("capital", "day", "amount"),
    [
        (MIN_CAPITAL, DAY, 24000),  # 8333.33 -> floored at the minimum
        (1_500_000, DAY, 24000),  # 10416.67 -> floored
        (1_500_000, NEW_YEAR, 28000),  # the floor rose on 2025-01-01
        (24000 * 144, DAY, 24000),  # exactly the floor
        (5_000_000, DAY, 34722),  # 34722.22 -> down
        (5_000_050, DAY, 34723),  # 34722.57 -> up
        (4_320_072, DAY, 30001),  # 30000.5 -> half up, not half even
        (4_320_216, DAY, 30002),  # 30001.5
        (4_320_071, DAY, 30000),  # 30000.49
        (4_320_072, NEW_YEAR, 30001),  # above the 2025 floor too
        (4_000_000, NEW_YEAR, 28000),  # 27777.78 < 28000
    ],
)
def test_labour_pension_when_capital_reaches_the_minimum(
    capital: int, day: date, amount: int
) -> None:
    d = disabled(capital, day=day)
    assert d.outcome is Outcome.GRANTED
    assert d.branch == "labour_pension_for_disability"
    assert d.amount == amount


def test_labour_pension_trace_names_parameters_and_facts() -> None:
    d = disabled(5_000_000, day=NEW_YEAR)
    assert d.parameters == (
        ParameterUse("minimum_capital", MIN_CAPITAL, date(2020, 1, 1), REF_MIN_CAPITAL),
        ParameterUse("capital_months", 144, date(2020, 1, 1), REF_MONTHS),
        ParameterUse("labour_pension_minimum", 28000, date(2025, 1, 1), REF_FLOOR_2025),
    )
    assert read(d)[CAPITAL] == 5_000_000
    assert FactUse(CAPITAL, 5_000_000, "pension_fund/record") in d.facts
    assert GROUP not in read(d)  # the branch that decided came before the group branches
    assert [(r.code, r.reference) for r in d.reasons] == [
        ("labour_pension_for_disability", "Law on Labour Pensions, Article 9.2 (illustrative)")
    ]


def test_capital_one_below_the_minimum_gets_the_social_allowance() -> None:
    at_minimum = disabled(MIN_CAPITAL, group=2)
    below = disabled(MIN_CAPITAL - 1, group=2)
    assert (at_minimum.branch, at_minimum.amount) == ("labour_pension_for_disability", 24000)
    assert (below.branch, below.amount) == ("social_allowance_group_2", 18000)
    assert below.parameters == (
        ParameterUse("minimum_capital", MIN_CAPITAL, date(2020, 1, 1), REF_MIN_CAPITAL),
        ParameterUse(
            "allowance_group_2",
            18000,
            date(2020, 1, 1),
            "Law on Social Allowances, Art. 7.1.2 (illustrative)",
        ),
    )
    assert (read(below)[CAPITAL], read(below)[GROUP]) == (MIN_CAPITAL - 1, 2)
    assert below.reasons[0].reference == "Law on Social Allowances, Article 7.1.2 (illustrative)"


@pytest.mark.parametrize(
    ("group", "branch", "amount"),
    [
        (1, "social_allowance_group_1", 22000),
        (2, "social_allowance_group_2", 18000),
        (3, "social_allowance_group_3", 14000),
        (None, "social_allowance_group_3", 14000),
    ],
)
def test_social_allowance_by_group(group: int | None, branch: str, amount: int) -> None:
    for capital in (None, 0, MIN_CAPITAL - 1):
        d = disabled(capital, group=group)
        assert (d.outcome, d.branch, d.amount) == (Outcome.GRANTED, branch, amount), capital


def test_group_3_trace_shows_every_fact_read() -> None:
    d = disabled(100, group=3)
    assert (read(d)[CAPITAL], read(d)[GROUP]) == (100, 3)
    assert [p.name for p in d.parameters] == ["minimum_capital", "allowance_group_3"]


def test_disability_floor_before_and_after_its_change_in_the_trace() -> None:
    before = disabled(MIN_CAPITAL, day=date(2024, 12, 31))
    after = disabled(MIN_CAPITAL, day=NEW_YEAR)
    assert before.parameters[-1] == ParameterUse(
        "labour_pension_minimum", 24000, date(2020, 1, 1), REF_FLOOR_2020
    )
    assert after.parameters[-1] == ParameterUse(
        "labour_pension_minimum", 28000, date(2025, 1, 1), REF_FLOOR_2025
    )
    assert (before.amount, after.amount) == (24000, 28000)


@settings(max_examples=150, deadline=None)
@given(
    capital=st.integers(min_value=0, max_value=50_000_000),
    group=st.sampled_from([1, 2, 3, None]),
    day=st.dates(min_value=date(2020, 1, 1), max_value=date(2030, 12, 31)),
)
def test_disability_amount_table(capital: int, group: int | None, day: date) -> None:
    d = disabled(capital, group=group, day=day)
    assert d.outcome is Outcome.GRANTED
    floor = 28000 if day >= NEW_YEAR else 24000
    if capital >= MIN_CAPITAL:
        expected = max((2 * capital + 144) // 288, floor)  # half up of capital / 144
        assert (d.branch, d.amount) == ("labour_pension_for_disability", expected)
    else:
        allowance = {1: 22000, 2: 18000}.get(group, 14000)  # type: ignore[arg-type]
        assert d.amount == allowance
        assert d.branch == f"social_allowance_group_{group if group in (1, 2) else 3}"


# --- checks ----------------------------------------------------------------------------------

# Each row breaks one check and every check after it: the first broken one must decide.
CHECK_ORDER = [
    (
        dict(known=False, identity=False, already_paid=True),
        Outcome.NEEDS_REVIEW,
        "beneficiary_known",
    ),
    (
        dict(
            alive=False,
            document_valid=False,
            resident=False,
            interior_birth="1991-01-01",
            already_paid=True,
        ),
        Outcome.DENIED,
        "beneficiary_alive",
    ),
    (
        dict(document_valid=False, resident=False, interior_birth="1991-01-01", already_paid=True),
        Outcome.NEEDS_REVIEW,
        "identity_valid",
    ),
    (
        dict(identity=False, already_paid=True),
        Outcome.NEEDS_REVIEW,
        "identity_valid",
    ),
    (
        dict(resident=False, interior_birth="1991-01-01", already_paid=True),
        Outcome.DENIED,
        "resident",
    ),
    (
        dict(interior_birth="1991-01-01", already_paid=True),
        Outcome.NEEDS_REVIEW,
        "consistent_records",
    ),
    (dict(already_paid=True), Outcome.DENIED, "not_already_paid"),
]


@pytest.mark.parametrize(
    ("broken", "outcome", "code"), CHECK_ORDER, ids=[c for _, _, c in CHECK_ORDER]
)
def test_checks_in_order_the_first_failure_decides(
    broken: dict[str, Any], outcome: Outcome, code: str
) -> None:
    d = run(BIRTH, **broken)
    assert d.outcome is outcome
    assert [r.code for r in d.reasons] == [code]
    assert d.reasons[0].reference.startswith("Law on Social Benefits, Article ")
    assert set(d.reasons[0].texts) == {"en", "az", "ru"}
    assert d.amount == 0
    assert d.branch == code
    assert d.parameters == ()


def test_inconsistent_records_keep_both_dates_in_the_trace() -> None:
    d = run(BIRTH, civil_birth="1990-01-01", interior_birth="1990-01-02")
    assert d.reasons[0].text == (
        "registries disagree on the beneficiary's birth date "
        "(civil registry 1990-01-01, interior ministry 1990-01-02)"
    )
    assert "ЗАГС 1990-01-01, МВД 1990-01-02" in d.reasons[0].texts["ru"]
    assert FactUse("beneficiary.birth_date", date(1990, 1, 1), "civil_registry/person") in d.facts
    assert FactUse("beneficiary.identity_birth_date", date(1990, 1, 2), "interior/identity") in d.facts


def test_a_missing_birth_date_reads_as_its_default_and_goes_to_a_person() -> None:
    beneficiary = facts()
    del beneficiary["interior/identity"]["birth_date"]
    d = judge(BIRTH, beneficiary)
    assert (d.outcome, d.branch) == (Outcome.NEEDS_REVIEW, "consistent_records")
    assert FactUse("beneficiary.identity_birth_date", date(1900, 1, 1), "default") in d.facts


def test_alive_missing_counts_as_not_alive() -> None:
    beneficiary = facts()
    del beneficiary["civil_registry/person"]["alive"]
    d = judge(BIRTH, beneficiary)
    assert (d.outcome, d.reasons[0].code) == (Outcome.DENIED, "beneficiary_alive")


def test_checks_read_the_beneficiary_not_the_subject() -> None:
    """Birth benefit: the child (subject) is not resident and has no ID; the mother is fine."""
    child = facts(identity=False, civil_birth="2025-02-01")
    assert run(BIRTH, subject=child).outcome is Outcome.GRANTED
    mother_away = facts(resident=False)
    d = judge(BIRTH, mother_away, facts())
    assert (d.outcome, d.reasons[0].code) == (Outcome.DENIED, "resident")


def test_disability_status_is_read_from_the_subject() -> None:
    parent = facts()
    child = facts(civil_birth="2015-05-05", interior_birth="2015-05-05", disability=True, group=1)
    d = judge(DISABILITY, parent, child)
    assert (d.outcome, d.branch, d.amount) == (Outcome.GRANTED, "social_allowance_group_1", 22000)


@pytest.mark.parametrize("status", [False, None])
def test_no_active_disability_is_denied(status: bool | None) -> None:
    d = run(DISABILITY, disability=status, capital=5_000_000)
    assert (d.outcome, d.reasons[0].code) == (Outcome.DENIED, "disability_active")


def test_disability_inconsistency_comes_before_the_status() -> None:
    d = run(DISABILITY, interior_birth="1989-12-31", disability=False)
    assert d.reasons[0].code == "consistent_records"


def test_disability_already_paid_is_last() -> None:
    d = run(DISABILITY, disability=True, capital=5_000_000, already_paid=True)
    assert (d.outcome, d.reasons[0].code) == (Outcome.DENIED, "not_already_paid")


# --- stops -----------------------------------------------------------------------------------


def test_stop_on_death() -> None:
    dead = facts(alive=False, death_date="2025-03-01")
    d = judge(STOP_ON_DEATH, dead)
    assert d.outcome is Outcome.STOP
    assert (d.amount, d.branch, d.parameters) == (0, "stop", ())
    assert [(r.code, r.text, r.reference) for r in d.reasons] == [
        ("stop", "entitlements end", "Law on Social Benefits (illustrative), Article 21")
    ]


@pytest.mark.parametrize(
    "answers",
    [facts(alive=True), facts(alive=False, death_date=None)],
    ids=["alive", "no-death-date"],
)
def test_stop_on_death_needs_a_confirmed_death(answers: dict[str, dict[str, Any]]) -> None:
    d = judge(STOP_ON_DEATH, answers)
    assert (d.outcome, d.reasons[0].code) == (Outcome.NEEDS_REVIEW, "death_confirmed")


def test_stop_of_an_unknown_person_needs_review() -> None:
    nobody = facts(known=False)
    for program in (STOP_ON_DEATH, STATUS_END):
        d = judge(program, nobody)
        assert (d.outcome, d.reasons[0].code) == (Outcome.NEEDS_REVIEW, "subject_known")


def test_status_end_stops_even_when_already_paid() -> None:
    d = run(STATUS_END, already_paid=True)
    assert d.outcome is Outcome.STOP


# --- beneficiaries ---------------------------------------------------------------------------

TODAY = date(2025, 6, 1)


def cand(
    fin: str, alive: bool = True, resident: bool = True, born: date | None = None
) -> Candidate:
    return Candidate(fin, alive, resident, born)


def resolve(relation: Beneficiary, **kw: Any) -> str | None:
    """The one beneficiary of a relation that picks one (None: nobody qualifies)."""
    args: dict[str, Any] = {
        "subject": "SUBJECT",
        "subject_birth": None,
        "mother": None,
        "father": None,
        "spouse": None,
        "children": [],
        "day": TODAY,
    }
    args.update(kw)
    picks = resolve_beneficiary(relation, **args)
    assert len(picks) == 1 and picks[0].subject == "SUBJECT"
    return picks[0].beneficiary


def test_self() -> None:
    assert resolve(Beneficiary.SELF, mother=cand("MOTHER1")) == "SUBJECT"


@pytest.mark.parametrize(
    ("mother", "father", "expected"),
    [
        (cand("MOTHER1"), cand("FATHER1"), "MOTHER1"),
        (cand("MOTHER1"), None, "MOTHER1"),
        (cand("MOTHER1", alive=False), cand("FATHER1"), "FATHER1"),
        (cand("MOTHER1", resident=False), cand("FATHER1"), "FATHER1"),
        (None, cand("FATHER1"), "FATHER1"),
        (None, cand("FATHER1", alive=False), None),
        (None, None, None),
        # Nobody better: the mother stays, and the checks deny with their reason.
        (cand("MOTHER1", resident=False), None, "MOTHER1"),
    ],
)
def test_mother_else_father(
    mother: Candidate | None, father: Candidate | None, expected: str | None
) -> None:
    assert resolve(Beneficiary.MOTHER_ELSE_FATHER, mother=mother, father=father) == expected


@pytest.mark.parametrize(
    "father", [None, cand("FATHER1", alive=False)], ids=["no-father", "dead-father"]
)
def test_dead_mother_and_no_living_father_is_nobody(father: Candidate | None) -> None:
    assert (
        resolve(Beneficiary.MOTHER_ELSE_FATHER, mother=cand("MOTHER1", alive=False), father=father)
        is None
    )


def test_spouse_else_adult_child() -> None:
    children = [
        cand("MINOR01", born=date(2010, 1, 1)),
        cand("DEAD001", alive=False, born=date(1960, 1, 1)),
        cand("YOUNG01", born=date(1990, 1, 1)),
        cand("OLDEST1", born=date(1970, 5, 5)),
        cand("NODATE1", born=None),
    ]
    r = Beneficiary.SPOUSE_ELSE_ADULT_CHILD
    assert resolve(r, spouse=cand("SPOUSE1"), children=children) == "SPOUSE1"
    assert resolve(r, spouse=cand("SPOUSE1", alive=False), children=children) == "OLDEST1"
    assert resolve(r, spouse=None, children=children) == "OLDEST1"
    assert resolve(r, spouse=None, children=list(reversed(children))) == "OLDEST1"
    # A non-resident spouse is still the spouse: residence is a check of decide().
    assert resolve(r, spouse=cand("SPOUSE1", resident=False), children=children) == "SPOUSE1"


def test_adult_child_age_boundary_and_ties() -> None:
    r = Beneficiary.SPOUSE_ELSE_ADULT_CHILD
    turns_18_today = cand("EIGHTN1", born=date(2007, 6, 1))
    turns_18_tomorrow = cand("SEVENT1", born=date(2007, 6, 2))
    assert resolve(r, children=[turns_18_tomorrow]) is None
    assert resolve(r, children=[turns_18_tomorrow, turns_18_today]) == "EIGHTN1"
    twins = [cand("TWINB01", born=date(1980, 1, 1)), cand("TWINA01", born=date(1980, 1, 1))]
    assert resolve(r, children=twins) == "TWINA01"


def test_spouse_else_adult_child_nobody() -> None:
    r = Beneficiary.SPOUSE_ELSE_ADULT_CHILD
    assert resolve(r) is None
    assert (
        resolve(
            r,
            spouse=cand("SPOUSE1", alive=False),
            children=[cand("MINOR01", born=date(2015, 1, 1))],
        )
        is None
    )


@pytest.mark.parametrize(
    ("born", "mother", "father", "expected"),
    [
        (date(2007, 6, 1), cand("MOTHER1"), cand("FATHER1"), "SUBJECT"),  # 18 today
        (date(1950, 1, 1), None, None, "SUBJECT"),
        (date(2007, 6, 2), cand("MOTHER1"), cand("FATHER1"), "MOTHER1"),  # 18 tomorrow
        (date(2015, 1, 1), cand("MOTHER1", alive=False), cand("FATHER1"), "FATHER1"),
        (date(2015, 1, 1), None, cand("FATHER1"), "FATHER1"),
        (date(2015, 1, 1), cand("MOTHER1", alive=False), cand("FATHER1", alive=False), None),
        (date(2015, 1, 1), None, None, None),
        (None, cand("MOTHER1"), None, "MOTHER1"),  # unknown age: treated as a child
    ],
)
def test_self_or_guardian(
    born: date | None, mother: Candidate | None, father: Candidate | None, expected: str | None
) -> None:
    got = resolve(Beneficiary.SELF_OR_GUARDIAN, subject_birth=born, mother=mother, father=father)
    assert got == expected


def test_self_or_guardian_leap_day_birthday() -> None:
    r = Beneficiary.SELF_OR_GUARDIAN
    kw: dict[str, Any] = {"subject_birth": date(2008, 2, 29), "mother": cand("MOTHER1")}
    assert resolve(r, day=date(2026, 2, 28), **kw) == "MOTHER1"
    assert resolve(r, day=date(2026, 3, 1), **kw) == "SUBJECT"


def test_mother() -> None:
    assert resolve(Beneficiary.MOTHER, mother=cand("MOTHER1"), father=cand("FATHER1")) == "MOTHER1"
    # A dead mother stays the beneficiary: the checks deny with the reason.
    assert resolve(Beneficiary.MOTHER, mother=cand("MOTHER1", alive=False)) == "MOTHER1"
    assert resolve(Beneficiary.MOTHER, father=cand("FATHER1")) is None


def test_minor_children_via_the_surviving_parent() -> None:
    children = [
        cand("KIDA001", born=date(2015, 1, 1)),
        cand("KIDB001", born=date(2010, 3, 3)),
        cand("ADULT01", born=date(2007, 6, 1)),  # 18 today: no longer a minor
        cand("DEADK01", alive=False, born=date(2016, 1, 1)),
        cand("ORPHAN1", born=date(2012, 1, 1)),
    ]
    parents = {
        "KIDA001": ("SUBJECT", "WIDOWER"),
        "KIDB001": ("SUBJECT", "WIDOWER"),
        "ADULT01": ("SUBJECT", "WIDOWER"),
        "DEADK01": ("SUBJECT", "WIDOWER"),
        "ORPHAN1": ("SUBJECT", None),
    }
    picks = resolve_beneficiary(
        Beneficiary.MINOR_CHILDREN_VIA_SURVIVING_PARENT,
        subject="SUBJECT", subject_birth=date(1980, 1, 1), mother=None, father=None, spouse=None,
        children=children, day=TODAY, child_parents=parents,
        people={"WIDOWER": cand("WIDOWER")},
    )
    assert picks == [
        Pick("KIDA001", "WIDOWER"),
        Pick("KIDB001", "WIDOWER"),
        Pick("ORPHAN1", None, "no surviving parent on record: a guardian must be found"),
    ]
    # A deceased with no minor children starts no case at all.
    assert resolve_beneficiary(
        Beneficiary.MINOR_CHILDREN_VIA_SURVIVING_PARENT,
        subject="SUBJECT", subject_birth=None, mother=None, father=None, spouse=None,
        children=[children[2]], day=TODAY,
    ) == []
