"""The message log's hash chain, on both stores: appended in order, verified, and a changed, a
removed or a reordered entry found by ``verify`` (and by ``haqq audit verify``)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, delete, update
from typer.testing import CliRunner

from haqq.adapters.store import messagelog
from haqq.adapters.store.schema import message_log
from haqq.entrypoints.cli import app
from haqq.ports import Exchange

T0 = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)


def exchange(i: int, *, outcome: str = "ok") -> Exchange:
    return Exchange(
        message_id=f"m-{i}", direction="out", client="AZ/GOV/MLSPP/HAQQ",
        service="AZ/GOV/MOJ/CIVIL-REGISTRY/person", user="haqq", issue=f"case-{i}",
        at=T0 + timedelta(seconds=i, microseconds=7), outcome=outcome, status=200,
        request_hash=f"hash{i}==", persons=i, detail=None,
    )


def fill(engine: Engine, n: int) -> None:
    with engine.begin() as conn:
        messagelog.append(conn, [exchange(i) for i in range(1, n + 1)])


def test_an_untouched_chain_holds(engine: Engine) -> None:
    fill(engine, 5)
    with engine.begin() as conn:
        messagelog.append(conn, [exchange(6, outcome="Server.ServerProxy.NetworkError")])
    with engine.connect() as conn:
        result = messagelog.verify(conn)
        rows = conn.execute(message_log.select().order_by(message_log.c.seq)).mappings().all()
    assert result.ok and result.entries == 6
    assert [r["seq"] for r in rows] == [1, 2, 3, 4, 5, 6]
    assert rows[0]["prev_hash"] == messagelog.GENESIS
    assert all(rows[i]["prev_hash"] == rows[i - 1]["hash"] for i in range(1, 6))
    assert result.head == (6, rows[-1]["hash"])
    assert rows[5]["outcome"] == "Server.ServerProxy.NetworkError"
    assert rows[2]["at"] == T0 + timedelta(seconds=3, microseconds=7)


def test_a_changed_entry_is_named(engine: Engine) -> None:
    fill(engine, 6)
    with engine.begin() as conn:
        conn.execute(update(message_log).where(message_log.c.seq == 4).values(user_id="someone"))
        result = messagelog.verify(conn)
    assert not result.ok
    assert result.bad_seq == 4 and result.entries == 3
    assert "changed" in (result.reason or "")


def test_a_removed_entry_is_named(engine: Engine) -> None:
    fill(engine, 6)
    with engine.begin() as conn:
        conn.execute(delete(message_log).where(message_log.c.seq == 3))
        result = messagelog.verify(conn)
    assert not result.ok and result.bad_seq == 4
    assert "missing" in (result.reason or "")


def test_a_rewritten_tail_with_new_hashes_is_still_caught_at_its_link(engine: Engine) -> None:
    """Whoever changes an entry and recomputes its hash breaks the next entry's prev_hash."""
    fill(engine, 4)
    with engine.begin() as conn:
        row = dict(conn.execute(message_log.select().where(message_log.c.seq == 2)).mappings().one())
        row["outcome"] = "ok-but-forged"
        forged = messagelog.entry_hash(row["prev_hash"], row)
        conn.execute(update(message_log).where(message_log.c.seq == 2).values(outcome="ok-but-forged", hash=forged))
        result = messagelog.verify(conn)
    assert result.bad_seq == 3 and "prev_hash" in (result.reason or "")


def test_concurrent_appenders_keep_one_chain(engine: Engine) -> None:
    """Two writers appending at once (PostgreSQL: two transactions; SQLite: its one writer)
    leave one unbroken chain with every entry."""
    errors: list[BaseException] = []

    def writer(base: int) -> None:
        try:
            for k in range(10):
                with engine.begin() as conn:
                    messagelog.append(conn, [exchange(base + k * 3 + j) for j in range(3)])
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(b,)) for b in (1000, 2000)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    with engine.connect() as conn:
        result = messagelog.verify(conn)
    assert result.ok and result.entries == 60


def test_audit_verify_command(engine: Engine, store_url: str) -> None:
    fill(engine, 3)
    runner = CliRunner()
    ok = runner.invoke(app, ["audit", "verify", "--database-url", store_url, "--json"])
    assert ok.exit_code == 0, ok.output
    assert '"ok": true' in ok.output and '"entries_verified": 3' in ok.output
    with engine.begin() as conn:
        conn.execute(update(message_log).where(message_log.c.seq == 2).values(persons=99))
    bad = runner.invoke(app, ["audit", "verify", "--database-url", store_url])
    assert bad.exit_code == 1
    assert "#2" in bad.output
