"""Shared helpers for the Bybit tests: a sandbox on loopback plus an adapter pointed at it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Any

from adapters.bybit import BybitUrls, BybitVenue, EndpointBudgets, ServerClock, StreamSettings
from adapters.bybit_sandbox import BybitSandbox, open_bybit_sandbox, sandbox_engine
from tradebot.domain import Instrument
from tradebot.events import JournalPort

KEY = "test-key-1234"
SECRET = "test-secret-abcd"
D = Decimal
MARKS = {"BTCUSDT": D("100000"), "ETHUSDT": D("2500")}


def urls_of(sb: BybitSandbox) -> BybitUrls:
    return BybitUrls(sb.rest_url, sb.public_ws_url, sb.private_ws_url)


def fast_streams() -> StreamSettings:
    return StreamSettings(
        ping_interval_s=0.5,
        silence_timeout_s=5.0,
        backoff_initial_s=0.05,
        backoff_max_s=0.2,
        connect_timeout_s=5.0,
    )


@asynccontextmanager
async def bybit_env(
    *,
    hedge: bool = True,
    rate_limits: Mapping[str, int] | None = None,
    journal: JournalPort | None = None,
    server_clock: ServerClock | None = None,
    budgets: EndpointBudgets | None = None,
    stream_settings: StreamSettings | None = None,
    marks: Mapping[str, Decimal] = MARKS,
    instruments: Mapping[str, Instrument] | None = None,
    wallet_usdt: Decimal = D(10000),
    **venue_kwargs: Any,
) -> AsyncIterator[tuple[BybitSandbox, BybitVenue]]:
    engine = sandbox_engine(instruments, wallet_usdt=wallet_usdt)
    async with open_bybit_sandbox(
        engine, api_key=KEY, api_secret=SECRET, hedge_mode=hedge, rate_limits=rate_limits
    ) as sb:
        for symbol, price in marks.items():
            sb.set_mark(symbol, price)
        venue = BybitVenue(
            urls_of(sb),
            KEY,
            SECRET,
            journal=journal,
            server_clock=server_clock,
            budgets=budgets
            or EndpointBudgets(order_per_s=1000, trading_stop_per_s=1000, read_per_s=1000),
            stream_settings=stream_settings or fast_streams(),
            **venue_kwargs,
        )
        async with venue:
            yield sb, venue
