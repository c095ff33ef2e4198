"""The one JSON library of the project (orjson), behind two functions."""

from __future__ import annotations

from typing import Any

import orjson

JSONDecodeError = orjson.JSONDecodeError


def dumps(value: Any) -> bytes:
    """Serialize to compact UTF-8 JSON bytes (datetimes as ISO 8601)."""
    return orjson.dumps(value, default=_default)


def loads(data: bytes | str) -> Any:
    """Parse JSON text or bytes; raises JSONDecodeError on malformed input."""
    return orjson.loads(data)


def _default(value: Any) -> Any:
    # ObjectId and other str-able ids travel as strings.
    from bson import ObjectId

    if isinstance(value, ObjectId):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")
