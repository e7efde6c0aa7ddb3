"""Binance market and user-data streams against the sandbox over real sockets."""

from __future__ import annotations

from typing import Any

import pytest
import trio
from _binance_support import KEY, D, binance_env, fast_streams, until, urls_of

from adapters.binance import BinanceVenue
from tradebot.domain import OrderStatus, OrderType, PositionSide
from tradebot.errors import FatalVenueError
from tradebot.events import EventType, MemoryJournal
from tradebot.ports import (
    EntryRequest,
    Fill,
    MarkPrice,
    OrderUpdate,
    PositionUpdate,
    StopRequest,
    StreamGap,
)

LONG = PositionSide.LONG


async def test_market_stream_marks_reconnect_gap_and_resubscribe() -> None:
    journal = MemoryJournal()
    got: list[Any] = []

    async def emit(ev: Any) -> None:
        got.append(ev)

    with trio.fail_after(20):
        async with binance_env(journal=journal) as (sb, venue):  # noqa: SIM117 (nursery after the sandbox)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(venue.run_market_stream, ["BTCUSDT", "ETHUSDT"], emit)
                await until(
                    lambda: (
                        {m.symbol for m in got if isinstance(m, MarkPrice)}
                        == {"BTCUSDT", "ETHUSDT"}
                    )
                )
                assert sb.subscriptions("market") == [
                    {"btcusdt@markPrice@1s", "ethusdt@markPrice@1s"}
                ]
                sb.set_mark("BTCUSDT", D("100123.4"))
                await until(lambda: venue.marks.mark_price("BTCUSDT") == D("100123.4"))
                assert await sb.drop_stream_connections("market") == 1
                await until(lambda: any(isinstance(e, StreamGap) for e in got))
                await until(lambda: sb.stream_connections("market") == 1)
                assert sb.subscriptions("market") == [
                    {"btcusdt@markPrice@1s", "ethusdt@markPrice@1s"}
                ]
                n = len(got)
                sb.set_mark("ETHUSDT", D("2511"))
                await until(
                    lambda: any(
                        isinstance(e, MarkPrice) and e.mark_price == D("2511") for e in got[n:]
                    )
                )
                nursery.cancel_scope.cancel()
    gaps = [e for e in got if isinstance(e, StreamGap)]
    assert len(gaps) == 1 and gaps[0].stream == "public"
    assert all(isinstance(e.mark_price, D) for e in got if isinstance(e, MarkPrice))
    assert journal.of_type(EventType.STREAM_GAP) and journal.of_type(EventType.STREAM_DISCONNECTED)


async def test_silent_market_stream_is_reconnected() -> None:
    got: list[Any] = []

    async def emit(ev: Any) -> None:
        got.append(ev)

    with trio.fail_after(20):
        async with (
            binance_env(
                sandbox_kwargs={"mark_push_interval_s": 3600.0},
                stream_settings=fast_streams(silence_timeout_s=0.3),
            ) as (sb, venue),
            trio.open_nursery() as nursery,
        ):
            nursery.start_soon(venue.run_market_stream, ["BTCUSDT"], emit)
            await until(lambda: any(isinstance(e, StreamGap) and "silent" in e.reason for e in got))
            nursery.cancel_scope.cancel()
    assert len(sb.ws_accepts) >= 2


async def test_user_stream_orders_algo_trigger_fills_and_positions() -> None:
    got: list[Any] = []

    async def emit(ev: Any) -> None:
        got.append(ev)

    with trio.fail_after(20):
        async with binance_env() as (sb, venue), trio.open_nursery() as nursery:
            nursery.start_soon(venue.run_account_stream, emit)
            await until(
                lambda: (
                    sb.listen_key is not None and sb.subscriptions("private") == [{sb.listen_key}]
                )
            )
            await venue.place_entry(EntryRequest("BTCUSDT", LONG, D("0.010"), "tb-aa11-E0"))
            st = await venue.place_stop(StopRequest("BTCUSDT", LONG, D("98000.0"), "tb-aa11-S1"))
            sb.set_mark("BTCUSDT", D("97900"))  # through the stop
            await until(
                lambda: any(isinstance(e, PositionUpdate) and e.position.qty == 0 for e in got)
            )
            await until(lambda: venue.stream_stats.get("trade_lite") == 2)
            nursery.cancel_scope.cancel()
    fills = [e for e in got if isinstance(e, Fill)]
    assert [(f.client_order_id, f.side.value, f.reason) for f in fills] == [
        ("tb-aa11-E0", "BUY", ""),
        ("tb-aa11-S1", "SELL", "stop"),  # the triggered order, under the stop's clientAlgoId
    ]
    assert fills[1].price == D("97900") and fills[1].realized_pnl_usdt == D("-21.000")
    assert fills[1].venue_order_id != st.venue_order_id  # its own orderId (actualOrderId)
    algo = [
        e.order
        for e in got
        if isinstance(e, OrderUpdate) and e.order.order_type is OrderType.STOP_MARKET
    ]
    assert [o.status for o in algo] == [
        OrderStatus.NEW,
        OrderStatus.TRIGGERED,
        OrderStatus.TRIGGERED,
        OrderStatus.FILLED,
    ]
    assert {o.client_order_id for o in algo} == {"tb-aa11-S1"}
    assert {o.venue_order_id for o in algo} == {st.venue_order_id}
    entry = [
        e.order
        for e in got
        if isinstance(e, OrderUpdate) and e.order.client_order_id == "tb-aa11-E0"
    ]
    assert [o.status for o in entry] == [OrderStatus.NEW, OrderStatus.FILLED]
    positions = [e.position.qty for e in got if isinstance(e, PositionUpdate)]
    assert positions == [D("0.010"), D("0")]
    assert venue.stream_stats.get("duplicate_fills", 0) == 0


