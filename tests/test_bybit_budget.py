"""Rate budgets: protective calls (stop moves, closes) overtake a burst of queued entries."""

from __future__ import annotations

import pybit.unified_trading as ut
import pytest
import trio
import trio.testing
from _bybit_support import KEY, SECRET, D, bybit_env

from adapters.bybit import EndpointBudgets, Priority, RateBudget
from tradebot.domain import PositionSide
from tradebot.errors import RateLimited
from tradebot.events import EventType, MemoryJournal
from tradebot.ports import EntryRequest, ReduceRequest, StopRequest, StopState


async def test_protective_request_is_served_within_one_slot(
    mock_clock: trio.testing.MockClock,
) -> None:
    mock_clock.autojump_threshold = 0
    budget = RateBudget(rate_per_s=10, capacity=10, reserved=2)
    granted: list[tuple[str, float]] = []
    t0 = trio.current_time()

    async def take(name: str, prio: Priority) -> None:
        await budget.acquire(prio)
        granted.append((name, trio.current_time() - t0))

    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            for i in range(50):
                nursery.start_soon(take, f"entry{i}", Priority.NORMAL)
            await trio.sleep(1.05)  # entries are being served at 10/s, ~30 still queued
            assert budget.queued > 25
            asked = trio.current_time() - t0
            nursery.start_soon(take, "stop", Priority.PROTECTIVE)
    order = [n for n, _ in granted]
    t_stop = dict(granted)["stop"]
    # the reserve gives it a token at once: no entry is granted between ask and grant
    assert t_stop - asked <= 1 / 10 + 1e-9
    served_before = order.index("stop")
    assert sum(1 for n, t in granted[:served_before] if t > asked) <= 1
    # NORMAL requests never dig into the reserve: 8 at once, then one per slot
    entry_times = [t for n, t in granted if n != "stop"]
    assert entry_times[:8] == [0.0] * 8
    # 42 more entries at one per 0.1 s slot, plus the one slot the stop's token cost
    assert entry_times[-1] == pytest.approx(42 * 0.1 + 0.1)


async def test_budget_cancellation_leaves_the_queue(mock_clock: trio.testing.MockClock) -> None:
    mock_clock.autojump_threshold = 0
    budget = RateBudget(rate_per_s=1, capacity=1, reserved=0)
    await budget.acquire()
    with trio.move_on_after(0.5):
        await budget.acquire()
    assert budget.queued == 0
    await budget.acquire()  # next slot still available to others
    assert trio.current_time() == pytest.approx(1.0)


def test_budget_arguments_are_checked() -> None:
    with pytest.raises(ValueError):
        RateBudget(rate_per_s=0, capacity=1)
    with pytest.raises(ValueError):
        RateBudget(rate_per_s=1, capacity=2, reserved=2)


async def test_stop_move_and_close_overtake_50_queued_entries_over_loopback() -> None:
    """50 entries queue on the order budget (20/s, 2 reserved); a conditional stop and a
    close sent meanwhile reach the venue within one budget slot; the venue's own per-second
    limit (20/s) is never hit."""
    journal = MemoryJournal()
    budgets = EndpointBudgets(order_per_s=20, trading_stop_per_s=10, read_per_s=100, reserved=2)
    with trio.fail_after(30):
        async with bybit_env(
            journal=journal,
            budgets=budgets,
            rate_limits={"order": 20, "trading_stop": 10, "read": 100, "public": 600},
        ) as (sb, venue):
            await venue.place_entry(
                EntryRequest("ETHUSDT", PositionSide.LONG, D("1"), "tb-z-E0", D("2400"))
            )

            async def enter(i: int) -> None:
                await venue.place_entry(
                    EntryRequest("BTCUSDT", PositionSide.LONG, D("0.001"), f"tb-q-E{i}", D("95000"))
                )

            async with trio.open_nursery() as nursery:
                for i in range(50):
                    nursery.start_soon(enter, i)
                while len(sb.requests_to("/v5/order/create")) < 20:  # noqa: ASYNC110
                    await trio.sleep(0.01)
                assert budgets.budgets["order"].queued >= 20

                def sent_after(mark: int, cid: str) -> int:
                    """Entries whose request went out between ``mark`` and ``cid``'s."""
                    n = 0
                    for e in journal.events[mark:]:
                        if (
                            e.type is EventType.EXCHANGE_REQUEST
                            and e.data["path"] == "/v5/order/create"
                        ):
                            if e.client_order_id == cid:
                                return n
                            n += 1
                    raise AssertionError(f"{cid} was never sent")

                mark = len(journal.events)
                stop = await venue.place_stop(
                    StopRequest("ETHUSDT", PositionSide.LONG, D("2300"), "tb-z-S1", qty=D("0.5"))
                )
                # the stop took a reserved token: no queued entry went out before it
                assert sent_after(mark, "tb-z-S1") == 0
                # position stop move: its own budget, sent at once
                await venue.amend_stop(
                    StopState("ETHUSDT", PositionSide.LONG, D("2400")), D("2450")
                )
                mark = len(journal.events)
                await venue.place_reduce(
                    ReduceRequest("ETHUSDT", PositionSide.LONG, D("0.5"), "tb-z-C0")
                )
                # the close waited at most one budget slot (the reserve may be spent)
                assert sent_after(mark, "tb-z-C0") <= 1
                assert budgets.budgets["order"].queued > 0  # entries were still waiting
            creates = [r.params["orderLinkId"] for r in sb.requests_to("/v5/order/create")]
            # the close overtook the queue: many entries queued before it went out after it
            assert len(creates) - 1 - creates.index("tb-z-C0") >= 5
            assert stop.client_order_id == "tb-z-S1"
            assert len(sb.requests_to("/v5/order/create")) == 53
            assert not journal.of_type(EventType.RATE_LIMITED)
            assert [p.qty for p in await venue.positions("BTCUSDT")] == [D("0.050")]


