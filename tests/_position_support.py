"""Shared scaffolding for the PositionActor scenario tests: a paper venue in virtual time,
the routers, and helpers to feed marks and inspect the venue."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from decimal import Decimal

import attrs
import trio
import trio.lowlevel

from actors.account import open_account
from actors.position import OpenTicket, PositionActor
from actors.position_supervisor import PositionSupervisor
from actors.routers import AccountRouter, MarketRouter
from actors.runtime import (
    Address,
    RestartPolicy,
    SupervisionEvent,
    run_actor,
)
from adapters.paper import (
    FaultPlan,
    PaperEngine,
    PaperVenue,
    binance_like,
    bybit_like,
    load_instruments,
)
from tradebot.clock import TrioClock
from tradebot.domain import Instrument, PositionSide
from tradebot.events import MemoryJournal
from tradebot.ids import position_id_for
from tradebot.policies import PositionSettings, TrailingDecision
from tradebot.ports import MarkPrice, OpenRequest, StopState

T0 = datetime(2025, 5, 20, 0, 0, tzinfo=UTC)
PROFILES = {"bybit": bybit_like, "binance": binance_like}


@attrs.define
class World:
    engine: PaperEngine
    venue: PaperVenue
    clock: TrioClock
    journal: MemoryJournal
    market: MarketRouter
    account: AccountRouter
    instruments: dict[str, Instrument]
    nursery: trio.Nursery
    faults: FaultPlan

    def push(self, symbol: str, price: Decimal | str) -> None:
        """One engine step at the current virtual time, then the mark cell."""
        p = Decimal(price)
        now = self.clock.now()
        self.venue.push_mark(symbol, p, now)
        self.market.set_mark(MarkPrice(symbol, p, now))

    def stops(self, symbol: str, side: PositionSide) -> list[StopState]:
        return list(self.engine.stops_for(symbol, side))

    def qty(self, symbol: str, side: PositionSide) -> Decimal:
        return self.engine.position(symbol, side).qty

    def request(
        self,
        symbol: str,
        side: PositionSide,
        qty: Decimal | str,
        ref: Decimal | str,
        attempt: int = 0,
    ) -> OpenRequest:
        pid = position_id_for("test", symbol, side, T0, attempt)
        return OpenRequest(
            position_id=pid,
            symbol=symbol,
            position_side=side,
            qty=Decimal(qty),
            reference_price=Decimal(ref),
            signal_id=f"sig-{symbol}",
            wave_ts=T0,
        )

    def actor(
        self,
        req: OpenRequest,
        settings: PositionSettings | None = None,
        ticket: OpenTicket | None = None,
        **kw: object,
    ) -> PositionActor:
        return PositionActor(
            position_id=req.position_id,
            symbol=req.symbol,
            position_side=req.position_side,
            instrument=self.instruments[req.symbol],
            port=self.venue,
            journal=self.journal,
            clock=self.clock,
            marks=self.market.cell(req.symbol),
            settings=settings,
            ticket=ticket if ticket is not None else OpenTicket(req),
            **kw,
        )  # type: ignore[arg-type]

    async def start(self, actor: PositionActor) -> Address[object]:
        """Run the actor unsupervised; returns once its ``on_start`` (the open) finished."""
        addr: Address[object] = await self.nursery.start(
            functools.partial(run_actor, actor, name=actor.position_id)
        )  # type: ignore[arg-type]
        self.account.register(actor.position_id, actor.symbol, actor.position_side, addr)  # type: ignore[arg-type]
        return addr


@asynccontextmanager
async def paper_world(
    profile: str,
    *,
    latency_s: float = 0.05,
    faults: FaultPlan | None = None,
    marks: dict[str, str] | None = None,
    instruments: dict[str, Instrument] | None = None,
) -> AsyncIterator[World]:
    inst = instruments or load_instruments()
    engine = PaperEngine(PROFILES[profile](), inst, wallet_usdt=Decimal(10_000_000), start_ts=T0)
    clock = TrioClock(T0)
    plan = faults or FaultPlan(seed=1)
    venue = PaperVenue(engine, latency_s=latency_s, faults=plan, clock=clock)
    journal = MemoryJournal()
    account = AccountRouter(journal, clock)
    market = MarketRouter(on_gap=account)
    async with trio.open_nursery() as nursery:
        w = World(engine, venue, clock, journal, market, account, dict(inst), nursery, plan)
        for sym, p in (marks or {}).items():
            w.push(sym, p)
        nursery.start_soon(venue.run_account_stream, account.emit)
        await trio.lowlevel.checkpoint()
        yield w
        nursery.cancel_scope.cancel()


@asynccontextmanager
async def supervised(
    w: World,
    settings: PositionSettings | None = None,
    *,
    on_decision: Callable[[PositionActor, MarkPrice, TrailingDecision], None] | None = None,
) -> AsyncIterator[tuple[PositionSupervisor, list[SupervisionEvent]]]:
    """The account tree (``open_account``, no waves) over ``w``'s venue and routers: its
    PositionSupervisor and the supervision events (restart backoff 0.5 s, no jitter)."""
    events: list[SupervisionEvent] = []
    policy = RestartPolicy(max_restarts=5, window_s=60, backoff_initial_s=0.5, jitter=0.0)
    async with open_account(
        port=w.venue,
        journal=w.journal,
        clock=w.clock,
        instruments=w.instruments,
        settings=settings,
        policy=policy,
        sink=events.append,
        on_decision=on_decision,
        market=w.market,
        account_router=w.account,
    ) as account:
        yield account.positions, events
