"""Paper-engine domain values → Binance USDⓈ-M JSON rows (REST and user-data shapes).

Field names and types follow :mod:`adapters.binance.schemas` (and the official SDK's strict
models): prices/quantities are strings, ``orderId``/``algoId``/trade ``id`` are integers,
``actualOrderId`` and ``ai`` are strings, flags are JSON booleans.
"""

from __future__ import annotations

from decimal import Decimal

import attrs

from adapters.binance.parse import PERPETUAL_DELIVERY_MS
from adapters.binance.schemas import (
    AlgoOrderRow,
    AlgoUpdateOrder,
    Filter,
    OrderRow,
    OrderUpdateOrder,
    PositionRiskRow,
    SymbolRow,
    WsPosition,
)
from tradebot.domain import Instrument, InstrumentStatus, OrderStatus, OrderType, PositionSide
from tradebot.ports import Fill, OrderState, PositionState

__all__ = [
    "AlgoMeta",
    "OrderMeta",
    "algo_row",
    "algo_update",
    "fmt",
    "order_row",
    "order_update",
    "position_row",
    "symbol_row",
    "ws_position",
]


def fmt(value: Decimal | None, *, zero: str = "0") -> str:
    """Decimal → plain string without exponent; None → ``zero``."""
    return zero if value is None else format(value, "f")


@attrs.define
class OrderMeta:
    """What Binance shows about a regular order that ``OrderState`` does not carry."""

    created_ms: int
    updated_ms: int
    time_in_force: str = "GTC"
    orig_type: str = ""
    algo_vid: str = ""  # set for the order an algo stop placed on trigger
    cum_quote: Decimal = Decimal(0)
    cum_qty: Decimal = Decimal(0)


@attrs.define
class AlgoMeta:
    """What Binance shows about an algo order beyond ``OrderState``."""

    created_ms: int
    updated_ms: int
    working_type: str = "MARK_PRICE"
    price_protect: bool = False
    actual_order_id: str = ""
    trigger_ms: int = 0
    status: str = "NEW"  # the algoStatus as last reported


_ORDER_STATUS = {
    OrderStatus.NEW: "NEW",
    OrderStatus.PARTIALLY_FILLED: "PARTIALLY_FILLED",
    OrderStatus.FILLED: "FILLED",
    OrderStatus.CANCELED: "CANCELED",
    OrderStatus.REJECTED: "REJECTED",
    OrderStatus.EXPIRED: "EXPIRED",
    OrderStatus.TRIGGERED: "NEW",
}

_TYPE = {OrderType.MARKET: "MARKET", OrderType.LIMIT: "LIMIT", OrderType.STOP_MARKET: "STOP_MARKET"}


def order_row(
    o: OrderState, meta: OrderMeta, *, order_id: str, status: str | None = None
) -> OrderRow:
    """``/fapi/v1/order`` row. For the order an algo stop placed (``meta.algo_vid`` set),
    ``o`` is the algo order's state and ``order_id`` the placed order's id: the row shows a
    MARKET order with ``origType`` STOP_MARKET."""
    child = bool(meta.algo_vid)
    avg = o.avg_fill_price
    price = o.price if o.order_type is OrderType.LIMIT else None
    qty = o.filled_qty if child and o.close_position else o.qty
    row: OrderRow = {
        "orderId": int(order_id),
        "symbol": o.symbol,
        "status": status or _ORDER_STATUS[o.status],
        "clientOrderId": o.client_order_id,
        "price": fmt(price),
        "avgPrice": fmt(avg, zero="0.00"),
        "origQty": fmt(qty),
        "executedQty": fmt(o.filled_qty),
        "cumQty": fmt(o.filled_qty),
        "cumQuote": fmt(meta.cum_quote),
        "timeInForce": meta.time_in_force,
        "type": "MARKET" if child else _TYPE[o.order_type],
        "reduceOnly": o.reduce_only and not o.close_position,
        "closePosition": o.close_position,
        "side": o.side.value,
        "positionSide": o.position_side.value,
        "stopPrice": fmt(o.trigger_price),
        "workingType": "MARK_PRICE" if child else "CONTRACT_PRICE",
        "priceProtect": False,
        "origType": meta.orig_type or ("STOP_MARKET" if child else _TYPE[o.order_type]),
        "priceMatch": "NONE",
        "selfTradePreventionMode": "EXPIRE_MAKER",
        "goodTillDate": 0,
        "time": meta.created_ms,
        "updateTime": meta.updated_ms,
    }
    return row


def algo_status(o: OrderState, meta: AlgoMeta) -> str:
    if o.status is OrderStatus.NEW:
        return "NEW"
    if o.status is OrderStatus.TRIGGERED:
        return "TRIGGERED"
    if o.status is OrderStatus.FILLED:
        return "FINISHED"
    if o.status is OrderStatus.EXPIRED:
        return "EXPIRED"
    if o.status is OrderStatus.REJECTED:
        return "REJECTED"
    return "CANCELED"


