"""The one pagination helper: `?limit=&offset=` in, the list envelope out."""

from __future__ import annotations

from typing import Any, NamedTuple

from dispatch.errors import ValidationFailed

DEFAULT_LIMIT = 50
MAX_LIMIT = 200


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
    parsed_offset = _parse(offset, 0, 0, None, "offset", errors)
    if errors:
        raise ValidationFailed(errors)
    return Page(parsed_limit, parsed_offset)


def _parse(text: str | None, default: int, low: int, high: int | None, name: str,
           errors: dict[str, list[str]]) -> int:
    if text is None or text == "":
        return default
    if not text.isdigit() or int(text) < low or (high is not None and int(text) > high):
        bound = f"between {low} and {high}" if high is not None else f"{low} or more"
        errors[name] = [f"Must be a whole number {bound}."]
        return default
    return int(text)
