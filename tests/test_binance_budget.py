"""The Binance request budget under trio's MockClock: exact virtual times."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from adapters.binance.budget import BudgetLimits, Priority, RequestBudget, endpoint_cost

P, N = Priority.PROTECTIVE, Priority.NORMAL


def test_endpoint_costs() -> None:
    assert endpoint_cost("POST", "/fapi/v1/order", {}) == (0, 1)
    assert endpoint_cost("POST", "/fapi/v1/algoOrder", {}) == (0, 1)
    assert endpoint_cost("GET", "/fapi/v1/openOrders", {"symbol": "BTCUSDT"}) == (1, 0)
    assert endpoint_cost("GET", "/fapi/v1/openOrders", {}) == (40, 0)
    assert endpoint_cost("GET", "/fapi/v1/openAlgoOrders", {}) == (40, 0)
    assert endpoint_cost("GET", "/fapi/v3/positionRisk", {}) == (5, 0)
    assert endpoint_cost("GET", "/fapi/v1/exchangeInfo", {}) == (1, 0)
    with pytest.raises(ValueError):
        BudgetLimits(weight_1m=10, reserve_weight=10)


async def test_normal_requests_leave_the_reserve_to_protective_ones(
    autojump_clock: trio.testing.MockClock,
) -> None:
    b = RequestBudget(BudgetLimits(weight_1m=100, reserve_weight=20, margin=0))
    t0 = trio.current_time()
    for _ in range(8):
        async with b.slot(10, 0, N):
            pass
    assert b.weight.used == 80 and trio.current_time() == t0
    async with b.slot(10, 0, P):  # the reserve is for protective requests
        pass
    assert trio.current_time() == t0 and b.weight.used == 90
    async with b.slot(10, 0, N):  # waits for the window to roll (60 s)
        pass
    assert trio.current_time() == pytest.approx(t0 + 60)
    assert b.weight.used == 10


async def test_order_count_windows(autojump_clock: trio.testing.MockClock) -> None:
    b = RequestBudget(
        BudgetLimits(
            orders_10s=5, reserve_orders_10s=1, orders_1m=100, reserve_orders_1m=0, margin=0
        )
    )
    t0 = trio.current_time()
    for _ in range(4):
        async with b.slot(0, 1, N):
            pass
    async with b.slot(0, 1, P):
        pass
    assert trio.current_time() == t0
    async with b.slot(0, 1, P):  # the 10 s window is full even for protective requests
        pass
    assert trio.current_time() == pytest.approx(t0 + 10)


async def test_observe_adopts_the_venue_counts(autojump_clock: trio.testing.MockClock) -> None:
    b = RequestBudget(BudgetLimits(weight_1m=2400, reserve_weight=240, margin=10))
    b.observe({"x-mbx-used-weight-1m": "2200", "x-mbx-order-count-10s": "7"})
    assert (b.weight.used, b.orders_10s.used) == (2200, 7)
    t0 = trio.current_time()
    async with b.slot(5, 0, P):  # 2205 <= 2400 - 10
        pass
    assert trio.current_time() == t0
    async with b.slot(5, 0, N):  # 2210 > 2400 - 240 - 10: waits for the next window
        pass
    assert trio.current_time() == pytest.approx(t0 + 60)


async def test_block_sends_nothing_then_protective_first(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """After a 418/429 nothing is admitted until the block ends; then protective requests go
    first, and normal ones wait until those have been answered."""
    b = RequestBudget()
    b.block(120.0, "HTTP 418")
    t0 = trio.current_time()
    log: list[tuple[str, float, str]] = []

    async def request(name: str, prio: Priority, delay: float, sequencer_start: float) -> None:
        await trio.sleep(sequencer_start)
        async with b.slot(1, 0, prio):
            log.append((name, trio.current_time() - t0, "sent"))
            await trio.sleep(delay)  # the round trip
        log.append((name, trio.current_time() - t0, "answered"))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(request, "read-1", N, 0.05, 0.0)
        nursery.start_soon(request, "entry", N, 0.05, 1.0)
        nursery.start_soon(request, "stop-move", P, 0.2, 50.0)
        nursery.start_soon(request, "close", P, 0.1, 60.0)
    sent = [(name, t) for name, t, what in log if what == "sent"]
    assert [name for name, _ in sent] == ["stop-move", "close", "read-1", "entry"]
    assert sent[0][1] == pytest.approx(120.0) and sent[1][1] == pytest.approx(120.0)
    # the normal requests went only after both protective ones were answered (120.2 s)
    assert sent[2][1] == pytest.approx(120.2) and sent[3][1] == pytest.approx(120.2)
    b.block(5.0, "x")  # blocks only extend
    b.block(1.0, "y")
    assert b.blocked_until == pytest.approx(trio.current_time() + 5.0)


async def test_cancelled_waiter_leaves_the_queue(autojump_clock: trio.testing.MockClock) -> None:
    b = RequestBudget()
    b.block(10.0, "x")
    with trio.move_on_after(1):
        async with b.slot(1, 0, N):
            pass
    assert b.queued == 0
