"""BybitVenue against the Bybit sandbox over real loopback sockets."""

from __future__ import annotations

import json

import pytest
import trio
from _bybit_support import KEY, SECRET, D, bybit_env, urls_of

from adapters.bybit import (
    BYBIT_CAPABILITIES,
    BybitVenue,
    ServerClock,
    bybit_urls,
    venue_from_config,
)
from adapters.bybit.errors import RET_CODES
from adapters.bybit.http import _wall_ms
from adapters.bybit.parse import order_from_executions
from adapters.bybit_sandbox import open_bybit_sandbox, sandbox_engine
from tradebot.config import ExchangeConfig
from tradebot.domain import (
    Instrument,
    InstrumentStatus,
    OrderRole,
    OrderStatus,
    OrderType,
    PositionSide,
    Side,
)
from tradebot.errors import (
    ConfigError,
    DuplicateClientOrderId,
    FatalVenueError,
    OutcomeUnknown,
    RateLimited,
    ReduceOnlyRejected,
    RejectedError,
    SymbolNotTradable,
    TransientError,
    UnknownOrder,
    WouldTriggerImmediately,
    ZeroPosition,
)
from tradebot.events import EventType, MemoryJournal
from tradebot.ports import EntryRequest, ExchangePort, ReduceRequest, StopRequest, StopState

LONG, SHORT = PositionSide.LONG, PositionSide.SHORT


def entry(
    cid: str,
    side: PositionSide = LONG,
    qty: str = "0.010",
    stop: str | None = "98000",
    symbol: str = "BTCUSDT",
) -> EntryRequest:
    return EntryRequest(symbol, side, D(qty), cid, D(stop) if stop else None)


async def test_port_shape_and_urls() -> None:
    with trio.fail_after(5):
        async with bybit_env() as (_, venue):
            assert isinstance(venue, ExchangePort)
            assert venue.capabilities == BYBIT_CAPABILITIES
            assert venue.capabilities.attached_stop and venue.capabilities.amend_stop
            assert not venue.capabilities.stop_has_client_id
    assert bybit_urls("testnet").rest_url == "https://api-testnet.bybit.com"
    assert bybit_urls("demo").private_ws_url == "wss://stream-demo.bybit.com/v5/private"
    assert bybit_urls("mainnet", rest_url="http://127.0.0.1:1").rest_url == "http://127.0.0.1:1"
    with pytest.raises(ConfigError):
        bybit_urls("moon")


async def test_setup_account_hedge_mode_and_leverage_not_modified_is_success() -> None:
    journal = MemoryJournal()
    with trio.fail_after(10):
        async with bybit_env(hedge=False, journal=journal) as (sb, venue):
            await venue.setup_account({"BTCUSDT": 5, "ETHUSDT": 3})
            await venue.setup_account({"BTCUSDT": 5, "ETHUSDT": 3})  # 110025 + 110043 = ok
            assert sb.position_mode == 3 and sb.engine.leverage("BTCUSDT") == 5
            assert venue.blocked_symbols == {}
            # the second coin-wide switch answered 110025 and every symbol was verified
            # from the position list (two rows, positionIdx 1 and 2)
            switches = sb.requests_to("/v5/position/switch-mode")
            assert [r.params.get("coin") for r in switches] == ["USDT", "USDT"]
            lists = [r.params.get("symbol") for r in sb.requests_to("/v5/position/list")]
            assert lists == ["BTCUSDT", "ETHUSDT", "BTCUSDT", "ETHUSDT"]
            await venue.place_entry(entry("tb-a-E1"))
            # the mode changed behind our back while a position is open: the next setup
            # finds BTCUSDT one-way with a position and blocks entries on it (no blind trade)
            sb.position_mode = 0
            await venue.setup_account({"BTCUSDT": 5})
            assert set(venue.blocked_symbols) == {"BTCUSDT"}
            assert "open position" in venue.blocked_symbols["BTCUSDT"]
            assert sb.mode_of("ETHUSDT") == 3  # flat symbols were switched by the coin call
            with pytest.raises(SymbolNotTradable) as info:
                await venue.place_entry(entry("tb-a-E2"))
            assert info.value.code == "position_mode"
            assert len(sb.requests_to("/v5/order/create")) == 1  # never sent
            [alert] = [
                e
                for e in journal.of_type(EventType.ALERT_RAISED)
                if e.data["reason"] == "position_mode_one_way"
            ]
            assert alert.symbol == "BTCUSDT" and alert.severity.name == "CRITICAL"
            # the one-way position itself is still protected and closable (positionIdx 0)
            [pos] = await venue.positions("BTCUSDT")
            assert pos.position_side is LONG and pos.stop_price == D("98000")
            await venue.amend_stop(StopState("BTCUSDT", LONG, D("98000")), D("98500"))
            assert sb.requests_to("/v5/position/trading-stop")[-1].params["positionIdx"] == 0
            await venue.place_reduce(ReduceRequest("BTCUSDT", LONG, D("0.010"), "tb-a-C1"))
            assert await venue.positions("BTCUSDT") == []
            # flat now: the next entry switches the symbol by itself, then trades hedge mode
            await venue.place_entry(entry("tb-a-E3"))
            assert sb.mode_of("BTCUSDT") == 3 and venue.blocked_symbols == {}
            by_symbol = [
                r.params for r in sb.requests_to("/v5/position/switch-mode") if "symbol" in r.params
            ]
            assert by_symbol == [{"category": "linear", "symbol": "BTCUSDT", "mode": 3}]


