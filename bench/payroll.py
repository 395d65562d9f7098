"""``haqq bench payroll``: a monthly payroll for a million recurring entitlements, from the
entitlements in the store to pain.001 files written and validated against the official XSD.

Set-up (not timed): an empty store holding ``entitlements`` active monthly entitlements, each
with its case and an account at the partner bank. Timed, in the order the payment office works:
the month's payments made (``payroll.run_month``), gathered into the payroll run (unpayable ones
held), approved by two people, sent (files written into a drop folder the bank collects, kept as
evidence, the payments marked sent) and every file validated against ``pain.001.001.09.xsd``.
"""

from __future__ import annotations

import os
import platform
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, cast

from sqlalchemy import insert

from haqq.adapters.bank.schemas import schema_dir, validate
from haqq.adapters.store import bulk, db
from haqq.adapters.store.schema import accounts, cases, entitlements, events
from haqq.bootstrap import Settings, build
from haqq.domain.iban import make_iban
from haqq.pipeline import payroll, runs
from haqq.pipeline.work import BAKU
from haqq.ports import Bank
from haqq.replay import reset_store

PERIOD = date(2026, 3, 1)
XSD = Path(__file__).resolve().parents[1] / "tests" / "data" / "iso20022"
CHUNK = 50_000
NAMES = ("Aysel Məmmədova", "Rəşad Əliyev", "Günay Hüseynova", "Elvin Quliyev", "Nigar İsmayılova")


class DropFolder:
    """The bank's side of a host-to-host exchange: each file sent lands in a folder."""

    name = "HAQB"

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.files: list[Path] = []

    def send_file(self, name: str, content: bytes, *, at: datetime) -> None:
        path = self.folder / f"{name}.xml"
        path.write_bytes(content)
        self.files.append(path)


def _fin(i: int) -> str:
    digits = "0123456789ABCDEFGHJKLMNPQRSTUVWXYZ"
    out = []
    for _ in range(7):
        i, r = divmod(i, len(digits))
        out.append(digits[r])
    return "".join(reversed(out))


def seed_store(engine: Any, n: int, progress: Callable[[int], None] | None = None) -> None:
    """``n`` active monthly entitlements, their cases and accounts (one person each)."""
    created = datetime(2026, 1, 10, 9, tzinfo=BAKU)
    with engine.begin() as conn:
        event_id = conn.execute(
            insert(events).values(
                source="bench", source_event_id="payroll", type="disability_status_granted",
                fin="0000000", occurred_at=created, payload={}, received_at=created,
                received_wall=created, status="triggered",
            ).returning(events.c.id)
        ).scalar_one()
    for start in range(0, n, CHUNK):
        part = range(start, min(start + CHUNK, n))
        ids = [f"C{i:019X}" for i in part]
        fins = [_fin(i) for i in part]
        with engine.begin() as conn:
            bulk.insert_rows(conn, cases, [
                {"id": c, "program_id": "disability_payment", "program_version": 1,
                 "catalogue_version": "bench", "pipeline_version": "bench", "event_id": event_id,
                 "subject_fin": f, "beneficiary_fin": f, "state": "closed", "due_at": None,
                 "created_at": created, "created_wall": created, "updated_at": created}
                for c, f in zip(ids, fins, strict=True)
            ])
            bulk.insert_rows(conn, entitlements, [
                {"id": c, "program_id": "disability_payment", "once_key": f, "fin": f, "subject_fin": f,
                 "schedule": "monthly", "amount": 20_000 + (i % 7) * 5_000, "start_date": date(2026, 1, 10),
                 "end_date": None, "status": "active", "ended_reason": None, "created_at": created}
                for i, c, f in zip(part, ids, fins, strict=True)
            ])
            bulk.insert_rows(conn, accounts, [
                {"fin": f, "bank": "HAQB", "iban": make_iban("AZ", f"HAQB9{i:019d}"), "status": "existing",
                 "request_key": None, "card_status": "issued", "refusal": None,
                 "holder": NAMES[i % len(NAMES)], "requested_at": None, "answered_at": created}
                for i, f in zip(part, fins, strict=True)
            ])
        if progress:
            progress(part.stop)
    if engine.dialect.name == "postgresql":
        # The planner needs the statistics autovacuum would gather after such a load.
        with engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE cases, entitlements, accounts, payments")


@contextmanager
def _phase(timings: dict[str, float], name: str) -> Iterator[None]:
    began = time.perf_counter()
    yield
    timings[name] = round(time.perf_counter() - began, 3)


def run_bench(*, entitlements_n: int, file_max: int, progress: Callable[[str, int, int], None] | None = None) -> dict[str, Any]:
    xsd = schema_dir() or XSD
    with tempfile.TemporaryDirectory(prefix="haqq-payroll-") as tmp:
        folder = Path(tmp)
        url = os.environ.get("HAQQ_DATABASE_URL") or f"sqlite:///{folder / 'haqq.db'}"
        app = build(Settings(database_url=url, country=folder / "country.db", payment_file_max=file_max))
        db.upgrade(app.engine)
        reset_store(app)
        began = time.perf_counter()
        seed_store(app.engine, entitlements_n,
                   (lambda done: progress("set-up", done, entitlements_n)) if progress else None)
        setup = time.perf_counter() - began
        office = app.office()
        drop = folder / "to-bank"
        drop.mkdir()
        bank = DropFolder(drop)
        now = datetime.combine(PERIOD, datetime.min.time(), tzinfo=BAKU) + timedelta(hours=10)
        timings: dict[str, float] = {}
        began = time.perf_counter()
        with app.engine.begin() as conn:
            with _phase(timings, "payments_made"):
                made = payroll.run_month(conn, PERIOD, now)
            with _phase(timings, "run_made"):
                (run,) = runs.make_runs(conn, now, now, by="payment office", office=office,
                                        kinds=frozenset({"payroll"}))
            with _phase(timings, "approved"):
                runs.approve(conn, run.id, by="first approver", now=now)
                runs.approve(conn, run.id, by="second approver", now=now)
            with _phase(timings, "sent"):
                files = runs.send(conn, run.id, by="payment office", now=now, office=office)
        with _phase(timings, "delivered"):
            runs.deliver(app.engine, cast(Bank, bank), lambda: now)
        with _phase(timings, "validated"):
            for i, path in enumerate(bank.files, start=1):
                validate(path.read_bytes(), "pain.001.001.09", xsd)
                if progress:
                    progress("validate", i, len(bank.files))
        seconds = time.perf_counter() - began
        written = sum(p.stat().st_size for p in bank.files)
        store = app.engine.dialect.name
        app.engine.dispose()
    return {
        "store": store,
        "entitlements": entitlements_n,
        "payments": made or 0,
        "run_payments": run.payments,
        "total_azn": f"{run.total // 100}.{run.total % 100:02d}",
        "files": len(files),
        "file_max": file_max,
        "megabytes": round(written / 1e6, 1),
        "seconds": round(seconds, 3),
        "payments_per_second": round((made or 0) / seconds, 1),
        "phases": timings,
        "setup_seconds": round(setup, 3),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
    }
