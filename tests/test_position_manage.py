"""Managing an ACTIVE position on the paper exchange in virtual time, both profiles:
trailing (table-driven, hand-computed), the trailing-vs-protection race, take-profit levels,
aged exits on a coarse tick, operator and external closes, crash + restart mid-trail."""

from __future__ import annotations

from decimal import Decimal as D

import pytest
import trio
import trio.lowlevel
import trio.testing

from actors.position import Lifecycle, VerifyProtection
from actors.runtime import SupervisionEventKind
from tests._position_support import paper_world, supervised
from tradebot.domain import Instrument, PositionSide
from tradebot.events import EventType
from tradebot.policies import (
    ExecutionSettings,
    PositionSettings,
    TakeProfitSettings,
    TrailingPhase,
    TrailingSettings,
)
from tradebot.ports import ReduceRequest

LONG, SHORT = PositionSide.LONG, PositionSide.SHORT
PROFILES = ["bybit", "binance"]
MockClock = trio.testing.MockClock

# (seconds to wait before the mark, mark, expected venue stop after it)
TRAIL_LONG = [
    (1, "2520", "2450.00"),  # +0.8 %: inactive, initial stop 2 % below 2500
    (5, "2537.5", "2524.82"),  # +1.5 %: activated, 2537.5 * 0.995 = 2524.8125 -> up
    (10, "2545", "2524.82"),  # 2532.28 is +0.30 % but only 10 s since the last update
    (55, "2545", "2532.28"),  # 65 s later: >= 60 s and >= 0.1 % -> trail
    (5, "2546", "2532.28"),  # 2533.27 is only +0.04 %
    (5, "2600", "2587.00"),  # 2587.00 is +2.16 % >= 1 %: at once
    (5, "2590", "2587.00"),  # lower mark: high-water stays 2600
]
TRAIL_SHORT = [
    (1, "2480", "2550.00"),
    (5, "2462.5", "2474.81"),  # 2462.5 * 1.005 = 2474.8125 -> down
    (10, "2455", "2474.81"),  # 2467.27 rate-limited
    (55, "2455", "2467.27"),
    (5, "2454", "2467.27"),  # 2466.27 only 0.04 % better
    (5, "2400", "2412.00"),  # 2.24 % better: at once
    (5, "2410", "2412.00"),
]


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize(
    ("side", "table", "trigger"), [(LONG, TRAIL_LONG, "2586"), (SHORT, TRAIL_SHORT, "2413")]
)
async def test_trailing_defaults_table(
    profile: str,
    side: PositionSide,
    table: list[tuple[int, str, str]],
    trigger: str,
    autojump_clock: MockClock,
) -> None:
    with trio.fail_after(600):
        async with paper_world(profile, marks={"ETHUSDT": "2500"}) as w, supervised(w) as (sup, _):
            out = await sup.open_position(w.request("ETHUSDT", side, "0.100", "2500"))
            assert out.opened
            for wait_s, mark, expected in table:
                await trio.sleep(wait_s)
                w.push("ETHUSDT", mark)
                await trio.sleep(0.5)
                stops = w.stops("ETHUSDT", side)
                assert [s.trigger_price for s in stops] == [D(expected)], (mark, stops)
            actor = sup.actor("ETHUSDT", side)
            assert actor is not None
            assert actor.status().trailing.update_count == 3
            assert len(w.journal.of_type(EventType.TRAILING_UPDATE)) == 3
            # the last mark (below the water mark, above the stop) was taken as quiet: no
            # task switch, but recorded as the actor's newest mark
            assert actor.quiet_marks == 1
            assert actor.status().mark_price == D(table[-1][1])
            # the mark crosses the trailed stop: the venue stop fires, the actor ends
            w.push("ETHUSDT", trigger)
            await trio.sleep(2)
            assert w.qty("ETHUSDT", side) == 0
            assert actor.lifecycle is Lifecycle.CLOSED
            assert actor.status().close_reason in ("stop_triggered", "position_flat")
            assert w.stops("ETHUSDT", side) == []
            assert not sup.has_position("ETHUSDT", side)


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("first", ["verify", "mark"])
async def test_trailing_update_and_protection_repair_at_one_instant(
    profile: str, first: str, autojump_clock: MockClock
) -> None:
    """The old bot's race: two modules fixing one stop. Here both are messages to the one
    owner: in either order, exactly one stop remains, at the better (trailing) price."""
    with trio.fail_after(120):
        async with paper_world(profile, marks={"ETHUSDT": "2500"}) as w, supervised(w) as (sup, _):
            assert (await sup.open_position(w.request("ETHUSDT", LONG, "0.100", "2500"))).opened
            (stop,) = w.stops("ETHUSDT", LONG)
            # the venue loses the stop behind the actor's back (a missing-order finding) ...
            w.engine.cancel_stop(stop)
            assert w.stops("ETHUSDT", LONG) == []
            addr = sup.address("ETHUSDT", LONG)
            assert addr is not None
            t0 = trio.current_time()
            # ... and at the same virtual instant the mark activates trailing and the
            # protection check fires
            if first == "verify":
                addr.send_nowait(VerifyProtection("reconciler"))
                w.push("ETHUSDT", "2537.5")
            else:
                w.push("ETHUSDT", "2537.5")
                await trio.lowlevel.checkpoint()
                addr.send_nowait(VerifyProtection("reconciler"))
            assert trio.current_time() == t0
            await trio.sleep(5)
            stops = w.stops("ETHUSDT", LONG)
            assert [s.trigger_price for s in stops] == [D("2524.82")]
            assert w.journal.of_type(EventType.PROTECTION_VERIFIED, EventType.PROTECTION_REPAIRED)


