"""The paper matching engine: pure, synchronous, deterministic.

No trio, no wall clock, no randomness. Time only moves when the caller says so
(:meth:`PaperEngine.set_mark` / :meth:`PaperEngine.advance_to`); every request is stamped
with the engine's current time (the latest timestamp it has seen).

Model (hedge mode, USDT-margined linear perpetuals, one account):

* Positions per ``(symbol, PositionSide)`` with quantity, average entry price, initial
  margin (``entry notional / leverage``) and, on position-level-stop venues (Bybit), the
  attached ``stopLoss`` (``tpslMode=Full``, triggered by the mark price).
* Orders: MARKET (filled at once at the mark, taker), LIMIT (rests; fills completely at its
  own price, maker, on the first mark that reaches it; a limit already marketable on entry
  fills at once at the mark, taker) and STOP_MARKET (conditional, mark-price triggered,
  market on trigger). On algo venues (Binance) conditional orders live in a separate id
  space (``algoId``/``clientAlgoId``).
* Reduce-only / close-position: a reduce-only order never opens, increases or flips a
  position. At submit it is refused when the side is flat (``reduce_only_no_position``) and,
  when larger than the position, trimmed (Bybit) or refused (Binance -2022). At execution
  it is trimmed to what the side holds then; a flat side expires it. A close-position
  order (Binance ``closePosition=true``, qty None) closes whatever the side holds when it
  triggers.

**Gap-aware fills (the rule).** Marks are discrete. When a mark update moves the price
from ``m0`` to ``m1`` and a stop's trigger lies between them (or ``m1`` is beyond it), the
stop triggers on ``m1`` and its market order fills at ``m1`` (minus the profile's market
slippage) — *not* at the trigger price. A long stop at 95 hit by a jump 100 → 90 fills at
90. This is what a real venue does: the stop becomes a market order at the first price seen
through it. The stop's fill carries its trigger price (``Fill.trigger_price``) next to the
fill price, so the slippage is journaled and reported (``stop.gap_fill`` incidents). A limit order, by contrast, fills at its own limit price (maker) when the mark
reaches or crosses it.

**Order of processing within one mark step** for the updated symbol (deterministic):
1. remainders of partially filled market orders (fill at the new mark, taker),
2. position-level stops (LONG side before SHORT),
3. conditional orders in placement order,
4. resting limit orders in placement order,
5. liquidation (LONG before SHORT).
Each sees the positions as left by the previous one.

**Account events** are produced in this order for one fill: ``OrderUpdate`` (NEW, for
orders that did not rest before), ``Fill``, ``OrderUpdate`` (FILLED / PARTIALLY_FILLED),
``PositionUpdate``. A triggered conditional order first emits ``OrderUpdate(TRIGGERED)``;
its fill carries the conditional order's own ids (on Binance the child market order has its
own ``orderId``; we keep ``clientAlgoId``/``algoId`` so the owner can match the fill) and
the order ends FILLED (Binance ``FINISHED``). A position-level stop (Bybit) or a
liquidation fills through a venue-generated market order with ``client_order_id == ""``.
Subscribers (:meth:`PaperEngine.subscribe`) receive every event synchronously at the end of
the step in which it happened; step listeners (:meth:`PaperEngine.add_listener`) are called
after that with an :class:`EngineStep`, after every mark update, funding and request
(accepted or refused).

Margin (cross, simplified): ``available = wallet - used initial margin - margin reserved by
resting opening limit orders + sum of negative unrealized PnL``. Opening requires
``notional / leverage + taker fee`` available, else ``InsufficientBalance``.

Liquidation (isolated-margin approximation, per position side): a side is liquidated at the
mark (taker, ``Fill.reason == "liquidation"``, no client id) on the first mark at or through
``entry * (1 -/+ (1/leverage - maintenance_margin_rate))``, after stops and limits of that
step — so a stop inside the liquidation price always fires first, even in a gap. Wallet
effects are the realized loss and fee only (no insurance fund / bankruptcy price).

Funding (:meth:`PaperEngine.apply_funding`): ``payment = qty * mark * rate``; a positive
rate makes longs pay and shorts receive (Binance/Bybit convention).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal

from tradebot.domain import (
    Instrument,
    OrderStatus,
    PositionSide,
)
from tradebot.ports import (
    AccountEvent,
    Balance,
    Fill,
    OrderState,
    PositionState,
    StopState,
)
from tradebot.price_checks import price_problem

from ._engine_model import (
    EPOCH,
    EngineStep,
    TriggerDirection,
    WalletState,
    _Order,
    _Position,
    _usdt,
)
from ._engine_requests import _EngineRequests

__all__ = ["EPOCH", "EngineStep", "PaperEngine", "TriggerDirection", "WalletState"]


class PaperEngine(_EngineRequests):
    """Deterministic hedge-mode matching engine for one paper account.

    Args:
        profile: venue behaviour (:func:`bybit_like` / :func:`binance_like`).
        instruments: the tradable instruments (tick, step, min qty, min notional, status).
        wallet_usdt: starting wallet balance, USDT (>= 0).
        start_ts: initial engine time (aware UTC); default 1970-01-01.

    All public methods are synchronous. Request methods raise the profile's
    :class:`tradebot.errors.RejectedError` subclasses with ``code`` set to the venue code;
    a refused request changes nothing.
    """

    # --- time and prices ----------------------------------------------------------------

    @property
    def now(self) -> datetime:
        """Engine time: the latest timestamp seen (never moves backwards)."""
        return self._now

    def advance_to(self, ts: datetime) -> None:
        """Move engine time forward to ``ts`` (no-op if ``ts`` is earlier)."""
        if ts.tzinfo is None:
            raise ValueError("ts must be an aware UTC datetime")
        if ts > self._now:
            self._now = ts

    def mark_price(self, symbol: str) -> Decimal | None:
        """Latest mark price of ``symbol`` or None if none was set."""
        return self._marks.get(symbol)

    def set_mark(self, symbol: str, mark_price: Decimal, ts: datetime) -> tuple[AccountEvent, ...]:
        """Feed a new mark price: triggers stops, fills limits, emits events, runs listeners.

        Args:
            symbol: a known instrument.
            mark_price: a valid price (:func:`tradebot.price_checks.price_problem`: a finite
                Decimal in [1e-12, 1e9] USDT).
            ts: aware UTC time of the mark; engine time moves to it if later.

        Returns:
            The account events this step produced.

        Raises:
            ValueError: unknown symbol, or a price that fails ``price_problem`` (not a
                Decimal, NaN/Infinity, <= 0, ``1e400``); the engine's state is unchanged.
        """
        return self.set_marks(((symbol, mark_price),), ts)

    def set_marks(
        self, marks: Sequence[tuple[str, Decimal]], ts: datetime
    ) -> tuple[AccountEvent, ...]:
        """Feed the mark prices of one instant, in order: exactly ``set_mark(symbol, price,
        ts)`` for each ``(symbol, price)`` (every check, step, event and listener call the
        same, in the same order), without the per-call overhead (the replay driver's path:
        issue 15 item 1).

        Returns:
            The account events of all the steps, in order.

        Raises:
            ValueError: as :meth:`set_mark`, for the first bad ``(symbol, price)``; the
                marks before it are applied, it and the ones after it are not.
        """
        if ts.tzinfo is None:
            raise ValueError("ts must be an aware UTC datetime")
        instruments = self._instruments
        marks_of = self._marks
        match = self._match
        out: tuple[AccountEvent, ...] = ()
        for symbol, mark_price in marks:
            if symbol not in instruments:
                raise ValueError(f"unknown symbol {symbol!r}")
            problem = price_problem(mark_price)
            if problem is not None:
                raise ValueError(f"{symbol}: mark_price {problem}")
            if ts > self._now:
                self._now = ts
            if self._in_step:
                raise RuntimeError("re-entrant engine call (from a listener or subscriber?)")
            self._in_step = True
            self._pending = []
            marks_of[symbol] = mark_price
            match(symbol, mark_price)
            if self._pending or not self._all_quiet:
                events = self._end("mark", "set_mark", symbol)
                if events:
                    out += events
                continue
            # a quiet mark (no event) and every listener takes the quiet form: no EngineStep
            self._step_seq += 1
            try:
                now = self._now
                for quiet in self._quiet_calls:
                    quiet(symbol, mark_price, now)
            finally:
                self._in_step = False
        return out

    def apply_funding(self, symbol: str, rate: Decimal, ts: datetime) -> tuple[AccountEvent, ...]:
        """Settle funding for both sides of ``symbol`` at the current mark.

        ``payment = qty * mark * rate``: positive rate → longs pay, shorts receive; negative
        → the reverse. Each payment is appended to :attr:`funding_log` and emitted as a
        ``Fill`` with ``reason="funding"``, ``client_order_id=""``, ``fee_usdt`` = the
        payment (> 0 paid, < 0 received).

        Raises:
            ValueError: unknown symbol or no mark price yet.
        """
        if symbol not in self._instruments:
            raise ValueError(f"unknown symbol {symbol!r}")
        mark = self._marks.get(symbol)
        if mark is None:
            raise ValueError(f"no mark price for {symbol} to settle funding at")
        self.advance_to(ts)
        self._begin()
        for side in (PositionSide.LONG, PositionSide.SHORT):
            pos = self._positions.get((symbol, side))
            if pos is None or pos.qty == 0:
                continue
            paid = _usdt(pos.qty * mark * rate * side.sign)  # long pays +rate, short -rate
            self._wallet -= paid
            self._funding += paid
            self._trade_seq += 1
            fill = Fill(
                symbol=symbol,
                client_order_id="",
                venue_order_id="",
                trade_id=f"F{self._trade_seq:010d}",
                side=side.entry_side,
                position_side=side,
                qty=pos.qty,
                price=mark,
                fee_usdt=paid,
                is_maker=False,
                ts=self._now,
                realized_pnl_usdt=-paid,
                reason="funding",
            )
            self.funding_log.append(fill)
            self._pending.append(fill)
        return self._end("funding", "apply_funding", symbol)

    # --- configuration ------------------------------------------------------------------

    def instruments(self) -> Mapping[str, Instrument]:
        return dict(self._instruments)

    def set_instrument(self, instrument: Instrument) -> None:
        """Add or replace an instrument (e.g. to switch its status to REDUCE_ONLY)."""
        self._instruments[instrument.symbol] = instrument

    def set_leverage(self, symbol: str, leverage: int) -> None:
        """Set the leverage of ``symbol`` (1..profile.max_leverage); same value = success.

        Raises:
            SymbolNotTradable: unknown symbol.  RejectedError (``leverage_invalid``): range.
        """
        self._instrument(symbol)
        if (
            isinstance(leverage, bool)
            or not isinstance(leverage, int)
            or not (1 <= leverage <= self.profile.max_leverage)
        ):
            raise self.profile.error("leverage_invalid", f"{leverage!r}")
        self._leverage[symbol] = leverage
        self._bands.pop(symbol, None)  # liquidation prices move
        for ps in (PositionSide.LONG, PositionSide.SHORT):
            pos = self._positions.get((symbol, ps))
            if pos is not None:
                pos.liq_price = self._liq_price(pos)

    # --- queries ------------------------------------------------------------------------

    def position(self, symbol: str, position_side: PositionSide) -> PositionState:
        """The side's state (``qty`` 0 when flat)."""
        pos = self._positions.get((symbol, position_side))
        if pos is None:
            pos = _Position(symbol, position_side)
        return self._position_state(pos)

    def positions(self, symbol: str | None = None) -> list[PositionState]:
        """Non-flat position sides, sorted by (symbol, LONG before SHORT)."""
        if symbol is not None:
            found = (
                self._positions.get((symbol, ps)) for ps in (PositionSide.LONG, PositionSide.SHORT)
            )
            return [self._position_state(p) for p in found if p is not None and p.qty > 0]
        out = [
            self._position_state(p)
            for (s, _), p in self._positions.items()
            if p.qty > 0 and (symbol is None or s == symbol)
        ]
        out.sort(key=lambda p: (p.symbol, p.position_side is PositionSide.SHORT))
        return out

    def open_orders(self, symbol: str | None = None) -> list[OrderState]:
        """Live regular and conditional/algo orders, in placement order."""
        out: list[_Order] = []
        for s, orders in self._live.items():
            if symbol is None or s == symbol:
                out.extend(o for o in orders if o.status.is_live)
        out.sort(key=lambda o: o.seq)
        return [o.state() for o in out]

    def stops_for(self, symbol: str, position_side: PositionSide) -> list[StopState]:
        """Live protective stops of one side: the position-level stop (if any) first, then
        live reduce-only / close-position conditional orders on the exit side."""
        out: list[StopState] = []
        pos = self._positions.get((symbol, position_side))
        if pos is not None and pos.stop_price is not None and pos.qty > 0:
            out.append(
                StopState(symbol=symbol, position_side=position_side, trigger_price=pos.stop_price)
            )
        for o in self._live.get(symbol, ()):
            if (
                o.position_side is position_side
                and o.status is OrderStatus.NEW
                and o.trigger_price is not None
                and o.side is position_side.exit_side
                and (o.reduce_only or o.close_position)
            ):
                out.append(self._stop_state(o))
        return out

    def get_order(self, symbol: str, client_order_id: str) -> OrderState | None:
        """Look up by client id: regular orders first, then algo orders (Binance
        ``clientAlgoId``). None when neither space has it (for this symbol)."""
        o = self._orders_by_cid.get(client_order_id)
        if o is None or o.symbol != symbol:
            o = self._algo_by_cid.get(client_order_id)
        if o is None or o.symbol != symbol:
            return None
        return o.state()

    def get_order_by_venue_id(self, symbol: str, venue_order_id: str) -> OrderState | None:
        """Look up by venue id (``orderId`` or ``algoId``)."""
        o = self._orders_by_vid.get(venue_order_id)
        if o is None or o.symbol != symbol:
            return None
        return o.state()

    def orders(self, symbol: str | None = None, *, algo: bool | None = None) -> list[OrderState]:
        """Every order ever accepted (any status), in placement order (order history)."""
        out = [
            o
            for o in self._orders_by_vid.values()
            if (symbol is None or o.symbol == symbol) and (algo is None or o.is_algo is algo)
        ]
        out.sort(key=lambda o: o.seq)
        return [o.state() for o in out]

    def balance(self) -> Balance:
        w = self.wallet()
        return Balance(wallet_usdt=w.wallet_usdt, available_usdt=w.available_usdt)
