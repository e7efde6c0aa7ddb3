"""Bybit v5 wire rows → tradebot domain values (Decimal, explicit enum tables).

Every mapping of a venue string to a domain enum is a table here; an unknown value raises
:class:`ParseError` (a :class:`~tradebot.errors.TransientError` subclass is wrong here: a
shape we do not understand is a venue change, so it is a plain ``VenueError``), never a
silent default.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Final

import attrs

from tradebot.domain import Instrument, InstrumentStatus, OrderStatus, OrderType, PositionSide, Side
from tradebot.errors import VenueError
from tradebot.money import to_decimal
from tradebot.ports import Balance, Fill, OrderState, PositionState

__all__ = [
    "HEDGE",
    "INSTRUMENT_STATUS",
    "ONE_WAY",
    "ORDER_STATUS",
    "POSITION_SIDE_BY_IDX",
    "POSITION_TPSL_TYPES",
    "SIDE",
    "SIDE_OUT",
    "ClosedPnl",
    "ParseError",
    "dec",
    "execution_position_side",
    "ms_to_dt",
    "opt_dec",
    "order_from_executions",
    "order_position_side",
    "parse_closed_pnl",
    "parse_execution",
    "parse_instrument",
    "parse_order",
    "parse_position",
    "parse_position_row",
    "parse_wallet_usdt",
    "position_mode_of",
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

# positionIdx (hedge mode): 1 = long side, 2 = short side; 0 = one-way mode (exchanges.md
# section 2, docs v5/enum#positionidx)
POSITION_SIDE_BY_IDX: Final[dict[int, PositionSide]] = {1: PositionSide.LONG, 2: PositionSide.SHORT}
ONE_WAY: Final = "one_way"
HEDGE: Final = "hedge"
# Position-level TP/SL show up in the order lists with these stopOrderType values; they are
# the position's stop (read from the position row), not separate stop orders, and they
# always close (docs v5/enum#stopordertype).
POSITION_TPSL_TYPES: Final = frozenset(
    {"StopLoss", "TakeProfit", "TrailingStop", "PartialStopLoss", "PartialTakeProfit"}
)


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
    except (ValueError, OverflowError, OSError):  # OSError/Overflow: beyond the platform's range
        raise ParseError(f"bad timestamp {ms!r:.60}") from None


def _enum(table: Mapping[str, Any], value: object, what: str) -> Any:
    try:
        return table[str(value)]
    except KeyError:
        raise ParseError(f"unknown bybit {what} {value!r}") from None


def _position_idx(row: Mapping[str, Any]) -> int:
    raw = _field(row, "positionIdx")
    try:
        return int(raw)
    except (TypeError, ValueError, OverflowError):  # Overflow: a JSON float inf/-inf
        raise ParseError(f"bad positionIdx {raw!r:.60}") from None


def position_mode_of(row: Mapping[str, Any]) -> str:
    """:data:`ONE_WAY` for ``positionIdx`` 0, :data:`HEDGE` for 1/2 (a position or order
    row); anything else raises :class:`ParseError`."""
    idx = _position_idx(row)
    if idx == 0:
        return ONE_WAY
    if idx in POSITION_SIDE_BY_IDX:
        return HEDGE
    raise ParseError(f"unknown bybit positionIdx {idx!r}")


def position_side_of(row: Mapping[str, Any]) -> PositionSide:
    """Position side of a *position* row: from ``positionIdx`` in hedge mode; in one-way
    mode (0) from ``side`` (``Buy`` long, ``Sell`` short). A flat one-way row
    (``side == ""``) belongs to no side: :class:`ParseError` (see
    :func:`parse_position_row`, which returns None for it)."""
    idx = _position_idx(row)
    if idx in POSITION_SIDE_BY_IDX:
        return POSITION_SIDE_BY_IDX[idx]
    side = row.get("side", "")
    if idx == 0 and side == "Buy":
        return PositionSide.LONG
    if idx == 0 and side == "Sell":
        return PositionSide.SHORT
    raise ParseError(f"cannot tell the position side of {dict(row)!r:.200}")


def order_position_side(row: Mapping[str, Any]) -> PositionSide:
    """The position side an *order* row belongs to.

    Hedge mode: ``positionIdx`` 1/2. One-way mode (0): an order that closes (``reduceOnly``,
    ``closeOnTrigger``, or a position TP/SL ``stopOrderType``) belongs to the side it
    closes — a reduce-only ``Sell`` closes a LONG — and any other order to the side it
    opens (``Buy`` long, ``Sell`` short).
    """
    idx = _position_idx(row)
    if idx in POSITION_SIDE_BY_IDX:
        return POSITION_SIDE_BY_IDX[idx]
    if idx != 0:
        raise ParseError(f"unknown bybit positionIdx {idx!r}")
    side = _enum(SIDE, _field(row, "side"), "side")
    closing = (
        bool(row.get("reduceOnly", False))
        or bool(row.get("closeOnTrigger", False))
        or str(row.get("stopOrderType", "")) in POSITION_TPSL_TYPES
    )
    opens_long = side is Side.BUY
    return PositionSide.LONG if opens_long != closing else PositionSide.SHORT


def parse_instrument(row: Mapping[str, Any]) -> Instrument:
    """instruments-info row → :class:`Instrument` (tick, step, min qty, min notional, max
    qty, max *market* qty: ``lotSizeFilter.maxMktOrderQty`` caps market orders and is
    smaller than ``maxOrderQty``; docs v5/market/instrument)."""
    pf = _field(row, "priceFilter")
    lf = _field(row, "lotSizeFilter")
    if not isinstance(pf, Mapping) or not isinstance(lf, Mapping):
        raise ParseError(f"bybit instrument {row.get('symbol')!r:.40}: filters are not objects")
    max_qty = opt_dec(lf, "maxOrderQty", zero_is_none=True)
    max_mkt = opt_dec(lf, "maxMktOrderQty", zero_is_none=True)
    min_notional = opt_dec(lf, "minNotionalValue") or Decimal(0)
    try:
        return _instrument(row, pf, lf, max_qty, max_mkt, min_notional)
    except ValueError as exc:  # rules the Instrument refuses (tick <= 0, ...): a venue change
        raise ParseError(f"bybit instrument {row.get('symbol')!r:.40}: {exc}") from None


def _instrument(
    row: Mapping[str, Any],
    pf: Mapping[str, Any],
    lf: Mapping[str, Any],
    max_qty: Decimal | None,
    max_mkt: Decimal | None,
    min_notional: Decimal,
) -> Instrument:
    return Instrument(
        symbol=str(_field(row, "symbol")),
        tick_size=dec(pf, "tickSize"),
        qty_step=dec(lf, "qtyStep"),
        min_qty=dec(lf, "minOrderQty"),
        min_notional=min_notional,
        max_qty=max_qty,
        min_price=opt_dec(pf, "minPrice", zero_is_none=True),
        status=_enum(INSTRUMENT_STATUS, _field(row, "status"), "instrument status"),
        max_market_qty=max_mkt,
    )


def parse_order(row: Mapping[str, Any]) -> OrderState:
    """Order row (REST realtime/history or WS ``order``) → :class:`OrderState`.

    Conditional orders (``triggerPrice`` non-zero) are ``STOP_MARKET`` when they execute at
    market. ``avgPrice`` ``""``/``"0"`` means not filled yet. The position side follows
    :func:`order_position_side` (one-way rows included).
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
        position_side=order_position_side(row),
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


