"""The Binance sandbox's order handlers: regular orders (new, query, cancel, open, cancel
all; conditional types refused with -4120 since the Algo Order migration), algo orders
(``/fapi/v1/algoOrder`` and friends) and the listenKey endpoints."""

from __future__ import annotations

import secrets
from decimal import Decimal
from typing import Any

import attrs
import trio

from adapters.binance_sandbox._account import _SandboxAccount
from adapters.binance_sandbox._records import (
    _CONDITIONAL_TYPES,
    _ApiError,
    _mandatory,
    _wall_ms,
)
from adapters.binance_sandbox._wire import (
    AlgoMeta,
    OrderMeta,
    algo_row,
    order_row,
)
from adapters.paper import TriggerDirection
from tradebot.domain import OrderStatus, OrderType, Side

__all__ = ["_SandboxOrders"]


class _SandboxOrders(_SandboxAccount):
    """Order, algo-order and listenKey handlers."""

    # --- handlers: regular orders -------------------------------------------------------------

    def h_order_new(self, params: dict[str, str]) -> Any:
        inst = self._symbol(params)
        order_type = params.get("type")
        if not order_type:
            raise _mandatory("type")
        if order_type in _CONDITIONAL_TYPES:
            raise _ApiError(
                -4120,
                "Order type not supported for this endpoint. Please use the Algo Order API "
                "endpoints instead.",
            )
        if order_type not in ("MARKET", "LIMIT"):
            raise _ApiError(-1116, "Invalid orderType.")
        side, ps = self._sides(params)
        if "reduceOnly" in params:
            raise _ApiError(-1106, "Parameter 'reduceOnly' sent when not required.")
        if "closePosition" in params:
            raise _ApiError(-1106, "Parameter 'closePosition' sent when not required.")
        qty = self._dec(params, "quantity")
        cid = self._check_cid(params, "newClientOrderId") or f"x-sandbox{secrets.token_hex(8)}"
        resp_type = params.get("newOrderRespType", "ACK")
        if resp_type not in ("ACK", "RESULT"):
            raise _ApiError(-1136, "Invalid newOrderRespType.")
        price = None
        tif = "GTC"
        if order_type == "LIMIT":
            price = self._dec(params, "price")
            tif = params.get("timeInForce", "")
            if not tif:
                raise _mandatory("timeInForce")
            if tif != "GTC":
                raise _ApiError(-1115, "Invalid timeInForce. (sandbox: GTC only)")
        now = _wall_ms()
        self._pending_order = OrderMeta(created_ms=now, updated_ms=now, time_in_force=tif)
        try:
            o = self.engine.submit_order(
                symbol=inst.symbol,
                side=side,
                position_side=ps,
                order_type=OrderType.MARKET if order_type == "MARKET" else OrderType.LIMIT,
                qty=qty,
                client_order_id=cid,
                price=price,
            )
        finally:
            self._pending_order = None
        meta = self._order_meta[o.venue_order_id]
        if resp_type == "ACK":
            ack = attrs.evolve(
                o, status=OrderStatus.NEW, filled_qty=Decimal(0), avg_fill_price=None
            )
            return order_row(
                ack, attrs.evolve(meta, cum_quote=Decimal(0)), order_id=o.venue_order_id
            )
        return order_row(o, meta, order_id=o.venue_order_id)

    def h_order_get(self, params: dict[str, str]) -> Any:
        inst = self._symbol(params)
        found = self._regular(params, inst.symbol)
        if found is None:
            raise _ApiError(-2013, "Order does not exist.")
        return self._order_row(*found)

    def h_order_cancel(self, params: dict[str, str]) -> Any:
        inst = self._symbol(params)
        found = self._regular(params, inst.symbol)
        if found is None or found[0] in self._children or not found[1].status.is_live:
            raise _ApiError(-2011, "Unknown order sent.")
        vid, o = found
        cancelled = self.engine.cancel_order(inst.symbol, o.client_order_id, vid)
        return self._order_row(vid, cancelled)

    def h_open_orders(self, params: dict[str, str]) -> Any:
        inst = self._instrument(params, required=False)
        return [
            self._order_row(o.venue_order_id, o)
            for o in self.engine.open_orders(inst.symbol if inst else None)
            if o.order_type is not OrderType.STOP_MARKET
        ]

    def h_cancel_all(self, params: dict[str, str]) -> Any:
        inst = self._symbol(params)
        self.engine.cancel_all(inst.symbol, algo=False)
        return {"code": 200, "msg": "The operation of cancel all open order is done."}

    # --- handlers: algo orders ----------------------------------------------------------------

    def h_algo_new(self, params: dict[str, str]) -> Any:
        inst = self._symbol(params)
        if params.get("algoType") != "CONDITIONAL":
            raise (
                _ApiError(-1130, "Data sent for parameter 'algoType' is not valid.")
                if params.get("algoType")
                else _mandatory("algoType")
            )
        order_type = params.get("type")
        if not order_type:
            raise _mandatory("type")
        if order_type != "STOP_MARKET":
            raise _ApiError(-1116, "Invalid orderType. (sandbox: algo STOP_MARKET only)")
        side, ps = self._sides(params)
        if "reduceOnly" in params:
            raise _ApiError(-1106, "Parameter 'reduceOnly' sent when not required.")
        trigger = self._dec(params, "triggerPrice")
        assert trigger is not None
        working = params.get("workingType", "CONTRACT_PRICE")
        if working != "MARK_PRICE":
            raise _ApiError(
                -1130,
                "Data sent for parameter 'workingType' is not valid. (sandbox: triggers on "
                "MARK_PRICE only)",
            )
        close_all = bool(self._bool(params, "closePosition"))
        qty = self._dec(params, "quantity", required=not close_all)
        if close_all and qty is not None:
            raise _ApiError(-4137, "Quantity must be zero with closePosition equals true.")
        if close_all and side is not ps.exit_side:
            raise _ApiError(
                -1128,
                "Combination of optional parameters invalid. (closePosition in hedge mode: "
                "SELL with LONG or BUY with SHORT only)",
            )
        cid = self._check_cid(params, "clientAlgoId") or f"x-sandbox{secrets.token_hex(8)}"
        now = _wall_ms()
        self._pending_algo = AlgoMeta(
            created_ms=now, updated_ms=now, price_protect=bool(self._bool(params, "priceProtect"))
        )
        try:
            o = self.engine.submit_order(
                symbol=inst.symbol,
                side=side,
                position_side=ps,
                order_type=OrderType.STOP_MARKET,
                qty=qty,
                client_order_id=cid,
                trigger_price=trigger,
                # STOP_MARKET: BUY fires when the mark rises to the trigger, SELL when it falls
                trigger_direction=TriggerDirection.RISE
                if side is Side.BUY
                else TriggerDirection.FALL,
                close_position=close_all,
                algo=True,
            )
        finally:
            self._pending_algo = None
        return algo_row(o, self._algo_meta[o.venue_order_id])

    def h_algo_get(self, params: dict[str, str]) -> Any:
        o = self._algo(params)
        if o is None:
            raise _ApiError(-2013, "Order does not exist.")
        return algo_row(o, self._algo_meta[o.venue_order_id])

    def h_algo_cancel(self, params: dict[str, str]) -> Any:
        o = self._algo(params)
        if o is None or o.status is not OrderStatus.NEW:
            raise _ApiError(-2011, "Unknown order sent.")
        self.engine.cancel_algo_order(o.symbol, o.client_order_id, o.venue_order_id)
        return {
            "algoId": int(o.venue_order_id),
            "clientAlgoId": o.client_order_id,
            "code": "200",
            "msg": "success",
        }

    def h_algo_open(self, params: dict[str, str]) -> Any:
        inst = self._instrument(params, required=False)
        if params.get("algoType") not in (None, "CONDITIONAL"):
            raise _ApiError(-1130, "Data sent for parameter 'algoType' is not valid.")
        return [
            algo_row(o, self._algo_meta[o.venue_order_id])
            for o in self.engine.open_orders(inst.symbol if inst else None)
            if o.order_type is OrderType.STOP_MARKET
            and (not params.get("algoId") or params["algoId"] == o.venue_order_id)
        ]

    def h_algo_all(self, params: dict[str, str]) -> Any:
        inst = self._symbol(params)
        return [
            algo_row(o, self._algo_meta[o.venue_order_id])
            for o in self.engine.orders(inst.symbol, algo=True)
        ]

    def h_algo_cancel_all(self, params: dict[str, str]) -> Any:
        inst = self._symbol(params)
        self.engine.cancel_all(inst.symbol, algo=True)
        return {"code": 200, "msg": "The operation of cancel all open order is done."}

    # --- handlers: listenKey ------------------------------------------------------------------

    def h_listen_key_new(self, params: dict[str, str]) -> Any:
        self._check_listen_key()
        if self._listen_key is None:
            self._listen_key = secrets.token_hex(32)
        self._listen_key_expires = trio.current_time() + self.listen_key_ttl_s
        return {"listenKey": self._listen_key}

    def h_listen_key_keepalive(self, params: dict[str, str]) -> Any:
        self._check_listen_key()
        if (
            self._listen_key is None
            or params.get("listenKey", self._listen_key) != self._listen_key
        ):
            raise _ApiError(-1125, "This listenKey does not exist.")
        self._listen_key_expires = trio.current_time() + self.listen_key_ttl_s
        return {"listenKey": self._listen_key}

    def h_listen_key_close(self, params: dict[str, str]) -> Any:
        self._listen_key = None
        return {}
