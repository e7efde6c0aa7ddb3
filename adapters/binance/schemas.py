"""Binance USDⓈ-M wire shapes, with the venue's own field names.

Prices and quantities are strings on the wire (``"0.010"``); ids are JSON integers
(``orderId``, ``algoId``, trade ``id``) except ``actualOrderId`` (REST) and ``ai``
(``ALGO_UPDATE``), which are strings — as the official SDK's strict models require. Values
are parsed into ``Decimal`` only in :mod:`adapters.binance.parse`. Shapes follow the pages
of https://developers.binance.com/docs/derivatives/usds-margined-futures named on each
class. ``total=False`` because the venue adds and omits fields over time; parse code reads
what it needs and says which field was missing.
"""

from __future__ import annotations

from typing import Any, TypedDict

__all__ = [
    "AccountTradeRow",
    "AccountUpdateEvent",
    "AlgoOrderRow",
    "AlgoUpdateEvent",
    "AlgoUpdateOrder",
    "BalanceRow",
    "ErrorBody",
    "ExchangeInfo",
    "Filter",
    "ListenKeyExpiredEvent",
    "MarkPriceEvent",
    "OrderRow",
    "OrderTradeUpdateEvent",
    "OrderUpdateOrder",
    "PositionRiskRow",
    "SymbolConfigRow",
    "SymbolRow",
    "TradeLiteEvent",
    "WsBalance",
    "WsPosition",
]


class ErrorBody(TypedDict, total=False):
    """Every error reply (HTTP 4xx/5xx): ``{"code": -2021, "msg": "..."}``; success of a
    few setup endpoints: ``{"code": 200, "msg": "success"}``."""

    code: int
    msg: str


class Filter(TypedDict, total=False):
    """One ``symbols[].filters[]`` entry (market-data/rest-api/Exchange-Information).

    ``filterType``: ``PRICE_FILTER`` (minPrice, maxPrice, tickSize), ``LOT_SIZE`` and
    ``MARKET_LOT_SIZE`` (minQty, maxQty, stepSize), ``MAX_NUM_ORDERS`` / ``MAX_NUM_ALGO_ORDERS``
    (limit), ``MIN_NOTIONAL`` (notional), ``PERCENT_PRICE`` (multiplierUp, multiplierDown,
    multiplierDecimal).
    """

    filterType: str
    minPrice: str
    maxPrice: str
    tickSize: str
    minQty: str
    maxQty: str
    stepSize: str
    limit: int
    notional: str
    multiplierUp: str
    multiplierDown: str
    multiplierDecimal: str


class SymbolRow(TypedDict, total=False):
    """``GET /fapi/v1/exchangeInfo`` ``symbols[]`` row.

    ``status``: PENDING_TRADING, TRADING, PRE_DELIVERING, DELIVERING, DELIVERED, PRE_SETTLE,
    SETTLING, CLOSE. ``contractType``: PERPETUAL, CURRENT_QUARTER, NEXT_QUARTER, ...
    ``deliveryDate`` of a perpetual is 4133404800000 (2100-12-25) unless it is being
    delisted. ``pricePrecision`` / ``quantityPrecision`` are NOT the tick / step.
    """

    symbol: str
    pair: str
    contractType: str
    deliveryDate: int
    onboardDate: int
    status: str
    maintMarginPercent: str
    requiredMarginPercent: str
    baseAsset: str
    quoteAsset: str
    marginAsset: str
    pricePrecision: int
    quantityPrecision: int
    baseAssetPrecision: int
    quotePrecision: int
    underlyingType: str
    underlyingSubType: list[str]
    settlePlan: int
    triggerProtect: str
    liquidationFee: str
    marketTakeBound: str
    maxMoveOrderLimit: int
    filters: list[Filter]
    orderTypes: list[str]
    timeInForce: list[str]


class ExchangeInfo(TypedDict, total=False):
    timezone: str
    serverTime: int
    futuresType: str
    rateLimits: list[dict[str, Any]]
    exchangeFilters: list[Any]
    assets: list[dict[str, Any]]
    symbols: list[SymbolRow]


