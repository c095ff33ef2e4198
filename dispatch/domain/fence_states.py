"""Where each vehicle stands against its organization's geofences: live state in Redis.

Per vehicle one hash, `fence-state:<vehicle_id>`: `ts`, the GPS time of the newest point judged
(epoch milliseconds, the precision MongoDB keeps points at), and `inside`, the ids of the fences it
was inside then (JSON). It moves forward only by compare-and-set on `ts` (a Lua script on that one
key, so a Redis Cluster serves it like one Redis): two processes judging the same truck's points
never both judge from the same state (dispatch/domain/geofences.py).

Redis and not MongoDB: the state changes with every judged batch of every truck, a write per truck
per drain; in Redis that costs a fraction of what a MongoDB write costs, and the GPS history writes
(the acks) share MongoDB. The state outlives server restarts (Redis keeps it) and is dropped after
`KEEP_SECONDS` without a judged point; a vehicle without a state judges its next point from
"inside nothing", as after a fence is created.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import redis.asyncio as aioredis
from bson import ObjectId

from dispatch.core import jsonutil

KEEP_SECONDS = 30 * 24 * 3600
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# KEYS[1] the state; ARGV: the `ts` it must hold now ("" = no state yet), the new `ts`, the new
# `inside`, the lifetime. 1 when moved, 0 when another process moved it first.
ADVANCE = """
local now = redis.call('HGET', KEYS[1], 'ts')
if (now or '') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'ts', ARGV[2], 'inside', ARGV[3])
redis.call('EXPIRE', KEYS[1], ARGV[4])
return 1
"""

Move = tuple[ObjectId, datetime | None, datetime, list[str]]  # (vehicle, seen, ts, inside)


def state_key(vehicle_id: ObjectId) -> str:
    return f"fence-state:{vehicle_id}"


def _ms(ts: datetime) -> str:
    return str((ts - EPOCH) // timedelta(milliseconds=1))


def _advance_args(seen: datetime | None, ts: datetime, inside: list[str]) -> tuple[str, str, bytes, int]:
    """ADVANCE's ARGV for a move from `seen` (None: no state yet) to `ts`."""
    return ("" if seen is None else _ms(seen), _ms(ts), jsonutil.dumps(inside), KEEP_SECONDS)


def _decode(raw: list[Any]) -> dict[str, Any] | None:
    ts, inside = raw
    if ts is None:
        return None
    return {"ts": EPOCH + timedelta(milliseconds=int(ts)), "inside": jsonutil.loads(inside or b"[]")}


class FenceStates:
    """The judged states of vehicles: read, and moved forward by compare-and-set."""

    def __init__(self, redis: aioredis.Redis) -> None:
        self.redis = redis

    async def state(self, vehicle_id: ObjectId) -> dict[str, Any] | None:
        """A vehicle's judged state: `{ts, inside}` (None before its first judged point)."""
        return (await self.states_of([vehicle_id])).get(vehicle_id)

    async def states_of(self, vehicle_ids: list[ObjectId]) -> dict[ObjectId, dict[str, Any]]:
        """The judged states of several vehicles, in one round trip (those without one are left out)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for vehicle_id in vehicle_ids:
                pipe.hmget(state_key(vehicle_id), ["ts", "inside"])
            answers = await pipe.execute()
        found = {vehicle_id: _decode(raw) for vehicle_id, raw in zip(vehicle_ids, answers, strict=True)}
        return {vehicle_id: state for vehicle_id, state in found.items() if state is not None}

    async def advance_many(self, moves: list[Move]) -> set[ObjectId]:
        """Move several vehicles' states in one round trip, each from its `seen` (None: no state yet) to
        its `ts`; the vehicles whose state is now at their `ts` (moved by this call, or by another
        process to the same point)."""
        if not moves:
            return set()
        async with self.redis.pipeline(transaction=False) as pipe:
            for vehicle_id, seen, ts, inside in moves:
                # EVAL with the text: a registered Script in a pipeline asks SCRIPT EXISTS first
                pipe.eval(ADVANCE, 1, state_key(vehicle_id), *_advance_args(seen, ts, inside))
            answers = await pipe.execute()
        moved = {vehicle_id for (vehicle_id, *_), answer in zip(moves, answers, strict=True) if answer == 1}
        if len(moved) == len(moves):
            return moved
        now = await self.states_of([vid for vid, *_ in moves if vid not in moved])  # which of them lost a race
        return moved | {
            vid
            for vid, _, ts, inside in moves
            if vid in now and (_ms(now[vid]["ts"]), now[vid]["inside"]) == (_ms(ts), inside)
        }

    async def advance(self, vehicle_id: ObjectId, seen: datetime | None, ts: datetime, inside: list[str]) -> bool:
        """Compare-and-set: move the state from `seen` (None: no state yet) to `ts`; False if it moved meanwhile."""
        return bool(await self.redis.eval(ADVANCE, 1, state_key(vehicle_id), *_advance_args(seen, ts, inside)))
