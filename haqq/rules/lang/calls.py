"""Function calls of the language: ``date``, ``div``, ``min``/``max``, date functions, aggregates."""

from __future__ import annotations

import ast
import re
from datetime import date
from typing import TYPE_CHECKING

from haqq.domain.money import Rounding
from haqq.rules.lang.types import (
    AGGREGATES,
    FUNCTIONS,
    LIST_RELATION,
    ROLES,
    Aggregate,
    Call,
    Div,
    Lit,
    Logic,
    Node,
    Type,
)

if TYPE_CHECKING:
    from haqq.rules.lang.parse import _Parser

_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_RESERVED = {"subject", "beneficiary", "param", "today", "already_paid", *FUNCTIONS, *AGGREGATES}


def call(p: _Parser, node: ast.Call) -> Node:
    func = node.func
    if not isinstance(func, ast.Name):
        p.fail(node, "only the functions of the language can be called, not methods")
    name = func.id
    if name.startswith("_"):
        p.fail(func, f"`{name}` is not allowed")
    if any(isinstance(a, ast.Starred) for a in node.args):
        p.fail(node, "`*` arguments are not allowed")
    if name == "date":
        return date_literal(p, node)
    is_generator = bool(node.args) and isinstance(node.args[0], ast.GeneratorExp)
    if name in AGGREGATES and (is_generator or name not in ("min", "max")):
        return aggregate(p, node, name)
    if node.keywords:
        p.fail(node, f"`{name}` takes no keyword arguments")
    if name == "div":
        if len(node.args) != 3:
            p.fail(node, 'div takes 3 arguments: div(amount, divisor, "half_up"|"half_even"|"down")')
        numerator = p.typed(node.args[0], Type.INT, "div divides an int")
        denominator = p.typed(node.args[1], Type.INT, "div divides by an int")
        return Div(Type.INT, *p.at(node), numerator, denominator, rounding(p, node.args[2]))
    if name in ("min", "max"):
        if len(node.args) < 2:
            p.fail(node, f"{name} takes two or more values, or a generator with a default")
        args = tuple(p.expr(a) for a in node.args)
        kind = args[0].type
        if kind not in (Type.INT, Type.DATE) or any(a.type is not kind for a in args):
            types = ", ".join(a.type.value for a in args)
            p.fail(node, f"{name} takes ints or dates of one type, not {types}")
        return Call(kind, *p.at(node), name, args)
    if name not in FUNCTIONS:
        p.fail(func, f"unknown function `{name}`")
    params, result = FUNCTIONS[name]
    if len(node.args) != len(params):
        p.fail(node, f"{name} takes {len(params)} argument(s), not {len(node.args)}")
    typed = tuple(
        p.typed(arg, expect, f"argument of {name} must be {expect.value}")
        for arg, expect in zip(node.args, params, strict=True)
    )
    return Call(result, *p.at(node), name, typed)


def aggregate(p: _Parser, node: ast.Call, kind: str) -> Node:
    shape = f"{kind}(... for c in subject.children if ...)"
    if len(node.args) != 1 or not isinstance(node.args[0], ast.GeneratorExp):
        p.fail(node, f"{kind} takes one generator: {shape}")
    gen = node.args[0]
    default: Node | None = None
    if kind in ("min", "max"):
        if len(node.keywords) != 1 or node.keywords[0].arg != "default":
            p.fail(node, f"{kind} over children needs an explicit default: "
                   f"{kind}((... for c in subject.children), default=0)")
        default = p.expr(node.keywords[0].value)
    elif node.keywords:
        p.fail(node, f"{kind} takes no keyword arguments")
    if p.var is not None:
        p.fail(node, "aggregates cannot be nested")
    if len(gen.generators) != 1:
        p.fail(gen, "an aggregate has exactly one `for`")
    comp = gen.generators[0]
    if comp.is_async:
        p.fail(gen, "`async for` is not allowed")
    target = comp.target
    if not isinstance(target, ast.Name) or target.id.startswith("_") or target.id in _RESERVED:
        p.fail(target, "the loop variable must be a plain name such as `c`")
    iterable = comp.iter
    if not (
        isinstance(iterable, ast.Attribute)
        and iterable.attr == LIST_RELATION
        and isinstance(iterable.value, ast.Name)
        and iterable.value.id in ROLES
    ):
        p.fail(iterable, "an aggregate runs over `subject.children` or `beneficiary.children`")
    role = iterable.value.id
    p.var = (target.id, role)
    try:
        conditions = [p.typed(c, Type.BOOL, "the `if` of a generator must be bool") for c in comp.ifs]
        body: Node | None = None
        if kind == "count":
            if not (isinstance(gen.elt, ast.Name) and gen.elt.id == target.id):
                p.fail(gen.elt, f"count counts children: count({target.id} for {target.id} in "
                       f"{role}.children if <condition>)")
        else:
            expect = {"any": Type.BOOL, "all": Type.BOOL, "sum": Type.INT}.get(kind)
            body = p.expr(gen.elt)
            if expect is not None and body.type is not expect:
                p.fail(gen.elt, f"{kind} needs {expect.value} values, not {body.type.value}")
            if expect is None and body.type not in (Type.INT, Type.DATE):
                p.fail(gen.elt, f"{kind} needs int or date values, not {body.type.value}")
    finally:
        p.var = None
    where: Node | None = None
    if len(conditions) == 1:
        where = conditions[0]
    elif conditions:
        where = Logic(Type.BOOL, *p.at(gen), "and", tuple(conditions))
    result = {"count": Type.INT, "any": Type.BOOL, "all": Type.BOOL, "sum": Type.INT}.get(kind)
    if result is None:
        value_type = body.type if body is not None else Type.INT
        if default is not None and default.type is not value_type:
            p.fail(node, f"the default of {kind} must be {value_type.value}, "
                   f"not {default.type.value}")
        result = value_type
    return Aggregate(result, *p.at(node), kind, role, body, where, default)


def date_literal(p: _Parser, node: ast.Call) -> Node:
    arg = node.args[0] if len(node.args) == 1 and not node.keywords else None
    if not isinstance(arg, ast.Constant) or not isinstance(arg.value, str):
        p.fail(node, 'a date is written date("YYYY-MM-DD")')
    try:
        if not _DATE.fullmatch(arg.value):
            raise ValueError
        value = date.fromisoformat(arg.value)
    except ValueError:
        p.fail(node, f"{arg.value!r} is not a date (YYYY-MM-DD)")
    return Lit(Type.DATE, *p.at(node), value)

def rounding(p: _Parser, node: ast.expr) -> Rounding:
    modes = ", ".join(f'"{r.value}"' for r in Rounding)
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        try:
            return Rounding(node.value)
        except ValueError:
            pass
    p.fail(node, f"the rounding mode must be one of {modes}")
