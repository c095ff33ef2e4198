"""The SMTP email backend against a real local SMTP server (aiosmtpd)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from dispatch.tools import devservices
from tasks.email import build_message, deliver
from tests.support.gateways import Sink, smtp_running


@pytest.fixture
def smtp_sink() -> Iterator[tuple[Sink, int]]:
    with smtp_running() as running:
        yield running


def test_smtp_backend_delivers_to_a_real_server(smtp_sink: tuple[Sink, int], services: Any) -> None:
    sink, port = smtp_sink
    settings = services.settings(
        email_backend="smtp", smtp_host="127.0.0.1", smtp_port=port, email_from="fleet@dispatch.test"
    )
    deliver(settings, build_message(settings, "driver@example.com", "Your shift", "Starts at 8."))
    assert len(sink.received) == 1
    got = sink.received[0]
    assert got["From"] == "fleet@dispatch.test" and got["To"] == "driver@example.com"
    assert got["Subject"] == "Your shift"
    assert got.get_payload().strip() == "Starts at 8."


def test_smtp_backend_failure_raises_for_retry(services: Any) -> None:
    settings = services.settings(email_backend="smtp", smtp_host="127.0.0.1", smtp_port=devservices.free_port())
    with pytest.raises(OSError):  # noqa: PT011 - refused or reset: the kind depends on the platform
        deliver(settings, build_message(settings, "a@example.com", "s", "b"))
