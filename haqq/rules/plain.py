"""A decision's trace in plain language, in Azerbaijani, Russian or English.

For caseworkers and citizens: what was decided, by which rule and law, which data it rested on
(which institution said what) and which amounts and thresholds applied (since when, by which act).
Pure: takes a stored trace (``Decision.as_dict()`` with its ``sources``) and returns lines.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from haqq.domain.money import format_azn

LANGUAGES = ("az", "ru", "en")

_WORDS: Mapping[str, Mapping[str, str]] = {
    "title": {
        "en": "{program} for {fin}, as of {date}",
        "az": "{program}: {fin}, {date} tarixinə",
        "ru": "{program}: {fin}, на {date}",
    },
    "granted": {"en": "Granted: {amount}.", "az": "Təyin edildi: {amount}.", "ru": "Назначено: {amount}."},
    "granted_monthly": {
        "en": "Granted: {amount} a month.", "az": "Təyin edildi: ayda {amount}.", "ru": "Назначено: {amount} в месяц.",
    },
    "denied": {"en": "Not granted.", "az": "Təyin edilmədi.", "ru": "Не назначено."},
    "needs_review": {
        "en": "A caseworker must decide.", "az": "Qərarı əməkdaş verməlidir.", "ru": "Решение должен принять специалист.",
    },
    "stop": {"en": "Payments stop.", "az": "Ödənişlər dayandırılır.", "ru": "Выплаты прекращаются."},
    "why": {"en": "Why", "az": "Səbəb", "ru": "Почему"},
    "rule": {"en": "rule", "az": "qayda", "ru": "правило"},
    "met": {"en": "all conditions are met", "az": "bütün şərtlər ödənilir", "ru": "все условия выполнены"},
    "passed": {"en": "Checks passed", "az": "Keçilmiş yoxlamalar", "ru": "Пройденные проверки"},
    "data": {"en": "Data used", "az": "İstifadə olunan məlumatlar", "ru": "Использованные данные"},
    "from": {"en": "from", "az": "mənbə", "ru": "источник"},
    "message": {"en": "message", "az": "mesaj", "ru": "сообщение"},
    "default": {
        "en": "not on record: the rule's default", "az": "qeyd yoxdur: qaydanın standart dəyəri",
        "ru": "нет сведений: значение по умолчанию",
    },
    "params": {"en": "Amounts and thresholds", "az": "Məbləğlər və hədlər", "ru": "Суммы и пороги"},
    "since": {"en": "in force since", "az": "qüvvədədir", "ru": "действует с"},
    "basis": {"en": "Legal basis", "az": "Hüquqi əsas", "ru": "Правовое основание"},
    "catalogue": {"en": "catalogue version", "az": "kataloq versiyası", "ru": "версия каталога"},
}


def _w(key: str, lang: str) -> str:
    return _WORDS[key][lang]


def _value(name: str, value: Any) -> str:
    if isinstance(value, bool):
        return {True: "yes", False: "no"}[value]
    if isinstance(value, list):
        return "[" + ", ".join(_value(name, v) for v in value) + "]"
    if isinstance(value, int) and ("income" in name or "capital" in name or "amount" in name):
        return format_azn(value)
    return str(value)


def explain(
    trace: Mapping[str, Any],
    *,
    program_name: str,
    fin: str,
    lang: str = "en",
    monthly: bool = False,
    legal_basis: Mapping[str, str] | None = None,
    units: Mapping[str, str] | None = None,
    catalogue_version: str | None = None,
) -> list[str]:
    """The lines that explain one decision."""
    if lang not in LANGUAGES:
        raise ValueError(f"language {lang!r}: choose one of {', '.join(LANGUAGES)}")
    lines = [_w("title", lang).format(program=program_name, fin=fin, date=trace.get("date") or "")]
    outcome = trace["outcome"]
    if outcome == "granted":
        key = "granted_monthly" if monthly else "granted"
        lines.append(_w(key, lang).format(amount=format_azn(int(trace["amount"]))))
    else:
        lines.append(_w(outcome, lang))
    for reason in trace.get("reasons", []):
        text = (reason.get("texts") or {}).get(lang) or (
            _w("met", lang) if reason.get("text") == "all conditions are met" else reason.get("text")
        )
        lines.append(f"{_w('why', lang)}: {text} ({_w('rule', lang)} {reason['code']}; {reason['reference']})")
    if trace.get("checks_passed"):
        lines.append(f"{_w('passed', lang)}: {', '.join(trace['checks_passed'])}")
    sources: Mapping[str, Mapping[str, str]] = trace.get("sources") or {}
    if trace.get("facts"):
        lines.append(f"{_w('data', lang)}:")
        for fact in trace["facts"]:
            where = fact["source"]
            if where == "default":
                origin = _w("default", lang)
            elif where == "caller":
                origin = "haqq"
            else:
                src = sources.get(where) or {}
                origin = f"{_w('from', lang)} {where}"
                if src:
                    origin += f", {_w('message', lang)} {src.get('message_id')} ({src.get('answered_at')})"
            lines.append(f"  {fact['name']} = {_value(fact['name'], fact['value'])} ({origin})")
    if trace.get("parameters"):
        lines.append(f"{_w('params', lang)}:")
        for p in trace["parameters"]:
            unit = (units or {}).get(p["name"])
            shown = format_azn(p["value"]) if unit == "qepik" else f"{p['value']} {unit or ''}".strip()
            lines.append(
                f"  {p['name']} = {shown} ({_w('since', lang)} {p['effective_from']}; {p['reference']})"
            )
    if legal_basis:
        lines.append(
            f"{_w('basis', lang)}: {legal_basis.get('act')}, {legal_basis.get('article')} "
            f"{legal_basis.get('url', '')}".rstrip()
        )
    if catalogue_version:
        lines.append(f"{_w('catalogue', lang)} {catalogue_version}, {trace.get('program')} v{trace.get('program_version')}")
    return lines
