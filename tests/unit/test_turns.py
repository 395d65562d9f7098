"""Write turns on a lock file: exclusive across holders, released on end, never a wait for
oneself (a second connection of the same thread falls back to SQLite's own lock)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from haqq.adapters.turns import WriteTurns, totals


@pytest.mark.timeout(30)
def test_a_turn_is_exclusive_until_it_ends(tmp_path: Path) -> None:
    db = tmp_path / "haqq.db"
    first = WriteTurns(db)
    first.take()
    assert first.held and (tmp_path / "haqq.db.lock").exists()
    got: list[float] = []

    def other() -> None:
        second = WriteTurns(db)
        second.take()
        got.append(time.monotonic())
        second.end()

    thread = threading.Thread(target=other)
    thread.start()
    time.sleep(0.2)
    assert got == [], "a second holder got the turn while the first held it"
    released = time.monotonic()
    first.end()
    thread.join(timeout=5)
    assert got and got[0] >= released and not first.held


@pytest.mark.timeout(30)  # a wait for oneself would never end
def test_the_same_thread_never_waits_for_itself(tmp_path: Path) -> None:
    db = tmp_path / "haqq.db"
    first, second = WriteTurns(db), WriteTurns(db)
    first.take()
    second.take()  # would block forever if it waited for the first
    assert first.held and not second.held
    second.end()
    first.end()
    third = WriteTurns(db)
    third.take()
    assert third.held
    third.end()


def test_an_in_memory_database_takes_no_turns() -> None:
    turns = WriteTurns(None)
    turns.take()
    assert not turns.held
    turns.end()


@pytest.mark.timeout(30)
def test_each_process_counts_its_turns_and_how_long_it_waited_and_held(tmp_path: Path) -> None:
    db = tmp_path / "haqq.db"
    assert totals(db).turns == 0
    first = WriteTurns(db)
    first.take()
    done = threading.Event()

    def other() -> None:
        second = WriteTurns(db)
        second.take()  # waits for the first to end
        second.end()
        done.set()

    thread = threading.Thread(target=other)
    thread.start()
    time.sleep(0.2)
    first.end()
    assert done.wait(5)
    thread.join(timeout=5)
    got = totals(db)
    assert got.turns == 2
    assert got.held >= 0.2  # the first held it while the second waited
    assert got.waited >= 0.15  # the second's wait
    assert totals(tmp_path / "other.db").turns == 0  # counted per file
