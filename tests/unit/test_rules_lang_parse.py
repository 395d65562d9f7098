"""Parsing: what the language accepts, its types, and the exact error for what it refuses."""

from __future__ import annotations

from datetime import date

import pytest

from haqq.domain.errors import HaqqError
from haqq.rules.lang import RuleError, Scope, Type, load_schema, parse_expression
from haqq.rules.lang.types import Aggregate, Compare, Fact, Lit, Logic, Param

SCOPE = Scope(load_schema(), {"minimum_capital": Type.INT, "start": Type.DATE})


def parse(text: str) -> object:
    return parse_expression(text, SCOPE)


@pytest.mark.parametrize(
    ("text", "type_"),
    [
        ("1 + 2 * 3", Type.INT),
        ("-subject.pension_capital", Type.INT),
        ('subject.sex == "F"', Type.BOOL),
        ('date("2025-01-31")', Type.DATE),
        ("today", Type.DATE),
        ("already_paid", Type.BOOL),
        ("subject.spouse.exists", Type.BOOL),
        ("beneficiary.mother.birth_date", Type.DATE),
        ("param.start <= today", Type.BOOL),
        ('div(subject.pension_capital, 144, "half_even")', Type.INT),
        ("min(1, 2, 3)", Type.INT),
        ('max(today, date("2020-01-01"))', Type.DATE),
        ("1 if subject.alive else 2", Type.INT),
        ("age(subject.birth_date)", Type.INT),
        ("add_months(today, -1)", Type.DATE),
        ("any(c.alive for c in subject.children)", Type.BOOL),
        ("all(c.alive for c in beneficiary.children)", Type.BOOL),
        ("sum(c.monthly_income for c in subject.children if c.alive)", Type.INT),
        ("max((c.birth_date for c in subject.children), default=today)", Type.DATE),
        ("count(c for c in subject.children if c.alive if c.resident)", Type.INT),
    ],
)
def test_accepted_expressions_have_their_type(text: str, type_: Type) -> None:
    assert parse(text).type is type_  # type: ignore[attr-defined]


def test_the_tree_is_the_language_not_python() -> None:
    node = parse("subject.pension_capital >= param.minimum_capital")
    assert node == Compare(
        Type.BOOL, "subject.pension_capital >= param.minimum_capital", 0, ">=",
        Fact(Type.INT, "subject.pension_capital", 0, "subject", None, "pension_capital"),
        Param(Type.INT, "param.minimum_capital", 27, "minimum_capital"),
    )


def test_chains_become_and_and_negative_literals_fold() -> None:
    node = parse("0 < subject.disability_group <= 3")
    assert isinstance(node, Logic) and node.op == "and" and len(node.items) == 2
    assert parse("-5") == Lit(Type.INT, "-5", 0, -5)
    assert parse('date("2024-02-29")') == Lit(Type.DATE, 'date("2024-02-29")', 0, date(2024, 2, 29))


