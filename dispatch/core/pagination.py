"""The one pagination helper: `?limit=&offset=` in, the list envelope out."""

from __future__ import annotations

from typing import Any, NamedTuple

from dispatch.core.errors import ValidationFailed

DEFAULT_LIMIT = 50
MAX_LIMIT = 200
MAX_OFFSET = 10**9  # far past any real list, and well inside the 64-bit skip MongoDB takes


class Page(NamedTuple):
    """A window on a list."""

    limit: int
    offset: int

    def envelope(self, items: list[Any], total: int) -> dict[str, Any]:
        """The SPEC list answer: `{items, total, limit, offset}`."""
        return {"items": items, "total": total, "limit": self.limit, "offset": self.offset}


def parse_page(limit: str | None, offset: str | None) -> Page:
    """Validate the query values; out-of-range or non-numeric → 422."""
    errors: dict[str, list[str]] = {}
    parsed_limit = _parse(limit, DEFAULT_LIMIT, 1, MAX_LIMIT, "limit", errors)
    parsed_offset = _parse(offset, 0, 0, MAX_OFFSET, "offset", errors)
    if errors:
        raise ValidationFailed(errors)
    return Page(parsed_limit, parsed_offset)


def _parse(text: str | None, default: int, low: int, high: int, name: str, errors: dict[str, list[str]]) -> int:
    if text is None:  # absent; an empty `?limit=` is a malformed number like any other
        return default
    # ASCII digits only ("²" is a digit to str.isdigit but not to int), and few of them (int's size limit)
    if not (text.isascii() and text.isdigit() and len(text) <= 18) or int(text) < low or int(text) > high:
        errors[name] = [f"Must be a whole number between {low} and {high}."]
        return default
    return int(text)
