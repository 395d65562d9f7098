"""The synthetic country: registries and a year of life events for the simulated institutions."""

from haqq.country.arrays import BANK_CODE
from haqq.country.events import (
    count_events,
    export_jsonl,
    iter_events,
    read_info,
    year_bounds,
)
from haqq.country.generate import CountryInfo, generate_country

__all__ = [
    "BANK_CODE",
    "CountryInfo",
    "count_events",
    "export_jsonl",
    "generate_country",
    "iter_events",
    "read_info",
    "year_bounds",
]
