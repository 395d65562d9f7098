"""A real Kannel for tests: bearerbox, smsbox and the fake SMSC of ``kannel-extras``.

The processes, their configuration and the measurement live in
:mod:`haqq.adapters.sms.kannel_box` (the benchmark uses them too); this module only decides
what a test does without Kannel: it skips, except in CI (``CI=true``) where a missing Kannel is
a failure.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from haqq.adapters.sms.kannel_box import (
    KannelBinaries,
    KannelBox,
    KannelNotInstalled,
    find_kannel,
)

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def kannel_or_skip() -> KannelBinaries:
    """The Kannel programs; skips the test without them (fails it in CI)."""
    try:
        return find_kannel()
    except KannelNotInstalled as exc:
        if IN_CI:
            pytest.fail(f"CI=true but Kannel is missing: {exc}")
        pytest.skip(str(exc))


@contextmanager
def running_box(workdir: Path, *, mo_url: str | None, interactive: bool = True) -> Iterator[KannelBox]:
    """A started :class:`KannelBox`, stopped on leaving; skips (fails in CI) without Kannel."""
    binaries = kannel_or_skip()
    with KannelBox(workdir, mo_url=mo_url, interactive=interactive, binaries=binaries) as box:
        yield box
