"""``haqq payments`` and ``haqq bank serve``, through the real console script in a scratch
directory: a manual payment office making, approving (two people above the threshold) and
sending a run once, the bank's reports taken in (once, and only well-formed ones), the run
reconciled; and haqq paying through the simulated bank served over HTTP in another process."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine

from haqq.adapters.bank.iso20022 import credit_transfer_initiation
from haqq.adapters.bank.schemas import validate
from haqq.adapters.store import db
from haqq.adapters.store.schema import payment_files, payment_runs, payments
from haqq.bootstrap import AUTOMATIC_OFFICE
from haqq.domain.payments import end_to_end_id
from haqq.pipeline.work import BAKU
from tests.helpers import rows

SCRIPT = Path(sys.executable).with_name("haqq")
COMMAND = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "haqq.entrypoints.cli"]
XSD = Path(__file__).resolve().parents[1] / "data" / "iso20022"
POPULATION = 2_000
SEED = 7
#: The most payments per pain.001 file in the manual office (a run is cut into several).
FILE_MAX = 80
#: The manual office: people approve and send; every run is above the threshold (1 AZN).
MANUAL = {
    "HAQQ_PAYMENT_OFFICE": "manual",
    "HAQQ_APPROVAL_THRESHOLD_AZN": "1",
    "HAQQ_PAYMENT_FILE_MAX": str(FILE_MAX),
    "HAQQ_ISO20022_XSD": str(XSD),
}


def haqq(
    *args: str, cwd: Path, env: Mapping[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run ``haqq ARGS`` in ``cwd`` with no inherited HAQQ_* settings, only ``env``'s."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("HAQQ_")}
    clean["COLUMNS"] = "250"  # rich wraps at 80 columns when writing to a pipe
    clean.update(env or {})
    return subprocess.run(
        [*COMMAND, *args],
        cwd=cwd,
        env=clean,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    assert "Traceback" not in result.stderr
    return result.stdout


def ok_json(result: subprocess.CompletedProcess[str]) -> Any:
    return json.loads(ok(result))


def refused(result: subprocess.CompletedProcess[str], message: str) -> None:
    """The command exited 2 with ``message`` on stderr, and no traceback."""
    out = result.stdout + result.stderr
    assert result.returncode == 2, f"exit {result.returncode}\n{out}"
    assert message in " ".join(result.stderr.split()), out  # as one line, however rich wrapped it
    assert "Traceback" not in out


def country_rows(path: Path, sql: str, params: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
    with closing(sqlite3.connect(path)) as conn:
        conn.row_factory = sqlite3.Row
        return list(conn.execute(sql, params))


def statuses(engine: Engine) -> dict[str, int]:
    out: dict[str, int] = {}
    for p in rows(engine, payments):
        out[p["status"]] = out.get(p["status"], 0) + 1
    return out


@pytest.fixture(scope="module")
def country_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small country and the life events of its first half-year (``half.jsonl``)."""
    where = tmp_path_factory.mktemp("payments-cli")
    ok(haqq("country", "generate", "--population", str(POPULATION), "--seed", str(SEED), cwd=where))
    ok(haqq("country", "export", "events.jsonl", cwd=where))
    lines = (where / "events.jsonl").read_text(encoding="utf-8").splitlines()
    half = [line for line in lines if json.loads(line)["occurred_at"] < "2025-07-01"]
    assert 20 < len(half) < len(lines)
    (where / "half.jsonl").write_text("\n".join(half) + "\n", encoding="utf-8")
    return where


# --- a manual payment office ----------------------------------------------------------------------


@dataclass
class Office:
    """A scratch directory with its own country file and a store, run with a manual office."""

    cwd: Path
    env: dict[str, str]
    engine: Engine

    def __call__(self, *args: str) -> subprocess.CompletedProcess[str]:
        return haqq(*args, cwd=self.cwd, env=self.env)

    @property
    def country(self) -> Path:
        return self.cwd / "country.db"

    def bank_reports(self, sent: str) -> dict[str, sqlite3.Row]:
        """The reports the simulated bank made on the file ``sent``, by kind."""
        found = country_rows(
            self.country,
            "SELECT name, kind, ready_at, content, acked FROM bank_files_out WHERE answers = ?",
            (sent,),
        )
        return {r["kind"]: r for r in found}


@pytest.fixture
def office(country_dir: Path, store_url: str, tmp_path: Path) -> Iterator[Office]:
    # Its own copy of the country: the simulated bank writes into it.
    for name in ("country.db", "half.jsonl"):
        shutil.copyfile(country_dir / name, tmp_path / name)
    engine = db.make_engine(store_url)
    yield Office(tmp_path, {"HAQQ_DATABASE_URL": store_url, **MANUAL}, engine)
    engine.dispose()


