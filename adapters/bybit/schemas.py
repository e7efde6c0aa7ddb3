"""Bybit v5 wire shapes (linear category), with the venue's own field names.

Numbers are strings on the wire (Bybit sends ``"0.010"``, never a float); they are parsed
into ``Decimal`` only in :mod:`adapters.bybit.parse`. Shapes follow the v5 docs pages named
on each class (https://bybit-exchange.github.io/docs/v5/...). ``total=False`` because the
venue adds and omits fields over time; parse code reads what it needs and says which field
was missing.
"""

from __future__ import annotations

from typing import Any, TypedDict

__all__ = [
    "ClosedPnlRow",
    "Envelope",
    "ExecutionRow",
    "InstrumentRow",
    "LeverageFilter",
    "ListResult",
    "LotSizeFilter",
    "OrderCreateResult",
    "OrderRow",
    "PositionRow",
    "PriceFilter",
    "ServerTime",
    "TickerData",
    "WalletAccount",
    "WalletCoin",
    "WsPositionRow",
]


class Envelope(TypedDict, total=False):
    """Every REST reply: ``{retCode, retMsg, result, retExtInfo, time}`` (docs: v5/intro)."""

    retCode: int
    retMsg: str
    result: Any
    retExtInfo: dict[str, Any]
    time: int


class ServerTime(TypedDict, total=False):
    """``GET /v5/market/time`` result (docs: v5/market/time)."""

    timeSecond: str
    timeNano: str


class ListResult(TypedDict, total=False):
    """Paged list results: ``{category, list, nextPageCursor}``."""

    category: str
    list: list[Any]
    nextPageCursor: str


class PriceFilter(TypedDict, total=False):
    minPrice: str
    maxPrice: str
    tickSize: str


class LotSizeFilter(TypedDict, total=False):
    maxOrderQty: str
    maxMktOrderQty: str
    minOrderQty: str
    qtyStep: str
    postOnlyMaxOrderQty: str
    minNotionalValue: str


class LeverageFilter(TypedDict, total=False):
    minLeverage: str
    maxLeverage: str
    leverageStep: str


class InstrumentRow(TypedDict, total=False):
    """``GET /v5/market/instruments-info?category=linear`` row (docs: v5/market/instrument).

    ``status``: ``PreLaunch`` | ``Trading`` | ``Delivering`` | ``Closed``.
    """

    symbol: str
    contractType: str  # "LinearPerpetual"
    status: str
    baseCoin: str
    quoteCoin: str
    settleCoin: str
    launchTime: str
    deliveryTime: str
    priceScale: str
    leverageFilter: LeverageFilter
    priceFilter: PriceFilter
    lotSizeFilter: LotSizeFilter
    fundingInterval: int
    deliveryFeeRate: str
    unifiedMarginTrade: bool
    copyTrading: str
    upperFundingRate: str
    lowerFundingRate: str
    isPreListing: bool
    preListingInfo: Any


class OrderCreateResult(TypedDict, total=False):
    """``POST /v5/order/create|amend|cancel`` result: an acknowledgement only."""

    orderId: str
    orderLinkId: str


class OrderRow(TypedDict, total=False):
    """``GET /v5/order/realtime|history`` row and WS ``order`` topic item
    (docs: v5/order/open-order, v5/websocket/private/order).

    ``orderStatus``: New, PartiallyFilled, Untriggered, Rejected, PartiallyFilledCanceled,
    Filled, Cancelled, Triggered, Deactivated. ``stopOrderType``: "UNKNOWN" (or "") for plain orders,
    ``Stop`` for conditional orders, ``StopLoss``/``TakeProfit``/``TrailingStop``/
    ``PartialStopLoss``/``PartialTakeProfit`` for position TP/SL.
    """

    category: str
    orderId: str
    orderLinkId: str
    blockTradeId: str
    symbol: str
    price: str
    qty: str
    side: str  # "Buy" | "Sell"
    isLeverage: str
    positionIdx: int
    orderStatus: str
    createType: str
    cancelType: str
    rejectReason: str
    avgPrice: str
    leavesQty: str
    leavesValue: str
    cumExecQty: str
    cumExecValue: str
    cumExecFee: str
    timeInForce: str
    orderType: str  # "Market" | "Limit"
    stopOrderType: str
    orderIv: str
    triggerPrice: str
    triggerDirection: int  # 1 rises to, 2 falls to, 0 none
    triggerBy: str
    lastPriceOnCreated: str
    takeProfit: str
    stopLoss: str
    tpTriggerBy: str
    slTriggerBy: str
    tpslMode: str
    tpLimitPrice: str
    slLimitPrice: str
    reduceOnly: bool
    closeOnTrigger: bool
    smpType: str
    smpGroup: int
    smpOrderId: str
    placeType: str
    createdTime: str
    updatedTime: str


