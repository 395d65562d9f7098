"""SMS text encoding: GSM-7 or UCS-2, segment count and concatenated parts. Pure, no I/O.

The alphabet is the 3GPP TS 23.038 default alphabet (``GSM7_BASIC``, one septet per
character) and its extension table (``GSM7_EXTENSION``, two septets: escape 0x1B, then the
code). A text with any other character is sent as UCS-2, counted in UTF-16 code units.

One SMS holds 160 septets or 70 UCS-2 units. A longer text is concatenated: each part
carries a 6-byte user data header (8-bit reference, IEI 0x00) and holds 153 septets or
67 units. A part never ends between the escape and the code of an extension character,
nor between the two halves of a surrogate pair; :func:`segments` follows that real
splitting, so it always equals ``len(split(text, ref))``.

Exactness over folklore: at 0x09 the standard has upper-case ``Ç`` (the old Unicode
mapping file had lower-case ``ç`` there). So ``Ç`` is GSM-7 and ``ç`` forces UCS-2, as do
the Azerbaijani ``ə ğ ı ş İ``, all Cyrillic, the tab and the backquote. No character is
ever replaced by a look-alike: what is sent is what was written.

Empty text is an error (:class:`SmsEncodingError`) for :func:`segments`, :func:`split`
and :func:`encode`: a blank SMS is always a template bug, and counting it as one paid
segment would hide it. :func:`encoding_for`, :func:`septets` and :func:`ucs2_units`
only measure, and accept it (``"gsm7"``, 0, 0).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Final, Literal

from haqq.domain.errors import HaqqError

Encoding = Literal["gsm7", "ucs2"]


class SmsEncodingError(HaqqError, ValueError):
    """Text or parameters that cannot become an SMS: empty text, lone surrogate, text not
    in the GSM-7 alphabet where GSM-7 is required, bad reference, more than 255 parts."""


#: 3GPP TS 23.038 default alphabet in code order: the character at index ``i`` has septet
#: value ``i``. 0x1B is the escape to the extension table, not a character.
_BASIC_BY_CODE: Final = (
    "@£$¥èéùìòÇ\nØø\rÅå"
    "Δ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ"
    " !\"#¤%&'()*+,-./"
    "0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNO"
    "PQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmno"
    "pqrstuvwxyzäöñüà"
)
_ESCAPE: Final = 0x1B

#: 3GPP TS 23.038 extension table: septet value, after the escape, of each character.
_EXTENSION_CODES: Final[dict[str, int]] = {
    "\f": 0x0A,
    "^": 0x14,
    "{": 0x28,
    "}": 0x29,
    "\\": 0x2F,
    "[": 0x3C,
    "~": 0x3D,
    "]": 0x3E,
    "|": 0x40,
    "€": 0x65,
}

#: Characters of the default alphabet (one septet each).
GSM7_BASIC: Final[frozenset[str]] = frozenset(_BASIC_BY_CODE) - {chr(_ESCAPE)}
#: Characters of the extension table (two septets each: escape + code).
GSM7_EXTENSION: Final[frozenset[str]] = frozenset(_EXTENSION_CODES)

#: SMPP ``data_coding`` of each encoding (0: SMSC default alphabet, 8: UCS-2).
DATA_CODING: Final[dict[Encoding, int]] = {"gsm7": 0x00, "ucs2": 0x08}
#: Capacity of a single SMS, and of one part of a concatenated SMS (septets / UTF-16 units).
SINGLE_LIMIT: Final[dict[Encoding, int]] = {"gsm7": 160, "ucs2": 70}
PART_LIMIT: Final[dict[Encoding, int]] = {"gsm7": 153, "ucs2": 67}
#: The header has one byte for the total, so at most 255 parts can be joined.
MAX_PARTS: Final = 255

_GSM7_ALL: Final = GSM7_BASIC | GSM7_EXTENSION
#: ASCII bytes outside both tables: control characters other than LF, CR and FF, the
#: backquote and DEL.
_ASCII_NON_GSM7: Final = bytes(c for c in range(128) if chr(c) not in _GSM7_ALL)


def _marker_bytes() -> bytes:
    """The last byte of each extension character in UTF-16-BE (for the ASCII ones, also
    their ASCII byte). No basic character has any of them in any position, and no extension
    character has one first, so in a GSM-7 text encoded one or two bytes a character,
    deleting them counts the extension characters, at C speed."""
    basic = {byte for ch in GSM7_BASIC for byte in ch.encode("utf-16-be")}
    markers = {ch.encode("utf-16-be")[1] for ch in GSM7_EXTENSION}
    firsts = {ch.encode("utf-16-be")[0] for ch in GSM7_EXTENSION}
    if len(markers) != len(GSM7_EXTENSION) or markers & (basic | firsts):  # pragma: no cover
        raise RuntimeError("GSM-7 extension characters cannot be told apart by one byte")
    return bytes(sorted(markers))


_MARKERS: Final = _marker_bytes()
_MARKER_SET: Final = frozenset(_MARKERS)
#: Whole-text test for GSM-7; possessive, so a failing text is never backtracked over.
_GSM7_RE: Final = re.compile("[" + re.escape("".join(sorted(_GSM7_ALL))) + "]*+")
#: Character -> its unpacked septets as code points 0..127, for ``str.translate``.
_TO_SEPTETS: Final = str.maketrans(
    {ch: chr(code) for code, ch in enumerate(_BASIC_BY_CODE) if code != _ESCAPE}
    | {ch: chr(_ESCAPE) + chr(code) for ch, code in _EXTENSION_CODES.items()}
)


def _gsm7_bytes(text: str) -> tuple[bytes, int] | None:
    """``text`` encoded with a fixed width per character (ASCII: 1, else UTF-16-BE: 2) and
    that width, so that :data:`_MARKERS` counts its extension characters; None when
    ``text`` is not GSM-7."""
    if text.isascii():
        raw = text.encode("ascii")
        if len(raw.translate(None, _ASCII_NON_GSM7)) != len(raw):
            return None
        return raw, 1
    if _GSM7_RE.fullmatch(text) is None:
        return None
    return text.encode("utf-16-be"), 2


def encoding_for(text: str) -> Encoding:
    """``"gsm7"`` when every character is in the basic or extension table, else ``"ucs2"``."""
    if text.isascii():
        raw = text.encode("ascii")
        return "gsm7" if len(raw.translate(None, _ASCII_NON_GSM7)) == len(raw) else "ucs2"
    return "ucs2" if _GSM7_RE.fullmatch(text) is None else "gsm7"


def septets(text: str) -> int:
    """GSM-7 length of ``text``: extension characters count 2.

    Raises :class:`SmsEncodingError` when ``text`` is not GSM-7 (see :func:`encoding_for`).
    """
    encoded = _gsm7_bytes(text)
    if encoded is None:
        bad = next(ch for ch in text if ch not in _GSM7_ALL)
        raise SmsEncodingError(f"{bad!r} is not in the GSM-7 alphabet")
    raw = encoded[0]
    return len(text) + len(raw) - len(raw.translate(None, _MARKERS))


def _utf16(text: str) -> bytes:
    try:
        return text.encode("utf-16-be")
    except UnicodeEncodeError as exc:
        raise SmsEncodingError(
            f"lone surrogate {exc.object[exc.start]!r} at index {exc.start} cannot be sent"
        ) from None


def ucs2_units(text: str) -> int:
    """UTF-16 length of ``text``: a character outside the BMP (an emoji) counts 2.

    Raises :class:`SmsEncodingError` on a lone surrogate, which no SMS can carry.
    """
    return len(text) if text.isascii() else len(_utf16(text)) // 2


def _gsm7_ends(raw: bytes, width: int) -> list[int]:
    """End index (in characters) of each part of at most 153 septets, cut greedily between
    characters, so never inside an escape pair. ``raw``, ``width``: from :func:`_gsm7_bytes`.
    """
    n = len(raw) // width
    ends: list[int] = []
    start = 0
    while True:
        end = min(start + 153, n)
        chunk = raw[start * width : end * width]
        cost = end - start + len(chunk) - len(chunk.translate(None, _MARKERS))
        while cost > 153:  # too long: shrink in proportion until it fits
            end = start + (end - start) * 153 // cost
            chunk = raw[start * width : end * width]
            cost = end - start + len(chunk) - len(chunk.translate(None, _MARKERS))
        while end < n:  # then take characters one by one while the next one fits
            cost += 2 if raw[end * width + width - 1] in _MARKER_SET else 1
            if cost > 153:
                break
            end += 1
        ends.append(end)
        if end == n:
            return ends
        start = end


def _ucs2_ends(utf16: bytes) -> list[int]:
    """End offset (in bytes of ``utf16``) of each part of 67 units, never after a high
    surrogate."""
    ends: list[int] = []
    end = 0
    while len(utf16) - end > 134:
        end += 134
        if 0xD8 <= utf16[end - 2] <= 0xDB:
            end -= 2
        ends.append(end)
    ends.append(len(utf16))
    return ends


def _measure(text: str) -> tuple[Encoding, int, int]:
    """Encoding, length in its units, number of SMS."""
    if not text:
        raise SmsEncodingError("an SMS cannot be empty")
    encoded = _gsm7_bytes(text)
    n = len(text)
    if encoded is not None:
        raw, width = encoded
        units = n + len(raw) - len(raw.translate(None, _MARKERS))
        if units <= 160:
            return "gsm7", units, 1
        if units == n:
            return "gsm7", units, -(-n // 153)
        return "gsm7", units, len(_gsm7_ends(raw, width))
    if text.isascii():
        return "ucs2", n, 1 if n <= 70 else -(-n // 67)
    utf16 = _utf16(text)
    units = len(utf16) // 2
    if units <= 70:
        return "ucs2", units, 1
    if units == n:
        return "ucs2", units, -(-n // 67)
    return "ucs2", units, len(_ucs2_ends(utf16))


def segments(text: str) -> int:
    """Number of SMS ``text`` is sent as: ``len(split(text, ref))`` whenever that is
    allowed (at most 255 parts). Raises :class:`SmsEncodingError` on empty text or a lone
    surrogate."""
    if len(text) <= 70 and text and text.isascii():
        return 1  # at most 70 UCS-2 units or 140 septets
    return _measure(text)[2]


@dataclass(frozen=True, slots=True)
class Encoded:
    """What a text costs: its encoding, its length in that encoding's units (septets or
    UTF-16 code units) and its number of SMS."""

    encoding: Encoding
    units: int
    segments: int


def encode(text: str) -> Encoded:
    """:func:`encoding_for`, the length in units and :func:`segments`, in one call.
    Raises :class:`SmsEncodingError` on empty text or a lone surrogate."""
    return Encoded(*_measure(text))


@dataclass(frozen=True, slots=True)
class SmsPart:
    """One SMS of a message: ``seq`` counts from 1; ``udh`` is empty for a single SMS.

    ``payload`` is the encoded body, without the header. For UCS-2: UTF-16-BE bytes. For
    GSM-7: the *unpacked* septets, one byte each (0x1B then the code for an extension
    character); SMPP ``data_coding`` 0 with unpacked septets is what SMSCs take, and they
    pack to 7 bits themselves, so this module never packs.
    """

    seq: int
    total: int
    text: str
    udh: bytes
    payload: bytes
    encoding: Encoding = field(kw_only=True)


def _gsm7_payload(text: str) -> bytes:
    return text.translate(_TO_SEPTETS).encode("ascii")


def split(text: str, ref: int) -> tuple[SmsPart, ...]:
    """``text`` as the SMS to send, in order; ``"".join(p.text for p in parts) == text``.

    A text that fits is one part with an empty ``udh``. Otherwise every part carries the
    concatenation header ``05 00 03 ref total seq``; ``ref`` (0..255) must differ between
    long messages to the same phone that can be in flight together. Raises
    :class:`SmsEncodingError` when ``ref`` is out of range, ``text`` is empty or has a lone
    surrogate, or the text needs more than 255 parts.
    """
    if isinstance(ref, bool) or not isinstance(ref, int) or not 0 <= ref <= 255:
        raise SmsEncodingError(f"concatenation reference must be an int in 0..255, not {ref!r}")
    encoding, _units, total = _measure(text)
    if total > MAX_PARTS:
        raise SmsEncodingError(f"text needs {total} SMS; at most {MAX_PARTS} can be joined")
    encoded = _gsm7_bytes(text)
    if encoded is not None:
        if total == 1:
            return (SmsPart(1, 1, text, b"", _gsm7_payload(text), encoding=encoding),)
        ends = _gsm7_ends(*encoded)
        chunks = [
            (text[a:b], _gsm7_payload(text[a:b])) for a, b in zip([0, *ends], ends, strict=False)
        ]
    else:
        utf16 = _utf16(text)
        if total == 1:
            return (SmsPart(1, 1, text, b"", utf16, encoding=encoding),)
        ends = _ucs2_ends(utf16)
        chunks = [
            (utf16[a:b].decode("utf-16-be"), utf16[a:b])
            for a, b in zip([0, *ends], ends, strict=False)
        ]
    total = len(chunks)
    return tuple(
        SmsPart(
            seq,
            total,
            chunk,
            bytes((0x05, 0x00, 0x03, ref, total, seq)),
            payload,
            encoding=encoding,
        )
        for seq, (chunk, payload) in enumerate(chunks, start=1)
    )
