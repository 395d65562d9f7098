"""Quiet hours: no SMS at night. A message due then waits for the morning."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from haqq.domain.errors import HaqqError, NaiveDatetime

BAKU = ZoneInfo("Asia/Baku")
_SPAN = re.compile(r"^\s*([01]?\d|2[0-3]):([0-5]\d)\s*-\s*([01]?\d|2[0-3]):([0-5]\d)\s*$")


class InvalidQuietHours(HaqqError):
    """Quiet hours must be written ``HH:MM-HH:MM`` (local time), e.g. ``22:00-08:00``."""


@dataclass(frozen=True, slots=True)
class QuietHours:
    """From ``start`` to ``end`` local time (across midnight when ``end`` < ``start``)."""

    start: time
    end: time
    zone: ZoneInfo = BAKU

    @classmethod
    def parse(cls, text: str | None, zone: ZoneInfo = BAKU) -> QuietHours | None:
        """``"22:00-08:00"`` -> quiet hours; ``""``, ``"off"`` or None -> none."""
        if text is None or text.strip().lower() in ("", "off", "none"):
            return None
        match = _SPAN.match(text)
        if not match:
            raise InvalidQuietHours(f"quiet hours {text!r}: expected HH:MM-HH:MM, e.g. 22:00-08:00, or 'off'")
        h1, m1, h2, m2 = (int(g) for g in match.groups())
        if (h1, m1) == (h2, m2):
            raise InvalidQuietHours(f"quiet hours {text!r}: start and end are the same moment")
        return cls(time(h1, m1), time(h2, m2), zone)

    def covers(self, at: datetime) -> bool:
        if at.tzinfo is None or at.utcoffset() is None:
            raise NaiveDatetime("a moment checked against quiet hours")
        local = at.astimezone(self.zone).time()
        if self.start < self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end

    def next_allowed(self, at: datetime) -> datetime:
        """``at`` itself outside quiet hours, else the moment they end (in ``at``'s zone)."""
        if not self.covers(at):
            return at
        local = at.astimezone(self.zone)
        day = local.date() if local.time() < self.end else local.date() + timedelta(days=1)
        return datetime.combine(day, self.end, tzinfo=self.zone).astimezone(at.tzinfo)

    def __str__(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M}"
