"""Rendering the console: Jinja2 templates in three languages (az, ru, en).

Each page module registers its own strings with :func:`strings`; templates call ``t("key")``.
The language comes from ``?lang=``, else the ``haqq_lang`` cookie, else the browser's
``Accept-Language``, else Azerbaijani.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from haqq.domain.access import Principal
from haqq.domain.money import format_azn

LANGUAGES = ("az", "ru", "en")
LANG_COOKIE = "haqq_lang"
BAKU = ZoneInfo("Asia/Baku")
HERE = Path(__file__).parent

#: key -> language -> text. Filled by the page modules at import (see :func:`strings`).
STRINGS: dict[str, dict[str, str]] = {}


class MissingString(KeyError):
    """A template asked for a string no page module registered."""


def strings(table: Mapping[str, Mapping[str, str]]) -> None:
    """Register a page's strings; each must have all three languages."""
    for key, texts in table.items():
        missing = [lang for lang in LANGUAGES if lang not in texts]
        if missing:
            raise MissingString(f"console string {key!r} has no {', '.join(missing)}")
        STRINGS[key] = dict(texts)


def language_of(request: Request) -> str:
    asked = request.query_params.get("lang") or request.cookies.get(LANG_COOKIE)
    if asked in LANGUAGES:
        return asked
    for part in request.headers.get("accept-language", "").split(","):
        code = part.split(";")[0].strip()[:2].lower()
        if code in LANGUAGES:
            return code
    return "az"


def moment(value: Any) -> str:
    """A moment as people in Baku read it."""
    if isinstance(value, datetime):
        return value.astimezone(BAKU).strftime("%Y-%m-%d %H:%M")
    if isinstance(value, date):
        return value.isoformat()
    return "" if value is None else str(value)


def azn(value: Any) -> str:
    return "" if value is None else format_azn(int(value))


_env = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=select_autoescape(["html", "svg"]),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
_env.filters["moment"] = moment
_env.filters["azn"] = azn


def render(
    request: Request, template: str, principal: Principal | None, context: Mapping[str, Any] | None = None,
    *, status: int = 200,
) -> HTMLResponse:
    lang = language_of(request)

    def t(key: str, **values: Any) -> str:
        texts = STRINGS.get(key)
        if texts is None:
            raise MissingString(f"console string {key!r} is not registered")
        text = texts[lang]
        return text.format(**values) if values else text

    page = _env.get_template(template).render(
        request=request, principal=principal, lang=lang, languages=LANGUAGES, t=t, **(context or {})
    )
    response = HTMLResponse(page, status_code=status)
    if request.query_params.get("lang") in LANGUAGES:
        response.set_cookie(LANG_COOKIE, lang, max_age=365 * 86400, samesite="strict")
    return response
