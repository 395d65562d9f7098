"""Shared fixtures: real SQLite files and a real PostgreSQL, never a mock of the database.

PostgreSQL tests use ``HAQQ_TEST_POSTGRES_URL``; without it they skip, except in CI (``CI=true``)
where a skipped PostgreSQL test is a failure.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text

from haqq.adapters.store import db

POSTGRES_URL = os.environ.get("HAQQ_TEST_POSTGRES_URL")
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def postgres_or_skip() -> str:
    if not POSTGRES_URL:
        if IN_CI:
            pytest.fail("CI=true but HAQQ_TEST_POSTGRES_URL is not set: PostgreSQL tests must run")
        pytest.skip("set HAQQ_TEST_POSTGRES_URL to run PostgreSQL tests")
    return db.database_url(POSTGRES_URL)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'haqq.db'}"


@contextmanager
def fresh_postgres_schema() -> Iterator[str]:
    """A fresh, empty PostgreSQL schema (its URL), dropped afterwards."""
    base = postgres_or_skip()
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base)
    try:
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    except Exception as exc:  # a configured but unreachable server is a failure, not a skip
        pytest.fail(f"PostgreSQL at {base} is not usable: {exc}")
    sep = "&" if "?" in base else "?"
    try:
        yield f"{base}{sep}options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL schema per test, dropped afterwards."""
    with fresh_postgres_schema() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Runs a test on both stores."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'haqq.db'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def engine(store_url: str) -> Iterator[Engine]:
    eng = db.make_engine(store_url)
    db.upgrade(eng)
    yield eng
    eng.dispose()
