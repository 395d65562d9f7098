"""Which snapshot column answers which fact of ``facts.yaml``, as the institutions would.

The registry snapshot (:mod:`haqq.country.snapshot`) holds what the registries know; its
:func:`~haqq.country.snapshot.as_of` view says what each would answer on a day. This module is
the one explicit mapping from a fact name of the rule language to an expression over that view,
with the same meaning as the fact's institution field (``facts.yaml``: ``from`` and ``kind``):

- a *present* fact of a whole service (``known``, ``identity_known``...) is true for everyone in
  the view: every registry has a record of everyone born by the day;
- a *present* fact of a field is "the field is not null" (``death_registered``, ``has_phone``);
- a *count* fact counts the items of a list field (``pension_count``);
- a *value* fact is the field's value, null where the institution gives none (the rule language
  then reads the fact's default).

Facts the snapshot does not hold (``name``, ``document_number``, ``address``, the family's
``children_count``) map to None: the sweep reads their declared default and says so.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import polars as pl

from haqq.rules.lang import Schema
from haqq.sweep.errors import SweepError

col = pl.col

#: fact name -> expression over :func:`haqq.country.snapshot.as_of` (None: not held).
SNAPSHOT_FACTS: Mapping[str, pl.Expr | None] = {
    # civil_registry/person
    "known": pl.lit(True),
    "name": None,
    "sex": col("sex"),
    "birth_date": col("birth_date"),
    "alive": col("alive"),
    "death_registered": col("death_date").is_not_null(),
    "death_date": col("death_date"),
    # civil_registry/family
    "family_known": pl.lit(True),
    "children_count": None,
    # interior/identity
    "identity_known": pl.lit(True),
    "document_valid": col("document_valid"),
    "document_number": None,
    "identity_birth_date": col("interior_birth_date"),
    "address": None,
    "resident": col("resident"),
    # tax/income
    "tax_known": pl.lit(True),
    "employed": col("employed"),
    "monthly_income": col("monthly_income"),
    # pension_fund/record
    "pension_known": pl.lit(True),
    "pension_capital": col("pension_capital"),
    "insurance_months": col("insurance_months"),
    "pension_count": col("pensions").str.split(",").list.eval(pl.element() != "").list.sum(),
    "receives_old_age_pension": col("pensions").str.contains(
        r"(^|,)(old_age_labour_pension|elderly_social_allowance)(,|$)"
    ),
    "receives_disability_pension": col("pensions").str.contains(
        r"(^|,)(disability_labour_pension|disability_social_allowance)(,|$)"
    ),
    # disability/status
    "disability_known": pl.lit(True),
    "disability_active": col("disability_active"),
    "disability_group": col("disability_group"),
    "disability_since": col("disability_since"),
    "disability_until_set": col("disability_until").is_not_null(),
    "disability_until": col("disability_until"),
    # mobile_registry/number
    "mobile_known": pl.lit(True),
    "has_phone": col("phone").is_not_null(),
    "language": col("language"),
}


class UnmappedFact(SweepError):
    """A fact of the schema that this mapping does not mention (neither held nor not held)."""


def not_held(names: Iterable[str]) -> list[str]:
    """The facts among ``names`` the snapshot does not hold (read as their default)."""
    return sorted(n for n in set(names) if SNAPSHOT_FACTS.get(n) is None)


def fact_expressions(schema: Schema, names: Iterable[str], prefix: str) -> list[pl.Expr]:
    """``prefix + name`` columns of the facts ``names``, typed as the schema says."""
    from haqq.rules.lang.columns import DTYPES

    out = []
    for name in sorted(set(names)):
        if name not in SNAPSHOT_FACTS:
            raise UnmappedFact(f"the fact {name!r} has no mapping to the registry snapshot")
        spec = schema.facts[name]
        expr = SNAPSHOT_FACTS[name]
        dtype = DTYPES[spec.type]
        value = pl.lit(None, dtype=dtype) if expr is None else expr.cast(dtype)
        out.append(value.alias(f"{prefix}{name}"))
    return out
