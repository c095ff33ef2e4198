"""Idle authenticated driver sockets: server memory per socket and the time to open them.

For each N, a fresh server (one process) and N drivers with trucks and sessions; the
generator opens N `/ws/driver` sockets (50 handshakes in flight, each waits for `ready`),
and the server's RSS after they settle, minus its RSS before, divided by N, is the cost
of one socket (its handler, stream, outbox, vehicle context, cached user, `user:` channel).

Run: .venv/bin/python -m bench.connections [--counts 1000 5000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import ROOT, emit, machine, rss_kib, server_process, services
from bench.fleet import driving_fleet

WARM_UP = 20  # sockets opened and closed first, so code paths and caches are not counted per socket
SETTLE_S = 2.0
TARGET_KIB = 40


class Holder:
    """The generator in `connect` mode: opens sockets, holds them until told to close."""

    def __init__(self, url: str, drivers: list[dict[str, Any]]) -> None:
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
            json.dump({"mode": "connect", "url": url, "drivers": drivers, "concurrency": 50, "timeout": 300}, handle)
        self.spec = Path(handle.name)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bench.loadgen", str(self.spec)],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def opened(self) -> dict[str, Any]:
        """Block until every socket is open; the generator's report."""
        line = self.process.stdout.readline()  # type: ignore[union-attr]
        if not line:
            raise RuntimeError("the generator exited before opening its sockets")
        return json.loads(line)

    def close(self) -> None:
        """Close the sockets and wait for the generator to exit."""
        try:
            self.process.stdin.write("close\n")  # type: ignore[union-attr]
            self.process.stdin.flush()  # type: ignore[union-attr]
            self.process.wait(60)
        except (OSError, subprocess.TimeoutExpired):
            self.process.kill()
            self.process.wait()
        self.spec.unlink(missing_ok=True)


def hold(url: str, drivers: list[dict[str, Any]]) -> tuple[dict[str, Any], Holder]:
    holder = Holder(url, drivers)
    try:
        return holder.opened(), holder
    except BaseException:
        holder.close()
        raise


def measure(count: int) -> dict[str, Any]:
    """RSS per idle driver socket and opening time for `count` sockets on a fresh server."""
    with services() as env, server_process(env) as running:
        started = time.monotonic()
        fleet = asyncio.run(driving_fleet(env, count + WARM_UP, 0))
        seeded = time.monotonic() - started
        _warm, holder = hold(running.url, fleet["drivers"][:WARM_UP])
        holder.close()
        time.sleep(SETTLE_S)
        before = rss_kib(running.pid)
        opened, holder = hold(running.url, fleet["drivers"][WARM_UP:])
        try:
            time.sleep(SETTLE_S)
            after = rss_kib(running.pid)
        finally:
            holder.close()
    per_socket = (after - before) / count
    return {
        "sockets": count,
        "rss_before_mib": round(before / 1024, 1),
        "rss_after_mib": round(after / 1024, 1),
        "kib_per_socket": round(per_socket, 1),
        "open_s": opened["seconds"],
        "opened_per_s": opened["per_second"],
        "errors": opened["errors"],
        "seed_s": round(seeded, 1),
    }


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--counts", type=int, nargs="+", default=[1000, 5000])
    args = parser.parse_args(argv)
    return [
        emit("connections", machine=machine(), **measure(count), target_kib_per_socket=TARGET_KIB)
        for count in args.counts
    ]


if __name__ == "__main__":
    main()
