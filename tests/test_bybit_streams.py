"""Bybit streams over loopback: ticker snapshot+delta merging, reconnect/resubscribe/gap,
silence watchdog, private auth and account events."""

from __future__ import annotations

import functools
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import trio
from _bybit_support import KEY, D, bybit_env, urls_of

from adapters.bybit import BybitVenue, StreamSettings, TickerCache
from adapters.bybit.ws import run_public_stream
from tradebot.domain import OrderStatus, PositionSide
from tradebot.errors import FatalVenueError
from tradebot.events import EventType, MemoryJournal
from tradebot.ports import EntryRequest, Fill, MarkPrice, OrderUpdate, PositionUpdate, StreamGap


class Collector:
    def __init__(self) -> None:
        self.events: list[Any] = []
        self._changed = trio.Event()

    async def emit(self, event: Any) -> None:
        self.events.append(event)
        self._changed.set()
        self._changed = trio.Event()

    def of(self, cls: type) -> list[Any]:
        return [e for e in self.events if isinstance(e, cls)]

    async def wait_for(self, pred: Any) -> None:
        """Wait until ``pred()`` holds (re-checked on every event and every 20 ms)."""
        while not pred():
            with trio.move_on_after(0.02):
                await self._changed.wait()


def test_ticker_cache_merges_deltas_and_keeps_omitted_fields() -> None:
    cache = TickerCache()
    snap = {
        "topic": "tickers.BTCUSDT",
        "type": "snapshot",
        "data": {"symbol": "BTCUSDT", "markPrice": "100", "lastPrice": "101"},
    }
    assert cache.apply(snap) == ("BTCUSDT", True)
    # delta without markPrice: mark unchanged, not "gone"
    assert cache.apply(
        {
            "topic": "tickers.BTCUSDT",
            "type": "delta",
            "data": {"symbol": "BTCUSDT", "lastPrice": "102"},
        }
    ) == ("BTCUSDT", False)
    assert cache.mark_price("BTCUSDT") == D("100")
    assert cache.state["BTCUSDT"]["lastPrice"] == "102"
    assert cache.apply(
        {
            "topic": "tickers.BTCUSDT",
            "type": "delta",
            "data": {"symbol": "BTCUSDT", "markPrice": "99.5"},
        }
    ) == ("BTCUSDT", True)
    assert cache.mark_price("BTCUSDT") == D("99.5")
    assert cache.apply({"op": "pong"}) is None


async def test_public_stream_merges_deltas_over_loopback() -> None:
    got = Collector()
    with trio.fail_after(10):
        async with bybit_env() as (sb, venue), trio.open_nursery() as nursery:
            nursery.start_soon(venue.run_market_stream, ["BTCUSDT", "ETHUSDT"], got.emit)
            await got.wait_for(lambda: len(got.of(MarkPrice)) >= 2)  # both snapshots
            sb.push_ticker("BTCUSDT", {"lastPrice": "100010.0", "volume24h": "5"})  # no mark
            sb.set_mark("BTCUSDT", D("100020"))
            await got.wait_for(lambda: len(got.of(MarkPrice)) >= 3)
            marks = [(m.symbol, m.mark_price) for m in got.of(MarkPrice)]
            assert sorted(marks[:2]) == [("BTCUSDT", D("100000")), ("ETHUSDT", D("2500"))]
            assert marks[2:] == [("BTCUSDT", D("100020"))]
            # a delta that changes only lastPrice keeps the merged mark
            sb.set_mark("BTCUSDT", D("100020"), last_price=D("100030"))
            sb.set_mark("ETHUSDT", D("2501"))
            await got.wait_for(lambda: len(got.of(MarkPrice)) >= 4)
            assert got.of(MarkPrice)[3].symbol == "ETHUSDT"
            assert venue.tickers.mark_price("BTCUSDT") == D("100020")
            assert venue.tickers.state["BTCUSDT"]["lastPrice"] == "100030"
            nursery.cancel_scope.cancel()


async def test_public_stream_reconnects_resubscribes_and_emits_a_gap() -> None:
    journal = MemoryJournal()
    got = Collector()
    with trio.fail_after(15):
        async with bybit_env(journal=journal) as (sb, venue), trio.open_nursery() as nursery:
            nursery.start_soon(venue.run_market_stream, ["BTCUSDT"], got.emit)
            await got.wait_for(lambda: len(got.of(MarkPrice)) >= 1)
            for round_ in (1, 2):
                assert await sb.drop_stream_connections("public") == 1
                await got.wait_for(lambda r=round_: len(got.of(StreamGap)) >= r)  # type: ignore[misc]
                # resubscribed: the new connection has the topic and gets fresh prices
                await got.wait_for(lambda: sb.subscriptions("public") == [{"tickers.BTCUSDT"}])
                sb.set_mark("BTCUSDT", D(100000 + 10 * round_))
                await got.wait_for(
                    lambda r=round_: got.of(MarkPrice)[-1].mark_price == D(100000 + 10 * r)
                )  # type: ignore[misc]
            gaps = got.of(StreamGap)
            assert [g.stream for g in gaps] == ["public", "public"]
            types = [e.type for e in journal.events if e.type.value.startswith("stream.")]
            assert types.count(EventType.STREAM_DISCONNECTED) == 2
            assert types.count(EventType.STREAM_CONNECTED) == 3
            assert types.count(EventType.STREAM_GAP) == 2
            nursery.cancel_scope.cancel()


