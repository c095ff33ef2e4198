"""GPS ingest and fan-out: the sustained rate of the real server and of its two ceilings, same generator.

N driver sockets send `location` frames open-loop, M consoles follow the fleet channel;
the rate climbs until driver→console p99 passes 100 ms, delivery drops below 99.9 % or fewer
than 99.9 % of the points are acked within 2 s (bench/loadgen.py). The real server runs with its
stores (Redis, the MongoDB-wire server). The ceilings (bench/relay.py): the bare relay, Tornado
itself on this machine; the durable relay, the same plus one journaled `insert_many` per batch into
the same kind of database, acking a point once stored. Printed: both ratios (server ÷ each) and,
per offered rate, every target's acks (in 2 s, p50 / p99) and fan-out p99.

Run: .venv/bin/python -m bench.fanout [--target all|both|project|relay|durable] [--processes 2]
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
        f"(in 2 s {step['acked_in_2s_ratio']:.4f}) delivered {step['delivery_ratio']:.4f} "
        f"ack p50 {step['ack_p50_ms']:>6.1f} p99 {step['ack_p99_ms']:>7.1f} ms "
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
    """The relays take the token as the sender's id (an ObjectId's hex, which the durable one stores)."""
    ids = [f"{n:024x}" for n in range(1, drivers + 1)]
    return {
        "drivers": [{"driver_id": ident, "token": ident} for ident in ids],
        "consoles": [{"token": f"console{n}", "channel": "fleet:bench"} for n in range(consoles)],
    }


def measure_relay(args: argparse.Namespace) -> dict[str, Any]:
    """The bare relay's sustained rate."""
    with relay_process() as relay:
        return run_generator(
            spec_of(relay.url, relay_fleet(args.drivers, args.consoles), args), {"relay": relay.pids()}, "relay"
        )


def measure_durable(args: argparse.Namespace) -> dict[str, Any]:
    """The durable relay's sustained rate: on its own MongoDB-wire server, started like the server's."""
    with services() as env, relay_process(env) as relay:
        watch = {"relay": relay.pids(), **{name: [pid] for name, pid in env.pids.items() if name == "mongo"}}
        return run_generator(spec_of(relay.url, relay_fleet(args.drivers, args.consoles), args), watch, "durable relay")


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
    spies: list[subprocess.Popen[bytes]] = []

    def start() -> dict[str, Any]:  # once the sockets are open: the profile shows the stream, not the handshakes
        command = [str(binary), "record", "--pid", str(pid), "--format", "raw", "--output", args.profile]
        command += ["--duration", str(int(2 * args.step_seconds + 8)), "--rate", "250", "--nonblocking"]
        spies.append(subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        return {}

    try:
        result = run_generator(spec, watch, "profiled", on_open=start)
    finally:
        for spy in spies:
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
    parser.add_argument(
        "--target",
        choices=("all", "both", "project", "relay", "durable"),
        default="all",
        help="all: bare relay, durable relay, server; both: bare relay and server",
    )
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
    relay = measure_relay(args) if args.target in ("all", "both", "relay") and not args.profile else None
    if relay is not None:
        lines.append(emit("fanout_relay", **common, processes=1, **summary(relay)))
    durable = measure_durable(args) if args.target in ("all", "durable") and not args.profile else None
    if durable is not None:
        lines.append(emit("fanout_durable_relay", **common, processes=1, **summary(durable)))
    if args.redis != "single" and not args.profile:
        return lines + cluster_lines(args, common, started)
    project = measure_project(args) if args.target in ("all", "both", "project") else None
    if project is not None:
        extra: dict[str, Any] = {}
        if relay is not None and relay.get("sustained_rate"):
            extra = {
                "relay_sustained_rate": relay["sustained_rate"],
                "ratio_to_relay": round(project.get("sustained_rate", 0) / relay["sustained_rate"], 3),
                "target_ratio": 0.6,
            }
        if durable is not None and durable.get("sustained_rate"):
            extra |= {
                "durable_relay_sustained_rate": durable["sustained_rate"],
                "ratio_to_durable_relay": round(project.get("sustained_rate", 0) / durable["sustained_rate"], 3),
                "target_durable_ratio": 0.8,
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
    print(comparison({"relay": relay, "durable relay": durable, "server": project}), file=sys.stderr)
    return lines


def comparison(results: dict[str, dict[str, Any] | None]) -> str:
    """Per offered rate, each target's acks (within 2 s, p50 / p99) and fan-out p99; then the ratios."""
    measured = {name: result for name, result in results.items() if result is not None}
    rates = sorted({step["rate"] for result in measured.values() for step in result.get("steps", [])})
    lines = [
        "",
        "offered/s  " + "  ".join(f"{name + ': acked in 2 s, ack p50/p99, fan-out p99':<58}" for name in measured),
    ]
    for rate in rates:
        cells = []
        for result in measured.values():
            steps = [s for s in result.get("steps", []) if s["rate"] == rate]
            cells.append(
                "; ".join(
                    f"{100 * s['acked_in_2s_ratio']:.2f} %, {s['ack_p50_ms']:.0f}/{s['ack_p99_ms']:.0f} ms, "
                    f"{s['fanout_p99_ms']:.0f} ms {'held' if s['held'] else 'FAILED'}"
                    for s in steps
                )
                or "-"
            )
        lines.append(f"{rate:>9.0f}  " + "  ".join(f"{cell:<58}" for cell in cells))
    sustained = {name: result.get("sustained_rate", 0) for name, result in measured.items()}
    lines.append("sustained: " + ", ".join(f"{name} {rate:.0f}/s" for name, rate in sustained.items()))
    server = sustained.get("server")
    for ceiling, target in (("relay", 0.6), ("durable relay", 0.8)):
        if server is not None and sustained.get(ceiling):
            lines.append(f"server ÷ {ceiling}: {server / sustained[ceiling]:.2f} (target ≥ {target})")
    return "\n".join(lines)


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
