"""Routers between the exchange streams and the PositionActors (docs/ARCHITECTURE.md §3).

* :class:`MarketRouter` — ``MarkPrice`` events → one ``LatestValue[MarkPrice]`` per symbol
  (conflated: a burst of ticks never queues; each PositionActor watches its symbol's cell).
  A public ``StreamGap`` is forwarded to the account router's gap handling. A mark price
  that fails :func:`tradebot.price_checks.price_problem` (not a Decimal, NaN/Infinity,
  <= 0, absurdly large) is dropped and journaled ``MARK_REJECTED``: no actor ever sees it.
* :class:`AccountRouter` — order/fill/position events → the owning PositionActor, found by
  client order id (``tb-<position_id>-…``) or, for events without one of ours (position
  updates, position-level stop fills), by (symbol, position side). ``StreamGap`` →
  ``VerifyProtection("stream_gap")`` to every registered position.

Both expose ``emit`` with the signature the port's ``run_market_stream`` /
``run_account_stream`` expect, so wiring is::

    nursery.start_soon(port.run_market_stream, symbols, market_router.emit)
    nursery.start_soon(port.run_account_stream, account_router.emit)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from decimal import Decimal

from actors.position import AccountEventMsg, PositionMessage, VerifyProtection
from actors.runtime import Address, LatestValue
from tradebot.domain import PositionSide
from tradebot.errors import ActorStopped, MailboxFull
from tradebot.events import (
    Event,
    FillRecorded,
    JournalPort,
    MarkRejected,
    OrderUpdated,
    Severity,
    StopGapFill,
)
from tradebot.ids import parse_client_order_id
from tradebot.ports import (
    AccountEvent,
    Clock,
    Fill,
    MarketEvent,
    MarkPrice,
    OrderUpdate,
    PositionUpdate,
    StreamGap,
)
from tradebot.price_checks import DEFAULT_GAP_FILL_PCT, price_problem, stop_slippage_pct

__all__ = ["AccountRouter", "MarketRouter"]

_SLIPPAGE_Q = Decimal("0.0001")


class MarketRouter:
    """Latest mark price per symbol. Never blocks, never queues.

    Args:
        on_gap: optional async callback for a public ``StreamGap`` (e.g.
            ``AccountRouter.emit``) so positions re-verify after a market-stream reconnect.
        journal: where a dropped (insane) mark price is journaled ``MARK_REJECTED``
            (WARNING, data ``mark_price`` as text, ``reason``, ``mark_ts``); None = only
            counted in :attr:`rejected`.
        clock: time of those journal events (default: the mark's own timestamp).

    Attributes:
        updates: marks delivered to the cells.
        rejected: marks dropped by the sanity check.
    """

    def __init__(
        self,
        on_gap: AccountRouter | None = None,
        *,
        journal: JournalPort | None = None,
        clock: Clock | None = None,
    ) -> None:
        self._cells: dict[str, LatestValue[MarkPrice]] = {}
        self._on_gap = on_gap
        self._journal = journal
        self._clock = clock
        self.updates = 0
        self.rejected = 0

    def cell(self, symbol: str) -> LatestValue[MarkPrice]:
        """The symbol's cell (created on first use)."""
        c = self._cells.get(symbol)
        if c is None:
            c = self._cells[symbol] = LatestValue()
        return c

    def latest(self, symbol: str) -> Decimal | None:
        v = self.cell(symbol).get()
        return None if v is None else v.mark_price

    def set_mark(self, mark: MarkPrice) -> None:
        """Synchronous fast path (replay drivers, benchmarks); drops an insane mark."""
        problem = price_problem(mark.mark_price)
        if problem is not None:
            self._reject(mark, problem)
            return
        self.updates += 1
        self.cell(mark.symbol).set(mark)

    def set_marks(self, marks: Iterable[tuple[str, Decimal]], ts: datetime) -> None:
        """Synchronous batch path (the replay driver): ``set_mark(MarkPrice(symbol, price,
        ts))`` for each ``(symbol, price)``, in order."""
        cells = self._cells
        for symbol, price in marks:
            mark = MarkPrice(symbol, price, ts)
            if price_problem(price) is not None:
                self.set_mark(mark)  # rejected and journaled there
                continue
            self.updates += 1
            cell = cells.get(symbol)
            if cell is None:
                cell = self.cell(symbol)
            cell.set(mark)

    def _reject(self, mark: MarkPrice, problem: str) -> None:
        self.rejected += 1
        if self._journal is None:
            return
        ts = self._clock.now() if self._clock is not None else mark.ts
        self._journal.emit(
            Event.of(
                MarkRejected(
                    mark_price=str(mark.mark_price),
                    reason=problem,
                    mark_ts=mark.ts if isinstance(mark.ts, datetime) and mark.ts.tzinfo else None,
                ),
                ts,
                severity=Severity.WARNING,
                symbol=str(mark.symbol),
            )
        )

    async def emit(self, event: MarketEvent) -> None:
        if isinstance(event, MarkPrice):
            self.set_mark(event)
        elif isinstance(event, StreamGap) and self._on_gap is not None:
            await self._on_gap.emit(event)


class AccountRouter:
    """Routes account events to the owning PositionActor.

    Args:
        journal: where every fill is journaled (``EventType.FILL``, once per execution) and
            where unroutable events are recorded (DEBUG; they may belong to a position that
            already ended, or to an untracked one for the reconciler).
        clock: time of journal events.
        gap_fill_pct: a stop fill worse than its trigger price by more than this (percent
            of the trigger, > 0) is also journaled ``STOP_GAP_FILL`` (WARNING), an incident
            of the run report (default :data:`tradebot.price_checks.DEFAULT_GAP_FILL_PCT`).

    Attributes:
        unrouted: events no registered actor owns.
        gap_fills: ``STOP_GAP_FILL`` incidents journaled.
    """

    def __init__(
        self,
        journal: JournalPort | None = None,
        clock: Clock | None = None,
        *,
        gap_fill_pct: Decimal = DEFAULT_GAP_FILL_PCT,
    ) -> None:
        self._by_position: dict[str, Address[PositionMessage]] = {}
        self._by_key: dict[tuple[str, PositionSide], str] = {}
        self._journal = journal
        self._clock = clock
        self._gap_fill_pct = gap_fill_pct
        self.unrouted = 0
        self.gap_fills = 0
        self._gap_listeners: list[Callable[[StreamGap], None]] = []

    def register(
        self,
        position_id: str,
        symbol: str,
        position_side: PositionSide,
        address: Address[PositionMessage],
    ) -> None:
        self._by_position[position_id] = address
        self._by_key[(symbol, position_side)] = position_id

    def on_gap(self, listener: Callable[[StreamGap], None]) -> None:
        """Also call ``listener(gap)`` (synchronously; it must not block) on every
        ``StreamGap`` (the Reconciler starts a pass after a private-stream gap)."""
        self._gap_listeners.append(listener)

    def unregister(self, position_id: str) -> None:
        self._by_position.pop(position_id, None)
        for k, v in list(self._by_key.items()):
            if v == position_id:
                del self._by_key[k]

    def addresses(self) -> list[Address[PositionMessage]]:
        return list(self._by_position.values())

    def _target(self, event: AccountEvent) -> Address[PositionMessage] | None:
        cid = ""
        if isinstance(event, OrderUpdate):
            cid = event.order.client_order_id
            key = (event.order.symbol, event.order.position_side)
        elif isinstance(event, Fill):
            cid = event.client_order_id
            key = (event.symbol, event.position_side)
        elif isinstance(event, PositionUpdate):
            key = (event.position.symbol, event.position.position_side)
        else:
            return None
        parsed = parse_client_order_id(cid) if cid else None
        if parsed is not None and parsed[0] in self._by_position:
            return self._by_position[parsed[0]]
        pid = self._by_key.get(key)
        return None if pid is None else self._by_position.get(pid)

    async def emit(self, event: AccountEvent) -> None:
        if isinstance(event, StreamGap):
            for listener in self._gap_listeners:
                listener(event)
            for addr in self.addresses():
                await self._deliver(addr, VerifyProtection("stream_gap"))
            return
        if isinstance(event, Fill):
            self._journal_fill(event)
        target = self._target(event)
        if target is None:
            self.unrouted += 1
            if self._journal is not None and self._clock is not None:
                self._journal.emit(
                    Event.of(
                        OrderUpdated(unrouted=type(event).__name__),
                        self._clock.now(),
                        severity=Severity.DEBUG,
                    )
                )
            return
        await self._deliver(target, AccountEventMsg(event))

    def _journal_fill(self, fill: Fill) -> None:
        """Journal every execution of the account exactly once, here.

        The router sees every fill, including those that arrive after their position's
        actor has ended (a limit exit filled on placement, a stop racing a close), so this is
        the one place that can guarantee "every fill journaled" (docs/ARCHITECTURE.md §1 invariant 6).
        The position is found by client order id, else by (symbol, side) while tracked.
        A stop's fill also carries its ``trigger_price`` and ``slippage_pct`` (how much
        worse than the trigger it filled, percent); beyond ``gap_fill_pct`` a
        ``STOP_GAP_FILL`` incident follows.
        """
        if self._journal is None or self._clock is None:
            return
        parsed = parse_client_order_id(fill.client_order_id) if fill.client_order_id else None
        position_id = (
            parsed[0] if parsed is not None else self._by_key.get((fill.symbol, fill.position_side))
        )
        now = self._clock.now()
        slippage: Decimal | None = None
        trigger = fill.trigger_price
        if trigger is not None and price_problem(trigger) is None:
            slippage = stop_slippage_pct(fill.position_side.sign, trigger, fill.price).quantize(
                _SLIPPAGE_Q
            )
        else:
            trigger = None
        self._journal.emit(
            Event.of(
                FillRecorded(
                    qty=fill.qty,
                    price=fill.price,
                    fee_usdt=fill.fee_usdt,
                    side=fill.side,
                    position_side=fill.position_side,
                    trade_id=fill.trade_id,
                    venue_order_id=fill.venue_order_id,
                    is_maker=fill.is_maker,
                    reason=fill.reason,
                    realized_pnl_usdt=fill.realized_pnl_usdt,
                    fill_ts=fill.ts,
                    trigger_price=trigger,
                    slippage_pct=slippage,
                ),
                now,
                position_id=position_id,
                client_order_id=fill.client_order_id or None,
                symbol=fill.symbol,
            )
        )
        if trigger is not None and slippage is not None and slippage > self._gap_fill_pct:
            self.gap_fills += 1
            self._journal.emit(
                Event.of(
                    StopGapFill(
                        position_side=fill.position_side,
                        trigger_price=trigger,
                        fill_price=fill.price,
                        slippage_pct=slippage,
                        bound_pct=self._gap_fill_pct,
                        qty=fill.qty,
                        trade_id=fill.trade_id,
                        fill_ts=fill.ts,
                    ),
                    now,
                    severity=Severity.WARNING,
                    position_id=position_id,
                    client_order_id=fill.client_order_id or None,
                    symbol=fill.symbol,
                )
            )

    async def _deliver(self, addr: Address[PositionMessage], msg: PositionMessage) -> None:
        try:
            await addr.send(msg)
        except (ActorStopped, MailboxFull):
            self.unrouted += 1