class OrderRow(TypedDict, total=False):
    """``POST/GET/DELETE /fapi/v1/order`` reply and ``GET /fapi/v1/openOrders`` row.

    ``status``: NEW, PARTIALLY_FILLED, FILLED, CANCELED, REJECTED, EXPIRED,
    EXPIRED_IN_MATCH. ``avgPrice`` ``"0.00"`` while nothing is filled.
    """

    orderId: int
    symbol: str
    status: str
    clientOrderId: str
    price: str
    avgPrice: str
    origQty: str
    executedQty: str
    cumQty: str
    cumQuote: str
    timeInForce: str
    type: str
    reduceOnly: bool
    closePosition: bool
    side: str
    positionSide: str
    stopPrice: str
    workingType: str
    priceProtect: bool
    origType: str
    priceMatch: str
    selfTradePreventionMode: str
    goodTillDate: int
    time: int
    updateTime: int


class AlgoOrderRow(TypedDict, total=False):
    """``POST/GET/DELETE /fapi/v1/algoOrder`` reply and ``GET /fapi/v1/openAlgoOrders`` row
    (trade/rest-api/New-Algo-Order, Query-Algo-Order).

    ``algoStatus``: NEW → TRIGGERING → TRIGGERED → FINISHED, or CANCELED / EXPIRED /
    REJECTED. ``actualOrderId`` is the regular order created on trigger ("" before).
    """

    algoId: int
    clientAlgoId: str
    algoType: str
    orderType: str
    symbol: str
    side: str
    positionSide: str
    timeInForce: str
    quantity: str
    algoStatus: str
    actualOrderId: str
    actualPrice: str
    actualQty: str
    triggerPrice: str
    price: str
    icebergQuantity: str | None
    tpOrderType: str
    selfTradePreventionMode: str
    workingType: str
    priceMatch: str
    closePosition: bool
    priceProtect: bool
    reduceOnly: bool
    createTime: int
    updateTime: int
    triggerTime: int
    goodTillDate: int


class PositionRiskRow(TypedDict, total=False):
    """``GET /fapi/v3/positionRisk`` row; in hedge mode one row per ``positionSide``
    (LONG/SHORT), ``positionAmt`` signed (negative for SHORT)."""

    symbol: str
    positionSide: str
    positionAmt: str
    entryPrice: str
    breakEvenPrice: str
    markPrice: str
    unRealizedProfit: str
    liquidationPrice: str
    isolatedMargin: str
    notional: str
    marginAsset: str
    isolatedWallet: str
    initialMargin: str
    maintMargin: str
    positionInitialMargin: str
    openOrderInitialMargin: str
    adl: int
    bidNotional: str
    askNotional: str
    updateTime: int


class BalanceRow(TypedDict, total=False):
    """``GET /fapi/v3/balance`` row."""

    accountAlias: str
    asset: str
    balance: str
    crossWalletBalance: str
    crossUnPnl: str
    availableBalance: str
    maxWithdrawAmount: str
    marginAvailable: bool
    updateTime: int


class SymbolConfigRow(TypedDict, total=False):
    """``GET /fapi/v1/symbolConfig`` row (account/rest-api/Symbol-Config)."""

    symbol: str
    marginType: str  # CROSSED | ISOLATED
    isAutoAddMargin: bool
    leverage: int
    maxNotionalValue: str


class AccountTradeRow(TypedDict, total=False):
    """``GET /fapi/v1/userTrades`` row. ``commission`` > 0 is a cost."""

    buyer: bool
    commission: str
    commissionAsset: str
    id: int
    maker: bool
    orderId: int
    price: str
    qty: str
    quoteQty: str
    realizedPnl: str
    side: str
    positionSide: str
    symbol: str
    time: int


# --- WebSocket (user-data-streams/*, websocket-market-streams/Mark-Price-Stream) ----------


