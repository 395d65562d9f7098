"""Turns at a SQLite file's write lock, for several processes writing to one file.

SQLite's busy handler polls with growing sleeps (up to 100 ms), so a process waiting for the
write lock sleeps on after it is free. haqq's processes take an exclusive ``flock`` on a file
beside the database first, which wakes the next one the moment the holder lets go.

Each process counts its turns at each lock file: how many, how long it waited for them and how
long it held them (:func:`totals`). Summed over the processes, the time held says how much of a
run the file's one writer was busy: SQLite's limit when several processes write.
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
from dataclasses import dataclass, replace

#: Which thread of this process holds the turn on each lock file.
_holders: dict[str, int] = {}
_holders_lock = threading.Lock()


@dataclass(frozen=True, slots=True)
class TurnTotals:
    """Turns taken at one lock file: how many, and the seconds waited for and held."""

    turns: int = 0
    waited: float = 0.0
    held: float = 0.0

    def __add__(self, other: TurnTotals) -> TurnTotals:
        return TurnTotals(self.turns + other.turns, self.waited + other.waited, self.held + other.held)

    def __sub__(self, other: TurnTotals) -> TurnTotals:
        return TurnTotals(self.turns - other.turns, self.waited - other.waited, self.held - other.held)


#: This process's turns at each lock file since it started (guarded by ``_holders_lock``).
_totals: dict[str, TurnTotals] = {}


def totals(database: str | os.PathLike[str]) -> TurnTotals:
    """This process's turns at ``database``'s write lock so far."""
    with _holders_lock:
        return _totals.get(f"{os.fspath(database)}.lock", TurnTotals())


class WriteTurns:
    """Exclusive turns on ``<database>.lock``; a no-op for an in-memory database (``None``)."""

    def __init__(self, database: str | os.PathLike[str] | None) -> None:
        self.path = None if database is None else f"{os.fspath(database)}.lock"
        self._fd: int | None = None
        self._taken_at = 0.0

    @property
    def held(self) -> bool:
        return self._fd is not None

    def take(self) -> None:
        """Wait for the turn (held until :meth:`end`); taking a held turn again does nothing.

        A thread that already holds the turn through another connection does not wait for
        itself: that connection's write then meets SQLite's own lock and busy timeout, as it
        would without turns.
        """
        if self.path is None or self._fd is not None:
            return
        me = threading.get_ident()
        with _holders_lock:
            if _holders.get(self.path) == me:
                return
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        asked = time.perf_counter()
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        self._taken_at = time.perf_counter()
        with _holders_lock:
            _holders[self.path] = me
            was = _totals.get(self.path, TurnTotals())
            _totals[self.path] = replace(was, turns=was.turns + 1, waited=was.waited + self._taken_at - asked)

    def end(self) -> None:
        if self._fd is not None and self.path is not None:
            fd, self._fd = self._fd, None
            held = time.perf_counter() - self._taken_at
            with _holders_lock:
                _holders.pop(self.path, None)
                was = _totals.get(self.path, TurnTotals())
                _totals[self.path] = replace(was, held=was.held + held)
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
