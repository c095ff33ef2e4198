"""Every benchmark in one go: fan-out (bare relay, durable relay, then the server with 1 and 2 processes),
idle connections (1,000 and 5,000), REST under 50 clients and the login storm.

Prints one JSON line per scenario on stdout (also kept in var/bench/run-<time>.jsonl) and,
at the end, a short table with the targets on stderr. `--quick` is the smoke run: tiny,
fixed loads, a few seconds each, checking that the harness works (not a measurement).

Run: .venv/bin/python -m bench.run [--quick]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from typing import Any

from bench import connections, fanout, login_storm, rest
from bench.common import ROOT, machine


def plan(quick: bool) -> list[tuple[str, Callable[[], list[dict[str, Any]]]]]:
    """The scenarios, in order, as (label, callable)."""
    if quick:
        return [
            (
                "fan-out",
                lambda: fanout.main(["--drivers", "20", "--rates", "200", "--step-seconds", "2", "--quiet-wait", "0"]),
            ),
            ("connections", lambda: connections.main(["--counts", "50"])),
            ("rest", lambda: rest.main(["--seconds", "1", "--concurrency", "5", "--no-storm"])),
        ]
    return [
        ("fan-out, both relays and 1 process", lambda: fanout.main([])),
        ("fan-out, 2 processes", lambda: fanout.main(["--target", "project", "--processes", "2"])),
        ("connections", lambda: connections.main([])),
        ("rest", lambda: rest.main(["--no-storm"])),
        ("login storm", lambda: [login_storm.run()]),
    ]


def table(lines: list[dict[str, Any]]) -> str:
    """The results that have targets, one row each."""
    rows = [("scenario", "result", "target", "met")]
    for line in lines:
        rows += ROWS.get(line["scenario"], lambda _: [])(line)
    width = [max(len(row[i]) for row in rows) for i in range(4)]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, width, strict=False)) for row in rows)


def _fanout_rows(line: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    name = f"fan-out x{line['processes']}"
    rows = [
        (f"{name} sustained", f"{line['sustained_rate']:.0f} points/s", ">= 2000", _met(line["sustained_rate"] >= 2000))
    ]
    for ceiling, key, target in (("relay", "relay", 0.6), ("durable relay", "durable_relay", 0.8)):
        if f"ratio_to_{key}" in line:
            ratio = line[f"ratio_to_{key}"]
            rate = line[f"{key}_sustained_rate"]
            rows.append(
                (
                    f"{name} / {ceiling}",
                    f"{ratio:.2f} ({ceiling} {rate:.0f}/s)",
                    f">= {target:.2f}",
                    _met(ratio >= target),
                )
            )
    if line.get("fanout_p99_ms_at_1000") is not None and line["processes"] == 1:
        rows.append(
            (
                f"{name} p99 at 1000/s",
                f"{line['fanout_p99_ms_at_1000']:.1f} ms",
                "<= 50 ms",
                _met(line["fanout_p99_ms_at_1000"] <= 50),
            )
        )
    return rows


ROWS: dict[str, Callable[[dict[str, Any]], list[tuple[str, str, str, str]]]] = {
    "fanout_relay": lambda row: [("relay sustained", f"{row['sustained_rate']:.0f} points/s", "(reference)", "")],
    "fanout_durable_relay": lambda row: [
        ("durable relay sustained", f"{row['sustained_rate']:.0f} points/s", "(reference)", "")
    ],
    "fanout": _fanout_rows,
    "fanout_x2": _fanout_rows,
    "connections": lambda row: [
        (
            f"memory, {row['sockets']} idle drivers",
            f"{row['kib_per_socket']:.1f} KiB/socket, opened in {row['open_s']:.1f} s",
            "<= 40 KiB",
            _met(row["kib_per_socket"] <= 40),
        )
    ],
    "rest": lambda row: [
        (
            row["name"],
            f"p50 {row['p50_ms']:.0f} ms, p99 {row['p99_ms']:.0f} ms, {row['requests_per_s']:.0f} req/s",
            "",
            "",
        )
    ],
    "login_storm": lambda row: [
        ("/healthz p99, login storm", f"{row['healthz_p99_ms']:.1f} ms", "<= 50 ms", _met(row["healthz_p99_ms"] <= 50))
    ],
}


def _met(ok: bool) -> str:
    return "yes" if ok else "NO"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a smoke run of the harness, not a measurement")
    args = parser.parse_args(argv)
    started = time.monotonic()
    out = ROOT / "var" / "bench" / f"run-{time.strftime('%Y%m%d-%H%M%S')}.jsonl"
    out.parent.mkdir(parents=True, exist_ok=True)
    lines: list[dict[str, Any]] = []
    for label, scenario in plan(args.quick):
        print(f"== {label} ({time.monotonic() - started:.0f} s)", file=sys.stderr, flush=True)
        produced = scenario()
        lines += produced
        with open(out, "a") as handle:
            handle.writelines(json.dumps(line) + "\n" for line in produced)
    print(
        f"\n{machine()}; {time.monotonic() - started:.0f} s; lines in {out.relative_to(ROOT)}\n{table(lines)}",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