async def test_a_fresh_one_way_account_with_a_position_is_verified_per_symbol() -> None:
    """Bybit answers the coin-wide switch 110025 although a symbol with a position stayed
    one-way; one-way rows (positionIdx 0, side "" when flat) parse without losing the
    others, and a reduce-only Sell in one-way mode belongs to the LONG it closes."""
    with trio.fail_after(10):
        async with bybit_env(hedge=False) as (sb, venue):
            sb.position_mode = 3
            sb.set_position_mode("BTCUSDT", 0)
            # a manual one-way position on BTCUSDT (a trade made in the Bybit app)
            sb.engine.submit_order(
                symbol="BTCUSDT",
                side=Side.BUY,
                position_side=LONG,
                order_type=OrderType.MARKET,
                qty=D("0.010"),
                client_order_id="manual-1",
            )
            await venue.setup_account({"BTCUSDT": 5, "ETHUSDT": 5})
            [switch] = sb.requests_to("/v5/position/switch-mode")
            assert switch.params["coin"] == "USDT"
            assert "BTCUSDT" in venue.blocked_symbols and "ETHUSDT" not in venue.blocked_symbols
            # one-way and hedge rows in one reply: both parse
            await venue.place_entry(entry("tb-w-E0", symbol="ETHUSDT", stop="2400"))
            got = {(p.symbol, p.position_side, p.qty) for p in await venue.positions()}
            assert got == {("BTCUSDT", LONG, D("0.010")), ("ETHUSDT", LONG, D("0.010"))}
            # a one-way reduce-only Sell (a take-profit) is the LONG's order
            await venue.place_reduce(
                ReduceRequest(
                    "BTCUSDT",
                    LONG,
                    D("0.005"),
                    "tb-w-T0",
                    price=D("110000"),
                    role=OrderRole.TAKE_PROFIT,
                )
            )
            tp = sb.requests_to("/v5/order/create")[-1]
            assert (tp.params["positionIdx"], tp.params["side"]) == (0, "Sell")
            [order] = [o for o in await venue.open_orders("BTCUSDT")]
            assert (order.side, order.position_side, order.reduce_only) == (
                Side.SELL,
                LONG,
                True,
            )
            # the symbol stays blocked for entries and is reported not tradable
            assert (await venue.instruments())["BTCUSDT"].status is InstrumentStatus.REDUCE_ONLY
            with pytest.raises(SymbolNotTradable):
                await venue.place_entry(entry("tb-w-E1"))
            await venue.cancel_order("BTCUSDT", "tb-w-T0")
            await venue.place_reduce(ReduceRequest("BTCUSDT", LONG, D("0.010"), "tb-w-C0"))
            # a flat one-way symbol has one row with side "": no position, no error
            assert await venue.positions("BTCUSDT") == []
            assert (await venue.stops("BTCUSDT", LONG)) == []


async def test_instruments_follow_the_cursor_and_refresh() -> None:
    many = {
        f"C{i:04d}USDT": Instrument(f"C{i:04d}USDT", D("0.01"), D("0.1"), D("0.1"), D("5"))
        for i in range(1205)
    }
    with trio.fail_after(10):
        async with bybit_env(instruments=many, marks={}) as (sb, venue):
            got = await venue.instruments()
            assert len(got) == 1205 and got["C1204USDT"].tick_size == D("0.01")
            pages = sb.requests_to("/v5/market/instruments-info")
            # the opaque, percent-encoded cursor went back verbatim (and was signed as sent)
            assert [p.params.get("cursor") for p in pages] == [None, "page_args=1000&"]
            await venue.instruments()  # cached
            assert len(sb.requests_to("/v5/market/instruments-info")) == 2
            await venue.refresh_instruments()
            assert len(sb.requests_to("/v5/market/instruments-info")) == 4


