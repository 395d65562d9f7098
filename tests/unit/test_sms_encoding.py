"""SMS encoding: the GSM-7 tables, the UCS-2 fallback, and splitting as a gateway does it.

Segment counts are checked against a naive character-by-character splitter written here,
independent of the module's fast path.
"""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from haqq.domain.errors import HaqqError
from haqq.domain.sms import (
    DATA_CODING,
    GSM7_BASIC,
    GSM7_EXTENSION,
    MAX_PARTS,
    Encoded,
    SmsEncodingError,
    SmsPart,
    encode,
    encoding_for,
    segments,
    septets,
    split,
    ucs2_units,
)

AZ = "Sizə ödəniş təyin edildi"
RU = "Вам назначена выплата"

# --- the tables ---------------------------------------------------------------------------


def test_tables_have_the_sizes_of_the_standard() -> None:
    assert len(GSM7_BASIC) == 127  # 128 codes, 0x1B is the escape
    assert frozenset("^{}\\[~]|€\f") == GSM7_EXTENSION
    assert not GSM7_BASIC & GSM7_EXTENSION


def test_tables_contain_the_non_ascii_letters_and_symbols_of_the_standard() -> None:
    assert set("@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ ¤¡ÄÖÑÜ§¿äöñüà") <= GSM7_BASIC
    assert set(map(chr, range(ord("A"), ord("Z") + 1))) <= GSM7_BASIC
    assert set("0123456789!\"#%&'()*+,-./:;<=>?") <= GSM7_BASIC


@pytest.mark.parametrize(
    "ch", ["ç", "`", "\t", "\x00", "\x1b", "ə", "ğ", "ı", "ş", "İ", "Ş", "Ə", "Ж", "\u2126"]
)
def test_characters_outside_the_alphabet(ch: str) -> None:
    # "Ω" here is U+2126 OHM SIGN; the alphabet has U+03A9 GREEK CAPITAL LETTER OMEGA.
    assert ch not in GSM7_BASIC and ch not in GSM7_EXTENSION
    assert encoding_for(ch) == "ucs2"
    assert encoding_for("Salam " + ch) == "ucs2"


@pytest.mark.parametrize(
    ("text", "payload"),
    [
        ("@£$¥", b"\x00\x01\x02\x03"),
        ("Ç", b"\x09"),  # upper-case C cedilla at 0x09, as in 3GPP TS 23.038
        ("\nØø\rÅå", b"\x0a\x0b\x0c\x0d\x0e\x0f"),
        ("Δ_ΦΓΛΩΠΨΣΘΞ", bytes(range(0x10, 0x1B))),
        ("ÆæßÉ", b"\x1c\x1d\x1e\x1f"),
        (" !¤", b"\x20\x21\x24"),
        ("¡AZÄÖÑÜ§", b"\x40\x41\x5a\x5b\x5c\x5d\x5e\x5f"),
        ("¿azäöñüà", b"\x60\x61\x7a\x7b\x7c\x7d\x7e\x7f"),
        (
            "\f^{}\\[~]|€",
            b"\x1b\x0a\x1b\x14\x1b\x28\x1b\x29\x1b\x2f\x1b\x3c\x1b\x3d\x1b\x3e\x1b\x40\x1b\x65",
        ),
    ],
)
def test_gsm7_payload_is_the_unpacked_septets_of_the_standard(text: str, payload: bytes) -> None:
    (part,) = split(text, 0)
    assert part.encoding == "gsm7"
    assert part.payload == payload


def test_ucs2_payload_is_utf16_big_endian() -> None:
    (part,) = split("Ə😀", 0)
    assert part.encoding == "ucs2"
    assert part.payload == b"\x01\x8f\xd8\x3d\xde\x00"


# --- encoding and lengths -------------------------------------------------------------------


def test_azerbaijani_and_russian_need_ucs2_plain_latin_does_not() -> None:
    assert encoding_for(AZ) == "ucs2"
    assert encoding_for(RU) == "ucs2"
    assert encoding_for("Salam, odenis") == "gsm7"
    assert encoding_for("Ödəniş") == "ucs2"
    assert encoding_for("Ödenis üçün") == "ucs2"  # ç, not Ç, is outside the alphabet
    assert encoding_for("ÖDENIS ÜÇÜN") == "gsm7"
    assert encoding_for("Mebleg: 45 € [x]") == "gsm7"
    assert encoding_for("") == "gsm7"


def test_septets_count_extension_characters_twice() -> None:
    assert septets("") == 0
    assert septets("Salam") == 5
    assert septets("€") == 2
    assert septets("a[b]") == 6
    assert septets("Ödenis €5\f") == 12


