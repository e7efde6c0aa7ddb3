"""Paper-engine domain values → Bybit v5 JSON rows (REST and WebSocket shapes).

Field names and string formatting follow the v5 docs pages cited in
:mod:`adapters.bybit.schemas`; every number is a string, ids are strings, ``positionIdx``
and ``triggerDirection`` are integers, flags are JSON booleans.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import attrs

from adapters.bybit.schemas import ClosedPnlRow, ExecutionRow, OrderRow, WsPositionRow
from tradebot.domain import OrderStatus, OrderType, PositionSide, Side
from tradebot.ports import Fill, OrderState, PositionState

__all__ = [
    "OrderMeta",
    "closed_pnl_row",
    "execution_row",
    "fmt",
    "ms",
    "order_row",
    "position_row",
    "rest_execution_row",
]


def fmt(value: Decimal | None, *, zero: str = "0") -> str:
    """Decimal → plain string without exponent; None → ``zero``."""
    if value is None:
        return zero
    text = format(value, "f")
    return text


def ms(dt: Any) -> int:
    return int(dt.timestamp() * 1000)


@attrs.define
class OrderMeta:
    """What Bybit shows about an order that the engine's ``OrderState`` does not carry."""

    order_type: str  # "Market" | "Limit"
    created_ms: int
    updated_ms: int
    trigger_direction: int = 0
    trigger_by: str = ""
    stop_loss: str = "0"
    sl_trigger_by: str = ""
    tpsl_mode: str = ""
    time_in_force: str = "GTC"
    cum_fee: Decimal = Decimal(0)
    cum_value: Decimal = Decimal(0)
    position_idx: int | None = None  # 0 when placed on a one-way symbol
    created_t: float = 0.0  # trio.current_time() at creation (history lag)


_SIDE = {Side.BUY: "Buy", Side.SELL: "Sell"}


def order_status(o: OrderState) -> str:
    conditional = o.trigger_price is not None
    if o.status is OrderStatus.NEW:
        return "Untriggered" if conditional else "New"
    if o.status is OrderStatus.PARTIALLY_FILLED:
        return "PartiallyFilled"
    if o.status is OrderStatus.FILLED:
        return "Filled"
    if o.status is OrderStatus.TRIGGERED:
        return "Triggered"
    if o.status is OrderStatus.REJECTED:
        return "Rejected"
    # CANCELED / EXPIRED
    if conditional and o.filled_qty == 0:
        return "Deactivated"
    return "PartiallyFilledCanceled" if o.filled_qty > 0 else "Cancelled"


def order_row(o: OrderState, meta: OrderMeta) -> OrderRow:
    """``/v5/order/realtime`` row (also the WS ``order`` item, plus ``category``)."""
    leaves = max(o.qty - o.filled_qty, Decimal(0)) if not o.status.is_terminal else Decimal(0)
    price = o.price if o.order_type is OrderType.LIMIT else None
    row: OrderRow = {
        "category": "linear",
        "orderId": o.venue_order_id,
        "orderLinkId": o.client_order_id,
        "blockTradeId": "",
        "symbol": o.symbol,
        "price": fmt(price),
        "qty": fmt(o.qty),
        "side": _SIDE[o.side],
        "isLeverage": "",
        "positionIdx": (
            meta.position_idx
            if meta.position_idx is not None
            else o.position_side.bybit_position_idx
        ),
        "orderStatus": order_status(o),
        "cancelType": "UNKNOWN",
        "rejectReason": "EC_NoError",
        "avgPrice": fmt(o.avg_fill_price, zero=""),  # UTA: "" while nothing is filled
        "leavesQty": fmt(leaves),
        "leavesValue": fmt(leaves * (price or Decimal(0))),
        "cumExecQty": fmt(o.filled_qty),
        "cumExecValue": fmt(meta.cum_value),
        "cumExecFee": fmt(meta.cum_fee),
        "timeInForce": meta.time_in_force,
        "orderType": meta.order_type,
        "stopOrderType": "Stop" if o.trigger_price is not None else "UNKNOWN",
        "orderIv": "",
        "triggerPrice": fmt(o.trigger_price),
        "takeProfit": "0",
        "stopLoss": meta.stop_loss,
        "tpTriggerBy": "",
        "slTriggerBy": meta.sl_trigger_by,
        "triggerDirection": meta.trigger_direction,
        "triggerBy": meta.trigger_by or "UNKNOWN",
        "createType": "CreateByUser",
        "lastPriceOnCreated": "",
        "reduceOnly": o.reduce_only,
        "closeOnTrigger": o.close_position or (o.trigger_price is not None and o.reduce_only),
        "smpType": "None",
        "smpGroup": 0,
        "smpOrderId": "",
        "tpslMode": meta.tpsl_mode,
        "tpLimitPrice": "0",
        "slLimitPrice": "0",
        "placeType": "",
        "createdTime": str(meta.created_ms),
        "updatedTime": str(meta.updated_ms),
    }
    return row


