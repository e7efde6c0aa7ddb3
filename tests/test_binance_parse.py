"""Binance wire rows → domain values: filters, statuses, both id spaces, stream events."""

from __future__ import annotations

from decimal import Decimal

import pytest

from adapters.binance.parse import (
    PERPETUAL_DELIVERY_MS,
    ParseError,
    algo_stop_state,
    fill_from_order_update,
    parse_algo_order,
    parse_algo_update,
    parse_instrument,
    parse_mark_price,
    parse_order,
    parse_position,
    positions_from_account_update,
)
from tradebot.domain import InstrumentStatus, OrderStatus, OrderType, PositionSide, Side

D = Decimal


def symbol(**over: object) -> dict[str, object]:
    row: dict[str, object] = {
        "symbol": "BTCUSDT",
        "contractType": "PERPETUAL",
        "deliveryDate": PERPETUAL_DELIVERY_MS,
        "status": "TRADING",
        "quoteAsset": "USDT",
        "marginAsset": "USDT",
        "pricePrecision": 2,  # NOT the tick
        "quantityPrecision": 3,
        "filters": [
            {
                "filterType": "PRICE_FILTER",
                "minPrice": "556.80",
                "maxPrice": "4529764",
                "tickSize": "0.10",
            },
            {"filterType": "LOT_SIZE", "stepSize": "0.001", "maxQty": "1000", "minQty": "0.001"},
            {
                "filterType": "MARKET_LOT_SIZE",
                "stepSize": "0.002",
                "maxQty": "120",
                "minQty": "0.003",
            },
            {"filterType": "MIN_NOTIONAL", "notional": "100"},
            {
                "filterType": "PERCENT_PRICE",
                "multiplierUp": "1.0500",
                "multiplierDown": "0.9500",
                "multiplierDecimal": "4",
            },
        ],
    }
    row.update(over)
    return row


def test_instrument_uses_the_filters_and_the_stricter_market_lot_size() -> None:
    i = parse_instrument(symbol())
    assert i.tick_size == D("0.10") and i.min_price == D("556.80")
    # valid for LIMIT and MARKET orders: step multiple of both, larger min, smaller max
    assert (i.qty_step, i.min_qty, i.max_qty) == (D("0.002"), D("0.004"), D("120"))
    assert i.min_notional == D("100") and i.status is InstrumentStatus.TRADING


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("TRADING", InstrumentStatus.TRADING),
        ("PRE_SETTLE", InstrumentStatus.REDUCE_ONLY),
        ("SETTLING", InstrumentStatus.CLOSED),
        ("CLOSE", InstrumentStatus.CLOSED),
        ("PENDING_TRADING", InstrumentStatus.CLOSED),
    ],
)
def test_contract_status(status: str, expected: InstrumentStatus) -> None:
    assert parse_instrument(symbol(status=status)).status is expected


def test_a_perpetual_being_delisted_takes_no_new_positions() -> None:
    i = parse_instrument(symbol(deliveryDate=1767225600000))
    assert i.status is InstrumentStatus.REDUCE_ONLY


def test_bad_instrument_rows_raise() -> None:
    with pytest.raises(ParseError, match="status"):
        parse_instrument(symbol(status="MOON"))
    with pytest.raises(ParseError, match="PRICE_FILTER"):
        parse_instrument(symbol(filters=[]))


def test_regular_and_algo_orders_keep_their_id_spaces() -> None:
    o = parse_order(
        {
            "orderId": 42,
            "clientOrderId": "tb-x-E0",
            "symbol": "BTCUSDT",
            "status": "FILLED",
            "side": "BUY",
            "positionSide": "LONG",
            "type": "MARKET",
            "origQty": "0.010",
            "executedQty": "0.010",
            "avgPrice": "100000.5",
            "price": "0",
            "stopPrice": "0",
            "updateTime": 1700000000000,
        }
    )
    assert (o.venue_order_id, o.client_order_id, o.status) == ("42", "tb-x-E0", OrderStatus.FILLED)
    assert o.avg_fill_price == D("100000.5") and not o.reduce_only
    row = {
        "algoId": 7,
        "clientAlgoId": "tb-x-S1",
        "algoType": "CONDITIONAL",
        "orderType": "STOP_MARKET",
        "symbol": "BTCUSDT",
        "side": "SELL",
        "positionSide": "LONG",
        "quantity": "0",
        "algoStatus": "NEW",
        "actualOrderId": "",
        "triggerPrice": "98000.0",
        "closePosition": True,
    }
    a = parse_algo_order(row)
    assert (a.venue_order_id, a.client_order_id, a.order_type) == (
        "7",
        "tb-x-S1",
        OrderType.STOP_MARKET,
    )
    assert a.close_position and a.reduce_only and a.trigger_price == D("98000.0")
    st = algo_stop_state(row, PositionSide.LONG)
    assert st is not None and st.qty is None and st.venue_order_id == "7"
    assert algo_stop_state(row, PositionSide.SHORT) is None
    assert algo_stop_state({**row, "algoStatus": "TRIGGERED"}, PositionSide.LONG) is None
    for status, expected in (
        ("TRIGGERING", OrderStatus.TRIGGERED),
        ("FINISHED", OrderStatus.FILLED),
    ):
        assert parse_algo_order({**row, "algoStatus": status}).status is expected