def test_septets_refuses_text_outside_the_alphabet() -> None:
    with pytest.raises(SmsEncodingError, match="'ə'"):
        septets(AZ)


def test_ucs2_units_count_utf16_code_units() -> None:
    assert ucs2_units("") == 0
    assert ucs2_units(AZ) == 24
    assert ucs2_units("😀") == 2
    assert ucs2_units("a😀ə") == 4


def test_lone_surrogate_is_an_error() -> None:
    with pytest.raises(SmsEncodingError, match="surrogate"):
        ucs2_units("ə\ud83d")
    with pytest.raises(SmsEncodingError, match="surrogate"):
        segments("ə\ud83d" * 50)
    with pytest.raises(SmsEncodingError, match="surrogate"):
        split("ə\ud83d", 1)


# --- segment counts -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "count"),
    [
        ("a", 1),
        ("a" * 160, 1),
        ("a" * 161, 2),
        ("a" * 306, 2),
        ("a" * 307, 3),
        ("€" * 80, 1),
        ("€" * 81, 2),
        ("ə" * 70, 1),
        ("ə" * 71, 2),
        ("ə" * 134, 2),
        ("ə" * 135, 3),
        ("`" * 70, 1),  # ASCII, but UCS-2
        ("`" * 71, 2),
        ("😀" * 35, 1),
        ("😀" * 36, 2),
        # 306 septets = 2 × 153, but the € would straddle parts 1 and 2: it moves, so 3.
        ("a" * 152 + "€" + "a" * 152, 3),
        ("a" * 151 + "€" + "a" * 153, 2),
        # 134 units = 2 × 67, but the emoji would straddle: 3.
        ("ə" * 66 + "😀" + "ə" * 66, 3),
        ("ə" * 65 + "😀" + "ə" * 67, 2),
    ],
)
def test_segments_known_counts(text: str, count: int) -> None:
    assert segments(text) == count
    assert len(split(text, 0)) == count


def test_euro_that_would_straddle_moves_to_the_next_part() -> None:
    first, second, third = split("a" * 152 + "€" + "b" * 152, 9)
    assert first.text == "a" * 152
    assert first.payload == b"a" * 152
    assert second.text == "€" + "b" * 151
    assert second.payload == b"\x1b\x65" + b"b" * 151
    assert third.text == "b"


def test_emoji_surrogate_pair_is_never_cut() -> None:
    first, second, third = split("ə" * 66 + "😀" + "ə" * 66, 9)
    assert first.text == "ə" * 66
    assert len(first.payload) == 132
    assert second.text == "😀" + "ə" * 65
    assert second.payload[:4] == "😀".encode("utf-16-be")
    assert third.text == "ə"


def test_encode_summarises() -> None:
    assert encode(AZ) == Encoded(encoding="ucs2", units=24, segments=1)
    assert encode("Salam, odenis") == Encoded(encoding="gsm7", units=13, segments=1)
    assert encode("a" * 150 + "{}") == Encoded(encoding="gsm7", units=154, segments=1)
    assert encode(RU * 4) == Encoded(encoding="ucs2", units=84, segments=2)
    assert DATA_CODING == {"gsm7": 0, "ucs2": 8}


# --- split ----------------------------------------------------------------------------------


def test_single_sms_has_no_header() -> None:
    assert split("Salam", 200) == (SmsPart(1, 1, "Salam", b"", b"Salam", encoding="gsm7"),)


def test_concatenated_sms_carry_the_8_bit_reference_header() -> None:
    parts = split("a" * 161, 0x2A)
    assert [p.udh for p in parts] == [bytes.fromhex("0500032a0201"), bytes.fromhex("0500032a0202")]
    assert [(p.seq, p.total, len(p.text)) for p in parts] == [(1, 2, 153), (2, 2, 8)]
    ucs = split(RU * 4, 255)
    assert [p.udh for p in ucs] == [bytes.fromhex("050003ff0201"), bytes.fromhex("050003ff0202")]
    assert [p.encoding for p in ucs] == ["ucs2", "ucs2"]


