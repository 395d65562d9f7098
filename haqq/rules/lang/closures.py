"""Compile a typed node ONCE into a tree of Python closures: no syntax tree is walked per person.

Every closure takes ``(env, child)``: the evaluation environment and, inside an aggregate, the
child being looked at (``None`` elsewhere). An undefined value raises
:class:`~haqq.rules.lang.semantics.Undefined`.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from datetime import date
from typing import Any

from haqq.rules.lang import semantics as sem
from haqq.rules.lang.schema import Person, Schema
from haqq.rules.lang.types import (
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
    Unary,
)


class Env:
    """What one evaluation sees: the persons, the caller's inputs and the bound parameters."""

    __slots__ = ("already_paid", "beneficiary", "params", "subject", "today")

    def __init__(
        self, subject: Person, beneficiary: Person, already_paid: bool, today: date,
        params: list[Any],
    ) -> None:
        self.subject = subject
        self.beneficiary = beneficiary
        self.already_paid = already_paid
        self.today = today
        self.params = params


Fn = Callable[[Env, Person | None], Any]

#: Marks a parameter with no value in force on the evaluation date.
MISSING = object()

_OPS: dict[str, Callable[[Any, Any], Any]] = {
    "+": operator.add, "-": operator.sub, "*": operator.mul,
    "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge,
    "==": operator.eq, "!=": operator.ne,
}


def compile_node(node: Node, schema: Schema, params: Mapping[str, int]) -> Fn:
    """``params`` maps a parameter name to its index in ``Env.params``."""
    c = _Compiler(schema, params)
    return c.node(node)


class _Compiler:
    def __init__(self, schema: Schema, params: Mapping[str, int]) -> None:
        self.schema = schema
        self.params = params

    def node(self, node: Node) -> Fn:  # noqa: C901 - one dispatch on the node kind
        if isinstance(node, Lit):
            value = node.value
            return lambda e, c: value
        if isinstance(node, Today):
            return lambda e, c: e.today
        if isinstance(node, AlreadyPaid):
            return lambda e, c: e.already_paid
        if isinstance(node, Fact):
            return self.fact(node)
        if isinstance(node, ChildFact):
            name = node.name
            return lambda e, c: c.values[name]  # type: ignore[union-attr]
        if isinstance(node, Param):
            return self.param(node)
        if isinstance(node, Unary):
            f = self.node(node.operand)
            if node.op == "not":
                return lambda e, c: not f(e, c)
            return lambda e, c: -f(e, c)
        if isinstance(node, Arith | Compare):
            return self.binary(node.op, self.node(node.left), self.node(node.right))
        if isinstance(node, Logic):
            return self.logic(node)
        if isinstance(node, IfElse):
            t, a, b = self.node(node.test), self.node(node.then), self.node(node.orelse)
            return lambda e, c: a(e, c) if t(e, c) else b(e, c)
        if isinstance(node, Div):
            n, d, mode = self.node(node.numerator), self.node(node.denominator), node.rounding
            return lambda e, c: sem.div(n(e, c), d(e, c), mode)
        if isinstance(node, Call):
            return self.call(node)
        if isinstance(node, Aggregate):
            return self.aggregate(node)
        raise TypeError(f"unknown node {node!r}")  # unreachable: the parser makes every node

    def fact(self, node: Fact) -> Fn:
        name, role = node.name, node.role
        if node.relation is None:
            if role == "subject":
                return lambda e, c: e.subject.values[name]
            return lambda e, c: e.beneficiary.values[name]
        get = operator.attrgetter(f"{role}.{node.relation}")
        if name == "exists":
            return lambda e, c: get(e) is not None
        default = self.schema.facts[name].default_value

        def relation_fact(e: Env, c: Person | None) -> Any:
            person = get(e)
            return default if person is None else person.values[name]

        return relation_fact

    def param(self, node: Param) -> Fn:
        index, message = self.params[node.name], f"parameter {node.name} has no value in force"

        def param(e: Env, c: Person | None) -> Any:
            value = e.params[index]
            if value is MISSING:
                raise sem.Undefined(message)
            return value

        return param

    @staticmethod
    def binary(op: str, f: Fn, g: Fn) -> Fn:
        fn = _OPS[op]
        return lambda e, c: fn(f(e, c), g(e, c))

    def logic(self, node: Logic) -> Fn:
        fs = [self.node(item) for item in node.items]
        if len(fs) == 2:
            f, g = fs
            if node.op == "and":
                return lambda e, c: f(e, c) and g(e, c)
            return lambda e, c: f(e, c) or g(e, c)
        if node.op == "and":
            return lambda e, c: all(f(e, c) for f in fs)
        return lambda e, c: any(f(e, c) for f in fs)

    def call(self, node: Call) -> Fn:
        fs = [self.node(a) for a in node.args]
        fn = node.fn
        if fn in ("min", "max"):
            pick: Callable[..., Any] = min if fn == "min" else max
            return lambda e, c: pick([f(e, c) for f in fs])
        a = fs[0]
        if fn == "age":
            return lambda e, c: sem.age_at(a(e, c), e.today)
        if fn in ("year", "month", "day"):
            field = operator.attrgetter(fn)
            return lambda e, c: field(a(e, c))
        b = fs[1]
        functions: dict[str, Callable[[Any, Any], Any]] = {
            "age_at": sem.age_at, "add_months": sem.add_months, "add_days": sem.add_days,
            "months_between": sem.months_between,
        }
        two = functions[fn]
        return lambda e, c: two(a(e, c), b(e, c))

    def aggregate(self, node: Aggregate) -> Fn:
        kids = operator.attrgetter(f"{node.role}.children")
        w = self.node(node.where) if node.where is not None else None
        body = self.node(node.body) if node.body is not None else None
        kind = node.kind
        if kind == "count":
            if w is None:
                return lambda e, c: len(kids(e))
            return lambda e, c: sum(1 for k in kids(e) if w(e, k))
        body_fn: Fn = body if body is not None else (lambda e, c: None)

        def values(e: Env) -> list[Any]:
            # Every child is looked at (no short cut): an undefined value anywhere is seen.
            return [body_fn(e, k) for k in kids(e) if w is None or w(e, k)]

        if kind == "any":
            return lambda e, c: True in values(e)
        if kind == "all":
            return lambda e, c: False not in values(e)
        if kind == "sum":
            return lambda e, c: sum(values(e))
        default = self.node(node.default) if node.default is not None else body_fn
        pick: Callable[..., Any] = min if kind == "min" else max

        def extreme(e: Env, c: Person | None) -> Any:
            found = values(e)
            return pick(found) if found else default(e, c)

        return extreme