def algo_row(o: OrderState, meta: AlgoMeta) -> AlgoOrderRow:
    """``/fapi/v1/algoOrder`` / ``openAlgoOrders`` row."""
    row: AlgoOrderRow = {
        "algoId": int(o.venue_order_id),
        "clientAlgoId": o.client_order_id,
        "algoType": "CONDITIONAL",
        "orderType": "STOP_MARKET",
        "symbol": o.symbol,
        "side": o.side.value,
        "positionSide": o.position_side.value,
        "timeInForce": "GTC",
        "quantity": fmt(o.qty),
        "algoStatus": algo_status(o, meta),
        "actualOrderId": meta.actual_order_id,
        "actualPrice": fmt(o.avg_fill_price, zero="0.00"),
        "triggerPrice": fmt(o.trigger_price),
        "price": "0.00",
        "icebergQuantity": None,
        "tpOrderType": "",
        "selfTradePreventionMode": "EXPIRE_MAKER",
        "workingType": meta.working_type,
        "priceMatch": "NONE",
        "closePosition": o.close_position,
        "priceProtect": meta.price_protect,
        "reduceOnly": o.reduce_only or o.close_position,
        "createTime": meta.created_ms,
        "updateTime": meta.updated_ms,
        "triggerTime": meta.trigger_ms,
        "goodTillDate": 0,
    }
    if o.filled_qty > 0:
        row["actualQty"] = fmt(o.filled_qty)
    return row


def algo_update(o: OrderState, meta: AlgoMeta, status: str) -> AlgoUpdateOrder:
    """``ALGO_UPDATE.o`` for ``o`` in algo status ``status``."""
    u: AlgoUpdateOrder = {
        "caid": o.client_order_id,
        "aid": int(o.venue_order_id),
        "at": "CONDITIONAL",
        "o": "STOP_MARKET",
        "s": o.symbol,
        "S": o.side.value,
        "ps": o.position_side.value,
        "f": "GTC",
        "q": fmt(o.qty),
        "X": status,
        "ai": meta.actual_order_id,
        "tp": fmt(o.trigger_price),
        "p": "0",
        "V": "EXPIRE_MAKER",
        "wt": meta.working_type,
        "pm": "NONE",
        "cp": o.close_position,
        "pP": meta.price_protect,
        "R": o.reduce_only or o.close_position,
        "tt": meta.trigger_ms,
        "gtd": 0,
        "rm": "",
    }
    if meta.actual_order_id:
        u["ap"] = fmt(o.avg_fill_price, zero="0")
        u["aq"] = fmt(o.filled_qty)
        u["act"] = "MARKET"
    return u


def order_update(
    o: OrderState,
    meta: OrderMeta,
    *,
    order_id: int,
    execution: str,
    status: str,
    now_ms: int,
    fill: Fill | None = None,
) -> OrderUpdateOrder:
    """``ORDER_TRADE_UPDATE.o``; ``fill`` given for ``execution="TRADE"``."""
    child = bool(meta.algo_vid)
    cid = o.client_order_id
    if not cid and fill is not None and fill.reason == "liquidation":
        cid = f"autoclose-{now_ms}"
    elif not cid and fill is not None and fill.reason == "adl":
        cid = "adl_autoclose"
    qty = fill.qty if child and o.close_position and fill is not None else o.qty
    u: OrderUpdateOrder = {
        "s": o.symbol,
        "c": cid,
        "S": o.side.value,
        "o": "MARKET" if child else _TYPE[o.order_type],
        "f": meta.time_in_force,
        "q": fmt(qty),
        "p": fmt(o.price if o.order_type is OrderType.LIMIT else None),
        "ap": fmt(o.avg_fill_price),
        "sp": fmt(o.trigger_price),
        "x": execution,
        "X": status,
        "i": order_id,
        "l": fmt(fill.qty if fill else None),
        "z": fmt(meta.cum_qty),
        "L": fmt(fill.price if fill else None),
        "N": "USDT",
        "n": fmt(fill.fee_usdt if fill else None),
        "T": now_ms,
        "t": int(fill.trade_id.lstrip("TF") or 0) if fill else 0,
        "b": "0",
        "a": "0",
        "m": fill.is_maker if fill else False,
        "R": o.reduce_only and not o.close_position,
        "wt": "MARK_PRICE" if child else "CONTRACT_PRICE",
        "ot": meta.orig_type or ("STOP_MARKET" if child else _TYPE[o.order_type]),
        "ps": o.position_side.value,
        "cp": o.close_position,
        "rp": fmt(fill.realized_pnl_usdt if fill else None),
        "pP": False,
        "si": 0,
        "ss": 0,
        "V": "EXPIRE_MAKER",
        "pm": "NONE",
        "gtd": 0,
    }
    return u


def _signed(p: PositionState) -> Decimal:
    return p.qty if p.position_side is PositionSide.LONG else -p.qty