@pytest.mark.parametrize("profile", PROFILES)
async def test_take_profit_levels_once_each_breakeven_and_stop_covers_rest(
    profile: str, autojump_clock: MockClock
) -> None:
    settings = PositionSettings(
        trailing=TrailingSettings(activation_pct=D("5")),
        take_profit=TakeProfitSettings(
            levels=[("1", "0.3"), ("2", "0.3")],
            breakeven_after_first=True,
            breakeven_offset_pct=D("0.1"),
        ),
    )
    with trio.fail_after(120):
        async with (
            paper_world(profile, marks={"ETHUSDT": "2500"}) as w,
            supervised(w, settings) as (sup, _),
        ):
            assert (await sup.open_position(w.request("ETHUSDT", LONG, "1.000", "2500"))).opened
            for mark, qty, stop in [
                ("2525", "0.700", "2502.50"),  # TP1 (+1 %): 0.3 off, BE
                ("2530", "0.700", "2502.50"),  # nothing new
                ("2550", "0.400", "2502.50"),  # TP2 (+2 %)
                ("2560", "0.400", "2502.50"),  # each level once only
                ("2525", "0.400", "2502.50"),
            ]:
                w.push("ETHUSDT", mark)
                await trio.sleep(1)
                assert w.qty("ETHUSDT", LONG) == D(qty), mark
                assert [s.trigger_price for s in w.stops("ETHUSDT", LONG)] == [D(stop)], mark
            assert [e.data["level"] for e in w.journal.of_type(EventType.TP_FILLED)] == [0, 1]
            # the stop covers exactly the remaining 0.4: it closes the position, nothing more
            w.push("ETHUSDT", "2502")
            await trio.sleep(2)
            assert w.qty("ETHUSDT", LONG) == 0
            sells = [f.qty for f in w.engine.trade_log if f.side.value == "SELL"]
            assert sells == [D("0.300"), D("0.300"), D("0.400")]


COARSE = Instrument(
    "TINYUSDT", tick_size=D("0.0001"), qty_step=D("1"), min_qty=D("1"), min_notional=D("5")
)


@pytest.mark.parametrize("age_tick_s", [60.0, 45.0])  # folded into the verify timer / own timer
@pytest.mark.parametrize("profile", PROFILES)
async def test_aged_exit_on_coarse_tick_never_zero(
    profile: str, age_tick_s: float, autojump_clock: MockClock
) -> None:
    settings = PositionSettings(execution=ExecutionSettings(age_tick_s=age_tick_s))
    with trio.fail_after(40 * 3600):  # virtual seconds
        async with (
            paper_world(
                profile, instruments={"TINYUSDT": COARSE}, marks={"TINYUSDT": "0.0003"}
            ) as w,
            supervised(w, settings) as (sup, _),
        ):
            w.engine.set_leverage("TINYUSDT", 1)  # keep liquidation far away on this tick
            assert (await sup.open_position(w.request("TINYUSDT", LONG, "100000", "0.0003"))).opened
            assert [s.trigger_price for s in w.stops("TINYUSDT", LONG)] == [D("0.0002")]
            w.push("TINYUSDT", "0.00029")
            await trio.sleep(3 * 3600 + 90)
            (placed,) = w.journal.of_type(EventType.AGED_EXIT_PLACED)
            assert placed.data["price"] == D("0.0004")  # breakeven incl. fees, rounded up
            orders = [
                o for o in w.engine.open_orders("TINYUSDT") if o.reduce_only and o.price is not None
            ]
            assert [(o.price, o.qty) for o in orders] == [(D("0.0004"), D("100000"))]
            await trio.sleep(9 * 3600)  # 12 h 1.5 min: one hour past grace -> 0.0003
            moved = w.journal.of_type(EventType.AGED_EXIT_MOVED)
            assert [e.data["price"] for e in moved] == [D("0.0003")]
            await trio.sleep(15 * 3600)  # 27 h: 9.6 % loss target still rounds to 0.0003
            assert len(w.journal.of_type(EventType.AGED_EXIT_MOVED)) == 1
            assert w.qty("TINYUSDT", LONG) == D("100000")
            await trio.sleep(3600)  # 28 h: 10.2 % >= cap -> market close
            assert w.journal.of_type(EventType.AGED_MARKET_CLOSE)
            assert w.qty("TINYUSDT", LONG) == 0
            (closed,) = w.journal.of_type(EventType.POSITION_CLOSED)
            assert closed.data["reason"] == "aged_max_loss"
            prices = [
                e.data["price"]
                for e in w.journal.of_type(EventType.AGED_EXIT_PLACED, EventType.AGED_EXIT_MOVED)
            ]
            assert all(p > 0 and p % COARSE.tick_size == 0 for p in prices)
            assert w.engine.open_orders("TINYUSDT") == []  # nothing left behind


