"""Open protocol scenarios (docs/ARCHITECTURE.md §4) on the paper exchange, both profiles."""

from __future__ import annotations

from decimal import Decimal as D

import pytest
import trio
import trio.testing

from actors.position import Lifecycle, Query
from adapters.paper import Fault, FaultPlan
from tests._position_support import paper_world, supervised
from tradebot.domain import OrderRole, PositionSide
from tradebot.errors import WouldTriggerImmediately
from tradebot.events import EventType, Severity
from tradebot.ports import OpenOutcome

LONG, SHORT = PositionSide.LONG, PositionSide.SHORT
PROFILES = ["bybit", "binance"]


@pytest.mark.parametrize("profile", PROFILES)
async def test_open_long_and_short_active_with_one_stop(
    profile: str, autojump_clock: trio.testing.MockClock
) -> None:
    with trio.fail_after(60):
        async with paper_world(profile, marks={"ETHUSDT": "2500"}) as w:
            for side, expected in ((LONG, D("2450.00")), (SHORT, D("2550.00"))):
                req = w.request("ETHUSDT", side, "0.100", "2500")
                actor = w.actor(req)
                await w.start(actor)
                outcome = await actor._ticket.wait()  # type: ignore[union-attr]
                assert outcome.opened, outcome
                stops = w.stops("ETHUSDT", side)
                assert [s.trigger_price for s in stops] == [expected]
                assert w.qty("ETHUSDT", side) == D("0.100")
                assert actor.lifecycle is Lifecycle.ACTIVE
            types = [e.type for e in w.journal.events]
            # intent journaled before anything reached the venue
            assert types.index(EventType.ENTRY_INTENT) < types.index(EventType.ENTRY_SUBMITTED)


@pytest.mark.parametrize("profile", PROFILES)
async def test_entry_timeout_after_accept_resolved_by_client_id_no_second_entry(
    profile: str, autojump_clock: trio.testing.MockClock
) -> None:
    plan = FaultPlan(seed=3).fail_next("place_entry", Fault.timeout_after_accept(5.0))
    with trio.fail_after(60):
        async with paper_world(profile, faults=plan, marks={"SOLUSDT": "170"}) as w:
            req = w.request("SOLUSDT", LONG, "1.00", "170")
            actor = w.actor(req)
            await w.start(actor)
            outcome = await actor._ticket.wait()  # type: ignore[union-attr]
            assert outcome.opened
            entries = [f for f in w.engine.trade_log if f.client_order_id.endswith("-E0")]
            assert sum(f.qty for f in entries) == D("1.00")  # exactly one entry
            assert w.qty("SOLUSDT", LONG) == D("1.00")
            assert len(w.stops("SOLUSDT", LONG)) == 1
            assert w.journal.of_type(EventType.ENTRY_OUTCOME_UNKNOWN)
            (res,) = w.journal.of_type(EventType.ENTRY_RESOLVED)
            assert res.data["found"] is True
            # the lost answer was looked up after 1 s instead of waiting out the 5 s timeout
            assert res.data["via"] == "lookup_while_pending"
            (intent,) = w.journal.of_type(EventType.ENTRY_INTENT)
            assert (res.ts - intent.ts).total_seconds() < 1.5


@pytest.mark.parametrize("profile", PROFILES)
async def test_lost_entry_request_rolls_back_without_resubmitting(
    profile: str, autojump_clock: trio.testing.MockClock
) -> None:
    plan = FaultPlan(seed=3).fail_next("place_entry", Fault.lost_request(5.0))
    with trio.fail_after(60):
        async with paper_world(profile, faults=plan, marks={"SOLUSDT": "170"}) as w:
            req = w.request("SOLUSDT", LONG, "1.00", "170")
            actor = w.actor(req)
            await w.start(actor)
            outcome = await actor._ticket.wait()  # type: ignore[union-attr]
            assert not outcome.opened and outcome.reason == "entry_not_placed"
            assert w.engine.trade_log == []
            assert w.qty("SOLUSDT", LONG) == 0


@pytest.mark.parametrize("profile", PROFILES)
async def test_partial_fill_stop_covers_exactly_the_filled_qty(
    profile: str, autojump_clock: trio.testing.MockClock
) -> None:
    plan = FaultPlan(seed=3).fail_next(
        "place_entry", Fault.partial_fill(D("0.4"), remainder="expire")
    )
    with trio.fail_after(60):
        async with paper_world(profile, faults=plan, marks={"ETHUSDT": "2500"}) as w:
            req = w.request("ETHUSDT", LONG, "1.000", "2500")
            actor = w.actor(req)
            await w.start(actor)
            outcome = await actor._ticket.wait()  # type: ignore[union-attr]
            assert outcome.opened
            assert w.qty("ETHUSDT", LONG) == D("0.400")
            st = actor.status()
            assert st.filled_qty == st.qty == D("0.400")
            assert w.journal.of_type(EventType.ENTRY_PARTIAL_FILL)
            assert len(w.stops("ETHUSDT", LONG)) == 1
            # the stop is whole-position: when it fires it closes exactly the filled 0.4
            w.push("ETHUSDT", "2440")
            await trio.sleep(1)
            assert w.qty("ETHUSDT", LONG) == 0
            exits = [f for f in w.engine.trade_log if f.side.value == "SELL"]
            assert sum(f.qty for f in exits) == D("0.400")
            assert actor.lifecycle is Lifecycle.CLOSED
            assert actor.status().close_reason in ("stop_triggered", "position_flat")


