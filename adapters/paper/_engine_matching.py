"""The paper engine's execution: a fill's effect on position, margin, fees and wallet,
and one mark step's matching in its fixed order (market remainders, position-level stops,
conditional orders, resting limits, liquidation; see :mod:`adapters.paper._engine`)."""

from __future__ import annotations

from decimal import Decimal

from tradebot.domain import (
    Instrument,
    OrderStatus,
    OrderType,
    PositionSide,
    Side,
)
from tradebot.money import ZERO
from tradebot.ports import (
    Fill,
    OrderUpdate,
)

from ._engine_model import (
    TriggerDirection,
    _avg_price,
    _fee,
    _Order,
    _Position,
    _usdt,
)
from ._engine_state import _EngineState

_NEG_INF = Decimal("-Infinity")
_POS_INF = Decimal("Infinity")

__all__ = ["_EngineMatching"]


class _EngineMatching(_EngineState):
    """Fills and mark-step matching."""

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

    def _match(self, symbol: str, mark: Decimal) -> None:
        live = self._live.get(symbol, [])
        if not live:
            # Fast path (most marks): no order of this symbol and no open side means no
            # step below can act (each needs a live order or a non-flat position).
            for side_pos in self._sides_of.get(symbol, ()):
                if side_pos.qty:
                    break
            else:
                return
        band = self._bands.get(symbol)
        if band is not None and band[0] < mark < band[1]:
            return  # nothing of this symbol triggers strictly inside its band
        self._match_all(symbol, mark, live)
        if not self._pending:
            band = self._band_of(symbol, live)
            if band is not None:
                self._bands[symbol] = band

    def _band_of(self, symbol: str, live: list[_Order]) -> tuple[Decimal, Decimal] | None:
        """The open interval of marks for which :meth:`_match_all` of ``symbol`` does
        nothing, from its live orders and open sides (None: not known, match every mark).

        Each trigger fires at or through its price: a falling one (long stop, buy limit,
        long liquidation, FALL conditional) for marks <= its price, a rising one for
        marks >= its price, so strictly between the highest falling and the lowest rising
        price nothing fires.
        """
        lo, hi = _NEG_INF, _POS_INF
        for o in live:
            if o.remainder_pending:
                return None
            if o.is_conditional:
                if o.status is not OrderStatus.NEW or o.trigger_price is None:
                    return None
                if o.trigger_direction is TriggerDirection.RISE:
                    hi = min(hi, o.trigger_price)
                else:
                    lo = max(lo, o.trigger_price)
            elif o.order_type is OrderType.LIMIT and o.status.is_live and o.price is not None:
                if o.side is Side.BUY:
                    lo = max(lo, o.price)
                else:
                    hi = min(hi, o.price)
            else:
                return None
        liquidation = self.profile.liquidation
        for pos in self._sides_of.get(symbol, ()):
            if pos.qty == 0:
                continue
            long = pos.position_side is PositionSide.LONG
            for price in (pos.stop_price, pos.liq_price if liquidation else None):
                if price is None:
                    continue
                if long:
                    lo = max(lo, price)
                else:
                    hi = min(hi, price)
        return lo, hi

    def _match_all(self, symbol: str, mark: Decimal, live: list[_Order]) -> None:
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
        # 2. position-level stops (LONG before SHORT).
        for pos in tuple(self._sides_of.get(symbol, ())):
            if pos.qty == 0 or pos.stop_price is None:
                continue
            if self._through(pos.position_side, pos.stop_price, mark):
                self._trigger_position_stop(inst, pos, mark)
        # 3. conditional orders, 4. limit orders (each in placement order), 5. liquidation.
        if live:
            conds = [o for o in live if o.is_conditional]
            limits = [o for o in live if o.order_type is OrderType.LIMIT and o.status.is_live]
        else:
            conds = limits = []
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
            for pos in tuple(self._sides_of.get(symbol, ())):
                if pos.qty == 0:
                    continue
                liq = pos.liq_price
                if liq is not None and (
                    mark <= liq if pos.position_side is PositionSide.LONG else mark >= liq
                ):
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
