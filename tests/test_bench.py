"""The benchmark harness runs end to end: a smoke run at a tiny load for a second (not a measurement)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_fanout_harness_measures_the_relay_and_the_server_with_the_same_generator() -> None:
    # Private services for the run: the bench writes live positions, which must not reach the suite's Redis.
    env = {k: v for k, v in os.environ.items() if not k.startswith("DISPATCH_")}
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.fanout",
            "--drivers",
            "10",
            "--consoles",
            "1",
            "--rates",
            "100",
            "--step-seconds",
            "1",
            "--quiet-wait",
            "0",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    lines = [json.loads(line) for line in run.stdout.splitlines()]
    assert [line["scenario"] for line in lines] == ["fanout_relay", "fanout"]
    for line in lines:
        step = line["steps"][0]
        assert step["offered_rate"] > 50
        assert step["acked_ratio"] == 1.0  # every point acked (stored, for the server)
        assert step["delivery_ratio"] == 1.0  # and every point reached the console
        assert step["fanout_p50_ms"] > 0
    assert lines[1]["ratio_to_relay"] > 0
