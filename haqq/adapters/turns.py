"""Turns at a SQLite file's write lock, for several processes writing to one file.

SQLite's busy handler polls with growing sleeps (up to 100 ms), so a process waiting for the
write lock sleeps on after it is free. haqq's processes take an exclusive ``flock`` on a file
beside the database first, which wakes the next one the moment the holder lets go.
"""

from __future__ import annotations

import fcntl
import os
import threading

#: Which thread of this process holds the turn on each lock file.
_holders: dict[str, int] = {}
_holders_lock = threading.Lock()


class WriteTurns:
    """Exclusive turns on ``<database>.lock``; a no-op for an in-memory database (``None``)."""

    def __init__(self, database: str | os.PathLike[str] | None) -> None:
        self.path = None if database is None else f"{os.fspath(database)}.lock"
        self._fd: int | None = None

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
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        with _holders_lock:
            _holders[self.path] = me

    def end(self) -> None:
        if self._fd is not None and self.path is not None:
            fd, self._fd = self._fd, None
            with _holders_lock:
                _holders.pop(self.path, None)
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
