"""Tasks the app sends are executed by the real Celery worker process."""

from __future__ import annotations

import asyncio
import uuid
from email import message_from_bytes
from pathlib import Path
from typing import Any

import pytest


async def wait_for_email(outbox: Path, to: str, timeout: float = 30) -> Any:
    """The message the worker wrote for this recipient, once it appears."""
    folder = outbox / "email"
    for _ in range(int(timeout * 10)):
        for path in folder.glob("*.eml") if folder.exists() else []:
            message = message_from_bytes(path.read_bytes())
            if message["To"] == to:
                return message
        await asyncio.sleep(0.1)
    raise AssertionError(f"no email to {to} within {timeout}s")


@pytest.mark.gen_test(timeout=40)
async def test_email_task_sent_by_the_app_runs_in_the_worker(app: Any, services: Any) -> None:
    to = f"{uuid.uuid4().hex[:8]}@example.com"
    task_id = await app.settings["tasks"].send("email.send", to, "Hello", "Body text")
    assert task_id
    message = await wait_for_email(services.outbox_dir, to)
    assert message["Subject"] == "Hello"
    assert message.get_payload(decode=True).decode().strip() == "Body text"