def test_position_rows_are_keyed_by_position_side() -> None:
    p = parse_position(
        {
            "symbol": "ETHUSDT",
            "positionSide": "SHORT",
            "positionAmt": "-0.100",
            "entryPrice": "2500",
            "markPrice": "2490",
            "unRealizedProfit": "1.0",
            "liquidationPrice": "0",
        }
    )
    assert (p.position_side, p.qty, p.entry_price, p.liq_price) == (
        PositionSide.SHORT,
        D("0.100"),
        D("2500"),
        None,
    )
    with pytest.raises(ParseError, match="hedge"):
        parse_position({"symbol": "ETHUSDT", "positionSide": "BOTH", "positionAmt": "1"})


def test_stream_events() -> None:
    m = parse_mark_price(
        {"e": "markPriceUpdate", "E": 1700000000000, "s": "BTCUSDT", "p": "100001.10"}
    )
    assert (m.symbol, m.mark_price) == ("BTCUSDT", D("100001.10"))
    o = {
        "s": "BTCUSDT",
        "c": "tb-x-S1",
        "S": "SELL",
        "o": "MARKET",
        "q": "0.010",
        "p": "0",
        "ap": "97900",
        "sp": "98000",
        "x": "TRADE",
        "X": "FILLED",
        "i": 8000000001,
        "l": "0.010",
        "z": "0.010",
        "L": "97900",
        "N": "USDT",
        "n": "0.4895",
        "T": 1700000000000,
        "t": 12,
        "m": False,
        "R": False,
        "ps": "LONG",
        "ot": "STOP_MARKET",
        "cp": True,
        "rp": "-21.0",
    }
    f = fill_from_order_update(o)
    assert f is not None and (f.reason, f.fee_usdt, f.realized_pnl_usdt) == (
        "stop",
        D("0.4895"),
        D("-21.0"),
    )
    assert (f.side, f.position_side, f.trade_id) == (Side.SELL, PositionSide.LONG, "12")
    assert fill_from_order_update({**o, "x": "NEW"}) is None
    liq = fill_from_order_update({**o, "c": "autoclose-1700000000000", "ot": "LIMIT"})
    assert liq is not None and liq.reason == "liquidation"
    adl = fill_from_order_update({**o, "c": "adl_autoclose", "ot": "LIMIT"})
    assert adl is not None and adl.reason == "adl"
    bnb = fill_from_order_update({**o, "N": "BNB"})
    assert bnb is not None and bnb.fee_usdt == 0  # not converted (documented)
    u = parse_algo_update(
        {
            "caid": "tb-x-S1",
            "aid": 7,
            "o": "STOP_MARKET",
            "s": "BTCUSDT",
            "S": "SELL",
            "ps": "LONG",
            "q": "0",
            "X": "CANCELED",
            "tp": "98000",
            "cp": True,
        }
    )
    assert (u.client_order_id, u.venue_order_id, u.status) == ("tb-x-S1", "7", OrderStatus.CANCELED)
    ps = positions_from_account_update(
        {
            "a": {
                "m": "ORDER",
                "P": [
                    {"s": "BTCUSDT", "pa": "0.010", "ep": "100000", "ps": "LONG"},
                    {"s": "BTCUSDT", "pa": "0", "ep": "0", "ps": "BOTH"},
                ],
            }
        }
    )
    assert [(p.position_side, p.qty) for p in ps] == [(PositionSide.LONG, D("0.010"))]
