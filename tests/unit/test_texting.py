"""Quiet hours, the rate limit, retry backoff and the reply words: the pure parts of texting."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from haqq.domain.errors import NaiveDatetime
from haqq.domain.quiet import BAKU, InvalidQuietHours, QuietHours
from haqq.pipeline.consent import NO, STOP, YES, parse_reply
from haqq.pipeline.texting import RateLimit, SmsPolicy

NIGHT = QuietHours.parse("22:00-08:00")


def baku(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2025, 3, day, hour, minute, tzinfo=BAKU)


@pytest.mark.parametrize(
    ("at", "expected"),
    [
        (baku(5, 12), baku(5, 12)),
        (baku(5, 21, 59), baku(5, 21, 59)),
        (baku(5, 22), baku(6, 8)),
        (baku(5, 23, 30), baku(6, 8)),
        (baku(6, 3), baku(6, 8)),
        (baku(6, 7, 59), baku(6, 8)),
        (baku(6, 8), baku(6, 8)),
    ],
)
def test_a_message_due_at_night_waits_for_the_morning(at: datetime, expected: datetime) -> None:
    assert NIGHT is not None
    assert NIGHT.next_allowed(at) == expected


def test_quiet_hours_within_one_day_and_in_utc() -> None:
    lunch = QuietHours.parse("13:00-14:00")
    assert lunch is not None
    assert lunch.next_allowed(baku(5, 13, 30)) == baku(5, 14)
    assert not lunch.covers(baku(5, 14))
    # 19:00 UTC is 23:00 in Baku: quiet; the answer keeps the caller's zone.
    at = datetime(2025, 3, 5, 19, tzinfo=UTC)
    assert NIGHT is not None and NIGHT.next_allowed(at) == datetime(2025, 3, 6, 4, tzinfo=UTC)


@pytest.mark.parametrize("text", ["", "off", "none", " OFF "])
def test_quiet_hours_can_be_switched_off(text: str) -> None:
    assert QuietHours.parse(text) is None


@pytest.mark.parametrize("text", ["22-08", "25:00-08:00", "22:00", "22:00-22:00", "night"])
def test_bad_quiet_hours_are_refused_naming_the_form(text: str) -> None:
    with pytest.raises(InvalidQuietHours, match="HH:MM-HH:MM|same moment"):
        QuietHours.parse(text)


def test_quiet_hours_refuse_a_naive_time() -> None:
    assert NIGHT is not None
    with pytest.raises(NaiveDatetime):
        NIGHT.covers(datetime(2025, 3, 5, 23))  # noqa: DTZ001 - the point of the test


@settings(max_examples=300, deadline=None)
@given(st.datetimes(min_value=datetime(2024, 1, 1), max_value=datetime(2027, 1, 1), timezones=st.just(UTC)))  # noqa: DTZ001
def test_next_allowed_is_never_quiet_never_earlier_and_at_most_ten_hours_later(at: datetime) -> None:
    assert NIGHT is not None
    later = NIGHT.next_allowed(at)
    assert not NIGHT.covers(later)
    assert timedelta(0) <= later - at <= timedelta(hours=10)


def test_the_rate_limit_lets_through_a_second_s_worth_then_refills() -> None:
    now = [100.0]
    limit = RateLimit(50, clock=lambda: now[0])
    assert limit.take(200) == 50
    assert limit.take(10) == 0
    now[0] += 0.5
    assert limit.take(200) == 25
    now[0] += 10  # idle time saves up at most one second's worth
    assert limit.take(200) == 50
    assert RateLimit(0).take(12345) == 12345


def test_retries_back_off_doubling_up_to_the_cap_and_respect_quiet_hours() -> None:
    policy = SmsPolicy(backoff=timedelta(seconds=30), max_backoff=timedelta(minutes=10))
    now = baku(5, 12)
    assert [policy.retry_at(now, n) - now for n in (1, 2, 3, 6, 20)] == [
        timedelta(seconds=30), timedelta(seconds=60), timedelta(seconds=120),
        timedelta(minutes=10), timedelta(minutes=10)]
    night = SmsPolicy(quiet=NIGHT)
    assert night.retry_at(baku(5, 21, 59), 2) == baku(6, 8)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("STOP 4821", ("stop", "4821")),
        ("  stop   4821 ", ("stop", "4821")),
        ("стоп 4821", ("stop", "4821")),
        ("imtina 4821", ("stop", "4821")),
        ("İmtina 4821", ("stop", "4821")),
        ("Bəli 4821", ("yes", "4821")),
        ("yox 4821", ("no", "4821")),
        ("STOP 48211", None),
        ("STOP ４８２１", None),  # full-width digits are not a code
        ("STOP", None),
        ("STOP 4821 please", None),
    ],
)
def test_reply_words(text: str, expected: tuple[str, str] | None) -> None:
    assert parse_reply(text) == expected


def test_the_word_lists_do_not_overlap() -> None:
    assert not (YES & NO) and not (YES & STOP) and not (NO & STOP)
