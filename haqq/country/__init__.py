"""The synthetic country: registries and a year of life events for the simulated institutions."""

from haqq.country.generate import (
    BANK_CODE,
    CountryInfo,
    count_events,
    export_jsonl,
    generate_country,
    iter_events,
    read_info,
    year_bounds,
)

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