async def test_stop_would_trigger_immediately_closes_at_market_with_reason(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # binance-like: the stop goes in after the fill; the fault makes the venue answer -2021
    plan = FaultPlan(seed=3).fail_next(
        "place_stop",
        Fault.reject("-2021", WouldTriggerImmediately, "Order would immediately trigger."),
    )
    with trio.fail_after(60):
        async with paper_world("binance", faults=plan, marks={"ETHUSDT": "2500"}) as w:
            req = w.request("ETHUSDT", LONG, "0.100", "2500")
            actor = w.actor(req)
            await w.start(actor)
            outcome = await actor._ticket.wait()  # type: ignore[union-attr]
            assert not outcome.opened and "would_trigger" in outcome.reason
            assert w.qty("ETHUSDT", LONG) == 0
            assert w.stops("ETHUSDT", LONG) == []
            (rej,) = w.journal.of_type(EventType.STOP_REJECTED)
            assert rej.data["reason"] == "would_trigger_immediately"
            (closed,) = w.journal.of_type(EventType.POSITION_CLOSED)
            assert closed.data["reason"] == "stop_would_trigger_immediately"


async def test_stop_failing_every_retry_flattens_filled_qty_verified_flat(
    autojump_clock: trio.testing.MockClock,
) -> None:
    plan = FaultPlan(seed=3).fail_next("place_stop", Fault.server_error(503), count=100)
    with trio.fail_after(60):
        async with paper_world("binance", faults=plan, marks={"ETHUSDT": "2500"}) as w:
            req = w.request("ETHUSDT", SHORT, "0.300", "2500")
            actor = w.actor(req)
            await w.start(actor)
            outcome = await actor._ticket.wait()  # type: ignore[union-attr]
            assert not outcome.opened and "flattened" in outcome.reason
            assert w.qty("ETHUSDT", SHORT) == 0
            assert len(w.journal.of_type(EventType.STOP_RETRY)) == 4  # stop_attempts
            (fl,) = w.journal.of_type(EventType.FLATTEN_VERIFIED)
            assert fl.data["qty"] == D("0.300")
            assert actor.lifecycle is Lifecycle.ROLLED_BACK


async def test_flatten_failing_places_emergency_stop_and_critical_alert(
    autojump_clock: trio.testing.MockClock,
) -> None:
    plan = (
        FaultPlan(seed=3)
        .fail_next("place_stop", Fault.server_error(503), count=4, role=OrderRole.STOP)
        .fail_next("place_reduce", Fault.server_error(503), count=100)
    )
    with trio.fail_after(60):
        async with paper_world("binance", faults=plan, marks={"ETHUSDT": "2500"}) as w:
            req = w.request("ETHUSDT", LONG, "0.100", "2500")
            actor = w.actor(req)
            addr = await w.start(actor)
            outcome = await actor._ticket.wait()  # type: ignore[union-attr]
            assert not outcome.opened and "emergency" in outcome.reason
            assert w.qty("ETHUSDT", LONG) == D("0.100")
            (stop,) = w.stops("ETHUSDT", LONG)
            assert stop.trigger_price == D("2425.00")  # 3 % emergency
            assert stop.client_order_id.endswith("-X1")
            alerts = [
                e
                for e in w.journal.of_type(EventType.ALERT_RAISED)
                if e.severity is Severity.CRITICAL
            ]
            assert alerts and alerts[0].data["reason"] == "flatten_failed"
            assert w.journal.of_type(EventType.EMERGENCY_STOP_PLACED)
            status = await addr.ask(Query(), timeout_s=5)
            assert status.lifecycle is Lifecycle.FAILED


async def test_partial_fill_still_working_is_protected_at_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """binance-like: half the entry fills, the rest later. The filled half gets its stop
    after one round trip, not after the entry completes."""
    plan = FaultPlan(seed=3).fail_next(
        "place_entry", Fault.partial_fill(D("0.5"), remainder="next_mark")
    )
    with trio.fail_after(60):
        async with (
            paper_world("binance", faults=plan, marks={"ETHUSDT": "2500"}) as w,
            supervised(w) as (sup, _),
        ):
            result: list[OpenOutcome] = []

            async def opener() -> None:
                result.append(await sup.open_position(w.request("ETHUSDT", LONG, "1.000", "2500")))

            async with trio.open_nursery() as n:
                n.start_soon(opener)
                await trio.sleep(0.2)
                assert w.qty("ETHUSDT", LONG) == D("0.500")
                assert [s.trigger_price for s in w.stops("ETHUSDT", LONG)] == [D("2450.00")]
                w.push("ETHUSDT", "2501")  # the rest fills at the next mark
            assert result[0].opened
            actor = sup.actor("ETHUSDT", LONG)
            assert actor is not None
            assert w.qty("ETHUSDT", LONG) == D("1.000")
            assert len(w.stops("ETHUSDT", LONG)) == 1
            # account events queued while opening (the 0.5 partial) must not shrink it
            await trio.sleep(1)
            assert actor.status().qty == D("1.000")
            status = await sup.close("ETHUSDT", LONG, "operator")
            assert status is not None and status.lifecycle is Lifecycle.CLOSED
            assert w.qty("ETHUSDT", LONG) == 0
