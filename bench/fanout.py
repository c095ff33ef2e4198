"""GPS ingest and fan-out: the sustained rate of the real server and of the bare relay, same generator.

N driver sockets send `location` frames open-loop, M consoles follow the fleet channel;
the rate climbs until driver→console p99 passes 100 ms or delivery drops below 99.9 %
(bench/loadgen.py). The real server runs with its stores (Redis, the MongoDB-wire server);
the relay (bench/relay.py) is the ceiling of Tornado itself on this machine.

Run: .venv/bin/python -m bench.fanout [--target both|project|relay] [--processes 2]
     [--drivers 200] [--consoles 2] [--rates 1000 2000] [--profile out.txt --profile-rate 1500]
     [--geofences 50 --etas]  (the cost of judging the stream: geofences per organization, ETAs on)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.common import Server, children, emit, loadgen, machine, relay_process, server_process, services
from bench.fleet import driving_fleet
from dispatch.tools import devservices

GENERATOR_TIMEOUT = 420


def run_generator(
    spec: dict[str, Any], watch: dict[str, list[int]], label: str, on_open: Callable[[], dict[str, Any]] | None = None
) -> dict[str, Any]:
    """The generator's final result (with `on_open`'s answer once the sockets are open); steps go to stderr."""
    result: dict[str, Any] = {}
    opened: dict[str, Any] = {}
    for event in loadgen({**spec, "watch_pids": watch, "timeout": GENERATOR_TIMEOUT}):
        if event["event"] == "step":
            print(f"  {label}: {_step_line(event)}", file=sys.stderr, flush=True)
        elif event["event"] == "opened" and on_open is not None:
            opened = on_open()
        elif event["event"] == "result":
            result = event
    return {**result, **opened}


def _step_line(step: dict[str, Any]) -> str:
    return (
        f"{step['rate']:>6.0f}/s offered {step['offered_rate']:>7.1f} acked {step['acked_ratio']:.4f} "
        f"delivered {step['delivery_ratio']:.4f} ack p99 {step['ack_p99_ms']:>7.1f} ms "
        f"fan-out p50 {step['fanout_p50_ms']:>6.1f} p99 {step['fanout_p99_ms']:>7.1f} ms "
        f"cpu {' '.join(f'{k} {v:.1f}' for k, v in step['cpu_s'].items())} "
        f"{'held' if step['held'] else 'FAILED'}"
    )


def spec_of(url: str, fleet: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    return {
        "mode": "fanout",
        "url": url,
        "drivers": fleet["drivers"],
        "consoles": fleet["consoles"],
        "rates": args.rates,
        "search": not args.rates,
        "step_seconds": args.step_seconds,
        "trace": str(Path(args.trace).resolve()) if args.trace else None,
        "quiet_wait_s": args.quiet_wait,
    }


def relay_fleet(drivers: int, consoles: int) -> dict[str, Any]:
    """The relay takes any token as the sender's id."""
    return {
        "drivers": [{"driver_id": f"driver{n}", "token": f"driver{n}"} for n in range(drivers)],
        "consoles": [{"token": f"console{n}", "channel": "fleet:bench"} for n in range(consoles)],
    }


def measure_relay(args: argparse.Namespace) -> dict[str, Any]:
    """The bare relay's sustained rate."""
    with relay_process() as relay:
        return run_generator(
            spec_of(relay.url, relay_fleet(args.drivers, args.consoles), args), {"relay": relay.pids()}, "relay"
        )


def measure_project(args: argparse.Namespace, cluster: bool = False) -> dict[str, Any]:
    """The real server's sustained rate (with `--profile`, a py-spy profile at one rate instead);
    with `cluster`, its live state on a 3-master Redis Cluster."""
    with services(cluster) as env, server_process(env, args.processes) as running:
        fleet = asyncio.run(driving_fleet(env, args.drivers, args.consoles, args.geofences, args.etas))
        watch = {"server": running.pids(), **{name: [pid] for name, pid in env.pids.items()}}
        if args.profile:
            return profile(running, fleet, watch, args)
        return run_generator(
            spec_of(running.url, fleet, args),
            watch,
            f"project x{args.processes}" + (" on a Redis Cluster" if cluster else ""),
            on_open=lambda: (
                {"sockets_per_process": [sockets(pid) for pid in children(running.pid)]} if args.processes > 1 else {}
            ),
        )


def sockets(pid: int) -> int:
    """Open sockets of a process (its listening socket and store connections included)."""
    count = 0
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            count += os.readlink(fd).startswith("socket:")
    return count


