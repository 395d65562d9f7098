"""The registry snapshot: the country's persons as typed Parquet columns, for whole-population work.

The sweep (every person against every program, as of a date) reads the registries in bulk, the
way a ministry reads a nightly extract of each registry rather than asking the data-exchange
layer ten million times. The generator writes one Parquet file per chunk into a directory next
to the country file (``country.db`` → ``country.registry/``). It holds what the registries know
(dates, links, statuses), not how they answer on a given day: :func:`as_of` derives that, with
the very rules the simulated institutions apply to each answer.
"""

from __future__ import annotations

import os
import shutil
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from haqq.country.arrays import NO_DAY
from haqq.domain.errors import HaqqError

if TYPE_CHECKING:
    from haqq.country.build import _ChunkBuilder

PERSONS_GLOB = "persons-*.parquet"


class SnapshotMissing(HaqqError):
    """There is no registry snapshot next to the country file."""


def snapshot_dir(country: Path) -> Path:
    """Where the snapshot of the country file ``country`` lives."""
    return Path(country).with_suffix(".registry")


def _null_where(series: pl.Series, missing: Any) -> pl.Series:
    return series.to_frame().select(pl.when(pl.first() != missing).then(pl.first())).to_series()


def _days(values: Any, *, none: int | None = -1) -> pl.Series:
    """Days since 1970 (``none`` for no date) as a Date column."""
    days = pl.Series(np.asarray(values, dtype=np.int32))
    return (days if none is None else _null_where(days, none)).cast(pl.Date)


def _links(fins: Any, index: Any) -> pl.Series:
    """The FIN a chunk-local index points at (-1: nobody)."""
    ix = np.asarray(index, dtype=np.int64)
    linked = pl.Series(np.where(ix >= 0, np.asarray(fins)[np.maximum(ix, 0)], ""))
    return _null_where(linked, "")


def chunk_frame(b: _ChunkBuilder) -> pl.DataFrame:
    """One generated chunk (standing population and newborns) as registry columns."""
    from haqq.country.build import _LANGS, _PENSIONS

    nb = b.newborn
    k = len(nb["gid"])
    mother, father = nb["mother"], nb["father"]
    standing = pl.DataFrame(
        {
            "fin": b.fin,
            "sex": np.where(b.female, "F", "M"),
            "birth_date": _days(b.birth, none=None),
            "interior_birth_date": _days(b.mia_birth, none=NO_DAY),
            "death_date": _days(b.death),
            "mother_fin": _links(b.fin, b.mother),
            "father_fin": _links(b.fin, b.father),
            "spouse_fin": _links(b.fin, b.spouse),
            "married_on": _days(b.married_on, none=NO_DAY),
            "household": b.start + b.hh,
            "resident": b.resident,
            "document_valid_until": _days(b.doc_valid_until),
            "phone": _null_where(pl.Series(b.phone), ""),
            "language": _LANGS[b.lang],
            "employed": b.employed,
            "monthly_income": b.income,
            "employment_end": _days(b.employment_end),
            "insurance_months": b.insurance_months,
            "pension_capital": b.capital,
            "pensions": _PENSIONS[b.pensions],
            "disability_group": _null_where(pl.Series(b.dis_group), 0),
            "disability_since": _days(b.dis_since),
            "disability_until": _days(b.dis_until),
        }
    )
    if not k:
        return standing
    newborns = pl.DataFrame(
        {
            "fin": nb["fin"],
            "sex": np.where(nb["female"], "F", "M"),
            "birth_date": _days(nb["birth"], none=None),
            "interior_birth_date": _days(np.full(k, -1)),
            "death_date": _days(np.full(k, -1)),
            "mother_fin": _links(b.fin, mother),
            "father_fin": _links(b.fin, father),
            "spouse_fin": _links(b.fin, np.full(k, -1)),
            "married_on": _days(np.full(k, -1)),
            "household": b.start + b.hh[mother],
            "resident": b.resident[mother],
            "document_valid_until": _days(np.full(k, -1)),
            "phone": pl.Series([None] * k, dtype=pl.String),
            "language": _LANGS[b.lang[mother]],
            "employed": np.zeros(k, dtype=bool),
            "monthly_income": np.zeros(k, dtype=np.int64),
            "employment_end": _days(np.full(k, -1)),
            "insurance_months": np.zeros(k, dtype=np.int64),
            "pension_capital": np.zeros(k, dtype=np.int64),
            "pensions": [""] * k,
            "disability_group": pl.Series([None] * k, dtype=standing["disability_group"].dtype),
            "disability_since": _days(np.full(k, -1)),
            "disability_until": _days(np.full(k, -1)),
        },
        schema=standing.schema,
    )
    return pl.concat([standing, newborns])


def write_chunk(directory: Path, chunk_no: int, frame: pl.DataFrame) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    frame.write_parquet(directory / f"persons-{chunk_no:05d}.parquet", statistics=False)


def publish(staging: Path, final: Path) -> None:
    """Replace the snapshot at ``final`` with the complete one at ``staging``."""
    old = final.with_name(f".{final.name}.{os.getpid()}.old")
    if final.exists():
        os.replace(final, old)
    os.replace(staging, final)
    shutil.rmtree(old, ignore_errors=True)


def scan(country: Path) -> pl.LazyFrame:
    """The snapshot of ``country``, lazily (nothing is read until collected)."""
    folder = snapshot_dir(country)
    if not any(folder.glob(PERSONS_GLOB)):
        raise SnapshotMissing(
            f"no registry snapshot at {folder}: generate the country again "
            "('haqq country generate') to write one"
        )
    return pl.scan_parquet(folder / PERSONS_GLOB)


def as_of(persons: pl.LazyFrame, day: date) -> pl.LazyFrame:
    """What each registry would answer on ``day`` about everyone born by then.

    The same rules as the simulated institutions' answers: a death counts from its date, a
    marriage from its date, a child once born; a document without an end date is valid; work
    ends on the day of termination; a disability status runs from ``since`` to before ``until``
    (the disability registry shows its group and dates once it has begun).
    """
    d = pl.lit(day, dtype=pl.Date)
    col = pl.col
    working = col("employed") & (col("employment_end").is_null() | (d < col("employment_end")))
    disabled = (
        col("disability_group").is_not_null()
        & col("disability_since").is_not_null()
        & (col("disability_since") <= d)
    )
    return persons.filter(col("birth_date") <= d).select(
        "fin",
        "sex",
        "birth_date",
        pl.coalesce("interior_birth_date", "birth_date").alias("interior_birth_date"),
        (col("death_date").is_null() | (col("death_date") > d)).alias("alive"),
        pl.when(col("death_date") <= d).then(col("death_date")).alias("death_date"),
        "mother_fin",
        "father_fin",
        pl.when(col("married_on") <= d).then(col("spouse_fin")).alias("spouse_fin"),
        "household",
        "resident",
        (col("document_valid_until").is_null() | (col("document_valid_until") >= d)).alias(
            "document_valid"
        ),
        "phone",
        "language",
        working.alias("employed"),
        pl.when(working).then(col("monthly_income")).otherwise(0).alias("monthly_income"),
        "insurance_months",
        "pension_capital",
        "pensions",
        (disabled & (col("disability_until").is_null() | (d < col("disability_until")))).alias(
            "disability_active"
        ),
        pl.when(disabled).then(col("disability_group")).alias("disability_group"),
        pl.when(disabled).then(col("disability_since")).alias("disability_since"),
        pl.when(disabled).then(col("disability_until")).alias("disability_until"),
    )