async def test_bundled_instruments_parse_to_the_same_rules() -> None:
    with trio.fail_after(5):
        async with bybit_env() as (sb, venue):
            got = await venue.instruments()
            assert set(got) == set(sb.engine.instruments())
            btc = got["BTCUSDT"]
            ref = sb.engine.instruments()["BTCUSDT"]
            assert (btc.tick_size, btc.qty_step, btc.min_qty, btc.min_notional) == (
                ref.tick_size,
                ref.qty_step,
                ref.min_qty,
                ref.min_notional,
            )


async def test_entry_attaches_the_stop_and_trading_stop_moves_it() -> None:
    journal = MemoryJournal()
    with trio.fail_after(10):
        async with bybit_env(journal=journal) as (sb, venue):
            ack = await venue.place_entry(entry("tb-b-E0"))
            assert ack.status is OrderStatus.NEW and ack.venue_order_id
            body = sb.requests_to("/v5/order/create")[0].params
            assert body == {
                "category": "linear",
                "symbol": "BTCUSDT",
                "side": "Buy",
                "orderType": "Market",
                "qty": "0.010",
                "positionIdx": 1,
                "orderLinkId": "tb-b-E0",
                "stopLoss": "98000",
                "slTriggerBy": "MarkPrice",
                "tpslMode": "Full",
                "slOrderType": "Market",
            }
            [pos] = await venue.positions("BTCUSDT")
            assert (pos.position_side, pos.qty, pos.stop_price) == (LONG, D("0.010"), D("98000"))
            [stop] = await venue.stops("BTCUSDT", LONG)
            assert stop == StopState("BTCUSDT", LONG, D("98000"))
            moved = await venue.amend_stop(stop, D("99000"))
            again = await venue.amend_stop(moved, D("99000"))  # 34040 not modified: success
            assert again.trigger_price == D("99000")
            ts = sb.requests_to("/v5/position/trading-stop")
            assert ts[0].params == {
                "category": "linear",
                "symbol": "BTCUSDT",
                "tpslMode": "Full",
                "positionIdx": 1,
                "stopLoss": "99000",
                "slTriggerBy": "MarkPrice",
                "slOrderType": "Market",
            }
            replies = [
                e.data["retCode"]
                for e in journal.of_type(EventType.EXCHANGE_RESPONSE)
                if e.data["path"] == "/v5/position/trading-stop"
            ]
            assert replies == [0, 34040]
            [pos] = await venue.positions("BTCUSDT")
            assert pos.stop_price == D("99000")
            # a stop through the mark: the venue refuses (10001 base_price)
            with pytest.raises(WouldTriggerImmediately):
                await venue.amend_stop(moved, D("100500"))
            order = await venue.get_order("BTCUSDT", "tb-b-E0")
            assert order is not None and order.status is OrderStatus.FILLED
            assert order.filled_qty == D("0.010") and order.avg_fill_price == D("100000")
            # the stop triggers on the mark and closes the position
            sb.set_mark("BTCUSDT", D("98900"))
            assert await venue.positions("BTCUSDT") == []


async def test_trading_stop_on_zero_position_and_cancel() -> None:
    with trio.fail_after(10):
        async with bybit_env() as (_, venue):
            with pytest.raises(ZeroPosition):
                await venue.place_stop(StopRequest("BTCUSDT", SHORT, D("101000"), ""))
            await venue.place_entry(entry("tb-c-E0", SHORT, stop="102000"))
            st = await venue.place_stop(StopRequest("BTCUSDT", SHORT, D("101000"), ""))
            assert [s.trigger_price for s in await venue.stops("BTCUSDT", SHORT)] == [D("101000")]
            await venue.cancel_stop(st)
            assert await venue.stops("BTCUSDT", SHORT) == []


async def test_hedge_mode_two_rows_per_symbol_never_list0() -> None:
    with trio.fail_after(10):
        async with bybit_env() as (sb, venue):
            await venue.place_entry(entry("tb-d-E0", SHORT, qty="0.020", stop="103000"))
            # Only the short is open: the list has two rows, the long row first and empty.
            raw = sb.h_position_list({"category": "linear", "symbol": "BTCUSDT"})["list"]
            assert [(r["positionIdx"], r["side"], r["size"]) for r in raw] == [
                (1, "", "0"),
                (2, "Sell", "0.020"),
            ]
            [pos] = await venue.positions("BTCUSDT")
            assert (pos.position_side, pos.qty, pos.stop_price) == (SHORT, D("0.020"), D("103000"))
            await venue.place_entry(entry("tb-d-E1", LONG, qty="0.010", stop="97000"))
            sides = {p.position_side: p for p in await venue.positions()}
            assert sides[LONG].stop_price == D("97000") and sides[SHORT].stop_price == D("103000")
            assert [s.trigger_price for s in await venue.stops("BTCUSDT", SHORT)] == [D("103000")]


