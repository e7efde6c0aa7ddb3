"""Bybit v5 wire rows → tradebot domain values (Decimal, explicit enum tables).

Every mapping of a venue string to a domain enum is a table here; an unknown value raises
:class:`ParseError` (a :class:`~tradebot.errors.TransientError` subclass is wrong here: a
shape we do not understand is a venue change, so it is a plain ``VenueError``), never a
silent default.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Final

from tradebot.domain import Instrument, InstrumentStatus, OrderStatus, OrderType, PositionSide, Side
from tradebot.errors import VenueError
from tradebot.money import to_decimal
from tradebot.ports import Fill, OrderState, PositionState

__all__ = [
    "INSTRUMENT_STATUS",
    "ORDER_STATUS",
    "POSITION_SIDE_BY_IDX",
    "SIDE",
    "SIDE_OUT",
    "ParseError",
    "dec",
    "ms_to_dt",
    "opt_dec",
    "parse_execution",
    "parse_instrument",
    "parse_order",
    "parse_position",
]


class ParseError(VenueError):
    """A venue row did not have the shape we expect (missing field, unknown enum value)."""


SIDE: Final[dict[str, Side]] = {"Buy": Side.BUY, "Sell": Side.SELL}
SIDE_OUT: Final[dict[Side, str]] = {v: k for k, v in SIDE.items()}

# orderStatus (docs: v5/enum#orderstatus)
ORDER_STATUS: Final[dict[str, OrderStatus]] = {
    "Created": OrderStatus.NEW,
    "New": OrderStatus.NEW,
    "Untriggered": OrderStatus.NEW,
    "PartiallyFilled": OrderStatus.PARTIALLY_FILLED,
    "Filled": OrderStatus.FILLED,
    "Cancelled": OrderStatus.CANCELED,
    "PartiallyFilledCanceled": OrderStatus.CANCELED,
    "Deactivated": OrderStatus.CANCELED,
    "Rejected": OrderStatus.REJECTED,
    "Triggered": OrderStatus.TRIGGERED,
}

# instruments-info status (docs: v5/enum#status)
INSTRUMENT_STATUS: Final[dict[str, InstrumentStatus]] = {
    "Trading": InstrumentStatus.TRADING,
    "PreLaunch": InstrumentStatus.CLOSED,
    "Delivering": InstrumentStatus.REDUCE_ONLY,
    "Closed": InstrumentStatus.CLOSED,
}

# positionIdx (hedge mode): 1 = long side, 2 = short side (exchanges.md section 2)
POSITION_SIDE_BY_IDX: Final[dict[int, PositionSide]] = {1: PositionSide.LONG, 2: PositionSide.SHORT}


def _field(row: Mapping[str, Any], name: str) -> Any:
    try:
        return row[name]
    except KeyError:
        raise ParseError(f"bybit row without {name!r}: {dict(row)!r:.300}") from None


def dec(row: Mapping[str, Any], name: str) -> Decimal:
    """Required decimal field (a string on the wire)."""
    try:
        return to_decimal(_field(row, name), field=name)
    except (TypeError, ValueError) as exc:
        raise ParseError(str(exc)) from None


def opt_dec(row: Mapping[str, Any], name: str, *, zero_is_none: bool = False) -> Decimal | None:
    """Optional decimal field: missing or ``""`` → None (and ``"0"`` too if ``zero_is_none``)."""
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
    """Unix milliseconds (int or numeric string) → aware UTC datetime; ``""``/None → None."""
    if ms is None or ms == "":
        return None
    try:
        return datetime.fromtimestamp(int(str(ms)) / 1000, tz=UTC)
    except ValueError:
        raise ParseError(f"bad timestamp {ms!r}") from None


def _enum(table: Mapping[str, Any], value: object, what: str) -> Any:
    try:
        return table[str(value)]
    except KeyError:
        raise ParseError(f"unknown bybit {what} {value!r}") from None


def position_side_of(row: Mapping[str, Any]) -> PositionSide:
    """Position side from ``positionIdx`` (hedge mode). One-way (0) falls back to ``side``."""
    idx = int(_field(row, "positionIdx"))
    if idx in POSITION_SIDE_BY_IDX:
        return POSITION_SIDE_BY_IDX[idx]
    side = row.get("side", "")
    if side == "Buy":
        return PositionSide.LONG
    if side == "Sell":
        return PositionSide.SHORT
    raise ParseError(f"cannot tell the position side of {dict(row)!r:.200}")


def parse_instrument(row: Mapping[str, Any]) -> Instrument:
    """instruments-info row → :class:`Instrument` (tick, step, min qty, min notional)."""
    pf = _field(row, "priceFilter")
    lf = _field(row, "lotSizeFilter")
    max_qty = opt_dec(lf, "maxOrderQty")
    min_notional = opt_dec(lf, "minNotionalValue") or Decimal(0)
    return Instrument(
        symbol=str(_field(row, "symbol")),
        tick_size=dec(pf, "tickSize"),
        qty_step=dec(lf, "qtyStep"),
        min_qty=dec(lf, "minOrderQty"),
        min_notional=min_notional,
        max_qty=max_qty,
        min_price=opt_dec(pf, "minPrice", zero_is_none=True),
        status=_enum(INSTRUMENT_STATUS, _field(row, "status"), "instrument status"),
    )


def parse_order(row: Mapping[str, Any]) -> OrderState:
    """Order row (REST realtime/history or WS ``order``) → :class:`OrderState`.

    Conditional orders (``triggerPrice`` non-zero) are ``STOP_MARKET`` when they execute at
    market. ``avgPrice`` ``""``/``"0"`` means not filled yet.
    """
    trigger = opt_dec(row, "triggerPrice", zero_is_none=True)
    venue_type = str(_field(row, "orderType"))
    if venue_type not in ("Market", "Limit"):
        raise ParseError(f"unknown bybit orderType {venue_type!r}")
    if trigger is not None and venue_type == "Market":
        order_type = OrderType.STOP_MARKET
    else:
        order_type = OrderType.MARKET if venue_type == "Market" else OrderType.LIMIT
    price = opt_dec(row, "price", zero_is_none=True)
    return OrderState(
        symbol=str(_field(row, "symbol")),
        client_order_id=str(row.get("orderLinkId", "")),
        venue_order_id=str(_field(row, "orderId")),
        side=_enum(SIDE, _field(row, "side"), "side"),
        position_side=position_side_of(row),
        order_type=order_type,
        status=_enum(ORDER_STATUS, _field(row, "orderStatus"), "orderStatus"),
        qty=dec(row, "qty"),
        filled_qty=opt_dec(row, "cumExecQty") or Decimal(0),
        avg_fill_price=opt_dec(row, "avgPrice", zero_is_none=True),
        price=price if order_type is OrderType.LIMIT else None,
        trigger_price=trigger,
        reduce_only=bool(row.get("reduceOnly", False)),
        close_position=False,  # Bybit has no closePosition flag (closeOnTrigger is not it)
        updated_at=ms_to_dt(row.get("updatedTime")),
    )


def parse_position(row: Mapping[str, Any]) -> PositionState:
    """Position row (REST ``avgPrice`` or WS ``entryPrice``) → :class:`PositionState`.

    ``stopLoss`` ``"0"``/``""`` means no position-level stop.
    """
    entry = opt_dec(row, "avgPrice")
    if entry is None:
        entry = opt_dec(row, "entryPrice") or Decimal(0)
    return PositionState(
        symbol=str(_field(row, "symbol")),
        position_side=position_side_of(row),
        qty=dec(row, "size"),
        entry_price=entry,
        mark_price=opt_dec(row, "markPrice", zero_is_none=True),
        liq_price=opt_dec(row, "liqPrice", zero_is_none=True),
        unrealized_pnl_usdt=opt_dec(row, "unrealisedPnl"),
        stop_price=opt_dec(row, "stopLoss", zero_is_none=True),
    )


_EXEC_REASON: Final[dict[str, str]] = {
    "Trade": "",
    "AdlTrade": "adl",
    "BustTrade": "liquidation",
    "Funding": "funding",
    "Settle": "funding",
}


def parse_execution(row: Mapping[str, Any], position_side: PositionSide) -> Fill:
    """WS ``execution`` item → :class:`Fill`.

    The execution row carries no ``positionIdx``; the caller supplies the position side
    (known from the order: entry side BUY → LONG, reduce-only SELL → LONG, ...).
    ``execFee`` > 0 is a cost, < 0 a rebate (same sign convention as :class:`Fill`).
    """
    stop_type = str(row.get("stopOrderType", ""))
    reason = _EXEC_REASON.get(str(row.get("execType", "Trade")), "")
    if not reason and stop_type in ("StopLoss", "PartialStopLoss", "Stop", "TrailingStop"):
        reason = "stop"
    ts = ms_to_dt(row.get("execTime")) or datetime.now(UTC)
    return Fill(
        symbol=str(_field(row, "symbol")),
        client_order_id=str(row.get("orderLinkId", "")),
        venue_order_id=str(_field(row, "orderId")),
        trade_id=str(_field(row, "execId")),
        side=_enum(SIDE, _field(row, "side"), "side"),
        position_side=position_side,
        qty=dec(row, "execQty"),
        price=dec(row, "execPrice"),
        fee_usdt=opt_dec(row, "execFee") or Decimal(0),
        is_maker=bool(row.get("isMaker", False)),
        ts=ts,
        realized_pnl_usdt=opt_dec(row, "execPnl"),
        reason=reason,
    )
