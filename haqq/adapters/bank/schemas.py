"""Fast XSD validation of bank files with libxml2 (lxml), for files of any size.

The official ISO 20022 schemas are not shipped with haqq: a deployment points
``HAQQ_ISO20022_XSD`` at the directory holding them (``pain.001.001.09.xsd``,
``pain.002.001.10.xsd``, ``camt.054.001.08.xsd``). Without it, files are still read strictly
(every element haqq needs must be there and well formed), but not checked against the schema.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from lxml import etree

from haqq.adapters.bank.iso20022_read import MalformedBankFile

#: The messages haqq writes or reads, by the name their schema file carries.
MESSAGES = ("pain.001.001.09", "pain.002.001.10", "camt.054.001.08")


def schema_dir() -> Path | None:
    value = os.environ.get("HAQQ_ISO20022_XSD")
    return Path(value) if value else None


@lru_cache(maxsize=8)
def _schema(path: Path) -> etree.XMLSchema:
    if not path.is_file():
        raise MalformedBankFile(f"schema {path.name} not found in {path.parent}")
    return etree.XMLSchema(etree.parse(str(path)))


def message_of(content: bytes) -> str | None:
    """Which of :data:`MESSAGES` a file declares (by its namespace), or None."""
    head = content[:2000]
    return next((m for m in MESSAGES if f"xsd:{m}".encode() in head), None)


def validate(content: bytes, message: str, directory: Path | None = None) -> bool:
    """Check ``content`` against ``message``'s schema; False when no schema directory is set.

    Raises :class:`MalformedBankFile` naming the first problem's line and what is wrong.
    """
    directory = directory or schema_dir()
    if directory is None:
        return False
    schema = _schema(directory / f"{message}.xsd")
    parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=True)
    try:
        document = etree.fromstring(content, parser)
    except etree.XMLSyntaxError as error:
        raise MalformedBankFile(f"{message}: not well-formed XML: {error}") from error
    if not schema.validate(document):
        errors = list(schema.error_log)  # type: ignore[call-overload]
        first = errors[0]
        raise MalformedBankFile(
            f"{message}: breaks its schema at line {first.line}: {first.message}"
            + (f" (and {len(errors) - 1} more)" if len(errors) > 1 else "")
        )
    return True