def position_row(
    p: PositionState, *, leverage: int, margin_type: str, now_ms: int
) -> PositionRiskRow:
    """``/fapi/v3/positionRisk`` row (``positionAmt`` negative for SHORT)."""
    flat = p.qty == 0
    entry = Decimal(0) if flat else p.entry_price
    mark = p.mark_price or entry
    notional = _signed(p) * mark
    im = abs(notional) / leverage if leverage else Decimal(0)
    row: PositionRiskRow = {
        "symbol": p.symbol,
        "positionSide": p.position_side.value,
        "positionAmt": fmt(_signed(p)),
        "entryPrice": fmt(entry),
        "breakEvenPrice": fmt(entry),
        "markPrice": fmt(p.mark_price),
        "unRealizedProfit": fmt(p.unrealized_pnl_usdt if not flat else Decimal(0)),
        "liquidationPrice": fmt(p.liq_price),
        "isolatedMargin": fmt(im if margin_type == "ISOLATED" else Decimal(0)),
        "notional": fmt(notional),
        "marginAsset": "USDT",
        "isolatedWallet": "0",
        "initialMargin": fmt(im),
        "maintMargin": "0",
        "positionInitialMargin": fmt(im),
        "openOrderInitialMargin": "0",
        "adl": 0 if flat else 2,
        "bidNotional": "0",
        "askNotional": "0",
        "updateTime": now_ms,
    }
    return row


def ws_position(p: PositionState, *, margin_type: str) -> WsPosition:
    """``ACCOUNT_UPDATE.a.P[]`` item."""
    return {
        "s": p.symbol,
        "pa": fmt(_signed(p)),
        "ep": fmt(p.entry_price if p.qty > 0 else Decimal(0)),
        "bep": fmt(p.entry_price if p.qty > 0 else Decimal(0)),
        "cr": "0",
        "up": fmt(p.unrealized_pnl_usdt if p.qty > 0 else Decimal(0)),
        "mt": "isolated" if margin_type == "ISOLATED" else "cross",
        "iw": "0",
        "ps": p.position_side.value,
    }


def _precision(step: Decimal) -> int:
    exp = step.normalize().as_tuple().exponent
    return -exp if isinstance(exp, int) and exp < 0 else 0


def symbol_row(i: Instrument, *, onboard_ms: int = 1569398400000) -> SymbolRow:
    """exchangeInfo ``symbols[]`` row for ``i`` (LOT_SIZE and MARKET_LOT_SIZE equal)."""
    max_qty = i.max_qty if i.max_qty is not None else Decimal(1_000_000)
    status = {
        InstrumentStatus.TRADING: "TRADING",
        InstrumentStatus.REDUCE_ONLY: "PRE_SETTLE",
        InstrumentStatus.CLOSED: "SETTLING",
    }[i.status]
    lot: Filter = {
        "minQty": fmt(i.min_qty),
        "maxQty": fmt(max_qty),
        "stepSize": fmt(i.qty_step),
    }
    return {
        "symbol": i.symbol,
        "pair": i.symbol,
        "contractType": "PERPETUAL",
        "deliveryDate": PERPETUAL_DELIVERY_MS,
        "onboardDate": onboard_ms,
        "status": status,
        "maintMarginPercent": "2.5000",
        "requiredMarginPercent": "5.0000",
        "baseAsset": i.symbol.removesuffix("USDT"),
        "quoteAsset": "USDT",
        "marginAsset": "USDT",
        "pricePrecision": _precision(i.tick_size),
        "quantityPrecision": _precision(i.qty_step),
        "baseAssetPrecision": 8,
        "quotePrecision": 8,
        "underlyingType": "COIN",
        "underlyingSubType": [],
        "settlePlan": 0,
        "triggerProtect": "0.0500",
        "liquidationFee": "0.012500",
        "marketTakeBound": "0.05",
        "maxMoveOrderLimit": 10000,
        "filters": [
            {
                "filterType": "PRICE_FILTER",
                "minPrice": fmt(i.price_floor),
                "maxPrice": "4529764",
                "tickSize": fmt(i.tick_size),
            },
            {**lot, "filterType": "LOT_SIZE"},
            {**lot, "filterType": "MARKET_LOT_SIZE"},
            {"filterType": "MAX_NUM_ORDERS", "limit": 200},
            {"filterType": "MAX_NUM_ALGO_ORDERS", "limit": 10},
            {"filterType": "MIN_NOTIONAL", "notional": fmt(i.min_notional)},
            {
                "filterType": "PERCENT_PRICE",
                "multiplierUp": "1.0500",
                "multiplierDown": "0.9500",
                "multiplierDecimal": "4",
            },
        ],
        "orderTypes": [
            "LIMIT",
            "MARKET",
            "STOP",
            "STOP_MARKET",
            "TAKE_PROFIT",
            "TAKE_PROFIT_MARKET",
            "TRAILING_STOP_MARKET",
        ],
        "timeInForce": ["GTC", "IOC", "FOK", "GTX", "GTD"],
    }
