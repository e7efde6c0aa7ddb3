"""The paper venue as an ExchangePort under trio virtual time: latency, faults, streams."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import trio
import trio.testing

from adapters.paper import (
    Fault,
    FaultPlan,
    PaperEngine,
    PaperVenue,
    binance_like,
    bybit_like,
    load_instruments,
)
from tradebot.domain import OrderRole, OrderStatus, PositionSide
from tradebot.errors import (
    InsufficientBalance,
    OutcomeUnknown,
    RateLimited,
    RejectedError,
    TransientError,
    UnknownOrder,
)
from tradebot.ports import (
    AccountEvent,
    EntryRequest,
    ExchangePort,
    Fill,
    MarketEvent,
    MarkPrice,
    PositionUpdate,
    ReduceRequest,
    StopRequest,
    StreamGap,
)

D = Decimal
T0 = datetime(2025, 5, 20, tzinfo=UTC)
L, S = PositionSide.LONG, PositionSide.SHORT
BTC, ETH = "BTCUSDT", "ETHUSDT"


def make(name: str = "bybit", **kw: object) -> PaperVenue:
    profile = bybit_like() if name == "bybit" else binance_like()
    engine = PaperEngine(profile, load_instruments(), wallet_usdt=D(10000), start_ts=T0)
    venue = PaperVenue(engine, **kw)  # type: ignore[arg-type]
    venue.push_mark(BTC, D("100000"), T0)
    venue.push_mark(ETH, D("2500"), T0)
    return venue


def entry(cid: str = "tb-aa-E0", stop: str | None = None, qty: str = "0.01") -> EntryRequest:
    return EntryRequest(BTC, L, D(qty), cid, D(stop) if stop else None)


async def test_is_an_exchange_port_with_profile_capabilities() -> None:
    by, bn = make("bybit"), make("binance")
    assert isinstance(by, ExchangePort) and isinstance(bn, ExchangePort)
    assert (
        by.capabilities.venue,
        by.capabilities.attached_stop,
        by.capabilities.amend_stop,
        by.capabilities.stop_has_client_id,
    ) == ("paper-bybit", True, True, False)
    assert (
        bn.capabilities.venue,
        bn.capabilities.attached_stop,
        bn.capabilities.amend_stop,
        bn.capabilities.stop_has_client_id,
    ) == ("paper-binance", False, False, True)


async def test_latency_is_virtual_trio_time(mock_clock: trio.testing.MockClock) -> None:
    mock_clock.autojump_threshold = 0
    venue = make(latency_s=0.2, latency_by_method={"get_order": 0.05})
    with trio.fail_after(5):
        t0 = trio.current_time()
        order = await venue.place_entry(entry())
        assert trio.current_time() - t0 == pytest.approx(0.2)
        assert order.status is OrderStatus.FILLED
        t1 = trio.current_time()
        assert await venue.get_order(BTC, "tb-aa-E0") == venue.engine.get_order(BTC, "tb-aa-E0")
        assert trio.current_time() - t1 == pytest.approx(0.05)


@pytest.mark.parametrize("name", ["bybit", "binance"])
async def test_timeout_after_accept_leaves_order_and_get_order_finds_it(
    name: str, mock_clock: trio.testing.MockClock
) -> None:
    mock_clock.autojump_threshold = 0
    plan = FaultPlan(seed=1).fail_next("place_entry", Fault.timeout_after_accept(timeout_s=10))
    venue = make(name, faults=plan, latency_s=0.1)
    with trio.fail_after(60):
        t0 = trio.current_time()
        with pytest.raises(OutcomeUnknown):
            await venue.place_entry(entry())
        assert trio.current_time() - t0 == pytest.approx(10.05)
        found = await venue.get_order(BTC, "tb-aa-E0")
        assert found is not None and found.status is OrderStatus.FILLED
        assert (await venue.positions(BTC))[0].qty == D("0.01")
        assert [f.kind for f in plan.log] == ["timeout_after_accept"]


async def test_lost_request_is_outcome_unknown_and_lookup_finds_nothing(
    mock_clock: trio.testing.MockClock,
) -> None:
    mock_clock.autojump_threshold = 0
    plan = FaultPlan().fail_next("place_entry", Fault.lost_request(timeout_s=5))
    venue = make(faults=plan)
    with trio.fail_after(60):
        with pytest.raises(OutcomeUnknown):
            await venue.place_entry(entry())
        assert await venue.get_order(BTC, "tb-aa-E0") is None
        assert await venue.positions() == []


async def test_reject_5xx_and_rate_limit_do_not_apply() -> None:
    plan = (
        FaultPlan()
        .fail_next("place_stop", Fault.reject("110007", InsufficientBalance), count=1)
        .fail_next("place_stop", Fault.server_error(502))
        .fail_next("place_stop", Fault.rate_limit(retry_after_s=2.5, code="10006"))
    )
    venue = make(faults=plan)
    with trio.fail_after(5):
        await venue.place_entry(entry())
        req = StopRequest(BTC, L, D("98000"), "tb-aa-S0")
        with pytest.raises(InsufficientBalance) as r:
            await venue.place_stop(req)
        assert r.value.code == "110007"
        with pytest.raises(TransientError) as t5:
            await venue.place_stop(req)
        assert t5.value.code == "http_502" and not isinstance(t5.value, RateLimited)
        with pytest.raises(RateLimited) as rl:
            await venue.place_stop(req)
        assert rl.value.retry_after_s == 2.5
        assert await venue.stops(BTC, L) == []  # none of them applied
        await venue.place_stop(req)  # the 4th goes through
        assert [s.trigger_price for s in await venue.stops(BTC, L)] == [D("98000")]


async def test_faults_by_role_and_seeded_probability_are_reproducible() -> None:
    def run(seed: int) -> list[bool]:
        plan = FaultPlan(seed=seed).fail_randomly(
            "*", Fault.server_error(), p=0.3, role=OrderRole.TAKE_PROFIT
        )
        out = []
        for _ in range(40):
            out.append(plan.pick("place_reduce", OrderRole.TAKE_PROFIT, BTC) is not None)
            assert plan.pick("place_reduce", OrderRole.CLOSE, BTC) is None  # other role
        return out

    a, b, c = run(7), run(7), run(8)
    assert a == b and a != c and 0 < sum(a) < 40


async def test_failed_lookup_raises_never_none(
    mock_clock: trio.testing.MockClock,
) -> None:
    mock_clock.autojump_threshold = 0
    plan = FaultPlan().fail_next("get_order", Fault.server_error())
    plan.fail_next("get_order", Fault.timeout_after_accept(timeout_s=1))
    venue = make(faults=plan)
    with trio.fail_after(5):
        await venue.place_entry(entry())
        with pytest.raises(TransientError):
            await venue.get_order(BTC, "tb-aa-E0")
        with pytest.raises(TransientError):
            await venue.get_order(BTC, "tb-aa-E0")
        assert await venue.get_order(BTC, "tb-aa-E0") is not None


async def test_binance_get_order_finds_algo_stop_and_entry_with_stop_rejected() -> None:
    venue = make("binance")
    with trio.fail_after(5):
        with pytest.raises(RejectedError):
            await venue.place_entry(entry(stop="98000"))
        await venue.place_entry(entry())
        st = await venue.place_stop(StopRequest(BTC, L, D("98000"), "tb-aa-S0"))
        got = await venue.get_order(BTC, "tb-aa-S0")
        assert got is not None and got.venue_order_id == st.venue_order_id
        with pytest.raises(RejectedError):
            await venue.amend_stop(st, D("99000"))
        await venue.cancel_stop(st)
        with pytest.raises(UnknownOrder):
            await venue.cancel_stop(st)


async def test_account_and_market_streams(mock_clock: trio.testing.MockClock) -> None:
    mock_clock.autojump_threshold = 0
    venue = make("bybit")
    account: list[AccountEvent] = []
    market: list[MarketEvent] = []

    async def on_account(ev: AccountEvent) -> None:
        account.append(ev)

    async def on_market(ev: MarketEvent) -> None:
        market.append(ev)

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(venue.run_account_stream, on_account)
            nursery.start_soon(venue.run_market_stream, [BTC], on_market)
            await trio.sleep(0.01)
            await venue.place_entry(entry(stop="98000"))
            venue.push_mark(ETH, D("2501"), T0 + timedelta(seconds=1))  # not subscribed
            venue.push_mark(BTC, D("97000"), T0 + timedelta(seconds=1))
            venue.inject_stream_gap("public", "test")
            await trio.sleep(0.01)
            nursery.cancel_scope.cancel()
    assert [type(e).__name__ for e in market] == ["MarkPrice", "StreamGap"]
    assert isinstance(market[0], MarkPrice) and market[0].mark_price == D("97000")
    fills = [e for e in account if isinstance(e, Fill)]
    assert [f.reason for f in fills] == ["", "stop"] and fills[1].price == D("97000")
    assert isinstance(account[-1], PositionUpdate) and account[-1].position.qty == 0


async def test_dropped_delayed_and_gap_events(mock_clock: trio.testing.MockClock) -> None:
    mock_clock.autojump_threshold = 0
    plan = FaultPlan(seed=3).drop_events(count=1).delay_events(2.0, count=1).stream_gaps(count=1)
    venue = make("binance", faults=plan)
    got: list[tuple[float, AccountEvent]] = []

    async def on_account(ev: AccountEvent) -> None:
        got.append((trio.current_time(), ev))

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(venue.run_account_stream, on_account)
            await trio.sleep(0.01)
            t0 = trio.current_time()
            await venue.place_entry(entry())  # 4 events: NEW, Fill, FILLED, PositionUpdate
            await trio.sleep(5)
            nursery.cancel_scope.cancel()
    # event 1 dropped, event 2 delayed 2 s, event 3 lost → StreamGap, event 4 normal
    assert len(venue.dropped_events) == 2
    names = [type(e).__name__ for _, e in got]
    assert names == ["Fill", "StreamGap", "PositionUpdate"]
    assert got[0][0] - t0 == pytest.approx(2.0)
    assert isinstance(got[1][1], StreamGap) and got[1][1].stream == "private"


async def test_partial_fill_fault_then_reduce_and_setup(mock_clock: trio.testing.MockClock) -> None:
    mock_clock.autojump_threshold = 0
    plan = FaultPlan().fail_next("place_entry", Fault.partial_fill(D("0.5"), remainder="expire"))
    venue = make("binance", faults=plan)
    with trio.fail_after(5):
        await venue.setup_account({BTC: 5})
        o = await venue.place_entry(entry(qty="0.02"))
        assert o.status is OrderStatus.EXPIRED and o.filled_qty == D("0.01")
        assert venue.engine.wallet().used_margin_usdt == D("200")  # 1000 USDT at 5x
        st = await venue.place_stop(StopRequest(BTC, L, D("98000"), "tb-aa-S0", qty=o.filled_qty))
        assert st.qty == D("0.01")
        r = await venue.place_reduce(ReduceRequest(BTC, L, D("0.01"), "tb-aa-C0"))
        assert r.status is OrderStatus.FILLED
        assert await venue.positions() == []
        assert len(await venue.open_orders(BTC)) == 1  # Binance leaves the stop
        bal = await venue.balance()
        assert bal.wallet_usdt == bal.available_usdt


async def test_next_three_stop_calls_fail_by_role_entries_unaffected() -> None:
    plan = FaultPlan().fail_next("*", Fault.server_error(), count=3, role=OrderRole.STOP)
    venue = make("binance", faults=plan)
    with trio.fail_after(5):
        await venue.place_entry(entry())  # role ENTRY: not affected
        req = StopRequest(BTC, L, D("98000"), "tb-aa-S0")
        for _ in range(3):
            with pytest.raises(TransientError):
                await venue.place_stop(req)
        st = await venue.place_stop(req)
        assert [s.client_order_id for s in await venue.stops(BTC, L)] == [st.client_order_id]
        assert [(f.method, f.role) for f in plan.log] == [("place_stop", OrderRole.STOP)] * 3


async def test_timeout_after_accept_on_stop_then_duplicate_client_id_resolves(
    mock_clock: trio.testing.MockClock,
) -> None:
    mock_clock.autojump_threshold = 0
    plan = FaultPlan().fail_next("place_stop", Fault.timeout_after_accept(timeout_s=1))
    venue = make("binance", faults=plan)
    with trio.fail_after(30):
        await venue.place_entry(entry())
        req = StopRequest(BTC, L, D("98000"), "tb-aa-S0")
        with pytest.raises(OutcomeUnknown):
            await venue.place_stop(req)
        with pytest.raises(RejectedError) as dup:  # a blind resend is refused (-4116)
            await venue.place_stop(req)
        assert dup.value.code == "-4116"
        found = await venue.get_order(BTC, "tb-aa-S0")
        assert found is not None and found.status is OrderStatus.NEW and found.close_position
        assert len(await venue.stops(BTC, L)) == 1


async def test_rate_limit_sliding_window_in_virtual_time(
    mock_clock: trio.testing.MockClock,
) -> None:
    mock_clock.autojump_threshold = 0
    venue = make("bybit", rate_limits={"get_order": (2, 1.0)})
    with trio.fail_after(10):
        assert await venue.get_order(BTC, "x") is None
        assert await venue.get_order(BTC, "x") is None
        with pytest.raises(RateLimited) as rl:
            await venue.get_order(BTC, "x")
        assert rl.value.code == "10006" and rl.value.retry_after_s == pytest.approx(1.0)
        await venue.balance()  # other methods are not limited
        await trio.sleep(rl.value.retry_after_s)
        assert await venue.get_order(BTC, "x") is None
