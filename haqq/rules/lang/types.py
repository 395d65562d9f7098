"""The typed syntax tree of the rule language, its types, outcomes and errors.

An expression is parsed once (see :mod:`haqq.rules.lang.parse`) into these frozen nodes; every
node knows its type. Both backends (the interpreter and the vectorised one) compile these nodes,
never the source text.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from enum import StrEnum

from haqq.domain.errors import HaqqError
from haqq.domain.money import Rounding


class Type(StrEnum):
    INT = "int"
    BOOL = "bool"
    STR = "str"
    DATE = "date"


class Outcome(StrEnum):
    GRANTED = "granted"
    DENIED = "denied"
    NEEDS_REVIEW = "needs_review"


#: The roles an expression can name, the single relations of a role and its list relation.
ROLES = ("subject", "beneficiary")
SINGLE_RELATIONS = ("mother", "father", "spouse")
LIST_RELATION = "children"

#: Earliest and latest representable dates; a date function leaving this range is undefined.
MIN_DATE = date(1, 1, 1)
MAX_DATE = date(9999, 12, 31)

Value = int | bool | str | date


class RuleError(HaqqError):
    """An expression or a table that cannot be compiled; says where and what is wrong.

    ``segment`` is the offending part of ``expression``, ``column`` its character offset (and
    ``line`` its line, from 1) in ``expression``.
    """

    def __init__(
        self, problem: str, *, expression: str = "", segment: str = "", column: int = 0,
        line: int = 1, where: str = "",
    ) -> None:
        self.problem = problem
        self.expression = expression
        self.segment = segment or expression
        self.column = column
        self.line = line
        self.where = where
        text = problem
        if self.segment:
            position = f"column {column}" if line == 1 else f"line {line}, column {column}"
            text = f"`{self.segment}` ({position}): {problem}"
            if self.segment != expression and expression:
                text += f" in `{expression}`"
        if where:
            text = f"{where}: {text}"
        super().__init__(text)


class FactError(HaqqError):
    """An institution's answer that does not fit the declared fact schema."""


@dataclass(frozen=True, slots=True)
class Node:
    """Base of all typed nodes: the type and where in the source the node was written."""

    type: Type
    text: str
    column: int


@dataclass(frozen=True, slots=True)
class Lit(Node):
    value: Value


@dataclass(frozen=True, slots=True)
class Today(Node):
    pass


@dataclass(frozen=True, slots=True)
class AlreadyPaid(Node):
    pass


@dataclass(frozen=True, slots=True)
class Fact(Node):
    """``role.name`` or ``role.relation.name``; ``name == "exists"`` on a relation."""

    role: str
    relation: str | None
    name: str

    @property
    def path(self) -> str:
        return ".".join(p for p in (self.role, self.relation, self.name) if p)


@dataclass(frozen=True, slots=True)
class ChildFact(Node):
    """``c.name`` where ``c`` runs over ``role.children``."""

    role: str
    name: str

    @property
    def path(self) -> str:
        return f"{self.role}.children.{self.name}"


@dataclass(frozen=True, slots=True)
class Param(Node):
    name: str


@dataclass(frozen=True, slots=True)
class Unary(Node):
    op: str  # "-" or "not"
    operand: Node


@dataclass(frozen=True, slots=True)
class Arith(Node):
    op: str  # "+", "-", "*"
    left: Node
    right: Node


@dataclass(frozen=True, slots=True)
class Compare(Node):
    op: str  # "<", "<=", ">", ">=", "==", "!="
    left: Node
    right: Node


@dataclass(frozen=True, slots=True)
class Logic(Node):
    op: str  # "and" or "or"
    items: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class IfElse(Node):
    test: Node
    then: Node
    orelse: Node


@dataclass(frozen=True, slots=True)
class Div(Node):
    numerator: Node
    denominator: Node
    rounding: Rounding


@dataclass(frozen=True, slots=True)
class Call(Node):
    """A pure function of :data:`FUNCTIONS` other than ``div``: min, max and the date functions."""

    fn: str
    args: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Aggregate(Node):
    """``kind(body for var in role.children if where)``; ``default`` only for min and max."""

    kind: str  # count, any, all, sum, min, max
    role: str
    body: Node | None
    where: Node | None
    default: Node | None


#: Date and arithmetic functions: name -> (argument types, result type). ``min``/``max`` and
#: ``div`` are typed by the parser itself.
FUNCTIONS: dict[str, tuple[tuple[Type, ...], Type]] = {
    "age": ((Type.DATE,), Type.INT),
    "age_at": ((Type.DATE, Type.DATE), Type.INT),
    "add_months": ((Type.DATE, Type.INT), Type.DATE),
    "add_days": ((Type.DATE, Type.INT), Type.DATE),
    "months_between": ((Type.DATE, Type.DATE), Type.INT),
    "year": ((Type.DATE,), Type.INT),
    "month": ((Type.DATE,), Type.INT),
    "day": ((Type.DATE,), Type.INT),
}

#: Functions that can be undefined (a date out of range); division is the other source.
PARTIAL_FUNCTIONS = frozenset({"add_months", "add_days"})

AGGREGATES = ("count", "any", "all", "sum", "min", "max")


def children(node: Node) -> tuple[Node, ...]:
    """The direct sub-nodes of ``node``, in evaluation order."""
    if isinstance(node, Unary):
        return (node.operand,)
    if isinstance(node, Arith | Compare):
        return (node.left, node.right)
    if isinstance(node, Logic):
        return node.items
    if isinstance(node, IfElse):
        return (node.test, node.then, node.orelse)
    if isinstance(node, Div):
        return (node.numerator, node.denominator)
    if isinstance(node, Call):
        return node.args
    if isinstance(node, Aggregate):
        return tuple(n for n in (node.body, node.where, node.default) if n is not None)
    return ()


def walk(node: Node) -> list[Node]:
    """``node`` and all nodes below it, depth first."""
    out = [node]
    for child in children(node):
        out.extend(walk(child))
    return out