async def test_conditional_reduce_only_stop_has_explicit_direction() -> None:
    with trio.fail_after(10):
        async with bybit_env() as (sb, venue):
            await venue.place_entry(entry("tb-e-E0", LONG, qty="0.020"))
            st = await venue.place_stop(
                StopRequest("BTCUSDT", LONG, D("97000"), "tb-e-S1", qty=D("0.010"))
            )
            body = sb.requests_to("/v5/order/create")[-1].params
            assert body["triggerDirection"] == 2 and body["triggerBy"] == "MarkPrice"
            assert body["reduceOnly"] is True and body["side"] == "Sell"
            stops = await venue.stops("BTCUSDT", LONG)
            assert [(s.trigger_price, s.client_order_id) for s in stops] == [
                (D("98000"), ""),
                (D("97000"), "tb-e-S1"),
            ]
            opened = await venue.open_orders("BTCUSDT")
            assert [(o.client_order_id, o.order_type) for o in opened] == [
                ("tb-e-S1", OrderType.STOP_MARKET)
            ]
            filters = [r.params.get("orderFilter") for r in sb.requests_to("/v5/order/realtime")]
            assert "StopOrder" in filters and "Order" in filters
            st2 = await venue.amend_stop(st, D("97500"))
            assert (await venue.get_order("BTCUSDT", "tb-e-S1")).trigger_price == D("97500")  # type: ignore[union-attr]
            # a trigger already through the mark: local check refuses when the mark is cached
            venue.tickers.apply(
                {
                    "topic": "tickers.BTCUSDT",
                    "type": "snapshot",
                    "data": {"symbol": "BTCUSDT", "markPrice": "100000"},
                }
            )
            with pytest.raises(WouldTriggerImmediately) as info:
                await venue.place_stop(
                    StopRequest("BTCUSDT", LONG, D("100500"), "tb-e-S2", qty=D("0.010"))
                )
            assert info.value.code == "local_check"
            venue.mark_max_age_s = 0.0  # a stale cached mark never vetoes a stop
            # ...and the venue refuses it too (110093 "expect Falling")
            with pytest.raises(WouldTriggerImmediately) as info:
                await venue.place_stop(
                    StopRequest("BTCUSDT", LONG, D("100500"), "tb-e-S3", qty=D("0.010"))
                )
            assert info.value.code == "110093"
            await venue.cancel_stop(st2)
            assert await venue.open_orders("BTCUSDT") == []
            with pytest.raises(UnknownOrder):
                await venue.cancel_stop(st2)


async def test_reduce_orders_duplicates_and_cancels() -> None:
    with trio.fail_after(10):
        async with bybit_env() as (_sb, venue):
            with pytest.raises(ReduceOnlyRejected):
                await venue.place_reduce(ReduceRequest("BTCUSDT", LONG, D("0.010"), "tb-f-C0"))
            await venue.place_entry(entry("tb-f-E0"))
            with pytest.raises(DuplicateClientOrderId):
                await venue.place_entry(entry("tb-f-E0"))
            tp = await venue.place_reduce(
                ReduceRequest("BTCUSDT", LONG, D("0.005"), "tb-f-T0", price=D("101000"))
            )
            assert tp.order_type is OrderType.LIMIT and tp.reduce_only
            [o] = await venue.open_orders("BTCUSDT")
            assert (o.client_order_id, o.price, o.status) == (
                "tb-f-T0",
                D("101000"),
                OrderStatus.NEW,
            )
            await venue.cancel_order("BTCUSDT", "tb-f-T0")
            with pytest.raises(UnknownOrder):
                await venue.cancel_order("BTCUSDT", "tb-f-T0")
            # realtime answers by orderLinkId for recently closed orders too
            got = await venue.get_order("BTCUSDT", "tb-f-T0")
            assert got is not None and got.status is OrderStatus.CANCELED
            await venue.place_reduce(ReduceRequest("BTCUSDT", LONG, D("0.010"), "tb-f-C1"))
            assert await venue.positions() == []
            bal = await venue.balance()
            assert bal.wallet_usdt < D(10000)  # fees paid


