"""Vectorised numpy helpers of the country generator: code bijections, dates, picks, IBANs."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import numpy.typing as npt

from haqq.country.schema import BAKU
from haqq.domain.fin import FIN_ALPHABET

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
StrArray = npt.NDArray[np.str_]

#: The partner bank's code inside its IBANs (``AZkk HAQB nnnn…``).
BANK_CODE = "HAQB"
MAX_POPULATION = 50_000_000
#: "No date" for day columns that can hold dates before 1970 (negative day numbers); the
#: others, all later than 1970, use -1.
NO_DAY = -1_000_000


@dataclass(frozen=True, slots=True)
class _Keys:
    """Per-seed constants of the bijections that give FINs, phones, documents, accounts."""

    fin: tuple[int, int]
    phone: tuple[int, int]
    doc: tuple[int, int]
    account: tuple[int, int]


def _coprime(rng: np.random.Generator, low: int, high: int, primes: tuple[int, ...]) -> int:
    """A multiplier in ``[low, high)`` sharing no prime factor (``primes``) with the modulus."""
    while True:
        a = int(rng.integers(low, high))
        if all(a % p for p in primes):
            return a


#: Multipliers stay below this so that ``a * index`` fits in int64 for any allowed index.
_MAX_MULTIPLIER = 2**62 // (2 * MAX_POPULATION)


def _keys(seed: int) -> _Keys:
    rng = np.random.default_rng([seed, 0x4A51])
    fin_mod = len(FIN_ALPHABET) ** 7
    top = _MAX_MULTIPLIER
    return _Keys(
        fin=(
            _coprime(rng, fin_mod // 7, min(fin_mod, top), (3, 11)),
            int(rng.integers(0, fin_mod)),
        ),
        phone=(_coprime(rng, 10**7, 7 * 10**7, (2, 5, 7)), int(rng.integers(0, 7 * 10**7))),
        doc=(_coprime(rng, 10**7, 10**8, (2, 5)), int(rng.integers(0, 10**8))),
        account=(_coprime(rng, 10**9, top, (2, 5)), int(rng.integers(0, 10**16))),
    )


def _affine(index: IntArray, key: tuple[int, int], modulus: int) -> IntArray:
    """A bijection on ``[0, modulus)`` (``a`` is coprime with it): distinct persons never clash.

    Indexes stay below ``2 * MAX_POPULATION`` and ``a`` below :data:`_MAX_MULTIPLIER`, so the
    product is exact in int64.
    """
    a, b = key
    if len(index) and int(index.max()) >= 2 * MAX_POPULATION:
        raise ValueError("person index out of range for the code bijections")
    return (a * index + b) % modulus


def _fixed_width(values: IntArray, width: int, alphabet: str = "0123456789") -> StrArray:
    """Write non-negative integers in ``alphabet``'s base, zero-padded to ``width``."""
    base = len(alphabet)
    table = np.frombuffer(alphabet.encode("ascii"), dtype=np.uint8)
    out = np.empty((len(values), width), dtype=np.uint8)
    rest = values.copy()
    for pos in range(width - 1, -1, -1):
        rest, digit = np.divmod(rest, base)
        out[:, pos] = table[digit]
    return out.view(f"S{width}").ravel().astype(f"U{width}")


def _fins(index: IntArray, keys: _Keys) -> StrArray:
    return _fixed_width(_affine(index, keys.fin, len(FIN_ALPHABET) ** 7), 7, FIN_ALPHABET)


@functools.cache
def _date_table() -> tuple[int, StrArray]:
    """``YYYY-MM-DD`` for every day of 1850-2199: indexing a table beats formatting each date."""
    first = int(np.datetime64("1850-01-01", "D").astype(np.int64))
    last = int(np.datetime64("2200-01-01", "D").astype(np.int64))
    days = np.arange(first, last, dtype=np.int64)
    return first, np.datetime_as_string(days.astype("M8[D]"), unit="D")


def _dates(days: IntArray) -> StrArray:
    """Days since 1970-01-01 → ``YYYY-MM-DD``."""
    first, table = _date_table()
    return table[days - first]


def _local_times(local_seconds: IntArray, offset: str) -> StrArray:
    """Local (Baku wall-clock) seconds since 1970 → ISO 8601 with the offset appended."""
    text = np.datetime_as_string(local_seconds.astype("M8[s]"), unit="s")
    return np.char.add(text, offset)


def _jan1(years: IntArray | int) -> IntArray:
    """Day number of 1 January of each year."""
    y = np.asarray(years, dtype=np.int64) - 1970
    return y.astype("M8[Y]").astype("M8[D]").astype(np.int64)


