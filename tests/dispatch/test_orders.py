"""The order domain's entry for the driver socket: the same moves as the REST status endpoint."""

from __future__ import annotations

from typing import Any

import pytest

from dispatch.core.errors import ApiError
from tests.support.fleet_fixtures import insert_order, make_world


def mover(app: Any) -> Any:
    return app.settings["services"].orders.change_status_unchecked


@pytest.mark.gen_test(timeout=60)
async def test_a_driver_moves_their_order_through_the_socket_entry(app: Any) -> None:
    world = await make_world(app)
    await world.add_vehicle("truck", "a", "driver")
    order = await insert_order(world, "assigned", "a", vehicle="truck")
    move = mover(app)
    moved = await move(world.users["driver"], str(order["_id"]), "accepted")
    assert moved["status"] == "accepted" and moved["id"] == str(order["_id"])
    with pytest.raises(ApiError) as invalid:
        await move(world.users["driver"], str(order["_id"]), "completed")
    assert invalid.value.status == 409 and invalid.value.code == "invalid_transition"
    for status, reason, code in (("flying", None, 422), ("arrived", 42, 422)):
        with pytest.raises(ApiError) as refused:
            await move(world.users["driver"], str(order["_id"]), status, reason)
        assert refused.value.status == code
    with pytest.raises(ApiError) as malformed:
        await move(world.users["driver"], "nope", "en_route")
    assert malformed.value.status == 400
    other = await insert_order(world, "assigned", "b")
    with pytest.raises(ApiError) as hidden:
        await move(world.users["driver"], str(other["_id"]), "accepted")
    assert hidden.value.status == 404
