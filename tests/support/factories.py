"""Making users (and their tokens) directly through the identity layer, fast and without rate limits."""

from __future__ import annotations

import uuid
from typing import Any

from bson import ObjectId

PASSWORD = "correct-horse-battery"


async def make_user(
    app: Any,
    category: str = "BASE",
    *,
    organizations: list[ObjectId] | None = None,
    verified: bool = True,
    password: str = PASSWORD,
    **fields: Any,
) -> dict[str, Any]:
    """A new account of the given category, verified unless asked otherwise."""
    name = fields.pop("username", None) or f"{category.lower()}_{uuid.uuid4().hex[:10]}"
    data = {
        "username": name,
        "email": fields.pop("email", f"{name}@example.com"),
        "password": password,
        "category": category,
        **fields,
    }
    identity = app.settings["services"].identity
    user = await identity.register(data, category=category, verified=verified)
    if organizations:
        user = await identity.users.update(user["_id"], {"organizations": list(organizations)})
    return user


async def login(app: Any, user: dict[str, Any]) -> str:
    """An access token of a new session of the user."""
    pair = await app.settings["services"].identity.open_session(user, "127.0.0.1", "tests")
    return pair["access_token"]


async def make_org(app: Any, name: str | None = None, **fields: Any) -> dict[str, Any]:
    """An organization document inserted directly."""
    from dispatch.core.timeutil import utcnow

    now = utcnow()
    name = name or f"Org {uuid.uuid4().hex[:6]}"
    doc = {"name": name, "name_lower": name.lower(), "created_at": now, "updated_at": now, **fields}
    result = await app.settings["services"].db["organizations"].insert_one(doc)
    doc["_id"] = result.inserted_id
    return doc