async def test_silence_watchdog_reconnects() -> None:
    journal = MemoryJournal()
    got = Collector()
    settings = StreamSettings(
        ping_interval_s=30, silence_timeout_s=0.3, backoff_initial_s=0.01, backoff_max_s=0.05
    )
    with trio.fail_after(10):
        async with bybit_env() as (sb, _), trio.open_nursery() as nursery:
            # no pings and no price changes: the stream is silent → reconnect → gap
            nursery.start_soon(
                lambda: run_public_stream(
                    sb.public_ws_url, ["BTCUSDT"], got.emit, settings=settings, journal=journal
                )
            )
            await got.wait_for(lambda: len(got.of(StreamGap)) >= 1)
            assert journal.of_type(EventType.STREAM_SILENT)
            nursery.cancel_scope.cancel()


async def test_pings_keep_a_quiet_stream_alive() -> None:
    journal = MemoryJournal()
    got = Collector()
    settings = StreamSettings(ping_interval_s=0.1, silence_timeout_s=1.0)
    with trio.fail_after(10):
        async with bybit_env() as (sb, _), trio.open_nursery() as nursery:
            nursery.start_soon(
                lambda: run_public_stream(
                    sb.public_ws_url, ["BTCUSDT"], got.emit, settings=settings, journal=journal
                )
            )
            await trio.sleep(2.2)  # > 2 silence timeouts with only pongs arriving
            assert not journal.of_type(EventType.STREAM_SILENT)
            assert got.of(StreamGap) == []
            nursery.cancel_scope.cancel()


async def test_private_stream_delivers_order_fill_position_and_gap() -> None:
    got = Collector()
    with trio.fail_after(10):
        async with bybit_env() as (sb, venue), trio.open_nursery() as nursery:
            nursery.start_soon(venue.run_account_stream, got.emit)
            await got.wait_for(
                lambda: sb.subscriptions("private") == [{"order", "execution", "position"}]
            )
            await venue.place_entry(
                EntryRequest("BTCUSDT", PositionSide.SHORT, D("0.010"), "tb-p-E0", D("102000"))
            )
            await got.wait_for(lambda: len(got.of(PositionUpdate)) >= 1)
            fills = got.of(Fill)
            assert [(f.client_order_id, f.position_side, f.qty, f.price) for f in fills] == [
                ("tb-p-E0", PositionSide.SHORT, D("0.010"), D("100000"))
            ]
            statuses = [u.order.status for u in got.of(OrderUpdate)]
            assert statuses == [OrderStatus.NEW, OrderStatus.FILLED]
            pos = got.of(PositionUpdate)[-1].position
            assert (pos.position_side, pos.qty, pos.entry_price, pos.stop_price) == (
                PositionSide.SHORT,
                D("0.010"),
                D("100000"),
                D("102000"),
            )
            # the stop triggers: the close fill is attributed to the short side
            sb.set_mark("BTCUSDT", D("102500"))
            await got.wait_for(lambda: len(got.of(Fill)) >= 2)
            close = got.of(Fill)[1]
            assert (close.position_side, close.reason, close.price) == (
                PositionSide.SHORT,
                "stop",
                D("102500"),
            )
            await got.wait_for(lambda: got.of(PositionUpdate)[-1].position.qty == 0)
            await sb.drop_stream_connections("private")
            await got.wait_for(lambda: len(got.of(StreamGap)) == 1)
            assert got.of(StreamGap)[0].stream == "private"
            nursery.cancel_scope.cancel()


async def test_private_stream_refused_auth_is_fatal() -> None:
    with trio.fail_after(10):
        async with bybit_env() as (sb, _), BybitVenue(urls_of(sb), KEY, "bad-secret") as bad:

            async def emit(_: Any) -> None:
                pass

            with pytest.raises(FatalVenueError, match="Invalid sign"):
                await bad.run_account_stream(emit)


def test_reconnect_backoff_is_capped_and_jittered() -> None:
    s = StreamSettings(backoff_initial_s=0.5, backoff_max_s=30.0)
    for attempt, cap in ((1, 0.5), (2, 1.0), (3, 2.0), (7, 30.0), (50, 30.0)):
        delays = [s.backoff_s(attempt) for _ in range(200)]
        assert all(cap / 2 <= d <= cap for d in delays)
        assert len(set(delays)) > 1  # jittered, so reconnecting clients spread out


async def test_refused_private_subscription_is_fatal_not_silent() -> None:
    journal = MemoryJournal()
    with trio.fail_after(10):
        async with bybit_env(journal=journal) as (sb, venue):
            sb.refused_topics.add("execution")

            async def emit(_: Any) -> None:
                pass

            with pytest.raises(FatalVenueError, match="subscribe refused"):
                await venue.run_account_stream(emit)
    assert journal.of_type(EventType.EXCHANGE_ERROR)[-1].data["error"] == (
        "private subscribe refused"
    )


