"""``tradebot paper --venue-profile binance`` and the Binance adapter agree on behaviour.

The paper profile (adapters/paper/_profile.py ``binance_like``) must make the same protocol
choices as the real API, so a paper run predicts a live one: the same capability record
(no attached stop, no amend, stops with their own client id), the same order types (MARKET
entry, algo STOP_MARKET close-position stop, exit-side reduce orders), the same no-amend
rule (every trailing move = place the new stop, then cancel the old), and the same error
codes (checked in test_binance_errors). The same PositionActor scenario — open, three
trailing moves, close — is run in paper (virtual time) and through the adapter against the
sandbox (test_binance_position_actor); both produce exactly :data:`EXPECTED_OPS`.
"""

from __future__ import annotations

import pytest
import trio
import trio.testing
from _binance_support import EXPECTED_OPS
from _position_support import paper_world, supervised

from actors.position import Close
from adapters.binance import BINANCE_CAPABILITIES
from adapters.paper import EngineStep, binance_like
from tradebot.domain import OrderType, PositionSide
from tradebot.errors import RejectedError
from tradebot.ports import StopState

LONG = PositionSide.LONG


def test_capabilities_match_the_adapter() -> None:
    paper = binance_like().capabilities
    assert (paper.attached_stop, paper.amend_stop, paper.stop_has_client_id) == (
        BINANCE_CAPABILITIES.attached_stop,
        BINANCE_CAPABILITIES.amend_stop,
        BINANCE_CAPABILITIES.stop_has_client_id,
    )
    profile = binance_like()
    assert profile.conditional_orders_are_algo and not profile.position_level_stop
    assert profile.client_id_unique_among_open_only and not profile.reduce_only_trims
    assert profile.errors["conditional_on_regular_endpoint"].code == "-4120"


async def test_paper_binance_profile_runs_the_same_protocol(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with paper_world("binance", marks={"BTCUSDT": "100000"}) as w:
        ops: list[str] = []
        kinds: list[OrderType] = []

        def record(step: EngineStep) -> None:
            if (
                step.kind == "request"
                and step.error is None
                and step.name
                in (
                    "place_entry",
                    "place_stop",
                    "cancel_stop",
                    "place_reduce",
                    "cancel_order",
                    "amend_stop",
                )
            ):
                ops.append(step.name)

        w.engine.add_listener(record)
        async with supervised(w) as (sup, _):
            outcome = await sup.open_position(w.request("BTCUSDT", LONG, "0.010", "100000"))
            assert outcome.opened, outcome
            for mark in ("101600", "103000", "105000"):
                await trio.sleep(61)
                w.push("BTCUSDT", mark)
                await trio.sleep(1)
            addr = sup.address("BTCUSDT", LONG)
            assert addr is not None
            await addr.ask(Close("test_done"), 10)
            await trio.sleep(5)
            kinds = [o.order_type for o in w.engine.orders("BTCUSDT")]
        assert w.qty("BTCUSDT", LONG) == 0 and not w.engine.open_orders("BTCUSDT")
    assert ops == EXPECTED_OPS
    assert kinds.count(OrderType.STOP_MARKET) == 4 and kinds.count(OrderType.MARKET) == 2
    # the no-amend rule, as the venue: an untriggered conditional cannot be modified
    with pytest.raises(RejectedError) as info:
        w.engine.amend_stop(
            w.engine.stops_for("BTCUSDT", LONG)[0]
            if w.engine.stops_for("BTCUSDT", LONG)
            else _dummy_stop(),
            1,
        )  # type: ignore[arg-type]
    assert info.value.code == "-4120"


def _dummy_stop():  # type: ignore[no-untyped-def]
    from decimal import Decimal

    return StopState("BTCUSDT", LONG, Decimal("90000"), "tb-x-S1", "5000000001")