async def test_get_order_none_only_when_venue_says_so_and_failed_query_raises() -> None:
    with trio.fail_after(10):
        async with bybit_env(order_lookup_window_s=0.0) as (sb, venue):
            assert await venue.get_order("BTCUSDT", "tb-none-E0") is None
            assert [r.path for r in sb.request_log[-3:]] == [
                "/v5/order/realtime",
                "/v5/order/history",
                "/v5/execution/list",
            ]
            for path in ("/v5/order/history", "/v5/execution/list"):
                sb.inject(path, ret_code=10016, ret_msg="Server error")
                with pytest.raises(TransientError):
                    await venue.get_order("BTCUSDT", "tb-none-E0")
            sb.inject("/v5/order/realtime", drop="before")
            with pytest.raises(TransientError):
                await venue.get_order("BTCUSDT", "tb-none-E0")
            sb.inject("/v5/order/realtime", drop="before")
            with pytest.raises(TransientError):
                await venue.open_orders("BTCUSDT")


async def test_absent_is_only_said_after_the_lookup_window(autojump_clock: object) -> None:
    """An order not found anywhere is looked for again with a doubling back-off (trio
    clock) until the window after its submission has passed: exact virtual times."""
    with trio.fail_after(60):
        async with bybit_env(order_lookup_window_s=3.0, order_lookup_backoff_s=0.25) as (
            sb,
            venue,
        ):
            await venue.verify_position_modes(["BTCUSDT"])
            sb.inject("/v5/order/create", drop="before")
            t0 = trio.current_time()
            with pytest.raises(OutcomeUnknown):
                await venue.place_entry(entry("tb-n-E0"))
            assert await venue.get_order("BTCUSDT", "tb-n-E0") is None
            passes = [r.t - t0 for r in sb.requests_to("/v5/order/realtime")]
            # 0, 0.25, 0.75, 1.75, then capped at the window's end (3.0); the few ms on
            # top are the read budget's own (virtual) waits
            assert passes == pytest.approx([0.0, 0.25, 0.75, 1.75, 3.0], abs=0.01)
            # the window runs from the submission: a later lookup answers after one pass
            assert await venue.get_order("BTCUSDT", "tb-n-E0") is None
            assert len(sb.requests_to("/v5/order/realtime")) == len(passes) + 1
            # and the side held no position: confirmed absent (one position-list read)
            assert sb.requests_to("/v5/position/list")[-1].params["symbol"] == "BTCUSDT"


async def test_lagging_history_and_executions_resolve_the_order(autojump_clock: object) -> None:
    """After a venue restart closed orders are only in history, and history lags: the
    lookup keeps looking and finds the entry once history and executions show it; an entry
    whose side holds a position is never called absent."""
    with trio.fail_after(60):
        async with bybit_env(order_lookup_window_s=10.0) as (sb, venue):
            await venue.verify_position_modes(["BTCUSDT"])
            sb.realtime_keeps_closed = False
            sb.history_lag_s = 2.0
            sb.inject("/v5/order/create", drop="after")
            t0 = trio.current_time()
            with pytest.raises(OutcomeUnknown):
                await venue.place_entry(entry("tb-o-E0"))
            order = await venue.get_order("BTCUSDT", "tb-o-E0")
            assert order is not None and order.status is OrderStatus.FILLED
            assert (order.filled_qty, order.position_side, order.avg_fill_price) == (
                D("0.010"),
                LONG,
                D("100000"),
            )
            # passes at 0, 0.25, 0.75, 1.75, 3.75: the first after the 2 s lag finds it
            assert trio.current_time() - t0 == pytest.approx(3.75, abs=0.02)
            assert not [r for r in sb.requests_to("/v5/order/create") if r.t > t0 + 0.001]
            # a reduce whose reply is lost: resolved the same way (its fill closed half)
            sb.inject("/v5/order/create", drop="after")
            t1 = trio.current_time()
            with pytest.raises(OutcomeUnknown):
                await venue.place_reduce(ReduceRequest("BTCUSDT", LONG, D("0.005"), "tb-o-C1"))
            closed = await venue.get_order("BTCUSDT", "tb-o-C1")
            assert closed is not None and closed.status is OrderStatus.FILLED
            assert (closed.reduce_only, closed.side, closed.filled_qty) == (
                True,
                Side.SELL,
                D("0.005"),
            )
            assert trio.current_time() - t1 == pytest.approx(3.75, abs=0.02)
            # an entry never placed while its side holds a position: not "absent"
            sb.inject("/v5/order/create", drop="before")
            with pytest.raises(OutcomeUnknown):
                await venue.place_entry(entry("tb-o-E2"))
            with pytest.raises(OutcomeUnknown) as info:
                await venue.get_order("BTCUSDT", "tb-o-E2")
            assert info.value.code == "position_without_order"


