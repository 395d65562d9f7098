"""A real Kannel on loopback ports, for tests and for ``haqq bench notify --gateway kannel``.

:class:`KannelBox` writes a ``kannel.conf`` into a working directory and starts three
processes: ``bearerbox`` (the core: an ``smsc = fake`` link listening on a loopback port,
``dlr-storage = internal``), ``fakesmsc`` (Kannel's test SMSC from ``kannel-extras``: it
connects to that port, prints every message it receives and sends the lines written to its
stdin as mobile-originated messages) and ``smsbox`` (the ``sendsms`` HTTP interface, one
``sendsms-user``, and an ``sms-service`` whose ``get-url`` is haqq's ``/sms/kannel/mo``).
The fake SMSC answers every part with two delivery reports at once: ``8`` (SMSC submit) and
``1`` (delivered), which smsbox pushes to the part's ``dlr-url``.

The binaries are found at run time: ``bearerbox`` and ``smsbox`` on ``PATH`` (else
``/usr/sbin``), ``fakesmsc`` on ``PATH`` or among the files of the ``kannel-extras`` package
(``dpkg-query -L``). Missing ones raise :class:`KannelNotInstalled`.

:func:`measure_kannel` sends ``n`` messages through such a box to haqq's SMS app (served by
uvicorn on a loopback port over a store) and reports the submit rate and the delivery-report
round trip (the part's ``sendsms`` answered -> its ``delivered`` row in ``sms_receipts``).
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Final
from urllib.parse import parse_qs, quote_from_bytes, unquote_to_bytes, urlsplit

import httpx
from sqlalchemy import select

from haqq.adapters.sms.kannel import KannelGateway
from haqq.domain.errors import HaqqError
from haqq.ports import OutgoingSms

LOOPBACK: Final = "127.0.0.1"
_FALLBACK_DIRS: Final = ("/usr/sbin", "/usr/local/sbin", "/usr/lib/kannel/test")
_GOT: Final = re.compile(r"Got message \d+: <(.*)>\s*$")
_SENT: Final = re.compile(r"fakesmsc: sent message \d+")
#: ``fakesmsc`` reads its stdin with a 256-byte buffer.
_MAX_MO_LINE: Final = 250


class KannelNotInstalled(HaqqError):
    """``bearerbox``, ``smsbox`` or ``fakesmsc`` is not installed (``apt-get install kannel
    kannel-extras``)."""


class KannelBoxError(HaqqError):
    """The Kannel processes did not start, or stopped on their own."""


@dataclass(frozen=True, slots=True)
class KannelBinaries:
    bearerbox: str
    smsbox: str
    fakesmsc: str


def _package_file(package: str, name: str) -> str | None:
    dpkg = shutil.which("dpkg-query")
    if dpkg is None:
        return None
    try:
        listing = subprocess.run(  # noqa: S603 - a fixed program and arguments
            [dpkg, "-L", package], capture_output=True, text=True, timeout=10, check=False
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    for line in listing.splitlines():
        if line.endswith(f"/{name}") and os.access(line, os.X_OK) and Path(line).is_file():
            return line
    return None


def _program(name: str, package: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    for directory in _FALLBACK_DIRS:
        candidate = Path(directory) / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return _package_file(package, name)


def find_kannel() -> KannelBinaries:
    """The three programs, or :class:`KannelNotInstalled` naming what is missing."""
    found = {
        "bearerbox": _program("bearerbox", "kannel"),
        "smsbox": _program("smsbox", "kannel"),
        "fakesmsc": _program("fakesmsc", "kannel-extras"),
    }
    missing = [name for name, path in found.items() if path is None]
    if missing:
        raise KannelNotInstalled(
            f"Kannel programs not found: {', '.join(missing)} (apt-get install kannel kannel-extras)"
        )
    return KannelBinaries(**{k: v for k, v in found.items() if v is not None})


def free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex((LOOPBACK, port)) == 0


@dataclass(frozen=True, slots=True)
class KannelPorts:
    admin: int
    smsbox: int
    smsc: int
    sendsms: int

    @classmethod
    def free(cls) -> KannelPorts:
        ports: set[int] = set()
        while len(ports) < 4:
            ports.add(free_port())
        admin, box, smsc, sendsms = sorted(ports)
        return cls(admin, box, smsc, sendsms)


def _quoted(value: str) -> str:
    if '"' in value or "\n" in value:
        raise KannelBoxError(f"a Kannel setting cannot hold a quote or a newline: {value!r}")
    return f'"{value}"'


def write_config(
    directory: Path,
    *,
    ports: KannelPorts,
    mo_url: str | None,
    username: str,
    password: str,
    admin_password: str,
    log_level: int = 1,
) -> Path:
    """``kannel.conf`` for the box: every port on the loopback interface, logs in
    ``directory``; ``mo_url``: the ``get-url`` of the catch-all ``sms-service`` (None: an
    ``sms-service`` that drops what citizens send)."""
    d = directory
    service = (
        f"get-url = {_quoted(mo_url)}" if mo_url is not None else 'text = ""'
    )
    conf = f"""\
