"""IBAN check digits (ISO 13616 / ISO 7064 MOD 97-10). Pure functions, no I/O."""

from __future__ import annotations

import re

#: Length of an IBAN per country, for the countries haqq meets; others only get the generic check.
IBAN_LENGTHS = {"AZ": 28}

_IBAN_RE = re.compile(r"[A-Z]{2}[0-9]{2}[A-Z0-9]{11,30}")


_DIGITS = str.maketrans({chr(c): str(c - 55) for c in range(ord("A"), ord("Z") + 1)})


def _numeric(text: str) -> int:
    """Letters become two-digit numbers (A=10 … Z=35), as ISO 13616 says."""
    return int(text.translate(_DIGITS))


def iban_is_valid(iban: str) -> bool:
    """True when ``iban`` is well formed and its check digits pass the mod-97 test.

    Spaces are not accepted: an IBAN in haqq is always stored in its electronic form
    (``AZ21NABZ00000000137010001944``), so a space means a formatting bug upstream.
    """
    if not isinstance(iban, str) or not _IBAN_RE.fullmatch(iban):
        return False
    expected = IBAN_LENGTHS.get(iban[:2])
    if expected is not None and len(iban) != expected:
        return False
    return _numeric(iban[4:] + iban[:4]) % 97 == 1


def iban_check_digits(country: str, bban: str) -> str:
    """The two check digits of the IBAN made of ``country`` and ``bban``."""
    if not re.fullmatch(r"[A-Z]{2}", country) or not re.fullmatch(r"[A-Z0-9]+", bban):
        raise ValueError(f"cannot build an IBAN from country {country!r} and BBAN {bban!r}")
    return f"{98 - _numeric(bban + country + '00') % 97:02d}"


def make_iban(country: str, bban: str) -> str:
    """Build a valid IBAN from a country code and a BBAN (e.g. ``"HAQB"`` + 20 digits)."""
    return f"{country}{iban_check_digits(country, bban)}{bban}"