class PositionRow(TypedDict, total=False):
    """``GET /v5/position/list`` row (docs: v5/position). In hedge mode a symbol has two rows
    (``positionIdx`` 1 and 2); the empty side has ``side == ""`` and ``size == "0"``."""

    positionIdx: int
    riskId: int
    riskLimitValue: str
    symbol: str
    side: str  # "Buy" | "Sell" | ""
    size: str
    avgPrice: str
    positionValue: str
    tradeMode: int
    autoAddMargin: int
    adlRankIndicator: int
    leverage: str
    positionBalance: str
    markPrice: str
    liqPrice: str
    bustPrice: str
    positionIM: str
    positionMM: str
    tpslMode: str
    takeProfit: str
    stopLoss: str
    trailingStop: str
    unrealisedPnl: str
    curRealisedPnl: str
    cumRealisedPnl: str
    positionStatus: str
    sessionAvgPrice: str
    isReduceOnly: bool
    mmrSysUpdatedTime: str
    leverageSysUpdatedTime: str
    createdTime: str
    updatedTime: str
    seq: int


class WsPositionRow(PositionRow, total=False):
    """WS ``position`` topic item: like the REST row but the entry price is ``entryPrice``
    (docs: v5/websocket/private/position)."""

    category: str
    entryPrice: str


class ExecutionRow(TypedDict, total=False):
    """WS ``execution`` topic item (docs: v5/websocket/private/execution) and REST
    ``GET /v5/execution/list`` row (docs: v5/order/execution; no ``category``, plus
    ``feeCurrency``). ``execType``: Trade, Funding, AdlTrade, BustTrade, Settle, ...
    ``execPnl`` is not on every row (never on the REST list): realized PnL is not read
    from it."""

    category: str
    symbol: str
    execId: str
    execPrice: str
    execQty: str
    execFee: str
    execType: str
    execValue: str
    execTime: str
    isMaker: bool
    feeRate: str
    tradeIv: str
    markIv: str
    blockTradeId: str
    orderId: str
    orderLinkId: str
    side: str
    orderPrice: str
    orderQty: str
    orderType: str
    stopOrderType: str
    leavesQty: str
    closedSize: str
    markPrice: str
    indexPrice: str
    underlyingPrice: str
    isLeverage: str
    marketUnit: str
    createType: str
    execPnl: str
    feeCurrency: str
    seq: int


class ClosedPnlRow(TypedDict, total=False):
    """``GET /v5/position/closed-pnl`` row (docs: v5/position/close-pnl): one closing
    order's realized PnL. ``side`` is the closing order's side (``Sell`` closes a long)."""

    symbol: str
    orderId: str
    side: str
    qty: str
    orderPrice: str
    orderType: str
    execType: str
    closedSize: str
    cumEntryValue: str
    avgEntryPrice: str
    cumExitValue: str
    avgExitPrice: str
    closedPnl: str
    fillCount: str
    leverage: str
    createdTime: str
    updatedTime: str


class WalletCoin(TypedDict, total=False):
    """One coin of a unified account (docs: v5/account/wallet-balance). USDT available for
    new margin = ``equity - totalPositionIM - totalOrderIM - locked``;
    ``availableToWithdraw`` is deprecated for UNIFIED accounts (``""``)."""

    coin: str
    walletBalance: str
    equity: str
    usdValue: str
    locked: str
    availableToWithdraw: str
    totalOrderIM: str
    totalPositionIM: str
    totalPositionMM: str
    unrealisedPnl: str
    cumRealisedPnl: str


class WalletAccount(TypedDict, total=False):
    """``GET /v5/account/wallet-balance?accountType=UNIFIED`` list item. The ``total*``
    figures are account-level, in USD, across every collateral coin."""

    accountType: str
    totalEquity: str
    totalWalletBalance: str
    totalMarginBalance: str
    totalAvailableBalance: str
    totalInitialMargin: str
    coin: list[WalletCoin]


class TickerData(TypedDict, total=False):
    """WS ``tickers.{symbol}`` data (docs: v5/websocket/public/ticker): a ``snapshot`` has
    every field, a ``delta`` only the changed ones."""

    symbol: str
    tickDirection: str
    lastPrice: str
    markPrice: str
    indexPrice: str
    prevPrice24h: str
    price24hPcnt: str
    highPrice24h: str
    lowPrice24h: str
    openInterest: str
    fundingRate: str
    nextFundingTime: str
    bid1Price: str
    ask1Price: str
