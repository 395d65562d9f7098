"""The rule language: safe, typed, total expressions and decision tables, with two backends.

- :func:`load_schema` reads the fact schema (``haqq/rules/facts.yaml``): every fact a rule can
  read, its type, the institution field it comes from and its default.
- :func:`load_table` parses and type-checks a decision table (checks, amount branches,
  parameters) once.
- :class:`Interpreter` evaluates a table for one case and returns the result and a trace.
- :class:`VectorProgram` (and :func:`evaluate_programs`) evaluate tables for a whole population
  with Polars; :func:`to_frames` builds the frames from cases.

The language is documented for policy staff in ``docs/rules-language.md``.
"""

from typing import TYPE_CHECKING, Any

from haqq.rules.lang.interpret import (
    Case,
    Evaluation,
    FactRead,
    Interpreter,
    ParameterRead,
    Result,
    Trace,
)
from haqq.rules.lang.parse import Scope, parse_expression
from haqq.rules.lang.schema import DEFAULT_SCHEMA, FactSpec, Person, Schema, load_schema
from haqq.rules.lang.semantics import Undefined, add_days, add_months, age_at, div, months_between
from haqq.rules.lang.table import (
    Branch,
    Check,
    Parameter,
    ParameterValue,
    Table,
    load_table,
    load_table_file,
)
from haqq.rules.lang.types import FactError, Node, Outcome, RuleError, Type

if TYPE_CHECKING:
    from haqq.rules.lang.vector import (
        CHILD_PARENT,
        VectorProgram,
        column,
        evaluate_programs,
        to_frames,
    )

#: The vectorised backend needs Polars, which takes a while to import: it is loaded on first use,
#: so commands that decide person by person (the pipeline, the CLI) start quickly.
_VECTOR = {"CHILD_PARENT", "VectorProgram", "column", "evaluate_programs", "to_frames"}


def __getattr__(name: str) -> Any:
    if name in _VECTOR:
        from haqq.rules.lang import vector

        return getattr(vector, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = [
    "CHILD_PARENT",
    "DEFAULT_SCHEMA",
    "Branch",
    "Case",
    "Check",
    "Evaluation",
    "FactError",
    "FactRead",
    "FactSpec",
    "Interpreter",
    "Node",
    "Outcome",
    "Parameter",
    "ParameterRead",
    "ParameterValue",
    "Person",
    "Result",
    "RuleError",
    "Schema",
    "Scope",
    "Table",
    "Trace",
    "Type",
    "Undefined",
    "VectorProgram",
    "add_days",
    "add_months",
    "age_at",
    "column",
    "div",
    "evaluate_programs",
    "load_schema",
    "load_table",
    "load_table_file",
    "months_between",
    "parse_expression",
    "to_frames",
]
