"""Schemas of the authentication API (log-in, tokens, sessions, passwords)."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from models.common import UtcDateTime, list_of


class LoginIn(Schema):
    login = fields.String(
        required=True,
        validate=validate.Length(min=1, max=254),
        metadata={"description": "Email, phone (E.164) or username"},
    )
    password = fields.String(required=True, load_only=True, validate=validate.Length(min=1, max=1024))


class RefreshIn(Schema):
    refresh_token = fields.String(required=True, validate=validate.Length(min=1, max=256))


class TokenPair(Schema):
    access_token = fields.String(required=True)
    refresh_token = fields.String(required=True)
    token_type = fields.String(required=True, metadata={"description": "Always `Bearer`"})
    expires_in = fields.Integer(required=True, metadata={"description": "Access token lifetime, seconds"})


class SessionOut(Schema):
    id = fields.String(required=True)
    ip = fields.String(required=True)
    user_agent = fields.String(required=True)
    created_at = UtcDateTime(required=True)
    last_used_at = UtcDateTime(required=True)
    current = fields.Boolean(required=True, metadata={"description": "The session of this request"})


SessionList = list_of(SessionOut, "SessionList")


class PasswordForgotIn(Schema):
    email = fields.Email(required=True)


class PasswordResetIn(Schema):
    token = fields.String(required=True, validate=validate.Length(min=1, max=2048))
    new_password = fields.String(required=True, load_only=True, validate=validate.Length(max=1024))


class PasswordChangeIn(Schema):
    old_password = fields.String(required=True, load_only=True, validate=validate.Length(max=1024))
    new_password = fields.String(required=True, load_only=True, validate=validate.Length(max=1024))


class Accepted(Schema):
    status = fields.String(required=True, metadata={"description": "`accepted`"})


class ActivateOut(Schema):
    status = fields.String(required=True, metadata={"description": "`verified`"})
    email = fields.String(required=True)
