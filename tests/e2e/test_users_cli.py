"""``haqq users`` and ``haqq serve`` through the real console script: accounts made from the
command line sign in to the served API and console; a system client's token works; a wrong
password or a bad role is a clear error, nothing written."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

import httpx

SCRIPT = Path(sys.executable).with_name("haqq")
COMMAND = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "haqq.entrypoints.cli"]


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HAQQ_")}
    env.update({"COLUMNS": "250", "HAQQ_DATABASE_URL": f"sqlite:///{tmp_path / 'haqq.db'}",
                "HAQQ_COUNTRY": str(tmp_path / "no-country.db")})
    return env


def haqq(*args: str, tmp_path: Path, password: str | None = None) -> subprocess.CompletedProcess[str]:
    env = _env(tmp_path)
    if password is not None:
        env["HAQQ_PASSWORD"] = password
    return subprocess.run([*COMMAND, *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)


def free_port() -> int:
    with closing(socket.socket()) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_accounts_from_the_command_line_sign_in_to_the_served_app(tmp_path: Path) -> None:
    assert haqq("db", "upgrade", tmp_path=tmp_path).returncode == 0
    made = haqq("users", "add", "leyla", "--role", "supervisor", "--name", "Leyla H.", tmp_path=tmp_path,
                password="a long password")
    assert made.returncode == 0, made.stderr
    assert "account leyla: supervisor" in made.stdout
    citizen = haqq("users", "add", "5ZK7N2R", "--role", "citizen", "--fin", "5ZK7N2R", tmp_path=tmp_path,
                   password="citizen password")
    assert citizen.returncode == 0, citizen.stderr
    short = haqq("users", "add", "x", "--role", "auditor", tmp_path=tmp_path, password="short")
    assert short.returncode == 2 and "at least 8 characters" in short.stderr
    bad_role = haqq("users", "add", "y", "--role", "admin", tmp_path=tmp_path, password="a long password")
    assert bad_role.returncode == 2 and "admin" in bad_role.stderr
    listed = haqq("users", "list", tmp_path=tmp_path)
    assert "leyla" in listed.stdout and "5ZK7N2R" in listed.stdout and "a long password" not in listed.stdout
    assert "x " not in listed.stdout.split("\n", 3)[-1]
    token = haqq("users", "token", "crvs", "--role", "system", tmp_path=tmp_path)
    assert token.returncode == 0, token.stderr

    port = free_port()
    server = subprocess.Popen([*COMMAND, "serve", "--port", str(port), "--workers", "0"], cwd=tmp_path,
                              env=_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"{base}/datatracker/v3/heartbeat", timeout=1.0)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise AssertionError(f"haqq serve did not start: {server.communicate(timeout=5)}") from None
                time.sleep(0.3)
        system = httpx.get(f"{base}/api/v1/me", headers={"Authorization": f"Bearer {token.stdout.strip()}"})
        assert system.json() == {"subject": "crvs", "role": "system", "name": "crvs", "fin": None}
        signed = httpx.post(f"{base}/api/v1/auth/token", data={"username": "leyla", "password": "a long password"})
        assert signed.status_code == 200 and signed.json()["role"] == "supervisor"
        wrong = httpx.post(f"{base}/api/v1/auth/token", data={"username": "leyla", "password": "not it at all"})
        assert wrong.status_code == 401 and wrong.json() == {"error": "wrong username or password", "code": "not_signed_in"}
        page = httpx.post(f"{base}/login", data={"username": "5ZK7N2R", "password": "citizen password"})
        assert page.status_code == 303 and page.headers["location"] == "/me"
    finally:
        server.terminate()
        out, _ = server.communicate(timeout=30)
    assert f"haqq on {base}" in out and "/api/v1/docs" in out and "search by FIN only" in out
