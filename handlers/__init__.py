"""HTTP and websocket handlers, one module per resource; each ends in `default_handlers`."""

from __future__ import annotations

from handlers import (
    api_keys,
    auth,
    avatars,
    console,
    docs,
    geofences,
    health,
    invitations,
    media,
    notifications,
    orders,
    organizations,
    payments,
    realtime,
    sms,
    support,
    track_page,
    tracking,
    users,
    vehicles,
    waybills,
    webhooks,
)

API_PREFIX = "/api/v1"

# Resource modules whose routes live under the API prefix.
API_MODULES = [
    auth,
    sms,
    users,
    organizations,
    invitations,
    api_keys,
    avatars,
    vehicles,
    waybills,
    notifications,
    support,
    orders,
    payments,
    tracking,
    webhooks,
    geofences,
]
# Modules whose routes are served as they are written (service, docs, pages, websockets).
ROOT_MODULES = [health, docs, console, media, realtime, track_page]


def all_routes() -> list[tuple[str, type]]:
    """Every route of the application, API routes prefixed, in matching order."""
    routes = [(API_PREFIX + pattern, handler) for module in API_MODULES for pattern, handler in module.default_handlers]
    routes += [route for module in ROOT_MODULES for route in module.default_handlers]
    return routes
