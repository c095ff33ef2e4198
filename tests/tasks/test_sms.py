"""The SMS backends: a real local HTTP gateway (http.server in a thread) and the file outbox."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dispatch.core import jsonutil
from tasks.sms import deliver, send_sms
from tests.support.gateways import Gateway, gateway_running


@pytest.fixture
def gateway(request: pytest.FixtureRequest) -> Iterator[Gateway]:
    with gateway_running(getattr(request, "param", 200)) as server:
        yield server


def test_http_backend_posts_json_to_the_gateway(gateway: Gateway, services: Any) -> None:
    settings = services.settings(sms_backend="http", sms_http_url=gateway.url)
    deliver(settings, "+79161234567", "Your dispatch code: 123456")
    assert gateway.received == [
        ("/send", "application/json", {"to": "+79161234567", "text": "Your dispatch code: 123456"})
    ]


@pytest.mark.parametrize("gateway", [500, 404], indirect=True)
def test_http_backend_failure_raises_for_retry(gateway: Gateway, services: Any) -> None:
    settings = services.settings(sms_backend="http", sms_http_url=gateway.url)
    with pytest.raises(send_sms.autoretry_for) as raised:
        deliver(settings, "+79161234567", "Your dispatch code: 123456")
    assert str(gateway.status) in str(raised.value)
    assert len(gateway.received) == 1


def test_http_backend_unreachable_gateway_raises_for_retry(services: Any) -> None:
    from dispatch.tools import devservices

    settings = services.settings(sms_backend="http", sms_http_url=f"http://127.0.0.1:{devservices.free_port()}/")
    with pytest.raises(send_sms.autoretry_for):
        deliver(settings, "+79161234567", "hello")


def test_file_backend_writes_one_json_file_per_message(services: Any, tmp_path: Path) -> None:
    settings = services.settings(sms_backend="file", outbox_dir=str(tmp_path))
    deliver(settings, "+4915123456789", "first")
    deliver(settings, "+4915123456789", "second")
    files = sorted((tmp_path / "sms").iterdir())
    assert [f.suffix for f in files] == [".json", ".json"]  # no half-written `.part` left behind
    messages = sorted((jsonutil.loads(f.read_bytes()) for f in files), key=lambda m: m["text"])
    assert [(m["to"], m["text"]) for m in messages] == [("+4915123456789", "first"), ("+4915123456789", "second")]
    assert all(set(m) == {"to", "text", "at"} and m["at"].endswith("Z") for m in messages)
