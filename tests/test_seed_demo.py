"""`dispatch seed-demo` as a real process: demo data through the domain layer, idempotent, usable logins."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest

from dispatch.core import live
from dispatch.tools.devservices import VENV_BIN
from tests.support.helpers import Api
from tests.support.processes import env_of

COLLECTIONS = ("organizations", "users", "vehicles", "vehicle_types", "orders", "notifications")
LOGIN = re.compile(
    r"^\s+(BASE|DRIVER|MANAGER|ADMIN)\s+login: (\S+)\s+password: (\S+)\s+\((created|already there)\)$", re.M
)


async def seed(settings: Any) -> str:
    """Run the command once; its standard output (the progress bar, on standard error, ends full)."""
    process = await asyncio.create_subprocess_exec(
        str(VENV_BIN / "dispatch"),
        "seed-demo",
        env=env_of(settings),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode == 0, err.decode()
    done, total = map(int, re.findall(r"(\d+)/(\d+)", err.decode())[-1])
    assert done == total, f"the progress bar ended at {done}/{total}"
    return out.decode()


def counts(sync_db: Any) -> dict[str, int]:
    return {name: sync_db[name].count_documents({}) for name in COLLECTIONS}


@pytest.mark.gen_test(timeout=240)
async def test_seed_demo_twice_then_log_in_with_a_printed_login(
    app: Any, api: Api, settings: Any, sync_db: Any
) -> None:
    first = await seed(settings)
    logins = LOGIN.findall(first)
    assert {category for category, *_ in logins} == {"MANAGER", "DRIVER", "BASE"}
    assert len(logins) == 9 and all(state == "created" for *_, state in logins)
    after_first = counts(sync_db)
    assert after_first["organizations"] == 1 and after_first["users"] == 9 and after_first["vehicles"] == 5
    assert after_first["orders"] == 3 and after_first["vehicle_types"] == 4
    assert sync_db["vehicle_types"].count_documents({"organization": None}) == 4, "the shared catalogue"
    assert after_first["notifications"] > 0  # the orders went through the domain layer, events and all

    second = await seed(settings)
    assert counts(sync_db) == after_first
    again = LOGIN.findall(second)
    assert [row[:3] for row in again] == [row[:3] for row in logins]
    assert all(state == "already there" for *_, state in again)
    assert "Created now: organizations 0, users 0, vehicles 0, vehicle_types 0, orders 0." in second
    assert await app.settings["services"].redis.zcard(live.GEO_ALL) == 5

    _, manager, password, _ = next(row for row in logins if row[0] == "MANAGER")
    answer = await api.post("/api/v1/auth/login", {"login": manager, "password": password})
    assert answer.status == 200, answer.json
    api.token = answer.json["access_token"]
    vehicles = (await api.get("/api/v1/vehicles")).json
    assert vehicles["total"] == 5
    for truck in vehicles["items"]:
        assert truck["location"] is not None
        assert abs(truck["location"]["lat"] - 55.75) < 0.1 and abs(truck["location"]["lon"] - 37.62) < 0.1
    orders = (await api.get("/api/v1/orders")).json
    assert sorted(order["status"] for order in orders["items"]) == ["completed", "en_route", "new"]
    assert {truck["status"] for truck in vehicles["items"]} == {"available", "busy"}
    nearby = (await api.get("/api/v1/vehicles/nearby?lat=55.75&lon=37.62&radius_km=20")).json
    assert nearby["total"] == 4  # every demo truck but the one busy with the en-route order
