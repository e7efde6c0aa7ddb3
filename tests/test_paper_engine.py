"""Venue semantics of the paper engine, both profiles (pure, synchronous)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from adapters.paper import (
    EngineStep,
    PaperEngine,
    TriggerDirection,
    binance_like,
    bybit_like,
    load_instruments,
)
from tradebot.domain import Instrument, InstrumentStatus, OrderStatus, OrderType, PositionSide, Side
from tradebot.errors import (
    DuplicateClientOrderId,
    InsufficientBalance,
    OrderValidationError,
    ReduceOnlyRejected,
    RejectedError,
    SymbolNotTradable,
    UnknownOrder,
    WouldTriggerImmediately,
    ZeroPosition,
)
from tradebot.ports import (
    EntryRequest,
    Fill,
    OrderUpdate,
    PositionUpdate,
    ReduceRequest,
    StopRequest,
)

D = Decimal
T0 = datetime(2025, 5, 20, tzinfo=UTC)
L, S = PositionSide.LONG, PositionSide.SHORT
BTC = "BTCUSDT"


def t(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


def make(profile_name: str, wallet: str = "10000", **kw: object) -> PaperEngine:
    profile = bybit_like(**kw) if profile_name == "bybit" else binance_like(**kw)  # type: ignore[arg-type]
    e = PaperEngine(profile, load_instruments(), wallet_usdt=D(wallet), start_ts=T0)
    e.set_mark(BTC, D("100000"), T0)
    return e


def entry(
    qty: str = "0.01",
    side: PositionSide = L,
    cid: str = "tb-aa-E0",
    stop: str | None = None,
    symbol: str = BTC,
) -> EntryRequest:
    return EntryRequest(
        symbol=symbol,
        position_side=side,
        qty=D(qty),
        client_order_id=cid,
        stop_price=D(stop) if stop is not None else None,
    )


def stop_req(
    price: str, side: PositionSide = L, qty: str | None = None, cid: str = "tb-aa-S0"
) -> StopRequest:
    return StopRequest(
        symbol=BTC,
        position_side=side,
        trigger_price=D(price),
        client_order_id=cid,
        qty=D(qty) if qty is not None else None,
    )


PROFILES = ["bybit", "binance"]


@pytest.mark.parametrize("name", PROFILES)
def test_hedge_long_and_short_on_one_symbol(name: str) -> None:
    e = make(name)
    e.place_entry(entry("0.01", L, "tb-aa-E0"))
    e.place_entry(entry("0.02", S, "tb-bb-E0"))
    e.set_mark(BTC, D("101000"), t(1))
    long_, short = e.position(BTC, L), e.position(BTC, S)
    assert (long_.qty, long_.entry_price) == (D("0.01"), D("100000"))
    assert (short.qty, short.entry_price) == (D("0.02"), D("100000"))
    assert long_.unrealized_pnl_usdt == D("10")
    assert short.unrealized_pnl_usdt == D("-20")
    assert [p.position_side for p in e.positions(BTC)] == [L, S]
    # closing the long leaves the short untouched
    e.place_reduce(ReduceRequest(BTC, L, D("0.01"), "tb-aa-C0"))
    assert e.position(BTC, L).qty == 0
    assert e.position(BTC, S).qty == D("0.02")


def test_average_entry_price_on_increase() -> None:
    e = make("bybit")
    e.place_entry(entry("0.01", cid="tb-aa-E0"))
    e.set_mark(BTC, D("110000"), t(1))
    e.place_entry(entry("0.03", cid="tb-aa-E1"))
    assert e.position(BTC, L).entry_price == D("107500")


def test_bybit_attached_stop_is_atomic_with_the_fill() -> None:
    e = make("bybit")
    steps: list[EngineStep] = []
    e.add_listener(steps.append)
    e.place_entry(entry(stop="98000"))
    step = steps[-1]
    # Within the one step that filled the entry, the position already carries its stop.
    pos_updates = [ev for ev in step.events if isinstance(ev, PositionUpdate)]
    assert pos_updates and all(u.position.stop_price == D("98000") for u in pos_updates)
    assert e.stops_for(BTC, L)[0].trigger_price == D("98000")
    assert e.stops_for(BTC, L)[0].qty is None


def test_bybit_attached_stop_on_wrong_side_rejects_the_entry() -> None:
    e = make("bybit")
    with pytest.raises(WouldTriggerImmediately) as ei:
        e.place_entry(entry(stop="100500"))
    assert ei.value.code == "10001"
    assert e.positions() == [] and e.trade_log == []


def test_binance_refuses_attached_stop() -> None:
    e = make("binance")
    with pytest.raises(RejectedError):
        e.place_entry(entry(stop="98000"))
    assert e.positions() == []


@pytest.mark.parametrize("name", PROFILES)
def test_gap_aware_stop_fills_at_the_crossing_mark(name: str) -> None:
    e = make(name)
    if name == "bybit":
        e.place_entry(entry(stop="98000"))
    else:
        e.place_entry(entry())
        e.place_stop(stop_req("98000"))
    e.set_mark(BTC, D("99000"), t(1))
    assert e.position(BTC, L).qty == D("0.01")  # not yet
    events = e.set_mark(BTC, D("95000"), t(2))  # jumps over 98000
    fills = [ev for ev in events if isinstance(ev, Fill)]
    assert len(fills) == 1
    assert fills[0].price == D("95000")  # the crossing mark, not the trigger
    assert fills[0].reason == "stop" and not fills[0].is_maker
    assert fills[0].realized_pnl_usdt == D("-50")
    assert e.position(BTC, L).qty == 0
    assert e.stops_for(BTC, L) == []


@pytest.mark.parametrize("name", PROFILES)
def test_short_stop_triggers_on_rise(name: str) -> None:
    e = make(name)
    e.place_entry(entry(side=S))
    e.place_stop(stop_req("102000", side=S))
    e.set_mark(BTC, D("101999.9"), t(1))
    assert e.position(BTC, S).qty == D("0.01")
    e.set_mark(BTC, D("102000"), t(2))  # touching the trigger triggers
    assert e.position(BTC, S).qty == 0
    assert e.trade_log[-1].price == D("102000")


@pytest.mark.parametrize(
    ("name", "code", "exc"),
    [
        ("bybit", "10001", WouldTriggerImmediately),
        ("binance", "-2021", WouldTriggerImmediately),
    ],
)
def test_stop_through_the_mark_would_trigger_immediately(
    name: str, code: str, exc: type[Exception]
) -> None:
    e = make(name)
    e.place_entry(entry())
    e.place_entry(entry(side=S, cid="tb-bb-E0"))
    with pytest.raises(WouldTriggerImmediately) as ei:
        e.place_stop(stop_req("100000"))
    assert ei.value.code == code
    with pytest.raises(WouldTriggerImmediately):
        e.place_stop(stop_req("99000", side=S, cid="tb-bb-S0"))  # short stop below mark
    assert e.stops_for(BTC, L) == [] and e.stops_for(BTC, S) == []


def test_bybit_conditional_order_wrong_direction_is_110092() -> None:
    e = make("bybit")
    e.place_entry(entry())
    with pytest.raises(WouldTriggerImmediately) as ei:
        e.submit_order(
            symbol=BTC,
            side=Side.SELL,
            position_side=L,
            order_type=OrderType.STOP_MARKET,
            qty=D("0.01"),
            client_order_id="x1",
            trigger_price=D("101000"),
            trigger_direction=TriggerDirection.FALL,
            reduce_only=True,
        )
    assert ei.value.code == "110092"


def test_bybit_trading_stop_on_zero_position_is_10001() -> None:
    e = make("bybit")
    with pytest.raises(ZeroPosition) as ei:
        e.place_stop(stop_req("98000"))
    assert ei.value.code == "10001"


def test_bybit_amend_in_place_and_not_modified_is_success() -> None:
    e = make("bybit")
    e.place_entry(entry(stop="98000"))
    cur = e.stops_for(BTC, L)[0]
    steps: list[EngineStep] = []
    e.add_listener(steps.append)
    new = e.amend_stop(cur, D("99000"))
    assert new.trigger_price == D("99000")
    assert [s.trigger_price for s in e.stops_for(BTC, L)] == [D("99000")]  # one stop, moved
    assert e.amend_stop(new, D("99000")) == new  # 34040 not modified: success
    with pytest.raises(WouldTriggerImmediately):
        e.amend_stop(new, D("100100"))
    assert e.stops_for(BTC, L)[0].trigger_price == D("99000")
    assert all(s.error is None for s in steps[:2]) and steps[2].error is not None


def test_binance_amend_not_supported_and_cancel_by_client_algo_id() -> None:
    e = make("binance")
    e.place_entry(entry())
    st = e.place_stop(stop_req("98000", cid="tb-aa-S0"))
    assert st.client_order_id == "tb-aa-S0" and st.venue_order_id.startswith("5")
    with pytest.raises(RejectedError) as ei:
        e.amend_stop(st, D("99000"))
    assert ei.value.code == "-4120"
    # make-before-break: new stop first, then cancel old
    st2 = e.place_stop(stop_req("99000", cid="tb-aa-S1"))
    assert len(e.stops_for(BTC, L)) == 2
    e.cancel_stop(st)
    assert e.stops_for(BTC, L) == [st2]
    with pytest.raises(UnknownOrder) as ui:
        e.cancel_stop(st)
    assert ui.value.code == "-2011"
    # the algo order is found by get_order in its own id space
    o = e.get_order(BTC, "tb-aa-S1")
    assert o is not None and o.order_type is OrderType.STOP_MARKET and o.close_position
    # and the regular cancel endpoint does not see it
    with pytest.raises(UnknownOrder):
        e.cancel_order(BTC, "tb-aa-S1")


def test_binance_close_position_closes_what_the_side_holds_at_trigger() -> None:
    e = make("binance")
    e.place_entry(entry("0.01", cid="tb-aa-E0"))
    e.place_stop(stop_req("98000"))
    e.place_entry(entry("0.02", cid="tb-aa-E1"))  # position grew after the stop was placed
    e.set_mark(BTC, D("97900"), t(1))
    assert e.position(BTC, L).qty == 0
    assert e.trade_log[-1].qty == D("0.03")
    o = e.get_order(BTC, "tb-aa-S0")
    assert o is not None and o.status is OrderStatus.FILLED


def test_binance_partial_stop_qty() -> None:
    e = make("binance")
    e.place_entry(entry("0.03"))
    st = e.place_stop(stop_req("98000", qty="0.01"))
    assert st.qty == D("0.01")
    e.set_mark(BTC, D("97000"), t(1))
    assert e.position(BTC, L).qty == D("0.02")
    assert e.trade_log[-1].qty == D("0.01") and e.trade_log[-1].price == D("97000")


@pytest.mark.parametrize(("name", "code"), [("bybit", "110017"), ("binance", "-2022")])
def test_reduce_only_with_no_position(name: str, code: str) -> None:
    e = make(name)
    with pytest.raises(ReduceOnlyRejected) as ei:
        e.place_reduce(ReduceRequest(BTC, L, D("0.01"), "tb-aa-C0"))
    assert ei.value.code == code


def test_reduce_only_larger_than_position_trimmed_on_bybit_rejected_on_binance() -> None:
    by = make("bybit")
    by.place_entry(entry("0.01"))
    o = by.place_reduce(ReduceRequest(BTC, L, D("0.05"), "tb-aa-C0"))
    assert o.filled_qty == D("0.01") and by.position(BTC, L).qty == 0
    assert by.position(BTC, S).qty == 0  # never flips into a short
    bn = make("binance")
    bn.place_entry(entry("0.01"))
    with pytest.raises(ReduceOnlyRejected) as ei:
        bn.place_reduce(ReduceRequest(BTC, L, D("0.05"), "tb-aa-C0"))
    assert ei.value.code == "-2022"
    assert bn.position(BTC, L).qty == D("0.01")


@pytest.mark.parametrize(("name", "code"), [("bybit", "110094"), ("binance", "-4164")])
def test_min_notional_code(name: str, code: str) -> None:
    e = make(name)
    e.set_mark(BTC, D("99999.9"), t(1))
    with pytest.raises(OrderValidationError) as ei:
        e.place_entry(entry("0.001"))  # 99.9999 < 100
    assert ei.value.code == code
    e.set_mark(BTC, D("100000"), t(2))
    e.place_entry(entry("0.001"))  # exactly 100 passes
    assert e.position(BTC, L).qty == D("0.001")


@pytest.mark.parametrize("name", PROFILES)
def test_tick_and_step_validation(name: str) -> None:
    e = make(name)
    with pytest.raises(OrderValidationError):
        e.place_entry(entry("0.0105"))  # step 0.001
    e.place_entry(entry("0.01"))
    with pytest.raises(OrderValidationError):
        e.place_stop(stop_req("98000.05"))  # tick 0.1
    with pytest.raises(OrderValidationError):
        e.place_reduce(ReduceRequest(BTC, L, D("0.01"), "tb-aa-T0", price=D("101000.01")))


@pytest.mark.parametrize(("name", "code"), [("bybit", "110072"), ("binance", "-4116")])
def test_duplicate_client_order_id(name: str, code: str) -> None:
    e = make(name)
    e.place_entry(entry())
    # a resting limit keeps the id "open" on both venues
    e.place_reduce(ReduceRequest(BTC, L, D("0.01"), "tb-aa-T0", price=D("105000")))
    with pytest.raises(DuplicateClientOrderId) as ei:
        e.place_reduce(ReduceRequest(BTC, L, D("0.01"), "tb-aa-T0", price=D("106000")))
    assert ei.value.code == code


def test_duplicate_client_id_scope_differs_per_venue() -> None:
    by, bn = make("bybit"), make("binance")
    for e in (by, bn):
        e.place_entry(entry(cid="tb-aa-E0"))
    with pytest.raises(DuplicateClientOrderId):
        by.place_entry(entry(cid="tb-aa-E0"))  # Bybit: orderLinkId unique, ever
    bn.place_entry(entry(cid="tb-aa-E0"))  # Binance: unique among *open* orders only
    assert bn.position(BTC, L).qty == D("0.02")


@pytest.mark.parametrize(("name", "code"), [("bybit", "110001"), ("binance", "-2011")])
def test_unknown_order(name: str, code: str) -> None:
    e = make(name)
    with pytest.raises(UnknownOrder) as ei:
        e.cancel_order(BTC, "tb-zz-C9")
    assert ei.value.code == code
    assert e.get_order(BTC, "tb-zz-C9") is None


@pytest.mark.parametrize(("name", "code"), [("bybit", "110007"), ("binance", "-2019")])
def test_insufficient_balance(name: str, code: str) -> None:
    e = make(name, wallet="100")
    # 0.01 BTC = 1000 USDT notional at 10x = 100 margin + 0.5 fee > 100
    with pytest.raises(InsufficientBalance) as ei:
        e.place_entry(entry("0.01"))
    assert ei.value.code == code
    e.set_leverage(BTC, 20)
    e.place_entry(entry("0.01"))
    w = e.wallet()
    assert w.used_margin_usdt == D("50")


@pytest.mark.parametrize(("name", "taker"), [("bybit", D("0.00055")), ("binance", D("0.0005"))])
def test_fees_maker_and_taker(name: str, taker: Decimal) -> None:
    e = make(name)
    e.place_entry(entry("0.01"))
    assert e.trade_log[-1].fee_usdt == D(1000) * taker and not e.trade_log[-1].is_maker
    e.place_reduce(ReduceRequest(BTC, L, D("0.01"), "tb-aa-T0", price=D("101000")))
    assert len(e.trade_log) == 1  # rests
    e.set_mark(BTC, D("101500"), t(1))  # crosses the limit
    f = e.trade_log[-1]
    assert f.is_maker and f.price == D("101000")  # at the limit price, not the mark
    assert f.fee_usdt == D(1010) * D("0.0002")
    assert f.realized_pnl_usdt == D("10")
    w = e.wallet()
    assert w.wallet_usdt == D(10000) + D(10) - D(1000) * taker - D(1010) * D("0.0002")
    assert w.fees_usdt == D(1000) * taker + D(1010) * D("0.0002")


@pytest.mark.parametrize("name", PROFILES)
def test_limit_entry_fills_when_mark_crosses(name: str) -> None:
    e = make(name)
    o = e.submit_order(
        symbol=BTC,
        side=Side.BUY,
        position_side=L,
        order_type=OrderType.LIMIT,
        qty=D("0.01"),
        client_order_id="lim1",
        price=D("99000"),
    )
    assert o.status is OrderStatus.NEW
    assert e.wallet().reserved_margin_usdt == D("99")
    e.set_mark(BTC, D("99500"), t(1))
    assert e.position(BTC, L).qty == 0
    e.set_mark(BTC, D("98000"), t(2))
    pos = e.position(BTC, L)
    assert pos.qty == D("0.01") and pos.entry_price == D("99000")
    assert e.wallet().reserved_margin_usdt == 0


def test_market_slippage_bps() -> None:
    e = make("bybit", market_slippage_bps=D("10"))
    e.place_entry(entry("0.01"))
    assert e.trade_log[-1].price == D("100100")
    e.place_reduce(ReduceRequest(BTC, L, D("0.01"), "tb-aa-C0"))
    assert e.trade_log[-1].price == D("99900")


@pytest.mark.parametrize("name", PROFILES)
def test_funding_sign(name: str) -> None:
    e = make(name)
    e.place_entry(entry("0.01", L, "tb-aa-E0"))
    e.place_entry(entry("0.02", S, "tb-bb-E0"))
    before = e.wallet().wallet_usdt
    events = e.apply_funding(BTC, D("0.0001"), t(480))
    pays = {ev.position_side: ev.fee_usdt for ev in events if isinstance(ev, Fill)}
    assert pays == {L: D("0.1"), S: D("-0.2")}  # long pays 1000*0.0001, short receives
    assert e.wallet().wallet_usdt == before - D("0.1") + D("0.2")
    e.apply_funding(BTC, D("-0.0001"), t(960))
    assert e.wallet().wallet_usdt == before
    assert all(f.reason == "funding" for f in e.funding_log) and len(e.funding_log) == 4


@pytest.mark.parametrize("name", PROFILES)
def test_symbol_status(name: str) -> None:
    e = make(name)
    e.place_entry(entry("0.01"))
    inst = e.instruments()[BTC]
    e.set_instrument(
        Instrument(
            symbol=BTC,
            tick_size=inst.tick_size,
            qty_step=inst.qty_step,
            min_qty=inst.min_qty,
            min_notional=inst.min_notional,
            status=InstrumentStatus.REDUCE_ONLY,
        )
    )
    with pytest.raises(SymbolNotTradable):
        e.place_entry(entry("0.01", cid="tb-aa-E1"))
    e.place_reduce(ReduceRequest(BTC, L, D("0.01"), "tb-aa-C0"))  # reducing is allowed
    assert e.position(BTC, L).qty == 0
    with pytest.raises(SymbolNotTradable):
        e.place_entry(entry(symbol="NOPEUSDT"))


def test_events_order_and_listener_per_step() -> None:
    e = make("binance")
    seen: list[object] = []
    e.subscribe(seen.append)
    steps: list[EngineStep] = []
    e.add_listener(steps.append)
    e.place_entry(entry())
    kinds = [type(ev).__name__ for ev in seen]
    assert kinds == ["OrderUpdate", "Fill", "OrderUpdate", "PositionUpdate"]
    assert [ev.order.status for ev in seen if isinstance(ev, OrderUpdate)] == [
        OrderStatus.NEW,
        OrderStatus.FILLED,
    ]
    e.set_mark(BTC, D("100001"), t(1))
    with pytest.raises(ReduceOnlyRejected):
        e.place_reduce(ReduceRequest(BTC, S, D("0.01"), "tb-bb-C0"))
    assert [(s.kind, s.name) for s in steps] == [
        ("request", "place_entry"),
        ("mark", "set_mark"),
        ("request", "place_reduce"),
    ]
    assert steps[-1].error is not None and steps[-1].events == ()
    assert [s.seq for s in steps] == [steps[0].seq, steps[0].seq + 1, steps[0].seq + 2]


def test_partial_fill_remainder_fills_at_next_mark() -> None:
    e = make("bybit")
    o = e.place_entry(entry("0.03", stop="98000"), fill_ratio=D("0.34"))
    assert o.status is OrderStatus.PARTIALLY_FILLED and o.filled_qty == D("0.010")
    assert e.position(BTC, L).qty == D("0.010")
    assert e.position(BTC, L).stop_price == D("98000")
    e.set_mark(BTC, D("100100"), t(1))
    got = e.get_order(BTC, "tb-aa-E0")
    assert got is not None and got.status is OrderStatus.FILLED
    assert e.position(BTC, L).qty == D("0.03")


def test_position_stop_cleared_and_reduce_orders_cancelled_on_flat_bybit() -> None:
    e = make("bybit")
    e.place_entry(entry("0.02", stop="98000"))
    e.place_reduce(ReduceRequest(BTC, L, D("0.01"), "tb-aa-T0", price=D("105000")))
    e.place_reduce(ReduceRequest(BTC, L, D("0.02"), "tb-aa-C0"))
    assert e.open_orders(BTC) == []
    assert e.stops_for(BTC, L) == []
    assert e.get_order(BTC, "tb-aa-T0").status is OrderStatus.CANCELED  # type: ignore[union-attr]


def test_binance_leaves_algo_stop_after_external_close() -> None:
    e = make("binance")
    e.place_entry(entry("0.02"))
    e.place_stop(stop_req("98000"))
    e.place_reduce(ReduceRequest(BTC, L, D("0.02"), "tb-aa-C0"))
    assert len(e.stops_for(BTC, L)) == 1  # the owner must cancel its leftover stop
    e.set_mark(BTC, D("97000"), t(1))  # triggers on a flat side: expires, no fill
    assert e.get_order(BTC, "tb-aa-S0").status is OrderStatus.EXPIRED  # type: ignore[union-attr]
    assert e.position(BTC, S).qty == 0 and len(e.trade_log) == 2


def test_amend_order_moves_a_resting_limit_and_fills_when_marketable() -> None:
    e = make("bybit")
    e.place_entry(entry("0.02"))
    e.place_reduce(ReduceRequest(BTC, L, D("0.01"), "tb-aa-A0", price=D("103000")))
    o = e.amend_order(BTC, "tb-aa-A0", price=D("102000"))
    assert o.price == D("102000") and o.status is OrderStatus.NEW
    # moved through the mark: fills at once at the mark (taker)
    o = e.amend_order(BTC, "tb-aa-A0", price=D("99000"))
    assert o.status is OrderStatus.FILLED and o.avg_fill_price == D("100000")
    assert not e.trade_log[-1].is_maker
    with pytest.raises(UnknownOrder):
        e.amend_order(BTC, "tb-aa-A0", price=D("98000"))


def test_binance_amend_of_algo_order_refused_and_cancel_all() -> None:
    e = make("binance")
    e.place_entry(entry("0.02"))
    e.place_stop(stop_req("98000", cid="tb-aa-S0"))
    e.place_reduce(ReduceRequest(BTC, L, D("0.01"), "tb-aa-T0", price=D("105000")))
    with pytest.raises(UnknownOrder):  # the regular endpoint does not see algo orders
        e.amend_order(BTC, "tb-aa-S0", trigger_price=D("99000"))
    cancelled = e.cancel_all(BTC, algo=False)
    assert [o.client_order_id for o in cancelled] == ["tb-aa-T0"]
    assert [s.client_order_id for s in e.stops_for(BTC, L)] == ["tb-aa-S0"]
    e.cancel_all(BTC)
    assert e.open_orders() == []
    assert [o.status for o in e.orders(BTC)] == [
        OrderStatus.FILLED,
        OrderStatus.CANCELED,
        OrderStatus.CANCELED,
    ]


@pytest.mark.parametrize("name", PROFILES)
def test_liquidation_without_stop_and_stop_first_in_a_gap(name: str) -> None:
    e = make(name)
    e.place_entry(entry("0.01"))  # 10x: liq = 100000 * (1 - 0.1 + 0.005) = 90500
    assert e.position(BTC, L).liq_price == D("90500")
    e.set_mark(BTC, D("90600"), t(1))
    assert e.position(BTC, L).qty == D("0.01")
    e.set_mark(BTC, D("90500"), t(2))
    assert e.position(BTC, L).qty == 0
    assert e.trade_log[-1].reason == "liquidation" and e.trade_log[-1].client_order_id == ""
    # with a stop inside the liquidation price, a gap through both fills the stop
    e.set_mark(BTC, D("100000"), t(3))
    e.place_entry(entry("0.01", S, "tb-bb-E0"))
    e.place_stop(stop_req("105000", side=S, cid="tb-bb-S0"))
    e.set_mark(BTC, D("120000"), t(4))
    assert e.position(BTC, S).qty == 0
    assert e.trade_log[-1].reason == "stop" and e.trade_log[-1].price == D("120000")
