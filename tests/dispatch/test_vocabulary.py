"""The domain's words: every status has its place in the state machine, roles are checked at import."""

from __future__ import annotations

import json

import pytest

from dispatch.core.policy import roles
from dispatch.core.vocabulary import STATUS_REQUESTS, Category, OrderEvent, OrderStatus
from dispatch.domain.orders import HOLDS_VEHICLE, MOVES


def test_the_state_machine_speaks_the_vocabulary() -> None:
    assert set(MOVES) == set(OrderEvent) - {OrderEvent.CREATED, OrderEvent.ARRIVING}  # raised, never asked for
    assert set(STATUS_REQUESTS) == set(MOVES) - {OrderEvent.ASSIGNED}
    reached = {move.target for move in MOVES.values()} | {OrderStatus.NEW}
    assert reached == set(OrderStatus), "every status is where some move leads"
    assert all(isinstance(s, OrderStatus) for move in MOVES.values() for s in (*move.sources, move.target))
    assert set(OrderStatus) > HOLDS_VEHICLE


def test_members_travel_as_their_plain_values() -> None:
    assert (
        json.dumps({"category": Category.ADMIN, "status": OrderStatus.EN_ROUTE})
        == '{"category": "ADMIN", "status": "en_route"}'
    )
    assert f"{OrderEvent.DECLINED}" == "declined" and Category("MANAGER") is Category.MANAGER


def test_an_unknown_role_is_refused_when_declared() -> None:
    with pytest.raises(ValueError, match="OWNER"):
        roles("OWNER")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="none given"):
        roles()
