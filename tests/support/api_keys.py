"""API keys for tests, made through the API as an organization's manager makes them."""

from __future__ import annotations

from typing import Any

from tests.support.helpers import Api

API = "/api/v1"
ALL_SCOPES = ["orders:read", "orders:write", "fleet:read", "webhooks"]


async def make_key(
    api: Api, token: str, org_id: str, scopes: list[str] | None = None, name: str = "Motor club"
) -> dict[str, Any]:
    """A new key of the organization (the create answer, with `key`), made by the holder of `token`."""
    answer = await api.post(
        f"{API}/organizations/{org_id}/api-keys", {"name": name, "scopes": scopes or ALL_SCOPES}, token=token
    )
    assert answer.status == 201, answer.json
    return answer.json


def with_key(key: str) -> dict[str, str]:
    """The headers of a request made with an API key."""
    return {"X-API-Key": key}