async def test_a_server_that_closes_at_once_never_gets_a_tight_reconnect_loop() -> None:
    settings = StreamSettings(backoff_initial_s=0.05, backoff_max_s=0.4, stable_after_s=30)
    got = Collector()
    with trio.fail_after(10):
        async with bybit_env() as (sb, _), trio.open_nursery() as nursery:
            sb.ws_close_on_accept = True
            nursery.start_soon(
                lambda: run_public_stream(
                    sb.public_ws_url, ["BTCUSDT"], got.emit, settings=settings
                )
            )
            await trio.sleep(1.5)
            nursery.cancel_scope.cancel()
    gaps = [b - a for a, b in zip(sb.ws_accepts, sb.ws_accepts[1:], strict=False)]
    # delays double from 0.05 s (jitter in [d/2, d]) up to the 0.4 s cap: a handful of
    # attempts (a tight loop would make hundreds), and the backoff did grow (lower bounds
    # only: a loaded machine can only make gaps longer)
    assert 3 <= len(sb.ws_accepts) <= 12
    assert max(gaps) >= 0.2


@pytest.mark.parametrize("key", ["ret_msg", "retMsg"])
async def test_refused_auth_keeps_the_venue_message_in_either_spelling(key: str) -> None:
    with trio.fail_after(10):
        async with bybit_env() as (sb, _), BybitVenue(urls_of(sb), KEY, "bad-secret") as bad:
            sb.ws_auth_error_key = key

            async def emit(_: Any) -> None:
                pass

            with pytest.raises(FatalVenueError) as info:
                await bad.run_account_stream(emit)
            assert info.value.venue_message == "Invalid sign"
            assert "Invalid sign" in str(info.value)


async def test_fills_missed_while_the_stream_was_down_are_backfilled_once() -> None:
    """At start-up (from ``since``) and after a gap, ``/v5/execution/list`` is read from the
    last execution seen; every execution reaches the router exactly once (by execId)."""
    journal = MemoryJournal()
    got = Collector()
    with trio.fail_after(20):
        async with bybit_env(journal=journal) as (sb, venue):
            since = datetime.now(UTC) - timedelta(seconds=5)
            # a fill before the stream runs (the bot was down): found by the start-up backfill
            await venue.place_entry(
                EntryRequest("BTCUSDT", PositionSide.SHORT, D("0.010"), "tb-b-E0", D("102000"))
            )
            async with trio.open_nursery() as nursery:
                nursery.start_soon(
                    functools.partial(venue.run_account_stream, got.emit, since=since)
                )
                await got.wait_for(lambda: len(got.of(Fill)) == 1)
                await got.wait_for(
                    lambda: sb.subscriptions("private") == [{"order", "execution", "position"}]
                )
                # live: one more fill over the stream
                await venue.place_entry(
                    EntryRequest("ETHUSDT", PositionSide.LONG, D("0.100"), "tb-b-E1", D("2400"))
                )
                await got.wait_for(lambda: len(got.of(Fill)) == 2)
                # the stream goes down and stays down while two fills happen
                sb.ws_close_on_accept = True
                await sb.drop_stream_connections("private")
                await got.wait_for(lambda: sb.stream_connections("private") == 0)
                await venue.place_entry(
                    EntryRequest("ETHUSDT", PositionSide.SHORT, D("0.100"), "tb-b-E2", D("2600"))
                )
                sb.set_mark("BTCUSDT", D("102500"))  # E0's stop triggers: a close fill
                await got.wait_for(
                    lambda: sb.engine.position("BTCUSDT", PositionSide.SHORT).qty == 0
                )
                assert len(got.of(Fill)) == 2  # nothing arrived while down
                sb.ws_close_on_accept = False
                await got.wait_for(lambda: len(got.of(Fill)) == 4 and got.of(StreamGap))
                await trio.sleep(0.3)  # any duplicate would arrive now
                nursery.cancel_scope.cancel()
    fills = got.of(Fill)
    assert [f.client_order_id for f in fills[:2]] == ["tb-b-E0", "tb-b-E1"]
    assert sorted(f.client_order_id for f in fills[2:]) == ["", "tb-b-E2"]
    assert len({f.trade_id for f in fills}) == 4 == len(fills)
    stop_fill = next(f for f in fills if f.reason == "stop")
    assert (stop_fill.position_side, stop_fill.qty) == (PositionSide.SHORT, D("0.010"))
    assert all(f.realized_pnl_usdt is None for f in fills)  # never from execPnl
    backfills = [
        e
        for e in journal.of_type(EventType.RECONCILE_COMPLETED)
        if e.data["trigger"] == "execution_backfill"
    ]
    assert [e.data["findings"] for e in backfills][:1] == [1] and backfills[-1].data[
        "findings"
    ] == 2
    pages = sb.requests_to("/v5/execution/list")
    assert all(int(p.params["endTime"]) - int(p.params["startTime"]) < 7 * 86400_000 for p in pages)
