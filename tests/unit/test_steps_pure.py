"""The pure parts of the pipeline steps: consent replies, payment months, message texts."""

from __future__ import annotations

import calendar
import re
from collections.abc import Iterator
from datetime import UTC, date, datetime
from itertools import islice

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from haqq.pipeline import pay
from haqq.pipeline.consent import NO, YES, parse_reply
from haqq.pipeline.pay import first_month_amount, month_start, months, next_month, period_due
from haqq.rules.messages import reply_code

# --- consent replies -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # Azerbaijani
        ("HƏ 4821", ("yes", "4821")),
        ("hə 4821", ("yes", "4821")),
        ("Hə 4821", ("yes", "4821")),
        ("bəli 4821", ("yes", "4821")),
        ("BƏLİ 4821", ("yes", "4821")),
        (" bəli 4821 ", ("yes", "4821")),
        ("he 4821", ("yes", "4821")),
        ("beli 4821", ("yes", "4821")),
        ("YOX 4821", ("no", "4821")),
        ("yox 4821", ("no", "4821")),
        ("Xeyr 4821", ("no", "4821")),
        # Russian, also typed in Latin letters
        ("ДА 4821", ("yes", "4821")),
        ("да 4821", ("yes", "4821")),
        ("Да 4821", ("yes", "4821")),
        ("da 4821", ("yes", "4821")),
        ("НЕТ 4821", ("no", "4821")),
        ("нет 4821", ("no", "4821")),
        ("net 4821", ("no", "4821")),
        # English
        ("YES 4821", ("yes", "4821")),
        ("yes 4821", ("yes", "4821")),
        ("Yes 4821", ("yes", "4821")),
        ("y 4821", ("yes", "4821")),
        ("NO 4821", ("no", "4821")),
        ("no 4821", ("no", "4821")),
        ("n 4821", ("no", "4821")),
        # stray spaces, tabs, newlines
        ("   yes    4821   ", ("yes", "4821")),
        ("\tyes\t4821\n", ("yes", "4821")),
        ("YES\n4821", ("yes", "4821")),
        ("нет  0001", ("no", "0001")),
    ],
)
def test_parse_reply(text: str, expected: tuple[str, str]) -> None:
    assert parse_reply(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "yes",
        "4821",
        "4821 yes",
        "yes 4821 please",
        "yes yes 4821",
        "maybe 4821",
        "ok 4821",
        "yesno 4821",
        "YES4821",
        "ja 4821",
        "не 4821",
        "STOP",
    ],
)
def test_wrong_shapes_are_not_replies(text: str) -> None:
    assert parse_reply(text) is None


def test_yes_and_no_words_do_not_overlap() -> None:
    assert not YES & NO
    assert all(w == w.upper() for w in YES | NO)


@settings(max_examples=200, deadline=None)
@given(
    word=st.sampled_from(sorted(YES | NO)),
    code=st.from_regex(r"[0-9]{4}", fullmatch=True),
    left=st.sampled_from(["", " ", "  ", "\t"]),
    middle=st.sampled_from([" ", "  ", "\t", " \n "]),
    right=st.sampled_from(["", " ", "\n"]),
    lower=st.booleans(),
)
def test_any_yes_or_no_word_with_any_spacing(
    word: str, code: str, left: str, middle: str, right: str, lower: bool
) -> None:
    shown = word.lower() if lower else word
    assert parse_reply(f"{left}{shown}{middle}{code}{right}") == (
        "yes" if word in YES else "no",
        code,
    )


# --- payment months --------------------------------------------------------------------------


def month_list(start: date, until: date) -> list[date]:
    """At most 1,000 months: a generator that never ends fails here instead of hanging."""
    got: Iterator[date] = months(start, until)
    return list(islice(got, 1000))


def test_months_lists_first_days_inclusive() -> None:
    assert month_list(date(2024, 11, 15), date(2025, 2, 3)) == [
        date(2024, 11, 1),
        date(2024, 12, 1),
        date(2025, 1, 1),
        date(2025, 2, 1),
    ]


def test_months_within_one_month() -> None:
    assert month_list(date(2024, 2, 29), date(2024, 2, 29)) == [date(2024, 2, 1)]
    assert month_list(date(2024, 2, 10), date(2024, 2, 1)) == [date(2024, 2, 1)]


def test_months_until_before_the_start_month_is_empty() -> None:
    assert month_list(date(2024, 3, 5), date(2024, 2, 29)) == []


