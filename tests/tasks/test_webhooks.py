"""The webhook sender's own checks, without a worker: addresses refused at send time, the deadline."""

from __future__ import annotations

import asyncio
import time

import pytest

from tasks.webhooks import post_within


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
