"""The SMS catalogue: what haqq tells a citizen in each situation, in their language.

Texts live in ``messages.yaml`` (situations, per-program overrides and short program names).
Everything is checked when the catalogue loads, not when a message is sent: each text uses
only its situation's variables, each situation has all three languages, every program of the
program catalogue has a short name, and every text, filled with the longest values it can
get, fits in ``max_segments`` SMS parts. Each error names the file, the line and the problem.
"""

from __future__ import annotations

import functools
import hashlib
import string
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from haqq.domain import sms
from haqq.domain.errors import CatalogueError
from haqq.domain.money import format_azn
from haqq.rules import yamlpos

DEFAULT_PATH = Path(__file__).parent / "messages.yaml"
LANGUAGES = ("az", "ru", "en")
#: The language of a person whose preferred language haqq does not write in.
FALLBACK = "az"
#: The longest value each variable can take, for the cost check.
LONGEST: Mapping[str, str] = {
    "amount": format_azn(9_999_999),
    "code": "9999",
    "bank": "Kapital Bank ASC",
    "case": "C0000000000XXXXXXXXX",
    "period": "2099-12",
    "date": "2099-12-31",
}
#: Where a notify-mode program is claimed, unless the catalogue names a place for it.
DEFAULT_WHERE: Mapping[str, str] = {
    "az": "DOST mərkəzi və ya e-gov.az",
    "ru": "центр DOST или e-gov.az",
    "en": "a DOST centre or e-gov.az",
}


class MessageCatalogueError(CatalogueError):
    """The SMS catalogue is not usable: the message names the file, line and problem."""


def reply_code(case_id: str) -> str:
    """The four digits a reply about this case carries (``YES 4821``, ``STOP 4821``)."""
    return f"{int(hashlib.sha256(case_id.encode()).hexdigest()[:8], 16) % 9000 + 1000}"


@dataclass(frozen=True, slots=True)
class Cost:
    """What one text costs at its longest."""

    situation: str
    program: str | None
    language: str
    encoding: str
    segments: int
    characters: int


@dataclass(frozen=True, slots=True)
class MessageCatalogue:
    max_segments: int
    #: (situation, program or None, language) -> template
    texts: Mapping[tuple[str, str | None, str], str]
    #: program -> language -> short name
    names: Mapping[str, Mapping[str, str]]
    #: program -> language -> where to claim
    places: Mapping[str, Mapping[str, str]]
    situations: frozenset[str]
    version: str

    def language(self, preferred: str | None) -> str:
        return preferred if preferred in LANGUAGES else FALLBACK

    def template(self, situation: str, program: str, language: str) -> str:
        lang = self.language(language)
        found = self.texts.get((situation, program, lang)) or self.texts.get((situation, None, lang))
        if found is None:
            raise MessageCatalogueError(f"no SMS text for situation {situation!r}")
        return found

    def render(self, situation: str, language: str, program: str, **values: Any) -> str:
        """The text for a situation, filled in; ``amount`` in minor units is formatted here."""
        lang = self.language(language)
        fill = dict(values)
        if "amount" in fill and isinstance(fill["amount"], int):
            fill["amount"] = format_azn(fill["amount"])
        fill["program"] = self.names.get(program, {}).get(lang, program)
        fill.setdefault("where", self.places.get(program, DEFAULT_WHERE)[lang])
        return self.template(situation, program, lang).format_map(fill)

    def costs(self) -> list[Cost]:
        """Every text of every program at its longest: encoding, parts and characters."""
        out = []
        for (situation, program, lang), _ in sorted(self.texts.items(), key=lambda kv: str(kv[0])):
            programs = [program] if program else sorted(self.names)
            worst = max(
                (self.render(situation, lang, p, **LONGEST) for p in programs),
                key=lambda t: (sms.segments(t), len(t)),
            )
            out.append(Cost(situation, program, lang, sms.encoding_for(worst), sms.segments(worst), len(worst)))
        return out


