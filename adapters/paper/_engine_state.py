"""The paper engine's state and book-keeping: the account's books (wallet, positions,
orders by id, resting orders), subscribers and step listeners, one engine step
(:class:`_RequestStep`), request validation (symbol, tick, quantity, marks), margin
(wallet, leverage, liquidation price) and the views the port returns."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from decimal import Decimal

from tradebot.domain import (
    Instrument,
    OrderStatus,
    OrderType,
    PositionSide,
    Side,
)
from tradebot.errors import RejectedError, VenueError
from tradebot.money import ZERO, Rounding, quantize_to_step
from tradebot.ports import (
    AccountEvent,
    Fill,
    OrderUpdate,
    PositionState,
    PositionUpdate,
    StopState,
)

from ._engine_model import (
    _BPS,
    EPOCH,
    EngineStep,
    EventSubscriber,
    QuietMarkListener,
    StepListener,
    TriggerDirection,
    WalletState,
    _Order,
    _Position,
    ignore_quiet_mark,
)
from ._profile import VenueProfile

__all__ = ["_EngineState"]


class _EngineState:
    """The engine's books and the helpers every part of the engine uses (see
    :class:`adapters.paper._engine.PaperEngine` for the constructor's arguments)."""

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
        # per listener (same order): its quiet-mark form, None = it wants every EngineStep
        self._quiet_forms: list[QuietMarkListener | None] = []
        self._all_quiet = True  # every listener has a quiet-mark form (or there is none)
        self._quiet_calls: tuple[QuietMarkListener, ...] = ()  # those that do something
        # the position sides of each symbol, created on first use (the mark fast path)
        self._sides_of: dict[str, list[_Position]] = {}
        # per symbol, after a mark that triggered nothing: the open interval of marks in
        # which nothing can trigger (dropped by any step that changed the symbol)
        self._bands: dict[str, tuple[Decimal, Decimal]] = {}
        self._in_step = False
        self.trade_log: list[Fill] = []
        """Every execution (order fills, not funding), in order."""
        self.funding_log: list[Fill] = []
        """Every funding payment, as ``Fill(reason="funding")`` records."""

    def subscribe(self, subscriber: EventSubscriber) -> Callable[[], None]:
        """Receive every account event, synchronously, in order. Returns an unsubscribe."""
        self._subscribers.append(subscriber)

        def unsubscribe() -> None:
            if subscriber in self._subscribers:
                self._subscribers.remove(subscriber)

        return unsubscribe

    def add_listener(
        self, listener: StepListener, *, on_quiet_mark: QuietMarkListener | None = None
    ) -> Callable[[], None]:
        """Call ``listener(step)`` after every engine step (mark, funding, request).

        The listener may read the engine's state (``positions()``, ``stops_for()``, ...)
        but must not call request methods. Returns a function that removes the listener.

        ``on_quiet_mark``: optional; for a mark step that produced no account event (most
        steps of a replay) ``on_quiet_mark(symbol, mark_price, ts)`` is called instead of
        ``listener(step)``, with the same step's symbol, mark (USDT) and engine time. When
        every listener has one, such a step builds no :class:`EngineStep` at all (the
        replay's hot path, issue 15 item 5); its ``seq`` is still counted.
        """
        self._listeners.append(listener)
        self._quiet_forms.append(on_quiet_mark)
        self._quiet_changed()

        def remove() -> None:
            for i, known in enumerate(self._listeners):
                if known is listener:
                    del self._listeners[i]
                    del self._quiet_forms[i]
                    break
            self._quiet_changed()

        return remove

    def _quiet_changed(self) -> None:
        forms = self._quiet_forms
        self._all_quiet = all(q is not None for q in forms)
        self._quiet_calls = tuple(q for q in forms if q is not None and q is not ignore_quiet_mark)

    def leverage(self, symbol: str) -> int:
        return self._leverage.get(symbol, self.profile.default_leverage)

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
        if events or kind != "mark":
            if symbol is None:
                self._bands.clear()
            else:
                self._bands.pop(symbol, None)
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
            if kind == "mark" and not events and symbol is not None:
                # some listener wants the EngineStep: the others still get the quiet form
                mark = self._marks[symbol]
                for listener, quiet in tuple(zip(self._listeners, self._quiet_forms, strict=True)):
                    if quiet is None:
                        listener(step)
                    else:
                        quiet(symbol, mark, step.ts)
            else:
                for listener in list(self._listeners):
                    listener(step)
        finally:
            self._in_step = False
        return events

    def _request(self, name: str, symbol: str | None) -> _RequestStep:
        return _RequestStep(self, name, symbol)

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
            sides = self._sides_of.setdefault(symbol, [])
            sides.append(pos)
            sides.sort(key=lambda p: p.position_side is not PositionSide.LONG)  # LONG first
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

    def _emit_position(self, pos: _Position) -> None:
        self._pending.append(PositionUpdate(position=self._position_state(pos), ts=self._now))

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

    def __init__(self, engine: _EngineState, name: str, symbol: str | None) -> None:
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
