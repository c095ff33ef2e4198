"""Tasks the app sends are executed by the real Celery worker process."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tests.support.helpers import wait_for_email


@pytest.mark.gen_test(timeout=40)
async def test_email_task_sent_by_the_app_runs_in_the_worker(app: Any, services: Any) -> None:
    to = f"{uuid.uuid4().hex[:8]}@example.com"
    task_id = await app.settings["services"].tasks.send("email.send", to, "Hello", "Body text")
    assert task_id
    message = await wait_for_email(services.outbox_dir, to)
    assert message["Subject"] == "Hello"
    assert message.get_content().strip() == "Body text"