def parse_position_row(row: Mapping[str, Any]) -> PositionState | None:
    """Position row → :class:`PositionState`, or None for a flat one-way row
    (``positionIdx`` 0, ``side ""``: it belongs to no side). Hedge rows always map (the
    empty side of a hedge symbol is a ``qty == 0`` state)."""
    if _position_idx(row) == 0 and row.get("side", "") == "":
        size = opt_dec(row, "size") or Decimal(0)
        if size != 0:
            raise ParseError(f"one-way position row with a size but no side: {dict(row)!r:.200}")
        return None
    return parse_position(row)


def parse_position(row: Mapping[str, Any]) -> PositionState:
    """Position row (REST ``avgPrice`` or WS ``entryPrice``) → :class:`PositionState`.

    ``stopLoss`` ``"0"``/``""`` means no position-level stop. Raises ParseError for a flat
    one-way row (use :func:`parse_position_row`).
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


def execution_position_side(
    row: Mapping[str, Any], position_idx: int | None = None
) -> PositionSide:
    """The position side of an execution row (REST ``/v5/execution/list`` and WS
    ``execution`` rows carry no ``positionIdx``).

    Args:
        position_idx: the order's ``positionIdx`` when known (from its order row); 1/2 decide.

    Otherwise: a fill either opens or closes its side; ``closedSize > 0`` means it closed
    (a closing ``Sell`` closes a LONG), in hedge and one-way mode alike.
    """
    if position_idx in POSITION_SIDE_BY_IDX:
        return POSITION_SIDE_BY_IDX[position_idx]
    closing = (opt_dec(row, "closedSize") or Decimal(0)) > 0
    buy = _enum(SIDE, _field(row, "side"), "side") is Side.BUY
    return PositionSide.LONG if buy != closing else PositionSide.SHORT


def parse_execution(row: Mapping[str, Any], position_side: PositionSide) -> Fill:
    """Execution row (WS ``execution`` item or REST ``/v5/execution/list`` row) → :class:`Fill`.

    The execution row carries no ``positionIdx``; the caller supplies the position side
    (:func:`execution_position_side`). ``execFee`` > 0 is a cost, < 0 a rebate (same sign
    convention as :class:`Fill`). ``realized_pnl_usdt`` is always None: ``execPnl`` is not
    on every real execution row (not on the REST list), so realized PnL comes from the
    exit fills against the entry (the journal projection) or from ``/v5/position/closed-pnl``
    (:func:`parse_closed_pnl`), never from ``execPnl``.
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
        realized_pnl_usdt=None,
        reason=reason,
    )


