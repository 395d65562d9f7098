"""The SMS catalogue: texts per situation and language, checked when it loads."""

from __future__ import annotations

from pathlib import Path

import pytest

from haqq.domain import sms
from haqq.pipeline.consent import parse_reply
from haqq.rules.catalogue import load_catalogue
from haqq.rules.messages import (
    DEFAULT_PATH,
    LANGUAGES,
    MessageCatalogueError,
    default_messages,
    load_messages,
)

CASE = "C0065A1B2C3ABCDEF12"
SITUATIONS = {
    "granted", "card_ready", "payment_sent", "consent_request", "reminder", "declined",
    "stopped", "lapsed", "may_claim",
}


def render(situation: str, language: str, program: str = "birth_benefit", **values: object) -> str:
    fill = {"amount": 30000, "case": CASE, "code": "4821", "bank": "Kapital Bank",
            "period": "2025-03", "date": "2025-03-31", **values}
    return default_messages().render(situation, language, program, **fill)


def test_the_built_in_catalogue_covers_every_program_and_situation() -> None:
    programs = load_catalogue().programs
    full = {p.id: p.names.model_dump() for p in programs.values()}
    messages = load_messages(programs=full)  # strict: no entry for an unknown program
    assert messages.situations == SITUATIONS
    for situation in SITUATIONS:
        for lang in LANGUAGES:
            assert (situation, None, lang) in messages.texts
    assert set(messages.names) == set(programs)


@pytest.mark.parametrize(
    ("language", "expected"),
    [
        ("az", f"Doğum müavinəti: 300.00 AZN təyin edildi, Kapital Bank hesabınıza. haqq.gov.az/{CASE} İmtina: STOP 4821"),
        ("ru", f"Назначено: Пособие при рождении, 300.00 AZN, счёт в Kapital Bank. haqq.gov.az/{CASE} Отказ: STOP 4821"),
        ("en", f"Granted: Birth benefit, 300.00 AZN, to your Kapital Bank account. Why: haqq.gov.az/{CASE}. To decline: STOP 4821"),
    ],
)
def test_granted_text(language: str, expected: str) -> None:
    assert render("granted", language) == expected


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("situation", ["consent_request", "reminder"])
def test_consent_texts_carry_amount_and_code_twice(situation: str, language: str) -> None:
    text = render(situation, language, amount=123456)
    assert "1,234.56 AZN" in text
    assert text.count("4821") == 2  # in the YES and in the NO
    assert "{" not in text and "}" not in text


@pytest.mark.parametrize(
    ("language", "yes", "no"),
    [("az", "HƏ 4821", "YOX 4821"), ("ru", "ДА 4821", "НЕТ 4821"), ("en", "YES 4821", "NO 4821")],
)
def test_the_consent_request_tells_words_the_parser_understands(language: str, yes: str, no: str) -> None:
    text = render("consent_request", language)
    assert yes in text and no in text
    assert parse_reply(yes) == ("yes", "4821")
    assert parse_reply(no) == ("no", "4821")


@pytest.mark.parametrize("language", LANGUAGES)
def test_grants_tell_how_to_stop_and_parse(language: str) -> None:
    for situation in ("granted", "card_ready"):
        text = render(situation, language)
        assert "STOP 4821" in text
    assert parse_reply("STOP 4821") == ("stop", "4821")


def test_notify_mode_names_where_to_claim() -> None:
    assert render("may_claim", "en", "unemployment_insurance").endswith("Claim it at a DOST centre or e-gov.az.")
    # A program the catalogue names no place for gets the default.
    assert "DOST" in render("may_claim", "ru", "old_age_pension")


def test_unknown_language_falls_back_to_azerbaijani() -> None:
    assert render("reminder", "fr") == render("reminder", "az")
    assert render("reminder", "").startswith("Xatırlatma: Doğum müavinəti, 300.00 AZN.")


def test_english_texts_are_gsm7_and_fit_the_budget() -> None:
    messages = default_messages()
    costs = messages.costs()
    assert {c.encoding for c in costs if c.language == "en"} == {"gsm7"}
    assert {c.encoding for c in costs if c.language == "ru"} == {"ucs2"}
    assert max(c.segments for c in costs) <= messages.max_segments == 2
    assert sms.segments(render("granted", "en")) == 1


def _catalogue(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "messages.yaml"
    path.write_text(text, encoding="utf-8")
    return path


GOOD = """\
max_segments: 2
situations:
  granted:
    variables: [amount, code]
    az: "{program}: {amount}. STOP {code}"
    ru: "{program}: {amount}. STOP {code}"
    en: "{program}: {amount}. STOP {code}"
"""


def test_a_small_catalogue_loads(tmp_path: Path) -> None:
    messages = load_messages(_catalogue(tmp_path, GOOD), programs={"p": {"az": "A", "ru": "Б", "en": "C"}})
    assert messages.render("granted", "ru", "p", amount=100, code="1234") == "Б: 1.00 AZN. STOP 1234"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (GOOD.replace('en: "{program}: {amount}. STOP {code}"', 'en: "{program}: {amout}"'),
         r"messages.yaml:7: granted.en: unknown variable \{amout\}"),
        (GOOD.replace('    en: "{program}: {amount}. STOP {code}"\n', ""), r"granted: no 'en' text"),
        (GOOD.replace("    variables: [amount, code]\n", ""), r"needs a 'variables' list"),
        (GOOD.replace('az: "{program}: {amount}. STOP {code}"', 'az: "{program}: {amount"'),
         r"granted.az: malformed placeholder"),
        (GOOD.replace('en: "', 'fr: "'), r"unknown language 'fr'"),
        (GOOD.replace("max_segments: 2", "max_segments: 0"), r"max_segments must be"),
        (GOOD.replace('ru: "{program}: {amount}. STOP {code}"', 'ru: "' + "ж" * 140 + '"'),
         r"messages.yaml:6: granted.ru: 3 SMS parts .*more than max_segments 2"),
        (GOOD + "programs:\n  nope:\n    name: {az: a, ru: b, en: c}\n", r"no program 'nope'"),
        (GOOD + "programs:\n  p:\n    granted_typo: {az: a}\n", r"unknown situation 'granted_typo'"),
        ("situations: [1, 2", r"not valid YAML"),
    ],
)
def test_a_bad_catalogue_is_refused_naming_the_problem(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(MessageCatalogueError, match=expected):
        load_messages(_catalogue(tmp_path, text), programs={"p": {"az": "A", "ru": "Б", "en": "C"}})


def test_a_program_override_replaces_one_language(tmp_path: Path) -> None:
    text = GOOD + 'programs:\n  p:\n    granted:\n      en: "P granted {amount}"\n'
    messages = load_messages(_catalogue(tmp_path, text), programs={"p": {"az": "A", "ru": "Б", "en": "C"}})
    assert messages.render("granted", "en", "p", amount=500, code="1") == "P granted 5.00 AZN"
    assert messages.render("granted", "az", "p", amount=500, code="1") == "A: 5.00 AZN. STOP 1"


def test_the_default_file_is_the_packaged_one() -> None:
    assert DEFAULT_PATH.name == "messages.yaml" and DEFAULT_PATH.exists()
