"""The texts haqq sends, in the citizen's language (az, ru, en). Short: every segment costs."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

from haqq.domain.money import format_azn

LANGUAGES = ("az", "ru", "en")

TEMPLATES: Mapping[str, Mapping[str, str]] = {
    "granted": {
        "az": "{program} təyin edildi: {amount}. {how} Səbəb və etiraz: haqq.gov.az/{case}",
        "ru": "Вам назначено: {program}, {amount}. {how} Подробнее и обжалование: haqq.gov.az/{case}",
        "en": "Granted: {program}, {amount}. {how} Details and appeal: haqq.gov.az/{case}",
    },
    "consent_request": {
        "az": "Sizə {program} ({amount}) düşür. Razısınızsa HƏ {code}, imtina üçün YOX {code} yazın.",
        "ru": "Вам положено: {program} ({amount}). Согласны? Ответьте ДА {code}, отказ: НЕТ {code}.",
        "en": "You are entitled to {program} ({amount}). Reply YES {code} to accept, NO {code} to decline.",
    },
    "reminder": {
        "az": "Xatırlatma: {program} ({amount}). Razısınızsa HƏ {code}, imtina üçün YOX {code} yazın.",
        "ru": "Напоминание: {program} ({amount}). Ответьте ДА {code} или НЕТ {code}.",
        "en": "Reminder: {program} ({amount}). Reply YES {code} or NO {code}.",
    },
    "may_claim": {
        "az": "Sizə {program} ({amount}/ay) düşə bilər. DOST mərkəzində və ya e-gov.az-da müraciət edin.",
        "ru": "Вам может полагаться: {program} ({amount}/мес). Обратитесь в центр DOST или на e-gov.az.",
        "en": "You may be entitled to {program} ({amount}/month). Claim it at a DOST centre or e-gov.az.",
    },
    "declined": {
        "az": "{program} üzrə imtinanız qeydə alındı. Fikrinizi dəyişsəniz: haqq.gov.az/{case}",
        "ru": "Ваш отказ от выплаты «{program}» принят. Если передумаете: haqq.gov.az/{case}",
        "en": "Your decision to decline {program} is recorded. To change it: haqq.gov.az/{case}",
    },
}

HOW: Mapping[str, Mapping[str, str]] = {
    "account": {
        "az": "Məbləğ {bank} bankındakı hesabınıza ödənilir.",
        "ru": "Сумма будет зачислена на ваш счёт в банке {bank}.",
        "en": "It is paid to your account at {bank}.",
    },
    "card": {
        "az": "{bank} bankı sizə kart açdı; istənilən filialdan götürün.",
        "ru": "Банк {bank} выпустил вам карту; получите её в любом отделении.",
        "en": "{bank} has issued you a card: collect it at any branch.",
    },
}


def reply_code(case_id: str) -> str:
    """A short code a consent reply must carry: four digits derived from the case."""
    return f"{int(hashlib.sha256(case_id.encode()).hexdigest()[:8], 16) % 9000 + 1000}"


def render(
    kind: str,
    language: str,
    *,
    program: Mapping[str, str],
    amount: int,
    case_id: str,
    code: str = "",
    how: str = "account",
    bank: str = "",
) -> str:
    lang = language if language in LANGUAGES else "az"
    return TEMPLATES[kind][lang].format(
        program=program[lang],
        amount=format_azn(amount),
        case=case_id,
        code=code,
        how=HOW[how][lang].format(bank=bank),
    )
