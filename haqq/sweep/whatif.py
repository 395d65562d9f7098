"""What-if: the sweep with changed parameters, costed per program as a ministry costs a reform.

``PARAM=VALUE``: ``PARAM`` is ``program.parameter``, or a bare parameter name applied to every
chosen program that has it; ``VALUE`` an integer (qəpik, months, years... as the parameter's unit
says; ``_`` separators allowed) or an ISO date for a date parameter. The new value is in force
from the ``--from`` date on (it replaces the values from that date).

Both runs decide everyone in the universes, as entitled or not, without the store: a reform is
costed on who would be entitled, not on who already received a lump sum. Yearly cost: twelve
times the monthly amounts, the lump sums once.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from datetime import date

import polars as pl

from haqq.rules.catalogue import Program
from haqq.rules.lang import Parameter, ParameterValue, Table
from haqq.sweep.errors import UnknownParameter
from haqq.sweep.evaluate import Evaluation, evaluate, yearly
from haqq.sweep.frames import Registry

REFERENCE = "what-if (not in force)"

WHATIF_SCHEMA: dict[str, pl.DataType] = {
    "program": pl.String(), "beneficiaries_before": pl.Int64(), "beneficiaries_after": pl.Int64(),
    "beneficiaries_delta": pl.Int64(), "yearly_cost_before": pl.Int64(),
    "yearly_cost_after": pl.Int64(), "yearly_cost_delta": pl.Int64(),
}


def parse_settings(items: Iterable[str]) -> list[tuple[str, int | date]]:
    out: list[tuple[str, int | date]] = []
    for item in items:
        name, sep, raw = item.partition("=")
        name, raw = name.strip(), raw.strip()
        if not sep or not name or not raw:
            raise UnknownParameter(f"--set {item!r}: write PARAM=VALUE (for example amount=32000)")
        value: int | date
        try:
            value = int(raw.replace("_", ""))
        except ValueError:
            try:
                value = date.fromisoformat(raw)
            except ValueError:
                raise UnknownParameter(
                    f"--set {item!r}: the value must be an integer (minor units) or a date (YYYY-MM-DD)"
                ) from None
        out.append((name, value))
    return out


def _changed(parameter: Parameter, value: int | date, start: date, where: str) -> Parameter:
    want_date = parameter.unit == "date"
    if isinstance(value, date) != want_date:
        kind = "a date" if want_date else f"an integer ({parameter.unit})"
        raise UnknownParameter(f"{where} takes {kind}, not {value!r}")
    kept = [v for v in parameter.values if v.from_ < start]
    new = ParameterValue.model_validate({"from": start, "value": value, "reference": REFERENCE})
    return Parameter(unit=parameter.unit, values=[*kept, new])


def changed_tables(
    programs: Sequence[Program], settings: Sequence[tuple[str, int | date]], start: date
) -> dict[str, Table]:
    """The programs' tables with the settings applied (only the programs they change)."""
    tables: dict[str, Table] = {}
    for name, value in settings:
        program_id, dot, param = name.rpartition(".")
        targets = [p for p in programs if not dot or p.id == program_id]
        if dot and not targets:
            known = ", ".join(p.id for p in programs)
            raise UnknownParameter(f"--set {name}: no program {program_id!r} (swept: {known})")
        hit = False
        for program in targets:
            table = tables.get(program.id, program.table)
            if param not in table.parameters:
                continue
            hit = True
            parameters = dict(table.parameters)
            parameters[param] = _changed(parameters[param], value, start, f"{program.id}.{param}")
            tables[program.id] = dataclasses.replace(table, parameters=parameters)
        if not hit:
            where = f"program {program_id!r}" if dot else "any swept program"
            names = sorted({f"{p.id}.{n}" for p in targets for n in p.table.parameters})
            raise UnknownParameter(f"--set {name}: no parameter {param!r} in {where} (known: {', '.join(names)})")
    return tables


def costs(programs: Sequence[Program], evaluation: Evaluation) -> pl.DataFrame:
    """Per program: beneficiaries (granted) and the yearly cost."""
    by_id = {p.id: p for p in programs}
    granted = evaluation.decisions.filter(pl.col("outcome") == "granted")
    rows = []
    for program_id in sorted(by_id):
        mine = granted.filter(pl.col("program") == program_id)
        total = mine.select(yearly(by_id[program_id], pl.col("amount")).sum()).item()
        rows.append({"program": program_id, "beneficiaries": mine.height, "yearly_cost": int(total or 0)})
    return pl.DataFrame(rows, schema={"program": pl.String(), "beneficiaries": pl.Int64(), "yearly_cost": pl.Int64()})


def whatif(
    registry: Registry, programs: Sequence[Program], tables: Mapping[str, Table]
) -> pl.DataFrame:
    """Before, after and delta of beneficiaries and yearly cost, per program."""
    before = costs(programs, evaluate(registry, programs))
    after = costs(programs, evaluate(registry, programs, tables=tables))
    joined = before.join(after, on="program", suffix="_after")
    c = pl.col
    return joined.select(
        "program",
        c("beneficiaries").alias("beneficiaries_before"),
        c("beneficiaries_after"),
        (c("beneficiaries_after") - c("beneficiaries")).alias("beneficiaries_delta"),
        c("yearly_cost").alias("yearly_cost_before"),
        c("yearly_cost_after"),
        (c("yearly_cost_after") - c("yearly_cost")).alias("yearly_cost_delta"),
    ).cast(WHATIF_SCHEMA)  # type: ignore[arg-type]
