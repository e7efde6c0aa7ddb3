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

import enum
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, ROUND_HALF_UP, Decimal

import attrs

from tradebot.domain import (
    Instrument,
    InstrumentStatus,
    OrderStatus,
    OrderType,
    PositionSide,
    Side,
)
from tradebot.errors import RejectedError, UnknownOrder, VenueError
from tradebot.money import ZERO, Rounding, quantize_to_step
from tradebot.ports import (
    AccountEvent,
    Balance,
    EntryRequest,
    Fill,
    OrderState,
    OrderUpdate,
    PositionState,
    PositionUpdate,
    ReduceRequest,
    StopRequest,
    StopState,
)
from tradebot.price_checks import price_problem

from ._profile import VenueProfile

__all__ = ["EPOCH", "EngineStep", "PaperEngine", "TriggerDirection", "WalletState"]

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_BPS = Decimal(10000)
# Money settles to 1e-8 USDT (both venues report fees/PnL with 8 decimals); with every
# addend on that grid the wallet arithmetic is exact, so wallet == start + realized - fees
# - funding holds to the last digit. Average entry prices keep 1e-12.
USDT_QUANTUM = Decimal("1e-8")
PRICE_QUANTUM = Decimal("1e-12")


def _usdt(x: Decimal) -> Decimal:
    return x.quantize(USDT_QUANTUM, rounding=ROUND_HALF_EVEN)


def _avg_price(x: Decimal) -> Decimal:
    exp = x.as_tuple().exponent
    if isinstance(exp, int) and exp < -12:
        return x.quantize(PRICE_QUANTUM, rounding=ROUND_HALF_EVEN)
    return x


def _fee(x: Decimal) -> Decimal:
    return x.quantize(USDT_QUANTUM, rounding=ROUND_HALF_UP)


class TriggerDirection(enum.Enum):
    """Bybit ``triggerDirection``: RISE (1) triggers when mark >= trigger, FALL (2) when <=."""

    RISE = 1
    FALL = 2


@attrs.frozen
class WalletState:
    """The account's money, USDT.

    Attributes:
        wallet_usdt: deposits + realized PnL - fees - funding paid + funding received.
        available_usdt: what new margin can use (see module docstring).
        used_margin_usdt: initial margin of open positions.
        reserved_margin_usdt: initial margin held by resting opening limit orders.
        unrealized_pnl_usdt: at the current marks.
        realized_pnl_usdt: cumulative gross realized PnL (fees excluded).
        fees_usdt: cumulative trading fees paid (> 0 cost).
        funding_usdt: cumulative net funding paid (> 0 cost, < 0 received).
    """

    wallet_usdt: Decimal
    available_usdt: Decimal
    used_margin_usdt: Decimal
    reserved_margin_usdt: Decimal
    unrealized_pnl_usdt: Decimal
    realized_pnl_usdt: Decimal
    fees_usdt: Decimal
    funding_usdt: Decimal

    @property
    def equity_usdt(self) -> Decimal:
        return self.wallet_usdt + self.unrealized_pnl_usdt


@attrs.frozen
class EngineStep:
    """One engine step, as seen by step listeners.

    Attributes:
        seq: 1, 2, 3, ... per engine.
        kind: ``"mark"``, ``"request"`` or ``"funding"``.
        name: the request method (``"place_entry"``, ...), or ``"set_mark"`` etc.
        symbol: symbol concerned, if any.
        ts: engine time of the step (UTC).
        events: the account events the step produced, in order.
        error: the refusal, when a request was refused (state unchanged).
    """

    seq: int
    kind: str
    name: str
    symbol: str | None
    ts: datetime
    events: tuple[AccountEvent, ...]
    error: VenueError | None = None


@attrs.define
class _Position:
    symbol: str
    position_side: PositionSide
    qty: Decimal = ZERO
    entry_price: Decimal = ZERO
    margin_usdt: Decimal = ZERO
    stop_price: Decimal | None = None  # position-level stop (Bybit Full)
    liq_price: Decimal | None = None  # cached; recomputed on entry / leverage changes


@attrs.define
class _Order:
    seq: int
    symbol: str
    client_order_id: str
    venue_order_id: str
    side: Side
    position_side: PositionSide
    order_type: OrderType
    qty: Decimal  # ZERO for close-position orders (Binance reports origQty 0)
    price: Decimal | None
    trigger_price: Decimal | None
    trigger_direction: TriggerDirection | None
    reduce_only: bool
    close_position: bool
    is_algo: bool
    created_at: datetime
    updated_at: datetime
    status: OrderStatus = OrderStatus.NEW
    filled_qty: Decimal = ZERO
    filled_notional: Decimal = ZERO
    reserved_margin_usdt: Decimal = ZERO
    remainder_pending: bool = False  # partially filled market order waiting for next mark
    attached_stop: Decimal | None = None  # stop still to attach with the first fill

    def state(self) -> OrderState:
        avg = self.filled_notional / self.filled_qty if self.filled_qty > 0 else None
        return OrderState(
            symbol=self.symbol,
            client_order_id=self.client_order_id,
            venue_order_id=self.venue_order_id,
            side=self.side,
            position_side=self.position_side,
            order_type=self.order_type,
            status=self.status,
            qty=self.qty,
            filled_qty=self.filled_qty,
            avg_fill_price=avg,
            price=self.price,
            trigger_price=self.trigger_price,
            reduce_only=self.reduce_only,
            close_position=self.close_position,
            updated_at=self.updated_at,
        )

    @property
    def is_conditional(self) -> bool:
        return self.trigger_price is not None and self.status is OrderStatus.NEW

    @property
    def remaining_qty(self) -> Decimal:
        return self.qty - self.filled_qty


StepListener = Callable[[EngineStep], None]
EventSubscriber = Callable[[AccountEvent], None]


