"""REST under load: `GET /orders` (a manager's role-scoped list), `POST /orders` (clients ordering,
the fleet chosen by the nearest available truck) and `GET /vehicles/nearby`, each by 50
concurrent keep-alive clients for a few seconds; then `/healthz` during a 50-login bcrypt
storm (bench/login_storm.py).

Run: .venv/bin/python -m bench.rest [--seconds 8] [--concurrency 50] [--no-storm] [--webhooks N]

`--webhooks N` gives the organization N webhooks taking every event, so each `POST /orders` also
writes N deliveries to the outbox and queues their tasks (no worker runs: the API's own cost is
measured); compare with a run without it.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from bench import login_storm
from bench.common import emit, loadgen, machine, server_process, services
from bench.fleet import Seeder, open_services, order_body

DRIVERS = 200
CLIENTS = 50
ORDERS = 300


async def seed(env: dict[str, str], webhooks: int = 0) -> dict[str, Any]:
    """An organization with trucks on the map, a manager, clients with orders, `webhooks` webhooks of
    every event; tokens and order bodies."""
    async with open_services(env) as opened:
        seeder = Seeder(opened)
        org = await seeder.organization()
        drivers = await seeder.users("DRIVER", DRIVERS, org["_id"])
        await seeder.positions(await seeder.trucks(drivers, org["_id"]))
        manager = (await seeder.users("MANAGER", 1, org["_id"]))[0]
        clients = await seeder.users("BASE", CLIENTS)
        car_type = await seeder.vehicle_type()
        await seeder.orders(clients, org["_id"], car_type["_id"], ORDERS)
        for n in range(webhooks):
            hook = {"organization": org["_id"], "url": f"http://127.0.0.1:9/sink/{n}", "events": ["*"]}
            await opened.webhooks.create(manager, hook)
        return {
            "manager": (await seeder.tokens([manager]))[0],
            "clients": await seeder.tokens(clients),
            "bodies": [order_body(n, str(car_type["_id"])) for n in range(200)],
        }


def endpoints(data: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {"name": "GET /orders", "method": "GET", "path": "/api/v1/orders", "tokens": [data["manager"]]},
        {
            "name": "POST /orders",
            "method": "POST",
            "path": "/api/v1/orders",
            "tokens": data["clients"],
            "bodies": data["bodies"],
        },
        {
            "name": "GET /vehicles/nearby",
            "method": "GET",
            "path": "/api/v1/vehicles/nearby?lat=55.75&lon=37.62&radius_km=5",
            "tokens": data["clients"],
        },
    ]


def measure(seconds: float, concurrency: int, webhooks: int = 0) -> list[dict[str, Any]]:
    """Each endpoint's numbers, on one fresh server."""
    with services() as env, server_process(env) as running:
        data = asyncio.run(seed(env, webhooks))
        spec = {
            "mode": "rest",
            "url": running.url,
            "endpoints": endpoints(data),
            "concurrency": concurrency,
            "seconds": seconds,
            "timeout": 300,
            "watch_pids": {"server": running.pids(), **{name: [pid] for name, pid in env.pids.items()}},
        }
        return [event for event in loadgen(spec) if event.pop("event") == "endpoint"]


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--no-storm", action="store_true", help="skip the login storm")
    parser.add_argument("--webhooks", type=int, default=0, help="webhooks of every event on the organization")
    args = parser.parse_args(argv)
    results = measure(args.seconds, args.concurrency, args.webhooks)
    lines = [emit("rest", machine=machine(), webhooks=args.webhooks, **result) for result in results]
    if not args.no_storm:
        lines.append(login_storm.run())
    return lines


if __name__ == "__main__":
    main()
