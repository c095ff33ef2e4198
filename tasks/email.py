"""Outgoing email through the configured backend: console, file or SMTP."""

from __future__ import annotations

import logging
import smtplib
import ssl
import uuid
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path

from celery import shared_task

from dispatch.core.files import write_atomically
from dispatch.settings import Settings
from tasks import settings_of

log = logging.getLogger("dispatch.email")


def build_message(settings: Settings, to: str, subject: str, body: str) -> EmailMessage:
    """A plain-text message from the configured sender."""
    message = EmailMessage()
    message["From"] = settings.email_from
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = formatdate(usegmt=True)
    message["Message-ID"] = make_msgid(domain=settings.email_from.rpartition("@")[2] or "localhost")
    message.set_content(body)
    return message


def with_id(message: EmailMessage, key: str) -> EmailMessage:
    """The message with a `Message-ID` made from `key`: every attempt of one message carries the same."""
    domain = message["From"].rpartition("@")[2].strip(">") or "localhost"
    del message["Message-ID"]
    message["Message-ID"] = f"<{key.replace(':', '.')}@{domain}>"
    return message


def deliver(settings: Settings, message: EmailMessage) -> None:
    """Hand one message to the configured backend."""
    if settings.email_backend == "smtp":
        with smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=20) as smtp:
            if settings.smtp_tls:
                smtp.starttls(context=ssl.create_default_context())
            if settings.smtp_user:
                smtp.login(settings.smtp_user, settings.smtp_password)
            smtp.send_message(message)
    elif settings.email_backend == "file":
        folder = Path(settings.outbox_dir) / "email"
        folder.mkdir(parents=True, exist_ok=True)
        write_atomically(folder / f"{uuid.uuid4().hex}.eml", message.as_bytes())
    else:
        log.info("email to %s: %s\n%s", message["To"], message["Subject"], message.get_content())


@shared_task(
    bind=True,
    name="email.send",
    autoretry_for=(OSError, smtplib.SMTPException),
    retry_backoff=2,
    retry_backoff_max=300,
    retry_jitter=True,
    max_retries=8,
)
def send_email(self, to: str, subject: str, body: str) -> None:  # type: ignore[no-untyped-def]
    """Send one plain-text email; network failures retry with backoff."""
    settings = settings_of(self.app)
    deliver(settings, build_message(settings, to, subject, body))
