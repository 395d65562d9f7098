"""The disability payment rule as a minimal OpenFisca tax-benefit system (benchmark only).

One entity (the person), the rule's inputs as input variables, the decision as formulas with
the same checks and amount branches, in the same order, as ``disability_payment.yaml``, and its
parameters as OpenFisca parameters with their dates, taken from the catalogue. Dates are day
numbers (days since 1970-01-01). Needs ``openfisca-core`` (``pip install -e ".[bench]"``).
"""

from __future__ import annotations

from datetime import date
from typing import Any

import numpy as np

OUTCOMES = ("granted", "denied", "needs_review")
GRANTED, DENIED, REVIEW = 0, 1, 2
#: The rows of the table, in order: the code of the deciding branch is its index.
BRANCHES = (
    "beneficiary_known", "beneficiary_alive", "identity_valid", "resident", "consistent_records",
    "disability_active", "no_disability_pension_yet", "not_already_paid",
    "labour_pension_for_disability",
    "social_allowance_group_1", "social_allowance_group_2", "social_allowance_group_3",
)
#: Input variables: name -> value type.
INPUTS: dict[str, type] = {
    "beneficiary_known": bool, "beneficiary_alive": bool, "beneficiary_identity_known": bool,
    "beneficiary_document_valid": bool, "beneficiary_resident": bool,
    "beneficiary_identity_birth_date": int, "beneficiary_birth_date": int,
    "disability_active": bool, "receives_disability_pension": bool, "already_paid": bool,
    "pension_capital": int, "disability_group": int,
}
#: What each check decides when it fails, in order.
CHECK_RESULTS = [REVIEW, DENIED, REVIEW, DENIED, REVIEW, DENIED, DENIED, DENIED]
CHECKS = len(CHECK_RESULTS)
PARAMETERS = (
    "minimum_capital", "capital_months", "labour_pension_minimum",
    "allowance_group_1", "allowance_group_2", "allowance_group_3",
)


class OpenFiscaMissing(RuntimeError):
    pass


def _div_half_up(n: Any, d: Any) -> Any:
    d = np.where(d > 0, d, 1)
    q = (2 * np.abs(n) + d) // (2 * d)
    return np.where(n < 0, -q, q)


def build_system(history: dict[str, list[tuple[date, int]]]) -> Any:
    """The tax-benefit system; ``history``: per parameter, its (from, value) pairs."""
    try:
        from openfisca_core.entities import build_entity  # type: ignore[import-untyped,import-not-found,unused-ignore]
        from openfisca_core.parameters import ParameterNode  # type: ignore[import-untyped,import-not-found,unused-ignore]
        from openfisca_core.periods import MONTH  # type: ignore[import-untyped,import-not-found,unused-ignore]
        from openfisca_core.taxbenefitsystems import TaxBenefitSystem  # type: ignore[import-untyped,import-not-found,unused-ignore]
        from openfisca_core.variables import Variable  # type: ignore[import-untyped,import-not-found,unused-ignore]
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise OpenFiscaMissing(
            "OpenFisca is not installed: pip install -e \".[bench]\" (or run with --no-openfisca)"
        ) from exc

    person = build_entity(key="person", plural="persons", label="A person", is_person=True)

    def input_variable(name: str, kind: type) -> type:
        return type(name, (Variable,), {
            "value_type": kind, "entity": person, "definition_period": MONTH,
            "label": name, "default_value": False if kind is bool else 0,
        })

    def values(persons: Any, period: Any, parameters: Any) -> list[Any]:
        """The amount of each amount branch, in order."""
        p = parameters(period).disability_payment
        capital = persons("pension_capital", period)
        labour = np.maximum(_div_half_up(capital, p.capital_months), p.labour_pension_minimum)
        same = np.zeros_like(capital)
        return [labour, same + p.allowance_group_1, same + p.allowance_group_2, same + p.allowance_group_3]

    def branch_formula(persons: Any, period: Any, parameters: Any) -> Any:
        """The deciding row: the first failing check, else the first amount branch that holds."""
        p = parameters(period).disability_payment
        capital = persons("pension_capital", period)
        group = persons("disability_group", period)
        conditions = [
            ~persons("beneficiary_known", period),
            ~persons("beneficiary_alive", period),
            ~(persons("beneficiary_identity_known", period) & persons("beneficiary_document_valid", period)),
            ~persons("beneficiary_resident", period),
            persons("beneficiary_identity_birth_date", period) != persons("beneficiary_birth_date", period),
            ~persons("disability_active", period),
            persons("receives_disability_pension", period),
            persons("already_paid", period),
            capital >= p.minimum_capital,
            group == 1,
            group == 2,
        ]
        return np.select(conditions, list(range(len(conditions))), default=len(conditions))

    def amount_formula(persons: Any, period: Any, parameters: Any) -> Any:
        branch = persons("disability_branch", period)
        amounts = values(persons, period, parameters)
        value = np.select([branch == CHECKS + j for j in range(len(amounts))], amounts, default=0)
        return np.where(value > 0, value, 0)

    def outcome_formula(persons: Any, period: Any, parameters: Any) -> Any:
        branch = persons("disability_branch", period)
        amount = persons("disability_payment", period)
        by_check = np.array(CHECK_RESULTS + [GRANTED] * (len(BRANCHES) - CHECKS))
        outcome = by_check[branch]
        return np.where((branch >= CHECKS) & (amount <= 0), REVIEW, outcome)

    outputs = {
        "disability_branch": branch_formula,
        "disability_payment": amount_formula,
        "disability_outcome": outcome_formula,
    }

    class System(TaxBenefitSystem):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__([person])
            for name, kind in INPUTS.items():
                self.add_variable(input_variable(name, kind))
            for name, formula in outputs.items():
                self.add_variable(type(name, (Variable,), {
                    "value_type": int, "entity": person, "definition_period": MONTH,
                    "label": name, "formula": formula,
                }))
            data = {
                "disability_payment": {
                    name: {"values": {d.isoformat(): {"value": v} for d, v in history[name]}}
                    for name in PARAMETERS
                }
            }
            self.parameters = ParameterNode("", data=data)

    return System()


def situation(inputs: dict[str, np.ndarray], day: date) -> dict[str, Any]:
    """The persons as an OpenFisca situation (the input its simulation builder documents)."""
    period = f"{day.year:04d}-{day.month:02d}"
    names = list(inputs)
    columns = [inputs[n].tolist() for n in names]
    return {
        "persons": {
            f"p{i}": {name: {period: column[i]} for name, column in zip(names, columns, strict=True)}
            for i in range(len(columns[0]))
        }
    }


def run(
    system: Any, inputs: dict[str, np.ndarray], day: date, *, entities: dict[str, Any] | None = None
) -> dict[str, np.ndarray]:
    """Build a simulation and calculate: from a situation (``entities``) when given, else from
    the arrays (one per input variable) set directly."""
    from openfisca_core.simulations import SimulationBuilder  # type: ignore[import-untyped,import-not-found,unused-ignore]

    period = f"{day.year:04d}-{day.month:02d}"
    builder = SimulationBuilder()
    if entities is not None:
        simulation = builder.build_from_entities(system, entities)
    else:
        n = len(next(iter(inputs.values())))
        builder.create_entities(system)
        builder.declare_person_entity("person", np.arange(n))
        simulation = builder.build(system)
        for name, values in inputs.items():
            simulation.set_input(name, period, values)
    return {
        "outcome": simulation.calculate("disability_outcome", period),
        "branch": simulation.calculate("disability_branch", period),
        "amount": simulation.calculate("disability_payment", period),
    }
