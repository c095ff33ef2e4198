"""The periodic runner of the outboxes' sweeps: it runs, survives failures and always stops."""

from __future__ import annotations

import asyncio
import logging

import redis.exceptions

from dispatch.core.periodic import Periodic

log = logging.getLogger("test.periodic")


def test_a_job_that_swallows_its_cancellation_still_stops() -> None:
    """redis-py reports a cancelled read as a lost connection: the runner must stop all the same."""
    runs = 0
    running = asyncio.Event()

    async def job() -> None:
        nonlocal runs
        runs += 1
        running.set()
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            raise redis.exceptions.ConnectionError("Connection closed by server.") from None

    async def scenario() -> None:
        sweeper = Periodic("sweeper", 0.01, job, log)
        sweeper.start()
        await asyncio.wait_for(running.wait(), 5)
        await asyncio.wait_for(sweeper.stop(timeout=5), 3)  # well before its job's own end
        assert runs == 1

    asyncio.run(scenario())


def test_failing_runs_are_logged_and_the_next_one_comes() -> None:
    outcomes = [redis.exceptions.ConnectionError("down"), ValueError("bad document"), None]
    done = asyncio.Event()

    async def job() -> None:
        outcome = outcomes.pop(0)
        if outcome is None:
            done.set()
            return
        raise outcome

    async def scenario() -> None:
        sweeper = Periodic("sweeper", 0.01, job, log)
        sweeper.start()
        await asyncio.wait_for(done.wait(), 5)
        await sweeper.stop()

    asyncio.run(scenario())
    assert outcomes == []