class PaperEngine:
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

    def __init__(
        self,
        profile: VenueProfile,
        instruments: Mapping[str, Instrument] | Iterable[Instrument],
        *,
        wallet_usdt: Decimal = Decimal(10000),
        start_ts: datetime = EPOCH,
    ) -> None:
        if wallet_usdt < 0:
            raise ValueError("wallet_usdt must be >= 0")
        if start_ts.tzinfo is None:
            raise ValueError("start_ts must be an aware UTC datetime")
        self.profile = profile
        items = instruments.values() if isinstance(instruments, Mapping) else instruments
        self._instruments: dict[str, Instrument] = {i.symbol: i for i in items}
        self._now = start_ts
        self._wallet = wallet_usdt
        self._realized = ZERO
        self._fees = ZERO
        self._funding = ZERO
        self._marks: dict[str, Decimal] = {}
        self._leverage: dict[str, int] = {}
        self._positions: dict[tuple[str, PositionSide], _Position] = {}
        self._orders_by_cid: dict[str, _Order] = {}  # regular space, latest use of the id
        self._algo_by_cid: dict[str, _Order] = {}  # algo space (Binance)
        self._orders_by_vid: dict[str, _Order] = {}  # both spaces (ids never collide)
        self._live: dict[str, list[_Order]] = {}  # resting orders per symbol, placement order
        self._order_seq = 0
        self._algo_seq = 0
        self._trade_seq = 0
        self._step_seq = 0
        self._pending: list[AccountEvent] = []
        self._subscribers: list[EventSubscriber] = []
        self._listeners: list[StepListener] = []
        self._in_step = False
        self.trade_log: list[Fill] = []
        """Every execution (order fills, not funding), in order."""
        self.funding_log: list[Fill] = []
        """Every funding payment, as ``Fill(reason="funding")`` records."""

    # --- hooks ------------------------------------------------------------------------

    def subscribe(self, subscriber: EventSubscriber) -> Callable[[], None]:
        """Receive every account event, synchronously, in order. Returns an unsubscribe."""
        self._subscribers.append(subscriber)

        def unsubscribe() -> None:
            if subscriber in self._subscribers:
                self._subscribers.remove(subscriber)

        return unsubscribe

    def add_listener(self, listener: StepListener) -> Callable[[], None]:
        """Call ``listener(step)`` after every engine step (mark, funding, request).

        The listener may read the engine's state (``positions()``, ``stops_for()``, ...)
        but must not call request methods. Returns a function that removes the listener.
        """
        self._listeners.append(listener)

        def remove() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return remove

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
        if symbol not in self._instruments:
            raise ValueError(f"unknown symbol {symbol!r}")
        problem = price_problem(mark_price)
        if problem is not None:
            raise ValueError(f"{symbol}: mark_price {problem}")
        self.advance_to(ts)
        self._begin()
        self._marks[symbol] = mark_price
        self._match(symbol, mark_price)
        return self._end("mark", "set_mark", symbol)

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

    def leverage(self, symbol: str) -> int:
        return self._leverage.get(symbol, self.profile.default_leverage)

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

    def wallet(self) -> WalletState:
        used = sum((p.margin_usdt for p in self._positions.values()), ZERO)
        reserved = sum(
            (
                o.reserved_margin_usdt
                for orders in self._live.values()
                for o in orders
                if o.status.is_live
            ),
            ZERO,
        )
        upnl = ZERO
        neg = ZERO
        for p in self._positions.values():
            u = self._upnl(p)
            upnl += u
            if u < 0:
                neg += u
        available = self._wallet - used - reserved + neg
        return WalletState(
            wallet_usdt=self._wallet,
            available_usdt=max(available, ZERO),
            used_margin_usdt=used,
            reserved_margin_usdt=reserved,
            unrealized_pnl_usdt=upnl,
            realized_pnl_usdt=self._realized,
            fees_usdt=self._fees,
            funding_usdt=self._funding,
        )

    def balance(self) -> Balance:
        w = self.wallet()
        return Balance(wallet_usdt=w.wallet_usdt, available_usdt=w.available_usdt)

    # --- requests: the port's shapes ---------------------------------------------------

    def place_entry(
        self,
        request: EntryRequest,
        *,
        fill_ratio: Decimal | None = None,
        remainder: str = "next_mark",
    ) -> OrderState:
        """A market entry (opening order on ``request.position_side``).

        Args:
            request: the entry. ``stop_price`` only on attached-stop venues: it becomes the
                position-level stop atomically with the fill (Bybit ``stopLoss``,
                ``tpslMode=Full``); refused on other venues (``not_supported``).
            fill_ratio: test hook for partial fills: fraction (0..1] of ``qty`` filled now
                (floored to the step); None = all.
            remainder: what happens to the unfilled rest: ``"next_mark"`` fills it at the
                next mark of the symbol; ``"expire"`` ends the order EXPIRED (IOC-like).

        Returns:
            The order after the step (FILLED, or PARTIALLY_FILLED / EXPIRED).

        Raises:
            RejectedError subclasses: symbol, qty/notional, balance, duplicate id, would-
            trigger (attached stop on the wrong side of the mark), no mark price.
        """
        with self._request("place_entry", request.symbol):
            if request.stop_price is not None and not self.profile.capabilities.attached_stop:
                raise self.profile.error(
                    "not_supported",
                    "this venue has no stop attached to the entry; place the stop after the fill",
                )
            return self._submit(
                symbol=request.symbol,
                side=request.position_side.entry_side,
                position_side=request.position_side,
                order_type=OrderType.MARKET,
                qty=request.qty,
                client_order_id=request.client_order_id,
                attached_stop=request.stop_price,
                fill_ratio=fill_ratio,
                remainder=remainder,
            )

    def place_stop(self, request: StopRequest) -> StopState:
        """Place the protective stop of a position side.

        Position-level venues (Bybit) with ``qty`` None: set the position's ``stopLoss``
        (trading-stop, ``tpslMode=Full``) — replaces any previous one. Flat side →
        ``ZeroPosition`` (10001); trigger at/through the mark → ``WouldTriggerImmediately``
        (10001, "base_price" message). With ``qty``: a reduce-only conditional order.

        Algo venues (Binance): an algo ``STOP_MARKET`` on the exit side, mark-price
        triggered, ``closePosition=true`` when ``qty`` is None, else with that quantity.
        Trigger at/through the mark → -2021; duplicate ``clientAlgoId`` among open algo
        orders → -4116.
        """
        with self._request("place_stop", request.symbol):
            inst = self._instrument(request.symbol)
            self._check_tick(inst, request.trigger_price)
            ps = request.position_side
            mark = self._require_mark(request.symbol)
            pos = self._positions.get((request.symbol, ps))
            flat = pos is None or pos.qty == 0
            if self.profile.position_level_stop and request.qty is None:
                if flat:
                    raise self.profile.error("zero_position_stop")
                assert pos is not None
                if self._through(ps, request.trigger_price, mark):
                    raise self.profile.error(
                        "would_trigger_position_stop",
                        f"stop {request.trigger_price} vs base_price {mark}",
                    )
                pos.stop_price = request.trigger_price
                self._emit_position(pos)
                return StopState(
                    symbol=request.symbol, position_side=ps, trigger_price=request.trigger_price
                )
            if flat and self.profile.stop_requires_position:
                raise self.profile.error("zero_position_stop")
            if request.qty is not None:
                self._check_qty(inst, request.qty)
            o = self._submit(
                symbol=request.symbol,
                side=ps.exit_side,
                position_side=ps,
                order_type=OrderType.STOP_MARKET,
                qty=request.qty,
                client_order_id=request.client_order_id,
                trigger_price=request.trigger_price,
                trigger_direction=(
                    TriggerDirection.FALL if ps is PositionSide.LONG else TriggerDirection.RISE
                ),
                reduce_only=request.qty is not None,
                close_position=request.qty is None,
                algo=self.profile.conditional_orders_are_algo,
            )
            return StopState(
                symbol=o.symbol,
                position_side=ps,
                trigger_price=request.trigger_price,
                client_order_id=o.client_order_id,
                venue_order_id=o.venue_order_id,
                qty=request.qty,
            )

    def amend_stop(self, current: StopState, new_trigger_price: Decimal) -> StopState:
        """Move a stop in place (amend-capable venues only).

        Position-level stop (``current.venue_order_id == ""``): trading-stop semantics —
        flat side → ``ZeroPosition``; the same price → success without change (Bybit 34040
        "not modified"); through the mark → ``WouldTriggerImmediately``. An order stop is
        amended by venue id (Bybit order/amend ``triggerPrice``).

        Raises:
            RejectedError (``not_supported``, Binance -4120-like) on venues without amend.
        """
        with self._request("amend_stop", current.symbol):
            if not self.profile.capabilities.amend_stop:
                raise self.profile.error("not_supported", "stops are cancel-and-replace here")
            inst = self._instrument(current.symbol)
            self._check_tick(inst, new_trigger_price)
            ps = current.position_side
            mark = self._require_mark(current.symbol)
            if not current.venue_order_id:
                pos = self._positions.get((current.symbol, ps))
                if pos is None or pos.qty == 0:
                    raise self.profile.error("zero_position_stop")
                if pos.stop_price == new_trigger_price:
                    return attrs.evolve(current, trigger_price=new_trigger_price)  # 34040
                if self._through(ps, new_trigger_price, mark):
                    raise self.profile.error(
                        "would_trigger_position_stop",
                        f"stop {new_trigger_price} vs base_price {mark}",
                    )
                pos.stop_price = new_trigger_price
                self._emit_position(pos)
                return attrs.evolve(current, trigger_price=new_trigger_price)
            o = self._orders_by_vid.get(current.venue_order_id)
            if o is None or o.symbol != current.symbol or o.status is not OrderStatus.NEW:
                raise self.profile.error("unknown_order", current.venue_order_id)
            if o.trigger_price == new_trigger_price:
                return self._stop_state(o)
            assert o.trigger_direction is not None
            if self._triggered(o.trigger_direction, new_trigger_price, mark):
                raise self.profile.error(
                    "would_trigger_conditional", f"trigger {new_trigger_price} vs mark {mark}"
                )
            o.trigger_price = new_trigger_price
            o.updated_at = self._now
            self._pending.append(OrderUpdate(order=o.state(), ts=self._now))
            return self._stop_state(o)

    def cancel_stop(self, stop: StopState) -> None:
        """Cancel a stop.

        Position-level stop: clears ``stopLoss`` (trading-stop ``stopLoss="0"``); no stop
        on a non-flat side is success (34040); a flat side raises ``UnknownOrder`` (code
        10001 "zero position": the stop is gone). Order stops: by client id (algo:
        ``clientAlgoId``), else by venue id; not live → ``UnknownOrder`` (110001 / -2011).
        """
        with self._request("cancel_stop", stop.symbol):
            self._instrument(stop.symbol)
            if not stop.venue_order_id and not stop.client_order_id:
                pos = self._positions.get((stop.symbol, stop.position_side))
                if pos is None or pos.qty == 0:
                    spec = self.profile.errors["zero_position_stop"]
                    raise UnknownOrder(
                        f"[{spec.code}] {spec.message}", code=spec.code, venue_message=spec.message
                    )
                if pos.stop_price is not None:
                    pos.stop_price = None
                    self._emit_position(pos)
                return
            o = None
            if stop.client_order_id:
                space = (
                    self._algo_by_cid
                    if self.profile.conditional_orders_are_algo
                    else self._orders_by_cid
                )
                o = space.get(stop.client_order_id)
            if o is None and stop.venue_order_id:
                o = self._orders_by_vid.get(stop.venue_order_id)
            if o is None or o.symbol != stop.symbol or not o.status.is_live:
                raise self.profile.error(
                    "unknown_order", stop.client_order_id or stop.venue_order_id
                )
            self._cancel(o)

    def place_reduce(self, request: ReduceRequest) -> OrderState:
        """A reduce-only order on the exit side: market (``price`` None) or limit.

        Flat side → ``ReduceOnlyRejected`` (110017 / -2022); qty above the position →
        trimmed (Bybit) or ``ReduceOnlyRejected`` (-2022). Exempt from min notional.
        """
        with self._request("place_reduce", request.symbol):
            ps = request.position_side
            return self._submit(
                symbol=request.symbol,
                side=ps.exit_side,
                position_side=ps,
                order_type=OrderType.MARKET if request.price is None else OrderType.LIMIT,
                qty=request.qty,
                client_order_id=request.client_order_id,
                price=request.price,
                reduce_only=True,
            )

    def cancel_order(
        self, symbol: str, client_order_id: str = "", venue_order_id: str = ""
    ) -> OrderState:
        """Cancel a live regular order by client id (or venue id).

        Raises:
            UnknownOrder (110001 / -2011): not found or no longer live (also for algo
            orders, which the regular endpoint does not see on Binance).
        """
        with self._request("cancel_order", symbol):
            o = self._orders_by_cid.get(client_order_id) if client_order_id else None
            if o is None and venue_order_id:
                o = self._orders_by_vid.get(venue_order_id)
                if o is not None and o.is_algo:
                    o = None
            if o is None or o.symbol != symbol or not o.status.is_live:
                raise self.profile.error("unknown_order", client_order_id or venue_order_id)
            self._cancel(o)
            return o.state()

    def amend_order(
        self,
        symbol: str,
        client_order_id: str = "",
        venue_order_id: str = "",
        *,
        qty: Decimal | None = None,
        price: Decimal | None = None,
        trigger_price: Decimal | None = None,
    ) -> OrderState:
        """Amend a live *regular* order in place (Bybit ``/v5/order/amend``; Binance
        ``PUT /fapi/v1/order`` is LIMIT-only — on algo venues conditional orders refuse with
        ``not_supported``). Unchanged fields keep their value; a new qty must stay above the
        filled qty. A limit moved through the mark fills at once (taker, at the mark).

        Raises:
            UnknownOrder: not found / not live. OrderValidationError: tick/step.
            WouldTriggerImmediately: a trigger moved through the mark.
        """
        with self._request("amend_order", symbol):
            o = self._orders_by_cid.get(client_order_id) if client_order_id else None
            if o is None and venue_order_id:
                o = self._orders_by_vid.get(venue_order_id)
            if o is None or o.symbol != symbol or not o.status.is_live or o.is_algo:
                raise self.profile.error("unknown_order", client_order_id or venue_order_id)
            if o.remainder_pending or o.order_type is OrderType.MARKET:
                raise self.profile.error("unknown_order", "market orders cannot be amended")
            if o.trigger_price is not None and not self.profile.capabilities.amend_stop:
                raise self.profile.error("not_supported", "conditional orders cannot be amended")
            inst = self._instrument(symbol)
            mark = self._require_mark(symbol)
            if qty is not None:
                self._check_qty(inst, qty)
                if qty <= o.filled_qty:
                    raise self.profile.error("qty_invalid", "qty must exceed the filled qty")
            if price is not None:
                if o.order_type is not OrderType.LIMIT:
                    raise self.profile.error("price_invalid", "only limit orders have a price")
                self._check_tick(inst, price)
            if trigger_price is not None:
                if o.trigger_price is None or o.trigger_direction is None:
                    raise self.profile.error("price_invalid", "not a conditional order")
                self._check_tick(inst, trigger_price)
                if self._triggered(o.trigger_direction, trigger_price, mark):
                    raise self.profile.error(
                        "would_trigger_conditional", f"trigger {trigger_price} vs mark {mark}"
                    )
            if qty is not None:
                o.qty = qty
            if price is not None:
                o.price = price
            if trigger_price is not None:
                o.trigger_price = trigger_price
            opening = o.side is o.position_side.entry_side
            if o.order_type is OrderType.LIMIT and opening and o.price is not None:
                o.reserved_margin_usdt = o.remaining_qty * o.price / self.leverage(symbol)
            o.updated_at = self._now
            self._pending.append(OrderUpdate(order=o.state(), ts=self._now))
            if o.order_type is OrderType.LIMIT and o.price is not None:
                marketable = (o.side is Side.BUY and mark <= o.price) or (
                    o.side is Side.SELL and mark >= o.price
                )
                if marketable:
                    px = self._market_price(inst, o.side, mark)
                    px = min(px, o.price) if o.side is Side.BUY else max(px, o.price)
                    self._fill_resting_limit(o, px, False)
            return o.state()

    def cancel_all(self, symbol: str, *, algo: bool | None = None) -> list[OrderState]:
        """Cancel every live order of ``symbol`` (``algo`` None = both spaces, True = algo
        only, False = regular only). Returns the cancelled orders; none is not an error."""
        with self._request("cancel_all", symbol):
            self._instrument(symbol)
            out = []
            for o in list(self._live.get(symbol, ())):
                if o.status.is_live and (algo is None or o.is_algo is algo):
                    self._cancel(o)
                    out.append(o.state())
            return out

    def orders(self, symbol: str | None = None, *, algo: bool | None = None) -> list[OrderState]:
        """Every order ever accepted (any status), in placement order (order history)."""
        out = [
            o
            for o in self._orders_by_vid.values()
            if (symbol is None or o.symbol == symbol) and (algo is None or o.is_algo is algo)
        ]
        out.sort(key=lambda o: o.seq)
        return [o.state() for o in out]

    def cancel_algo_order(
        self, symbol: str, client_algo_id: str = "", algo_id: str = ""
    ) -> OrderState:
        """Cancel a live algo (conditional) order by ``clientAlgoId`` or ``algoId``."""
        with self._request("cancel_algo_order", symbol):
            o = self._algo_by_cid.get(client_algo_id) if client_algo_id else None
            if o is None and algo_id:
                o = self._orders_by_vid.get(algo_id)
                if o is not None and not o.is_algo:
                    o = None
            if o is None or o.symbol != symbol or not o.status.is_live:
                raise self.profile.error("unknown_order", client_algo_id or algo_id)
            self._cancel(o)
            return o.state()

    def set_trading_stop(
        self, symbol: str, position_side: PositionSide, stop_price: Decimal
    ) -> None:
        """Bybit ``/v5/position/trading-stop`` (``tpslMode=Full``): ``stop_price`` 0 cancels.

        Same semantics as :meth:`place_stop` / :meth:`cancel_stop` for position-level
        stops (10001 zero position / wrong side; same value is success).
        """
        if stop_price == 0:
            self.cancel_stop(
                StopState(symbol=symbol, position_side=position_side, trigger_price=ZERO)
            )
            return
        if not self.profile.position_level_stop:
            with self._request("set_trading_stop", symbol):
                raise self.profile.error("not_supported", "no position-level stops")
        pos = self._positions.get((symbol, position_side))
        if pos is not None and pos.stop_price == stop_price and pos.qty > 0:
            with self._request("set_trading_stop", symbol):
                return  # 34040 not modified: success
        self.place_stop(
            StopRequest(
                symbol=symbol,
                position_side=position_side,
                trigger_price=stop_price,
                client_order_id="",
            )
        )

    def submit_order(
        self,
        *,
        symbol: str,
        side: Side,
        position_side: PositionSide,
        order_type: OrderType,
        qty: Decimal | None,
        client_order_id: str,
        price: Decimal | None = None,
        trigger_price: Decimal | None = None,
        trigger_direction: TriggerDirection | None = None,
        reduce_only: bool = False,
        close_position: bool = False,
        algo: bool = False,
        attached_stop: Decimal | None = None,
    ) -> OrderState:
        """The general order entry point (for the wire-protocol sandboxes).

        ``side`` must be the entry side of ``position_side`` (opening) or its exit side
        (closing; hedge mode). An exit-side order is treated as reduce-only (hedge mode
        never flips a side). Conditional orders need ``trigger_price`` and
        ``trigger_direction``; on algo venues they must be placed with ``algo=True``
        (else ``conditional_on_regular_endpoint``, Binance -4120).
        """
        with self._request("submit_order", symbol):
            if side is not position_side.entry_side:
                reduce_only = reduce_only or not close_position
            return self._submit(
                symbol=symbol,
                side=side,
                position_side=position_side,
                order_type=order_type,
                qty=qty,
                client_order_id=client_order_id,
                price=price,
                trigger_price=trigger_price,
                trigger_direction=trigger_direction,
                reduce_only=reduce_only,
                close_position=close_position,
                algo=algo,
                attached_stop=attached_stop,
            )

    # --- internals: steps ---------------------------------------------------------------

    def _begin(self) -> None:
        if self._in_step:
            raise RuntimeError("re-entrant engine call (from a listener or subscriber?)")
        self._in_step = True
        self._pending = []

    def _end(
        self, kind: str, name: str, symbol: str | None, error: VenueError | None = None
    ) -> tuple[AccountEvent, ...]:
        events = tuple(self._pending)
        self._pending = []
        self._step_seq += 1
        step = EngineStep(
            seq=self._step_seq,
            kind=kind,
            name=name,
            symbol=symbol,
            ts=self._now,
            events=events,
            error=error,
        )
        try:
            for ev in events:
                for sub in list(self._subscribers):
                    sub(ev)
            for listener in list(self._listeners):
                listener(step)
        finally:
            self._in_step = False
        return events

    def _request(self, name: str, symbol: str | None) -> _RequestStep:
        return _RequestStep(self, name, symbol)

    # --- internals: validation ----------------------------------------------------------

    def _instrument(self, symbol: str) -> Instrument:
        inst = self._instruments.get(symbol)
        if inst is None:
            raise self.profile.error("unknown_symbol", symbol)
        return inst

    def _require_mark(self, symbol: str) -> Decimal:
        mark = self._marks.get(symbol)
        if mark is None:
            raise self.profile.error("no_mark_price", symbol)
        return mark

    def _check_tick(self, inst: Instrument, price: Decimal) -> None:
        if (
            price <= 0
            or price < inst.price_floor
            or quantize_to_step(price, inst.tick_size, Rounding.DOWN) != price
        ):
            raise self.profile.error("price_invalid", f"{price} tick {inst.tick_size}")

    def _check_qty(self, inst: Instrument, qty: Decimal) -> None:
        if qty <= 0 or qty < inst.min_qty:
            raise self.profile.error("qty_invalid", f"{qty} < min qty {inst.min_qty}")
        if quantize_to_step(qty, inst.qty_step, Rounding.DOWN) != qty:
            raise self.profile.error("qty_invalid", f"{qty} not on step {inst.qty_step}")
        if inst.max_qty is not None and qty > inst.max_qty:
            raise self.profile.error("qty_invalid", f"{qty} > max qty {inst.max_qty}")

    @staticmethod
    def _through(ps: PositionSide, trigger: Decimal, mark: Decimal) -> bool:
        """A protective stop of side ``ps`` at ``trigger`` is at/through ``mark``."""
        return trigger >= mark if ps is PositionSide.LONG else trigger <= mark

    @staticmethod
    def _triggered(direction: TriggerDirection, trigger: Decimal, mark: Decimal) -> bool:
        return mark >= trigger if direction is TriggerDirection.RISE else mark <= trigger

    def _market_price(self, inst: Instrument, side: Side, mark: Decimal) -> Decimal:
        bps = self.profile.market_slippage_bps
        if bps == 0:
            return mark
        if side is Side.BUY:
            return quantize_to_step(mark * (1 + bps / _BPS), inst.tick_size, Rounding.UP)
        return inst.round_price(mark * (1 - bps / _BPS), Rounding.DOWN)

    # --- internals: order entry ---------------------------------------------------------

    def _submit(
        self,
        *,
        symbol: str,
        side: Side,
        position_side: PositionSide,
        order_type: OrderType,
        qty: Decimal | None,
        client_order_id: str,
        price: Decimal | None = None,
        trigger_price: Decimal | None = None,
        trigger_direction: TriggerDirection | None = None,
        reduce_only: bool = False,
        close_position: bool = False,
        algo: bool = False,
        attached_stop: Decimal | None = None,
        fill_ratio: Decimal | None = None,
        remainder: str = "next_mark",
    ) -> OrderState:
        p = self.profile
        if fill_ratio is not None and not (ZERO < fill_ratio <= 1):
            raise ValueError("fill_ratio must be in (0, 1]")
        if remainder not in ("next_mark", "expire"):
            raise ValueError("remainder must be 'next_mark' or 'expire'")
        inst = self._instrument(symbol)
        opening = side is position_side.entry_side
        if opening and (reduce_only or close_position):
            raise p.error("reduce_only_exceeds", "reduce-only order on the entry side")
        if inst.status is InstrumentStatus.CLOSED:
            raise p.error("symbol_closed", symbol)
        if opening and inst.status is InstrumentStatus.REDUCE_ONLY:
            raise p.error("symbol_reduce_only", symbol)
        is_conditional = order_type is OrderType.STOP_MARKET
        if is_conditional:
            if trigger_price is None or trigger_direction is None:
                raise p.error(
                    "price_invalid", "conditional order needs trigger price and direction"
                )
            if p.conditional_orders_are_algo and not algo:
                raise p.error("conditional_on_regular_endpoint")
        elif algo:
            raise p.error("not_supported", "only conditional orders go to the algo service")
        if close_position and qty is not None:
            raise p.error("qty_invalid", "closePosition order takes no quantity")  # -4137-ish
        if not close_position and qty is None:
            raise p.error("qty_invalid", "quantity required")
        mark = self._require_mark(symbol)
        # Duplicate client id (checked before anything else that depends on state).
        if client_order_id:
            space = self._algo_by_cid if algo else self._orders_by_cid
            prev = space.get(client_order_id)
            if prev is not None and (prev.status.is_live or not p.client_id_unique_among_open_only):
                raise p.error("duplicate_client_id", client_order_id)
        if qty is not None:
            self._check_qty(inst, qty)
        if price is not None:
            self._check_tick(inst, price)
        if trigger_price is not None:
            self._check_tick(inst, trigger_price)
        pos = self._pos(symbol, position_side)
        if not opening and not close_position:
            assert qty is not None
            if pos.qty == 0 and not is_conditional:
                raise p.error("reduce_only_no_position", f"{symbol} {position_side.value}")
            if qty > pos.qty and not is_conditional:
                if p.reduce_only_trims:
                    qty = pos.qty
                else:
                    raise p.error("reduce_only_exceeds", f"qty {qty} > position {pos.qty}")
        if attached_stop is not None:
            if not opening:
                raise p.error("not_supported", "stopLoss is not allowed on reduce-only orders")
            self._check_tick(inst, attached_stop)
            if self._through(position_side, attached_stop, mark):
                raise p.error(
                    "would_trigger_position_stop", f"stopLoss {attached_stop} vs base_price {mark}"
                )
        if is_conditional:
            assert trigger_price is not None and trigger_direction is not None
            if self._triggered(trigger_direction, trigger_price, mark):
                raise p.error(
                    "would_trigger_conditional", f"trigger {trigger_price} vs mark {mark}"
                )
            n_cond = sum(1 for o in self._live.get(symbol, ()) if o.is_conditional)
            if n_cond >= p.capabilities.max_conditional_per_symbol:
                raise p.error("too_many_conditional", symbol)
        # Notional / margin for opening orders.
        exec_price = price if (order_type is OrderType.LIMIT and price is not None) else mark
        marketable_limit = (
            order_type is OrderType.LIMIT
            and price is not None
            and ((side is Side.BUY and mark <= price) or (side is Side.SELL and mark >= price))
        )
        if order_type is OrderType.MARKET or marketable_limit:
            exec_price = self._market_price(inst, side, mark)
            if marketable_limit and price is not None:  # never worse than the limit
                exec_price = min(exec_price, price) if side is Side.BUY else max(exec_price, price)
        reserve = ZERO
        if opening and qty is not None and not is_conditional:
            if qty * exec_price < inst.min_notional:
                raise p.error("min_notional", f"{qty * exec_price} < {inst.min_notional}")
            need = qty * exec_price / self.leverage(symbol) + qty * exec_price * p.taker_fee_rate
            if need > self.wallet().available_usdt:
                raise p.error(
                    "insufficient_balance",
                    f"need {need} USDT, available {self.wallet().available_usdt}",
                )
            if order_type is OrderType.LIMIT and not marketable_limit:
                reserve = qty * exec_price / self.leverage(symbol)
        # Accepted: create the order.
        o = self._new_order(
            symbol=symbol,
            cid=client_order_id,
            side=side,
            position_side=position_side,
            order_type=order_type,
            qty=qty if qty is not None else ZERO,
            price=price,
            trigger_price=trigger_price,
            trigger_direction=trigger_direction,
            reduce_only=reduce_only,
            close_position=close_position,
            algo=algo,
        )
        o.reserved_margin_usdt = reserve
        self._pending.append(OrderUpdate(order=o.state(), ts=self._now))
        if is_conditional or (order_type is OrderType.LIMIT and not marketable_limit):
            self._live.setdefault(symbol, []).append(o)
            return o.state()
        # Immediate (market or marketable limit) execution.
        fill_qty = o.qty
        if fill_ratio is not None:
            fill_qty = inst.floor_qty(o.qty * fill_ratio)
        if fill_qty > 0:
            self._execute(
                o, fill_qty, exec_price, is_maker=False, reason="", attached_stop=attached_stop
            )
        if o.filled_qty < o.qty:
            if remainder == "expire":
                o.status = OrderStatus.EXPIRED
                o.updated_at = self._now
                self._pending.append(OrderUpdate(order=o.state(), ts=self._now))
            else:
                o.remainder_pending = True
                o.attached_stop = attached_stop if o.filled_qty == 0 else None
                self._live.setdefault(symbol, []).append(o)
        return o.state()

    def _new_order(
        self,
        *,
        symbol: str,
        cid: str,
        side: Side,
        position_side: PositionSide,
        order_type: OrderType,
        qty: Decimal,
        price: Decimal | None,
        trigger_price: Decimal | None,
        trigger_direction: TriggerDirection | None,
        reduce_only: bool,
        close_position: bool,
        algo: bool,
    ) -> _Order:
        if algo:
            self._algo_seq += 1
            vid = str(5_000_000_000 + self._algo_seq)
        else:
            self._order_seq += 1
            vid = str(1_000_000_000 + self._order_seq)
        seq = self._order_seq + self._algo_seq
        o = _Order(
            seq=seq,
            symbol=symbol,
            client_order_id=cid,
            venue_order_id=vid,
            side=side,
            position_side=position_side,
            order_type=order_type,
            qty=qty,
            price=price,
            trigger_price=trigger_price,
            trigger_direction=trigger_direction,
            reduce_only=reduce_only,
            close_position=close_position,
            is_algo=algo,
            created_at=self._now,
            updated_at=self._now,
        )
        if cid:
            (self._algo_by_cid if algo else self._orders_by_cid)[cid] = o
        self._orders_by_vid[vid] = o
        return o

    def _pos(self, symbol: str, ps: PositionSide) -> _Position:
        pos = self._positions.get((symbol, ps))
        if pos is None:
            pos = _Position(symbol, ps)
            self._positions[(symbol, ps)] = pos
        return pos

    def _cancel(self, o: _Order) -> None:
        o.status = OrderStatus.CANCELED
        o.updated_at = self._now
        o.reserved_margin_usdt = ZERO
        o.remainder_pending = False
        self._remove_live(o)
        self._pending.append(OrderUpdate(order=o.state(), ts=self._now))

    def _remove_live(self, o: _Order) -> None:
        lst = self._live.get(o.symbol)
        if lst is not None and o in lst:
            lst.remove(o)

    # --- internals: execution -----------------------------------------------------------

    def _execute(
        self,
        o: _Order,
        qty: Decimal,
        price: Decimal,
        *,
        is_maker: bool,
        reason: str,
        attached_stop: Decimal | None = None,
        trigger_price: Decimal | None = None,
    ) -> None:
        """Fill ``qty`` of ``o`` at ``price`` and emit Fill, OrderUpdate, PositionUpdate
        (``trigger_price``: the stop's trigger, on a stop's fill)."""
        p = self.profile
        pos = self._pos(o.symbol, o.position_side)
        opening = o.side is o.position_side.entry_side
        notional = qty * price
        fee = _fee(notional * (p.maker_fee_rate if is_maker else p.taker_fee_rate))
        pnl = ZERO
        if opening:
            new_qty = pos.qty + qty
            pos.entry_price = _avg_price((pos.qty * pos.entry_price + notional) / new_qty)
            pos.qty = new_qty
            pos.margin_usdt += _usdt(notional / self.leverage(o.symbol))
            if attached_stop is not None:
                pos.stop_price = attached_stop
            pos.liq_price = self._liq_price(pos)
        else:
            assert qty <= pos.qty, "reduce beyond position"
            pnl = _usdt((price - pos.entry_price) * qty * o.position_side.sign)
            pos.margin_usdt -= _usdt(pos.margin_usdt * qty / pos.qty)
            pos.qty -= qty
            if pos.qty == 0:
                pos.entry_price = ZERO
                pos.margin_usdt = ZERO
                pos.stop_price = None
                pos.liq_price = None
        self._wallet += pnl - fee
        self._realized += pnl
        self._fees += fee
        o.filled_qty += qty
        o.filled_notional += notional
        o.updated_at = self._now
        if o.close_position or o.filled_qty >= o.qty:
            o.status = OrderStatus.FILLED
            o.remainder_pending = False
            o.reserved_margin_usdt = ZERO
            self._remove_live(o)
        else:
            o.status = OrderStatus.PARTIALLY_FILLED
        self._trade_seq += 1
        fill = Fill(
            symbol=o.symbol,
            client_order_id=o.client_order_id,
            venue_order_id=o.venue_order_id,
            trade_id=f"T{self._trade_seq:010d}",
            side=o.side,
            position_side=o.position_side,
            qty=qty,
            price=price,
            fee_usdt=fee,
            is_maker=is_maker,
            ts=self._now,
            realized_pnl_usdt=pnl,
            reason=reason,
            trigger_price=trigger_price,
        )
        self.trade_log.append(fill)
        self._pending.append(fill)
        self._pending.append(OrderUpdate(order=o.state(), ts=self._now))
        self._emit_position(pos)
        if pos.qty == 0 and p.cancel_reduce_only_on_flat:
            for other in list(self._live.get(o.symbol, ())):
                if (
                    other is not o
                    and other.position_side is o.position_side
                    and other.status.is_live
                    and (other.reduce_only or other.close_position)
                ):
                    self._cancel(other)

    def _emit_position(self, pos: _Position) -> None:
        self._pending.append(PositionUpdate(position=self._position_state(pos), ts=self._now))

    def _match(self, symbol: str, mark: Decimal) -> None:
        live = self._live.get(symbol, [])
        if not live:
            # Fast path (most marks): no order of this symbol and no open side means no
            # step below can act (each needs a live order or a non-flat position).
            positions = self._positions
            long_pos = positions.get((symbol, PositionSide.LONG))
            short_pos = positions.get((symbol, PositionSide.SHORT))
            if (long_pos is None or long_pos.qty == 0) and (
                short_pos is None or short_pos.qty == 0
            ):
                return
        inst = self._instruments[symbol]
        # 1. remainders of partially filled market orders.
        for o in [o for o in live if o.remainder_pending]:
            if o.status.is_live:
                stop, o.attached_stop = o.attached_stop, None
                self._execute(
                    o,
                    o.remaining_qty,
                    self._market_price(inst, o.side, mark),
                    is_maker=False,
                    reason="",
                    attached_stop=stop,
                )
        # 2. position-level stops.
        for ps in (PositionSide.LONG, PositionSide.SHORT):
            pos = self._positions.get((symbol, ps))
            if pos is None or pos.qty == 0 or pos.stop_price is None:
                continue
            if self._through(ps, pos.stop_price, mark):
                self._trigger_position_stop(inst, pos, mark)
        # 3. conditional orders, 4. limit orders (each in placement order), 5. liquidation.
        conds = [o for o in live if o.is_conditional]
        limits = [o for o in live if o.order_type is OrderType.LIMIT and o.status.is_live]
        for o in conds:
            if o.status is not OrderStatus.NEW:
                continue  # cancelled by an earlier fill in this step
            assert o.trigger_price is not None and o.trigger_direction is not None
            if self._triggered(o.trigger_direction, o.trigger_price, mark):
                self._trigger_conditional(inst, o, mark)
        for o in limits:
            if not o.status.is_live:
                continue
            assert o.price is not None
            crossed = mark <= o.price if o.side is Side.BUY else mark >= o.price
            if not crossed:
                continue
            self._fill_resting_limit(o, o.price, True)
        if self.profile.liquidation:
            for ps in (PositionSide.LONG, PositionSide.SHORT):
                pos = self._positions.get((symbol, ps))
                if pos is None or pos.qty == 0:
                    continue
                liq = pos.liq_price
                if liq is not None and (mark <= liq if ps is PositionSide.LONG else mark >= liq):
                    self._liquidate(inst, pos, mark)

    def _fill_resting_limit(self, o: _Order, price: Decimal, is_maker: bool) -> None:
        qty = o.remaining_qty
        if o.reduce_only:
            held = self._pos(o.symbol, o.position_side).qty
            if held == 0:
                self._expire(o)
                return
            qty = min(qty, held)
        o.reserved_margin_usdt = ZERO
        self._execute(o, qty, price, is_maker=is_maker, reason="")
        if o.status.is_live and o.reduce_only:
            self._expire(o)  # trimmed: the rest cannot reduce anything

    def _expire(self, o: _Order) -> None:
        o.status = OrderStatus.EXPIRED
        o.updated_at = self._now
        o.reserved_margin_usdt = ZERO
        o.remainder_pending = False
        self._remove_live(o)
        self._pending.append(OrderUpdate(order=o.state(), ts=self._now))

    def _trigger_position_stop(self, inst: Instrument, pos: _Position, mark: Decimal) -> None:
        """Bybit position-level stop hit: a market reduce order for the whole side
        (``stopOrderType=StopLoss``, no orderLinkId), filled at the mark (gap-aware)."""
        ps = pos.position_side
        trigger = pos.stop_price
        o = self._new_order(
            symbol=pos.symbol,
            cid="",
            side=ps.exit_side,
            position_side=ps,
            order_type=OrderType.MARKET,
            qty=pos.qty,
            price=None,
            trigger_price=trigger,
            trigger_direction=(
                TriggerDirection.FALL if ps is PositionSide.LONG else TriggerDirection.RISE
            ),
            reduce_only=True,
            close_position=True,
            algo=False,
        )
        o.status = OrderStatus.TRIGGERED
        self._pending.append(OrderUpdate(order=o.state(), ts=self._now))
        self._execute(
            o,
            pos.qty,
            self._market_price(inst, ps.exit_side, mark),
            is_maker=False,
            reason="stop",
            trigger_price=trigger,
        )

    def _trigger_conditional(self, inst: Instrument, o: _Order, mark: Decimal) -> None:
        o.status = OrderStatus.TRIGGERED
        o.updated_at = self._now
        self._pending.append(OrderUpdate(order=o.state(), ts=self._now))
        pos = self._pos(o.symbol, o.position_side)
        opening = o.side is o.position_side.entry_side
        price = self._market_price(inst, o.side, mark)
        if opening:
            need = (
                o.qty * price / self.leverage(o.symbol)
                + o.qty * price * self.profile.taker_fee_rate
            )
            if need > self.wallet().available_usdt:
                o.status = OrderStatus.REJECTED
                self._remove_live(o)
                self._pending.append(OrderUpdate(order=o.state(), ts=self._now))
                return
            self._execute(o, o.qty, price, is_maker=False, reason="")
            return
        qty = pos.qty if o.close_position else min(o.remaining_qty, pos.qty)
        if qty == 0:
            self._expire(o)
            return
        self._execute(o, qty, price, is_maker=False, reason="stop", trigger_price=o.trigger_price)
        if o.status.is_live or o.status is OrderStatus.TRIGGERED:
            self._expire(o)

    # --- internals: views ---------------------------------------------------------------

    def _upnl(self, pos: _Position) -> Decimal:
        if pos.qty == 0:
            return ZERO
        mark = self._marks.get(pos.symbol)
        if mark is None:
            return ZERO
        return (mark - pos.entry_price) * pos.qty * pos.position_side.sign

    def _position_state(self, pos: _Position) -> PositionState:
        mark = self._marks.get(pos.symbol)
        return PositionState(
            symbol=pos.symbol,
            position_side=pos.position_side,
            qty=pos.qty,
            entry_price=pos.entry_price,
            mark_price=mark,
            unrealized_pnl_usdt=self._upnl(pos) if mark is not None else None,
            stop_price=pos.stop_price if pos.qty > 0 else None,
            liq_price=pos.liq_price if pos.qty > 0 else None,
        )

    def _liq_price(self, pos: _Position) -> Decimal | None:
        """Isolated-margin approximation: long ``entry * (1 - 1/leverage + mmr)``, short
        ``entry * (1 + 1/leverage - mmr)``; None when flat or liquidation is off."""
        if pos.qty == 0 or not self.profile.liquidation:
            return None
        k = Decimal(1) / self.leverage(pos.symbol) - self.profile.maintenance_margin_rate
        raw = pos.entry_price * (1 - k if pos.position_side is PositionSide.LONG else 1 + k)
        inst = self._instruments[pos.symbol]
        # rounded toward the mark side (liquidation happens no later than this price)
        rounding = Rounding.UP if pos.position_side is PositionSide.LONG else Rounding.DOWN
        return inst.round_price(raw, rounding)

    def _liquidate(self, inst: Instrument, pos: _Position, mark: Decimal) -> None:
        ps = pos.position_side
        o = self._new_order(
            symbol=pos.symbol,
            cid="",
            side=ps.exit_side,
            position_side=ps,
            order_type=OrderType.MARKET,
            qty=pos.qty,
            price=None,
            trigger_price=None,
            trigger_direction=None,
            reduce_only=True,
            close_position=True,
            algo=False,
        )
        self._pending.append(OrderUpdate(order=o.state(), ts=self._now))
        self._execute(o, pos.qty, mark, is_maker=False, reason="liquidation")

    @staticmethod
    def _stop_state(o: _Order) -> StopState:
        assert o.trigger_price is not None
        return StopState(
            symbol=o.symbol,
            position_side=o.position_side,
            trigger_price=o.trigger_price,
            client_order_id=o.client_order_id,
            venue_order_id=o.venue_order_id,
            qty=None if o.close_position else o.qty,
        )


class _RequestStep:
    """Context manager wrapping one request as one engine step: events and listeners run
    at exit; a refusal is recorded in the step and re-raised."""

    def __init__(self, engine: PaperEngine, name: str, symbol: str | None) -> None:
        self._engine = engine
        self._name = name
        self._symbol = symbol

    def __enter__(self) -> None:
        self._engine._begin()

    def __exit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        err = exc if isinstance(exc, VenueError) else None
        if exc is not None and not isinstance(exc, RejectedError | VenueError):
            # A programming error: drop partial events, surface the exception.
            self._engine._pending = []
        self._engine._end("request", self._name, self._symbol, err)
