"""The Bybit adapter ready for a real account (issue 12): PositionActor scenarios over the
Bybit sandbox, real loopback sockets, the real adapter, the real actor tree.

* an entry whose reply is lost and which shows up only in the (lagging) order history ends
  with exactly one protected position — never rolled back as "not placed";
* an entry no order list ever shows, whose position exists, is owned and protected;
* a trailing stop move that meets 429 twice still lands;
* a symbol left in one-way mode by the coin-wide switch is not traded, and is alerted;
  once it is flat, the next entry switches it by symbol and trades.
"""

from __future__ import annotations

from datetime import UTC, datetime

import trio
from _bybit_support import D, actor_tree, bybit_env, until

from actors.position import Lifecycle, Query
from adapters.bybit_sandbox import BybitSandbox
from adapters.paper import EngineStep
from tradebot.domain import OrderType, PositionSide, Side
from tradebot.events import EventType, MemoryJournal, Severity
from tradebot.ids import position_id_for
from tradebot.policies import PositionSettings
from tradebot.policies.settings import ExecutionSettings
from tradebot.ports import OpenRequest

LONG, SHORT = PositionSide.LONG, PositionSide.SHORT
T0 = datetime(2025, 5, 20, tzinfo=UTC)


def request(symbol: str, side: PositionSide, qty: str, price: str, n: int = 0) -> OpenRequest:
    return OpenRequest(
        position_id=position_id_for("bybit-readiness", symbol, side, T0.replace(minute=n)),
        symbol=symbol,
        position_side=side,
        qty=D(qty),
        reference_price=D(price),
        signal_id=f"sig-{symbol}-{n}",
        wave_ts=T0,
    )


def watch_unprotected(sb: BybitSandbox) -> list[tuple[int, str]]:
    """Every engine step: any position without a live stop is recorded."""
    naked: list[tuple[int, str]] = []

    def monitor(step: EngineStep) -> None:
        for p in sb.engine.positions():
            if not sb.engine.stops_for(p.symbol, p.position_side):
                naked.append((step.seq, p.symbol))

    sb.engine.add_listener(monitor)
    return naked


def entry_creates(sb: BybitSandbox, symbol: str) -> list[str]:
    return [
        r.params["orderLinkId"]
        for r in sb.requests_to("/v5/order/create")
        if r.params["symbol"] == symbol and r.params["orderLinkId"].endswith("-E0")
    ]


async def test_lost_entry_reply_found_in_lagging_history_ends_with_one_protected_position() -> None:
    journal = MemoryJournal()
    with trio.fail_after(40):
        async with bybit_env(journal=journal, order_lookup_window_s=8.0) as (sb, venue):
            naked = watch_unprotected(sb)
            async with actor_tree(sb, venue, journal, ["ETHUSDT"]) as tree:
                # the venue restarted: closed orders are only in history, which lags 1.5 s
                sb.realtime_keeps_closed = False
                sb.history_lag_s = 1.5
                sb.inject("/v5/order/create", drop="after")  # accepted, reply lost
                req = request("ETHUSDT", SHORT, "0.100", "2500")
                outcome = await tree.sup.open_position(req)
                assert outcome.opened, outcome
                addr = tree.sup.address("ETHUSDT", SHORT)
                assert addr is not None
                status = await addr.ask(Query(), 5)
                assert status.lifecycle is Lifecycle.ACTIVE and status.qty == D("0.100")
                assert status.stop_price == D("2550.00")
    # exactly one position, protected by the stop attached to the entry, one entry sent
    [pos] = sb.engine.positions()
    assert (pos.symbol, pos.position_side, pos.qty, pos.stop_price) == (
        "ETHUSDT",
        SHORT,
        D("0.100"),
        D("2550.00"),
    )
    assert len(entry_creates(sb, "ETHUSDT")) == 1 and naked == []
    assert not journal.of_type(EventType.POSITION_ROLLED_BACK)
    [resolved] = journal.of_type(EventType.ENTRY_RESOLVED)
    assert resolved.data["found"] is True
    # it was found only once history showed it: earlier passes saw nothing
    history = [r for r in sb.requests_to("/v5/order/history") if "orderLinkId" in r.params]
    assert len(history) >= 2


async def test_an_entry_no_order_list_shows_but_whose_position_exists_is_owned() -> None:
    """History never shows the entry (beyond the lookup window) but the position is there:
    the lookup refuses to call it absent and the actor owns and protects the position."""
    journal = MemoryJournal()
    settings = PositionSettings(execution=ExecutionSettings(query_attempts=2, retry_backoff_s=0.05))
    with trio.fail_after(40):
        async with (
            bybit_env(journal=journal, order_lookup_window_s=0.5) as (sb, venue),
            actor_tree(sb, venue, journal, ["BTCUSDT"], settings=settings) as tree,
        ):
            sb.realtime_keeps_closed = False
            sb.history_lag_s = 1e9  # never in history nor in the execution list
            sb.inject("/v5/order/create", drop="after")
            outcome = await tree.sup.open_position(request("BTCUSDT", LONG, "0.010", "100000"))
            assert outcome.opened, outcome
            addr = tree.sup.address("BTCUSDT", LONG)
            assert addr is not None
            status = await addr.ask(Query(), 5)
            assert status.lifecycle is Lifecycle.ACTIVE
            assert (status.qty, status.entry_price) == (D("0.010"), D("100000"))
    [pos] = sb.engine.positions()
    assert pos.stop_price == D("98000.0")  # the attached stop, owned now
    assert len(entry_creates(sb, "BTCUSDT")) == 1
    [resolved] = journal.of_type(EventType.ENTRY_RESOLVED)
    assert resolved.data["via"] == "position_list"
    assert not journal.of_type(EventType.POSITION_ROLLED_BACK, EventType.POSITION_FAILED)