async def test_venue_rate_limit_10006_carries_the_reset_time() -> None:
    """Another client of the same UID (here pybit) spent the venue's limit: our first
    request meets 10006; the adapter raises RateLimited with retry_after_s from
    X-Bapi-Limit-Reset-Timestamp, journals it, and holds the budget until the reset."""
    journal = MemoryJournal()
    with trio.fail_after(10):
        async with bybit_env(
            journal=journal,
            rate_limits={"order": 3, "trading_stop": 10, "read": 100, "public": 600},
        ) as (sb, venue):
            await venue.verify_position_modes(["BTCUSDT"])

            def other_client() -> None:
                http = ut.HTTP(testnet=False, api_key=KEY, api_secret=SECRET, max_retries=1)
                http.endpoint = sb.rest_url
                for i in range(3):
                    http.place_order(
                        category="linear",
                        symbol="BTCUSDT",
                        side="Buy",
                        orderType="Market",
                        qty="0.001",
                        positionIdx=1,
                        orderLinkId=f"py-o-{i}",
                    )

            await trio.to_thread.run_sync(other_client)
            with pytest.raises(RateLimited) as info:
                await venue.place_entry(
                    EntryRequest("BTCUSDT", PositionSide.LONG, D("0.001"), "tb-r-E0")
                )
            assert info.value.code == "10006" and 0 < info.value.retry_after_s <= 1.0
            assert len(journal.of_type(EventType.RATE_LIMITED)) == 1
            # X-Bapi-Limit-Status 0: the budget gives no token before the reset
            assert venue.http.budgets.budgets["order"].available() <= 0
            await venue.place_entry(
                EntryRequest("BTCUSDT", PositionSide.LONG, D("0.001"), "tb-r-E1")
            )
            # the budget waited for the reset: the venue took it without another 10006
            assert len(journal.of_type(EventType.RATE_LIMITED)) == 1


async def test_limit_headers_keep_the_budget_in_step_with_the_venue() -> None:
    """Our budget allows 1000/s but the venue's limit is 4/s: the first reply's headers
    lower the rate and spend the tokens, so a burst never meets 10006."""
    journal = MemoryJournal()
    with trio.fail_after(20):
        async with bybit_env(
            journal=journal,
            rate_limits={"order": 4, "trading_stop": 10, "read": 100, "public": 600},
            budgets=EndpointBudgets(order_per_s=1000, read_per_s=1000, reserved=1),
        ) as (sb, venue):
            await venue.verify_position_modes(["BTCUSDT"])
            budget = venue.http.budgets.budgets["order"]
            for i in range(5):
                await venue.place_entry(
                    EntryRequest("BTCUSDT", PositionSide.LONG, D("0.001"), f"tb-s-E{i}")
                )
            assert budget.rate_per_s == 1.0  # limit 4 - capacity 2 - 1 of slack
            assert budget.configured_rate_per_s == 1000 - 2 - 1
            assert not journal.of_type(EventType.RATE_LIMITED)
            assert len(sb.requests_to("/v5/order/create")) == 5


async def test_observe_holds_until_the_reset_and_restores_the_rate(
    mock_clock: trio.testing.MockClock,
) -> None:
    mock_clock.autojump_threshold = 0
    budget = RateBudget(rate_per_s=20, capacity=3, reserved=1)
    t0 = trio.current_time()
    budget.observe(limit=10, remaining=0, reset_in_s=0.4)
    assert budget.rate_per_s == 6.0  # 10 - 3 - 1
    await budget.acquire(Priority.PROTECTIVE)
    # no token before the reset (0.4 s), then one token at 6/s (1/6 s)
    assert trio.current_time() - t0 == pytest.approx(0.4 + 1 / 6)
    budget.observe(limit=50, remaining=40, reset_in_s=1.0)
    assert budget.rate_per_s == 20  # never above the configured rate
    budget.observe(limit=None, remaining=None, reset_in_s=0.0)  # no headers: no change
    assert budget.rate_per_s == 20
    budget.observe(limit=None, remaining=1, reset_in_s=0.5)
    assert budget.available() <= 1.0
