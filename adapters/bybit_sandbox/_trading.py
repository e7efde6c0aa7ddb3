"""The Bybit sandbox's write handlers: position mode switch, leverage, order create / amend
/ cancel (with the attached stop and the trigger-direction rule) and the position-level
trading stop."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from adapters.bybit_sandbox._queries import _SandboxQueries
from adapters.bybit_sandbox._records import (
    _CID_RE,
    _ApiError,
    _param_error,
    _Success,
    _wall_ms,
)
from adapters.bybit_sandbox._wire import (
    OrderMeta,
    fmt,
)
from adapters.paper import TriggerDirection
from tradebot.domain import (
    OrderType,
    PositionSide,
    Side,
)
from tradebot.ports import StopState

__all__ = ["_SandboxTrading"]


class _SandboxTrading(_SandboxQueries):
    """Write handlers."""

    # --- handlers: account setup, orders and trading stop -------------------------------------

    def h_switch_mode(self, params: dict[str, Any]) -> Any:
        """``POST /v5/position/switch-mode`` (docs v5/position/position-mode): by ``symbol``
        or by ``coin`` (USDT: every symbol). By coin, symbols with a position or open orders
        stay as they are and the answer is still 0 / 110025 (110025 when nothing changed)."""
        self._category(params)
        if not params.get("symbol") and not params.get("coin"):
            raise _param_error("params error: symbol or coin is required")
        mode = params.get("mode")
        if mode not in (0, 3):
            raise _param_error("params error: mode must be 0 or 3")
        if params.get("symbol"):
            inst = self._instrument(params)
            if self.mode_of(inst.symbol) == mode:
                return _Success(110025, "Position mode is not modified")
            busy = self._symbol_busy(inst.symbol)
            if busy == 110024:
                raise _ApiError(
                    110024, "You have an existing position, so position mode cannot be switched"
                )
            if busy == 110028:
                raise _ApiError(
                    110028, "You have existing open orders, so position mode cannot be switched"
                )
            self._modes[inst.symbol] = int(mode)
            return {}
        if params.get("coin") != "USDT":
            raise _param_error("params error: coin only supports USDT in this sandbox")
        changed = 0
        for symbol in sorted(set(self._modes) | set(self.engine.instruments())):
            self.mode_of(symbol)
            if self._modes[symbol] != mode and self._symbol_busy(symbol) is None:
                self._modes[symbol] = int(mode)
                changed += 1
        if not changed:
            return _Success(110025, "Position mode is not modified")
        return {}

    def h_set_leverage(self, params: dict[str, Any]) -> Any:
        self._category(params)
        inst = self._instrument(params)
        buy = self._dec(params, "buyLeverage")
        sell = self._dec(params, "sellLeverage")
        if buy != sell or buy is None or buy != buy.to_integral_value():
            raise _param_error(
                "params error: buyLeverage must equal sellLeverage (integer in this sandbox)"
            )
        lev = int(buy)
        if lev == self.engine.leverage(inst.symbol):
            return _Success(110043, "leverage not modified")
        self.engine.set_leverage(inst.symbol, lev)
        return {}

    def h_order_create(self, params: dict[str, Any]) -> Any:
        self._category(params)
        inst = self._instrument(params)
        side_raw = params.get("side")
        if side_raw not in ("Buy", "Sell"):
            raise _param_error("params error: side invalid")
        side = Side.BUY if side_raw == "Buy" else Side.SELL
        order_type = params.get("orderType")
        if order_type not in ("Market", "Limit"):
            raise _param_error("params error: orderType invalid")
        qty = self._dec(params, "qty")
        assert qty is not None
        cid = params.get("orderLinkId", "")
        if not isinstance(cid, str) or (cid and not _CID_RE.match(cid)):
            raise _param_error("params error: orderLinkId invalid")
        reduce_only = params.get("reduceOnly", False)
        close_on_trigger = params.get("closeOnTrigger", False)
        if not isinstance(reduce_only, bool) or not isinstance(close_on_trigger, bool):
            raise _param_error("params error: reduceOnly/closeOnTrigger must be booleans")
        ps, reduce_only = self._order_side(params, side, qty, reduce_only)
        cap = inst.max_market_qty if inst.max_market_qty is not None else inst.max_qty
        if order_type == "Market" and cap is not None and qty > cap:
            # maxMktOrderQty (docs v5/market/instrument, lotSizeFilter)
            raise _param_error("The number of contracts exceeds maximum limit allowed: too large")
        price = self._dec(params, "price", required=order_type == "Limit")
        trigger = self._dec(params, "triggerPrice", required=False)
        stop_loss = self._dec(params, "stopLoss", required=False)
        if stop_loss is not None and stop_loss == 0:
            stop_loss = None
        now = _wall_ms()
        meta = OrderMeta(
            order_type=str(order_type),
            created_ms=now,
            updated_ms=now,
            time_in_force=str(
                params.get("timeInForce") or ("IOC" if order_type == "Market" else "GTC")
            ),
            position_idx=self._idx_param(params),
        )
        mark = self.engine.mark_price(inst.symbol)
        direction: TriggerDirection | None = None
        if trigger is not None and trigger > 0:
            if order_type != "Market":
                raise _param_error(
                    "params error: conditional limit orders are not supported by this sandbox"
                )
            tdir = params.get("triggerDirection")
            if tdir not in (1, 2):
                raise _param_error("params error: triggerDirection must be 1 or 2")
            if mark is not None and tdir == 1 and trigger <= mark:
                raise _ApiError(
                    110092,
                    f"expect Rising, but trigger_price[{trigger}] <= current[{mark}]??MarkPrice",
                )
            if mark is not None and tdir == 2 and trigger >= mark:
                raise _ApiError(
                    110093,
                    f"expect Falling, but trigger_price[{trigger}] >= current[{mark}]??MarkPrice",
                )
            direction = TriggerDirection(tdir)
            meta.trigger_direction = int(tdir)
            meta.trigger_by = str(params.get("triggerBy") or "LastPrice")
        else:
            trigger = None
        if stop_loss is not None:
            if reduce_only:
                raise _param_error("params error: TP/SL is not allowed on reduceOnly orders")
            mode = params.get("tpslMode", "Full")
            if mode != "Full":
                raise _param_error("params error: only tpslMode=Full is supported by this sandbox")
            if mark is not None:
                self._check_sl_side(ps, stop_loss, mark)
            meta.stop_loss = fmt(stop_loss)
            meta.sl_trigger_by = str(params.get("slTriggerBy") or "LastPrice")
            meta.tpsl_mode = "Full"
        self._pending_meta = meta
        try:
            o = self.engine.submit_order(
                symbol=inst.symbol,
                side=side,
                position_side=ps,
                order_type=OrderType.STOP_MARKET
                if trigger is not None
                else (OrderType.MARKET if order_type == "Market" else OrderType.LIMIT),
                qty=qty,
                client_order_id=cid,
                price=price if order_type == "Limit" else None,
                trigger_price=trigger,
                trigger_direction=direction,
                reduce_only=reduce_only,
                attached_stop=stop_loss,
            )
        finally:
            self._pending_meta = None
        return {"orderId": o.venue_order_id, "orderLinkId": o.client_order_id}

    @staticmethod
    def _check_sl_side(ps: PositionSide, stop_loss: Decimal, base: Decimal) -> None:
        if ps is PositionSide.LONG and stop_loss >= base:
            raise _param_error(
                f"StopLoss:{stop_loss} set for Buy position should lower than "
                f"base_price:{base}??MarkPrice"
            )
        if ps is PositionSide.SHORT and stop_loss <= base:
            raise _param_error(
                f"StopLoss:{stop_loss} set for Sell position should higher than "
                f"base_price:{base}??MarkPrice"
            )

    def h_order_amend(self, params: dict[str, Any]) -> Any:
        self._category(params)
        self._instrument(params)
        o = self._find_order(params)
        trigger = self._dec(params, "triggerPrice", required=False)
        if params.get("qty") or params.get("price") or trigger is None:
            raise _param_error("params error: this sandbox amends triggerPrice only")
        if o.trigger_price is None:
            raise _param_error(
                "params error: triggerPrice can only be amended on conditional orders"
            )
        meta = self._meta[o.venue_order_id]
        mark = self.engine.mark_price(o.symbol)
        if mark is not None and meta.trigger_direction == 1 and trigger <= mark:
            raise _ApiError(
                110092, f"expect Rising, but trigger_price[{trigger}] <= current[{mark}]??MarkPrice"
            )
        if mark is not None and meta.trigger_direction == 2 and trigger >= mark:
            raise _ApiError(
                110093,
                f"expect Falling, but trigger_price[{trigger}] >= current[{mark}]??MarkPrice",
            )
        self.engine.amend_stop(
            StopState(
                symbol=o.symbol,
                position_side=o.position_side,
                trigger_price=o.trigger_price,
                client_order_id=o.client_order_id,
                venue_order_id=o.venue_order_id,
                qty=o.qty,
            ),
            trigger,
        )
        return {"orderId": o.venue_order_id, "orderLinkId": o.client_order_id}

    def h_order_cancel(self, params: dict[str, Any]) -> Any:
        self._category(params)
        self._instrument(params)
        o = self._find_order(params)
        if o.trigger_price is not None:
            self.engine.cancel_stop(
                StopState(
                    symbol=o.symbol,
                    position_side=o.position_side,
                    trigger_price=o.trigger_price,
                    client_order_id=o.client_order_id,
                    venue_order_id=o.venue_order_id,
                    qty=o.qty,
                )
            )
        else:
            self.engine.cancel_order(o.symbol, o.client_order_id, o.venue_order_id)
        return {"orderId": o.venue_order_id, "orderLinkId": o.client_order_id}

    def h_trading_stop(self, params: dict[str, Any]) -> Any:
        self._category(params)
        inst = self._instrument(params)
        if params.get("tpslMode") not in ("Full", "Partial"):
            raise _param_error("params error: tpslMode is required (Full or Partial)")
        if params.get("tpslMode") != "Full":
            raise _param_error("params error: only tpslMode=Full is supported by this sandbox")
        ps = self._position_side(params)
        for unsupported in ("takeProfit", "trailingStop"):
            v = params.get(unsupported)
            if v not in (None, "", "0"):
                raise _param_error(f"params error: {unsupported} is not supported by this sandbox")
        sl = self._dec(params, "stopLoss")
        assert sl is not None
        pos = self.engine.position(inst.symbol, ps)
        if pos.qty == 0:
            raise _param_error("can not set tp/sl/ts for zero position")
        if sl == 0:
            if pos.stop_price is None:
                return _Success(34040, "not modified")
            self.engine.set_trading_stop(inst.symbol, ps, Decimal(0))
            return {}
        if pos.stop_price == sl:
            return _Success(34040, "not modified")
        mark = self.engine.mark_price(inst.symbol)
        if mark is not None:
            self._check_sl_side(ps, sl, mark)
        self.engine.set_trading_stop(inst.symbol, ps, sl)
        return {}
