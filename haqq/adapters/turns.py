"""Turns at a SQLite file's write lock, for several processes writing to one file.

SQLite's busy handler polls with growing sleeps (up to 100 ms), so a process waiting for the
write lock sleeps on after it is free. haqq's processes take an exclusive ``flock`` on a file
beside the database first, which wakes the next one the moment the holder lets go.
"""

from __future__ import annotations

import fcntl
import os


class WriteTurns:
    """Exclusive turns on ``<database>.lock``; a no-op for an in-memory database (``None``)."""

    def __init__(self, database: str | os.PathLike[str] | None) -> None:
        self.path = None if database is None else f"{os.fspath(database)}.lock"
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def take(self) -> None:
        """Wait for the turn (held until :meth:`end`); taking a held turn again does nothing."""
        if self.path is None or self._fd is not None:
            return
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd

    def end(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