def profile(
    running: Server, fleet: dict[str, Any], watch: dict[str, list[int]], args: argparse.Namespace
) -> dict[str, Any]:
    """py-spy samples the server while the generator offers one rate."""
    spec = {**spec_of(running.url, fleet, args), "rates": [args.profile_rate] * 2, "search": False}
    pid = running.pids()[-1]  # the serving child when forked
    binary = devservices.VENV_BIN / "py-spy"
    if not binary.exists():
        raise SystemExit("py-spy is missing: .venv/bin/pip install -e '.[bench]'")
    spy = subprocess.Popen(
        [
            str(binary),
            "record",
            "--pid",
            str(pid),
            "--format",
            "raw",
            "--output",
            args.profile,
            "--duration",
            str(int(2 * args.step_seconds + 12)),
            "--rate",
            "250",
            "--nonblocking",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        result = run_generator(spec, watch, "profiled")
    finally:
        spy.wait(60)
    print(top_frames(Path(args.profile)), file=sys.stderr)
    return result


def top_frames(path: Path, count: int = 20) -> str:
    """A py-spy raw profile summed up: where the event loop's callbacks spend their samples, and self time."""
    own: dict[str, int] = {}
    tasks: dict[str, int] = {}
    samples = 0
    for line in path.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        frames = [frame.split(" (")[0] for frame in stack.split(";")]
        samples += int(n)
        own[frames[-1]] = own.get(frames[-1], 0) + int(n)
        if "Handle._run" in frames:  # the callback or task step the loop was running
            top = frames[len(frames) - frames[::-1].index("Handle._run") :][:2]
            key = " > ".join(top) or "Handle._run"
            tasks[key] = tasks.get(key, 0) + int(n)
    lines = [f"{samples} samples; by event-loop callback:"]
    lines += [f"  {100 * n / samples:5.1f}%  {f}" for f, n in sorted(tasks.items(), key=lambda i: -i[1])[:count]]
    lines.append("self:")
    lines += [f"  {100 * n / samples:5.1f}%  {f}" for f, n in sorted(own.items(), key=lambda i: -i[1])[:count]]
    return "\n".join(lines)


def summary(result: dict[str, Any]) -> dict[str, Any]:
    """The scenario fields of a generator result."""
    best = result.get("sustained") or {}
    at_1000 = next((s for s in result.get("steps", []) if s["rate"] == 1000), None)
    extra = {"sockets_per_process": result["sockets_per_process"]} if "sockets_per_process" in result else {}
    return {
        "sustained_rate": result.get("sustained_rate", 0),
        **extra,
        "at_sustained": best,
        "fanout_p99_ms_at_1000": at_1000["fanout_p99_ms"] if at_1000 else None,
        "steps": result.get("steps", []),
    }


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--target", choices=("both", "project", "relay"), default="both")
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument("--drivers", type=int, default=200)
    parser.add_argument("--consoles", type=int, default=2)
    parser.add_argument("--rates", type=float, nargs="*", help="fixed rates instead of the search")
    parser.add_argument("--step-seconds", type=float, default=5.0)
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=15.0,
        help="seconds a step may wait for other work on the machine to calm down",
    )
    parser.add_argument("--geofences", type=int, default=0, help="geofences of the drivers' organization (e.g. 50)")
    parser.add_argument("--etas", action="store_true", help="every truck serves an order en route (ETAs, arrival)")
    parser.add_argument("--trace", help="append `rate send-offset-s fan-out-ms` of every console frame here")
    parser.add_argument(
        "--redis",
        choices=("single", "cluster", "both"),
        default="single",
        help="the server's live state on one Redis, a 3-master Redis Cluster, or both in turn (their ratio)",
    )
    parser.add_argument("--profile", help="write a py-spy raw profile of the server here")
    parser.add_argument("--profile-rate", type=float, default=1500.0)
    args = parser.parse_args(argv)
    started = time.monotonic()
    common = {
        "machine": machine(),
        "drivers": args.drivers,
        "consoles": args.consoles,
        "geofences": args.geofences,
        "etas": args.etas,
    }
    lines = []
    relay = measure_relay(args) if args.target in ("both", "relay") and not args.profile else None
    if relay is not None:
        lines.append(emit("fanout_relay", **common, processes=1, **summary(relay)))
    if args.redis != "single" and not args.profile:
        return lines + cluster_lines(args, common, started)
    project = measure_project(args) if args.target in ("both", "project") else None
    if project is not None:
        extra: dict[str, Any] = {}
        if relay is not None and relay.get("sustained_rate"):
            extra = {
                "relay_sustained_rate": relay["sustained_rate"],
                "ratio_to_relay": round(project.get("sustained_rate", 0) / relay["sustained_rate"], 3),
                "target_ratio": 0.6,
            }
        name = "fanout" if args.processes == 1 else f"fanout_x{args.processes}"
        if args.geofences or args.etas:
            name += "_gps_events"
        lines.append(
            emit(
                name,
                **common,
                processes=args.processes,
                **summary(project),
                **extra,
                target_rate=2000,
                target_p99_ms_at_1000=50,
                seconds=round(time.monotonic() - started),
            )
        )
    return lines


def cluster_lines(args: argparse.Namespace, common: dict[str, Any], started: float) -> list[dict[str, Any]]:
    """The server on a Redis Cluster (and, with `--redis both`, on one Redis first: the same run, their ratio)."""
    single = measure_project(args) if args.redis == "both" else None
    cluster = measure_project(args, cluster=True)
    extra: dict[str, Any] = {}
    if single is not None:
        extra = {"single_redis": summary(single)}
        if single.get("sustained_rate"):
            extra["ratio_to_single_redis"] = round(cluster.get("sustained_rate", 0) / single["sustained_rate"], 3)
    name = "fanout_cluster" if args.processes == 1 else f"fanout_cluster_x{args.processes}"
    return [
        emit(
            name,
            **common,
            processes=args.processes,
            **summary(cluster),
            **extra,
            seconds=round(time.monotonic() - started),
        )
    ]


if __name__ == "__main__":
    main()