def test_order_rebuilt_from_execution_rows() -> None:
    """``/v5/execution/list`` rows of the documented shape (no positionIdx, no execPnl)."""
    base = {
        "symbol": "BTCUSDT",
        "orderId": "o-1",
        "orderLinkId": "tb-x-E0",
        "side": "Buy",
        "orderPrice": "0",
        "orderQty": "0.030",
        "orderType": "Market",
        "stopOrderType": "",
        "execFee": "0.6",
        "execType": "Trade",
        "feeRate": "0.00055",
        "isMaker": False,
        "closedSize": "0",
        "feeCurrency": "USDT",
    }
    rows = [
        {
            **base,
            "execId": "a",
            "execPrice": "100000",
            "execQty": "0.010",
            "leavesQty": "0.020",
            "execTime": "1700000000000",
        },
        {
            **base,
            "execId": "b",
            "execPrice": "100030",
            "execQty": "0.020",
            "leavesQty": "0",
            "execTime": "1700000000100",
        },
    ]
    order = order_from_executions(rows)
    assert order is not None
    assert (order.status, order.filled_qty, order.qty, order.position_side) == (
        OrderStatus.FILLED,
        D("0.030"),
        D("0.030"),
        LONG,
    )
    assert order.avg_fill_price == D("100020")
    part = order_from_executions(rows[:1])
    assert part is not None and part.status is OrderStatus.PARTIALLY_FILLED
    assert order_from_executions([{**rows[0], "execType": "Funding"}]) is None
    # a closing Buy (closedSize > 0) belongs to the SHORT it closes
    closing = order_from_executions([{**rows[1], "closedSize": "0.020"}])
    assert closing is not None and closing.position_side is SHORT and closing.reduce_only


async def test_unknown_outcome_is_resolved_by_order_link_id() -> None:
    """The connection drops after the venue accepted the entry: OutcomeUnknown, then the
    lookup by orderLinkId finds the filled order (no blind resend)."""
    journal = MemoryJournal()
    with trio.fail_after(10):
        async with bybit_env(journal=journal, order_lookup_window_s=0.5) as (sb, venue):
            await venue.verify_position_modes(["BTCUSDT"])
            sb.inject("/v5/order/create", drop="after")
            with pytest.raises(OutcomeUnknown):
                await venue.place_entry(entry("tb-g-E0"))
            order = await venue.get_order("BTCUSDT", "tb-g-E0")
            assert order is not None and order.status is OrderStatus.FILLED
            [pos] = await venue.positions("BTCUSDT")
            assert pos.stop_price == D("98000")
            # dropped before processing: also unknown to us; the lookup says "not there"
            # (after its window, and the SHORT side holds nothing)
            sb.inject("/v5/order/create", drop="before")
            with pytest.raises(OutcomeUnknown):
                await venue.place_entry(entry("tb-g-E1", SHORT, stop="102000"))
            assert await venue.get_order("BTCUSDT", "tb-g-E1") is None
            errors = journal.of_type(EventType.EXCHANGE_ERROR)
            assert [e.data["error"] for e in errors] == ["OutcomeUnknown", "OutcomeUnknown"]
            assert all(e.client_order_id in ("tb-g-E0", "tb-g-E1") for e in errors)


async def test_clock_skew_10002_resyncs_and_succeeds() -> None:
    journal = MemoryJournal()
    skew_ms = -20_000  # our clock is 20 s behind: outside the 5 s recv window
    clock = ServerClock(local_ms=lambda: _wall_ms() + skew_ms)
    with trio.fail_after(10):
        async with bybit_env(journal=journal, server_clock=clock) as (sb, venue):
            await venue.place_entry(entry("tb-h-E0"))
            creates = sb.requests_to("/v5/order/create")
            assert len(creates) == 1  # the skewed attempt was refused before processing
            resync = journal.of_type(EventType.CLOCK_RESYNC)
            assert len(resync) == 1 and abs(resync[0].data["offset_ms"] + skew_ms) < 2000
            errors = journal.of_type(EventType.EXCHANGE_ERROR)
            assert [e.data["code"] for e in errors] == ["10002"]
            [pos] = await venue.positions("BTCUSDT")
            assert pos.qty == D("0.010")


async def test_bad_credentials_are_fatal() -> None:
    with trio.fail_after(10):
        async with open_bybit_sandbox(sandbox_engine(), api_key=KEY, api_secret=SECRET) as sb:
            async with BybitVenue(urls_of(sb), KEY, "wrong-secret") as venue:
                with pytest.raises(FatalVenueError) as info:
                    await venue.positions()
                assert info.value.code == "10004"
            async with BybitVenue(urls_of(sb), "other-key", SECRET) as venue:
                with pytest.raises(FatalVenueError) as info:
                    await venue.balance()
                assert info.value.code == "10003"
                assert len(await venue.instruments()) == 16  # public endpoints still work


