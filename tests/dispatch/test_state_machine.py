"""The order state machine, exhaustively: every role × every status × every requested move.

The expectations are written out here independently of dispatch.domain.orders.MOVES (the SPEC's
words, not the code's table), so a wrong row in the table fails a test.
"""

from __future__ import annotations

import itertools

import pytest

from dispatch.core.errors import ApiError
from dispatch.domain.orders import MOVES, decide
from tests.support.state_machine import ACTIONS, ROLES, STATUSES, VALID, expected


@pytest.mark.parametrize(("role", "status", "action"), list(itertools.product(ROLES, STATUSES, ACTIONS)))
def test_every_move_of_every_role(role: str, status: str, action: str) -> None:
    want = expected(role, status, action)
    if isinstance(want, str):
        assert decide(role, status, action).target == want
        return
    with pytest.raises(ApiError) as raised:
        decide(role, status, action)
    assert raised.value.status == want
    assert raised.value.code == ("transition_forbidden" if want == 403 else "invalid_transition")


def test_the_table_has_exactly_the_spec_moves() -> None:
    table = {(source, move.action): move.target for move in MOVES.values() for source in move.sources}
    assert table == VALID


def test_refusals_name_what_is_allowed() -> None:
    with pytest.raises(ApiError) as raised:
        decide("MANAGER", "assigned", "completed")
    assert raised.value.details == {
        "current": "assigned",
        "requested": "completed",
        "allowed": ["accepted", "cancelled", "declined"],
    }


def test_terminal_statuses_allow_nothing() -> None:
    for status, action in itertools.product(("completed", "cancelled"), ACTIONS):
        with pytest.raises(ApiError):
            decide("ADMIN", status, action)


def test_moves_that_end_the_truck_s_job_free_it() -> None:
    assert {move.action for move in MOVES.values() if move.frees_vehicle} == {"completed", "cancelled", "declined"}
