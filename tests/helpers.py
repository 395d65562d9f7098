"""Small helpers shared by the integration and end-to-end tests.

They read the synthetic country file directly with ``sqlite3`` (to pick families and people
with a given trait), take events in through :mod:`haqq.pipeline.intake`, run the worker on a
simulated clock and read the store's tables back.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import closing, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, Table, select

from haqq.adapters.bank.iso20022 import Debtor
from haqq.adapters.events.keys import EventKeys, SenderKey, SignerKey, WebhookSender
from haqq.bootstrap import Haqq, ManualClock
from haqq.country import generate_country
from haqq.domain.fin import FIN_ALPHABET
from haqq.domain.iban import make_iban
from haqq.pipeline import intake

#: The ministry's treasury account in the bank-file tests.
TEST_DEBTOR = Debtor(
    name="Əmək və Əhalinin Sosial Müdafiəsi Nazirliyi",
    iban=make_iban("AZ", "CTRE" + "0" * 19 + "1"),
    bic="CTREAZ22",
    org_id="1400057421",
)
#: A well-formed IBAN of the partner bank that no account has (the bank refuses it, AC01).
UNKNOWN_IBAN = make_iban("AZ", "HAQB" + "7" * 20)

#: The small country the bad-input tests run on. Seed 7 and 2,900 people give one mother who
#: dies the day after giving birth, with the child's father alive (the out-of-order case).
POPULATION = 2_900
SEED = 7


#: The programs of the foundation: enough to exercise every path of the pipeline.
FOUNDATION = ("birth_benefit", "disability_payment", "funeral_allowance", "stop_on_death", "disability_status_end")


def catalogue_of(folder: Path, programs: Sequence[str] = FOUNDATION) -> Path:
    """A catalogue directory holding only ``programs`` (and the shared checks)."""
    from haqq.rules.catalogue import DEFAULT_DIRECTORY, SHARED_CHECKS

    folder.mkdir(parents=True, exist_ok=True)
    for name in (SHARED_CHECKS, *(f"{p}.yaml" for p in programs)):
        (folder / name).write_bytes((DEFAULT_DIRECTORY / name).read_bytes())
    return folder


def generated_country(factory: pytest.TempPathFactory, population: int, seed: int) -> Path:
    """A synthetic country of 2025 in a module-scoped temporary folder."""
    path = factory.mktemp("country") / "country.db"
    generate_country(path, population=population, seed=seed, year=2025)
    return path


def country_copy(source: Path, folder: Path) -> Path:
    """A private copy of a country file: the simulated bank and gateway write into it, and one
    bank serving several tests' stores would answer one store's payments with another's."""
    copy = folder / "country.db"
    shutil.copyfile(source, copy)
    return copy


def country_query(country: Path, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
    """Rows of a read-only query on the country file."""
    with closing(sqlite3.connect(f"file:{country}?mode=ro", uri=True)) as conn:
        conn.row_factory = sqlite3.Row
        return list(conn.execute(sql, params))


def country_event(country: Path, fin: str, event_type: str) -> dict[str, Any]:
    """The country's event of ``event_type`` about ``fin``, as the JSON object intake takes."""
    rows = country_query(
        country,
        "SELECT id, type, fin, occurred_at, payload, source FROM life_events "
        "WHERE fin = ? AND type = ? ORDER BY occurred_at",
        (fin, event_type),
    )
    assert rows, f"the country has no {event_type} event about {fin}"
    return event_json(rows[0])


def event_json(row: sqlite3.Row) -> dict[str, Any]:
    return {
        "source": row["source"],
        "event_id": row["id"],
        "type": row["type"],
        "fin": row["fin"],
        "occurred_at": row["occurred_at"],
        "payload": json.loads(row["payload"]),
    }


def unused_fins(country: Path, n: int) -> list[str]:
    """``n`` well-formed FINs that no person of the country has."""
    taken = {r["fin"] for r in country_query(country, "SELECT fin FROM persons")}
    out: list[str] = []
    for i in range(len(FIN_ALPHABET) ** 2):
        fin = "ZZZZZ" + FIN_ALPHABET[i // len(FIN_ALPHABET)] + FIN_ALPHABET[i % len(FIN_ALPHABET)]
        if fin not in taken:
            out.append(fin)
        if len(out) == n:
            return out
    raise AssertionError("no unused FIN found")


def take_in(app: Haqq, items: Iterable[tuple[str, Any]], at: datetime) -> intake.IntakeReport:
    """Parse ``(where, raw)`` items and store the good ones, as ``haqq ingest`` does."""
    report = intake.IntakeReport()
    parsed = intake.parse_all(items, report)
    with app.engine.begin() as conn:
        report.merge(intake.store(conn, parsed, received_at=at, wall=app.wall()))
    return report


def take_events(app: Haqq, raws: Sequence[dict[str, Any]], at: datetime) -> intake.IntakeReport:
    return take_in(app, ((f"event {i + 1}", raw) for i, raw in enumerate(raws)), at)


def run_at(app: Haqq, *moments: datetime) -> None:
    """Run the pipeline until idle at each simulated moment in turn."""
    for moment in moments:
        app.worker(ManualClock(moment)).run_until_idle()


def rows(engine: Engine, table: Table, *where: Any) -> list[dict[str, Any]]:
    """Every row of ``table`` (matching ``where``) as plain dicts."""
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(select(table).where(*where))]


def write_jsonl(path: Path, lines: Iterable[str | dict[str, Any]]) -> Path:
    """A JSONL file of the given lines (dicts are encoded; strings are written as they are)."""
    with path.open("w", encoding="utf-8") as fh:
        for line in lines:
            fh.write((line if isinstance(line, str) else json.dumps(line, ensure_ascii=False)) + "\n")
    return path


# ---- the keys of the event-intake tests: a civil registry signing SPDCI notifications, and
# OpenCRVS signing its webhooks -----------------------------------------------------------------

EVENTS_NOW = datetime(2025, 3, 1, 10, 0, tzinfo=UTC)
CIVIL_REGISTRY_SIGNER = SignerKey(
    sender_id="cr.gov.az", key_id="s1", algorithm="hmac-sha256", key="civil-registry-test-secret"
)
WEBHOOK_SECRET = "opencrvs-test-shared-secret"
EVENT_KEYS = EventKeys(
    receiver_id="haqq.gov.az",
    spdci={"cr.gov.az": SenderKey(source="civil_registry", key_id="s1", algorithm="hmac-sha256",
                                  key=CIVIL_REGISTRY_SIGNER.key)},
    webhooks={"opencrvs": WebhookSender(source="opencrvs", secret=WEBHOOK_SECRET)},
)


@contextmanager
def serving(app: Any, **config: Any) -> Iterator[int]:
    """An ASGI app served by uvicorn in a thread on a free loopback port (yields the port);
    ``config``: more of ``uvicorn.Config`` (TLS files, say)."""
    import socket
    import threading
    import time

    import uvicorn

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", **config))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("the test server did not start")
        time.sleep(0.02)
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(timeout=10)
