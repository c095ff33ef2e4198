"""`dispatch create-admin` as a real process, then signing in through the API as that admin."""

from __future__ import annotations

import asyncio
import os
import select
import subprocess
from dataclasses import dataclass
from typing import Any

import pytest

from dispatch.tools.devservices import VENV_BIN
from tests.support.helpers import Api
from tests.support.processes import env_of

API = "/api/v1"
PASSWORD = "Night-shift-2024"


@dataclass
class Run:
    code: int
    stdout: str
    stderr: str


async def create_admin(settings: Any, *flags: str, stdin: str = "") -> Run:
    """Run the command with the test's settings, answering prompts from `stdin` (a pipe, not a terminal)."""
    process = await asyncio.create_subprocess_exec(
        str(VENV_BIN / "dispatch"),
        "create-admin",
        *flags,
        env=env_of(settings),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(stdin.encode()), 45)
    return Run(process.returncode or 0, out.decode(), err.decode())


async def login_as(api: Api, login: str, password: str = PASSWORD) -> str:
    answer = await api.post(f"{API}/auth/login", {"login": login, "password": password})
    assert answer.status == 200, answer.json
    return answer.json["access_token"]


@pytest.mark.gen_test(timeout=120)
async def test_create_admin_from_flags_then_log_in(api: Api, settings: Any) -> None:
    run = await create_admin(settings, "--username", "chief", "--email", "Chief@Example.com", "--password", PASSWORD)
    assert run.code == 0, run.stderr
    assert "Created ADMIN chief <Chief@Example.com>" in run.stdout
    token = await login_as(api, "chief@example.com")
    me = (await api.get(f"{API}/users/me", token=token)).json
    assert me["category"] == "ADMIN" and me["is_active"] is True and me["email_verified"] is True
    assert (await api.get(f"{API}/users", token=token)).status == 200, "the admin has admin rights"


@pytest.mark.gen_test(timeout=120)
async def test_create_admin_asks_for_missing_values(api: Api, settings: Any) -> None:
    run, only_password = await asyncio.gather(  # two different admins: side by side
        create_admin(settings, stdin=f"boss\nboss@example.com\n{PASSWORD}\n"),
        create_admin(settings, "--username", "deputy", "--email", "deputy@example.com", stdin=f"{PASSWORD}\n"),
    )
    assert run.code == 0, run.stderr
    assert "Username:" in run.stderr and "Password:" in run.stderr
    assert PASSWORD not in run.stdout + run.stderr, "the password is never echoed"
    token = await login_as(api, "boss")
    assert (await api.get(f"{API}/users/me", token=token)).json["category"] == "ADMIN"
    assert only_password.code == 0, only_password.stderr
    assert "Username:" not in only_password.stderr
    await login_as(api, "deputy")


@pytest.mark.gen_test(timeout=120)
async def test_create_admin_refuses_duplicates_and_bad_input(api: Api, settings: Any) -> None:
    first = await create_admin(settings, "--username", "chief", "--email", "chief@example.com", "--password", PASSWORD)
    assert first.code == 0, first.stderr
    # The refusals are independent of one another: run side by side, as processes they start at once.
    same_name, same_email, weak, ended = await asyncio.gather(
        create_admin(settings, "--username", "CHIEF", "--email", "other@example.com", "--password", PASSWORD),
        create_admin(settings, "--username", "other", "--email", "CHIEF@example.com", "--password", PASSWORD),
        create_admin(settings, "--username", "third", "--email", "third@example.com", "--password", "12345678"),
        create_admin(settings, "--username", "fourth", "--email", "fourth@example.com"),
    )
    assert same_name.code == 1 and "username is already taken" in same_name.stderr
    assert same_email.code == 1 and "email is already taken" in same_email.stderr
    assert weak.code == 1 and "password" in weak.stderr and "Traceback" not in weak.stderr
    assert ended.code == 1 and "stdin ended" in ended.stderr
    users = (await api.get(f"{API}/users", token=await login_as(api, "chief"))).json
    assert [u["username"] for u in users["items"]] == ["chief"], "nothing was created by the refused runs"


def converse_on_terminal(settings: Any, answers: list[tuple[str, str]]) -> tuple[int, str]:
    """Run the command on a pseudo-terminal, typing each answer once its prompt appears; (exit code, transcript)."""
    master, slave = os.openpty()
    process = subprocess.Popen(
        [str(VENV_BIN / "dispatch"), "create-admin"],
        env=env_of(settings),
        stdin=slave,
        stdout=slave,
        stderr=slave,
        start_new_session=True,
    )
    os.close(slave)
    transcript = ""
    try:
        for prompt, answer in answers:
            while prompt not in transcript:
                transcript += _read(master)
            transcript = transcript.replace(prompt, f"<{prompt.strip()}>", 1)
            os.write(master, answer.encode() + b"\n")
        code = process.wait(45)
        while chunk := _read(master, timeout=0.5, until_eof=True):
            transcript += chunk
        return code, transcript
    finally:
        if process.poll() is None:
            process.kill()
        os.close(master)


def _read(fd: int, timeout: float = 30, until_eof: bool = False) -> str:
    ready, _, _ = select.select([fd], [], [], timeout)
    if not ready:
        if until_eof:
            return ""
        raise AssertionError("the command stopped answering")
    try:
        return os.read(fd, 4096).decode(errors="replace")
    except OSError:  # EIO: the terminal closed with the process
        return ""


@pytest.mark.gen_test(timeout=120)
async def test_create_admin_on_a_terminal_hides_and_confirms_the_password(api: Api, settings: Any) -> None:
    loop = asyncio.get_running_loop()
    answers = [
        ("Username: ", "tty_admin"),
        ("Email: ", "tty@example.com"),
        ("Password: ", PASSWORD),
        ("Password (again): ", PASSWORD),
    ]
    code, transcript = await loop.run_in_executor(None, converse_on_terminal, settings, answers)
    assert code == 0, transcript
    assert "tty_admin" in transcript, "the username is echoed as typed"
    assert PASSWORD not in transcript, "the password is not"
    await login_as(api, "tty_admin")
    mismatch = [
        ("Username: ", "tty_other"),
        ("Email: ", "other@example.com"),
        ("Password: ", PASSWORD),
        ("Password (again): ", PASSWORD + "x"),
    ]
    code, transcript = await loop.run_in_executor(None, converse_on_terminal, settings, mismatch)
    assert code == 1 and "do not match" in transcript
