"""`/healthz` latency while 50 bcrypt logins run at once (bcrypt must stay off the event loop).

Run: .venv/bin/python -m bench.login_storm [--logins 50]
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid

from tornado.httpclient import AsyncHTTPClient, HTTPRequest

from bench.common import emit, machine, percentile, server, services
from dispatch.core import jsonutil

PASSWORD = "bench-password-1"


async def storm(base: str, logins: int) -> dict[str, float]:
    client = AsyncHTTPClient(max_clients=logins + 10)
    names = [f"storm{uuid.uuid4().hex[:8]}" for _ in range(logins)]

    async def post(path: str, body: dict) -> int:
        request = HTTPRequest(
            base + path,
            method="POST",
            body=jsonutil.dumps(body),
            headers={"Content-Type": "application/json"},
            request_timeout=120,
        )
        return (await client.fetch(request, raise_error=False)).code

    await asyncio.gather(
        *(
            post("/api/v1/auth/register", {"username": n, "email": f"{n}@example.com", "password": PASSWORD})
            for n in names
        )
    )
    latencies: list[float] = []
    done = asyncio.Event()

    async def probe() -> None:
        while not done.is_set():
            started = time.perf_counter()
            await client.fetch(base + "/healthz")
            latencies.append((time.perf_counter() - started) * 1000)
            await asyncio.sleep(0.005)

    prober = asyncio.create_task(probe())
    started = time.perf_counter()
    codes = await asyncio.gather(*(post("/api/v1/auth/login", {"login": n, "password": PASSWORD}) for n in names))
    storm_seconds = time.perf_counter() - started
    done.set()
    await prober
    assert all(code == 200 for code in codes), codes
    return {
        "logins": logins,
        "storm_s": round(storm_seconds, 2),
        "healthz_samples": len(latencies),
        "healthz_p50_ms": round(percentile(latencies, 50), 2),
        "healthz_p99_ms": round(percentile(latencies, 99), 2),
        "healthz_max_ms": round(max(latencies), 2),
    }


def run(logins: int = 50) -> dict:
    """The storm on a fresh server; emits and returns its JSON line."""
    with (
        services() as env,
        server(
            env,
            require_email_verification="false",
            bcrypt_rounds="12",
            rate_limits="login_ip=100000/60,login_account=1000/60",
        ) as base,
    ):
        result = asyncio.run(storm(base, logins))
    return emit("login_storm", machine=machine(), bcrypt_rounds=12, target_p99_ms=50, **result)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--logins", type=int, default=50)
    args = parser.parse_args()
    run(args.logins)


if __name__ == "__main__":
    main()
