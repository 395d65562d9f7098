"""The FIN: the 7-character personal identification code on an Azerbaijani ID card."""

from __future__ import annotations

import re

from haqq.domain.errors import InvalidFin

#: Synthetic FINs avoid letters that read like digits (I, O, Q).
FIN_ALPHABET = "0123456789ABCDEFGHJKLMNPRSTUVWXYZ"
_FIN_RE = re.compile(r"[0-9A-Z]{7}")


def is_fin(value: object) -> bool:
    return isinstance(value, str) and bool(_FIN_RE.fullmatch(value))


def check_fin(value: object) -> str:
    """Return the FIN unchanged, or raise :class:`InvalidFin`."""
    if not is_fin(value):
        raise InvalidFin(value)
    return str(value)