# Written by haqq.adapters.sms.kannel_box: a Kannel for tests, on loopback ports only.
group = core
admin-port = {ports.admin}
admin-interface = {LOOPBACK}
admin-password = {_quoted(admin_password)}
admin-allow-ip = {LOOPBACK}
smsbox-port = {ports.smsbox}
smsbox-interface = {LOOPBACK}
box-allow-ip = {LOOPBACK}
log-file = {_quoted(str(d / "bearerbox.log"))}
log-level = {log_level}
dlr-storage = internal

# The fake SMSC link: bearerbox listens, fakesmsc connects.
group = smsc
smsc = fake
smsc-id = fake
our-host = {LOOPBACK}
port = {ports.smsc}
connect-allow-ip = {LOOPBACK}

group = smsbox
bearerbox-host = {LOOPBACK}
bearerbox-port = {ports.smsbox}
sendsms-port = {ports.sendsms}
sendsms-interface = {LOOPBACK}
log-file = {_quoted(str(d / "smsbox.log"))}
log-level = {log_level}
# haqq's endpoints answer 503 when the store cannot be written: Kannel asks again.
http-request-retry = 3
http-queue-delay = 1
reply-couldnotfetch = ""
reply-requestfailed = ""
reply-emptymessage = ""

group = sendsms-user
username = {_quoted(username)}
password = {_quoted(password)}
user-allow-ip = {LOOPBACK}
# haqq splits long texts itself: every request is one SMS.
max-messages = 1
concatenation = false

# Citizens' messages go to haqq; nothing is ever texted back from here.
group = sms-service
keyword = default
catch-all = true
max-messages = 0
omit-empty = true
{service}
"""
    path = directory / "kannel.conf"
    path.write_text(conf)
    return path


@dataclass(frozen=True, slots=True)
class FakeSms:
    """One message the fake SMSC received: ``kind`` is fakesmsc's word for it (``text``,
    ``data``, ``ucs-2``, ``udh``); ``data`` the message body's bytes, ``udh`` the header."""

    sender: str
    receiver: str
    kind: str
    data: bytes
    udh: bytes = b""

    def text(self, ucs2: bool | None = None) -> str:
        """The body as text: UTF-16-BE for ``ucs-2`` (or when ``ucs2``), else UTF-8."""
        wide = self.kind == "ucs-2" if ucs2 is None else ucs2
        return self.data.decode("utf-16-be" if wide else "utf-8")


def parse_fakesmsc_line(line: str) -> FakeSms | None:
    """A message from a ``Got message N: <sender receiver kind …>`` line of fakesmsc, else
    None."""
    m = _GOT.search(line)
    if m is None:
        return None
    fields = m.group(1).split(" ", 3)
    if len(fields) < 4:
        return None
    sender, receiver, kind, rest = fields
    if kind == "text":
        return FakeSms(sender, receiver, kind, rest.encode())
    if kind == "udh":
        udh, _, body = rest.partition(" ")
        _kind, _, body = body.partition(" ")
        return FakeSms(sender, receiver, kind, unquote_to_bytes(body.replace("+", " ")),
                       unquote_to_bytes(udh))
    return FakeSms(sender, receiver, kind, unquote_to_bytes(rest.replace("+", " ")))