@pytest.mark.parametrize("profile", PROFILES)
async def test_operator_close_and_external_close_leave_no_orders(
    profile: str, autojump_clock: MockClock
) -> None:
    with trio.fail_after(120):
        async with paper_world(profile, marks={"ETHUSDT": "2500"}) as w, supervised(w) as (sup, _):
            assert (await sup.open_position(w.request("ETHUSDT", LONG, "0.100", "2500"))).opened
            assert (await sup.open_position(w.request("ETHUSDT", SHORT, "0.100", "2500"))).opened
            dup = await sup.open_position(w.request("ETHUSDT", LONG, "0.100", "2500", attempt=1))
            assert (dup.opened, dup.reason) == (False, "position_exists")
            assert sup.open_count() == 2
            assert sup.exposure_usdt() == D("500.00000")
            status = await sup.close("ETHUSDT", LONG, "operator")
            assert status is not None and status.lifecycle is Lifecycle.CLOSED
            assert w.qty("ETHUSDT", LONG) == 0 and w.stops("ETHUSDT", LONG) == []
            # someone closes the short by hand on the venue
            w.engine.place_reduce(ReduceRequest("ETHUSDT", SHORT, D("0.100"), "manual-1"))
            await trio.sleep(5)
            assert w.qty("ETHUSDT", SHORT) == 0
            assert w.stops("ETHUSDT", SHORT) == []
            assert w.engine.open_orders("ETHUSDT") == []
            reasons = sorted(e.data["reason"] for e in w.journal.of_type(EventType.POSITION_CLOSED))
            assert reasons[0] in ("external_close", "position_flat") and reasons[1] == "operator"
            assert sup.open_count() == 0


@pytest.mark.parametrize("profile", PROFILES)
async def test_crash_mid_trail_restarts_with_same_high_water_mark(
    profile: str, autojump_clock: MockClock
) -> None:
    crash = {"armed": False}

    def observer(actor: object, mark: object, decision: object) -> None:
        if crash["armed"]:
            crash["armed"] = False
            raise RuntimeError("injected crash while trailing")

    with trio.fail_after(120):
        async with (
            paper_world(profile, marks={"ETHUSDT": "2500"}) as w,
            supervised(w, on_decision=observer) as (sup, events),
        ):
            assert (await sup.open_position(w.request("ETHUSDT", LONG, "0.100", "2500"))).opened
            w.push("ETHUSDT", "2537.5")  # activated: stop 2524.82
            await trio.sleep(5)
            w.push("ETHUSDT", "2560")  # new high-water mark; 2547.20 is rate-limited
            await trio.sleep(5)
            before = sup.actor("ETHUSDT", LONG)
            assert before is not None
            assert before.status().trailing.water_mark == D("2560")
            crash["armed"] = True
            w.push("ETHUSDT", "2555")
            await trio.sleep(0.1)  # crashed; restart backoff is 0.5 s
            assert any(e.kind is SupervisionEventKind.CRASHED for e in events)
            assert [s.trigger_price for s in w.stops("ETHUSDT", LONG)] == [D("2524.82")]
            assert w.qty("ETHUSDT", LONG) == D("0.100")
            await trio.sleep(2)
            after = sup.actor("ETHUSDT", LONG)
            assert after is not None and after is not before
            st = after.status()
            assert st.lifecycle is Lifecycle.ACTIVE
            assert st.trailing.phase is TrailingPhase.ACTIVE
            assert st.trailing.water_mark == D("2560")
            assert st.trailing.update_count == 1
            assert st.stop_price == D("2524.82")
            assert w.journal.of_type(EventType.ACTOR_RESTARTED)
            w.push("ETHUSDT", "2600")  # resumes trailing from the restored state
            await trio.sleep(1)
            assert [s.trigger_price for s in w.stops("ETHUSDT", LONG)] == [D("2587.00")]
