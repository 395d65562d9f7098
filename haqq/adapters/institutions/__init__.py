"""Institutions haqq talks to: registries, the partner bank, the SMS gateway."""

from haqq.adapters.institutions.simulated import (
    SimulatedBank,
    SimulatedInstitutions,
    SimulatedSmsGateway,
    iban_is_valid,
)

__all__ = ["SimulatedBank", "SimulatedInstitutions", "SimulatedSmsGateway", "iban_is_valid"]
