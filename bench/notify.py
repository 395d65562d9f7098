"""``haqq bench notify``: compose and submit 100,000 notifications in mixed languages.

Set-up (not timed): an empty store holding ``n`` closed cases (one person each) and a small
synthetic country whose people's phones and languages the messages go to (its file is also the
in-process gateway's).

Timed:

- **compose**: for each case, the situation's text in the person's language from the SMS
  catalogue (granted, card ready, payment sent, consent request, reminder, may claim, stopped,
  declined), its encoding and SMS parts counted, and the notification written to the outbox;
- **submit**: the outbox drained as the worker drains it: claimed in batches, handed to the
  in-process gateway (which splits, accepts and schedules receipts), the answers recorded
  with every part's id.

``notifications_per_second`` is ``n`` over both. With ``--gateway kannel``, a real Kannel
(bearerbox, smsbox and a fake SMSC, from Debian's ``kannel`` and ``kannel-extras``) is started
on loopback and ``--kannel-messages`` messages go through it: its rate and the delivery-report
round trip (from ``sendsms``'s answer to the report stored by haqq's endpoint).
"""

from __future__ import annotations

import os
import platform
import sqlite3
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from bench.payroll import seed_store
from haqq.adapters.store import bulk, db
from haqq.adapters.store.schema import notifications
from haqq.bootstrap import Settings, build
from haqq.domain import sms
from haqq.pipeline import texting
from haqq.pipeline.work import BAKU
from haqq.replay import reset_store
from haqq.rules.messages import default_messages, reply_code

#: The mix of situations, by weight (grants dominate, as in DOST's day).
MIX = (
    ("granted", 30), ("card_ready", 15), ("payment_sent", 25), ("consent_request", 10),
    ("reminder", 5), ("may_claim", 8), ("stopped", 4), ("declined", 3),
)
PROGRAMS = ("birth_benefit", "disability_payment", "old_age_pension", "child_care_allowance",
            "survivors_pension", "unemployment_insurance", "funeral_allowance")
BATCH = 10_000


def _people(country: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(country) as conn:
        return [(p, lang) for p, lang in conn.execute(
            "SELECT phone, language FROM persons WHERE phone IS NOT NULL ORDER BY fin LIMIT 5000")]


def run_bench(
    *,
    n: int,
    gateway: str = "simulated",
    shards: int = 1,
    kannel_messages: int = 2_000,
    progress: Callable[[str, int, int], None] | None = None,
) -> dict[str, Any]:
    from haqq.country import generate_country

    figures: dict[str, Any] = {"notifications": n}
    with tempfile.TemporaryDirectory(prefix="haqq-notify-") as tmp:
        folder = Path(tmp)
        generate_country(folder / "country.db", population=2_000, seed=7, year=2025)
        url = os.environ.get("HAQQ_DATABASE_URL") or f"sqlite:///{folder / 'haqq.db'}"
        app = build(Settings(database_url=url, country=folder / "country.db"))
        db.upgrade(app.engine)
        reset_store(app)
        seed_store(app.engine, n, (lambda done: progress("set-up", done, n)) if progress else None)
        with app.engine.connect() as conn:
            ids = [r[0] for r in conn.exec_driver_sql("SELECT id, beneficiary_fin FROM cases ORDER BY id")]
            fins: dict[str, str] = dict(conn.exec_driver_sql("SELECT id, beneficiary_fin FROM cases").all())
        people = _people(folder / "country.db")
        catalogue = default_messages()
        situations = [s for s, w in MIX for _ in range(w)]
        at = datetime(2026, 3, 2, 10, tzinfo=BAKU)

        # --- compose: texts in the person's language, parts counted, written to the outbox ---
        began = time.perf_counter()
        rows: list[dict[str, Any]] = []
        languages: Counter[str] = Counter()
        parts: Counter[int] = Counter()
        encodings: Counter[str] = Counter()
        written = 0
        for i, case_id in enumerate(ids):
            situation = situations[i % len(situations)]
            phone, language = people[i % len(people)]
            lang = catalogue.language(language)
            code = reply_code(case_id) if situation in ("granted", "card_ready", "consent_request", "reminder") else None
            text = catalogue.render(
                situation, lang, PROGRAMS[i % len(PROGRAMS)], amount=20_000 + (i % 40) * 2_500,
                case=case_id, code=code or "", bank="Kapital Bank", period="2026-02", date="2026-03-02",
            )
            encoded = sms.encode(text)
            languages[lang] += 1
            parts[encoded.segments] += 1
            encodings[encoded.encoding] += 1
            rows.append({"key": f"{case_id}:{situation}:0", "case_id": case_id, "fin": fins[case_id],
                         "phone": phone, "language": lang, "kind": situation, "text": text,
                         "reply_code": code,
                         "due_at": at, "status": "pending"})
            if len(rows) == BATCH or i == len(ids) - 1:
                with app.engine.begin() as conn:
                    bulk.insert_rows(conn, notifications, rows)
                written += len(rows)
                rows = []
                if progress:
                    progress("compose", written, n)
        compose = time.perf_counter() - began

        # --- submit: the outbox drained to the in-process gateway, answers recorded ---
        policy = texting.SmsPolicy()
        now = at + timedelta(minutes=1)
        done: Counter[str] = Counter()

        def drain(shard: int) -> None:
            # As a worker of ``shards`` on the embedded store does: its shard's due messages read
            # outside the write lock, handed to the gateway, the answers written in a short turn.
            while True:
                with app.engine.connect() as reading:
                    due = texting.due(reading, now, BATCH, (shard, shards))
                if not due:
                    return
                offered = texting.submit(app.sms, due)
                with app.engine.begin() as conn:
                    done["sent"] += texting.record(conn, due, offered, gateway=app.sms.name, now=now,
                                                   at=datetime.now(BAKU), policy=policy)
                if progress:
                    progress("submit", done["sent"], n)

        began = time.perf_counter()
        with ThreadPoolExecutor(shards) as pool:
            list(pool.map(drain, range(shards)))
        submit = time.perf_counter() - began
        with app.engine.connect() as conn:
            by_status: dict[str, int] = dict(conn.exec_driver_sql("SELECT status, count(*) FROM notifications GROUP BY status").all())
            stored_parts = conn.exec_driver_sql("SELECT count(*) FROM sms_parts").scalar_one()
        figures.update({
            "compose_seconds": round(compose, 3),
            "submit_seconds": round(submit, 3),
            "notifications_per_second": round(n / (compose + submit)),
            "compose_per_second": round(n / compose),
            "submit_per_second": round(n / submit),
            "languages": dict(sorted(languages.items())),
            "encodings": dict(sorted(encodings.items())),
            "parts_per_message": {str(k): v for k, v in sorted(parts.items())},
            "sms_parts": stored_parts,
            "statuses": by_status,
            "store": app.engine.dialect.name,
            "senders": shards,
        })
        app.engine.dispose()
    if gateway == "kannel":
        from haqq.adapters.sms.kannel_box import measure_kannel

        if progress:
            progress("kannel", 0, kannel_messages)
        m = measure_kannel(kannel_messages)
        figures.update({
            "kannel_messages": m.messages,
            "kannel_accepted": m.accepted,
            "kannel_messages_per_second": round(m.messages_per_second, 1),
            "kannel_dlr_median_ms": round(m.dlr_median_ms, 1),
            "kannel_dlr_p95_ms": round(m.dlr_p95_ms, 1),
            "kannel_receipts": m.receipts,
        })
    figures["machine"] = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    return figures
