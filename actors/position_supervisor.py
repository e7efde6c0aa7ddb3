"""PositionSupervisor: one PositionActor per (symbol, position side) (docs/ARCHITECTURE.md §3).

Implements :class:`tradebot.ports.PositionOpener` for the WaveProcessor. Children run under
a keyed :class:`actors.runtime.DynamicSupervisor` (key ``(symbol, PositionSide)``), so a
second open for a live key can never start a second actor. A crashed PositionActor is
restarted by the runtime (restart intensity / backoff from the supervisor's policy) with a
fresh instance from the same factory; that instance rebuilds its state from the journal
snapshot and the exchange before it handles messages, and resolves the opener's ticket if
the crash happened during the open.

Wiring (one account)::

    account_router = AccountRouter(journal, clock)
    market_router = MarketRouter(on_gap=account_router)
    async with open_dynamic_supervisor(RestartPolicy(), sink, name="positions") as dyn:
        positions = PositionSupervisor(supervisor=dyn, port=port, journal=journal, clock=clock,
                                       market=market_router, account=account_router,
                                       instruments=await port.instruments(),
                                       settings=PositionSettings())
        nursery.start_soon(port.run_market_stream, symbols, market_router.emit)
        nursery.start_soon(port.run_account_stream, account_router.emit)
        outcome = await positions.open_position(request)      # WaveProcessor
        ...
        await dyn.stop(deadline_s=10)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from decimal import Decimal

import trio

from actors.position import (
    Close,
    Lifecycle,
    OpenTicket,
    PositionActor,
    PositionJournal,
    PositionStatus,
    Query,
)
from actors.routers import AccountRouter, MarketRouter
from actors.runtime import Address, DynamicSupervisor, Restart
from tradebot.domain import Instrument, PositionSide
from tradebot.errors import ActorStopped, AskTimeout
from tradebot.events import EntryRejected, Event, Severity
from tradebot.policies import PositionSettings, TrailingDecision
from tradebot.ports import Clock, ExchangePort, MarkPrice, OpenOutcome, OpenRequest

__all__ = ["PositionSupervisor"]

Key = tuple[str, PositionSide]


class PositionSupervisor:
    """Starts, tracks and restarts PositionActors; the :class:`PositionOpener`.

    Args:
        supervisor: a keyed dynamic supervisor (``open_dynamic_supervisor``).
        port: the exchange.
        journal: journal port + reader.
        clock: the time port.
        market: mark-price cells per symbol.
        account: routes account events to the actors (registered on start).
        instruments: tradable instruments by symbol.
        settings: policy/execution settings for every position.
        restart: restart type of the children (TRANSIENT: restarted after crashes only).
        on_decision: optional observer of trailing decisions (metrics/benchmarks).
        account_name: ``bot.account``, journaled with each position.
    """

    def __init__(
        self,
        *,
        supervisor: DynamicSupervisor,
        port: ExchangePort,
        journal: PositionJournal,
        clock: Clock,
        market: MarketRouter,
        account: AccountRouter,
        instruments: Mapping[str, Instrument],
        settings: PositionSettings | None = None,
        restart: Restart = Restart.TRANSIENT,
        on_decision: Callable[[PositionActor, MarkPrice, TrailingDecision], None] | None = None,
        account_name: str = "",
    ) -> None:
        self._account_name = account_name
        self._sup = supervisor
        self._port = port
        self._journal = journal
        self._clock = clock
        self._market = market
        self._account = account
        self._instruments = dict(instruments)
        self._settings = settings or PositionSettings()
        self._restart = restart
        self._on_decision = on_decision
        self._actors: dict[Key, PositionActor] = {}  # the current instance per live key
        self._pending: dict[Key, OpenRequest] = {}

    # --- PositionOpener ------------------------------------------------------------------

    def has_position(self, symbol: str, position_side: PositionSide) -> bool:
        key = (symbol, position_side)
        return key in self._pending or key in self._actors

    def open_count(self) -> int:
        return len(set(self._actors) | set(self._pending))

    def exposure_usdt(self) -> Decimal:
        """Sum of entry notionals of open positions (requested notional while opening)."""
        total = Decimal(0)
        for key, req in self._pending.items():
            if key not in self._actors or self._actors[key].lifecycle is Lifecycle.OPENING:
                total += req.qty * req.reference_price
        for key, actor in self._actors.items():
            if actor.lifecycle is not Lifecycle.OPENING or key not in self._pending:
                total += actor.entry_notional_usdt
        return total

    async def open_position(self, request: OpenRequest) -> OpenOutcome:
        """Open one position; returns when it is ACTIVE or definitively not opened.

        Never raises for venue problems (they come back as ``opened=False`` + reason).
        """
        key = (request.symbol, request.position_side)
        reason = self._precheck(request)
        if reason:
            self._journal.emit(
                Event.of(
                    EntryRejected(
                        reason=reason, qty=request.qty, position_side=request.position_side
                    ),
                    self._clock.now(),
                    severity=Severity.WARNING,
                    position_id=request.position_id,
                    symbol=request.symbol,
                )
            )
            return OpenOutcome(request.position_id, False, reason)
        ticket = OpenTicket(request)
        self._pending[key] = request
        try:
            try:
                await self._start(key, request.position_id, ticket)
            except ActorStopped:
                return OpenOutcome(request.position_id, False, "supervisor_stopping")
            return await ticket.wait()
        finally:
            self._pending.pop(key, None)

    def _precheck(self, request: OpenRequest) -> str:
        if self.has_position(request.symbol, request.position_side):
            return "position_exists"
        if request.symbol not in self._instruments:
            return "unknown_symbol"
        if request.qty <= 0 or request.reference_price <= 0:
            return "bad_request"
        return ""

    # --- recovery / adoption --------------------------------------------------------------

    async def resume(self, position_id: str, symbol: str, position_side: PositionSide) -> bool:
        """Start the actor of a position the journal knows (process restart): it recovers
        from its snapshot and the exchange. True when it is being managed afterwards."""
        return await self._start_unticketed(position_id, symbol, position_side)

    async def adopt(self, position_id: str, symbol: str, position_side: PositionSide) -> bool:
        """Manage a position found on the exchange without our intent (reconciler): the
        actor puts an emergency stop on it when it has none."""
        return await self._start_unticketed(position_id, symbol, position_side, adopted=True)

    async def _start_unticketed(
        self, position_id: str, symbol: str, side: PositionSide, adopted: bool = False
    ) -> bool:
        if symbol not in self._instruments or self.has_position(symbol, side):
            return False
        await self._start((symbol, side), position_id, None, adopted=adopted)
        actor = self._actors.get((symbol, side))
        return actor is not None and actor.lifecycle in (Lifecycle.ACTIVE, Lifecycle.FAILED)

    # --- operator / queries ---------------------------------------------------------------

    def actor(self, symbol: str, position_side: PositionSide) -> PositionActor | None:
        """The current actor instance for a key (read-only use: monitors, tests)."""
        return self._actors.get((symbol, position_side))

    def actors(self) -> list[PositionActor]:
        return list(self._actors.values())

    def address(self, symbol: str, position_side: PositionSide) -> Address[object] | None:
        return self._sup.get((symbol, position_side))

    def owned_position_ids(self) -> set[str]:
        """Ids of every position with a live owner or an open in flight (the Reconciler's
        zombie sweep leaves their orders alone)."""
        ids = {a.position_id for a in self._actors.values()}
        ids.update(req.position_id for req in self._pending.values())
        return ids

    def live_qty(self, symbol: str, position_side: PositionSide) -> Decimal | None:
        """The quantity the key's owner holds (base units), None while it opens or when
        there is no owner."""
        actor = self._actors.get((symbol, position_side))
        if actor is None or actor.lifecycle not in (Lifecycle.ACTIVE, Lifecycle.FAILED):
            return None
        return actor.status().qty

    async def close(
        self,
        symbol: str,
        position_side: PositionSide,
        reason: str,
        timeout_s: float = 60.0,
        fraction: Decimal | None = None,
    ) -> PositionStatus | None:
        """Ask the position's actor to close at market (all of it, or ``fraction`` in
        (0, 1] of it, reduce-only: see :class:`actors.position.Close`). A message to the
        owner: the actor does the close and keeps its stop. None when there is no such
        actor or it did not answer within ``timeout_s``.

        Raises:
            ValueError: ``fraction`` outside (0, 1].
        """
        msg = Close(reason, fraction)
        addr = self._sup.get((symbol, position_side))
        if addr is None:
            return None
        try:
            result: PositionStatus = await addr.ask(msg, timeout_s)
        except (ActorStopped, AskTimeout):
            return None
        return result

    async def statuses(self, timeout_s: float = 5.0) -> list[PositionStatus]:
        out: list[PositionStatus] = []
        for key in list(self._actors):
            addr = self._sup.get(key)
            if addr is None:
                continue
            try:
                out.append(await addr.ask(Query(), timeout_s))
            except (ActorStopped, AskTimeout):
                continue
        return out

    # --- internals ------------------------------------------------------------------------

    async def _start(
        self, key: Key, position_id: str, ticket: OpenTicket | None, adopted: bool = False
    ) -> None:
        symbol, side = key

        def attach(actor: PositionActor) -> None:
            self._actors[key] = actor
            self._account.register(actor.position_id, symbol, side, actor.address)

        def closed(actor: PositionActor) -> None:
            if self._actors.get(key) is actor:
                del self._actors[key]
            self._account.unregister(actor.position_id)

        def factory() -> PositionActor:
            return PositionActor(
                position_id=position_id,
                symbol=symbol,
                position_side=side,
                instrument=self._instruments[symbol],
                port=self._port,
                journal=self._journal,
                clock=self._clock,
                marks=self._market.cell(symbol),
                settings=self._settings,
                ticket=ticket,
                adopted=adopted,
                on_decision=self._on_decision,
                on_closed=closed,
                on_attach=attach,
                account=self._account_name,
            )

        await self._sup.start_child(key, factory, self._restart, name=f"position-{position_id}")
        await trio.lowlevel.checkpoint()
