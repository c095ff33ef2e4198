"""Outgoing SMS through the configured backend: console, file or an HTTP gateway."""

from __future__ import annotations

import logging
import urllib.error
import urllib.request
import uuid
from pathlib import Path

from celery import shared_task

from dispatch.core import jsonutil
from dispatch.core.files import write_atomically
from dispatch.core.timeutil import isoformat, utcnow
from dispatch.settings import Settings
from tasks import settings_of

log = logging.getLogger("dispatch.sms")

HTTP_TIMEOUT = 10  # seconds; a hung gateway must not hold a worker slot for long


class SmsGatewayError(OSError):
    """The HTTP gateway answered with a non-2xx status (an OSError, so the task retries)."""


def deliver(settings: Settings, to: str, text: str, message_id: str | None = None) -> None:
    """Hand one message to the configured backend; `message_id` (sent as `id`) lets a gateway drop a repeat."""
    if settings.sms_backend == "http":
        post_json(settings.sms_http_url, {"to": to, "text": text, **({"id": message_id} if message_id else {})})
    elif settings.sms_backend == "file":
        write_file(Path(settings.outbox_dir) / "sms", to, text, message_id)
    else:
        log.info("sms to %s: %s", to, text)


def post_json(url: str, payload: dict[str, str]) -> None:
    """POST a JSON document; any answer but 2xx raises SmsGatewayError."""
    request = urllib.request.Request(
        url,
        data=jsonutil.dumps(payload),
        method="POST",
        headers={"Content-Type": "application/json", "Accept": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT) as answer:
            status = answer.status
    except urllib.error.HTTPError as exc:
        exc.close()  # it holds the open answer
        raise SmsGatewayError(f"SMS gateway answered {exc.code}") from None
    if not 200 <= status < 300:
        raise SmsGatewayError(f"SMS gateway answered {status}")


def write_file(folder: Path, to: str, text: str, message_id: str | None = None) -> Path:
    """Write one message as `{"to", "text", "at"}` (and `id`) JSON; readers never see a half-written file."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{uuid.uuid4().hex}.json"
    record = {"to": to, "text": text, "at": isoformat(utcnow()), **({"id": message_id} if message_id else {})}
    write_atomically(target, jsonutil.dumps(record))
    return target


# Codes live 5 minutes, so retries stop within about that long (2 + 4 + ... + 60 s with jitter).
@shared_task(
    bind=True,
    name="sms.send",
    autoretry_for=(OSError,),
    retry_backoff=2,
    retry_backoff_max=60,
    retry_jitter=True,
    max_retries=6,
)
def send_sms(self, to: str, text: str) -> None:  # type: ignore[no-untyped-def]
    """Send one text message; network and gateway failures retry with backoff."""
    deliver(settings_of(self.app), to, text)
