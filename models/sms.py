"""Schemas of SMS codes: log-in (asking for a code, trading it for tokens) and verifying a phone."""

from __future__ import annotations

from typing import Any

import phonenumbers
from marshmallow import Schema, ValidationError, fields, validate, validates, validates_schema

from dispatch.core.phones import PhoneError, normalize

CODE_DIGITS = 6


class SmsRequestIn(Schema):
    phone = fields.String(
        required=True,
        validate=validate.Length(min=1, max=32),
        metadata={"description": "E.164 (`+79161234567`) or national with `region`"},
    )
    region = fields.String(metadata={"description": "Region code (RU, DE, …) for a national phone number"})

    @validates("region")
    def check_region(self, value: str, **kwargs: Any) -> None:
        if value.upper() not in phonenumbers.SUPPORTED_REGIONS:
            raise ValidationError("Unknown region code.")

    @validates_schema(skip_on_field_errors=True)
    def check_phone(self, data: dict[str, Any], **kwargs: Any) -> None:
        try:
            data["phone"] = normalize(data["phone"], data.get("region"))  # stored and keyed as E.164
        except PhoneError as exc:
            raise ValidationError({"phone": [str(exc)]}) from None


CODE = validate.Regexp(rf"^[0-9]{{{CODE_DIGITS}}}$", error=f"{CODE_DIGITS} digits.")


class SmsVerifyIn(SmsRequestIn):
    code = fields.String(required=True, validate=CODE, metadata={"description": "The code received by SMS"})


class PhoneVerifyIn(Schema):
    code = fields.String(
        required=True,
        validate=CODE,
        metadata={"description": "The code texted to the phone given to `PATCH /users/me`"},
    )
