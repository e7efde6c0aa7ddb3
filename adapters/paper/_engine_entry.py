"""The paper engine's order admission: one submitted order validated (instrument status,
tick, quantity, notional, reduce-only, margin), then rested or executed at once."""

from __future__ import annotations

from decimal import Decimal

from tradebot.domain import (
    InstrumentStatus,
    OrderStatus,
    OrderType,
    PositionSide,
    Side,
)
from tradebot.money import ZERO
from tradebot.ports import (
    OrderState,
    OrderUpdate,
)

from ._engine_matching import _EngineMatching
from ._engine_model import (
    TriggerDirection,
)

__all__ = ["_EngineEntry"]


class _EngineEntry(_EngineMatching):
    """Order admission."""

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