def order_from_executions(
    rows: Sequence[Mapping[str, Any]],
    *,
    position_side: PositionSide | None = None,
    reduce_only: bool | None = None,
) -> OrderState | None:
    """An order's state rebuilt from its executions (``/v5/execution/list`` by
    ``orderLinkId``), for when the order lists do not show it yet (order history may lag;
    after a venue restart closed orders are only in history).

    Filled quantity = sum of the ``Trade`` executions' ``execQty``; average price = their
    value-weighted ``execPrice``; status FILLED when the newest execution's ``leavesQty``
    is 0 (or the fills reach ``orderQty``), else PARTIALLY_FILLED. None without a trade.
    """
    trades = [
        r for r in rows if str(r.get("execType", "Trade")) in ("Trade", "AdlTrade", "BustTrade")
    ]
    if not trades:
        return None
    trades.sort(key=lambda r: int(str(r.get("execTime") or 0)))
    last = trades[-1]
    filled = sum((dec(r, "execQty") for r in trades), Decimal(0))
    value = sum((dec(r, "execQty") * dec(r, "execPrice") for r in trades), Decimal(0))
    order_qty = opt_dec(last, "orderQty", zero_is_none=True) or filled
    leaves = opt_dec(last, "leavesQty")
    done = (leaves is not None and leaves == 0) or filled >= order_qty
    side = _enum(SIDE, _field(last, "side"), "side")
    ps = position_side or execution_position_side(last)
    closing = (opt_dec(last, "closedSize") or Decimal(0)) > 0
    venue_type = str(last.get("orderType", "Market"))
    return OrderState(
        symbol=str(_field(last, "symbol")),
        client_order_id=str(last.get("orderLinkId", "")),
        venue_order_id=str(_field(last, "orderId")),
        side=side,
        position_side=ps,
        order_type=OrderType.LIMIT if venue_type == "Limit" else OrderType.MARKET,
        status=OrderStatus.FILLED if done else OrderStatus.PARTIALLY_FILLED,
        qty=max(order_qty, filled),
        filled_qty=filled,
        avg_fill_price=(value / filled) if filled > 0 else None,
        price=opt_dec(last, "orderPrice", zero_is_none=True) if venue_type == "Limit" else None,
        reduce_only=closing if reduce_only is None else reduce_only,
        updated_at=ms_to_dt(last.get("execTime")),
    )


