"""A Redis Cluster node killed (kill -9) and restarted while drivers stream: nothing acked is lost,
live tracking resumes. The stack's own redis-server stays the Celery broker, as in production."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from dispatch.realtime.hub import pubsub_key
from dispatch.tools import devservices
from dispatch.tools.devservices import Service
from tests.reliability.test_faults import HANG_GUARD, assert_stored_exactly_once, fetch, until
from tests.support.helpers import api_at
from tests.support.realtime_client import fleet
from tests.support.stack import Console, Driver, Stack, in_thread, kill_group

pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")


class Cluster:
    """Three master nodes on loopback, each one a process a test may kill and start again."""

    def __init__(self, root: Path) -> None:
        self.group = devservices.Group()
        self.ports = [devservices.free_port() for _ in range(3)]
        self.url = devservices.start_redis_cluster(self.ports, root / "data", root / "log", self.group)

    def node_of(self, key: str) -> int:
        """The port of the node that serves a key's (or a sharded channel's) slot."""
        with redis.RedisCluster(host="127.0.0.1", port=self.ports[0]) as client:
            return int(client.get_node_from_key(key).port)

    def kill(self, port: int) -> Service:
        node = self.group.services[self.ports.index(port)]
        kill_group(node.process)
        return node

    def restart(self, node: Service, port: int) -> None:
        self.group.services[self.ports.index(port)] = devservices.respawn(node, port)
        devservices.wait_cluster_ok(self.ports)


async def until_not_ready(url: str) -> None:
    """Wait until /readyz answers 503 `not_ready` (its Redis check failing)."""
    deadline = time.monotonic() + 30
    while (ready := await fetch(url + "/readyz")).status != 503:
        assert time.monotonic() < deadline, "the cluster's failure never showed in /readyz"
        await asyncio.sleep(0.1)
    assert ready.error_code == "not_ready"


@pytest.fixture
def cluster(stack: Stack, tmp_path: Path) -> Iterator[Cluster]:
    """A cluster for the stack's live state (set before `stack_app` opens its clients)."""
    running = Cluster(tmp_path / "cluster")
    stack.settings = stack.settings.replace(redis_url=running.url, redis_cluster=True)  # type: ignore[union-attr]
    yield running
    running.group.stop()


@pytest.mark.gen_test(timeout=HANG_GUARD)
async def test_a_cluster_node_restarted_while_drivers_stream(cluster: Cluster, stack: Stack, stack_app: Any) -> None:
    server = stack.serve()
    async with api_at(server.url) as api:
        team = await fleet(stack_app, api, drivers=2)
    channel = f"fleet:{team['org']['_id']}"
    console = Console([server.url], team["manager_token"], channel).start()
    await asyncio.wait_for(console.subscribed.wait(), 10)
    drivers = [Driver([server.url], crew["token"]).start() for crew in team["drivers"]]
    watched = team["drivers"][0]["vehicle"]["id"]
    await until(lambda: all(d.acked >= 10 for d in drivers) and len(console.seqs(watched)) >= 5, what="streaming")

    port = cluster.node_of(pubsub_key(channel))  # the node that carries the console's channel
    node = await in_thread(cluster.kill, port)
    sent_before = [d.seq for d in drivers]
    # The other nodes mark it failed after the node timeout (2 s here): the cluster is not `ok`, and says so.
    await until_not_ready(server.url)
    await until(lambda: all(d.seq >= s + 20 for d, s in zip(drivers, sent_before, strict=True)), what="the outage")

    await in_thread(cluster.restart, node, port)
    assert (await fetch(server.url + "/readyz")).status == 200
    back, mark = time.monotonic(), drivers[0].seq
    await until(lambda: any(n > mark for n in console.seqs(watched)), what="live frames after the node")
    resumed = next(t for t, f in console.arrivals if f["vehicle_id"] == watched and f["lat"] > 40 + mark / 10_000)
    for driver in drivers:
        await driver.finish()
    await console.stop()
    sent, stored = assert_stored_exactly_once(stack, team, drivers)
    print(f"\ncluster node restart: sent={sent} stored={stored} live again after {resumed - back:.2f}s")
    assert "tornado.application" not in server.log(), server.log()[-3000:]
