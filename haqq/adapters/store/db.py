"""Engines and migrations: a SQLite file by default, PostgreSQL when the URL says so."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Any

import orjson
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event, make_url

from haqq.adapters.turns import TurnTotals, WriteTurns, totals
from haqq.domain.errors import HaqqError

MIGRATIONS = Path(__file__).parent / "migrations"
DEFAULT_SQLITE = "haqq.db"


class StoreNotReady(HaqqError):
    """The database is not at the schema this haqq needs."""


def database_url(url: str | None = None) -> str:
    """The URL in force: the argument, else ``HAQQ_DATABASE_URL``, else ``sqlite:///haqq.db``.

    A plain PostgreSQL URL is given the psycopg 3 driver.
    """
    url = url or os.environ.get("HAQQ_DATABASE_URL") or f"sqlite:///{DEFAULT_SQLITE}"
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            url = "postgresql+psycopg://" + url[len(prefix) :]
    return url


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # 16 KB pages (taken only by a new, empty file): a commit writes each page it changed to
    # the WAL, and the indexes on FINs change pages all over; fewer, larger pages take half the
    # time to write.
    cursor.execute("PRAGMA page_size=16384")
    cursor.execute("PRAGMA journal_mode=WAL")
    # NORMAL in WAL mode: a commit survives a crash of haqq; only a checkpoint waits for the
    # disk. Checkpoints every 64 MB of WAL rather than every 4 MB: far fewer waits.
    cursor.execute("PRAGMA synchronous=NORMAL")
    size = cursor.execute("PRAGMA page_size").fetchone()[0]
    cursor.execute(f"PRAGMA wal_autocheckpoint={64 * 1024 * 1024 // size}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA cache_size=-65536")
    cursor.close()


class _TurnTakingConnection(sqlite3.Connection):
    """A SQLite connection whose write transactions take turns (see :mod:`haqq.adapters.turns`):
    the turn is taken before ``BEGIN IMMEDIATE`` and given back after the commit or rollback."""

    turns: WriteTurns = WriteTurns(None)

    def commit(self) -> None:
        try:
            super().commit()
        finally:
            self.turns.end()

    def rollback(self) -> None:
        try:
            super().rollback()
        finally:
            self.turns.end()

    def close(self) -> None:
        try:
            super().close()
        finally:
            self.turns.end()


def _json_dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def make_engine(url: str | None = None) -> Engine:
    url = database_url(url)
    json_args: dict[str, Any] = {"json_serializer": _json_dumps, "json_deserializer": orjson.loads}
    if url.startswith("sqlite"):
        engine = create_engine(
            url,
            connect_args={"isolation_level": None, "factory": _TurnTakingConnection},
            **json_args,
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        path = make_url(url).database
        in_memory = not path or path == ":memory:" or "mode=memory" in url

        @event.listens_for(engine, "connect")
        def _turns(dbapi_connection: Any, _record: Any) -> None:
            if isinstance(dbapi_connection, _TurnTakingConnection):
                dbapi_connection.turns = WriteTurns(None if in_memory else path)

        # pysqlite's own transaction handling is off; BEGIN IMMEDIATE takes the write lock at
        # once, so two processes never deadlock upgrading a read lock. Connections opened with
        # the execution option read_only=True only read, and take no write lock.
        @event.listens_for(engine, "begin")
        def _begin(conn: Any) -> None:
            read_only = conn.get_execution_options().get("read_only", False)
            if not read_only:
                dbapi = conn.connection.dbapi_connection
                if isinstance(dbapi, _TurnTakingConnection):
                    dbapi.turns.take()
            conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")

        return engine
    return create_engine(url, pool_pre_ping=True, **json_args)


def write_turns(engine: Engine) -> TurnTotals | None:
    """This process's turns at the write lock of ``engine``'s SQLite file (None: another
    store, or a database in memory, which takes no turns)."""
    if engine.dialect.name != "sqlite":
        return None
    path = engine.url.database
    if not path or path == ":memory:" or "mode=memory" in str(engine.url):
        return None
    return totals(path)


def _config(engine: Engine) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to ``revision`` (the newest by default)."""
    cfg = _config(engine)
    with engine.begin() as connection:
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, revision)


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def head_revision() -> str | None:
    return ScriptDirectory(str(MIGRATIONS)).get_current_head()


def ensure_ready(engine: Engine) -> None:
    """Refuse to run on a database whose schema is not the newest."""
    current = current_revision(engine)
    if current != head_revision():
        raise StoreNotReady(
            f"the database is at schema {current or 'none'}, haqq needs {head_revision()}: "
            "run 'haqq db upgrade'"
        )
