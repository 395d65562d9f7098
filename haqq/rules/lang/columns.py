"""Compile a typed node into Polars expressions over a population frame (vectorised backend).

Every node becomes a pair ``(value, undefined)``: ``value`` an expression that is never null,
``undefined`` a boolean expression (or ``None`` when the node can never be undefined) that is
true on the rows where the interpreter would raise ``Undefined``. ``and``, ``or`` and ``if`` are
lazy exactly as in the interpreter: what their skipped side would do does not count.
All arithmetic is Int64; dates are ``pl.Date``; no float is ever used.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date
from functools import reduce

import polars as pl

from haqq.domain.money import Rounding
from haqq.rules.lang.schema import Schema
from haqq.rules.lang.types import (
    MAX_DATE,
    MIN_DATE,
    Aggregate,
    AlreadyPaid,
    Arith,
    Call,
    ChildFact,
    Compare,
    Div,
    Fact,
    IfElse,
    Lit,
    Logic,
    Node,
    Param,
    Today,
    Type,
    Unary,
    Value,
)

SEP = "__"
CHILD_PARENT = "parent_fin"
_EPOCH = date(1970, 1, 1)
_MIN_DAYS = (MIN_DATE - _EPOCH).days
_MAX_DAYS = (MAX_DATE - _EPOCH).days
DTYPES: dict[Type, pl.DataType] = {
    Type.INT: pl.Int64(), Type.BOOL: pl.Boolean(), Type.STR: pl.String(), Type.DATE: pl.Date(),
}

Err = pl.Expr | None
Pair = tuple[pl.Expr, Err]


def column(role: str, relation: str | None, name: str) -> str:
    """``subject__alive``, ``subject__mother__alive``, ``subject__mother__exists``."""
    return SEP.join(p for p in (role, relation, name) if p)


def lit(value: Value, type_: Type) -> pl.Expr:
    return pl.lit(value, dtype=DTYPES[type_])


def either(*errs: Err) -> Err:
    present = [e for e in errs if e is not None]
    return reduce(lambda a, b: a | b, present) if present else None


@dataclass
class Compiler:
    """Compiles nodes for one evaluation date and one set of parameter values."""

    schema: Schema
    today: date
    #: Parameter values in force (absent: no value in force, undefined when used).
    params: Mapping[str, int | date]
    param_types: Mapping[str, Type]
    #: Aggregates found, by node: the name of their value column in the joined frame.
    aggregates: dict[Aggregate, str] = field(default_factory=dict)
    prefix: str = "__agg"
    #: Population columns read (name -> type).
    needs: dict[str, Type] = field(default_factory=dict)
    child_needs: dict[str, Type] = field(default_factory=dict)
    #: Per role, the expressions over the children frame (grouped by parent).
    child_columns: dict[str, list[pl.Expr]] = field(default_factory=dict)
    failing: set[str] = field(default_factory=set)

    def fact_column(self, name: str, type_: Type, default: Value) -> pl.Expr:
        self.needs[name] = type_
        return pl.col(name).cast(DTYPES[type_]).fill_null(lit(default, type_))

    def node(self, node: Node) -> Pair:  # noqa: C901 - one dispatch on the node kind
        if isinstance(node, Lit):
            return lit(node.value, node.type), None
        if isinstance(node, Today):
            return lit(self.today, Type.DATE), None
        if isinstance(node, AlreadyPaid):
            return self.fact_column("already_paid", Type.BOOL, False), None
        if isinstance(node, Fact):
            return self.fact(node), None
        if isinstance(node, ChildFact):
            spec = self.schema.facts[node.name]
            self.child_needs[node.name] = node.type
            return pl.col(node.name).cast(DTYPES[node.type]).fill_null(
                lit(spec.default_value, node.type)), None
        if isinstance(node, Param):
            if node.name not in self.params:
                placeholder: Value = MIN_DATE if node.type is Type.DATE else 0
                return lit(placeholder, node.type), pl.lit(True)
            return lit(self.params[node.name], node.type), None
        if isinstance(node, Unary):
            v, e = self.node(node.operand)
            return (~v if node.op == "not" else -v), e
        if isinstance(node, Arith | Compare):
            (a, ea), (b, eb) = self.node(node.left), self.node(node.right)
            return _BINARY[node.op](a, b), either(ea, eb)
        if isinstance(node, Logic):
            return self.logic(node)
        if isinstance(node, IfElse):
            (t, et), (a, ea), (b, eb) = (self.node(n) for n in (node.test, node.then, node.orelse))
            err = None
            if ea is not None or eb is not None:
                err = pl.when(t).then(ea if ea is not None else False).otherwise(
                    eb if eb is not None else False)
            return pl.when(t).then(a).otherwise(b), either(et, err)
        if isinstance(node, Div):
            (n, en), (d, ed) = self.node(node.numerator), self.node(node.denominator)
            return divide(n, d, node.rounding), either(en, ed, d <= 0)
        if isinstance(node, Call):
            pairs = [self.node(a) for a in node.args]
            value, err = call(node.fn, [p[0] for p in pairs], self.today)
            return value, either(*(p[1] for p in pairs), err)
        if isinstance(node, Aggregate):
            return self.aggregate(node)
        raise TypeError(f"unknown node {node!r}")  # unreachable: the parser makes every node

    def fact(self, node: Fact) -> pl.Expr:
        if node.relation is None:
            spec = self.schema.facts[node.name]
            return self.fact_column(column(node.role, None, node.name), node.type, spec.default_value)
        exists = self.fact_column(column(node.role, node.relation, "exists"), Type.BOOL, False)
        if node.name == "exists":
            return exists
        default = self.schema.facts[node.name].default_value
        value = self.fact_column(column(node.role, node.relation, node.name), node.type, default)
        return pl.when(exists).then(value).otherwise(lit(default, node.type))

    def logic(self, node: Logic) -> Pair:
        pairs = [self.node(item) for item in node.items]
        value, err = pairs[0]
        for v, e in pairs[1:]:
            if e is not None:
                # The right side counts only where the left side did not decide.
                reached = value if node.op == "and" else ~value
                err = either(err, reached & e)
            value = (value & v) if node.op == "and" else (value | v)
        return value, err

    def aggregate(self, node: Aggregate) -> Pair:
        name = self.aggregates.get(node)
        if name is None:
            name = self.aggregates[node] = f"{self.prefix}{len(self.aggregates)}"
            columns = self.aggregate_columns(node, name)
            self.child_columns.setdefault(node.role, []).extend(columns)
            if len(columns) > 1:
                self.failing.add(name)
        value = pl.col(name)
        empty: pl.Expr
        err: Err = pl.col(f"{name}_err").fill_null(False) if name in self.failing else None
        if node.kind == "count" or node.kind == "sum":
            empty = lit(0, Type.INT)
        elif node.kind in ("any", "all"):
            empty = pl.lit(node.kind == "all")
        else:
            if node.default is None:  # unreachable: the parser requires a default
                raise TypeError("min/max without a default")
            empty, default_err = self.node(node.default)
            if default_err is not None:
                err = either(err, value.is_null() & default_err)
        return value.fill_null(empty), err

    def aggregate_columns(self, node: Aggregate, name: str) -> list[pl.Expr]:
        """The expressions over the children frame, grouped by parent, for one aggregate."""
        # A column, not a literal: the aggregate must see one value per child, even when the
        # expressions are constant (``sum(5 for c in ...)``).
        every = pl.col(CHILD_PARENT).is_not_null()
        where, where_err = self.node(node.where) if node.where is not None else (None, None)
        body, body_err = self.node(node.body) if node.body is not None else (every, None)
        taken = where & every if where is not None else every
        out: list[pl.Expr]
        if node.kind == "count":
            out = [taken.sum().cast(pl.Int64).alias(name)]
        elif node.kind == "any":
            out = [(taken & body).any().alias(name)]
        elif node.kind == "all":
            out = [(~taken | body).all().alias(name)]
        elif node.kind == "sum":
            out = [pl.when(taken).then(body).otherwise(0).sum().cast(pl.Int64).alias(name)]
        else:
            picked = pl.when(taken).then(body)
            out = [(picked.min() if node.kind == "min" else picked.max()).alias(name)]
        err = either(where_err, taken & body_err if body_err is not None else None)
        if err is not None:
            out.append(err.any().alias(f"{name}_err"))
        return out


_BINARY: dict[str, Callable[[pl.Expr, pl.Expr], pl.Expr]] = {
    "+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b,
    "<": lambda a, b: a < b, "<=": lambda a, b: a <= b, ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b, "==": lambda a, b: a == b, "!=": lambda a, b: a != b,
}


def divide(n: pl.Expr, d: pl.Expr, rounding: Rounding) -> pl.Expr:
    """Exactly :func:`haqq.rules.lang.semantics.div`, in Int64; a divisor <= 0 reads as 1."""
    d = pl.when(d > 0).then(d).otherwise(1)
    if rounding is Rounding.DOWN:
        return n // d
    if rounding is Rounding.HALF_UP:
        q = (2 * n.abs() + d) // (2 * d)
        return pl.when(n < 0).then(-q).otherwise(q)
    q = n // d
    twice = 2 * (n - q * d)
    return pl.when((twice > d) | ((twice == d) & (q % 2 == 1))).then(q + 1).otherwise(q)


def is_leap(y: pl.Expr) -> pl.Expr:
    return ((y % 4) == 0) & (((y % 100) != 0) | ((y % 400) == 0))


def days_in_month(y: pl.Expr, m: pl.Expr) -> pl.Expr:
    return (
        pl.when(m == 2).then(pl.when(is_leap(y)).then(29).otherwise(28))
        .when(m.is_in([4, 6, 9, 11])).then(30)
        .otherwise(31)
        .cast(pl.Int64)
    )


def _ymd(d: pl.Expr) -> tuple[pl.Expr, pl.Expr, pl.Expr]:
    return (d.dt.year().cast(pl.Int64), d.dt.month().cast(pl.Int64), d.dt.day().cast(pl.Int64))


def months_between(a: pl.Expr, b: pl.Expr) -> pl.Expr:
    """Exactly :func:`haqq.rules.lang.semantics.months_between`."""
    (ya, ma, da), (yb, mb, db) = _ymd(a), _ymd(b)
    forward = (yb - ya) * 12 + mb - ma - ((da > db) & (db < days_in_month(yb, mb))).cast(pl.Int64)
    backward = (ya - yb) * 12 + ma - mb - ((db > da) & (da < days_in_month(ya, ma))).cast(pl.Int64)
    return pl.when(b >= a).then(forward).otherwise(-backward)


def _years(months: pl.Expr) -> pl.Expr:
    """Whole years of whole months, rounded towards zero (as ``semantics.age_at``)."""
    return pl.when(months < 0).then(-((-months) // 12)).otherwise(months // 12)


def call(fn: str, args: list[pl.Expr], today: date) -> tuple[pl.Expr, Err]:
    """A function of the language over columns: its value and where it is undefined."""
    if fn == "min":
        return pl.min_horizontal(args), None
    if fn == "max":
        return pl.max_horizontal(args), None
    if fn in ("year", "month", "day"):
        return _ymd(args[0])[("year", "month", "day").index(fn)], None
    if fn == "age":
        return _years(months_between(args[0], lit(today, Type.DATE))), None
    if fn == "age_at":
        return _years(months_between(args[0], args[1])), None
    if fn == "months_between":
        return months_between(args[0], args[1]), None
    if fn == "add_days":
        days = args[0].cast(pl.Int32).cast(pl.Int64) + args[1]
        ok = (days >= _MIN_DAYS) & (days <= _MAX_DAYS)
        return pl.when(ok).then(days).otherwise(0).cast(pl.Int32).cast(pl.Date), ~ok
    if fn == "add_months":
        y, m, d = _ymd(args[0])
        total = y * 12 + m - 1 + args[1]
        year, month = total // 12, total % 12 + 1
        ok = (year >= 1) & (year <= 9999)
        year = pl.when(ok).then(year).otherwise(2000)
        day = pl.min_horizontal(d, days_in_month(year, month))
        return pl.date(year, month, day), ~ok
    raise TypeError(f"unknown function {fn}")  # unreachable: the parser checks names