class MarkPriceEvent(TypedDict, total=False):
    """``<symbol>@markPrice@1s`` / ``!markPrice@arr@1s`` item: ``e="markPriceUpdate"``,
    ``p`` mark, ``i`` index, ``P`` estimated settle, ``r`` funding rate, ``T`` next funding."""

    e: str
    E: int
    s: str
    p: str
    i: str
    P: str
    r: str
    T: int


class OrderUpdateOrder(TypedDict, total=False):
    """``ORDER_TRADE_UPDATE.o``: ``x`` execution type (NEW, CANCELED, CALCULATED, EXPIRED,
    TRADE, AMENDMENT), ``X`` order status, ``i`` orderId, ``c`` clientOrderId, ``l``/``L``
    last filled qty/price, ``z`` cumulative filled, ``n``/``N`` commission and asset, ``t``
    trade id, ``m`` maker, ``R`` reduce-only, ``ps`` position side, ``ot`` original type,
    ``cp`` close-all, ``rp`` realized profit of the trade, ``sp`` stop price."""

    s: str
    c: str
    S: str
    o: str
    f: str
    q: str
    p: str
    ap: str
    sp: str
    x: str
    X: str
    i: int
    l: str  # noqa: E741 (the venue's field name)
    z: str
    L: str
    N: str
    n: str
    T: int
    t: int
    b: str
    a: str
    m: bool
    R: bool
    wt: str
    ot: str
    ps: str
    cp: bool
    rp: str
    pP: bool
    si: int
    ss: int
    V: str
    pm: str
    gtd: int


class OrderTradeUpdateEvent(TypedDict, total=False):
    e: str  # "ORDER_TRADE_UPDATE"
    E: int
    T: int
    o: OrderUpdateOrder


class AlgoUpdateOrder(TypedDict, total=False):
    """``ALGO_UPDATE.o``: ``caid`` clientAlgoId, ``aid`` algoId, ``at`` algo type, ``o``
    order type, ``X`` algo status, ``ai`` the triggered order's id ("" before), ``tp``
    trigger price, ``cp`` close-all, ``wt`` working type, ``tt`` trigger time."""

    caid: str
    aid: int
    at: str
    o: str
    s: str
    S: str
    ps: str
    f: str
    q: str
    X: str
    ai: str
    ap: str
    aq: str
    act: str
    tp: str
    p: str
    V: str
    wt: str
    pm: str
    cp: bool
    pP: bool
    R: bool
    tt: int
    gtd: int
    rm: str


class AlgoUpdateEvent(TypedDict, total=False):
    e: str  # "ALGO_UPDATE"
    E: int
    T: int
    o: AlgoUpdateOrder


class WsBalance(TypedDict, total=False):
    a: str
    wb: str
    cw: str
    bc: str


class WsPosition(TypedDict, total=False):
    """``ACCOUNT_UPDATE.a.P[]``: ``pa`` signed amount, ``ep`` entry, ``bep`` break-even,
    ``up`` unrealized PnL, ``mt`` margin type, ``ps`` position side."""

    s: str
    pa: str
    ep: str
    bep: str
    cr: str
    up: str
    mt: str
    iw: str
    ps: str


class AccountUpdateEvent(TypedDict, total=False):
    """``ACCOUNT_UPDATE``: ``a.m`` reason (ORDER, FUNDING_FEE, ...), ``a.B`` balances,
    ``a.P`` positions that changed."""

    e: str
    E: int
    T: int
    a: dict[str, Any]


class TradeLiteEvent(TypedDict, total=False):
    """``TRADE_LITE``: a low-latency fill notice without commission, realized PnL or
    position side (``ORDER_TRADE_UPDATE`` with ``x=TRADE`` carries those)."""

    e: str
    E: int
    T: int
    s: str
    q: str
    p: str
    m: bool
    c: str
    S: str
    L: str
    l: str  # noqa: E741
    t: int
    i: int


class ListenKeyExpiredEvent(TypedDict, total=False):
    e: str  # "listenKeyExpired"
    E: int
    listenKey: str
