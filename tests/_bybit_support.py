"""Shared helpers for the Bybit tests: a sandbox on loopback plus an adapter pointed at it,
and the account's actor tree over that adapter."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Any

import attrs
import trio

from actors.position_supervisor import PositionSupervisor
from actors.routers import AccountRouter, MarketRouter
from actors.runtime import RestartPolicy, SupervisionEvent, open_dynamic_supervisor
from adapters.bybit import BybitUrls, BybitVenue, EndpointBudgets, ServerClock, StreamSettings
from adapters.bybit_sandbox import BybitSandbox, open_bybit_sandbox, sandbox_engine
from tradebot.clock import WallClock
from tradebot.domain import Instrument
from tradebot.events import JournalPort, MemoryJournal
from tradebot.policies import PositionSettings

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


@attrs.define
class Tree:
    """The actor tree of one account over the Bybit adapter (what ``tradebot run`` wires):
    routers fed by the venue's streams and a PositionSupervisor."""

    sup: PositionSupervisor
    market: MarketRouter
    account: AccountRouter
    supervision: list[SupervisionEvent]


async def until(pred: Callable[[], object], timeout_s: float = 10.0) -> None:
    """Poll ``pred`` (venue state changes without an event to wait on)."""
    with trio.fail_after(timeout_s):
        while not pred():  # noqa: ASYNC110 (polls venue state)
            await trio.sleep(0.01)


@asynccontextmanager
async def actor_tree(
    sb: BybitSandbox,
    venue: BybitVenue,
    journal: MemoryJournal,
    symbols: list[str],
    *,
    settings: PositionSettings | None = None,
) -> AsyncIterator[Tree]:
    """Streams running, marks arrived, the private topics subscribed; stops everything on
    exit."""
    clock = WallClock()
    instruments = await venue.instruments()
    account = AccountRouter(journal, clock)
    market = MarketRouter(on_gap=account)
    events: list[SupervisionEvent] = []
    async with trio.open_nursery() as streams:
        streams.start_soon(venue.run_market_stream, symbols, market.emit)
        streams.start_soon(venue.run_account_stream, account.emit)
        await until(lambda: all(market.latest(s) is not None for s in symbols))
        await until(lambda: sb.subscriptions("private") == [{"order", "execution", "position"}])
        policy = RestartPolicy(max_restarts=3, window_s=60, backoff_initial_s=0.1, jitter=0.0)
        async with open_dynamic_supervisor(policy, events.append, name="positions") as dyn:
            sup = PositionSupervisor(
                supervisor=dyn,
                port=venue,
                journal=journal,
                clock=clock,
                market=market,
                account=account,
                instruments=instruments,
                settings=settings,
            )
            yield Tree(sup, market, account, events)
            await dyn.stop(5.0)
        streams.cancel_scope.cancel()
