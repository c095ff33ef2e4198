"""Phone numbers: parsed and validated by phonenumbers, stored as E.164."""

from __future__ import annotations

import phonenumbers


class PhoneError(ValueError):
    """The text is not a valid phone number (for the region, when national)."""


def normalize(text: str, region: str | None = None) -> str:
    """E.164 form (`+79161234567`) of a number; national numbers need a region code (RU, DE, ...)."""
    if region is not None and region.upper() not in phonenumbers.SUPPORTED_REGIONS:
        raise PhoneError(f"Unknown region code {region!r}.")
    try:
        number = phonenumbers.parse(text, region.upper() if region else None)
    except phonenumbers.NumberParseException:
        hint = "" if region or text.strip().startswith("+") else " Give a region code for national numbers."
        raise PhoneError("Not a phone number." + hint) from None
    if not phonenumbers.is_valid_number(number):
        raise PhoneError("Not a valid phone number.")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def looks_like_phone(text: str) -> bool:
    """Whether a login identifier is meant as a phone number."""
    stripped = text.replace(" ", "").replace("-", "").replace("(", "").replace(")", "")
    return stripped.startswith("+") or (stripped.isdigit() and len(stripped) >= 7)
