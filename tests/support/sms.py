"""SMS log-in from the outside: fresh phone numbers, and the codes the worker wrote to its outbox."""

from __future__ import annotations

import asyncio
import random
import re
from pathlib import Path
from typing import Any

from dispatch.core import jsonutil
from tests.support.helpers import Api

REQUEST = "/api/v1/auth/sms/request"


def new_phone() -> tuple[str, str]:
    """A fresh valid Russian mobile number: (national form, E.164)."""
    digits = f"{random.randrange(10**7):07d}"
    return f"8 (916) {digits[:3]}-{digits[3:5]}-{digits[5:]}", f"+7916{digits}"


async def wait_for_code(outbox: Path, to: str, seen: set[Path], timeout: float = 30) -> str:
    """The code of the first SMS to `to` that the worker wrote and the test has not read yet."""
    folder = outbox / "sms"
    for _ in range(int(timeout * 10)):
        for path in sorted(folder.glob("*.json")) if folder.exists() else []:
            if path in seen:
                continue
            message = jsonutil.loads(path.read_bytes())
            if message["to"] == to:
                seen.add(path)
                assert message["at"].endswith("Z")
                return re.fullmatch(r"Your dispatch code: (\d{6})", message["text"]).group(1)
        await asyncio.sleep(0.1)
    raise AssertionError(f"no SMS to {to} within {timeout}s")


async def request_code(api: Api, services: Any, phone: str, e164: str, seen: set[Path], **extra: Any) -> str:
    """Ask for a code for `phone` (202) and read it from the outbox."""
    answer = await api.post(REQUEST, {"phone": phone, **extra})
    assert answer.status == 202 and answer.json == {"status": "accepted"}
    return await wait_for_code(services.outbox_dir, e164, seen)


def wrong(code: str) -> str:
    """Another six-digit code than this one."""
    return f"{(int(code) + 1) % 10**6:06d}"
