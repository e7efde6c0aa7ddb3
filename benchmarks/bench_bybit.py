"""Bybit adapter against the loopback sandbox: REST round trips (signed), stop moves,
entries, ticker stream throughput, and signing cost. Loopback numbers measure our own
client + server overhead (no network): a floor, not a venue latency."""

from __future__ import annotations

import statistics
import time
from decimal import Decimal

import trio
import trio.lowlevel

from adapters.bybit import BybitUrls, BybitVenue, EndpointBudgets, StreamSettings
from adapters.bybit.http import sign
from adapters.bybit_sandbox import open_bybit_sandbox, sandbox_engine
from benchmarks._harness import Record
from tradebot.domain import PositionSide
from tradebot.ports import EntryRequest, MarketEvent, MarkPrice, StopState

D = Decimal


def _pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


async def _main(record: Record) -> None:
    async with open_bybit_sandbox(
        sandbox_engine(wallet_usdt=D(10_000_000)),
        api_key="k",
        api_secret="s",
        hedge_mode=True,
        rate_limits=None,
    ) as sb:
        sb.set_mark("BTCUSDT", D("100000"))
        budgets = EndpointBudgets(
            order_per_s=1e6, trading_stop_per_s=1e6, read_per_s=1e6, public_per_s=1e6
        )
        urls = BybitUrls(sb.rest_url, sb.public_ws_url, sb.private_ws_url)
        async with BybitVenue(
            urls, "k", "s", budgets=budgets, stream_settings=StreamSettings()
        ) as venue:
            await venue.positions()  # warm the connection
            lat: list[float] = []
            for _ in range(300):
                t = time.perf_counter()
                await venue.positions("BTCUSDT")
                lat.append((time.perf_counter() - t) * 1000)
            record("positions round trip p50", statistics.median(lat), "ms")
            record("positions round trip p99", _pct(lat, 0.99), "ms")
            lat = []
            for i in range(100):
                t = time.perf_counter()
                await venue.place_entry(
                    EntryRequest(
                        "BTCUSDT", PositionSide.LONG, D("0.001"), f"bench-E{i}", D("90000")
                    )
                )
                lat.append((time.perf_counter() - t) * 1000)
            record("entry with attached stop ack p50", statistics.median(lat), "ms")
            lat = []
            stop = StopState("BTCUSDT", PositionSide.LONG, D("90000"))
            for i in range(200):
                t = time.perf_counter()
                stop = await venue.amend_stop(stop, D(90000 + 10 * (i + 1)))
                lat.append((time.perf_counter() - t) * 1000)
            record("trading-stop move p50", statistics.median(lat), "ms")
            record("trading-stop move p99", _pct(lat, 0.99), "ms")

            n = 3000
            got = {"n": 0}
            done = trio.Event()
            first = trio.Event()

            async def emit(ev: MarketEvent) -> None:
                if isinstance(ev, MarkPrice):
                    got["n"] += 1
                    first.set()
                    if ev.mark_price == D(100000 + n):
                        done.set()

            async with trio.open_nursery() as nursery:
                nursery.start_soon(venue.run_market_stream, ["BTCUSDT"], emit)
                await first.wait()  # the snapshot arrived: subscribed
                t = time.perf_counter()
                for i in range(1, n + 1):
                    sb.set_mark("BTCUSDT", D(100000 + i))
                    if i % 100 == 0:
                        await trio.lowlevel.checkpoint()
                await done.wait()
                dt = time.perf_counter() - t
                nursery.cancel_scope.cancel()
            record("ticker deltas through the stream", n / dt, "deltas/s")
    t = time.perf_counter()
    for i in range(20000):
        sign("secret", f"1700000000000key5000category=linear&symbol=BTCUSDT&i={i}")
    record("HMAC signing", 20000 / (time.perf_counter() - t), "signs/s")


def run(record: Record) -> None:
    trio.run(_main, record)