def _fields(template: str) -> set[str]:
    try:
        return {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
    except ValueError as exc:
        raise ValueError(f"malformed placeholder: {exc}") from None


def load_messages(
    path: Path | None = None,
    *,
    programs: Mapping[str, Mapping[str, str]] | None = None,
    strict: bool = True,
) -> MessageCatalogue:
    """Read and check the SMS catalogue; ``programs`` (id -> full names by language) are the
    programs it must be able to speak of (a program without a short name uses its full name).

    ``strict``: an entry for a program not in ``programs`` is an error (a typo); the built-in
    catalogue, used with a smaller program catalogue, is read with ``strict=False``."""
    path = path or DEFAULT_PATH
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise MessageCatalogueError(f"{path}: cannot read the SMS catalogue: {exc}") from None
    try:
        import yaml

        raw: Any = yaml.safe_load(text)
        positions = yamlpos.lines(text)
    except Exception as exc:  # yaml.YAMLError and its kin
        raise MessageCatalogueError(f"{path}: not valid YAML: {exc}") from None

    def where(*loc: str | int) -> str:
        line = yamlpos.line_of(positions, loc)
        return f"{path}:{line}" if line else str(path)

    if not isinstance(raw, dict) or not isinstance(raw.get("situations"), dict):
        raise MessageCatalogueError(f"{path}: the SMS catalogue needs a 'situations' mapping")
    max_segments = raw.get("max_segments", 2)
    if not isinstance(max_segments, int) or max_segments < 1:
        raise MessageCatalogueError(f"{where('max_segments')}: max_segments must be a whole number >= 1")
    texts: dict[tuple[str, str | None, str], str] = {}
    allowed: dict[str, set[str]] = {}

    def take(situation: str, program: str | None, body: Any, loc: tuple[str | int, ...]) -> None:
        if not isinstance(body, dict):
            raise MessageCatalogueError(f"{where(*loc)}: {situation}: expected texts by language")
        unknown_lang = set(body) - set(LANGUAGES) - {"variables"}
        if unknown_lang:
            raise MessageCatalogueError(
                f"{where(*loc)}: {situation}: unknown language {sorted(unknown_lang)[0]!r} "
                f"(haqq writes {', '.join(LANGUAGES)})"
            )
        for lang in LANGUAGES:
            if lang not in body:
                if program is None:
                    raise MessageCatalogueError(f"{where(*loc)}: {situation}: no {lang!r} text")
                continue
            template = body[lang]
            if not isinstance(template, str) or not template.strip():
                raise MessageCatalogueError(f"{where(*loc, lang)}: {situation}.{lang}: empty text")
            try:
                used = _fields(template)
            except ValueError as exc:
                raise MessageCatalogueError(f"{where(*loc, lang)}: {situation}.{lang}: {exc}") from None
            bad = used - allowed[situation]
            if bad:
                raise MessageCatalogueError(
                    f"{where(*loc, lang)}: {situation}.{lang}: unknown variable {{{sorted(bad)[0]}}} "
                    f"(this situation provides {', '.join(sorted(allowed[situation]))})"
                )
            texts[(situation, program, lang)] = template

    for situation, body in raw["situations"].items():
        variables = body.get("variables") if isinstance(body, dict) else None
        if not isinstance(variables, list) or not all(isinstance(v, str) for v in variables):
            raise MessageCatalogueError(f"{where('situations', situation)}: {situation}: needs a 'variables' list")
        allowed[situation] = set(variables) | {"program", "where"}
        take(situation, None, body, ("situations", situation))

    names: dict[str, dict[str, str]] = {}
    places: dict[str, dict[str, str]] = {}
    for program, entry in (raw.get("programs") or {}).items():
        if strict and programs is not None and program not in programs:
            raise MessageCatalogueError(f"{where('programs', program)}: no program {program!r} in the catalogue")
        if not isinstance(entry, dict):
            raise MessageCatalogueError(f"{where('programs', program)}: {program}: expected a mapping")
        for key, value in entry.items():
            loc = ("programs", program, key)
            if key in ("name", "where"):
                if not isinstance(value, dict) or set(value) != set(LANGUAGES):
                    raise MessageCatalogueError(f"{where(*loc)}: {program}.{key}: needs az, ru and en")
                (names if key == "name" else places)[program] = {k: str(v) for k, v in value.items()}
            elif key in allowed:
                take(key, program, value, loc)
            else:
                raise MessageCatalogueError(f"{where(*loc)}: {program}: unknown situation {key!r}")
    for program, full in (programs or {}).items():
        names.setdefault(program, dict(full))

    catalogue = MessageCatalogue(
        max_segments=max_segments,
        texts=texts,
        names=names,
        places=places,
        situations=frozenset(allowed),
        version=hashlib.sha256(text.encode()).hexdigest()[:12],
    )
    for cost in catalogue.costs():
        if cost.segments > max_segments:
            at = ("programs", cost.program, cost.situation) if cost.program else ("situations", cost.situation)
            raise MessageCatalogueError(
                f"{where(*at, cost.language)}: {cost.situation}.{cost.language}: {cost.segments} SMS parts "
                f"({cost.characters} characters, {cost.encoding}) at its longest, more than "
                f"max_segments {max_segments}: shorten it"
            )
    return catalogue


@functools.cache
def default_messages() -> MessageCatalogue:
    """The built-in SMS catalogue, loaded and checked once per process."""
    return load_messages(strict=False)
