"""Two organizations and their people for the organization, user and invitation tests
(the fleet tests have their own world with trucks: tests/support/fleet_fixtures.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tests.support.factories import login, make_org, make_user


@dataclass
class World:
    """Two organizations, a manager and a driver in each, a client, an admin; tokens of each."""

    org_a: dict[str, Any]
    org_b: dict[str, Any]
    users: dict[str, dict[str, Any]]
    tokens: dict[str, str]

    def id(self, name: str) -> str:
        """A person's id as text."""
        return str(self.users[name]["_id"])


async def make_world(app: Any) -> World:
    """The world, made through the factories (each person logged in once)."""
    org_a, org_b = await make_org(app, "Alpha Towing"), await make_org(app, "Bravo Recovery")
    users = {
        "manager_a": await make_user(app, "MANAGER", organizations=[org_a["_id"]]),
        "driver_a": await make_user(app, "DRIVER", organizations=[org_a["_id"]]),
        "manager_b": await make_user(app, "MANAGER", organizations=[org_b["_id"]]),
        "driver_b": await make_user(app, "DRIVER", organizations=[org_b["_id"]]),
        "client": await make_user(app, "BASE"),
        "admin": await make_user(app, "ADMIN"),
        "loner": await make_user(app, "DRIVER"),
    }
    tokens = {name: await login(app, user) for name, user in users.items()}
    return World(org_a, org_b, users, tokens)


def member_ids(org: dict[str, Any]) -> set[str]:
    """The ids of an organization answer's members."""
    return {member["id"] for member in org["members"]}