def test_next_month_and_month_start() -> None:
    assert next_month(date(2024, 12, 1)) == date(2025, 1, 1)
    assert next_month(date(2024, 1, 31)) == date(2024, 2, 1)
    assert next_month(date(2024, 11, 30)) == date(2024, 12, 1)
    assert month_start(date(2024, 2, 29)) == date(2024, 2, 1)


@settings(max_examples=200, deadline=None)
@given(
    start=st.dates(min_value=date(2000, 1, 1), max_value=date(2040, 12, 31)),
    span=st.integers(min_value=0, max_value=800),
)
def test_months_are_consecutive(start: date, span: int) -> None:
    until = date.fromordinal(start.toordinal() + span)
    got = month_list(start, until)
    expected = (until.year - start.year) * 12 + until.month - start.month + 1
    assert len(got) == expected
    assert got[0] == start.replace(day=1)
    assert got[-1] == until.replace(day=1)
    for a, b in zip(got, got[1:], strict=False):
        assert b.day == 1
        assert (b.year * 12 + b.month) - (a.year * 12 + a.month) == 1


@pytest.mark.parametrize(
    ("monthly", "start", "amount"),
    [
        (30000, date(2024, 3, 1), 30000),  # a whole month
        (30000, date(2024, 3, 31), 968),  # 1/31: 967.74
        (30000, date(2024, 3, 16), 15484),  # 16/31: 15483.87
        (30000, date(2024, 4, 16), 15000),  # 15/30
        (30001, date(2024, 4, 16), 15001),  # 15000.5: half up
        (1, date(2024, 4, 16), 1),  # 0.5: half up
        (30000, date(2024, 4, 30), 1000),  # 1/30
        (30000, date(2024, 2, 1), 30000),  # leap February
        (30000, date(2024, 2, 15), 15517),  # 15/29: 15517.24
        (30000, date(2024, 2, 29), 1034),  # 1/29: 1034.48
        (30000, date(2023, 2, 15), 15000),  # 14/28
        (30000, date(2023, 2, 28), 1071),  # 1/28: 1071.43
        (30000, date(2024, 12, 31), 968),
        (0, date(2024, 5, 9), 0),
    ],
)
def test_first_month_amount(monthly: int, start: date, amount: int) -> None:
    assert first_month_amount(monthly, start) == amount


@settings(max_examples=200, deadline=None)
@given(
    monthly=st.integers(min_value=0, max_value=10_000_000),
    start=st.dates(min_value=date(2000, 1, 1), max_value=date(2040, 12, 31)),
)
def test_first_month_amount_is_pro_rata(monthly: int, start: date) -> None:
    days = calendar.monthrange(start.year, start.month)[1]
    covered = days - start.day + 1
    amount = first_month_amount(monthly, start)
    assert 0 <= amount <= monthly
    assert abs(amount * days - monthly * covered) * 2 <= days  # within half a qəpik
    if start.day == 1:
        assert amount == monthly
    if start.day < days:
        assert amount >= first_month_amount(monthly, start.replace(day=start.day + 1))


def test_period_due_is_nine_in_baku() -> None:
    due = period_due(date(2025, 1, 1))
    assert due.tzinfo is not None
    assert due == datetime(2025, 1, 1, 5, 0, tzinfo=UTC)  # Baku is UTC+4, no DST


def test_payment_row_key_is_per_period() -> None:
    due = datetime(2025, 1, 1, 5, tzinfo=UTC)
    row = pay.payment_row(
        "case-9", "5ABC12D", "disability_payment", "2025-01", date(2025, 1, 1), 100, due, None
    )
    assert row["key"] == "pay:case-9:2025-01"
    assert (row["entitlement_id"], row["status"], row["amount"]) == ("case-9", "scheduled", 100)


# --- reply codes ------------------------------------------------------------------------------


def test_reply_code_known_values() -> None:
    # Fixed values: the code must not depend on the process (as hash() would).
    assert reply_code("case-1") == "3848"
    assert reply_code("case-2") == "1364"
    assert reply_code("") == "8610"


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=60))
def test_reply_code_is_four_digits_and_deterministic(case_id: str) -> None:
    code = reply_code(case_id)
    assert re.fullmatch(r"[1-9][0-9]{3}", code)
    assert reply_code(case_id) == code


def test_reply_codes_spread() -> None:
    codes = {reply_code(f"case-{i}") for i in range(500)}
    assert len(codes) > 400