def test_part_is_frozen() -> None:
    (part,) = split("Salam", 1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        part.text = "x"  # type: ignore[misc]


@pytest.mark.parametrize("ref", [-1, 256, 1000, True, 1.0, "1"])
def test_reference_out_of_range_is_refused(ref: object) -> None:
    with pytest.raises(SmsEncodingError, match="0..255"):
        split("a" * 200, ref)  # type: ignore[arg-type]


def test_empty_text_is_refused() -> None:
    for call in (segments, encode, lambda t: split(t, 0)):
        with pytest.raises(SmsEncodingError, match="empty"):
            call("")


def test_at_most_255_parts() -> None:
    assert len(split("a" * 153 * MAX_PARTS, 0)) == 255
    assert segments("a" * (153 * MAX_PARTS + 1)) == 256
    with pytest.raises(SmsEncodingError, match="256 SMS"):
        split("a" * (153 * MAX_PARTS + 1), 0)


def test_error_is_a_value_error_and_a_haqq_error() -> None:
    assert issubclass(SmsEncodingError, ValueError)
    assert issubclass(SmsEncodingError, HaqqError)


# --- properties -----------------------------------------------------------------------------


def naive_split(text: str) -> list[str]:
    """Reference splitter: one character at a time, a new part when the next does not fit."""
    if encoding_for(text) == "gsm7":
        cost = [2 if ch in GSM7_EXTENSION else 1 for ch in text]
        single, limit = 160, 153
    else:
        cost = [2 if ord(ch) > 0xFFFF else 1 for ch in text]
        single, limit = 70, 67
    if sum(cost) <= single:
        return [text]
    parts: list[str] = []
    current, used = "", 0
    for ch, c in zip(text, cost, strict=True):
        if used + c > limit:
            parts.append(current)
            current, used = "", 0
        current += ch
        used += c
    parts.append(current)
    return parts


def _runs(alphabet: list[str]) -> st.SearchStrategy[str]:
    """Texts of 1..~1600 characters made of random bits and long runs, so that part
    boundaries fall on every kind of character."""
    piece = st.one_of(
        st.lists(st.sampled_from(alphabet), min_size=1, max_size=30).map("".join),
        st.builds(lambda ch, n: ch * n, st.sampled_from(alphabet), st.integers(1, 200)),
    )
    return st.lists(piece, min_size=1, max_size=8).map("".join)


_EXT = sorted(GSM7_EXTENSION)
_BASIC = sorted(GSM7_BASIC)
_ASCII_GSM = [ch for ch in _BASIC if ch.isascii()]
gsm7_texts = st.one_of(
    _runs(_ASCII_GSM + _EXT[:-1]),  # ASCII only: the fast path
    _runs(["a", "€", "["]),
    _runs(_BASIC + _EXT * 10),
)
ucs2_texts = st.one_of(
    _runs(["ə", "😀", "a"]),
    _runs(["`", "a", "\t"]),
    st.text(min_size=1, max_size=400),
    _runs(_BASIC + ["ş", "🇦🇿", "\U0010ffff", "Ж"]),
)
texts = st.one_of(gsm7_texts, ucs2_texts)


def _units(part: SmsPart) -> int:
    return septets(part.text) if part.encoding == "gsm7" else ucs2_units(part.text)


@settings(max_examples=400, deadline=None)
@given(text=texts, ref=st.integers(0, 255))
def test_split_properties(text: str, ref: int) -> None:
    parts = split(text, ref)
    encoding = encoding_for(text)
    # the text comes back exactly, in the parts the naive splitter makes
    assert "".join(p.text for p in parts) == text
    assert [p.text for p in parts] == naive_split(text)
    # the count is the real one, from every entry point
    assert len(parts) == segments(text) == encode(text).segments
    total = len(parts)
    for seq, part in enumerate(parts, start=1):
        assert part.encoding == encoding
        assert (part.seq, part.total) == (seq, total)
        if total == 1:
            assert part.udh == b""
            assert _units(part) <= (160 if encoding == "gsm7" else 70)
        else:
            assert part.udh == bytes([0x05, 0x00, 0x03, ref, total, seq])
            assert 0 < _units(part) <= (153 if encoding == "gsm7" else 67)
        if encoding == "gsm7":
            assert len(part.payload) == _units(part)
            assert max(part.payload) < 0x80
            assert part.payload.count(0x1B) == sum(ch in GSM7_EXTENSION for ch in part.text)
            assert not part.payload.endswith(b"\x1b")
        else:
            assert part.payload.decode("utf-16-be") == part.text


@settings(max_examples=300, deadline=None)
@given(text=texts)
def test_lengths_match_their_definition(text: str) -> None:
    summary = encode(text)
    assert summary.encoding == encoding_for(text)
    assert ucs2_units(text) == len(text.encode("utf-16-le")) // 2
    if summary.encoding == "gsm7":
        assert set(text) <= GSM7_BASIC | GSM7_EXTENSION
        assert (
            summary.units == septets(text) == len(text) + sum(ch in GSM7_EXTENSION for ch in text)
        )
    else:
        assert not set(text) <= GSM7_BASIC | GSM7_EXTENSION
        assert summary.units == ucs2_units(text)


@settings(max_examples=200, deadline=None)
@given(text=gsm7_texts)
def test_gsm7_generator_stays_gsm7(text: str) -> None:
    # guards the strategies above: the GSM-7 ones must really exercise the GSM-7 path
    assert encoding_for(text) == "gsm7"