def expected_runs(engine: Engine, day: str) -> dict[str, list[int]]:
    """The runs the scheduled payments make on ``day``: label -> [payments, total]."""
    out: dict[str, list[int]] = {}
    for p in rows(engine, payments, payments.c.status == "scheduled"):
        label = f"payroll {p['period']}" if p["source"] == "payroll" else f"daily {day}"
        n, total = out.get(label, [0, 0])
        out[label] = [n + 1, total + p["amount"]]
    return out


def test_a_manual_office_makes_approves_sends_once_and_reconciles_a_run(office: Office) -> None:
    engine = office.engine
    ok(office("db", "upgrade"))
    ok(office("ingest", "half.jsonl"))
    assert "done:" in ok(office("run"))
    # With people in the payment office, the worker schedules payments but sends none.
    assert set(statuses(engine)) == {"scheduled"}
    assert rows(engine, payment_runs) == [] and rows(engine, payment_files) == []
    day = datetime.now(BAKU).date().isoformat()
    expected = expected_runs(engine, day)
    n = sum(v[0] for v in expected.values())
    total = sum(v[1] for v in expected.values())
    assert n > FILE_MAX  # a run of more than one file

    # The preview writes nothing.
    preview = ok_json(office("payments", "run", "--dry-run", "--date", day, "--json"))
    assert preview["as_of"].startswith(f"{day}T23:59:59")
    assert preview["runs"] == expected
    assert preview["held"] == []
    assert sum(v[0] for v in preview["by_program"].values()) == n
    assert set(statuses(engine)) == {"scheduled"} and rows(engine, payment_runs) == []

    made = ok_json(office("payments", "run", "--date", day, "--by", "clerk", "--json"))["runs"]
    assert {r["label"]: [r["payments"], r["total"]] for r in made} == expected
    assert {(r["status"], r["needed"], tuple(r["approvals"])) for r in made} == {("draft", 2, ())}
    assert statuses(engine) == {"queued": n}
    # Nothing is due any more: a second run is made of nothing.
    assert ok_json(office("payments", "run", "--date", day, "--json")) == {"runs": []}

    first = str(made[0]["id"])
    refused(office("payments", "send", first), "is not approved: it needs 2 approval(s), has 0")
    assert rows(engine, payment_files) == []
    sent_names: list[str] = []
    for r in made:
        run = str(r["id"])
        once = ok_json(office("payments", "approve", run, "--by", "ana", "--json"))
        assert (once["status"], once["approvals"]) == ("draft", ["ana"])
        refused(
            office("payments", "approve", run, "--by", "ana"),
            "needs a second person: ana approved it already",
        )
        twice = ok_json(office("payments", "approve", run, "--by", "bob", "--json"))
        assert (twice["status"], twice["approvals"]) == ("approved", ["ana", "bob"])

        out = office.cwd / "out"
        sent = ok_json(office("payments", "send", run, "--by", "bob", "--out", str(out), "--json"))
        assert sent["run"] == r["id"]
        assert len(sent["files"]) == -(-r["payments"] // FILE_MAX)
        assert all(f["transactions"] <= FILE_MAX for f in sent["files"])
        assert sum(f["transactions"] for f in sent["files"]) == r["payments"]
        assert sum(f["total"] for f in sent["files"]) == r["total"]
        ours = sorted(
            end_to_end_id(p["entitlement_id"], p["period"], p["attempt"])
            for p in rows(engine, payments, payments.c.run_id == r["id"])
        )
        carried: list[str] = []
        for f in sent["files"]:
            content = (out / f"{f['name']}.xml").read_bytes()
            assert validate(content, "pain.001.001.09", XSD) is True
            parsed = credit_transfer_initiation(content)
            assert parsed.message_id == f["name"] and len(parsed.transfers) == f["transactions"]
            assert sum(t.amount_minor for t in parsed.transfers) == f["total"]
            carried += [t.end_to_end_id for t in parsed.transfers]
            sent_names.append(f["name"])
        assert sorted(carried) == ours
        refused(office("payments", "send", run), "a run is never sent twice")
    assert statuses(engine) == {"sent": n}
    assert {r["status"] for r in rows(engine, payment_runs)} == {"sent"}
    kept = rows(engine, payment_files)
    assert sorted((f["direction"], f["kind"], f["message_id"]) for f in kept) == sorted(
        ("out", "pain.001", name) for name in sent_names
    )
    # The bank took each file once (sending again sent nothing).
    taken = country_rows(office.country, "SELECT name, transactions FROM bank_files_in")
    assert sorted(r["name"] for r in taken) == sorted(sent_names)
    assert sum(r["transactions"] for r in taken) == n

    # The simulated bank answers on the real clock: its status report is ready two hours later.
    assert ok_json(office("payments", "fetch", "--json")) == {"imported": [], "refused": []}
    assert statuses(engine) == {"sent": n}

    # So the office takes the reports in from files, as the bank would hand them over.
    accepted = 0
    for name in sent_names:
        reports = office.bank_reports(name)
        assert set(reports) == {"pain.002", "camt.054"}
        status_file = f"{name}-status.xml"
        (office.cwd / status_file).write_bytes(reports["pain.002"]["content"])
        result = ok_json(office("payments", "import-status", status_file, "--json"))
        assert result["kind"] == "pain.002" and result["message_id"] == reports["pain.002"]["name"]
        assert (result["rejected"], result["settled"], result["validated"]) == (0, 0, True)
        accepted += result["accepted"]
        again = office("payments", "import-status", status_file)
        refused(
            again, f"{status_file}: pain.002 {reports['pain.002']['name']} was imported already"
        )
        refused(again, "nothing applied twice")
    assert accepted == n
    assert statuses(engine) == {"accepted": n}
    assert {r["status"] for r in rows(engine, payment_runs)} == {"sent"}  # not settled yet

    # Bad files are refused whole, saying why, and change nothing.
    (office.cwd / "truncated.xml").write_bytes(
        office.bank_reports(sent_names[0])["camt.054"]["content"][:500]
    )
    refused(
        office("payments", "import-status", "truncated.xml"),
        "truncated.xml: camt.054.001.08: not well-formed XML",
    )
    (office.cwd / "other.xml").write_bytes(b"<?xml version='1.0'?><Document><x/></Document>")
    refused(
        office("payments", "import-status", "other.xml"),
        "other.xml: not a bank report haqq reads: expected pain.002.001.10 or camt.054.001.08",
    )
    refused(office("payments", "import-status", "missing.xml"), "missing.xml: no such file")
    assert statuses(engine) == {"accepted": n}
    assert len(rows(engine, payment_files)) == 2 * len(sent_names)

    # A day later the bank's notifications of the bookings are ready; fetch takes them in.
    with closing(sqlite3.connect(office.country)) as conn, conn:
        conn.execute(
            "UPDATE bank_files_out SET ready_at = ? WHERE kind = 'camt.054'",
            ((datetime.now(BAKU) - timedelta(minutes=1)).isoformat(),),
        )
    fetched = ok_json(office("payments", "fetch", "--json"))["imported"]
    assert sorted(r["message_id"] for r in fetched) == sorted(
        office.bank_reports(name)["camt.054"]["name"] for name in sent_names
    )
    assert {(r["kind"], r["validated"]) for r in fetched} == {("camt.054", True)}
    assert sum(r["settled"] for r in fetched) == n
    assert all(office.bank_reports(name)["camt.054"]["acked"] == 1 for name in sent_names)
    assert all(p["settled_at"] is not None for p in rows(engine, payments))
    assert {r["status"] for r in rows(engine, payment_runs)} == {"closed"}
    assert ok_json(office("payments", "fetch", "--json")) == {"imported": [], "refused": []}

    rec = ok_json(office("payments", "reconcile", "--json"))
    assert set(rec["runs"]) == set(expected)
    for label, (count, amount) in expected.items():
        tally = rec["runs"][label]
        assert tally["status"] == "closed"
        assert (tally["payments"], tally["amount"]) == (count, amount)
        assert tally["sent"] == tally["accepted"] == tally["settled"] == [count, amount]
        assert tally["rejected"] == tally["open"] == [0, 0]
    assert rec["total"]["accepted"] == [n, total] and rec["total"]["open"] == [0, 0]
    assert rec["recoveries"] == {}

    listed = ok_json(office("payments", "list", "--json"))["runs"]
    assert sorted(
        (r["id"], r["label"], r["status"], r["payments"], r["total"], tuple(r["approvals"]))
        for r in listed
    ) == sorted(
        (r["id"], r["label"], "closed", r["payments"], r["total"], ("ana", "bob")) for r in made
    )


def test_a_recovery_is_closed_either_returned_or_written_off_with_a_reason(
    country_dir: Path, tmp_path: Path
) -> None:
    shutil.copyfile(country_dir / "country.db", tmp_path / "country.db")
    env = {"HAQQ_DATABASE_URL": f"sqlite:///{tmp_path / 'haqq.db'}"}
    ok(haqq("db", "upgrade", cwd=tmp_path, env=env))

    def recovery(*args: str) -> subprocess.CompletedProcess[str]:
        return haqq("payments", "recovery", "1", "--by", "ana", *args, cwd=tmp_path, env=env)

    say = "say either --returned or --write-off REASON"
    refused(recovery(), say)
    refused(recovery("--returned", "--write-off", "lost"), say)
    refused(recovery("--write-off", "  "), "a write-off says why: --write-off REASON")
    # Well formed, but there is no such claim.
    refused(recovery("--returned"), "no open recovery claim 1")
    refused(recovery("--write-off", "the person cannot be found"), "no open recovery claim 1")
    claims = haqq("payments", "recoveries", "--json", cwd=tmp_path, env=env)
    assert ok_json(claims) == {"claims": []}


# --- the bank over HTTP ---------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def bank_served(cwd: Path, country: Path) -> Iterator[str]:
    """``haqq bank serve`` of ``country`` in a process of its own; yields its URL."""
    port = free_port()
    log = (cwd / "bank.log").open("w")
    env = {k: v for k, v in os.environ.items() if not k.startswith("HAQQ_")}
    env["COLUMNS"] = "250"
    proc = subprocess.Popen(
        [*COMMAND, "bank", "serve", "--port", str(port), "--country", str(country)],
        cwd=cwd,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, f"the bank exited: {(cwd / 'bank.log').read_text()}"
            try:
                if httpx.get(f"{url}/healthz", timeout=1).json() == {
                    "status": "ok",
                    "bank": "HAQB",
                }:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "the bank did not answer /healthz"
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def test_haqq_pays_through_the_bank_served_over_http(country_dir: Path, tmp_path: Path) -> None:
    # The bank keeps its own copy of the country: what it received is there, and nothing of it
    # can come from an in-process bank writing into haqq's country file.
    shutil.copyfile(country_dir / "country.db", tmp_path / "country.db")
    shutil.copyfile(country_dir / "country.db", tmp_path / "bank.db")
    url = f"sqlite:///{tmp_path / 'haqq.db'}"
    with bank_served(tmp_path, tmp_path / "bank.db") as bank_url:
        env = {"HAQQ_DATABASE_URL": url, "HAQQ_BANK_URL": bank_url}
        ok(haqq("db", "upgrade", cwd=tmp_path, env=env))
        out = ok(haqq("replay", cwd=tmp_path, env=env, timeout=300))
        assert "replayed" in out
        # Every report the bank made was taken in and acknowledged.
        listed = httpx.get(
            f"{bank_url}/files", params={"as_of": "2030-01-01T00:00:00+04:00"}, timeout=10
        )
        assert listed.status_code == 200 and listed.json() == {"files": []}
    assert f"bank HAQB on {bank_url}/" in (tmp_path / "bank.log").read_text()

    engine = db.make_engine(url)
    try:
        paid = rows(engine, payments)
        assert paid and {p["status"] for p in paid} == {"accepted"}, statuses(engine)
        assert all(p["settled_at"] is not None for p in paid)
        made = rows(engine, payment_runs)
        assert made and {(r["status"], r["approved_by"]) for r in made} == {
            ("closed", AUTOMATIC_OFFICE)
        }
        files = rows(engine, payment_files)
    finally:
        engine.dispose()
    sent = {f["message_id"]: f for f in files if f["direction"] == "out"}
    assert {f["kind"] for f in sent.values()} == {"pain.001"}
    assert sum(f["transactions"] for f in sent.values()) == len(paid)
    answers = sorted((f["kind"], f["original_message_id"]) for f in files if f["direction"] == "in")
    assert [a for a in answers if a[0] == "pain.002"] == sorted(("pain.002", name) for name in sent)
    assert sum(1 for kind, _ in answers if kind == "camt.054") == len(sent)
    for f in list(sent.values())[:3]:
        assert validate(gzip.decompress(f["content"]), "pain.001.001.09", XSD) is True

    # The bank's own file holds what it received, file by file, and everything it answered acked.
    received = {
        r["name"]: r for r in country_rows(tmp_path / "bank.db", "SELECT * FROM bank_files_in")
    }
    assert set(received) == set(sent)
    assert all(received[name]["transactions"] == f["transactions"] for name, f in sent.items())
    assert {r["outcome"] for r in received.values()} == {"ACCP"}
    answered = country_rows(tmp_path / "bank.db", "SELECT kind, answers, acked FROM bank_files_out")
    assert sorted((r["kind"], r["answers"]) for r in answered if r["kind"] == "pain.002") == sorted(
        ("pain.002", name) for name in sent
    )
    assert {r["acked"] for r in answered} == {1}
    # haqq's country file was never the bank.
    assert (
        country_rows(tmp_path / "country.db", "SELECT count(*) AS n FROM bank_files_in")[0]["n"]
        == 0
    )


def test_bank_serve_without_a_country_file_exits_2(tmp_path: Path) -> None:
    refused(
        haqq("bank", "serve", "--country", "nowhere.db", cwd=tmp_path),
        "no country file at nowhere.db",
    )
