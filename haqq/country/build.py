"""The per-chunk builder: one chunk's persons, families, accounts and year of life events."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import numpy.typing as npt

from haqq.country import names
from haqq.country.arrays import (
    BANK_CODE,
    NO_DAY,
    BoolArray,
    IntArray,
    StrArray,
    _add_years,
    _affine,
    _dates,
    _fins,
    _fixed_width,
    _ibans,
    _jan1,
    _Keys,
    _local_times,
    _opt,
    _pick_by_age,
    _pick_weighted,
)

# Rates per person per year (DOMAIN.md: per 1,000 people about 11 births, 6 deaths,
# 5 disability determinations, 40 employment terminations; ~6 marriages is our own estimate).
BIRTH_RATE = 0.011
DEATH_RATE = 0.006
DISABILITY_GRANT_RATE = 0.005
TERMINATION_RATE = 0.040
MARRIAGE_RATE = 0.006
#: Per mille of those entitled to a pension who never claimed it (the sweep's missed rights).
UNCLAIMED_OLD_AGE_PER_MILLE = 30
UNCLAIMED_DISABILITY_PER_MILLE = 150
DISABILITY_PREVALENCE = 0.06
NON_RESIDENT_SHARE = 0.01
EXPIRED_DOCUMENT_SHARE = 0.005
NO_PHONE_SHARE = 0.02
ACCOUNT_SHARE = 0.40
CLOSED_ACCOUNT_SHARE = 0.006
INCONSISTENT_BIRTH_DATE_SHARE = 0.002
#: A few mothers die within days of giving birth, so the "father receives" path is exercised.
MATERNAL_DEATH_SHARE = 0.003
PENSION_AGE = 65

_LANGS = np.array(["az", "ru", "en"])
_LANG_P = np.array([0.80, 0.15, 0.05])
_PHONE_PREFIXES = np.array(["50", "51", "55", "70", "77", "99", "10"])
_GROUP_P = np.array([0.15, 0.40, 0.45])
_EMPLOYERS = np.array(names.EMPLOYERS)
#: Pensions already paid, by code old * 3 + disability (old: 1 labour, 2 social allowance;
#: disability: 1 labour pension, 2 social allowance).
_PENSIONS = np.array(
    [
        ",".join(p for p in (old, dis) if p)
        for old in ("", "old_age_labour_pension", "elderly_social_allowance")
        for dis in ("", "disability_labour_pension", "disability_social_allowance")
    ]
)
_SECONDS_PER_DAY = 86_400
#: Event ids of chunk c are PREFIX-YEAR-(c * this + k); a chunk has far fewer per source.
_EVENTS_PER_CHUNK = 100_000
#: Rows turned into Python objects at once while writing a chunk.
_ROW_SLICE = 20_000


def _age_weights() -> npt.NDArray[np.float64]:
    """A believable age pyramid for ages 0..100 (median about 33, ~11 % aged 65+)."""
    w = np.zeros(101)
    w[0:5] = 1.2
    w[5:15] = 1.6
    w[15:25] = 1.4
    w[25:45] = 1.65
    w[45:55] = 1.3
    w[55:65] = 1.25
    w[65:75] = 0.75
    w[75:85] = 0.3
    w[85:101] = np.linspace(0.12, 0.005, 16)
    return np.asarray(w / w.sum(), dtype=np.float64)


_AGE_P = _age_weights()


class _ChunkBuilder:
    """Builds one chunk: its persons, their year of events, their bank accounts."""

    def __init__(
        self,
        *,
        rng: np.random.Generator,
        keys: _Keys,
        start: int,
        size: int,
        population: int,
        chunk_no: int,
        year: int,
        offset: str,
    ) -> None:
        self.rng = rng
        self.keys = keys
        self.start = start
        self.n = size
        # Newborns of this chunk get indexes population+start+j: unique without knowing how
        # many were born in earlier chunks, so chunks can be built in parallel.
        self.newborn_start = population + start
        self.chunk_no = chunk_no
        self.year = year
        self.offset = offset
        self.offset_seconds = (int(offset[1:3]) * 60 + int(offset[4:6])) * 60
        if offset[0] == "-":
            self.offset_seconds = -self.offset_seconds
        self.y0 = int(_jan1(year))
        self.y1 = int(_jan1(year + 1))
        self.events: list[tuple[str, str, str, str, int, str, dict[str, Any]]] = []

    # ---- the standing population -----------------------------------------------------------

    def build(
        self,
    ) -> tuple[Iterator[tuple[Any, ...]], list[tuple[Any, ...]], list[tuple[Any, ...]]]:
        rng, n = self.rng, self.n
        self.gid = np.arange(self.start, self.start + n, dtype=np.int64)
        self.age = rng.choice(101, size=n, p=_AGE_P).astype(np.int64)
        # More women than men at old ages, as in every real population.
        p_female = np.clip(0.49 + np.maximum(self.age - 50, 0) * 0.004, 0.49, 0.66)
        self.female = rng.random(n) < p_female
        self.birth = _jan1(self.year - self.age) - rng.integers(0, 365, n)
        self._couples()
        self._parents()
        self._households_and_names()
        self._registry_fields()
        self._events()
        self.persons_count = self.n + len(self.newborn["gid"])
        persons = self._person_rows()
        events = self._event_rows()
        return persons, events, self.accounts

    def _couples(self) -> None:
        rng, age, n = self.rng, self.age, self.n
        p_w = np.select(
            [age < 18, age < 20, age < 25, age < 30, age < 60, age < 70],
            [0.0, 0.10, 0.35, 0.60, 0.78, 0.65],
            0.40,
        )
        p_m = np.select(
            [age < 18, age < 23, age < 28, age < 33, age < 70], [0.0, 0.03, 0.30, 0.60, 0.82], 0.70
        )
        married = rng.random(n) < np.where(self.female, p_w, p_m)
        wives = np.flatnonzero(married & self.female)
        husbands = np.flatnonzero(married & ~self.female)
        k = min(len(wives), len(husbands))
        wives = np.sort(rng.permutation(wives)[:k])
        husbands = np.sort(rng.permutation(husbands)[:k])
        # Pair by rank of age (husbands about three years older, with some noise).
        wives = wives[np.argsort(age[wives] + rng.normal(0, 2.5, k), kind="stable")]
        husbands = husbands[np.argsort(age[husbands] - 3 + rng.normal(0, 2.5, k), kind="stable")]
        self.spouse = np.full(n, -1, dtype=np.int64)
        self.spouse[wives] = husbands
        self.spouse[husbands] = wives
        at_age = 18 + rng.random(k) * np.maximum(np.minimum(age[wives], 35) - 18, 0)
        wed = self.birth[wives] + (at_age * 365.25).astype(np.int64)
        wed = np.maximum(wed, _add_years(self.birth[husbands], 18))
        wed = np.minimum(wed, self.y0 - 1)
        self.married_on = np.full(n, NO_DAY, dtype=np.int64)
        self.married_on[wives] = wed
        self.married_on[husbands] = wed

    def _parents(self) -> None:
        rng, age, n = self.rng, self.age, self.n
        p_link = np.select([age < 18, age < 30, age < 55, age < 70], [1.0, 0.9, 0.8, 0.6], 0.3)
        linked = np.flatnonzero(rng.random(n) < p_link)
        # The mother's age at the birth: mostly 20-35, never under 18 or over 46 (ages are whole
        # years and birthdays fall anywhere in the year, hence a whole-year gap of 19 to 45).
        gap = np.clip(np.rint(rng.normal(27, 5, len(linked))), 19, 45).astype(np.int64)
        women = np.flatnonzero(self.female)
        married_women = np.flatnonzero(self.female & (self.spouse >= 0))
        from_married = rng.random(len(linked)) < 0.88
        target = age[linked] + gap
        mother = np.where(
            from_married,
            _pick_by_age(rng, married_women, age[married_women], target),
            _pick_by_age(rng, women, age[women], target),
        )
        self.mother = np.full(n, -1, dtype=np.int64)
        self.mother[linked] = mother
        has_mother = self.mother >= 0
        father = np.where(has_mother, self.spouse[np.maximum(self.mother, 0)], -1)
        # A few children of married mothers have no father on record.
        father = np.where(rng.random(n) < 0.96, father, -1)
        self.father = np.where(has_mother, father, -1)

    def _households_and_names(self) -> None:
        rng, n = self.rng, self.n
        hh = np.arange(n, dtype=np.int64)
        wives = np.flatnonzero(self.female & (self.spouse >= 0))
        hh[wives] = self.spouse[wives]
        # Minors, and unmarried young adults, live with their mother. Three passes settle
        # three generations (a young mother living with her own mother).
        dependent = (self.mother >= 0) & ((self.age < 18) | ((self.age < 30) & (self.spouse < 0)))
        dep = np.flatnonzero(dependent)
        for _ in range(3):
            hh[dep] = hh[self.mother[dep]]
        self.hh = hh
        lang_root = rng.choice(len(_LANGS), size=n, p=_LANG_P)
        self.lang = lang_root[hh]
        ru_root = rng.random(n) < 0.45
        self.ru_name = (self.lang == 1) & ru_root[hh]
        # Surnames: a random root, the wife takes her husband's, children their father's
        # (else their mother's); repeated so grandchildren follow too.
        n_az, n_ru = len(names.SURNAMES_AZ), len(names.SURNAMES_RU)
        surname = np.where(self.ru_name, n_az + rng.integers(0, n_ru, n), rng.integers(0, n_az, n))
        for _ in range(3):
            surname[wives] = surname[self.spouse[wives]]
            with_father = np.flatnonzero(self.father >= 0)
            surname[with_father] = surname[self.father[with_father]]
            only_mother = np.flatnonzero((self.father < 0) & (self.mother >= 0))
            surname[only_mother] = surname[self.mother[only_mother]]
        self.surname = surname
        self.first = self._first_names(self.female, self.ru_name)
        self.names = self._full_names(self.first, self.surname, self.female)
        self._addresses()

    def _first_names(self, female: BoolArray, ru: BoolArray) -> StrArray:
        rng, n = self.rng, len(female)
        male_all = np.array(names.MALE_AZ + names.MALE_RU)
        female_all = np.array(names.FEMALE_AZ + names.FEMALE_RU)
        m_idx = np.where(
            ru,
            len(names.MALE_AZ) + rng.integers(0, len(names.MALE_RU), n),
            rng.integers(0, len(names.MALE_AZ), n),
        )
        f_idx = np.where(
            ru,
            len(names.FEMALE_AZ) + rng.integers(0, len(names.FEMALE_RU), n),
            rng.integers(0, len(names.FEMALE_AZ), n),
        )
        return np.where(female, female_all[f_idx], male_all[m_idx])

    @staticmethod
    def _full_names(first: StrArray, surname: IntArray, female: BoolArray) -> StrArray:
        male_forms = np.array(names.SURNAMES_AZ + names.SURNAMES_RU)
        female_forms = np.array([names.female_surname(s) for s in male_forms.tolist()])
        last = np.where(female, female_forms[surname], male_forms[surname])
        return np.char.add(np.char.add(first, " "), last)

    def _addresses(self) -> None:
        rng, n = self.rng, self.n
        places = [(c, d, w / len(ds)) for c, w, ds in names.CITIES for d in ds]
        weights = np.array([w for _, _, w in places])
        labels = [f"{c} ş., {d}, " if d != "mərkəz" else f"{c} ş., " for c, d, _ in places]
        # Only household heads need an address of their own; the others share it.
        roots = np.unique(self.hh)
        k = len(roots)
        place = rng.choice(len(places), size=k, p=weights / weights.sum())
        street = rng.integers(0, len(names.STREETS), k)
        house = rng.integers(1, 220, k)
        flat = rng.integers(1, 140, k)
        baku_districts = len(names.CITIES[0][2])
        in_block = (place < baku_districts) | (rng.random(k) < 0.5)
        text = [
            f"{labels[p]}{names.STREETS[s]} {h}, mən. {f}"
            if b
            else f"{labels[p]}{names.STREETS[s]} {h}"
            for p, s, h, f, b in zip(
                place.tolist(),
                street.tolist(),
                house.tolist(),
                flat.tolist(),
                in_block.tolist(),
                strict=True,
            )
        ]
        by_root = np.empty(n, dtype=object)
        by_root[roots] = text
        self.address = by_root[self.hh]

    def _registry_fields(self) -> None:
        rng, n, age, y0 = self.rng, self.n, self.age, self.y0
        self.fin = _fins(self.gid, self.keys)
        self.resident = rng.random(n) >= NON_RESIDENT_SHARE
        self.doc = np.char.add("AZE", _fixed_width(_affine(self.gid, self.keys.doc, 10**8), 8))
        adult_doc = age >= 16
        expired = adult_doc & (rng.random(n) < EXPIRED_DOCUMENT_SHARE)
        valid_until = np.where(
            expired, y0 - rng.integers(1, 1000, n), y0 + 400 + rng.integers(0, 3300, n)
        )
        self.doc_valid_until = np.where(adult_doc, valid_until, -1)
        # The interior ministry's birth date disagrees with the civil registry for a few persons.
        odd = rng.random(n) < INCONSISTENT_BIRTH_DATE_SHARE
        shift = rng.choice(np.array([-365, -31, -1, 1, 10, 365]), size=n)
        self.mia_birth = np.where(odd, self.birth + shift, NO_DAY)
        # Phones: SIM cards are registered to persons aged 16+; a few have none.
        has_phone = (age >= 16) & (rng.random(n) >= NO_PHONE_SHARE)
        code = _affine(self.gid, self.keys.phone, 7 * 10**7)
        phone = np.char.add(
            np.char.add("+994", _PHONE_PREFIXES[code // 10**7]), _fixed_width(code % 10**7, 7)
        )
        self.phone = np.where(has_phone, phone, "")
        # Employment and income.
        p_emp = np.select(
            [age < 18, age < 25, age < 65, age < 71],
            [0.0, 0.35, np.where(self.female, 0.50, 0.72), 0.10],
            0.0,
        )
        self.employed = rng.random(n) < p_emp
        self.employer = rng.integers(0, len(names.EMPLOYERS), n)
        income = np.maximum(np.rint(rng.lognormal(np.log(700), 0.5, n)), 400) * 100
        self.income = np.where(self.employed, income, 0).astype(np.int64)
        self.employment_end = np.full(n, -1, dtype=np.int64)
        # Insurance record and pension capital grow with working years; some have none.
        working_age = np.clip(np.minimum(age, PENSION_AGE) - 18 - rng.uniform(0, 6, n), 0, None)
        share = np.where(self.employed, rng.uniform(0.5, 1.0, n), rng.uniform(0.0, 0.6, n))
        never = ~self.employed & (rng.random(n) < 0.15)
        months = np.where(never, 0, np.rint(working_age * 12 * share)).astype(np.int64)
        self.insurance_months = months
        contribution = np.rint(rng.uniform(0.10, 0.22, n) * np.maximum(income, 50_000))
        self.capital = (months * contribution).astype(np.int64)
        # Disability: ~6 % hold a status, more often with age.
        base = np.select([age < 18, age < 40, age < 55, age < 65], [0.3, 0.6, 1.0, 1.8], 2.5)
        p_dis = np.clip(DISABILITY_PREVALENCE * base / base.mean(), 0, 1)
        disabled = rng.random(n) < p_dis
        self.dis_group = np.where(disabled, rng.choice(3, size=n, p=_GROUP_P) + 1, 0)
        earliest = np.maximum(self.birth, y0 - 20 * 365)
        self.dis_since = np.where(
            disabled, earliest + (rng.random(n) * (y0 - 1 - earliest)).astype(np.int64), -1
        )
        has_until = disabled & (rng.random(n) < 0.30)
        self.dis_until = np.where(has_until, y0 + rng.integers(0, 4 * 365, n), -1)
        # Pensions already paid (for those who reached 65 before this year).
        born_year = self.birth.astype("M8[D]").astype("M8[Y]").astype(np.int64) + 1970
        old = born_year < self.year - PENSION_AGE
        # Kept as a small code into _PENSIONS: strings for every person would cost far more.
        old_code = np.where(months > 0, 1, 2)
        dis_code = np.where((age >= 18) & (months >= 12), 1, 2)
        # A few who could receive a pension never claimed it: the rights the sweep should find.
        # Chosen by a hash of the person, not the generator: the other draws stay as they were.
        unclaimed = (self.gid * 2_654_435_761) % 1000
        old_paid = old & (unclaimed >= UNCLAIMED_OLD_AGE_PER_MILLE)
        dis_paid = disabled & ((unclaimed + 500) % 1000 >= UNCLAIMED_DISABILITY_PER_MILLE)
        self.pensions = np.where(old_paid, old_code, 0) * 3 + np.where(dis_paid, dis_code, 0)
        self.death = np.full(n, -1, dtype=np.int64)
        self._accounts()

    def _accounts(self) -> None:
        rng, n = self.rng, self.n
        has = (self.age >= 18) & (rng.random(n) < ACCOUNT_SHARE)
        idx = np.flatnonzero(has)
        branch = 1000 + rng.integers(0, 100, n)[idx]
        number = _affine(self.gid[idx], self.keys.account, 10**16)
        ibans = _ibans(branch, number)
        adult_from = _add_years(self.birth[idx], 18)
        opened = np.maximum(adult_from, self.y0 - rng.integers(30, 3650, len(idx)))
        closed = rng.random(len(idx)) < CLOSED_ACCOUNT_SHARE
        closed_day = self.y0 + rng.integers(0, self.y1 - self.y0, len(idx))
        opened_s = np.char.add(_dates(opened), "T00:00:00" + self.offset)
        closed_s = np.char.add(_dates(closed_day), "T00:00:00" + self.offset)
        self.accounts = list(
            zip(
                ibans.tolist(),
                self.fin[idx].tolist(),
                [BANK_CODE] * len(idx),
                opened_s.tolist(),
                _opt(closed_s, closed),
                ["issued"] * len(idx),
                ["country"] * len(idx),
                strict=True,
            )
        )

    # ---- the year of events -------------------------------------------------------------------

    def _days(self, k: int) -> IntArray:
        return self.y0 + self.rng.integers(0, self.y1 - self.y0, k)

    def _office_seconds(self, k: int) -> IntArray:
        """Registration times: office hours, 08:00 to 20:00 Baku time."""
        return self.rng.integers(8 * 3600, 20 * 3600, k)

    def _emit(
        self,
        prefix: str,
        source: str,
        etype: str,
        who: IntArray,
        day: IntArray,
        seconds: IntArray,
        payloads: list[dict[str, Any]],
    ) -> None:
        fins = self.fin[who].tolist() if len(who) else []
        local = (day * _SECONDS_PER_DAY + seconds).tolist()
        for fin, t, payload in zip(fins, local, payloads, strict=True):
            self.events.append((prefix, source, etype, fin, t, "", payload))

    def _alive_on(self, who: IntArray, day: IntArray) -> BoolArray:
        d = self.death[who]
        return (d < 0) | (d > day)

    def _events(self) -> None:
        rng, n, age = self.rng, self.n, self.age
        # Deaths first: later events of a person who has died are dropped.
        hazard = 0.0004 + np.exp(-10.5 + 0.095 * age) + np.where(age == 0, 0.004, 0.0)
        dead = _pick_weighted(rng, hazard, int(rng.binomial(n, DEATH_RATE)))
        dday = self._days(len(dead))
        self.death[dead] = dday
        self._emit(
            "CR",
            "civil_registry",
            "death_registered",
            dead,
            dday,
            self._office_seconds(len(dead)),
            [{} for _ in range(len(dead))],
        )
        self._marriages()
        self._births()
        self._disability()
        self._terminations()
        self._age_reached()

    def _marriages(self) -> None:
        rng, n, age = self.rng, self.n, self.age
        free = (self.spouse < 0) & (self.death < 0)
        women = np.flatnonzero(free & self.female & (age >= 19) & (age <= 34))
        men = np.flatnonzero(free & ~self.female & (age >= 21) & (age <= 39))
        k = min(int(rng.binomial(n, MARRIAGE_RATE)), len(women), len(men))
        women = rng.permutation(women)[:k]
        men = rng.permutation(men)[:k]
        women = women[np.argsort(age[women], kind="stable")]
        men = men[np.argsort(age[men], kind="stable")]
        day = self._days(k)
        self.spouse[women] = men
        self.spouse[men] = women
        self.married_on[women] = day
        self.married_on[men] = day
        bride_first = rng.random(k) < 0.5
        subject = np.where(bride_first, women, men)
        other = np.where(bride_first, men, women)
        payloads = [{"spouse_fin": f} for f in self.fin[other].tolist()]
        self._emit(
            "CR",
            "civil_registry",
            "marriage_registered",
            subject,
            day,
            rng.integers(10 * 3600, 18 * 3600, k),
            payloads,
        )

    def _births(self) -> None:
        rng, n, age = self.rng, self.n, self.age
        fertile = self.female & (age >= 18) & (age <= 44)
        weight = np.where(fertile, np.exp(-(((age - 28) / 6.0) ** 2)), 0.0)
        weight = weight * np.where(self.spouse >= 0, 6.0, 1.0)
        mothers = _pick_weighted(rng, weight, int(rng.binomial(n, BIRTH_RATE)))
        day = self._days(len(mothers))
        keep = self._alive_on(mothers, day)
        mothers, day = mothers[keep], day[keep]
        k = len(mothers)
        husband = self.spouse[mothers]
        wed = self.married_on[mothers]
        father = np.where((husband >= 0) & (wed <= day) & (rng.random(k) < 0.97), husband, -1)
        gid = self.newborn_start + np.arange(k, dtype=np.int64)
        female = rng.random(k) < 0.485
        ru = self.ru_name[mothers]
        first = self._first_names(female, ru)
        surname = np.where(father >= 0, self.surname[np.maximum(father, 0)], self.surname[mothers])
        full = self._full_names(first, surname, female)
        fins = _fins(gid, self.keys)
        self.newborn = {
            "gid": gid,
            "fin": fins,
            "name": full,
            "female": female,
            "birth": day,
            "mother": mothers,
            "father": father,
        }
        father_fin = np.where(father >= 0, self.fin[np.maximum(father, 0)], "")
        payloads = [
            {"mother_fin": m, "father_fin": f or None, "child_name": c, "sex": "F" if s else "M"}
            for m, f, c, s in zip(
                self.fin[mothers].tolist(),
                father_fin.tolist(),
                full.tolist(),
                female.tolist(),
                strict=True,
            )
        ]
        seconds = self._office_seconds(k)
        for i, payload in enumerate(payloads):
            self.events.append(
                (
                    "CR",
                    "civil_registry",
                    "birth_registered",
                    str(fins[i]),
                    int(day[i]) * _SECONDS_PER_DAY + int(seconds[i]),
                    "",
                    payload,
                )
            )
        # A few mothers die shortly after giving birth.
        md = (rng.random(k) < MATERNAL_DEATH_SHARE) & (self.death[mothers] < 0)
        md_day = day + rng.integers(0, 21, k)
        md &= md_day < self.y1
        who, when = mothers[md], md_day[md]
        self.death[who] = when
        self._emit(
            "CR",
            "civil_registry",
            "death_registered",
            who,
            when,
            self._office_seconds(len(who)),
            [{} for _ in range(len(who))],
        )

    def _disability(self) -> None:
        rng, n, age = self.rng, self.n, self.age
        base = np.select([age < 18, age < 40, age < 55, age < 65], [0.4, 0.7, 1.0, 1.6], 2.0)
        weight = np.where(self.dis_group == 0, base, 0.0)
        who = _pick_weighted(rng, weight, int(rng.binomial(n, DISABILITY_GRANT_RATE)))
        day = self._days(len(who))
        keep = self._alive_on(who, day)
        who, day = who[keep], day[keep]
        k = len(who)
        group = rng.choice(3, size=k, p=_GROUP_P) + 1
        self.dis_group[who] = group
        self.dis_since[who] = day
        # Children's statuses are reviewed at 18; many group 3 (and some group 2) after 1-2 years.
        review = np.where(rng.random(k) < 0.5, _add_years(day, 1), _add_years(day, 2))
        limited = ((group == 3) & (rng.random(k) < 0.5)) | ((group == 2) & (rng.random(k) < 0.3))
        until = np.where(limited, review, -1)
        until = np.where(age[who] < 17, _add_years(self.birth[who], 18), until)
        self.dis_until[who] = until
        self._emit(
            "DR",
            "disability_registry",
            "disability_status_granted",
            who,
            day,
            self._office_seconds(k),
            [{"group": int(g)} for g in group.tolist()],
        )
        # Statuses whose term ends this year, for those still alive then.
        ending = np.flatnonzero(
            (self.dis_group > 0)
            & (self.dis_until >= self.y0)
            & (self.dis_until < self.y1)
            & (self.dis_until > self.dis_since)
        )
        eday = self.dis_until[ending]
        keep = self._alive_on(ending, eday)
        ending, eday = ending[keep], eday[keep]
        self._emit(
            "DR",
            "disability_registry",
            "disability_status_ended",
            ending,
            eday,
            rng.integers(9 * 3600, 17 * 3600, len(ending)),
            [{} for _ in range(len(ending))],
        )

    def _terminations(self) -> None:
        rng, n = self.rng, self.n
        weight = np.where(self.employed, 1.0, 0.0)
        who = _pick_weighted(rng, weight, int(rng.binomial(n, TERMINATION_RATE)))
        day = self._days(len(who))
        keep = self._alive_on(who, day)
        who, day = who[keep], day[keep]
        self.employment_end[who] = day
        payloads = [{"employer": e} for e in _EMPLOYERS[self.employer[who]].tolist()]
        self._emit(
            "TX",
            "tax_service",
            "employment_terminated",
            who,
            day,
            self._office_seconds(len(who)),
            payloads,
        )

    def _age_reached(self) -> None:
        born_year = self.birth.astype("M8[D]").astype("M8[Y]").astype(np.int64) + 1970
        who = np.flatnonzero(born_year == self.year - PENSION_AGE)
        day = _add_years(self.birth[who], PENSION_AGE)
        keep = (day < self.y1) & self._alive_on(who, day)
        who, day = who[keep], day[keep]
        self._emit(
            "AG",
            "civil_registry",
            "age_reached",
            who,
            day,
            np.zeros(len(who), dtype=np.int64),
            [{"age": PENSION_AGE} for _ in range(len(who))],
        )

    # ---- rows ---------------------------------------------------------------------------------

    def _person_rows(self) -> Iterator[tuple[Any, ...]]:
        """The chunk's persons as SQL rows, made a slice at a time: Python objects for a whole
        chunk would cost several hundred MB, numpy columns a fraction of that."""
        idx_fin = self.fin

        def link(ix: IntArray) -> list[Any]:
            return _opt(idx_fin[np.maximum(ix, 0)], ix >= 0)

        def day(days: IntArray) -> list[Any]:
            return _opt(_dates(np.maximum(days, 0)), days >= 0)

        def any_day(days: IntArray) -> list[Any]:
            return _opt(_dates(np.where(days == NO_DAY, 0, days)), days != NO_DAY)

        sex = np.where(self.female, "F", "M")
        household = self.start + self.hh
        columns: list[Callable[[slice], list[Any]]] = [
            lambda s: self.gid[s].tolist(),
            lambda s: idx_fin[s].tolist(),
            lambda s: self.names[s].tolist(),
            lambda s: sex[s].tolist(),
            lambda s: _dates(self.birth[s]).tolist(),
            lambda s: any_day(self.mia_birth[s]),
            lambda s: day(self.death[s]),
            lambda s: link(self.mother[s]),
            lambda s: link(self.father[s]),
            lambda s: link(self.spouse[s]),
            lambda s: any_day(self.married_on[s]),
            lambda s: household[s].tolist(),
            lambda s: self.address[s].tolist(),
            lambda s: self.resident[s].astype(np.int64).tolist(),
            lambda s: self.doc[s].tolist(),
            lambda s: day(self.doc_valid_until[s]),
            lambda s: _opt(self.phone[s], self.phone[s] != ""),
            lambda s: _LANGS[self.lang[s]].tolist(),
            lambda s: self.employed[s].astype(np.int64).tolist(),
            lambda s: _opt(_EMPLOYERS[self.employer[s]], self.employed[s]),
            lambda s: self.income[s].tolist(),
            lambda s: day(self.employment_end[s]),
            lambda s: self.insurance_months[s].tolist(),
            lambda s: self.capital[s].tolist(),
            lambda s: _PENSIONS[self.pensions[s]].tolist(),
            lambda s: _opt(self.dis_group[s], self.dis_group[s] > 0),
            lambda s: day(self.dis_since[s]),
            lambda s: day(self.dis_until[s]),
        ]
        for first in range(0, self.n, _ROW_SLICE):
            part = slice(first, min(first + _ROW_SLICE, self.n))
            yield from zip(*(column(part) for column in columns), strict=True)
        yield from self._newborn_rows(link)

    def _newborn_rows(self, link: Callable[[IntArray], list[Any]]) -> list[tuple[Any, ...]]:
        idx_fin = self.fin
        nb = self.newborn
        k = len(nb["gid"])
        if k:
            m = nb["mother"]
            f = nb["father"]
            doc = np.char.add("AZE", _fixed_width(_affine(nb["gid"], self.keys.doc, 10**8), 8))
            none = [None] * k
            zero = [0] * k
            nb_cols: list[list[Any]] = [
                nb["gid"].tolist(),
                nb["fin"].tolist(),
                nb["name"].tolist(),
                np.where(nb["female"], "F", "M").tolist(),
                _dates(nb["birth"]).tolist(),
                none,
                none,
                idx_fin[m].tolist(),
                link(f),
                none,
                none,
                (self.start + self.hh[m]).tolist(),
                self.address[m].tolist(),
                self.resident[m].astype(np.int64).tolist(),
                doc.tolist(),
                none,
                none,
                _LANGS[self.lang[m]].tolist(),
                zero,
                none,
                zero,
                none,
                zero,
                zero,
                [""] * k,
                none,
                none,
                none,
            ]
            return list(zip(*nb_cols, strict=True))
        return []

    def _event_rows(self) -> list[tuple[Any, ...]]:
        self.events.sort(key=lambda e: (e[4], e[3], e[2]))
        rows: list[tuple[Any, ...]] = []
        counters: dict[str, int] = {}
        if not self.events:
            return rows
        local = np.array([e[4] for e in self.events], dtype=np.int64)
        stamps = _local_times(local, self.offset).tolist()
        for (prefix, source, etype, fin, _t, _x, payload), stamp in zip(
            self.events, stamps, strict=True
        ):
            counters[prefix] = counters.get(prefix, 0) + 1
            if counters[prefix] >= _EVENTS_PER_CHUNK:
                raise ValueError("too many events of one source in a chunk for the id scheme")
            # Ids are unique per chunk number, so chunks need no shared counter.
            event_id = (
                f"{prefix}-{self.year}-{self.chunk_no * _EVENTS_PER_CHUNK + counters[prefix]:08d}"
            )
            rows.append(
                (
                    self.chunk_no * _EVENTS_PER_CHUNK * 10 + len(rows),
                    event_id,
                    etype,
                    fin,
                    stamp,
                    json.dumps(payload, ensure_ascii=False),
                    source,
                )
            )
        return rows