async def test_silent_listen_key_expiry_is_found_by_the_keepalive() -> None:
    """No ``listenKeyExpired`` event arrives (the stream just goes blind): the next
    keepalive answers -1125, so the adapter creates a new key and reconnects (StreamGap)."""
    journal = MemoryJournal()
    got: list[Any] = []

    async def emit(ev: Any) -> None:
        got.append(ev)

    with trio.fail_after(20):
        async with (
            binance_env(
                journal=journal, stream_settings=fast_streams(listen_key_keepalive_s=0.2)
            ) as (sb, venue),
            trio.open_nursery() as nursery,
        ):
            nursery.start_soon(venue.run_account_stream, emit)
            await until(
                lambda: (
                    sb.listen_key is not None and sb.subscriptions("private") == [{sb.listen_key}]
                )
            )
            await until(lambda: len(sb.requests_to("/fapi/v1/listenKey", "PUT")) >= 2)
            old = sb.expire_listen_key(notify=False)
            await until(lambda: any(isinstance(e, StreamGap) for e in got))
            await until(
                lambda: (
                    sb.listen_key is not None and sb.subscriptions("private") == [{sb.listen_key}]
                )
            )
            assert sb.listen_key != old
            await venue.place_entry(EntryRequest("BTCUSDT", LONG, D("0.010"), "tb-bb22-E0"))
            await until(lambda: any(isinstance(e, Fill) for e in got))  # not blind any more
            nursery.cancel_scope.cancel()
    assert -1125 in [r.code for r in sb.requests_to("/fapi/v1/listenKey", "PUT")]
    assert venue.stream_stats["listen_keys"] == 2
    gap = [e for e in got if isinstance(e, StreamGap)]
    assert len(gap) == 1 and "-1125" in gap[0].reason
    assert sb.requests_to("/fapi/v1/listenKey", "DELETE")  # closed on the way out


async def test_planned_reconnect_before_the_connection_age_limit() -> None:
    journal = MemoryJournal()
    got: list[Any] = []

    async def emit(ev: Any) -> None:
        got.append(ev)

    with trio.fail_after(20):
        async with (
            binance_env(
                journal=journal, stream_settings=fast_streams(max_connection_age_s=0.3)
            ) as (_, venue),
            trio.open_nursery() as nursery,
        ):
            nursery.start_soon(venue.run_market_stream, ["BTCUSDT"], emit)
            await until(lambda: sum(isinstance(e, StreamGap) for e in got) >= 2)
            nursery.cancel_scope.cancel()
    planned = [e for e in journal.of_type(EventType.STREAM_DISCONNECTED) if e.data.get("planned")]
    assert planned and "24 h" in planned[0].data["reason"]
    assert all("planned" in e.reason for e in got if isinstance(e, StreamGap))


async def test_user_stream_with_a_bad_key_fails_loudly() -> None:
    async def emit(ev: Any) -> None:
        raise AssertionError("no event expected")

    with trio.fail_after(10):
        async with binance_env() as (sb, _):
            bad = BinanceVenue(urls_of(sb), "wrong-key", "x", stream_settings=fast_streams())
            async with bad:
                with pytest.raises(FatalVenueError) as info:
                    await bad.run_account_stream(emit)
            assert info.value.code == "-2015"
            no_key = BinanceVenue(urls_of(sb))
            async with no_key:
                with pytest.raises(Exception, match="credentials"):
                    await no_key.run_account_stream(emit)
    assert KEY not in str(info.value)


async def test_refused_listen_key_subscription_renews_the_key() -> None:
    """The key vanished between POST /fapi/v1/listenKey and the SUBSCRIBE: the adapter
    renews it and reconnects instead of going fatal (or blind)."""
    got: list[Any] = []

    async def emit(ev: Any) -> None:
        got.append(ev)

    with trio.fail_after(20):
        async with binance_env() as (sb, venue):
            sb.lose_listen_key_before_subscribe = 1
            async with trio.open_nursery() as nursery:
                nursery.start_soon(venue.run_account_stream, emit)
                await until(
                    lambda: (
                        sb.listen_key is not None
                        and sb.subscriptions("private") == [{sb.listen_key}]
                    )
                )
                nursery.cancel_scope.cancel()
    assert len(sb.requests_to("/fapi/v1/listenKey", "POST")) == 2
    assert venue.stream_stats["listen_keys"] == 2
