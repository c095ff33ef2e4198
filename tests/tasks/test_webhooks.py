"""The webhook sender's own checks, without a worker: addresses refused at send time, the deadline."""

from __future__ import annotations

import asyncio
import time

import pytest

import tasks.webhooks
from tasks.webhooks import post_within
from tests.support.receiver import receiving


@pytest.mark.parametrize("url", ["http://127.0.0.1:9/hook", "http://localhost:9/hook", "http://[::1]:9/hook"])
@pytest.mark.gen_test
async def test_the_sender_checks_the_address_again_before_each_attempt(url: str) -> None:
    outcome = await post_within(url, b"{}", {}, 2, allow_private=False)
    assert outcome.status is None and not outcome.delivered
    assert outcome.error is not None and outcome.error.startswith("Refused: ") and "loopback" in outcome.error


@pytest.mark.gen_test
async def test_a_receiver_that_accepts_and_never_answers_is_cut_off_at_the_deadline() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(-1)  # reads until the sender gives up and closes
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        started = time.monotonic()
        outcome = await asyncio.get_running_loop().run_in_executor(
            None, lambda: asyncio.run(post_within(f"http://127.0.0.1:{port}/", b"{}", {}, 0.5, allow_private=True))
        )
        assert time.monotonic() - started < 1.5
        assert (outcome.status, outcome.error) == (None, "No answer within 0.5 s.")
    finally:
        server.close()
        await server.wait_closed()


@pytest.mark.gen_test
async def test_an_attempt_goes_to_the_address_that_was_checked_under_the_urls_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The name is looked up once per attempt: what was checked is what is called (no DNS rebinding)."""
    looked_up: list[str] = []

    async def resolver(host: str, port: int) -> list[str]:  # a DNS that knows the name; the machine's does not
        looked_up.append(host)
        return ["127.0.0.1"]

    monkeypatch.setattr(tasks.webhooks, "_addresses", resolver)
    with receiving() as receiver:
        port = receiver.server.server_address[1]
        receiver.url("/hook")
        outcome = await post_within(f"http://hooks.partner.invalid:{port}/hook", b"{}", {}, 5, allow_private=True)
        assert outcome.delivered, outcome.error  # a second lookup, by the HTTP client, would have failed
        (got,) = receiver.got("/hook")
    assert looked_up == ["hooks.partner.invalid"]
    assert got.headers["Host"] == f"hooks.partner.invalid:{port}"  # the receiver sees the URL's name
