"""Examples for OpenAPI schemas: a value that fits the schema, built from its own examples and bounds.

Fields give their own `example` (marshmallow `metadata={"example": ...}`) where a made-up value
would read badly or miss a pattern; everything else is filled in from the type, format, enum and
bounds, so every body of the document gets an example that validates against its schema.
"""

from __future__ import annotations

from typing import Any

MAX_DEPTH = 16
OBJECT_ID = "6b040a08aecd4a176c462245"
BY_NAME: dict[str, Any] = {
    "email": "ann.smith@example.com",
    "phone": "+79161234567",
    "username": "ann_smith",
    "login": "ann_smith",
    "password": "tow-truck-2026",
    "new_password": "tow-truck-2027",
    "old_password": "tow-truck-2026",
    "first_name": "Ann",
    "last_name": "Smith",
    "name": "Demo Towing Moscow",
    "plate": "A123BC77",
    "model": "GAZelle Next",
    "make": "Lada",
    "color": "white",
    "address": "Tverskaya St 1, Moscow",
    "lat": 55.7558,
    "lon": 37.6173,
    "region": "RU",
    "subject": "The driver has not arrived",
    "description": "Ordered at 9:40, nobody came yet.",
    "body": "The truck is two streets away.",
    "comment": "Fast and careful.",
    "notes": "The car is in an underground garage, level -1.",
    "reason": "The client found another tow.",
    "url": "https://example.com/hooks/dispatch",
    "token": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiI2YjA0In0.c2lnbmF0dXJl",
    "access_token": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiI2YjA0In0.c2lnbmF0dXJl",
    "refresh_token": "rt_3q2X9f6bUu0hPq1yA8JmZt7cVw4sLk5n",
    "avatar_url": "/media/avatars/a1b2c3d4e5.jpg",
    "user_agent": "DispatchDriver/2.3 (Android 14)",
    "ip": "203.0.113.7",
    "invite_code": "K7QW2M9X",
    "code": "123456",
}


def example_of(schema: dict[str, Any], components: dict[str, Any], *, request: bool, name: str = "") -> Any:
    """An example value of `schema` (components resolve `$ref`s); request bodies show required fields only."""
    return _example(schema, components, request, name, 0)


def _example(schema: dict[str, Any], components: dict[str, Any], request: bool, name: str, depth: int) -> Any:
    if "example" in schema:
        return schema["example"]
    if "$ref" in schema:
        target = components.get(schema["$ref"].rsplit("/", 1)[-1], {})
        return _example(target, components, request, name, depth + 1) if depth < MAX_DEPTH else None
    for combined in ("allOf", "anyOf", "oneOf"):
        if schema.get(combined):
            return _example(schema[combined][0], components, request, name, depth)
    if "enum" in schema:
        return schema["enum"][0]
    kind = schema.get("type", "object" if "properties" in schema else None)
    if kind == "object":
        return _object(schema, components, request, depth)
    if kind == "array":
        item = _example(schema.get("items", {}), components, request, name, depth + 1)
        return [item] * max(1, schema.get("minItems", 1))
    if kind in ("integer", "number"):
        return _number(schema, name, kind)
    if kind == "boolean":
        return name not in ("internal", "auto")
    if kind == "string":
        return _string(schema, name)
    return None


def _object(schema: dict[str, Any], components: dict[str, Any], request: bool, depth: int) -> Any:
    if depth >= MAX_DEPTH:
        return {}
    properties = schema.get("properties", {})
    required = set(schema.get("required", []))
    shown = {
        key: _example(value, components, request, key, depth + 1)
        for key, value in properties.items()
        if not request or key in required or "example" in value
    }
    if not properties and isinstance(schema.get("additionalProperties"), dict):
        shown = {"key": _example(schema["additionalProperties"], components, request, "", depth + 1)}
    return shown


def _number(schema: dict[str, Any], name: str, kind: str) -> float | int:
    value: float = BY_NAME.get(name, {"limit": 50, "offset": 0, "score": 5}.get(name, 12.5))
    low, high = schema.get("minimum"), schema.get("maximum")
    if low is not None and value <= low:
        value = low + (1 if schema.get("exclusiveMinimum") or value < low else 0)
    if high is not None and value >= high:
        value = high - (1 if schema.get("exclusiveMaximum") else 0)
    return int(value) if kind == "integer" else value


def _string(schema: dict[str, Any], name: str) -> str:
    fmt = schema.get("format")
    if fmt == "date-time" or name.endswith("_at") or name == "ts":
        return "2026-11-23T09:40:37.404Z"
    if fmt == "date" or name == "date":
        return "2026-11-23"
    if fmt == "email":
        return str(BY_NAME["email"])
    if fmt == "binary":
        return ""
    if name == "id" or name.endswith("_id") or name in ("organization", "invited_by", "current_order", "created_by"):
        text = OBJECT_ID
    else:
        text = str(BY_NAME.get(name, "string" if not name else name.replace("_", " ")))
    low, high = schema.get("minLength", 0), schema.get("maxLength")
    text = text.ljust(low, "x")
    return text[:high] if high is not None else text
