"""The webhook rules that need no server: the retry schedule, address refusals, payload data, signatures."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from dispatch.core.events import Event
from dispatch.core.netguard import UnsafeUrl, parse_url, refusal
from dispatch.domain.webhooks import payload_data, retry_delay
from models.webhooks import signature


def test_retries_wait_twice_as_long_each_time_with_jitter_in_the_upper_half() -> None:
    for attempts in range(1, 12):
        ceiling = 30 * 2 ** (attempts - 1)
        delays = [retry_delay(attempts, 30) for _ in range(200)]
        assert all(ceiling / 2 <= delay <= ceiling for delay in delays)
        assert len(set(delays)) > 100  # jittered: senders retrying together spread out


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.2.3.4",
        "172.16.0.1",
        "192.168.0.1",
        "169.254.169.254",
        "::1",
        "fe80::1%eth0",
        "0.0.0.0",
        "::ffff:10.0.0.1",
        "224.0.0.1",
        "fc00::1",
        "240.0.0.1",
    ],
)
def test_private_and_special_addresses_are_refused(address: str) -> None:
    assert refusal(address) is not None


@pytest.mark.parametrize("address", ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111"])
def test_public_addresses_pass(address: str) -> None:
    assert refusal(address) is None


@pytest.mark.parametrize("url", ["gopher://x/", "http:///path", "https://host:99999/", "//host/path", "x" * 3000])
def test_urls_other_than_http_s_with_a_host_are_unsafe(url: str) -> None:
    with pytest.raises(UnsafeUrl):
        parse_url(url)


def test_the_signature_is_hmac_sha256_of_timestamp_dot_body() -> None:
    body = b'{"id":"1"}'
    expected = hmac.new(b"whsec_k", b"1700000000." + body, hashlib.sha256).hexdigest()
    assert signature("whsec_k", 1700000000, body) == f"t=1700000000,v1={expected}"


def test_order_event_data_is_the_order_with_from_to_action_and_actor() -> None:
    order = {"id": "o1", "status": "new"}
    event = Event(
        "order",
        (),
        {
            "event": "status_changed",
            "order": order,
            "actor_id": "u1",
            "from": "assigned",
            "to": "new",
            "action": "declined",
            "reason": "flat tyre",
        },
    )
    assert payload_data(event) == {
        "order": order,
        "from": "assigned",
        "to": "new",
        "action": "declined",
        "actor": {"type": "user", "id": "u1"},
        "reason": "flat tyre",
    }


@pytest.mark.gen_test
async def test_a_listener_alongside_runs_with_the_chain_and_publish_waits_for_it() -> None:
    import asyncio

    from dispatch.core.events import EventBus

    bus, seen = EventBus(), []

    async def chain(event: Event) -> None:
        seen.append("chain start")
        await asyncio.sleep(0.05)
        seen.append("chain end")

    async def outbox(event: Event) -> None:
        seen.append("outbox start")
        await asyncio.sleep(0.01)
        seen.append("outbox end")
        raise RuntimeError("a failing listener never fails the caller")

    bus.listen(chain)
    bus.listen(outbox, alongside=True)
    await bus.publish(Event("order", ()))
    assert seen == ["chain start", "outbox start", "outbox end", "chain end"]
