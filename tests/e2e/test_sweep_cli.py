"""The sweep's commands end to end: a replayed store, a sweep, cases opened, a what-if, benches."""

from __future__ import annotations

import importlib.util
import shutil
from datetime import timedelta
from pathlib import Path

import polars as pl
import pytest
import typer
from sqlalchemy import delete, select, update
from typer.testing import CliRunner

from haqq.adapters.store import db
from haqq.adapters.store.schema import entitlements, events, payments, recovery_claims
from haqq.bootstrap import Settings, build
from haqq.entrypoints import cli_sweep
from haqq.replay import replay
from tests.helpers import generated_country

DAY = "2025-12-31"
runner = CliRunner()


def _app() -> typer.Typer:
    app = typer.Typer()
    app.command("sweep")(cli_sweep.sweep_command)
    app.command("whatif")(cli_sweep.whatif_command)
    app.command("bench-sweep")(cli_sweep.bench_sweep)
    app.command("bench-explain")(cli_sweep.bench_explain)
    return app


@pytest.fixture(scope="module")
def replayed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A country and a store after the pipeline replayed 2025."""
    country_src = generated_country(tmp_path_factory, population=4_000, seed=11)
    folder = tmp_path_factory.mktemp("store")
    country = folder / "country.db"
    shutil.copyfile(country_src, country)
    shutil.copytree(country_src.with_suffix(".registry"), country.with_suffix(".registry"))
    url = f"sqlite:///{folder / 'haqq.db'}"
    app = build(Settings(database_url=url, country=country, batch_size=300))
    db.upgrade(app.engine)
    replay(app, year=2025, tick=timedelta(days=7))
    app.engine.dispose()
    return country, url


def _sweep(country: Path, url: str, out: Path, *extra: str) -> pl.DataFrame:
    result = runner.invoke(
        _app(), ["sweep", "--date", DAY, "--country", str(country), "--database-url", url, "--out", str(out), *extra]
    )
    assert result.exit_code == 0, result.output
    assert "Sweep as of 2025-12-31" in result.output
    return pl.read_parquet(out.with_suffix(".parquet"))


def test_the_sweep_finds_what_the_store_lacks_or_gets_wrong(replayed: tuple[Path, str], tmp_path: Path) -> None:
    country, url = replayed
    engine = db.make_engine(url)
    with engine.connect() as conn:
        granted = {(r.program_id, r.subject_fin) for r in conn.execute(select(entitlements))}
    assert granted
    first = _sweep(country, url, tmp_path / "first")
    missed = first.filter(pl.col("finding") == "missed_right")
    # Nothing the pipeline granted is a missed right.
    assert not granted & set(zip(missed["program"], missed["subject_fin"], strict=True))
    assert (tmp_path / "first.csv").exists()
    # A running monthly entitlement: delete one, change the amount of another.
    with engine.begin() as conn:
        rows = conn.execute(
            select(entitlements.c.id, entitlements.c.subject_fin, entitlements.c.amount)
            .where(entitlements.c.program_id == "disability_payment", entitlements.c.status == "active",
                   entitlements.c.end_date.is_(None))
            .order_by(entitlements.c.id)
        ).all()
        assert len(rows) >= 2
        gone, changed = rows[0], rows[1]
        paid = select(payments.c.id).where(payments.c.entitlement_id == gone.id)
        conn.execute(delete(recovery_claims).where(recovery_claims.c.payment_id.in_(paid)))
        conn.execute(delete(payments).where(payments.c.entitlement_id == gone.id))
        conn.execute(delete(entitlements).where(entitlements.c.id == gone.id))
        conn.execute(update(entitlements).where(entitlements.c.id == changed.id).values(amount=changed.amount + 1))
    second = _sweep(country, url, tmp_path / "second")
    found = {(r["finding"], r["subject_fin"]) for r in second.filter(pl.col("program") == "disability_payment").iter_rows(named=True)}
    assert ("missed_right", gone.subject_fin) in found
    assert ("wrong_amount", changed.subject_fin) in found
    row = second.filter((pl.col("finding") == "wrong_amount") & (pl.col("subject_fin") == changed.subject_fin)).row(0, named=True)
    assert row["assigned_amount"] == changed.amount + 1 and row["computed_amount"] == changed.amount
    # Opening cases for the missed rights is idempotent.
    n_missed = second.filter(pl.col("finding") == "missed_right").height
    _sweep(country, url, tmp_path / "third", "--open-cases")
    _sweep(country, url, tmp_path / "fourth", "--open-cases")
    with engine.connect() as conn:
        opened = conn.execute(select(events.c.payload).where(events.c.source == "sweep")).scalars().all()
    assert len(opened) == n_missed > 0
    assert {"program", "found_by", "date", "subject"} <= set(opened[0])
    assert any(p["program"] == "disability_payment" and p["subject"] == gone.subject_fin for p in opened)
    engine.dispose()


def _whatif(country: Path, tmp_path: Path, *sets: str) -> pl.DataFrame:
    args = ["whatif", "--date", DAY, "--country", str(country), "--out", str(tmp_path / "w")]
    for item in sets:
        args += ["--set", item]
    result = runner.invoke(_app(), args)
    assert result.exit_code == 0, result.output
    return pl.read_parquet(tmp_path / "w.parquet")


def test_whatif_costs_a_reform(replayed: tuple[Path, str], tmp_path: Path) -> None:
    country, _ = replayed
    same = _whatif(country, tmp_path, "child_care_allowance.income_per_member_threshold=24600")
    assert same["yearly_cost_delta"].to_list() == [0] * same.height
    assert same["beneficiaries_delta"].to_list() == [0] * same.height
    raised = _whatif(country, tmp_path, "income_per_member_threshold=60000")
    care = raised.filter(pl.col("program") == "child_care_allowance").row(0, named=True)
    assert care["yearly_cost_delta"] > 0 and care["beneficiaries_delta"] > 0
    assert care["yearly_cost_delta"] == care["beneficiaries_delta"] * 6000 * 12
    others = raised.filter(pl.col("program") != "child_care_allowance")
    assert others["yearly_cost_delta"].to_list() == [0] * others.height


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["sweep", "--date", "2025-13-01"], "is not a date"),
        (["sweep", "--date", DAY, "--program", "nope"], "no program 'nope'"),
        (["sweep", "--date", DAY, "--program", "stop_on_death"], "is not swept"),
        (["whatif", "--date", DAY, "--set", "nope=1"], "no parameter 'nope'"),
        (["whatif", "--date", DAY, "--set", "amount=soon"], "must be an integer"),
    ],
)
def test_bad_input_is_one_line(replayed: tuple[Path, str], args: list[str], message: str) -> None:
    country, url = replayed
    extra = ["--country", str(country)] + (["--database-url", url] if args[0] == "sweep" else [])
    result = runner.invoke(_app(), [*args, *extra])
    assert result.exit_code == 2
    assert message in result.output


def test_a_missing_snapshot_is_named(tmp_path: Path) -> None:
    result = runner.invoke(_app(), ["whatif", "--date", DAY, "--set", "amount=1", "--country", str(tmp_path / "none.db")])
    assert result.exit_code == 2 and "no registry snapshot" in result.output


def test_bench_smoke(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    monkeypatch.setattr("bench.pipeline.CACHE", tmp_path)
    result = runner.invoke(_app(), ["bench-sweep", "--population", "5000", "--no-openfisca", "--json"])
    assert result.exit_code == 0, result.output
    figures = json.loads(result.output.strip().splitlines()[-1])
    assert figures["persons"] > 5000 and figures["seconds"] > 0 and figures["peak_rss_mb"] > 0
    assert "openfisca_ratio" not in figures
    result = runner.invoke(_app(), ["bench-explain", "--population", "5000", "--persons", "600", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output.strip().splitlines()[-1])["persons_per_second"] > 0
    if importlib.util.find_spec("openfisca_core") is None:
        return
    result = runner.invoke(_app(), ["bench-sweep", "--population", "5000", "--json"])
    assert result.exit_code == 0, result.output
    figures = json.loads(result.output.strip().splitlines()[-1])
    assert figures["openfisca_equal"] is True and figures["openfisca_ratio"] > 0
