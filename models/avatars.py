"""Avatars: the schema of the upload's answer (the files themselves live under DISPATCH_MEDIA_DIR)."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from dispatch.core.vocabulary import AvatarStatus, choices


class AvatarAccepted(Schema):
    """An upload passed the checks and waits for the worker; `avatar_url` changes once it is done."""

    status = fields.String(required=True, validate=validate.OneOf(choices(AvatarStatus)))
