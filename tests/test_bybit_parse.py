"""Bybit wire rows → domain: explicit tables, Decimal, and loud failures on unknown shapes."""

from __future__ import annotations

from decimal import Decimal

import pytest

from adapters.bybit.parse import (
    ORDER_STATUS,
    ParseError,
    parse_execution,
    parse_instrument,
    parse_order,
    parse_position,
)
from tradebot.domain import InstrumentStatus, OrderStatus, OrderType, PositionSide, Side

D = Decimal

ORDER = {
    "orderId": "1",
    "orderLinkId": "tb-x-S1",
    "symbol": "BTCUSDT",
    "side": "Sell",
    "positionIdx": 1,
    "orderStatus": "Untriggered",
    "orderType": "Market",
    "qty": "0.010",
    "cumExecQty": "0",
    "avgPrice": "0",
    "price": "0",
    "triggerPrice": "97000.5",
    "reduceOnly": True,
    "closeOnTrigger": True,
    "updatedTime": "1700000000000",
}


def test_conditional_order_row() -> None:
    o = parse_order(ORDER)
    assert (o.order_type, o.status, o.position_side, o.side) == (
        OrderType.STOP_MARKET,
        OrderStatus.NEW,
        PositionSide.LONG,
        Side.SELL,
    )
    assert o.trigger_price == D("97000.5") and o.avg_fill_price is None and o.reduce_only
    assert o.qty == D("0.010") and isinstance(o.qty, Decimal)
    assert o.updated_at is not None and o.updated_at.tzinfo is not None


def test_every_documented_order_status_is_mapped_and_unknown_raises() -> None:
    for status in (
        "New",
        "PartiallyFilled",
        "Untriggered",
        "Rejected",
        "Filled",
        "PartiallyFilledCanceled",
        "Cancelled",
        "Triggered",
        "Deactivated",
    ):
        assert status in ORDER_STATUS
    with pytest.raises(ParseError, match="orderStatus"):
        parse_order({**ORDER, "orderStatus": "Exploded"})
    with pytest.raises(ParseError, match="orderId"):
        parse_order({k: v for k, v in ORDER.items() if k != "orderId"})
    with pytest.raises(ParseError):
        parse_order({**ORDER, "qty": "abc"})


def test_position_rows_rest_and_ws_and_empty_hedge_side() -> None:
    rest = {
        "positionIdx": 2,
        "symbol": "ETHUSDT",
        "side": "Sell",
        "size": "1.5",
        "avgPrice": "2500.5",
        "markPrice": "2490",
        "stopLoss": "2600",
        "liqPrice": "",
        "unrealisedPnl": "15.75",
    }
    p = parse_position(rest)
    assert (p.position_side, p.qty, p.entry_price, p.stop_price, p.liq_price) == (
        PositionSide.SHORT,
        D("1.5"),
        D("2500.5"),
        D("2600"),
        None,
    )
    ws = {k: v for k, v in rest.items() if k != "avgPrice"} | {"entryPrice": "2501"}
    assert parse_position(ws).entry_price == D("2501")
    empty = {
        "positionIdx": 1,
        "symbol": "ETHUSDT",
        "side": "",
        "size": "0",
        "avgPrice": "0",
        "stopLoss": "0",
    }
    e = parse_position(empty)
    assert (e.position_side, e.qty, e.stop_price) == (PositionSide.LONG, D("0"), None)


def test_execution_side_and_reason() -> None:
    row = {
        "symbol": "BTCUSDT",
        "execId": "e1",
        "orderId": "1",
        "orderLinkId": "",
        "side": "Sell",
        "execQty": "0.01",
        "execPrice": "97000",
        "execFee": "0.5",
        "execType": "Trade",
        "stopOrderType": "StopLoss",
        "execTime": "1700000000000",
        "isMaker": False,
    }
    f = parse_execution(row, PositionSide.LONG)
    assert (f.reason, f.qty, f.fee_usdt, f.position_side) == (
        "stop",
        D("0.01"),
        D("0.5"),
        PositionSide.LONG,
    )
    assert (
        parse_execution({**row, "execType": "BustTrade"}, PositionSide.LONG).reason == "liquidation"
    )


def test_instrument_row() -> None:
    row = {
        "symbol": "XRPUSDT",
        "status": "Trading",
        "priceFilter": {"minPrice": "0.0001", "maxPrice": "199", "tickSize": "0.0001"},
        "lotSizeFilter": {
            "maxOrderQty": "1000000",
            "minOrderQty": "1",
            "qtyStep": "1",
            "minNotionalValue": "5",
        },
    }
    i = parse_instrument(row)
    assert (i.tick_size, i.qty_step, i.min_qty, i.min_notional, i.max_qty) == (
        D("0.0001"),
        D("1"),
        D("1"),
        D("5"),
        D("1000000"),
    )
    assert parse_instrument({**row, "status": "Delivering"}).status is InstrumentStatus.REDUCE_ONLY
    with pytest.raises(ParseError):
        parse_instrument({**row, "status": "Weird"})
    with pytest.raises(ParseError):
        parse_instrument({k: v for k, v in row.items() if k != "lotSizeFilter"})
