"""Schemas shared by every resource: the error envelope, list pages, service answers."""

from __future__ import annotations

import unicodedata
from typing import Any

from bson import ObjectId
from marshmallow import Schema, ValidationError, fields, validate

from dispatch.core.errors import ApiError
from dispatch.core.pagination import DEFAULT_LIMIT, MAX_LIMIT, MAX_OFFSET
from dispatch.core.timeutil import isoformat

# Schemas registered by name in the OpenAPI document (others are found through docstrings).
SCHEMAS: list[type[Schema]] = []


class ErrorBody(Schema):
    code = fields.String(required=True, metadata={"description": "snake_case machine-readable code"})
    message = fields.String(required=True, metadata={"description": "Human-readable text"})
    details = fields.Dict(
        required=True, metadata={"description": "Extra facts; for 422, each field name mapped to a list of messages"}
    )


class Error(Schema):
    """The error envelope of every non-2xx answer."""

    error = fields.Nested(ErrorBody, required=True)


class Health(Schema):
    status = fields.String(required=True)


class Ready(Schema):
    status = fields.String(required=True, metadata={"description": "`ok`"})
    checks = fields.Dict(
        keys=fields.String(),
        values=fields.String(),
        required=True,
        metadata={"description": "Each store: `ok` or `down: <reason>`"},
    )


def list_of(item: type[Schema], name: str) -> type[Schema]:
    """A list-envelope schema `{items, total, limit, offset}` of the given item schema (named in the spec)."""
    schema = Schema.from_dict(
        {
            "items": fields.List(fields.Nested(item), required=True),
            "total": fields.Integer(required=True),
            "limit": fields.Integer(required=True),
            "offset": fields.Integer(required=True),
        },
        name=name,
    )
    SCHEMAS.append(schema)
    return schema


class PageQuery(Schema):
    """`?limit=&offset=` of every list: documents what `dispatch.core.pagination.parse_page` reads.

    A handler docstring names it as `- {in: query, schema: PageQuery}`; apispec expands the fields.
    """

    limit = fields.Integer(
        load_default=DEFAULT_LIMIT,
        validate=validate.Range(min=1, max=MAX_LIMIT),
        metadata={"description": "Items per page"},
    )
    offset = fields.Integer(
        load_default=0, validate=validate.Range(min=0, max=MAX_OFFSET), metadata={"description": "Items to skip"}
    )


SCHEMAS += [Error, Health, Ready]


class UtcDateTime(fields.DateTime):
    """A datetime written as ISO 8601 UTC with a `Z`, the one time format of the API."""

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> str | None:
        return None if value is None else isoformat(value)


class JsonNumber(fields.Float):
    """A JSON number in a body (marshmallow's Float also takes numeric strings such as "1.5")."""

    def _validated(self, value: Any) -> float:
        if isinstance(value, str):
            raise self.make_error("invalid", input=value)
        return super()._validated(value)


class JsonBoolean(fields.Boolean):
    """A JSON `true` or `false` in a body (marshmallow's Boolean also takes 1, "yes", "on"...)."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> bool:
        if not isinstance(value, bool):
            raise self.make_error("invalid", input=value)
        return value


class Id(fields.String):
    """An ObjectId written as its 24-hex-digit string."""

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> str | None:
        return None if value is None else str(value)

    # A string on the wire (and in the OpenAPI document), an ObjectId once loaded.
    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> ObjectId:  # type: ignore[override]
        if not isinstance(value, str) or not ObjectId.is_valid(value):
            raise ValidationError("Not a valid id.")
        return ObjectId(value)


# Unicode categories a name may not carry: controls (Cc), format characters such as bidi overrides and
# zero-width spaces (Cf), lone surrogates (Cs) and line/paragraph separators (Zl, Zp). Each lets a name
# look like another one ("\u202eadmin\u200b") or break the line it is shown on.
HIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})


def visible_text(value: str) -> None:
    """A validator for names: refuse control, bidi-override and zero-width characters."""
    for char in value:
        if unicodedata.category(char) in HIDDEN_CATEGORIES:
            raise ValidationError(f"Must not contain control, bidi or zero-width characters (U+{ord(char):04X}).")


def parse_id(text: str) -> ObjectId:
    """The one id parser for path parameters: a malformed id is a 400 `invalid_id`."""
    if not ObjectId.is_valid(text) or len(text) != 24:
        raise ApiError(400, "invalid_id", f"{text!r} is not a valid id.")
    return ObjectId(text)
