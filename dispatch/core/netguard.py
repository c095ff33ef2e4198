"""Where the server may send requests for others (webhooks): http(s) URLs, and public addresses only.

A webhook URL is chosen by a customer, so without these checks it could make our workers call our
own Redis, a cloud metadata service (169.254.169.254) or anything else on the private network.
The checks are pure: the server resolves names in an executor, the worker resolves them again just
before each attempt (DNS answers can change between the two) and sends the attempt to the address it
checked, so the HTTP client never looks the name up a second time.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import SplitResult, urlsplit

SCHEMES = ("http", "https")
MAX_URL_LENGTH = 2048


class UnsafeUrl(ValueError):
    """A URL the server will not call; the message says why, for the caller."""


def parse_url(url: str) -> SplitResult:
    """The parts of an http(s) URL with a host name; UnsafeUrl otherwise."""
    if len(url) > MAX_URL_LENGTH:
        raise UnsafeUrl(f"At most {MAX_URL_LENGTH} characters.")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (raises ValueError for a port out of range or not a number)
    except ValueError:
        raise UnsafeUrl("Not a valid URL.") from None
    if parts.scheme.lower() not in SCHEMES:
        raise UnsafeUrl("Only http:// and https:// URLs.")
    if not parts.hostname:
        raise UnsafeUrl("The URL has no host.")
    if any(ch.isspace() for ch in url):
        raise UnsafeUrl("The URL contains spaces.")
    return parts


def default_port(parts: SplitResult) -> int:
    """The port a URL's requests go to."""
    return parts.port or (443 if parts.scheme.lower() == "https" else 80)


def literal_address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address a host name spells literally (`10.0.0.1`, `[::1]`), or None for a name."""
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def refusal(address: str) -> str | None:
    """Why the server will not call this address (loopback, private, ...), or None when it is public."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])  # an IPv6 zone (`fe80::1%eth0`) is no part of it
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    for kind, hit in (
        ("loopback", ip.is_loopback),
        ("link-local", ip.is_link_local),
        ("private", ip.is_private),
        ("multicast", ip.is_multicast),
        ("unspecified", ip.is_unspecified),
        ("reserved", ip.is_reserved),
    ):
        if hit:
            return f"{address} is a {kind} address."
    return None


def first_refusal(addresses: list[str]) -> str | None:
    """Why any of the addresses a name resolves to is refused (a name must resolve to public ones only)."""
    return next(filter(None, map(refusal, addresses)), None)
