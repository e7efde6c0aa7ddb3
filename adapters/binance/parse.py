"""Binance USDⓈ-M wire rows → tradebot domain values (Decimal, explicit enum tables).

Every mapping of a venue string to a domain enum is a table here; an unknown value raises
:class:`ParseError` (a plain :class:`~tradebot.errors.VenueError`: a shape we do not
understand is a venue change, never a silent default).

Two id spaces (exchanges.md section 0): regular orders (``orderId`` / ``clientOrderId``)
and algo orders (``algoId`` / ``clientAlgoId``). An algo order is an :class:`OrderState`
with ``order_type=STOP_MARKET``, ``client_order_id`` = its ``clientAlgoId`` and
``venue_order_id`` = its ``algoId``; the regular order it creates on trigger is its
``actualOrderId`` (REST) / ``ai`` (``ALGO_UPDATE``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from math import lcm
from typing import Any, Final

from tradebot.domain import Instrument, InstrumentStatus, OrderStatus, OrderType, PositionSide, Side
from tradebot.errors import VenueError
from tradebot.money import Rounding, quantize_to_step, to_decimal
from tradebot.ports import Balance, Fill, MarkPrice, OrderState, PositionState, StopState

__all__ = [
    "ALGO_STATUS",
    "CONTRACT_STATUS",
    "ORDER_STATUS",
    "ORDER_TYPE",
    "PERPETUAL_DELIVERY_MS",
    "POSITION_SIDE",
    "SIDE",
    "ParseError",
    "algo_stop_state",
    "dec",
    "fill_from_order_update",
    "fill_from_trade",
    "ms_to_dt",
    "opt_dec",
    "parse_algo_order",
    "parse_algo_update",
    "parse_balance",
    "parse_instrument",
    "parse_mark_price",
    "parse_order",
    "parse_order_update",
    "parse_position",
    "positions_from_account_update",
]


class ParseError(VenueError):
    """A venue row did not have the shape we expect (missing field, unknown enum value)."""


SIDE: Final[dict[str, Side]] = {"BUY": Side.BUY, "SELL": Side.SELL}
POSITION_SIDE: Final[dict[str, PositionSide]] = {
    "LONG": PositionSide.LONG,
    "SHORT": PositionSide.SHORT,
}

# order status (common-definition "Order status")
ORDER_STATUS: Final[dict[str, OrderStatus]] = {
    "NEW": OrderStatus.NEW,
    "PARTIALLY_FILLED": OrderStatus.PARTIALLY_FILLED,
    "FILLED": OrderStatus.FILLED,
    "CANCELED": OrderStatus.CANCELED,
    "REJECTED": OrderStatus.REJECTED,
    "EXPIRED": OrderStatus.EXPIRED,
    "EXPIRED_IN_MATCH": OrderStatus.EXPIRED,  # self-trade prevention
}

# algoStatus (trade/rest-api/New-Algo-Order): FINISHED = triggered and the order it placed
# is done; TRIGGERING / TRIGGERED = fired, the market order follows.
ALGO_STATUS: Final[dict[str, OrderStatus]] = {
    "NEW": OrderStatus.NEW,
    "TRIGGERING": OrderStatus.TRIGGERED,
    "TRIGGERED": OrderStatus.TRIGGERED,
    "FINISHED": OrderStatus.FILLED,
    "CANCELED": OrderStatus.CANCELED,
    "EXPIRED": OrderStatus.EXPIRED,
    "REJECTED": OrderStatus.REJECTED,
}

# order types this bot places or must read (others — TAKE_PROFIT, TRAILING_STOP_MARKET,
# ... — are never ours; see BinanceVenue.open_orders)
ORDER_TYPE: Final[dict[str, OrderType]] = {
    "MARKET": OrderType.MARKET,
    "LIMIT": OrderType.LIMIT,
    "STOP_MARKET": OrderType.STOP_MARKET,
}

# contract status (common-definition "Contract status"). PRE_SETTLE / PRE_DELIVERING:
# positions can still be reduced, no new ones; SETTLING (a perpetual being delisted and
# settled), DELIVERING, DELIVERED, CLOSE, PENDING_TRADING: no trading.
CONTRACT_STATUS: Final[dict[str, InstrumentStatus]] = {
    "TRADING": InstrumentStatus.TRADING,
    "PRE_SETTLE": InstrumentStatus.REDUCE_ONLY,
    "PRE_DELIVERING": InstrumentStatus.REDUCE_ONLY,
    "SETTLING": InstrumentStatus.CLOSED,
    "DELIVERING": InstrumentStatus.CLOSED,
    "DELIVERED": InstrumentStatus.CLOSED,
    "CLOSE": InstrumentStatus.CLOSED,
    "PENDING_TRADING": InstrumentStatus.CLOSED,
}

# A perpetual's deliveryDate is 2100-12-25 unless the contract is scheduled for delisting,
# in which case it is the delisting time.
PERPETUAL_DELIVERY_MS: Final = 4133404800000


def _field(row: Mapping[str, Any], name: str) -> Any:
    try:
        return row[name]
    except KeyError:
        raise ParseError(f"binance row without {name!r}: {dict(row)!r:.300}") from None


def dec(row: Mapping[str, Any], name: str) -> Decimal:
    """Required decimal field (a string on the wire)."""
    try:
        return to_decimal(_field(row, name), field=name)
    except (TypeError, ValueError) as exc:
        raise ParseError(str(exc)) from None


def opt_dec(row: Mapping[str, Any], name: str, *, zero_is_none: bool = False) -> Decimal | None:
    """Optional decimal field: missing, ``None`` or ``""`` → None (``"0"`` too with
    ``zero_is_none``)."""
    v = row.get(name)
    if v is None or v == "":
        return None
    try:
        d = to_decimal(v, field=name)
    except (TypeError, ValueError) as exc:
        raise ParseError(str(exc)) from None
    if zero_is_none and d == 0:
        return None
    return d


def ms_to_dt(ms: object) -> datetime | None:
    """Unix milliseconds (int or numeric string) → aware UTC datetime; ``""``/None/0 → None."""
    if ms is None or ms == "" or ms == 0:
        return None
    try:
        return datetime.fromtimestamp(int(str(ms)) / 1000, tz=UTC)
    except ValueError:
        raise ParseError(f"bad timestamp {ms!r}") from None


def _enum(table: Mapping[str, Any], value: object, what: str) -> Any:
    try:
        return table[str(value)]
    except KeyError:
        raise ParseError(f"unknown binance {what} {value!r}") from None


def _filters(row: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    out: dict[str, Mapping[str, Any]] = {}
    for f in _field(row, "filters"):
        if isinstance(f, Mapping) and "filterType" in f:
            out[str(f["filterType"])] = f
    return out


def _lcm_step(a: Decimal, b: Decimal) -> Decimal:
    """Smallest step that is a whole multiple of both ``a`` and ``b`` (both > 0)."""
    exp = min(a.as_tuple().exponent, b.as_tuple().exponent)  # type: ignore[type-var]
    assert isinstance(exp, int)
    scale = Decimal(10) ** -exp
    ia, ib = int(a * scale), int(b * scale)
    return Decimal(lcm(ia, ib)) / scale


def parse_instrument(row: Mapping[str, Any]) -> Instrument:
    """exchangeInfo ``symbols[]`` row → :class:`Instrument`.

    * tick size and min price from ``PRICE_FILTER`` (the tick also applies to trigger prices);
    * quantity rules: our entries are MARKET orders and our exits MARKET or LIMIT, so the
      record carries the rules valid for both ``LOT_SIZE`` and ``MARKET_LOT_SIZE`` (which
      may be stricter for market orders): the step that is a multiple of both steps, the
      larger min qty (rounded up to that step), the smaller max qty;
    * ``MIN_NOTIONAL.notional`` per symbol (0 when absent);
    * status from :data:`CONTRACT_STATUS`; a PERPETUAL whose ``deliveryDate`` is set (it is
      being delisted) is REDUCE_ONLY for us: no new positions on a contract about to go.

    ``pricePrecision`` / ``quantityPrecision`` are never used as tick / step (they are not).
    """
    symbol = str(_field(row, "symbol"))
    filters = _filters(row)
    try:
        pf = filters["PRICE_FILTER"]
        lot = filters["LOT_SIZE"]
    except KeyError as exc:
        raise ParseError(f"binance {symbol}: no {exc.args[0]} filter") from None
    mkt = filters.get("MARKET_LOT_SIZE", lot)
    step_lot, step_mkt = dec(lot, "stepSize"), dec(mkt, "stepSize")
    if step_lot <= 0 or step_mkt <= 0:
        raise ParseError(f"binance {symbol}: stepSize must be > 0")
    step = _lcm_step(step_lot, step_mkt)
    min_qty = quantize_to_step(max(dec(lot, "minQty"), dec(mkt, "minQty"), step), step, Rounding.UP)
    maxes = [
        m
        for m in (
            opt_dec(lot, "maxQty", zero_is_none=True),
            opt_dec(mkt, "maxQty", zero_is_none=True),
        )
        if m is not None
    ]
    status = _enum(CONTRACT_STATUS, _field(row, "status"), "contract status")
    delivery = row.get("deliveryDate")
    if (
        status is InstrumentStatus.TRADING
        and row.get("contractType") == "PERPETUAL"
        and isinstance(delivery, int)
        and 0 < delivery < PERPETUAL_DELIVERY_MS
    ):
        status = InstrumentStatus.REDUCE_ONLY
    mn = filters.get("MIN_NOTIONAL")
    try:
        return Instrument(
            symbol=symbol,
            tick_size=dec(pf, "tickSize"),
            qty_step=step,
            min_qty=min_qty,
            min_notional=(opt_dec(mn, "notional") if mn is not None else None) or Decimal(0),
            max_qty=min(maxes) if maxes else None,
            min_price=opt_dec(pf, "minPrice", zero_is_none=True),
            status=status,
        )
    except ValueError as exc:
        raise ParseError(f"binance {symbol}: {exc}") from None


def _order_type(row: Mapping[str, Any], key: str = "type") -> OrderType:
    return _enum(ORDER_TYPE, _field(row, key), "order type")  # type: ignore[no-any-return]


def parse_order(row: Mapping[str, Any]) -> OrderState:
    """Regular order row (REST order / openOrders, ``newOrderRespType=RESULT`` reply) →
    :class:`OrderState`. ``avgPrice`` ``"0"`` means not filled yet; a ``reduceOnly`` flag is
    implied in hedge mode by the side (exit side of ``positionSide``)."""
    side = _enum(SIDE, _field(row, "side"), "side")
    ps = _enum(POSITION_SIDE, _field(row, "positionSide"), "positionSide")
    order_type = _order_type(row)
    price = opt_dec(row, "price", zero_is_none=True)
    return OrderState(
        symbol=str(_field(row, "symbol")),
        client_order_id=str(row.get("clientOrderId", "")),
        venue_order_id=str(_field(row, "orderId")),
        side=side,
        position_side=ps,
        order_type=order_type,
        status=_enum(ORDER_STATUS, _field(row, "status"), "order status"),
        qty=dec(row, "origQty"),
        filled_qty=opt_dec(row, "executedQty") or Decimal(0),
        avg_fill_price=opt_dec(row, "avgPrice", zero_is_none=True),
        price=price if order_type is OrderType.LIMIT else None,
        trigger_price=opt_dec(row, "stopPrice", zero_is_none=True),
        reduce_only=bool(row.get("reduceOnly", False)) or side is ps.exit_side,
        close_position=bool(row.get("closePosition", False)),
        updated_at=ms_to_dt(row.get("updateTime")),
    )


def parse_algo_order(row: Mapping[str, Any]) -> OrderState:
    """Algo order row (``/fapi/v1/algoOrder``, ``openAlgoOrders``) → :class:`OrderState`
    (``STOP_MARKET``, ids ``clientAlgoId`` / ``algoId``; ``qty`` 0 for close-position)."""
    side = _enum(SIDE, _field(row, "side"), "side")
    ps = _enum(POSITION_SIDE, _field(row, "positionSide"), "positionSide")
    return OrderState(
        symbol=str(_field(row, "symbol")),
        client_order_id=str(row.get("clientAlgoId", "")),
        venue_order_id=str(_field(row, "algoId")),
        side=side,
        position_side=ps,
        order_type=_order_type(row, "orderType"),
        status=_enum(ALGO_STATUS, _field(row, "algoStatus"), "algoStatus"),
        qty=opt_dec(row, "quantity") or Decimal(0),
        filled_qty=opt_dec(row, "actualQty") or Decimal(0),
        avg_fill_price=opt_dec(row, "actualPrice", zero_is_none=True),
        price=None,
        trigger_price=dec(row, "triggerPrice"),
        reduce_only=bool(row.get("reduceOnly", False)) or side is ps.exit_side,
        close_position=bool(row.get("closePosition", False)),
        updated_at=ms_to_dt(row.get("updateTime")),
    )


def algo_stop_state(row: Mapping[str, Any], position_side: PositionSide) -> StopState | None:
    """The protective stop of ``position_side`` this open algo row is, or None: a live
    ``STOP_MARKET`` on the exit side of that position side (close-position or a quantity)."""
    if row.get("orderType") != "STOP_MARKET" or row.get("positionSide") != position_side.value:
        return None
    if row.get("side") != position_side.exit_side.value or row.get("algoStatus") != "NEW":
        return None
    close_all = bool(row.get("closePosition", False))
    return StopState(
        symbol=str(_field(row, "symbol")),
        position_side=position_side,
        trigger_price=dec(row, "triggerPrice"),
        client_order_id=str(row.get("clientAlgoId", "")),
        venue_order_id=str(_field(row, "algoId")),
        qty=None if close_all else opt_dec(row, "quantity", zero_is_none=True),
    )


def parse_position(row: Mapping[str, Any]) -> PositionState:
    """``/fapi/v3/positionRisk`` row → :class:`PositionState` (``qty`` = |positionAmt|).

    Raises:
        ParseError: ``positionSide`` BOTH (one-way mode: the bot needs hedge mode).
    """
    ps = _enum(POSITION_SIDE, _field(row, "positionSide"), "positionSide (hedge mode needed)")
    amt = dec(row, "positionAmt")
    return PositionState(
        symbol=str(_field(row, "symbol")),
        position_side=ps,
        qty=abs(amt),
        entry_price=opt_dec(row, "entryPrice") or Decimal(0),
        mark_price=opt_dec(row, "markPrice", zero_is_none=True),
        liq_price=opt_dec(row, "liquidationPrice", zero_is_none=True),
        unrealized_pnl_usdt=opt_dec(row, "unRealizedProfit"),
        stop_price=None,  # Binance has no position-level stop
    )


def parse_balance(rows: Iterable[Mapping[str, Any]]) -> Balance:
    """``/fapi/v3/balance`` rows → the USDT :class:`Balance` (``balance`` = wallet,
    ``availableBalance`` = what new margin can use)."""
    for row in rows:
        if row.get("asset") == "USDT":
            return Balance(
                wallet_usdt=dec(row, "balance"), available_usdt=dec(row, "availableBalance")
            )
    raise ParseError("binance balance has no USDT row")


def _fill_reason(client_order_id: str, original_type: str, from_algo: bool) -> str:
    # Binance names venue-generated closes by client id: "autoclose-<ts>" for liquidation,
    # "adl_autoclose" for auto-deleveraging (user-data-streams/Event-Order-Update).
    if client_order_id.startswith("autoclose-"):
        return "liquidation"
    if client_order_id == "adl_autoclose":
        return "adl"
    if from_algo or original_type in ("STOP_MARKET", "STOP"):
        return "stop"
    return ""


def fill_from_trade(
    row: Mapping[str, Any], client_order_id: str = "", *, from_algo: bool = False
) -> Fill:
    """``/fapi/v1/userTrades`` row → :class:`Fill` (``commission`` > 0 is a cost; a
    non-USDT commission asset is reported as 0 USDT, see :func:`fill_from_order_update`)."""
    side = _enum(SIDE, _field(row, "side"), "side")
    fee = dec(row, "commission") if row.get("commissionAsset", "USDT") == "USDT" else Decimal(0)
    return Fill(
        symbol=str(_field(row, "symbol")),
        client_order_id=client_order_id,
        venue_order_id=str(_field(row, "orderId")),
        trade_id=str(_field(row, "id")),
        side=side,
        position_side=_enum(POSITION_SIDE, _field(row, "positionSide"), "positionSide"),
        qty=dec(row, "qty"),
        price=dec(row, "price"),
        fee_usdt=fee,
        is_maker=bool(row.get("maker", False)),
        ts=ms_to_dt(row.get("time")) or datetime.now(UTC),
        realized_pnl_usdt=opt_dec(row, "realizedPnl"),
        reason="stop" if from_algo else "",
    )


# --- WebSocket ----------------------------------------------------------------------------


def parse_mark_price(ev: Mapping[str, Any]) -> MarkPrice:
    """``markPriceUpdate`` → :class:`MarkPrice` (``p`` mark, ``E`` event time)."""
    return MarkPrice(
        symbol=str(_field(ev, "s")),
        mark_price=dec(ev, "p"),
        ts=ms_to_dt(ev.get("E")) or datetime.now(UTC),
    )


def parse_order_update(o: Mapping[str, Any], *, client_order_id: str | None = None) -> OrderState:
    """``ORDER_TRADE_UPDATE.o`` → :class:`OrderState` (``client_order_id`` overrides ``c``:
    the order an algo stop placed is reported under the stop's ``clientAlgoId``)."""
    side = _enum(SIDE, _field(o, "S"), "side")
    ps = _enum(POSITION_SIDE, _field(o, "ps"), "positionSide")
    order_type = _order_type(o, "o")
    price = opt_dec(o, "p", zero_is_none=True)
    return OrderState(
        symbol=str(_field(o, "s")),
        client_order_id=client_order_id if client_order_id is not None else str(o.get("c", "")),
        venue_order_id=str(_field(o, "i")),
        side=side,
        position_side=ps,
        order_type=order_type,
        status=_enum(ORDER_STATUS, _field(o, "X"), "order status"),
        qty=dec(o, "q"),
        filled_qty=opt_dec(o, "z") or Decimal(0),
        avg_fill_price=opt_dec(o, "ap", zero_is_none=True),
        price=price if order_type is OrderType.LIMIT else None,
        trigger_price=opt_dec(o, "sp", zero_is_none=True),
        reduce_only=bool(o.get("R", False)) or side is ps.exit_side,
        close_position=bool(o.get("cp", False)),
        updated_at=ms_to_dt(o.get("T")),
    )


def fill_from_order_update(
    o: Mapping[str, Any], *, client_order_id: str | None = None, from_algo: bool = False
) -> Fill | None:
    """The execution in an ``ORDER_TRADE_UPDATE.o`` with ``x=TRADE``, else None.

    ``l``/``L`` last filled qty/price, ``t`` trade id, ``n`` commission in asset ``N``
    (> 0 a cost; a commission paid in another asset — BNB fee discount — is reported as
    0 USDT: it is not converted), ``rp`` realized profit of this trade, ``m`` maker.
    """
    if o.get("x") != "TRADE":
        return None
    cid = client_order_id if client_order_id is not None else str(o.get("c", ""))
    fee = opt_dec(o, "n") or Decimal(0)
    if o.get("N") not in (None, "", "USDT"):
        fee = Decimal(0)
    return Fill(
        symbol=str(_field(o, "s")),
        client_order_id=cid,
        venue_order_id=str(_field(o, "i")),
        trade_id=str(_field(o, "t")),
        side=_enum(SIDE, _field(o, "S"), "side"),
        position_side=_enum(POSITION_SIDE, _field(o, "ps"), "positionSide"),
        qty=dec(o, "l"),
        price=dec(o, "L"),
        fee_usdt=fee,
        is_maker=bool(o.get("m", False)),
        ts=ms_to_dt(o.get("T")) or datetime.now(UTC),
        realized_pnl_usdt=opt_dec(o, "rp"),
        reason=_fill_reason(str(o.get("c", "")), str(o.get("ot", "")), from_algo),
    )


def parse_algo_update(o: Mapping[str, Any]) -> OrderState:
    """``ALGO_UPDATE.o`` → :class:`OrderState` of the algo order (``caid``/``aid``)."""
    side = _enum(SIDE, _field(o, "S"), "side")
    ps = _enum(POSITION_SIDE, _field(o, "ps"), "positionSide")
    return OrderState(
        symbol=str(_field(o, "s")),
        client_order_id=str(o.get("caid", "")),
        venue_order_id=str(_field(o, "aid")),
        side=side,
        position_side=ps,
        order_type=_order_type(o, "o"),
        status=_enum(ALGO_STATUS, _field(o, "X"), "algoStatus"),
        qty=opt_dec(o, "q") or Decimal(0),
        filled_qty=opt_dec(o, "aq") or Decimal(0),
        avg_fill_price=opt_dec(o, "ap", zero_is_none=True),
        price=None,
        trigger_price=dec(o, "tp"),
        reduce_only=bool(o.get("R", False)) or side is ps.exit_side,
        close_position=bool(o.get("cp", False)),
        updated_at=None,
    )


def positions_from_account_update(ev: Mapping[str, Any]) -> list[PositionState]:
    """The position sides an ``ACCOUNT_UPDATE`` reports (``a.P[]``; ``pa`` signed amount).
    Rows with ``ps`` BOTH (one-way mode) are skipped: the bot trades in hedge mode."""
    a = _field(ev, "a")
    out = []
    for p in a.get("P") or []:
        if p.get("ps") not in POSITION_SIDE:
            continue
        out.append(
            PositionState(
                symbol=str(_field(p, "s")),
                position_side=POSITION_SIDE[p["ps"]],
                qty=abs(dec(p, "pa")),
                entry_price=opt_dec(p, "ep") or Decimal(0),
                unrealized_pnl_usdt=opt_dec(p, "up"),
            )
        )
    return out
