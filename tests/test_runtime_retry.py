"""The one retry helper (actors.runtime.retry / Backoff): exact pauses in trio virtual
time, jitter bounded and reproducible, the hook and the pause override, and the
PositionActor's stop placement pausing exactly as it always has."""

from __future__ import annotations

import random

import pytest
import trio
import trio.testing

from actors.runtime import Backoff, RetryAttempt, retry
from adapters.paper import Fault, FaultPlan
from tests._position_support import paper_world
from tradebot.domain import OrderRole, PositionSide
from tradebot.errors import RateLimited, TransientError, WouldTriggerImmediately
from tradebot.events import EventType


def test_backoff_schedule_and_validation() -> None:
    b = Backoff(initial_s=0.25)
    assert [b.delay_s(n) for n in range(1, 6)] == [0.25, 0.5, 1.0, 2.0, 4.0]
    assert [Backoff(1.0, factor=3, max_s=5).delay_s(n) for n in (1, 2, 3)] == [1.0, 3.0, 5.0]
    with pytest.raises(ValueError):
        Backoff(initial_s=-1)
    with pytest.raises(ValueError):
        Backoff(initial_s=1, factor=0.5)
    with pytest.raises(ValueError):
        Backoff(initial_s=1, jitter=1.0)
    with pytest.raises(ValueError):
        b.delay_s(0)


def test_jitter_is_bounded_and_reproducible_with_a_seed() -> None:
    b = Backoff(initial_s=1.0, jitter=0.2)
    a = [b.delay_s(3, random.Random(5)) for _ in range(3)]
    assert a[0] == a[1] == a[2]
    many = [b.delay_s(3, r) for r in [random.Random(7)] for _ in range(200)]
    assert all(3.2 <= d <= 4.8 for d in many) and len(set(many)) > 100


async def test_pauses_are_exact_in_virtual_time(autojump_clock: trio.testing.MockClock) -> None:
    t0 = trio.current_time()
    calls: list[float] = []
    hooks: list[RetryAttempt] = []

    async def flaky(n: int) -> str:
        calls.append(trio.current_time() - t0)
        if n < 4:
            raise TransientError(f"try {n}")
        return "ok"

    out = await retry(
        flaky, attempts=5, backoff=Backoff(0.25), retry_on=TransientError, on_retry=hooks.append
    )
    assert out == "ok"
    assert calls == [0.0, 0.25, 0.75, 1.75]
    assert [(h.attempt, h.wait_s, h.last) for h in hooks] == [
        (1, 0.25, False),
        (2, 0.5, False),
        (3, 1.0, False),
    ]


async def test_last_error_raised_and_optional_pause_after_it(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def always(n: int) -> None:
        raise TransientError(f"try {n}")

    t0 = trio.current_time()
    with pytest.raises(TransientError, match="try 3"):
        await retry(always, attempts=3, backoff=Backoff(1.0), retry_on=TransientError)
    assert trio.current_time() - t0 == 3.0  # 1 + 2, no pause after the last
    t0 = trio.current_time()
    hooks: list[RetryAttempt] = []
    with pytest.raises(TransientError, match="try 3"):
        await retry(
            always,
            attempts=3,
            backoff=Backoff(1.0),
            retry_on=TransientError,
            on_retry=hooks.append,
            wait_after_last=True,
        )
    assert trio.current_time() - t0 == 7.0  # 1 + 2 + 4
    assert hooks[-1].last is True


async def test_never_on_and_unlisted_errors_propagate_at_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    calls = 0

    async def refused(n: int) -> None:
        nonlocal calls
        calls += 1
        raise WouldTriggerImmediately("through the mark", code="-2021")

    with pytest.raises(WouldTriggerImmediately):
        await retry(
            refused,
            attempts=5,
            backoff=Backoff(1.0),
            retry_on=Exception,
            never_on=WouldTriggerImmediately,
        )
    with pytest.raises(WouldTriggerImmediately):
        await retry(refused, attempts=5, backoff=Backoff(1.0), retry_on=TransientError)
    assert calls == 2
    with pytest.raises(ValueError):
        await retry(refused, attempts=0, backoff=Backoff(1.0), retry_on=Exception)


async def test_wait_for_overrides_the_pause(autojump_clock: trio.testing.MockClock) -> None:
    async def limited(n: int) -> int:
        if n == 1:
            raise RateLimited("slow down", retry_after_s=7.0)
        return n

    t0 = trio.current_time()
    out = await retry(
        limited,
        attempts=2,
        backoff=Backoff(0.25),
        retry_on=TransientError,
        wait_for=lambda e, d: e.retry_after_s if isinstance(e, RateLimited) else d,
    )
    assert out == 2 and trio.current_time() - t0 == 7.0


async def test_stop_placement_pauses_as_before(autojump_clock: trio.testing.MockClock) -> None:
    """binance-like: the first three stop placements fail (503, rate limit, 503); the
    pauses are the doubling backoff 0.25 / 0.5 s with the rate limit's 3 s in between."""
    plan = (
        FaultPlan(seed=3)
        .fail_next("place_stop", Fault.server_error(503), role=OrderRole.STOP)
        .fail_next("place_stop", Fault.rate_limit(3.0), role=OrderRole.STOP)
        .fail_next("place_stop", Fault.server_error(503), role=OrderRole.STOP)
    )
    with trio.fail_after(60):
        async with paper_world("binance", faults=plan, marks={"ETHUSDT": "2500"}) as w:
            req = w.request("ETHUSDT", PositionSide.LONG, "0.100", "2500")
            actor = w.actor(req)
            await w.start(actor)
            assert (await actor._ticket.wait()).opened  # type: ignore[union-attr]
            retries = w.journal.of_type(EventType.STOP_RETRY)
            assert [(e.data["attempt"], e.data["retry_in_s"]) for e in retries] == [
                (1, 0.25),
                (2, 3.0),
                (3, 1.0),
            ]
            intents = w.journal.of_type(EventType.STOP_INTENT)
            assert [e.client_order_id[-2:] for e in intents] == ["S1", "S2", "S3", "S4"]
            gaps = [
                (b.ts - a.ts).total_seconds() - r.data["retry_in_s"]
                for a, b, r in zip(intents, intents[1:], retries, strict=False)
            ]
            # the same venue round trip each time (datetime has microsecond resolution)
            assert {round(g, 6) for g in gaps} == {0.025}
