"""Shared helpers for the Binance tests: a sandbox on loopback plus an adapter pointed at it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Any

import trio

from adapters.binance import BinanceUrls, BinanceVenue, BudgetLimits, RequestBudget, StreamSettings
from adapters.binance_sandbox import BinanceSandbox, open_binance_sandbox, sandbox_engine
from tradebot.domain import Instrument
from tradebot.events import JournalPort

KEY = "test-key-binance-1234"
SECRET = "test-secret-binance-abcd"
D = Decimal
MARKS = {"BTCUSDT": D("100000"), "ETHUSDT": D("2500")}

# The port operations of the scenario "open, three trailing moves, close" on a Binance-like
# venue, in order — the same in paper (binance_like profile) and through the adapter: the
# entry, the stop on fill; each move places the new stop, then cancels the old one; the
# close reduces at market, then the stop left behind is cancelled (no zombie).
EXPECTED_OPS = [
    "place_entry",
    "place_stop",
    *["place_stop", "cancel_stop"] * 3,
    "place_reduce",
    "cancel_stop",
]


def urls_of(sb: BinanceSandbox) -> BinanceUrls:
    return BinanceUrls(sb.rest_url, sb.market_ws_url, sb.private_ws_url)


def fast_streams(**overrides: Any) -> StreamSettings:
    settings: dict[str, Any] = {
        "ping_interval_s": 0.5,
        "pong_timeout_s": 2.0,
        "silence_timeout_s": 5.0,
        "backoff_initial_s": 0.05,
        "backoff_max_s": 0.2,
        "connect_timeout_s": 5.0,
    }
    settings.update(overrides)
    return StreamSettings(**settings)


def roomy_budget() -> RequestBudget:
    return RequestBudget(BudgetLimits(weight_1m=100_000, orders_10s=10_000, orders_1m=100_000))


async def until(pred: Callable[[], object], timeout_s: float = 5.0) -> None:
    """Poll ``pred`` (venue state, no event to wait on) until true."""
    with trio.fail_after(timeout_s):
        while not pred():  # noqa: ASYNC110 (polls sandbox state)
            await trio.sleep(0.01)


@asynccontextmanager
async def binance_env(
    *,
    hedge: bool = True,
    journal: JournalPort | None = None,
    marks: Mapping[str, Decimal] = MARKS,
    instruments: Mapping[str, Instrument] | None = None,
    wallet_usdt: Decimal = D(10000),
    sandbox_kwargs: Mapping[str, Any] | None = None,
    **venue_kwargs: Any,
) -> AsyncIterator[tuple[BinanceSandbox, BinanceVenue]]:
    engine = sandbox_engine(instruments, wallet_usdt=wallet_usdt)
    async with open_binance_sandbox(
        engine, api_key=KEY, api_secret=SECRET, hedge_mode=hedge, **dict(sandbox_kwargs or {})
    ) as sb:
        for symbol, price in marks.items():
            sb.set_mark(symbol, price)
        venue_kwargs.setdefault("budget", roomy_budget())
        venue_kwargs.setdefault("stream_settings", fast_streams())
        venue = BinanceVenue(urls_of(sb), KEY, SECRET, journal=journal, **venue_kwargs)
        async with venue:
            yield sb, venue
