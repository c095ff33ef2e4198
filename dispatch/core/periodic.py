"""A job a process runs every few seconds for its whole life (the outboxes' sweeps), stopped cleanly.

A store client may turn a cancellation into its own error (redis-py reports a cancelled read as a
lost connection), so a loop that only waits to be cancelled can miss it and run on. This one stops
on a flag it checks between runs, and `stop` gives a running job a bounded time to end.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from dispatch.core.storage import UNAVAILABLE

STOP_TIMEOUT = 5.0  # seconds a running job gets to end once stopped, before it is left behind


class Periodic:
    """Run `job` every `interval` seconds on the running loop, from `start` until `stop`.

    A job that fails is logged (a store that is away: one warning line) and runs again next time.
    """

    def __init__(self, name: str, interval: float, job: Callable[[], Awaitable[object]], log: logging.Logger) -> None:
        self.name = name
        self.interval = interval
        self.job = job
        self.log = log
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start on the running loop (again after `stop` is a no-op)."""
        if self._task is None and not self._stopping.is_set():
            self._task = asyncio.get_running_loop().create_task(self._run(), name=self.name)

    async def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """Stop: no new run starts; a run in progress is cancelled and given `timeout` seconds to end."""
        self._stopping.set()
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=timeout)
        if not done:
            self.log.warning("%s did not stop within %.0f s; left behind", self.name, timeout)

    async def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                await asyncio.wait_for(self._stopping.wait(), self.interval)
                return  # stopped while waiting
            except TimeoutError:
                pass
            try:
                await self.job()
            except UNAVAILABLE as exc:  # a store restarting: the next run tries again
                self.log.warning("%s skipped a run: %s", self.name, exc)
            except Exception:  # the loop must outlive any one bad run
                self.log.exception("%s failed", self.name)


async def first_this_interval(redis: Any, key: str, interval: float) -> bool:
    """Whether this process is the first to claim `key` for the next `interval` seconds (`SET NX PX`):
    with several processes running the same job, one of them runs it per interval."""
    return bool(await redis.set(key, b"1", nx=True, px=max(int(interval * 1000), 1)))
