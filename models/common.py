"""Schemas shared by every resource: the error envelope, list pages, service answers."""

from __future__ import annotations

from marshmallow import Schema, fields


class ErrorBody(Schema):
    code = fields.String(required=True, metadata={"description": "snake_case machine-readable code"})
    message = fields.String(required=True, metadata={"description": "Human-readable text"})
    details = fields.Dict(required=True, metadata={
        "description": "Extra facts; for 422, each field name mapped to a list of messages"})


class Error(Schema):
    """The error envelope of every non-2xx answer."""

    error = fields.Nested(ErrorBody, required=True)


class Health(Schema):
    status = fields.String(required=True)


class Ready(Schema):
    status = fields.String(required=True, metadata={"description": "`ok`"})
    checks = fields.Dict(keys=fields.String(), values=fields.String(), required=True,
                         metadata={"description": "Each store: `ok` or `down: <reason>`"})


def list_of(item: type[Schema], name: str) -> type[Schema]:
    """A list-envelope schema `{items, total, limit, offset}` of the given item schema."""
    return Schema.from_dict({
        "items": fields.List(fields.Nested(item), required=True),
        "total": fields.Integer(required=True),
        "limit": fields.Integer(required=True),
        "offset": fields.Integer(required=True),
    }, name=name)


SCHEMAS: list[type[Schema]] = [Error, Health, Ready]
