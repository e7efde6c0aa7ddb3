"""Binance's official Python SDK for USDⓈ-M futures
(``binance-sdk-derivatives-trading-usds-futures``) against the sandbox over loopback.

The SDK is pointed at the sandbox with ``ConfigurationRestAPI(base_path=...)`` and
``ConfigurationWebSocketStreams(stream_url=...)``; its REST client is synchronous
(requests) and runs in a worker thread, its stream client is asyncio (aiohttp) and runs in
its own event loop in another thread. Its response models are strict pydantic models
(``orderId``/``algoId`` must be JSON integers, ``actualOrderId`` a string, ...), so every
reply it parses is checked against the shapes Binance documents.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
import trio
from _binance_support import KEY, SECRET, D, binance_env

from tradebot.domain import PositionSide

sdk = pytest.importorskip("binance_sdk_derivatives_trading_usds_futures")

from binance_common.configuration import (  # noqa: E402
    ConfigurationRestAPI,
    ConfigurationWebSocketStreams,
)
from binance_common.errors import BadRequestError, UnauthorizedError  # noqa: E402
from binance_sdk_derivatives_trading_usds_futures.derivatives_trading_usds_futures import (  # noqa: E402
    DerivativesTradingUsdsFutures,
)
from binance_sdk_derivatives_trading_usds_futures.rest_api.models import (  # noqa: E402
    NewAlgoOrderAlgoTypeEnum,
    NewAlgoOrderClosePositionEnum,
    NewAlgoOrderPriceProtectEnum,
    NewAlgoOrderSideEnum,
    NewAlgoOrderTypeEnum,
    NewAlgoOrderWorkingTypeEnum,
    NewOrderNewOrderRespTypeEnum,
    NewOrderSideEnum,
    NewOrderTypeEnum,
)


def rest_client(rest_url: str, secret: str = SECRET) -> Any:
    cfg = ConfigurationRestAPI(
        api_key=KEY, api_secret=secret, base_path=rest_url, retries=0, timeout=5000
    )
    return DerivativesTradingUsdsFutures(config_rest_api=cfg).rest_api


async def in_thread(fn: Callable[[], Any]) -> Any:
    return await trio.to_thread.run_sync(fn)


async def test_sdk_signed_calls_hedge_entry_and_algo_stop_life_cycle() -> None:
    with trio.fail_after(30):
        async with binance_env(hedge=False) as (sb, _venue):
            api = rest_client(sb.rest_url)

            def setup() -> list[Any]:
                return [
                    api.check_server_time().data(),
                    api.change_position_mode(dual_side_position="true").data(),
                    api.get_current_position_mode().data(),
                    api.change_initial_leverage(symbol="BTCUSDT", leverage=5).data(),
                    api.exchange_information().data(),
                    api.futures_account_balance_v3().data(),
                ]

            time_, mode, current, lev, info, balance = await in_thread(setup)
            assert abs(time_.server_time - time.time() * 1000) < 5000
            assert (mode.code, mode.msg) == (200, "success")
            assert current.dual_side_position is True and sb.dual_side
            assert (lev.leverage, lev.symbol) == (5, "BTCUSDT") and sb.engine.leverage(
                "BTCUSDT"
            ) == 5
            btc = next(s for s in info.symbols if s.symbol == "BTCUSDT")
            kinds = {f.filter_type: f for f in btc.filters}
            assert kinds["PRICE_FILTER"].tick_size == "0.1"
            assert kinds["MIN_NOTIONAL"].notional == "100"
            assert {"LOT_SIZE", "MARKET_LOT_SIZE"} <= set(kinds)
            assert [b.balance for b in balance if b.asset == "USDT"] == ["10000"]

            def trade() -> list[Any]:
                entry = api.new_order(
                    symbol="BTCUSDT",
                    side=NewOrderSideEnum.BUY,
                    type=NewOrderTypeEnum.MARKET,
                    position_side="LONG",
                    quantity=0.01,
                    new_client_order_id="sdk-entry-1",
                    new_order_resp_type=NewOrderNewOrderRespTypeEnum.RESULT,
                ).data()
                stop = api.new_algo_order(
                    algo_type=NewAlgoOrderAlgoTypeEnum.CONDITIONAL,
                    symbol="BTCUSDT",
                    side=NewAlgoOrderSideEnum.SELL,
                    type=NewAlgoOrderTypeEnum.STOP_MARKET,
                    position_side="LONG",
                    trigger_price=98000.0,
                    working_type=NewAlgoOrderWorkingTypeEnum.MARK_PRICE,
                    close_position=NewAlgoOrderClosePositionEnum.TRUE,
                    price_protect=NewAlgoOrderPriceProtectEnum.TRUE,
                    client_algo_id="sdk-stop-1",
                ).data()
                return [
                    entry,
                    stop,
                    api.query_algo_order(client_algo_id="sdk-stop-1").data(),
                    api.current_all_algo_open_orders(symbol="BTCUSDT").data(),
                    api.current_all_open_orders(symbol="BTCUSDT").data(),
                    api.position_information_v3(symbol="BTCUSDT").data(),
                    api.query_order(symbol="BTCUSDT", orig_client_order_id="sdk-entry-1").data(),
                    api.cancel_algo_order(client_algo_id="sdk-stop-1").data(),
                    api.query_algo_order(client_algo_id="sdk-stop-1").data(),
                    api.account_trade_list(symbol="BTCUSDT").data(),
                ]

            (
                entry,
                stop,
                queried,
                open_algo,
                open_regular,
                positions,
                order,
                cancel,
                after,
                trades,
            ) = await in_thread(trade)
    assert (entry.status, entry.executed_qty, entry.position_side) == ("FILLED", "0.01", "LONG")
    assert isinstance(entry.order_id, int) and entry.client_order_id == "sdk-entry-1"
    assert (stop.algo_status, stop.client_algo_id, stop.close_position) == (
        "NEW",
        "sdk-stop-1",
        True,
    )
    assert (stop.working_type, stop.price_protect, stop.trigger_price) == (
        "MARK_PRICE",
        True,
        "98000.0",
    )
    assert queried.algo_id == stop.algo_id and queried.actual_order_id == ""
    assert [o.client_algo_id for o in open_algo] == ["sdk-stop-1"]
    assert open_regular == []  # stops are never listed with the regular orders
    long_rows = [p for p in positions if p.position_side == "LONG"]
    assert [D(p.position_amt) for p in long_rows] == [D("0.01")]
    assert order.status == "FILLED" and order.order_id == entry.order_id
    assert (cancel.algo_id, cancel.code) == (stop.algo_id, "200")
    assert after.algo_status == "CANCELED"
    assert [(t.order_id, t.side, t.position_side) for t in trades] == [
        (entry.order_id, "BUY", "LONG")
    ]
    # the SDK's signed requests were accepted: no signature, timestamp or key error
    assert not {-1021, -1022, -2015} & set(sb.replied_codes())


async def test_sdk_sees_the_venue_refusals() -> None:
    """-4120 on the old endpoint for a conditional type, -2021 for a stop through the mark,
    -1022 for a bad signature, -2015 for a wrong key: what the SDK raises."""
    with trio.fail_after(30):
        async with binance_env() as (sb, _venue):
            api = rest_client(sb.rest_url)
            bad = rest_client(sb.rest_url, secret="not-the-secret")

            def refusals() -> list[BaseException]:
                out: list[BaseException] = []
                calls: list[Callable[[], Any]] = [
                    lambda: api.new_order(
                        symbol="BTCUSDT",
                        side=NewOrderSideEnum.SELL,
                        type=NewOrderTypeEnum.STOP_MARKET,
                        position_side="LONG",
                        quantity=0.01,
                    ),
                    lambda: api.new_algo_order(
                        algo_type=NewAlgoOrderAlgoTypeEnum.CONDITIONAL,
                        symbol="BTCUSDT",
                        side=NewAlgoOrderSideEnum.SELL,
                        type=NewAlgoOrderTypeEnum.STOP_MARKET,
                        position_side="LONG",
                        trigger_price=100500.0,
                        working_type=NewAlgoOrderWorkingTypeEnum.MARK_PRICE,
                        close_position=NewAlgoOrderClosePositionEnum.TRUE,
                    ),
                    lambda: bad.futures_account_balance_v3(),
                ]
                for call in calls:
                    try:
                        call()
                    except Exception as exc:
                        out.append(exc)
                return out

            errors = await in_thread(refusals)
    assert [type(e) for e in errors] == [BadRequestError, BadRequestError, BadRequestError]
    assert [e.status_code for e in errors] == [-4120, -2021, -1022]  # type: ignore[attr-defined]
    assert -4120 in sb.replied_codes()


async def test_sdk_wrong_api_key_is_refused() -> None:
    with trio.fail_after(30):
        async with binance_env() as (sb, _venue):
            cfg = ConfigurationRestAPI(
                api_key="wrong", api_secret=SECRET, base_path=sb.rest_url, retries=0
            )
            api = DerivativesTradingUsdsFutures(config_rest_api=cfg).rest_api

            def call() -> BaseException | None:
                try:
                    api.futures_account_balance_v3()
                except Exception as exc:
                    return exc
                return None

            err = await in_thread(call)
    assert isinstance(err, UnauthorizedError) and err.status_code == -2015  # type: ignore[attr-defined]


async def test_sdk_streams_receive_user_data_and_mark_prices() -> None:
    """The SDK's stream client subscribes the listenKey on ``/private/stream`` and the mark
    price on ``/market/stream``; an entry, an algo stop and its trigger arrive as the SDK's
    typed ORDER_TRADE_UPDATE / ALGO_UPDATE / ACCOUNT_UPDATE / TRADE_LITE events."""
    from adapters.binance import Security

    with trio.fail_after(40):
        async with binance_env() as (sb, venue):
            reply = await venue.http.call(
                "POST", "/fapi/v1/listenKey", security=Security.USER_STREAM
            )
            key = reply["listenKey"]
            base = sb.market_ws_url.removesuffix("/market")
            user_events: list[Any] = []
            marks: list[Any] = []
            ready, done = threading.Event(), threading.Event()
            failure: list[BaseException] = []

            async def sdk_side() -> None:
                cfg = ConfigurationWebSocketStreams(stream_url=base, reconnect_delay=500)
                client = DerivativesTradingUsdsFutures(config_ws_streams=cfg)
                conn = await client.websocket_streams.create_connection()
                try:
                    user = await conn.user_data(key)
                    user.on("message", user_events.append)
                    mark = await conn.mark_price_stream(symbol="btcusdt", update_speed="1s")
                    mark.on("message", marks.append)
                    ready.set()
                    deadline = time.monotonic() + 20
                    while not done.is_set() and time.monotonic() < deadline:  # noqa: ASYNC110 (set by the trio thread)
                        await asyncio.sleep(0.02)
                finally:
                    await conn.close_connection(close_session=True)

            def run_sdk() -> None:
                try:
                    asyncio.run(sdk_side())
                except BaseException as exc:
                    failure.append(exc)
                    ready.set()

            from tradebot.ports import EntryRequest, StopRequest

            async with trio.open_nursery() as nursery:
                nursery.start_soon(trio.to_thread.run_sync, run_sdk)
                await trio.to_thread.run_sync(ready.wait)
                assert not failure, failure
                await _until_subscribed(sb, key)
                await venue.place_entry(
                    EntryRequest("BTCUSDT", PositionSide.LONG, D("0.010"), "tb-5d0c-E0")
                )
                await venue.place_stop(
                    StopRequest("BTCUSDT", PositionSide.LONG, D("98000.0"), "tb-5d0c-S1")
                )
                sb.set_mark("BTCUSDT", D("97900"))  # the stop fires
                await _wait(lambda: _kinds(user_events).count("ALGO_UPDATE") >= 4)
                done.set()
            assert not failure, failure
    kinds = _kinds(user_events)
    assert {"ORDER_TRADE_UPDATE", "ALGO_UPDATE", "ACCOUNT_UPDATE", "TRADE_LITE"} <= set(kinds)
    algo = [
        e.actual_instance.o for e in user_events if type(e.actual_instance).__name__ == "AlgoUpdate"
    ]
    assert [a.X for a in algo] == ["NEW", "TRIGGERING", "TRIGGERED", "FINISHED"]
    assert (
        {a.caid for a in algo} == {"tb-5d0c-S1"} and algo[-1].ai and isinstance(algo[-1].aid, int)
    )
    trades = [
        e.actual_instance.o
        for e in user_events
        if type(e.actual_instance).__name__ == "OrderTradeUpdate"
        and e.actual_instance.o.x == "TRADE"
    ]
    assert [(t.S, t.ps) for t in trades] == [("BUY", "LONG"), ("SELL", "LONG")]
    assert trades[1].c == "tb-5d0c-S1" and str(trades[1].i) == algo[-1].ai
    assert marks and all(m.s == "BTCUSDT" and Decimal(m.p) > 0 for m in marks)


def _kinds(events: list[Any]) -> list[str]:
    names = {
        "OrderTradeUpdate": "ORDER_TRADE_UPDATE",
        "AlgoUpdate": "ALGO_UPDATE",
        "AccountUpdate": "ACCOUNT_UPDATE",
        "TradeLite": "TRADE_LITE",
    }
    return [names.get(type(e.actual_instance).__name__, "?") for e in events]


async def _wait(pred: Callable[[], bool], timeout_s: float = 10.0) -> None:
    with trio.fail_after(timeout_s):
        while not pred():  # noqa: ASYNC110 (events arrive in another thread)
            await trio.sleep(0.02)


async def _until_subscribed(sb: Any, key: str) -> None:
    await _wait(lambda: any(key in s for s in sb.subscriptions("private")))
    await _wait(lambda: any("btcusdt@markPrice@1s" in s for s in sb.subscriptions("market")))
