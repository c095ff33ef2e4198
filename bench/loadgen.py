"""The open-loop load generator: its own process, one event loop, lean sockets (bench/wire.py).

Started by the scenarios as `python -m bench.loadgen SPEC.json`; prints one JSON line per
event on stdout. Modes:

- `fanout`: N driver sockets send `location` frames on a fixed schedule (point k of a step
  is due at k / rate seconds, driver k mod N sends it, whatever the acks do) and M console
  sockets follow the fleet channel. Per step: offered and acked rate, delivery to the
  consoles, points acked within 2 s, ack and driver→console latency (a console frame is matched to its send time by
  driver id and `ts`, which the generator sets to the send time with ms precision), how late
  the generator itself was, and the CPU seconds of the watched processes. With `search`,
  the rate climbs a ladder until a step fails, then tries the midpoint once.
- `connect`: open N driver sockets (waiting for each one's `ready`), report how long that
  took, wait for a line on stdin, close them.
"""

from __future__ import annotations

import asyncio
import os
import resource
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from bench.wire import HttpConnection, WebSocket, connect
from dispatch.core import jsonutil

LADDER = (250, 500, 750, 1000, 1250, 1500, 2000, 2500, 3000, 4000, 5000, 6000, 8000, 10000, 12500, 15000, 20000)
BACKLOG_ABORT_S = 2.0  # a step whose consoles trail by this many seconds of points has failed already
DRAIN_S = 5.0
ACK_LIMIT_MS = 2000.0  # a step holds only if (by default) 99.9 % of its points were acked within this
PAUSE_S = 1.0
CONNECT_TIMEOUT = 30.0
QUIET_WAIT_S = 15.0  # before a step, wait this long at most for other work on the machine to calm down
QUIET_CORES = 0.25  # "calm": everything else together uses less than this many cores
QUIET_BUDGET_S = 40.0  # all the waiting one run may do, so a busy machine cannot stretch it without bound
REST_WARM_UP_S = 1.0


def say(event: str, **data: Any) -> None:
    """One JSON line on stdout."""
    sys.stdout.write(jsonutil.dumps({"event": event, **data}).decode() + "\n")
    sys.stdout.flush()


def pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile, 0 for no values (bench.common's, without importing the server side)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))]


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds of these processes so far (gone ones count 0)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
        except (OSError, IndexError, ValueError):
            pass
    return total


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine spent busy so far (all cores; /proc/stat)."""
    with open("/proc/stat") as stat:
        values = [int(v) for v in stat.readline().split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return (sum(values[:8]) - idle) / os.sysconf("SC_CLK_TCK")


class Clock:
    """`ts` text of the current millisecond, formatted once per millisecond."""

    def __init__(self) -> None:
        self._ms = -1
        self._text = ""

    def now(self) -> str:
        ms = time.time_ns() // 1_000_000
        if ms != self._ms:
            self._ms = ms
            moment = datetime.fromtimestamp(ms / 1000, UTC)
            self._text = moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
        return self._text


@dataclass
class Step:
    """What one step at one rate saw."""

    rate: float
    consoles: int
    sent: int = 0
    acked: int = 0
    delivered: int = 0
    ack_ms: list[float] = field(default_factory=list)
    fanout_ms: list[float] = field(default_factory=list)
    late_ms: list[float] = field(default_factory=list)
    trace: list[tuple[float, float]] = field(default_factory=list)
    ack_trace: list[tuple[float, float]] = field(default_factory=list)
    last_ack: float = 0.0

    def caught_up(self) -> bool:
        return self.acked >= self.sent and self.delivered >= self.sent * self.consoles


class Driver:
    """One driver socket: its pending seqs and their send times."""

    def __init__(self, gen: Generator, ident: str, token: str) -> None:
        self.gen, self.ident, self.token = gen, ident, token
        self.ws: WebSocket | None = None
        self.ready = asyncio.get_running_loop().create_future()
        self.pending: dict[int, tuple[float, Step]] = {}
        self.seq = 0

    def on_message(self, payload: bytes) -> None:
        frame = jsonutil.loads(payload)
        kind = frame.get("type")
        if kind == "ack":  # cumulative: every pending seq up to this one is stored
            now, acked = time.perf_counter(), frame["seq"]
            while self.pending:
                seq = next(iter(self.pending))
                if seq > acked:
                    break
                sent_at, step = self.pending.pop(seq)
                step.acked += 1
                step.ack_ms.append((now - sent_at) * 1000)
                step.ack_trace.append((sent_at, (now - sent_at) * 1000))
                step.last_ack = now
        elif kind == "ready" and not self.ready.done():
            self.ready.set_result(None)
        elif kind == "error":
            self.gen.errors += 1


class Console:
    """One console socket following a channel."""

    def __init__(self, gen: Generator, token: str, channel: str) -> None:
        self.gen, self.token, self.channel = gen, token, channel
        self.ws: WebSocket | None = None
        self.ready = asyncio.get_running_loop().create_future()
        self.subscribed = asyncio.get_running_loop().create_future()

    def on_message(self, payload: bytes) -> None:
        frame = jsonutil.loads(payload)
        kind = frame.get("type")
        if kind == "location":
            sent = self.gen.points.get((frame.get("driver_id"), frame.get("ts")))
            if sent is not None:
                step = sent[1]
                step.delivered += 1
                latency = (time.perf_counter() - sent[0]) * 1000
                step.fanout_ms.append(latency)
                step.trace.append((sent[0], latency))
        elif kind == "ready" and not self.ready.done():
            self.ready.set_result(None)
        elif kind == "subscribed" and not self.subscribed.done():
            self.subscribed.set_result(None)
        elif kind == "error":
            self.gen.errors += 1


class Generator:
    """The sockets of one run and the steps driven through them."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.ws_base = spec["url"].replace("http://", "ws://")
        self.drivers = [Driver(self, d["driver_id"], d["token"]) for d in spec.get("drivers", [])]
        self.consoles = [Console(self, c["token"], c["channel"]) for c in spec.get("consoles", [])]
        self.points: dict[tuple[str, str], tuple[float, Step]] = {}
        self.watch: dict[str, list[int]] = spec.get("watch_pids", {})
        self.clock = Clock()
        self.errors = 0
        self.failed_connects: list[str] = []
        self.quiet_budget = QUIET_BUDGET_S

    # --- sockets -------------------------------------------------------------
    async def open_drivers(self, concurrency: int = 50) -> float:
        """Connect every driver (at most `concurrency` handshakes at once); seconds it took."""
        gate = asyncio.Semaphore(concurrency)

        async def one(driver: Driver) -> None:
            async with gate:
                try:
                    driver.ws = await connect(self.ws_base + "/ws/driver", driver.on_message, driver.token)
                    await asyncio.wait_for(driver.ready, CONNECT_TIMEOUT)
                except (TimeoutError, OSError) as exc:
                    self.failed_connects.append(f"{type(exc).__name__}: {exc}")

        started = time.perf_counter()
        await asyncio.gather(*(one(d) for d in self.drivers))
        return time.perf_counter() - started

    async def open_consoles(self) -> None:
        """Connect the consoles and subscribe each to its channel."""
        for console in self.consoles:
            console.ws = await connect(self.ws_base + "/ws/console", console.on_message, console.token)
            await asyncio.wait_for(console.ready, CONNECT_TIMEOUT)
            console.ws.send(jsonutil.dumps({"type": "subscribe", "channel": console.channel}))
            await asyncio.wait_for(console.subscribed, CONNECT_TIMEOUT)

    def close(self) -> None:
        """Close every socket."""
        for sock in [*self.drivers, *self.consoles]:
            if sock.ws is not None:
                sock.ws.close()

    # --- one step -----------------------------------------------------------
    def _send(self, k: int, step: Step) -> None:
        driver = self.drivers[k % len(self.drivers)]
        driver.seq += 1
        ts = self.clock.now()
        now = time.perf_counter()
        driver.pending[driver.seq] = (now, step)
        self.points[(driver.ident, ts)] = (now, step)
        # Each truck drives its own line, ~5.5 m a point (~50 km/h at 2.5 points a second), from a start
        # of its own inside the 0.1° square the fleet covers, and starts over every 1000 points.
        d = k % len(self.drivers)
        lat = 55.70 + (d % 200) * 5e-4 + (driver.seq % 1000) * 5e-5
        lon = 37.55 + (d * 7 % 200) * 5e-4
        angle = 0.0
        driver.ws.send(
            jsonutil.dumps(
                {  # type: ignore[union-attr]
                    "type": "location",
                    "seq": driver.seq,
                    "lat": round(lat, 6),
                    "lon": round(lon, 6),
                    "ts": ts,
                    "speed": 40.0,
                    "heading": angle,
                    "accuracy": 5.0,
                }
            )
        )
        step.sent += 1

    async def quiet(self) -> float:
        """Wait (at most QUIET_WAIT_S) until other work on the shared machine uses under QUIET_CORES; seconds waited."""
        started = time.perf_counter()
        limit = min(self.spec.get("quiet_wait_s", QUIET_WAIT_S), self.quiet_budget)
        while time.perf_counter() - started < limit:
            before, own = self._cpu(), _own_cpu()
            await asyncio.sleep(0.5)
            after = self._cpu()
            spent = {name: after[name] - before[name] for name in after}
            if _cpu_split(spent, _own_cpu() - own)["others"] < QUIET_CORES * 0.5:
                break
        waited = time.perf_counter() - started
        self.quiet_budget -= waited
        return waited

    async def step(self, rate: float, seconds: float) -> dict[str, Any]:
        """Offer `rate` points/s for `seconds`, then drain; the step's numbers."""
        waited = await self.quiet()
        step = Step(rate, len(self.consoles))
        self.points.clear()
        cpu_before, own_before = self._cpu(), _own_cpu()
        start = time.perf_counter()
        total, k, aborted = int(rate * seconds), 0, False
        backlog_limit = rate * BACKLOG_ABORT_S
        while k < total:
            now = time.perf_counter()
            due = min(total, int((now - start) * rate) + 1)
            while k < due:
                step.late_ms.append((now - (start + k / rate)) * 1000)
                self._send(k, step)
                k += 1
            if step.sent - step.acked > backlog_limit or (
                step.consoles and step.sent - step.delivered / step.consoles > backlog_limit
            ):
                aborted = True
                break
            await asyncio.sleep(max(0.0, start + k / rate - time.perf_counter()))
        sending = time.perf_counter() - start
        drain_until = time.perf_counter() + DRAIN_S
        while not step.caught_up() and time.perf_counter() < drain_until:
            await asyncio.sleep(0.02)
        cpu = {name: round(spent - cpu_before[name], 2) for name, spent in self._cpu().items()}
        if self.spec.get("trace"):
            with open(self.spec["trace"], "a") as out:
                out.writelines(f"fanout {rate} {sent - start:.4f} {ms:.2f}\n" for sent, ms in step.trace)
                out.writelines(f"ack {rate} {sent - start:.4f} {ms:.2f}\n" for sent, ms in step.ack_trace)
        return {
            **self._report(step, sending, aborted, cpu, _own_cpu() - own_before, start),
            "waited_for_quiet_s": round(waited, 1),
        }

    def _cpu(self) -> dict[str, float]:
        return {"machine": machine_busy_seconds(), **{name: cpu_seconds(pids) for name, pids in self.watch.items()}}

    def _report(
        self, step: Step, sending: float, aborted: bool, cpu: dict[str, float], own_cpu: float, start: float
    ) -> dict[str, Any]:
        expected = step.sent * step.consoles
        delivery = step.delivered / expected if expected else 1.0
        offered = step.sent / sending if sending else 0.0
        acked_span = max(step.last_ack - start, sending) if step.acked else sending
        fanout_p99 = pct(step.fanout_ms, 99)
        in_time = sum(1 for ms in step.ack_ms if ms <= ACK_LIMIT_MS) / step.sent if step.sent else 0.0
        held = (
            not aborted
            and fanout_p99 <= self.spec.get("p99_limit_ms", 100)
            and delivery >= self.spec.get("delivery_min", 0.999)
            and in_time >= self.spec.get("acked_in_time_min", 0.999)
            and offered >= 0.95 * step.rate
        )
        return {
            "rate": step.rate,
            "seconds": round(sending, 2),
            "offered_rate": round(offered, 1),
            "acked_rate": round(step.acked / acked_span, 1) if acked_span else 0.0,
            "acked_ratio": round(step.acked / step.sent, 5) if step.sent else 0.0,
            "acked_in_2s_ratio": round(in_time, 5),
            "delivery_ratio": round(delivery, 5),
            "consoles": step.consoles,
            "ack_p50_ms": _r(pct(step.ack_ms, 50)),
            "ack_p99_ms": _r(pct(step.ack_ms, 99)),
            "ack_max_ms": _r(max(step.ack_ms, default=0)),
            "fanout_p50_ms": _r(pct(step.fanout_ms, 50)),
            "fanout_p99_ms": _r(fanout_p99),
            "fanout_max_ms": _r(max(step.fanout_ms, default=0)),
            "send_late_p99_ms": _r(pct(step.late_ms, 99)),
            "aborted": aborted,
            "held": held,
            "cpu_s": _cpu_split(cpu, own_cpu),
            "errors": self.errors,
        }

    # --- modes ---------------------------------------------------------------
    async def fanout(self) -> None:
        """Open the sockets, run the steps, print each one and the sustained rate."""
        opened = await self.open_drivers()
        if self.failed_connects:
            raise RuntimeError(f"{len(self.failed_connects)} driver sockets did not open: {self.failed_connects[0]}")
        await self.open_consoles()
        say("opened", drivers=len(self.drivers), consoles=len(self.consoles), seconds=round(opened, 2))
        seconds = self.spec.get("step_seconds", 5.0)
        steps: list[dict[str, Any]] = []

        async def run(rate: float) -> dict[str, Any]:
            result = await self.step(rate, seconds)
            steps.append(result)
            say("step", **result)
            await asyncio.sleep(PAUSE_S if result["held"] else 2 * PAUSE_S)
            return result

        async def holds(rate: float) -> bool:
            """A failed step is run once more before the rate counts as failed (the machine is shared)."""
            return (await run(rate))["held"] or (await run(rate))["held"]

        for rate in self.spec.get("rates") or []:
            await run(rate)
        sustained = max((s["rate"] for s in steps if s["held"]), default=0)
        if self.spec.get("search"):
            low, failed = 0, None
            for rate in LADDER:
                if not await holds(rate):
                    failed = rate
                    break
                low = rate
            middle = round((low + failed) / 2 / 100) * 100 if failed and low else 0
            if middle and failed / low > 1.2 and await holds(middle):
                low = middle
            sustained = low
        best = max(
            (s for s in steps if s["held"] and s["rate"] == sustained), key=lambda s: s["fanout_p99_ms"], default=None
        )
        say("result", sustained_rate=sustained, sustained=best, steps=steps)
        self.close()

    async def connections(self) -> None:
        """Open the drivers, report, hold them until told to close on stdin."""
        opened = await self.open_drivers(self.spec.get("concurrency", 50))
        say(
            "opened",
            drivers=len(self.drivers),
            seconds=round(opened, 2),
            per_second=round(len(self.drivers) / opened, 1) if opened else 0.0,
            errors=self.errors,
            failed=len(self.failed_connects),
            first_failure=(self.failed_connects or [None])[0],
        )
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        self.close()
        await asyncio.sleep(0.5)
        say("closed")


def _own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _cpu_split(cpu: dict[str, float], own: float) -> dict[str, float]:
    """CPU seconds of the step by process, the generator's, and everything else on the machine."""
    watched = {name: spent for name, spent in cpu.items() if name != "machine"}
    others = cpu["machine"] - sum(watched.values()) - own
    return {**watched, "generator": round(own, 2), "others": round(max(others, 0.0), 2)}


def _r(value: float) -> float:
    return round(value, 2)


async def rest(spec: dict[str, Any]) -> None:
    """`rest` mode: per endpoint, `concurrency` keep-alive clients back to back for `seconds`."""
    watch: dict[str, list[int]] = spec.get("watch_pids", {})

    def cpu() -> dict[str, float]:
        return {"machine": machine_busy_seconds(), **{name: cpu_seconds(pids) for name, pids in watch.items()}}

    for endpoint in spec["endpoints"]:
        before, own = cpu(), _own_cpu()
        result = await hammer(spec["url"], endpoint, spec.get("concurrency", 50), spec.get("seconds", 8.0))
        spent = {name: round(value - before[name], 2) for name, value in cpu().items()}
        say("endpoint", **result, cpu_s=_cpu_split(spent, _own_cpu() - own))


async def hammer(url: str, endpoint: dict[str, Any], concurrency: int, seconds: float) -> dict[str, Any]:
    """One endpoint under load: latency percentiles (after a warm-up second), requests/s, status counts."""
    bodies = [jsonutil.dumps(body) for body in endpoint.get("bodies", [])] or [b""]
    tokens = endpoint["tokens"]
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    warm_until = time.perf_counter() + REST_WARM_UP_S
    stop_at = warm_until + seconds
    sent = 0

    async def client(n: int) -> None:
        nonlocal sent
        conn = HttpConnection(url)
        headers = {"Authorization": f"Bearer {tokens[n % len(tokens)]}", "Content-Type": "application/json"}
        try:
            while (now := time.perf_counter()) < stop_at:
                body = bodies[sent % len(bodies)]
                sent += 1
                status, _ = await conn.request(endpoint["method"], endpoint["path"], body, headers)
                if now >= warm_until:
                    latencies.append((time.perf_counter() - now) * 1000)
                    statuses[status] = statuses.get(status, 0) + 1
        finally:
            conn.close()

    await asyncio.gather(*(client(n) for n in range(concurrency)))
    ok = sum(count for status, count in statuses.items() if 200 <= status < 300)
    return {
        "name": endpoint["name"],
        "concurrency": concurrency,
        "seconds": seconds,
        "requests": len(latencies),
        "requests_per_s": round(len(latencies) / seconds, 1),
        "p50_ms": _r(pct(latencies, 50)),
        "p99_ms": _r(pct(latencies, 99)),
        "max_ms": _r(max(latencies, default=0)),
        "ok_ratio": round(ok / len(latencies), 4) if latencies else 0.0,
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
    }


async def main(path: str) -> None:
    with open(path, "rb") as handle:
        spec = jsonutil.loads(handle.read())
    if spec["mode"] == "rest":
        await asyncio.wait_for(rest(spec), spec.get("timeout", 600))
        return
    generator = Generator(spec)
    try:
        if spec["mode"] == "fanout":
            await asyncio.wait_for(generator.fanout(), spec.get("timeout", 600))
        else:
            await asyncio.wait_for(generator.connections(), spec.get("timeout", 600))
    finally:
        generator.close()


if __name__ == "__main__":
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    asyncio.run(main(sys.argv[1]))
