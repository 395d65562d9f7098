"""The interpreter and the Polars backend agree: same outcome, branch and amount for everyone.

Hypothesis draws random decision tables (comparisons of facts with parameters and literals,
div in every rounding mode, min/max, conditionals, date functions, children aggregates) and
random populations at the boundaries (threshold +-1 qəpik, parameter changes on today +-1 day,
birthdays on 29 February, month ends, persons without children or relations).
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from haqq.rules.lang import (
    Case,
    Interpreter,
    Outcome,
    Person,
    VectorProgram,
    load_schema,
    load_table,
    to_frames,
)

SCHEMA = load_schema()
TODAYS = [date(2024, 2, 29), date(2025, 2, 28), date(2025, 3, 31), date(2024, 12, 31),
          date(2025, 1, 1), date(2023, 3, 1)]
THRESHOLD = 100_000
MODES = ["half_up", "half_even", "down"]

INT_FACTS = ["subject.pension_capital", "subject.monthly_income", "subject.disability_group",
             "subject.spouse.monthly_income", "subject.mother.pension_capital",
             "beneficiary.monthly_income", "subject.insurance_months"]
BOOL_FACTS = ["subject.alive", "subject.resident", "subject.spouse.exists", "subject.spouse.alive",
              "already_paid", "beneficiary.alive", "subject.mother.exists"]
CHILD_CONDS = ["c.alive", "age(c.birth_date) >= 18", "c.monthly_income >= param.threshold",
               "c.monthly_income > 0", "c.birth_date <= add_months(today, -216)"]
DATES = ["subject.birth_date", "subject.disability_since", "subject.spouse.birth_date", "today"]


def _int_atoms() -> st.SearchStrategy[str]:
    child = st.sampled_from(CHILD_CONDS)
    return st.one_of(
        st.sampled_from(INT_FACTS),
        st.sampled_from(["param.threshold", "param.amount", "param.months"]),
        st.integers(-3, 3).map(str),
        st.sampled_from(["99999", "100000", "100001"]),
        st.sampled_from(DATES).map(lambda d: f"age({d})"),
        st.tuples(st.sampled_from(DATES), st.sampled_from(DATES)).map(
            lambda ds: f"months_between({ds[0]}, {ds[1]})"),
        st.sampled_from(DATES).map(lambda d: f"year(add_months({d}, 1))"),
        child.map(lambda c: f"count(c for c in subject.children if {c})"),
        st.just("count(c for c in beneficiary.children)"),
        child.map(lambda c: f"sum(c.monthly_income for c in subject.children if {c})"),
        st.tuples(st.sampled_from(["min", "max"]), child).map(
            lambda t: f"{t[0]}((c.monthly_income for c in subject.children if {t[1]}), "
            "default=param.amount)"),
        st.just("max((age(c.birth_date) for c in subject.children), default=-1)"),
        st.just("sum(div(c.monthly_income, param.months, \"half_even\") for c in subject.children)"),
    )


def _bools(ints: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    compare = st.tuples(ints, st.sampled_from(["<", "<=", ">", ">=", "==", "!="]), ints).map(
        lambda t: f"{t[0]} {t[1]} {t[2]}")
    atoms = st.one_of(
        st.sampled_from(BOOL_FACTS),
        compare,
        st.sampled_from(CHILD_CONDS[:3]).map(lambda c: f"any({c} for c in subject.children)"),
        st.sampled_from(CHILD_CONDS[:3]).map(lambda c: f"all({c} for c in subject.children)"),
        st.sampled_from(DATES).map(lambda d: f"add_days({d}, 1) > today"),
        st.sampled_from(DATES).map(lambda d: f"{d} <= add_months(today, -216)"),
        st.just("param.start <= today"),
    )
    return st.recursive(
        atoms,
        lambda inner: st.one_of(
            st.tuples(inner, st.sampled_from(["and", "or"]), inner).map(
                lambda t: f"({t[0]} {t[1]} {t[2]})"),
            inner.map(lambda b: f"not {b}"),
        ),
        max_leaves=4,
    )


def _ints() -> st.SearchStrategy[str]:
    atoms = _int_atoms()
    return st.recursive(
        atoms,
        lambda inner: st.one_of(
            st.tuples(inner, st.sampled_from(["+", "-"]), inner).map(
                lambda t: f"({t[0]} {t[1]} {t[2]})"),
            st.tuples(inner, st.integers(-3, 3)).map(lambda t: f"({t[0]} * {t[1]})"),
            st.tuples(inner, inner, st.sampled_from(MODES)).map(
                lambda t: f'div({t[0]}, {t[1]}, "{t[2]}")'),
            st.tuples(st.sampled_from(["min", "max"]), inner, inner).map(
                lambda t: f"{t[0]}({t[1]}, {t[2]})"),
            st.tuples(inner, _bools(atoms), inner).map(lambda t: f"({t[0]} if {t[1]} else {t[2]})"),
        ),
        max_leaves=5,
    )


def _param(unit: str, values: list[Any], today: date, offsets: list[int]) -> dict[str, Any]:
    days = sorted({today + timedelta(days=o) for o in offsets})
    return {"unit": unit, "values": [
        {"from": d, "value": v, "reference": f"ref {i}"} for i, (d, v) in enumerate(zip(days, values, strict=False))
    ]}


@st.composite
def tables(draw: st.DrawFn, today: date) -> dict[str, Any]:
    offsets = st.lists(st.sampled_from([-400, -1, 0, 1]), min_size=1, max_size=3, unique=True)
    amounts = st.lists(st.sampled_from([0, 1, 14_000, 99_999, 100_000]), min_size=3, max_size=3)
    params = {
        "threshold": _param("qepik", [THRESHOLD - 1, THRESHOLD, THRESHOLD + 1], today, draw(offsets)),
        "amount": _param("qepik", draw(amounts), today, draw(offsets)),
        "months": _param("months", draw(st.lists(st.sampled_from([-1, 0, 1, 2, 3, 144]),
                                                 min_size=3, max_size=3)), today, draw(offsets)),
        "start": _param("date", [today - timedelta(days=1), today, today + timedelta(days=1)],
                        today, [-1, 0, 1]),
    }
    checks = [
        {"id": f"check_{i}", "require": draw(_bools(_int_atoms())),
         "otherwise": draw(st.sampled_from(["denied", "needs_review"])), "reference": f"Art. {i}",
         "reason": {"en": "no", "az": "yox", "ru": "нет"}}
        for i in range(draw(st.integers(0, 2)))
    ]
    n = draw(st.integers(1, 3))
    amount = [
        {"id": f"branch_{j}", "reference": f"Art. 9.{j}", "value": draw(_ints()),
         **({"when": draw(_bools(_int_atoms()))} if j < n - 1 else {})}
        for j in range(n)
    ]
    return {"checks": checks, "amount": amount, "parameters": params}


def _boundary_dates(today: date) -> st.SearchStrategy[date]:
    adult = date(today.year - 18, today.month, min(today.day, 28))
    return st.sampled_from([
        today, today - timedelta(days=1), today + timedelta(days=1), adult,
        adult - timedelta(days=1), adult + timedelta(days=1), date(2000, 2, 29),
        date(2004, 2, 29), date(2007, 1, 31), date(2006, 3, 31), date(1900, 1, 1),
        date(2024, 1, 31), date(2024, 2, 28),
    ])


@st.composite
def persons(draw: st.DrawFn, fin: str, today: date, depth: int = 1) -> Person:
    money = st.sampled_from([THRESHOLD - 1, THRESHOLD, THRESHOLD + 1, 0, -1, 1, 1_440_000, 7])
    answers: dict[str, Any] = {}
    if draw(st.booleans()):
        answers["civil_registry/person"] = {
            "alive": draw(st.booleans()), "birth_date": draw(_boundary_dates(today)).isoformat(),
        }
    answers["interior/identity"] = {"resident": draw(st.booleans())}
    answers["tax/income"] = {"monthly_income": draw(money)}
    answers["pension_fund/record"] = {"pension_capital": draw(money),
                                      "insurance_months": draw(st.integers(0, 3))}
    if draw(st.booleans()):
        answers["disability/status"] = {"active": True, "group": draw(st.integers(1, 3)),
                                        "since": draw(_boundary_dates(today)).isoformat()}
    person = SCHEMA.record(fin, answers)
    if depth > 0:
        for relation in ("mother", "spouse"):
            if draw(st.booleans()):
                setattr(person, relation, draw(persons(f"{fin}{relation[0]}", today, 0)))
        count = draw(st.integers(0, 3))
        person.children = tuple(draw(persons(f"{fin}c{k}", today, 0)) for k in range(count))
    return person


@st.composite
def cases(draw: st.DrawFn, today: date) -> list[Case]:
    out = []
    for k in range(draw(st.integers(1, 6))):
        subject = draw(persons(f"S{k}", today))
        beneficiary = subject if draw(st.booleans()) else draw(persons(f"B{k}", today))
        out.append(Case(subject, beneficiary, draw(st.booleans())))
    return out


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[date, dict[str, Any], list[Case]]:
    today = draw(st.sampled_from(TODAYS))
    return today, draw(tables(today)), draw(cases(today))


def _both(raw: dict[str, Any], today: date, population: list[Case]) -> tuple[list[Any], list[Any]]:
    table = load_table(raw, SCHEMA)
    interpreter = Interpreter(table)
    expected = [tuple(interpreter.evaluate(c, today).result) for c in population]
    frame, kids = to_frames(population, SCHEMA)
    got = VectorProgram(table).evaluate(frame, today=today, children=kids)
    return expected, [(Outcome(o), b, a) for o, b, a in got.select("outcome", "branch", "amount").rows()]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_interpreter_and_polars_agree(scenario: tuple[date, dict[str, Any], list[Case]]) -> None:
    today, raw, population = scenario
    expected, got = _both(raw, today, population)
    assert got == expected, raw


def test_agreement_covers_every_outcome() -> None:
    """A fixed scenario where each outcome occurs (so agreement is not vacuous)."""
    today = date(2025, 2, 28)
    raw = {
        "checks": [{"id": "alive", "require": "subject.alive", "otherwise": "denied",
                    "reference": "Art. 1", "reason": {"en": "-", "az": "-", "ru": "-"}}],
        "amount": [
            {"id": "divided", "reference": "Art. 2", "when": "subject.monthly_income >= 100000",
             "value": 'div(subject.monthly_income, subject.insurance_months, "half_even")'},
            {"id": "children", "reference": "Art. 3",
             "value": "count(c for c in subject.children if age(c.birth_date) >= 18) * 5000"},
        ],
    }
    alive = {"civil_registry/person": {"alive": True, "birth_date": "1970-01-01"}}
    adult = {"civil_registry/person": {"alive": True, "birth_date": "2007-02-28"}}
    tomorrow = {"civil_registry/person": {"alive": True, "birth_date": "2007-03-01"}}

    def income(n: int, months: int) -> dict[str, Any]:
        return {**alive, "tax/income": {"monthly_income": n},
                "pension_fund/record": {"insurance_months": months}}

    population = [
        Case(SCHEMA.person("A", {})),                                   # denied: unknown = dead
        Case(SCHEMA.person("B", income(100_001, 2))),                   # 50000.5 -> 50000 (even)
        Case(SCHEMA.person("C", income(100_003, 2))),                   # 50001.5 -> 50002 (even)
        Case(SCHEMA.person("D", income(100_000, 0))),                   # division by zero
        Case(SCHEMA.person("E", income(99_999, 1), children=[("E1", adult), ("E2", tomorrow)])),
        Case(SCHEMA.person("F", income(99_999, 1))),                    # no children: 0 -> review
    ]
    expected, got = _both(raw, today, population)
    assert got == expected
    assert got == [
        (Outcome.DENIED, "alive", 0),
        (Outcome.GRANTED, "divided", 50_000),
        (Outcome.GRANTED, "divided", 50_002),
        (Outcome.NEEDS_REVIEW, "divided", 0),
        (Outcome.GRANTED, "children", 5_000),  # one child is 18 today, the other tomorrow
        (Outcome.NEEDS_REVIEW, "children", 0),
    ]