def position_row(
    p: PositionState,
    *,
    leverage: int,
    now_ms: int,
    seq: int,
    ws: bool = False,
    one_way: bool = False,
) -> WsPositionRow:
    """``/v5/position/list`` row; ``ws=True`` gives the WS ``position`` shape
    (``entryPrice`` instead of ``avgPrice``, plus ``category``). ``one_way``: the symbol is
    in one-way mode (``positionIdx`` 0; ``side ""`` when flat)."""
    flat = p.qty == 0
    side = "" if flat else ("Buy" if p.position_side is PositionSide.LONG else "Sell")
    entry = Decimal(0) if flat else p.entry_price
    row: WsPositionRow = {
        "positionIdx": 0 if one_way else p.position_side.bybit_position_idx,
        "riskId": 1,
        "riskLimitValue": "2000000",
        "symbol": p.symbol,
        "side": side,
        "size": "0" if flat else fmt(p.qty),
        "positionValue": fmt(p.qty * entry),
        "tradeMode": 0,
        "positionStatus": "Normal",
        "autoAddMargin": 0,
        "adlRankIndicator": 0 if flat else 2,
        "leverage": str(leverage),
        "positionBalance": fmt(p.qty * entry / leverage),
        "markPrice": fmt(p.mark_price),
        "liqPrice": "",
        "bustPrice": "",
        "positionMM": "0",
        "positionIM": fmt(p.qty * entry / leverage),
        "tpslMode": "Full",
        "takeProfit": "0",
        "stopLoss": fmt(p.stop_price),
        "trailingStop": "0",
        "unrealisedPnl": fmt(p.unrealized_pnl_usdt if not flat else Decimal(0)),
        "curRealisedPnl": "0",
        "cumRealisedPnl": "0",
        "sessionAvgPrice": "",
        "isReduceOnly": False,
        "mmrSysUpdatedTime": "",
        "leverageSysUpdatedTime": "",
        "createdTime": str(now_ms),
        "updatedTime": str(now_ms),
        "seq": seq,
    }
    if ws:
        row["category"] = "linear"
        row["entryPrice"] = fmt(entry)
    else:
        row["avgPrice"] = fmt(entry)
    return row


def execution_row(
    f: Fill,
    *,
    order: OrderState | None,
    meta: OrderMeta | None,
    mark: Decimal | None,
    fee_rate: Decimal,
    seq: int,
) -> ExecutionRow:
    """WS ``execution`` item for one fill."""
    closing = f.side is f.position_side.exit_side
    stop_type = ""
    if f.reason == "stop":
        stop_type = (
            "Stop" if (order is not None and order.trigger_price is not None) else "StopLoss"
        )
    row: ExecutionRow = {
        "category": "linear",
        "symbol": f.symbol,
        "closedSize": fmt(f.qty if closing else Decimal(0)),
        "execFee": fmt(f.fee_usdt),
        "execId": f.trade_id,
        "execPrice": fmt(f.price),
        "execQty": fmt(f.qty),
        "execType": {"liquidation": "BustTrade", "adl": "AdlTrade"}.get(f.reason, "Trade"),
        "execValue": fmt(f.qty * f.price),
        "feeRate": fmt(fee_rate),
        "tradeIv": "",
        "markIv": "",
        "blockTradeId": "",
        "markPrice": fmt(mark),
        "indexPrice": "",
        "underlyingPrice": "",
        "leavesQty": fmt(max(order.qty - order.filled_qty, Decimal(0)) if order else None),
        "orderId": f.venue_order_id,
        "orderLinkId": f.client_order_id,
        "orderPrice": fmt(order.price if order else None),
        "orderQty": fmt(order.qty if order else f.qty),
        "orderType": meta.order_type if meta else "Market",
        "stopOrderType": stop_type,
        "side": _SIDE[f.side],
        "execTime": str(ms(f.ts)),
        "isLeverage": "0",
        "isMaker": f.is_maker,
        "seq": seq,
        "marketUnit": "",
        "createType": "CreateByUser" if not f.reason else "CreateByStopLoss",
    }
    return row


def rest_execution_row(ws_row: ExecutionRow) -> ExecutionRow:
    """The ``/v5/execution/list`` shape of a WS ``execution`` item (docs
    v5/order/execution): no ``category``, no ``marketUnit``, plus ``feeCurrency``."""
    row: ExecutionRow = {k: v for k, v in ws_row.items() if k not in ("category", "marketUnit")}  # type: ignore[assignment]
    row["feeCurrency"] = "USDT"
    return row


def closed_pnl_row(
    *,
    symbol: str,
    order_id: str,
    closing_side: Side,
    order_qty: Decimal,
    order_type: str,
    closed_qty: Decimal,
    entry_price: Decimal,
    exit_value: Decimal,
    closed_pnl: Decimal,
    fill_count: int,
    leverage: int,
    created_ms: int,
    updated_ms: int,
) -> ClosedPnlRow:
    """``/v5/position/closed-pnl`` row (docs v5/position/close-pnl)."""
    exit_price = exit_value / closed_qty if closed_qty > 0 else Decimal(0)
    return {
        "symbol": symbol,
        "orderId": order_id,
        "side": _SIDE[closing_side],
        "qty": fmt(order_qty),
        "orderPrice": fmt(exit_price),
        "orderType": order_type,
        "execType": "Trade",
        "closedSize": fmt(closed_qty),
        "cumEntryValue": fmt(entry_price * closed_qty),
        "avgEntryPrice": fmt(entry_price),
        "cumExitValue": fmt(exit_value),
        "avgExitPrice": fmt(exit_price),
        "closedPnl": fmt(closed_pnl),
        "fillCount": str(fill_count),
        "leverage": str(leverage),
        "createdTime": str(created_ms),
        "updatedTime": str(updated_ms),
    }