def test_an_aggregate_keeps_its_role_body_and_filter() -> None:
    node = parse("count(c for c in subject.children if c.alive and age(c.birth_date) >= 18)")
    assert isinstance(node, Aggregate)
    assert (node.kind, node.role, node.body) == ("count", "subject", None)
    assert isinstance(node.where, Logic)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("subject.alive + 1", "`subject.alive + 1` (column 0): cannot add bool and int"),
        ('__import__("os")',
         '`__import__` (column 0): `__import__` is not allowed in `__import__("os")`'),
        ("subject.__class__", "`subject.__class__` (column 0): `__class__` is not allowed"),
        ('"x".upper()',
         '`"x".upper()` (column 0): only the functions of the language can be called, not methods'),
        ("(1).real",
         "`(1).real` (column 0): attribute access only on roles and relations (subject, "
         "beneficiary, their mother, father, spouse, a child) and param"),
        ("eval('1')", "`eval` (column 0): unknown function `eval` in `eval('1')`"),
        ("open", "`open` (column 0): unknown name `open`"),
        ("lambda: 1", "`lambda: 1` (column 0): lambda is not allowed"),
        ("[1, 2]", "`[1, 2]` (column 0): a list is not allowed"),
        ("subject.pension_capital / 2",
         '`subject.pension_capital / 2` (column 0): `/` is not allowed: money is integer; use '
         'div(a, b, "half_up"|"half_even"|"down")'),
        ("2 ** 3", "`2 ** 3` (column 0): operator `**` is not allowed"),
        ("1.5", "`1.5` (column 0): decimal numbers are not allowed: money is integer qəpik"),
        ("None", "`None` (column 0): `None` is not allowed: every fact has a declared default"),
        ("subject.pension_capitl",
         "`subject.pension_capitl` (column 0): unknown fact `pension_capitl` "
         "(did you mean `pension_capital`?)"),
        ("param.minimum", "`param.minimum` (column 0): unknown parameter `minimum` "
         "(did you mean `minimum_capital`?)"),
        ("subject.children",
         "`subject.children` (column 0): `subject.children` is a list: use it in count, any, "
         "all, sum, min or max"),
        ("subject.mother",
         "`subject.mother` (column 0): `subject.mother` is a person, not a value: read one of its "
         "facts, e.g. `subject.mother.alive`, or `subject.mother.exists`"),
        ("subject.mother.mother.alive",
         "`subject.mother.mother.alive` (column 0): the relations of a relation cannot be read"),
        ('1 == 1 and subject.sex < "M"',
         '`subject.sex < "M"` (column 11): `<` compares ints or dates, not strs '
         'in `1 == 1 and subject.sex < "M"`'),
        ("subject.alive == 1", "`subject.alive == 1` (column 0): cannot compare bool and int"),
        ("1 if subject.alive else today",
         "`1 if subject.alive else today` (column 0): both sides of `if`/`else` must have one "
         "type, not int and date"),
        ('div(subject.pension_capital, 2, "half")',
         '`"half"` (column 32): the rounding mode must be one of "half_up", "half_even", "down" '
         'in `div(subject.pension_capital, 2, "half")`'),
        ("div(1, 2)", '`div(1, 2)` (column 0): div takes 3 arguments: div(amount, divisor, '
         '"half_up"|"half_even"|"down")'),
        ('date("2025-02-30")', "`date(\"2025-02-30\")` (column 0): '2025-02-30' is not a date "
         "(YYYY-MM-DD)"),
        ("max(c.age for c in subject.children)",
         "`max(c.age for c in subject.children)` (column 0): max over children needs an explicit "
         "default: max((... for c in subject.children), default=0)"),
        ("sum(subject.children)", "`sum(subject.children)` (column 0): sum takes one generator: "
         "sum(... for c in subject.children if ...)"),
        ("count(c for c in subject.children if subject.alive)",
         "`subject.alive` (column 37): inside an aggregate only facts of the child, parameters, "
         "literals and `today` can be used in `count(c for c in subject.children if "
         "subject.alive)`"),
        ("any(c.alive for c in subject.mother)",
         "`subject.mother` (column 21): an aggregate runs over `subject.children` or "
         "`beneficiary.children` in `any(c.alive for c in subject.mother)`"),
        ("any(any(d.alive for d in subject.children) for c in subject.children)",
         "`any(d.alive for d in subject.children)` (column 4): aggregates cannot be nested in "
         "`any(any(d.alive for d in subject.children) for c in subject.children)`"),
        ("x[0]", "`x[0]` (column 0): indexing is not allowed"),
        ('"ə" == 1 or 2', '`"ə" == 1` (column 0): cannot compare str and int in `"ə" == 1 or 2`'),
        ('1 + "ə" + subject.alive',
         '`1 + "ə"` (column 0): cannot add int and str in `1 + "ə" + subject.alive`'),
        ('"ə" + subject.alive', '`"ə" + subject.alive` (column 0): cannot add str and bool'),
        ('1 == 1 or ("ə" > today)', '`"ə" > today` (column 11): cannot compare str and date in '
         '`1 == 1 or ("ə" > today)`'),
    ],
)
def test_refused_with_the_exact_message(text: str, message: str) -> None:
    with pytest.raises(RuleError) as caught:
        parse(text)
    assert str(caught.value) == message
    assert isinstance(caught.value, HaqqError)


def test_a_column_counts_characters_not_bytes() -> None:
    with pytest.raises(RuleError) as caught:
        parse('"əəə" == "ə" and subject.alive + 1 > 0')
    assert caught.value.column == 17
    assert caught.value.segment == "subject.alive + 1"


def test_the_expected_type_is_enforced_and_named() -> None:
    with pytest.raises(RuleError, match=r"^t: check c: `subject.pension_capital` \(column 0\): "
                       r"must be bool, not int$"):
        parse_expression("subject.pension_capital", SCOPE, expect=Type.BOOL, where="t: check c")


def test_syntax_errors_and_huge_input_are_rule_errors() -> None:
    with pytest.raises(RuleError, match="syntax error"):
        parse("1 +")
    with pytest.raises(RuleError, match="at most 4000 characters"):
        parse("1" + " + 1" * 2000)
    with pytest.raises(RuleError, match="syntax error|nested too deeply"):
        parse("(" * 300 + "1" + ")" * 300)
    with pytest.raises(RuleError, match="nested too deeply|syntax error"):
        parse("not " * 990 + "True")
