"""The PositionActor lifecycle on the paper exchange: a failed close returns the position
to the state it came from (ACTIVE stays ACTIVE, FAILED stays FAILED), and that state is
what the snapshot carries (docs/ARCHITECTURE.md §4)."""

from __future__ import annotations

from decimal import Decimal as D

import pytest
import trio
import trio.testing

from actors.position import Close, Lifecycle, Query
from adapters.paper import Fault, FaultPlan
from tests._position_support import paper_world
from tradebot.domain import OrderRole, PositionSide
from tradebot.events import EventType

LONG = PositionSide.LONG
PROFILES = ["bybit", "binance"]


async def test_failed_close_of_a_failed_position_keeps_it_failed(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A FAILED position (stop placement and flatten both failed, it runs on its emergency
    stop) gets a Close whose reduce orders fail too: it must stay FAILED, in memory and in
    its snapshot, never become ACTIVE (the money bug of issue 10)."""
    plan = (
        FaultPlan(seed=3)
        .fail_next("place_stop", Fault.server_error(503), count=4, role=OrderRole.STOP)
        .fail_next("place_reduce", Fault.server_error(503), count=100)
    )
    with trio.fail_after(120):
        async with paper_world("binance", faults=plan, marks={"ETHUSDT": "2500"}) as w:
            req = w.request("ETHUSDT", LONG, "0.100", "2500")
            actor = w.actor(req)
            addr = await w.start(actor)
            outcome = await actor._ticket.wait()  # type: ignore[union-attr]
            assert not outcome.opened and "emergency" in outcome.reason
            assert actor.lifecycle is Lifecycle.FAILED
            (emergency,) = w.stops("ETHUSDT", LONG)
            assert emergency.trigger_price == D("2425.00")

            status = await addr.ask(Close("operator"), timeout_s=60)
            assert status.lifecycle is Lifecycle.FAILED
            assert actor.lifecycle is Lifecycle.FAILED
            snap = await w.journal.latest_snapshot(req.position_id)
            assert snap is not None and snap["lifecycle"] == "FAILED"
            # the close was attempted, failed, and said so
            assert w.journal.of_type(EventType.POSITION_CLOSING)
            assert any(
                e.data.get("reason") == "close_failed"
                for e in w.journal.of_type(EventType.ALERT_RAISED)
            )
            # still on its emergency stop, still held
            assert [s.trigger_price for s in w.stops("ETHUSDT", LONG)] == [D("2425.00")]
            assert w.qty("ETHUSDT", LONG) == D("0.100")
            again = await addr.ask(Query(), timeout_s=5)
            assert again.lifecycle is Lifecycle.FAILED


@pytest.mark.parametrize("profile", PROFILES)
async def test_failed_close_of_an_active_position_keeps_it_active(
    profile: str, autojump_clock: trio.testing.MockClock
) -> None:
    plan = FaultPlan(seed=3).fail_next(
        "place_reduce", Fault.server_error(503), count=100, role=OrderRole.CLOSE
    )
    with trio.fail_after(120):
        async with paper_world(profile, faults=plan, marks={"ETHUSDT": "2500"}) as w:
            req = w.request("ETHUSDT", LONG, "0.100", "2500")
            actor = w.actor(req)
            addr = await w.start(actor)
            outcome = await actor._ticket.wait()  # type: ignore[union-attr]
            assert outcome.opened
            status = await addr.ask(Close("operator"), timeout_s=60)
            assert status.lifecycle is Lifecycle.ACTIVE
            snap = await w.journal.latest_snapshot(req.position_id)
            assert snap is not None and snap["lifecycle"] == "ACTIVE"
            assert [s.trigger_price for s in w.stops("ETHUSDT", LONG)] == [D("2450.00")]
            assert w.qty("ETHUSDT", LONG) == D("0.100")
