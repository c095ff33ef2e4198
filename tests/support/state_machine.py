"""The order state machine as SPEC sections 4 and 5 state it, written out independently of
dispatch.domain.orders.MOVES (the SPEC's words, not the code's table), so a wrong row in the
code's table fails the tests that compare the two."""

from __future__ import annotations

ROLES = ("BASE", "DRIVER", "MANAGER", "ADMIN")
STATUSES = ("new", "assigned", "accepted", "en_route", "arrived", "in_progress", "completed", "cancelled")
ACTIONS = ("assigned", "accepted", "en_route", "arrived", "in_progress", "completed", "declined", "cancelled")

# SPEC section 5: the valid moves, (from, requested) → resulting status.
VALID = {
    ("new", "assigned"): "assigned",
    ("assigned", "accepted"): "accepted",
    ("accepted", "en_route"): "en_route",
    ("en_route", "arrived"): "arrived",
    ("arrived", "in_progress"): "in_progress",
    ("in_progress", "completed"): "completed",
    ("assigned", "declined"): "new",
    ("new", "cancelled"): "cancelled",
    ("assigned", "cancelled"): "cancelled",
    ("accepted", "cancelled"): "cancelled",
    ("en_route", "cancelled"): "cancelled",
}
# SPEC section 4: what each role may ask for at all (scope narrows it to their orders).
ROLE_MAY = {
    "BASE": {"cancelled"},
    "DRIVER": {"accepted", "en_route", "arrived", "in_progress", "completed", "declined"},
    "MANAGER": set(ACTIONS),
    "ADMIN": set(ACTIONS),
}


def expected(role: str, status: str, action: str) -> int | str:
    """403 when the role may never ask for this, 409 when the status does not allow it, else the new status."""
    if action not in ROLE_MAY[role]:
        return 403
    if (status, action) not in VALID:
        return 409
    return VALID[(status, action)]