async def test_journal_has_every_request_and_reply_and_no_secret() -> None:
    journal = MemoryJournal()
    with trio.fail_after(10):
        async with bybit_env(journal=journal) as (sb, venue):
            await venue.setup_account({"BTCUSDT": 5})
            await venue.place_entry(entry("tb-i-E0"))
            await venue.amend_stop(StopState("BTCUSDT", LONG, D("98000")), D("98500"))
            await venue.positions()
            with pytest.raises(ReduceOnlyRejected):
                await venue.place_reduce(ReduceRequest("BTCUSDT", SHORT, D("1"), "tb-i-C0"))
    reqs = journal.of_type(EventType.EXCHANGE_REQUEST)
    outcomes = journal.of_type(EventType.EXCHANGE_RESPONSE, EventType.EXCHANGE_ERROR)
    assert len(reqs) == len(outcomes) == len(sb.request_log)
    assert {e.data["request_id"] for e in reqs} == {e.data["request_id"] for e in outcomes}
    text = json.dumps([dict(e.data) for e in journal.events])
    assert SECRET not in text and KEY not in text
    create = next(e for e in reqs if e.data["path"] == "/v5/order/create")
    assert create.client_order_id == "tb-i-E0" and create.symbol == "BTCUSDT"


async def test_gateway_errors_unknown_for_writes_transient_for_reads() -> None:
    with trio.fail_after(10):
        async with bybit_env() as (sb, venue):
            sb.inject("/v5/order/create", http_status=502, after=True)  # accepted, then 502
            with pytest.raises(OutcomeUnknown) as info:
                await venue.place_entry(entry("tb-j-E0"))
            assert info.value.code == "http_502"
            got = await venue.get_order("BTCUSDT", "tb-j-E0")
            assert got is not None and got.status is OrderStatus.FILLED
            sb.inject("/v5/position/list", http_status=503)
            with pytest.raises(TransientError):
                await venue.positions()
            sb.inject("/v5/position/trading-stop", http_status=403)
            with pytest.raises(RateLimited) as rl:
                await venue.amend_stop(StopState("BTCUSDT", LONG, D("98000")), D("98100"))
            assert rl.value.retry_after_s >= 600


async def test_entry_with_a_stop_through_the_mark_is_refused() -> None:
    with trio.fail_after(10):
        async with bybit_env() as (_, venue):
            with pytest.raises(WouldTriggerImmediately) as info:
                await venue.place_entry(entry("tb-k-E0", LONG, stop="100500"))
            assert info.value.code == "10001" and "base_price" in info.value.venue_message
            assert await venue.positions() == []


async def test_venue_from_config_reads_credentials_from_named_env_vars() -> None:
    env = {"MY_KEY": KEY, "MY_SECRET": SECRET}
    with trio.fail_after(10):
        async with open_bybit_sandbox(
            sandbox_engine(), api_key=KEY, api_secret=SECRET, hedge_mode=True
        ) as sb:
            cfg = {
                "venue": "bybit",
                "environment": "testnet",
                "rest_url": sb.rest_url,
                "ws_public_url": sb.public_ws_url,
                "ws_private_url": sb.private_ws_url,
                "api_key_env": "MY_KEY",
                "api_secret_env": "MY_SECRET",
            }
            async with venue_from_config(cfg, environ=env) as venue:
                assert venue.urls.rest_url == sb.rest_url
                assert (await venue.balance()).wallet_usdt == D(10000)
            typed = ExchangeConfig(
                rest_url=sb.rest_url,
                ws_public_url=sb.public_ws_url,
                ws_private_url=sb.private_ws_url,
                api_key_env="MY_KEY",
                api_secret_env="MY_SECRET",
                request_timeout_s=3.0,
            )
            async with venue_from_config(typed, environ=env) as venue:
                assert venue.urls.private_ws_url == sb.private_ws_url
                assert len(await venue.positions()) == 0
    with pytest.raises(ConfigError) as err:
        venue_from_config(
            {"venue": "bybit", "api_key_env": "NOPE_K", "api_secret_env": "NOPE_S"}, environ={}
        )
    assert [k for k, _ in err.value.problems] == ["exchange.api_key_env", "exchange.api_secret_env"]
    with pytest.raises(ConfigError):
        venue_from_config({"venue": "binance"}, environ=env)
    default = venue_from_config({}, environ={"TRADEBOT_API_KEY": "k", "TRADEBOT_API_SECRET": "s"})
    assert default.urls.rest_url == "https://api-testnet.bybit.com"  # never mainnet by default
    await default.aclose()


