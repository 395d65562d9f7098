"""The registries' person search over the synthetic country (the embedded mode's stand-in for
the civil registry's search service): by FIN, by phone, or by the start of a name."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

from haqq.domain.errors import InstitutionError
from haqq.domain.fin import is_fin
from haqq.ports import PersonCard

SOURCE = "civil registry (synthetic country)"
_COLUMNS = "fin, name, birth_date, sex, address, phone, language, death_date, mother_fin, father_fin, spouse_fin"


class CountryDirectory:
    def __init__(self, path: Path | str, *, clock: Callable[[], datetime] | None = None) -> None:
        self.path = Path(path)
        self._clock = clock or (lambda: datetime.now(UTC))
        self._local = threading.local()
        self._indexed = False

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            if not self.path.exists():
                raise InstitutionError(f"no country file at {self.path}: generate one first")
            conn = sqlite3.connect(self.path, timeout=30.0, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA busy_timeout=30000")
            if not self._indexed:
                # Name search reads an index of its own (made once, in the registry's file).
                conn.execute("CREATE INDEX IF NOT EXISTS persons_name_nocase ON persons(name COLLATE NOCASE)")
                self._indexed = True
            self._local.conn = conn
        return conn

    def _cards(self, rows: Sequence[tuple[object, ...]]) -> list[PersonCard]:
        if not rows:
            return []
        conn = self._conn()
        fins = [str(r[0]) for r in rows]
        marks = ",".join("?" * len(fins))
        children: dict[str, list[str]] = {}
        for child, mother, father in conn.execute(
            f"SELECT fin, mother_fin, father_fin FROM persons WHERE mother_fin IN ({marks}) OR father_fin IN ({marks})",
            fins + fins,
        ):
            for parent in (mother, father):
                if parent in fins:
                    children.setdefault(str(parent), []).append(str(child))
        now = self._clock()
        cards = []
        for fin, name, birth, sex, address, phone, language, death, mother, father, spouse in rows:
            family: dict[str, list[str]] = {
                "mother": [str(mother)] if mother else [], "father": [str(father)] if father else [],
                "spouse": [str(spouse)] if spouse else [], "children": sorted(children.get(str(fin), [])),
            }
            cards.append(PersonCard(
                fin=str(fin), name=str(name), birth_date=str(birth), sex=str(sex),
                address=str(address) if address else None, phone=str(phone) if phone else None,
                language=str(language) if language else None, death_date=str(death) if death else None,
                family=family, source=SOURCE, read_at=now,
            ))
        return cards

    def search(self, query: str, *, limit: int = 20) -> Sequence[PersonCard]:
        text = " ".join(query.split())
        if not text:
            return []
        conn = self._conn()
        upper = text.upper()
        if is_fin(upper):
            rows = conn.execute(f"SELECT {_COLUMNS} FROM persons WHERE fin = ?", (upper,)).fetchall()
        elif text.lstrip("+").replace(" ", "").isdigit():
            digits = text.replace(" ", "")
            phone = digits if digits.startswith("+") else "+" + digits
            rows = conn.execute(f"SELECT {_COLUMNS} FROM persons WHERE phone IN (?, ?)", (phone, digits)).fetchall()
        else:
            rows = conn.execute(
                f"SELECT {_COLUMNS} FROM persons WHERE name LIKE ? ESCAPE '\\' COLLATE NOCASE ORDER BY name, fin LIMIT ?",
                (text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%", limit),
            ).fetchall()
        return self._cards(rows)

    def card(self, fin: str) -> PersonCard | None:
        return self.cards([fin]).get(fin)

    def cards(self, fins: Sequence[str]) -> Mapping[str, PersonCard]:
        wanted = [f for f in dict.fromkeys(fins) if is_fin(f)]
        if not wanted:
            return {}
        marks = ",".join("?" * len(wanted))
        rows = self._conn().execute(f"SELECT {_COLUMNS} FROM persons WHERE fin IN ({marks})", wanted).fetchall()
        return {c.fin: c for c in self._cards(rows)}