async def test_a_stop_move_that_meets_429_twice_still_lands() -> None:
    journal = MemoryJournal()
    with trio.fail_after(40):
        async with bybit_env(journal=journal, marks={"BTCUSDT": D("100000")}) as (sb, venue):
            naked = watch_unprotected(sb)
            async with actor_tree(sb, venue, journal, ["BTCUSDT"]) as tree:
                outcome = await tree.sup.open_position(request("BTCUSDT", LONG, "0.010", "100000"))
                assert outcome.opened, outcome
                # high server load: the next two trading-stop calls answer retCode 429
                sb.inject(
                    "/v5/position/trading-stop",
                    ret_code=429,
                    ret_msg="System level frequency protection, please retry",
                    times=2,
                )
                sb.set_mark("BTCUSDT", D("101600"))  # +1.6 %: trailing activates, moves
                target = D("101600") * D("0.995")
                await until(lambda: sb.engine.position("BTCUSDT", LONG).stop_price == target)
    calls = sb.requests_to("/v5/position/trading-stop")
    assert [D(r.params["stopLoss"]) for r in calls] == [target] * 3  # 429, 429, landed
    [moved] = journal.of_type(EventType.STOP_MOVED)
    assert moved.data["stop_price"] == target
    assert not journal.of_type(EventType.STOP_REJECTED)
    retries = [
        e for e in journal.of_type(EventType.EXCHANGE_ERROR) if e.data.get("what") == "retry"
    ]
    assert [e.data["code"] for e in retries] == ["429", "429"]
    assert naked == []


async def test_a_symbol_left_in_one_way_mode_is_not_traded_and_is_alerted() -> None:
    journal = MemoryJournal()
    with trio.fail_after(40):
        async with bybit_env(journal=journal, hedge=False) as (sb, venue):
            # a fresh one-way account with a manual BTCUSDT position (opened in the app)
            sb.engine.submit_order(
                symbol="BTCUSDT",
                side=Side.BUY,
                position_side=LONG,
                order_type=OrderType.MARKET,
                qty=D("0.020"),
                client_order_id="",
            )
            await venue.sync_time()
            await venue.setup_account({"BTCUSDT": 5, "ETHUSDT": 5})
            # Bybit's coin-wide switch answered without complaint; BTCUSDT stayed one-way
            assert sb.mode_of("BTCUSDT") == 0 and sb.mode_of("ETHUSDT") == 3
            assert set(venue.blocked_symbols) == {"BTCUSDT"}
            async with actor_tree(sb, venue, journal, ["BTCUSDT", "ETHUSDT"]) as tree:
                refused = await tree.sup.open_position(request("BTCUSDT", LONG, "0.010", "100000"))
                assert not refused.opened and "position_mode" in refused.reason
                assert entry_creates(sb, "BTCUSDT") == []  # never traded blind
                opened = await tree.sup.open_position(request("ETHUSDT", LONG, "0.100", "2500"))
                assert opened.opened, opened
                # the manual position is closed; the next BTCUSDT entry switches the symbol
                # by itself (it is flat now) and trades in hedge mode
                sb.engine.submit_order(
                    symbol="BTCUSDT",
                    side=Side.SELL,
                    position_side=LONG,
                    order_type=OrderType.MARKET,
                    qty=D("0.020"),
                    client_order_id="",
                    reduce_only=True,
                )
                again = await tree.sup.open_position(
                    request("BTCUSDT", LONG, "0.010", "100000", n=15)
                )
                assert again.opened, again
    assert sb.mode_of("BTCUSDT") == 3
    [entry] = entry_creates(sb, "BTCUSDT")
    create = next(r for r in sb.requests_to("/v5/order/create") if r.params["orderLinkId"] == entry)
    assert create.params["positionIdx"] == 1
    alerts = [e for e in journal.of_type(EventType.ALERT_RAISED) if e.symbol == "BTCUSDT"]
    assert [(a.data["reason"], a.severity) for a in alerts] == [
        ("position_mode_one_way", Severity.CRITICAL),
        ("position_mode_resolved", Severity.INFO),
    ]
    assert "open position" in alerts[0].data["message"]
    rejected = [e for e in journal.of_type(EventType.ENTRY_REJECTED) if e.symbol == "BTCUSDT"]
    assert len(rejected) == 1 and rejected[0].data["code"] == "position_mode"
    rolled = [e for e in journal.of_type(EventType.POSITION_ROLLED_BACK) if e.symbol == "BTCUSDT"]
    assert len(rolled) == 1 and "position_mode" in rolled[0].data["reason"]
