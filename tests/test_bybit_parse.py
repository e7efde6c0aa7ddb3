"""Bybit wire rows → domain: explicit tables, Decimal, and loud failures on unknown shapes."""

from __future__ import annotations

from decimal import Decimal

import pytest

from adapters.bybit.parse import (
    HEDGE,
    ONE_WAY,
    ORDER_STATUS,
    ParseError,
    parse_closed_pnl,
    parse_execution,
    parse_instrument,
    parse_order,
    parse_position,
    parse_position_row,
    parse_wallet_usdt,
    position_mode_of,
)
from tradebot.domain import InstrumentStatus, OrderStatus, OrderType, PositionSide, Side
from tradebot.policies.sizing import size_position

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


# A real-shaped one-way position list (docs v5/position, positionIdx 0): an open long, a
# flat symbol (side "", size "0") and a hedge symbol's two rows, in one reply.
ONE_WAY_LONG = {
    "positionIdx": 0,
    "symbol": "BTCUSDT",
    "side": "Buy",
    "size": "0.010",
    "avgPrice": "100000",
    "markPrice": "100100",
    "stopLoss": "98000",
    "liqPrice": "",
    "unrealisedPnl": "1",
    "tpslMode": "Full",
}
ONE_WAY_FLAT = {
    "positionIdx": 0,
    "symbol": "XRPUSDT",
    "side": "",
    "size": "0",
    "avgPrice": "0",
    "stopLoss": "",
    "tpslMode": "Full",
}


def test_one_way_rows_parse_and_a_flat_one_belongs_to_no_side() -> None:
    p = parse_position_row(ONE_WAY_LONG)
    assert p is not None and (p.position_side, p.qty, p.stop_price) == (
        PositionSide.LONG,
        D("0.010"),
        D("98000"),
    )
    short = parse_position_row({**ONE_WAY_LONG, "side": "Sell"})
    assert short is not None and short.position_side is PositionSide.SHORT
    assert parse_position_row(ONE_WAY_FLAT) is None
    assert position_mode_of(ONE_WAY_FLAT) == ONE_WAY
    assert position_mode_of({"positionIdx": 2}) == HEDGE
    with pytest.raises(ParseError):
        parse_position(ONE_WAY_FLAT)  # no side to give it
    with pytest.raises(ParseError):
        parse_position_row({**ONE_WAY_FLAT, "size": "1"})  # a size without a side
    with pytest.raises(ParseError):
        position_mode_of({"positionIdx": 7})


def test_one_way_orders_map_to_the_side_they_close_or_open() -> None:
    one_way = {**ORDER, "positionIdx": 0}
    # a reduce-only Sell stop in one-way mode closes a LONG
    assert parse_order(one_way).position_side is PositionSide.LONG
    # a position take-profit row (stopOrderType TakeProfit, Sell) also closes the LONG
    tp = {**one_way, "reduceOnly": False, "closeOnTrigger": False, "stopOrderType": "TakeProfit"}
    assert parse_order(tp).position_side is PositionSide.LONG
    # a plain Sell (no reduce-only) opens a SHORT; a reduce-only Buy closes a SHORT
    plain = {**one_way, "reduceOnly": False, "closeOnTrigger": False, "triggerPrice": "0"}
    assert parse_order(plain).position_side is PositionSide.SHORT
    assert parse_order({**one_way, "side": "Buy"}).position_side is PositionSide.SHORT
    assert parse_order({**plain, "side": "Buy"}).position_side is PositionSide.LONG


def test_instrument_market_qty_cap_and_sizing_respects_it() -> None:
    row = {
        "symbol": "BTCUSDT",
        "status": "Trading",
        "priceFilter": {"minPrice": "0.10", "maxPrice": "1999999.80", "tickSize": "0.10"},
        "lotSizeFilter": {
            "maxOrderQty": "1190.000",
            "minOrderQty": "0.001",
            "qtyStep": "0.001",
            "postOnlyMaxOrderQty": "1190.000",
            "maxMktOrderQty": "119.000",
            "minNotionalValue": "5",
        },
    }
    inst = parse_instrument(row)
    assert (inst.max_qty, inst.max_market_qty, inst.market_qty_cap) == (
        D("1190.000"),
        D("119.000"),
        D("119.000"),
    )
    assert inst.check_order(D("100000"), D("200"), market=True) == "qty_above_max_market"
    assert inst.check_order(D("100000"), D("200")) is None  # a limit order may be larger
    # 20 M USDT at 100k = 200 BTC: capped to the market cap, not to maxOrderQty
    sized = size_position(D("20000000"), D("100000"), inst)
    assert sized.ok and sized.qty == D("119.000")
    no_cap = parse_instrument(
        {**row, "lotSizeFilter": {**row["lotSizeFilter"], "maxMktOrderQty": ""}}
    )
    assert no_cap.max_market_qty is None and no_cap.market_qty_cap == D("1190.000")


def test_wallet_uses_usdt_available_for_margin_not_the_account_usd_figure() -> None:
    """A UTA reply (docs v5/account/wallet-balance) holding BTC collateral besides USDT."""
    account = {
        "accountType": "UNIFIED",
        "totalEquity": "25500.5",
        "totalWalletBalance": "25400",
        "totalMarginBalance": "25500.5",
        "totalAvailableBalance": "24300.5",  # USD, across both coins
        "totalInitialMargin": "1200",
        "coin": [
            {
                "coin": "BTC",
                "equity": "0.15",
                "usdValue": "15000",
                "walletBalance": "0.15",
                "locked": "0",
                "totalOrderIM": "0",
                "totalPositionIM": "0",
                "availableToWithdraw": "",
            },
            {
                "coin": "USDT",
                "equity": "10500.5",
                "usdValue": "10500.5",
                "walletBalance": "10400",
                "unrealisedPnl": "100.5",
                "locked": "0",
                "totalOrderIM": "200",
                "totalPositionIM": "1000",
                "availableToWithdraw": "",
            },
        ],
    }
    bal = parse_wallet_usdt(account)
    assert (bal.wallet_usdt, bal.available_usdt) == (D("10400"), D("9300.5"))
    with pytest.raises(ParseError):
        parse_wallet_usdt({**account, "coin": account["coin"][:1]})


def test_closed_pnl_row() -> None:
    row = {
        "symbol": "ETHUSDT",
        "orderId": "c-1",
        "side": "Sell",
        "qty": "0.5",
        "orderPrice": "2550",
        "orderType": "Market",
        "execType": "Trade",
        "closedSize": "0.5",
        "cumEntryValue": "1250",
        "avgEntryPrice": "2500",
        "cumExitValue": "1275",
        "avgExitPrice": "2550",
        "closedPnl": "23.6",
        "fillCount": "1",
        "leverage": "5",
        "createdTime": "1700000000000",
        "updatedTime": "1700000000500",
    }
    c = parse_closed_pnl(row)
    assert (c.position_side, c.closed_qty, c.closed_pnl_usdt, c.avg_exit_price) == (
        PositionSide.LONG,
        D("0.5"),
        D("23.6"),
        D("2550"),
    )