def _add_years(days: IntArray, years: int | IntArray) -> IntArray:
    """The same month and day ``years`` later (29 February becomes 1 March)."""
    d = days.astype("M8[D]")
    month_start = d.astype("M8[M]")
    year_start = d.astype("M8[Y]")
    month_of_year = (month_start - year_start.astype("M8[M]")).astype(np.int64)
    day_of_month = (d - month_start.astype("M8[D]")).astype(np.int64)
    target_year = year_start.astype(np.int64) + np.asarray(years, dtype=np.int64)
    target_month = target_year * 12 + month_of_year
    first_of_month = target_month.astype("M8[M]").astype("M8[D]").astype(np.int64)
    return np.asarray(first_of_month + day_of_month, dtype=np.int64)


def _pick_weighted(rng: np.random.Generator, weights: npt.NDArray[np.float64], k: int) -> IntArray:
    """``k`` distinct indexes drawn with probability proportional to ``weights`` (0 = never).

    Efraimidis–Spirakis: the k largest ``log(u) / w`` are a weighted sample without replacement.
    """
    eligible = np.flatnonzero(weights > 0)
    k = min(k, len(eligible))
    if k == 0:
        return np.empty(0, dtype=np.int64)
    u = rng.random(len(eligible))
    keys = np.log(u) / weights[eligible]
    top = np.argpartition(-keys, k - 1)[:k]
    return eligible[np.sort(top)].astype(np.int64)


def _pick_by_age(
    rng: np.random.Generator, pool: IntArray, pool_age: IntArray, target_age: IntArray
) -> IntArray:
    """For each target age, a random member of ``pool`` with exactly that age, or -1."""
    order = np.argsort(pool_age, kind="stable")
    sorted_age = pool_age[order]
    left = np.searchsorted(sorted_age, target_age, "left")
    right = np.searchsorted(sorted_age, target_age, "right")
    found = right > left
    pick = left + np.floor(rng.random(len(target_age)) * (right - left)).astype(np.int64)
    pick = np.minimum(pick, max(len(pool) - 1, 0))
    if len(pool) == 0:
        return np.full(len(target_age), -1, dtype=np.int64)
    return np.where(found, pool[order][pick], -1)


def _baku_offset(year: int) -> str:
    """The UTC offset of Asia/Baku in ``year``, checked to be constant (true since 2016)."""
    offsets = {
        datetime(year, month, 15, 12, tzinfo=BAKU).utcoffset() for month in (1, 4, 7, 10, 12)
    }
    if len(offsets) != 1:
        raise ValueError(
            f"year {year}: Asia/Baku changed its UTC offset during the year; the generator "
            "needs a fixed offset (any year from 2017 on)"
        )
    (offset,) = offsets
    if offset is None:  # pragma: no cover - zoneinfo always gives an offset for aware times
        raise ValueError("Asia/Baku has no UTC offset")
    minutes = int(offset.total_seconds()) // 60
    sign = "+" if minutes >= 0 else "-"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def _opt(values: npt.NDArray[Any], present: BoolArray) -> list[Any]:
    """``values`` as a Python list with None where not ``present`` (SQL NULL)."""
    out = values.astype(object)
    out[~present] = None
    return out.tolist()  # type: ignore[no-any-return]


def _ibans(branch: IntArray, number: IntArray) -> StrArray:
    """Vectorised ``AZkk HAQB bbbb nnnnnnnnnnnnnnnn`` with ISO 7064 mod-97 check digits.

    The check is computed on ``HAQB`` + 20 digits + ``AZ00`` read as one number; the parts are
    reduced mod 97 separately so everything stays inside int64.
    """
    bank_num = int("".join(str(int(c, 36)) for c in BANK_CODE))  # HAQB -> 17102611
    country_tail = int("".join(str(int(c, 36)) for c in "AZ") + "00")  # AZ00 -> 103500
    # Layout: [bank_num][branch: 4 digits][number: 16 digits][country_tail: 6 digits]
    r = (
        bank_num % 97 * pow(10, 26, 97)
        + branch % 97 * pow(10, 22, 97)
        + number % 97 * pow(10, 6, 97)
        + country_tail
    ) % 97
    check = 98 - r
    text = np.char.add(np.char.add("AZ", _fixed_width(check, 2)), BANK_CODE)
    return np.char.add(np.char.add(text, _fixed_width(branch, 4)), _fixed_width(number, 16))