async def test_timeout_after_acceptance_is_outcome_unknown_then_found() -> None:
    with trio.fail_after(10):
        async with bybit_env(timeout_s=0.3) as (sb, venue):
            sb.inject("/v5/order/create", delay_s=1.0)  # processed, reply too late
            with pytest.raises(OutcomeUnknown):
                await venue.place_entry(entry("tb-l-E0"))
            got = await venue.get_order("BTCUSDT", "tb-l-E0")
            assert got is not None and got.status is OrderStatus.FILLED
            sb.inject("/v5/position/list", delay_s=1.0)
            with pytest.raises(TransientError):  # a read that timed out: safe to retry
                await venue.positions()


async def test_signed_paging_sends_the_opaque_cursor_verbatim() -> None:
    with trio.fail_after(20):
        async with bybit_env() as (sb, venue):
            await venue.place_entry(entry("tb-m-E0", qty="0.100"))
            for i in range(55):  # resting reduce-only limits: more than one page of 50
                await venue.place_reduce(
                    ReduceRequest(
                        "BTCUSDT",
                        LONG,
                        D("0.001"),
                        f"tb-m-T{i}",
                        price=D(101000 + i),
                        role=OrderRole.TAKE_PROFIT,
                    )
                )
            orders = await venue.open_orders("BTCUSDT")
            assert len(orders) == 55 and len({o.client_order_id for o in orders}) == 55
            pages = [
                r.params
                for r in sb.requests_to("/v5/order/realtime")
                if r.params.get("orderFilter") == "Order"
            ]
            assert [p.get("cursor") for p in pages] == [None, "page_args=50&"]


async def test_trading_stop_34040_is_success_only_when_the_position_shows_it() -> None:
    journal = MemoryJournal()
    with trio.fail_after(10):
        async with bybit_env(journal=journal) as (sb, venue):
            await venue.place_entry(entry("tb-t-E0"))
            stop = StopState("BTCUSDT", LONG, D("98000"))
            # the same value again: the venue answers 34040 and the position shows it: ok
            await venue.amend_stop(stop, D("98000"))
            assert sb.requests_to("/v5/position/list")[-1].params["symbol"] == "BTCUSDT"
            # 34040 for a value the position does not carry ("you didn't pass a required
            # parameter"): not success
            sb.inject("/v5/position/trading-stop", ret_code=34040, ret_msg=RET_CODES[34040].doc)
            with pytest.raises(RejectedError) as info:
                await venue.amend_stop(stop, D("98500"))
            assert info.value.code == "34040" and "98000" in str(info.value)
            assert sb.engine.position("BTCUSDT", LONG).stop_price == D("98000")
            assert journal.of_type(EventType.EXCHANGE_ERROR)[-1].data["what"] == (
                "trading_stop_not_modified"
            )


async def test_protective_calls_retry_retryable_codes_within_their_budget(
    autojump_clock: object,
) -> None:
    with trio.fail_after(60):
        async with bybit_env(protective_retry_s=5.0) as (sb, venue):
            await venue.place_entry(entry("tb-u-E0", qty="0.020"))
            stop = StopState("BTCUSDT", LONG, D("98000"))
            # 429 twice: the stop move still lands (after 1 s + 1 s of back-off)
            sb.inject(
                "/v5/position/trading-stop", ret_code=429, ret_msg="Too many requests", times=2
            )
            t0 = trio.current_time()
            await venue.amend_stop(stop, D("98500"))
            assert trio.current_time() - t0 == pytest.approx(2.0, abs=0.05)
            assert sb.engine.position("BTCUSDT", LONG).stop_price == D("98500")
            assert len(sb.requests_to("/v5/position/trading-stop")) == 3
            # 10016 on the (idempotent) trading-stop: retried too
            sb.inject("/v5/position/trading-stop", ret_code=10016, ret_msg="Server error")
            await venue.amend_stop(stop, D("99000"))
            assert sb.engine.position("BTCUSDT", LONG).stop_price == D("99000")
            # a close meets 10006 once: retried; an entry is not (the actor decides)
            sb.inject("/v5/order/create", ret_code=10006, ret_msg="Too many visits!")
            await venue.place_reduce(ReduceRequest("BTCUSDT", LONG, D("0.010"), "tb-u-C0"))
            assert sb.engine.position("BTCUSDT", LONG).qty == D("0.010")
            sb.inject("/v5/order/create", ret_code=429, ret_msg="Too many requests")
            with pytest.raises(RateLimited):
                await venue.place_entry(entry("tb-u-E1"))
            # the budget is bounded: a venue that keeps refusing surfaces the last error
            sb.inject("/v5/position/trading-stop", ret_code=10006, ret_msg="Too many", times=50)
            t0 = trio.current_time()
            with pytest.raises(RateLimited):
                await venue.amend_stop(stop, D("99500"))
            assert trio.current_time() - t0 <= 5.0
