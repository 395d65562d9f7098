"""Decision tables shared by the rule-language tests (the worked examples of the reference)."""

from __future__ import annotations

from typing import Any

import yaml

DISABILITY = yaml.safe_load(
    """
checks:
  - id: known_person
    require: subject.known
    otherwise: needs_review
    reference: Law on Social Allowances, Article 3 (illustrative)
    reason: {en: the civil registry does not know the person, az: "-", ru: "-"}
  - id: alive
    require: subject.alive
    otherwise: denied
    reference: Law on Social Allowances, Article 3 (illustrative)
    reason: {en: the person is not alive, az: "-", ru: "-"}
  - id: resident
    require: subject.resident
    otherwise: denied
    reference: Law on Social Allowances, Article 4 (illustrative)
    reason: {en: the person is not resident, az: "-", ru: "-"}
  - id: disability_active
    require: subject.disability_active
    otherwise: denied
    reference: Law on Social Allowances, Article 7 (illustrative)
    reason: {en: no active disability status, az: "-", ru: "-"}
  - id: not_already_paid
    require: not already_paid
    otherwise: denied
    reference: Law on Social Allowances, Article 11 (illustrative)
    reason: {en: already paid, az: "-", ru: "-"}
amount:
  - id: labour_pension_for_disability
    reference: Law on Labour Pensions, Article 9.2 (illustrative)
    when: subject.pension_capital >= param.minimum_capital
    value: >-
      max(div(subject.pension_capital, param.capital_months, "half_up"),
          param.labour_pension_minimum)
  - id: social_allowance_group_1
    reference: Law on Social Allowances, Article 7.1.1 (illustrative)
    when: subject.disability_group == 1
    value: param.allowance_group_1
  - id: social_allowance_group_2
    reference: Law on Social Allowances, Article 7.1.2 (illustrative)
    when: subject.disability_group == 2
    value: param.allowance_group_2
  - id: social_allowance_group_3
    reference: Law on Social Allowances, Article 7.1.3 (illustrative)
    value: param.allowance_group_3
parameters:
  minimum_capital:
    unit: qepik
    values:
      - {from: 2020-01-01, value: 1200000, reference: "Law on Labour Pensions, Art. 9.1"}
  capital_months:
    unit: months
    values:
      - {from: 2020-01-01, value: 144, reference: "Law on Labour Pensions, Art. 9.3"}
  labour_pension_minimum:
    unit: qepik
    values:
      - {from: 2020-01-01, value: 24000, reference: "Decree No. 77 of 2019"}
      - {from: 2025-01-01, value: 28000, reference: "Decree No. 305 of 2024"}
  allowance_group_1:
    unit: qepik
    values:
      - {from: 2020-01-01, value: 22000, reference: "Law on Social Allowances, Art. 7.1.1"}
  allowance_group_2:
    unit: qepik
    values:
      - {from: 2020-01-01, value: 18000, reference: "Law on Social Allowances, Art. 7.1.2"}
  allowance_group_3:
    unit: qepik
    values:
      - {from: 2020-01-01, value: 14000, reference: "Law on Social Allowances, Art. 7.1.3"}
"""
)

FUNERAL = yaml.safe_load(
    """
checks:
  - id: deceased
    require: subject.known and not subject.alive and subject.death_registered
    otherwise: needs_review
    reference: Law on Social Benefits, Article 15.1 (illustrative)
    reason: {en: the civil registry does not confirm the death, az: "-", ru: "-"}
  - id: someone_to_pay
    require: >-
      subject.spouse.alive
      or count(c for c in subject.children if c.alive and age(c.birth_date) >= 18) > 0
    otherwise: needs_review
    reference: Law on Social Benefits, Article 15.3 (illustrative)
    reason: {en: no living spouse and no living adult child, az: "-", ru: "-"}
  - id: not_already_paid
    require: not already_paid
    otherwise: denied
    reference: Law on Social Benefits, Article 15.4 (illustrative)
    reason: {en: already paid for this death, az: "-", ru: "-"}
amount:
  - id: to_spouse
    reference: Law on Social Benefits, Article 15.2 (illustrative)
    when: subject.spouse.alive
    value: param.amount
  - id: to_adult_child
    reference: Law on Social Benefits, Article 15.2 (illustrative)
    value: param.amount
parameters:
  amount:
    unit: qepik
    values:
      - {from: 2020-01-01, value: 15000, reference: "Cabinet of Ministers Decision No. 112"}
"""
)


def table_data(name: str) -> dict[str, Any]:
    return {"disability": DISABILITY, "funeral": FUNERAL}[name]
