"""Parse and type-check an expression: Python's own parser, then a strict whitelist.

``ast.parse(text, mode="eval")`` gives Python's syntax tree; :class:`_Parser` translates the
few node kinds the language allows into typed :mod:`haqq.rules.lang.types` nodes, checking types
on the way, and rejects everything else with a :class:`RuleError` naming the expression, the
column and the problem. User text is never evaluated, executed or compiled by Python.
"""

from __future__ import annotations

import ast
import difflib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import NoReturn

from haqq.rules.lang.calls import call
from haqq.rules.lang.schema import Schema
from haqq.rules.lang.types import (
    LIST_RELATION,
    ROLES,
    SINGLE_RELATIONS,
    AlreadyPaid,
    Arith,
    ChildFact,
    Compare,
    Fact,
    IfElse,
    Lit,
    Logic,
    Node,
    Param,
    RuleError,
    Today,
    Type,
    Unary,
)

MAX_LENGTH = 4000
INT_LIMIT = 2**63

_ARITH = {ast.Add: ("+", "add"), ast.Sub: ("-", "subtract"), ast.Mult: ("*", "multiply")}
_COMPARE = {ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=", ast.Eq: "==", ast.NotEq: "!="}
_OPERATOR = {
    ast.Div: "/", ast.FloorDiv: "//", ast.Mod: "%", ast.Pow: "**", ast.MatMult: "@",
    ast.BitAnd: "&", ast.BitOr: "|", ast.BitXor: "^", ast.LShift: "<<", ast.RShift: ">>",
    ast.Is: "is", ast.IsNot: "is not", ast.In: "in", ast.NotIn: "not in",
    ast.UAdd: "unary +", ast.Invert: "~",
}
_NOT_ALLOWED = {
    ast.Lambda: "lambda", ast.Subscript: "indexing", ast.Slice: "slicing", ast.List: "a list",
    ast.Tuple: "a tuple", ast.Dict: "a dict", ast.Set: "a set", ast.ListComp: "a list comprehension",
    ast.SetComp: "a set comprehension", ast.DictComp: "a dict comprehension",
    ast.JoinedStr: "an f-string", ast.NamedExpr: "`:=`", ast.Starred: "`*`",
    ast.Await: "await", ast.Yield: "yield", ast.YieldFrom: "yield",
}


@dataclass(frozen=True, slots=True)
class Scope:
    """What an expression can name: the facts of the schema and the program's parameters."""

    schema: Schema
    params: Mapping[str, Type]


def parse_expression(
    text: str, scope: Scope, *, expect: Type | None = None, where: str = ""
) -> Node:
    """Parse ``text`` into a typed node; ``expect`` is the type the expression must have."""
    if len(text) > MAX_LENGTH:
        raise RuleError(f"an expression is at most {MAX_LENGTH} characters", where=where)
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as exc:
        column = max((exc.offset or 1) - 1, 0)
        raise RuleError(
            f"syntax error: {exc.msg}", expression=text, column=column, line=exc.lineno or 1,
            where=where,
        ) from None
    parser = _Parser(text.strip(), scope, where)
    try:
        node = parser.expr(tree.body)
    except RecursionError:
        raise RuleError("the expression is nested too deeply", expression=text, where=where) from None
    if expect is not None and node.type is not expect:
        parser.fail(tree.body, f"must be {expect.value}, not {node.type.value}")
    return node


class _Parser:
    def __init__(self, text: str, scope: Scope, where: str) -> None:
        self.text = text
        self.scope = scope
        self.where = where
        #: The loop variable and its role inside an aggregate's generator.
        self.var: tuple[str, str] | None = None

    # --- errors and positions ---------------------------------------------------------------

    def segment(self, node: ast.AST) -> str:
        return ast.get_source_segment(self.text, node) or self.text

    def column(self, node: ast.AST) -> tuple[int, int]:
        line_no = getattr(node, "lineno", 1)
        line = self.text.split("\n")[line_no - 1].encode()
        return line_no, len(line[: getattr(node, "col_offset", 0)].decode(errors="ignore"))

    def fail(self, node: ast.AST, problem: str) -> NoReturn:
        line, column = self.column(node)
        raise RuleError(
            problem, expression=self.text, segment=self.segment(node), column=column, line=line,
            where=self.where,
        )

    def at(self, node: ast.AST) -> tuple[str, int]:
        return self.segment(node), self.column(node)[1]

    # --- expressions ------------------------------------------------------------------------

    def expr(self, node: ast.expr) -> Node:
        if isinstance(node, ast.Constant):
            return self.constant(node)
        if isinstance(node, ast.Name):
            return self.name(node)
        if isinstance(node, ast.Attribute):
            return self.attribute(node)
        if isinstance(node, ast.BinOp):
            return self.binop(node)
        if isinstance(node, ast.UnaryOp):
            return self.unary(node)
        if isinstance(node, ast.BoolOp):
            op = "and" if isinstance(node.op, ast.And) else "or"
            items = tuple(self.typed(v, Type.BOOL, f"`{op}` needs bool operands") for v in node.values)
            return Logic(Type.BOOL, *self.at(node), op, items)
        if isinstance(node, ast.Compare):
            return self.compare(node)
        if isinstance(node, ast.IfExp):
            test = self.typed(node.test, Type.BOOL, "the condition of `if` must be bool")
            then, orelse = self.expr(node.body), self.expr(node.orelse)
            if then.type is not orelse.type:
                self.fail(node, f"both sides of `if`/`else` must have one type, not "
                          f"{then.type.value} and {orelse.type.value}")
            return IfElse(then.type, *self.at(node), test, then, orelse)
        if isinstance(node, ast.Call):
            return call(self, node)
        if isinstance(node, ast.GeneratorExp):
            self.fail(node, "a generator is only allowed inside count, any, all, sum, min or max")
        what = _NOT_ALLOWED.get(type(node), type(node).__name__)
        self.fail(node, f"{what} is not allowed")

    def typed(self, node: ast.expr, expect: Type, problem: str) -> Node:
        result = self.expr(node)
        if result.type is not expect:
            self.fail(node, f"{problem}, not {result.type.value}")
        return result

    def constant(self, node: ast.Constant) -> Node:
        value = node.value
        if isinstance(value, bool):
            return Lit(Type.BOOL, *self.at(node), value)
        if isinstance(value, int):
            if not -INT_LIMIT <= value < INT_LIMIT:
                self.fail(node, "integer literal out of the 64-bit range")
            return Lit(Type.INT, *self.at(node), value)
        if isinstance(value, str):
            return Lit(Type.STR, *self.at(node), value)
        if isinstance(value, float):
            self.fail(node, "decimal numbers are not allowed: money is integer qəpik")
        if value is None:
            self.fail(node, "`None` is not allowed: every fact has a declared default")
        self.fail(node, f"the literal {value!r} is not allowed")

    def name(self, node: ast.Name) -> Node:
        name = node.id
        if name.startswith("_"):
            self.fail(node, f"`{name}` is not allowed")
        if self.var is not None and name == self.var[0]:
            self.fail(node, f"`{name}` is a person, not a value: read one of its facts, "
                      f"e.g. `{name}.alive`")
        if name == "today":
            return Today(Type.DATE, *self.at(node))
        if name == "already_paid":
            if self.var is not None:
                self.fail(node, _INSIDE)
            return AlreadyPaid(Type.BOOL, *self.at(node))
        if name in ROLES:
            self.fail(node, f"`{name}` is a person, not a value: read one of its facts, "
                      f"e.g. `{name}.alive`")
        if name == "param":
            self.fail(node, "name a parameter: `param.<name>`")
        self.fail(node, f"unknown name `{name}`")

    def attribute(self, node: ast.Attribute) -> Node:
        parts: list[str] = []
        base: ast.expr = node
        while isinstance(base, ast.Attribute):
            parts.append(base.attr)
            base = base.value
        if not isinstance(base, ast.Name):
            self.fail(node, "attribute access only on roles and relations "
                      "(subject, beneficiary, their mother, father, spouse, a child) and param")
        parts.append(base.id)
        parts.reverse()
        for part in parts:
            if part.startswith("_"):
                self.fail(node, f"`{part}` is not allowed")
        head, rest = parts[0], parts[1:]
        if head == "param":
            if len(rest) != 1:
                self.fail(node, "a parameter is `param.<name>`")
            if rest[0] not in self.scope.params:
                self.fail(node, f"unknown parameter `{rest[0]}`{self.hint(rest[0], self.scope.params)}")
            return Param(self.scope.params[rest[0]], *self.at(node), rest[0])
        if self.var is not None and head == self.var[0]:
            if len(rest) != 1:
                self.fail(node, f"only the facts of a child can be read, e.g. `{head}.alive`")
            return ChildFact(self.fact_type(node, rest[0]), *self.at(node), self.var[1], rest[0])
        if head not in ROLES:
            if head in ("today", "already_paid"):
                self.fail(node, f"`{head}` has no attributes")
            self.fail(node, "attribute access only on roles and relations "
                      "(subject, beneficiary, their mother, father, spouse, a child) and param")
        if self.var is not None:
            self.fail(node, _INSIDE)
        if rest[0] == LIST_RELATION:
            self.fail(node, f"`{head}.children` is a list: use it in count, any, all, sum, "
                      "min or max")
        if rest[0] in SINGLE_RELATIONS:
            relation = rest[0]
            if len(rest) == 1:
                self.fail(node, f"`{head}.{relation}` is a person, not a value: read one of its "
                          f"facts, e.g. `{head}.{relation}.alive`, or `{head}.{relation}.exists`")
            if len(rest) != 2:
                self.fail(node, "the relations of a relation cannot be read")
            if rest[1] == "exists":
                return Fact(Type.BOOL, *self.at(node), head, relation, "exists")
            return Fact(self.fact_type(node, rest[1]), *self.at(node), head, relation, rest[1])
        if len(rest) != 1:
            self.fail(node, f"`{rest[0]}` is not a relation: the relations are "
                      "mother, father, spouse and children")
        return Fact(self.fact_type(node, rest[0]), *self.at(node), head, None, rest[0])

    def fact_type(self, node: ast.AST, name: str) -> Type:
        found = self.scope.schema.type_of(name)
        if found is None:
            self.fail(node, f"unknown fact `{name}`{self.hint(name, self.scope.schema.facts)}")
        return found

    @staticmethod
    def hint(name: str, known: Mapping[str, object]) -> str:
        close = difflib.get_close_matches(name, list(known), n=1)
        return f" (did you mean `{close[0]}`?)" if close else ""

    def binop(self, node: ast.BinOp) -> Node:
        op = type(node.op)
        if op not in _ARITH:
            symbol = _OPERATOR.get(op, op.__name__)
            if op is ast.Div:
                self.fail(node, "`/` is not allowed: money is integer; use "
                          'div(a, b, "half_up"|"half_even"|"down")')
            self.fail(node, f"operator `{symbol}` is not allowed")
        symbol, verb = _ARITH[op]
        left, right = self.expr(node.left), self.expr(node.right)
        if left.type is not Type.INT or right.type is not Type.INT:
            self.fail(node, f"cannot {verb} {left.type.value} and {right.type.value}")
        return Arith(Type.INT, *self.at(node), symbol, left, right)

    def unary(self, node: ast.UnaryOp) -> Node:
        if isinstance(node.op, ast.Not):
            operand = self.typed(node.operand, Type.BOOL, "`not` needs a bool")
            return Unary(Type.BOOL, *self.at(node), "not", operand)
        if isinstance(node.op, ast.USub):
            operand = self.typed(node.operand, Type.INT, "`-` needs an int")
            if isinstance(operand, Lit) and isinstance(operand.value, int):
                return Lit(Type.INT, *self.at(node), -operand.value)
            return Unary(Type.INT, *self.at(node), "-", operand)
        self.fail(node, f"`{_OPERATOR.get(type(node.op), '?')}` is not allowed")

    def compare(self, node: ast.Compare) -> Node:
        items: list[Node] = []
        left = self.expr(node.left)
        for op, right_node in zip(node.ops, node.comparators, strict=True):
            if type(op) not in _COMPARE:
                self.fail(node, f"`{_OPERATOR.get(type(op), '?')}` is not allowed")
            symbol = _COMPARE[type(op)]
            right = self.expr(right_node)
            if left.type is not right.type:
                self.fail(node, f"cannot compare {left.type.value} and {right.type.value}")
            if symbol not in ("==", "!=") and left.type not in (Type.INT, Type.DATE):
                self.fail(node, f"`{symbol}` compares ints or dates, not {left.type.value}s")
            items.append(Compare(Type.BOOL, *self.at(node), symbol, left, right))
            left = right
        if len(items) == 1:
            return items[0]
        return Logic(Type.BOOL, *self.at(node), "and", tuple(items))


_INSIDE = "inside an aggregate only facts of the child, parameters, literals and `today` can be used"