@attrs.frozen
class ClosedPnl:
    """One ``/v5/position/closed-pnl`` row: the venue's realized PnL of one closing order
    (docs v5/position/close-pnl).

    Attributes:
        symbol: instrument.
        venue_order_id: the closing order's ``orderId``.
        position_side: the side that was closed (a closing ``Sell`` closes a LONG).
        closed_qty: ``closedSize`` (base units, > 0).
        avg_entry_price / avg_exit_price: USDT.
        closed_pnl_usdt: ``closedPnl`` (the venue's figure; it includes the trading fees of
            the opening and closing fills).
        ts: ``updatedTime`` (aware UTC).
    """

    symbol: str
    venue_order_id: str
    position_side: PositionSide
    closed_qty: Decimal
    avg_entry_price: Decimal
    avg_exit_price: Decimal
    closed_pnl_usdt: Decimal
    ts: datetime | None


def parse_closed_pnl(row: Mapping[str, Any]) -> ClosedPnl:
    """``/v5/position/closed-pnl`` row → :class:`ClosedPnl`."""
    side = _enum(SIDE, _field(row, "side"), "side")
    return ClosedPnl(
        symbol=str(_field(row, "symbol")),
        venue_order_id=str(_field(row, "orderId")),
        position_side=PositionSide.LONG if side is Side.SELL else PositionSide.SHORT,
        closed_qty=dec(row, "closedSize"),
        avg_entry_price=dec(row, "avgEntryPrice"),
        avg_exit_price=dec(row, "avgExitPrice"),
        closed_pnl_usdt=dec(row, "closedPnl"),
        ts=ms_to_dt(row.get("updatedTime") or row.get("createdTime")),
    )


def parse_wallet_usdt(account: Mapping[str, Any]) -> Balance:
    """USDT balance of a unified trading account (``/v5/account/wallet-balance``
    ``accountType=UNIFIED`` list item; docs https://bybit-exchange.github.io/docs/v5/account/wallet-balance).

    * ``wallet_usdt`` = the USDT coin's ``walletBalance``.
    * ``available_usdt`` = USDT available for new margin: the USDT coin's ``equity`` minus
      ``totalPositionIM`` (initial margin of its positions), ``totalOrderIM`` (margin held
      by open orders) and ``locked`` (spot orders), floored at 0.

    Not the account-level ``totalAvailableBalance``: that is a USD figure across every
    collateral coin (after haircuts), so it overstates what USDT can margin when the account
    holds other coins. Not the coin's ``availableToWithdraw``: deprecated for UNIFIED
    accounts (answered ``""``).

    Raises:
        ParseError: no USDT coin row or a malformed number.
    """
    for coin in account.get("coin") or []:
        if isinstance(coin, Mapping) and coin.get("coin") == "USDT":
            wallet = opt_dec(coin, "walletBalance") or Decimal(0)
            equity = opt_dec(coin, "equity")
            if equity is None:
                equity = wallet + (opt_dec(coin, "unrealisedPnl") or Decimal(0))
            held = sum(
                (
                    opt_dec(coin, k) or Decimal(0)
                    for k in ("totalPositionIM", "totalOrderIM", "locked")
                ),
                Decimal(0),
            )
            return Balance(wallet_usdt=wallet, available_usdt=max(equity - held, Decimal(0)))
    raise ParseError("wallet-balance has no USDT coin row")