class KannelBox:
    """bearerbox, smsbox and fakesmsc on free loopback ports; a context manager.

    ``mo_url``: where citizens' messages go (``…/sms/kannel/mo?from=%p&…``, see
    :func:`mo_url`); ``interactive``: fakesmsc reads messages to inject from its stdin
    (:meth:`inject_mo`), and then prints what it receives about once a second; without it,
    it prints at once but cannot inject (benchmarks).
    """

    def __init__(
        self,
        workdir: Path,
        *,
        mo_url: str | None = None,
        username: str = "haqq",
        password: str | None = None,
        interactive: bool = True,
        log_level: int = 1,
        startup_timeout: float = 20.0,
        binaries: KannelBinaries | None = None,
    ) -> None:
        self.workdir = workdir
        self.binaries = binaries or find_kannel()
        self.ports = KannelPorts.free()
        self.username = username
        self.password = password or secrets.token_hex(8)
        self.admin_password = secrets.token_hex(8)
        self.mo_url = mo_url
        self.interactive = interactive
        self.log_level = log_level
        self.startup_timeout = startup_timeout
        self.config: Path | None = None
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        self._logs: list[IO[bytes]] = []
        self._received: list[FakeSms] = []
        self._sent = 0
        self._seen = threading.Condition()
        self._reader: threading.Thread | None = None

    @property
    def sendsms_url(self) -> str:
        return f"http://{LOOPBACK}:{self.ports.sendsms}/cgi-bin/sendsms"

    # --- lifetime --------------------------------------------------------------------------

    def start(self) -> KannelBox:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config = write_config(
            self.workdir, ports=self.ports, mo_url=self.mo_url, username=self.username,
            password=self.password, admin_password=self.admin_password,
            log_level=self.log_level,
        )
        try:
            level = str(max(self.log_level, 1))
            self._spawn("bearerbox", [self.binaries.bearerbox, "-v", level, str(self.config)])
            # Asking bearerbox's admin port, not connecting to the box and SMSC ports: the fake
            # SMSC would take a probe for fakesmsc.
            self._wait(self._answers, "bearerbox to answer")
            self._start_fakesmsc()
            self._spawn("smsbox", [self.binaries.smsbox, "-v", level, str(self.config)])
            self._wait(lambda: _listening(self.ports.sendsms), "smsbox to listen")
            self._wait(self._linked, "the fake SMSC link and smsbox to be online")
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """fakesmsc first, then smsbox and bearerbox, with SIGTERM (fakesmsc's own SIGINT
        handling frees memory twice once it has sent a message); anything still running after
        10 s is killed."""
        order = ["fakesmsc", "smsbox", "bearerbox"]
        for name in order:
            proc = self._procs.get(name)
            if proc is not None and proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGTERM)
                if name == "fakesmsc":
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        proc.wait(timeout=3)
        deadline = time.monotonic() + 10
        for name in order:
            proc = self._procs.get(name)
            if proc is None:
                continue
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
            if proc.stdin is not None:
                with contextlib.suppress(OSError):
                    proc.stdin.close()
        if self._reader is not None:
            self._reader.join(timeout=5)
        for log in self._logs:
            log.close()
        self._procs.clear()
        self._logs.clear()

    def __enter__(self) -> KannelBox:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # --- use -------------------------------------------------------------------------------

    def gateway(self, dlr_base: str, **options: Any) -> KannelGateway:
        """A :class:`KannelGateway` sending through this box."""
        return KannelGateway(self.sendsms_url, self.username, self.password, dlr_base, **options)

    def status(self) -> str:
        """bearerbox's ``status.txt``."""
        response = httpx.get(
            f"http://{LOOPBACK}:{self.ports.admin}/status.txt",
            params={"password": self.admin_password}, timeout=5,
        )
        return response.text

    def received(self) -> list[FakeSms]:
        """What the fake SMSC received so far, in order."""
        with self._seen:
            return list(self._received)

    def wait_received(self, count: int, timeout: float = 10.0) -> list[FakeSms]:
        """At least ``count`` received messages, or :class:`KannelBoxError` after ``timeout``."""
        deadline = time.monotonic() + timeout
        with self._seen:
            while len(self._received) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise KannelBoxError(
                        f"the fake SMSC received {len(self._received)} messages, not {count}"
                    )
                self._seen.wait(left)
            return list(self._received)

    def inject_mo(self, sender: str, receiver: str, text: str, *, ucs2: bool = False) -> None:
        """A message from ``sender`` (a citizen's phone) to ``receiver`` (haqq's number), as
        the network would hand it to Kannel: plain text, or UCS-2 when ``ucs2``."""
        proc = self._procs.get("fakesmsc")
        if not self.interactive or proc is None or proc.stdin is None:
            raise KannelBoxError("messages are injected only into a started, interactive box")
        if ucs2:
            body = "ucs2 " + quote_from_bytes(text.encode("utf-16-be"), safe="")
        elif text.isprintable():
            body = "text " + text
        else:
            body = "data " + quote_from_bytes(text.encode(), safe="")
        line = f"{sender} {receiver} {body}\n".encode()
        if len(line) > _MAX_MO_LINE:
            raise KannelBoxError(f"fakesmsc takes lines of at most {_MAX_MO_LINE} bytes")
        # fakesmsc polls its stdin's descriptor but reads it through stdio: a second line
        # written before the first was sent would wait in stdio's buffer. One at a time.
        with self._seen:
            sent = self._sent
            proc.stdin.write(line)
            proc.stdin.flush()
            if not self._seen.wait_for(lambda: self._sent > sent, timeout=10):
                raise KannelBoxError("fakesmsc did not send the injected message")

    def log_tail(self, lines: int = 30) -> str:
        """The last lines of every log of the box (for failure messages)."""
        out = []
        for path in sorted(self.workdir.glob("*.log")) + sorted(self.workdir.glob("*.out")):
            text = path.read_text(errors="replace").splitlines()[-lines:]
            out.append(f"--- {path.name}\n" + "\n".join(text))
        return "\n".join(out)

    # --- internals -------------------------------------------------------------------------

    def _spawn(self, name: str, argv: list[str], **kwargs: Any) -> subprocess.Popen[bytes]:
        if "stdout" not in kwargs:
            out = (self.workdir / f"{name}.out").open("wb")
            self._logs.append(out)
            kwargs.update(stdout=out, stderr=subprocess.STDOUT)
        proc = subprocess.Popen(  # noqa: S603 - our own, found binaries
            argv, cwd=self.workdir, start_new_session=True, **kwargs
        )
        self._procs[name] = proc
        return proc

    def _start_fakesmsc(self) -> None:
        argv = [self.binaries.fakesmsc, "-H", LOOPBACK, "-r", str(self.ports.smsc), "-i", "0"]
        if not self.interactive:
            # Sends nothing and blocks reading: every message is printed as it comes.
            argv += ["-m", "0", "0 0 text unused"]
        out = (self.workdir / "fakesmsc.log").open("wb")
        self._logs.append(out)
        proc = self._spawn(
            "fakesmsc", argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        self._reader = threading.Thread(
            target=self._read_fakesmsc, args=(proc, out), name="fakesmsc-reader", daemon=True
        )
        self._reader.start()

    def _read_fakesmsc(self, proc: subprocess.Popen[bytes], out: IO[bytes]) -> None:
        stream = proc.stderr
        if stream is None:
            return
        for raw in stream:
            with contextlib.suppress(ValueError):
                out.write(raw)
                out.flush()
            line = raw.decode("utf-8", "replace")
            parsed = parse_fakesmsc_line(line)
            if parsed is not None:
                with self._seen:
                    self._received.append(parsed)
                    self._seen.notify_all()
            elif _SENT.search(line):
                with self._seen:
                    self._sent += 1
                    self._seen.notify_all()

    def _answers(self) -> bool:
        try:
            self.status()
        except httpx.HTTPError:
            return False
        return True

    def _linked(self) -> bool:
        try:
            status = self.status()
        except httpx.HTTPError:
            return False
        smsc = re.search(r"^\s*fake\[fake\]\s+\S+\s+\((\w+)", status, re.MULTILINE)
        boxes = re.search(r"Box connections:\s*\n\s*smsbox", status)
        return smsc is not None and smsc.group(1) == "online" and boxes is not None

    def _wait(self, ready: Any, what: str) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while not ready():
            for name, proc in self._procs.items():
                if proc.poll() is not None:
                    raise KannelBoxError(
                        f"{name} exited with {proc.returncode} while waiting for {what}\n"
                        + self.log_tail()
                    )
            if time.monotonic() > deadline:
                raise KannelBoxError(f"timed out waiting for {what}\n" + self.log_tail())
            time.sleep(0.05)


def mo_url(base: str, token: str | None = None) -> str:
    """The ``get-url`` for haqq's ``/sms/kannel/mo`` at ``base`` (haqq's HTTP base URL)."""
    url = (f"{base.rstrip('/')}/sms/kannel/mo?from=%p&to=%P&text=%b&id=%I&at=%T"
           "&coding=%c&charset=%C")
    return url + (f"&token={token}" if token else "")


# --- serving haqq's SMS app, and measuring ---------------------------------------------------


@contextlib.contextmanager
def serving(app: Any, *, timeout: float = 20.0) -> Iterator[int]:
    """An ASGI app served by uvicorn in a thread on a free loopback port (yields the port)."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host=LOOPBACK, port=port, log_level="warning", access_log=False)
    )
    thread = threading.Thread(target=server.run, name="haqq-sms-app", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise KannelBoxError("haqq's SMS app did not start")
        time.sleep(0.02)
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def sms_app_from_env() -> Any:
    """haqq's SMS app mounted under ``/sms``, over ``HAQQ_DATABASE_URL`` with the token
    ``HAQQ_SMS_TOKEN``: the factory :func:`serving_process` runs (``uvicorn --factory``)."""
    from starlette.applications import Starlette
    from starlette.routing import Mount

    from haqq.adapters.store import db
    from haqq.entrypoints.sms_api import make_sms_app

    engine = db.make_engine(os.environ.get("HAQQ_DATABASE_URL"))
    token = os.environ.get("HAQQ_SMS_TOKEN") or None
    return Starlette(routes=[Mount("/sms", app=make_sms_app(engine, token=token))])


@contextlib.contextmanager
def serving_process(
    database_url: str, token: str | None, workdir: Path, *, timeout: float = 30.0
) -> Iterator[int]:
    """haqq's SMS app in its own process (as ``haqq serve`` runs apart from the worker that
    submits), on a free loopback port (yields the port); stopped with SIGTERM."""
    port = free_port()
    env = {**os.environ, "HAQQ_DATABASE_URL": database_url, "HAQQ_SMS_TOKEN": token or ""}
    argv = [
        sys.executable, "-m", "uvicorn", "--factory", f"{__name__}:sms_app_from_env",
        "--host", LOOPBACK, "--port", str(port), "--log-level", "warning", "--no-access-log",
    ]
    with (workdir / "haqq-sms-app.out").open("wb") as out:
        proc = subprocess.Popen(  # noqa: S603 - this interpreter, our module
            argv, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            deadline = time.monotonic() + timeout
            while not _listening(port):
                if proc.poll() is not None or time.monotonic() > deadline:
                    tail = (workdir / "haqq-sms-app.out").read_text(errors="replace")[-2000:]
                    raise KannelBoxError(f"haqq's SMS app did not start:\n{tail}")
                time.sleep(0.05)
            yield port
        finally:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=5)


class _Stopwatch(httpx.BaseTransport):
    """An ``httpx`` transport that notes when each part's ``sendsms`` request went out (by
    the part id in its ``dlr-url``) and whether Kannel accepted it."""

    def __init__(self) -> None:
        self._inner = httpx.HTTPTransport()
        self.sent: dict[str, float] = {}
        self._lock = threading.Lock()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        at = time.time()
        response = self._inner.handle_request(request)
        if 200 <= response.status_code < 300:
            ids = parse_qs(urlsplit(request.url.params.get("dlr-url", "")).query).get("id")
            if ids:
                with self._lock:
                    self.sent[ids[0]] = at
        return response

    def close(self) -> None:
        self._inner.close()


@dataclass(frozen=True, slots=True)
class KannelMeasurement:
    """What :func:`measure_kannel` saw. Times in seconds unless ``_ms``; the round trip of a
    part is from its ``sendsms`` request to its ``delivered`` row in ``sms_receipts``."""

    messages: int
    parts: int
    accepted: int
    not_accepted: dict[str, int]
    concurrency: int
    submit_seconds: float
    messages_per_second: float
    receipts: int
    dlr_median_ms: float
    dlr_p95_ms: float
    dlr_max_ms: float
    all_receipts_seconds: float

    def summary(self) -> str:
        refused = "".join(f", {k}: {v}" for k, v in sorted(self.not_accepted.items()))
        return (
            f"kannel: {self.accepted}/{self.messages} messages ({self.parts} parts) accepted in "
            f"{self.submit_seconds:.2f} s = {self.messages_per_second:.0f} msg/s "
            f"(concurrency {self.concurrency}{refused}); {self.receipts} delivery reports "
            f"stored, round trip median {self.dlr_median_ms:.1f} ms, p95 "
            f"{self.dlr_p95_ms:.1f} ms, max {self.dlr_max_ms:.1f} ms; the last one "
            f"{self.all_receipts_seconds:.2f} s after the first request"
        )


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def measure_kannel(
    n: int,
    *,
    database_url: str | None = None,
    workdir: Path | None = None,
    concurrency: int = 16,
    text: str = "Salam! Your child benefit of 200 AZN was granted. Reply STOP to opt out.",
    app_in_process: bool = False,
    timeout: float = 120.0,
) -> KannelMeasurement:
    """Send ``n`` messages (one ``submit`` call) through a fresh :class:`KannelBox` to haqq's
    SMS app and measure the messages per second through ``sendsms`` and, for every part, the
    time from its ``sendsms`` request to its ``delivered`` row in ``sms_receipts``.

    ``database_url``: the store (migrated here; default a SQLite file in ``workdir``);
    ``workdir``: Kannel's configuration and logs (default a temporary directory, removed
    afterwards); ``app_in_process``: serve the SMS app in this process (a thread) rather than
    in its own, as ``haqq serve`` would be.
    """
    from haqq.adapters.store import db
    from haqq.adapters.store.schema import sms_receipts

    if n < 1:
        raise KannelBoxError(f"measure at least one message, not {n}")
    with contextlib.ExitStack() as stack:
        if workdir is None:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="haqq-kannel-")))
        workdir.mkdir(parents=True, exist_ok=True)
        url = database_url or f"sqlite:///{workdir / 'haqq.db'}"
        engine = db.make_engine(url)
        stack.callback(engine.dispose)
        db.upgrade(engine)
        token = secrets.token_hex(8)
        if app_in_process:
            from starlette.applications import Starlette
            from starlette.routing import Mount

            from haqq.entrypoints.sms_api import make_sms_app

            app = Starlette(routes=[Mount("/sms", app=make_sms_app(engine, token=token))])
            port = stack.enter_context(serving(app))
        else:
            port = stack.enter_context(serving_process(url, token, workdir))
        base = f"http://{LOOPBACK}:{port}"
        box = stack.enter_context(
            KannelBox(workdir / "kannel", mo_url=mo_url(base, token), interactive=False)
        )
        watch = _Stopwatch()
        gateway = stack.enter_context(
            box.gateway(base, concurrency=concurrency, dlr_token=token, transport=watch)
        )
        now = datetime.now(UTC)
        run = secrets.token_hex(4)
        messages = [
            OutgoingSms(f"bench-{run}-{i}", f"+99450{i % 10_000_000:07d}", text, now)
            for i in range(n)
        ]
        first_wall = time.time()
        started = time.perf_counter()
        results = gateway.submit(messages)
        submit_seconds = time.perf_counter() - started
        parts = [p for r in results.values() if r.status == "accepted" for p in r.parts]
        not_accepted: Counter[str] = Counter(
            f"{r.status}: {r.reason}" for r in results.values() if r.status != "accepted"
        )
        wanted = set(parts)
        delivered: dict[str, float] = {}
        deadline = time.monotonic() + timeout
        query = select(sms_receipts.c.message_id, sms_receipts.c.received_at).where(
            sms_receipts.c.status == "delivered",
            sms_receipts.c.message_id.like(f"K:bench-{run}-%"),
        )
        while len(delivered) < len(wanted) and time.monotonic() < deadline:
            with engine.connect() as conn:
                for message_id, received_at in conn.execute(query):
                    if message_id in wanted:
                        delivered[message_id] = received_at.timestamp()
            if len(delivered) < len(wanted):
                time.sleep(0.1)
        trips = [(at - watch.sent[p]) * 1000 for p, at in delivered.items() if p in watch.sent]
        return KannelMeasurement(
            messages=n,
            parts=len(parts),
            accepted=n - sum(not_accepted.values()),
            not_accepted=dict(not_accepted),
            concurrency=concurrency,
            submit_seconds=submit_seconds,
            messages_per_second=n / submit_seconds if submit_seconds > 0 else float("inf"),
            receipts=len(delivered),
            dlr_median_ms=statistics.median(trips) if trips else float("nan"),
            dlr_p95_ms=_percentile(trips, 0.95),
            dlr_max_ms=max(trips, default=float("nan")),
            all_receipts_seconds=max(delivered.values(), default=first_wall) - first_wall,
        )
    raise KannelBoxError("unreachable")  # pragma: no cover - the with block returns
