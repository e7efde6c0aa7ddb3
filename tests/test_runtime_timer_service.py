"""The timer service (actors/runtime/_timers.py): one heap for every timer of a trio run.

What a task per timer gave and the service must keep: same-instant fires newest timer
first, backpressure on a full mailbox without losing a ``once``, a periodic tick re-armed
only after its blocked delivery, a ``quiet`` hook that raises crashing its actor, and a
stopped actor's timers never firing into its restarted mailbox. All under MockClock.
"""

from __future__ import annotations

import pytest
import trio
import trio.testing

from actors.runtime import Actor, Address, run_actor, runnable_besides_timers


class Sched(Actor[object]):
    mailbox_size = 2

    def __init__(self, plan: list[tuple[str, float]], *, slow_s: float = 0.0) -> None:
        self.plan = plan
        self.slow_s = slow_s
        self.seen: list[tuple[float, object]] = []

    async def on_start(self) -> None:
        for key, delay in self.plan:
            self.timers.once(key, delay, key)

    async def handle(self, message: object) -> object:
        self.seen.append((trio.current_time(), message))
        if self.slow_s:
            await trio.sleep(self.slow_s)
        return None


async def test_same_instant_fires_come_newest_timer_first(
    autojump_clock: trio.testing.MockClock,
) -> None:
    actor = Sched([("a", 1.0), ("b", 1.0), ("c", 0.5), ("d", 1.0)])
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            t0 = trio.current_time()
            await nursery.start(run_actor, actor, "s")
            await trio.sleep(2)
            nursery.cancel_scope.cancel()
    assert [(t - t0, m) for t, m in actor.seen] == [(0.5, "c"), (1.0, "d"), (1.0, "b"), (1.0, "a")]


async def test_full_mailbox_delays_but_never_drops_a_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # mailbox of 2, each message takes 1 s: five fires due at 1 s queue behind each other
    actor = Sched([(k, 1.0) for k in "vwxyz"], slow_s=1.0)
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            t0 = trio.current_time()
            await nursery.start(run_actor, actor, "s")
            await trio.sleep(10)
            nursery.cancel_scope.cancel()
    assert sorted(m for _, m in actor.seen) == list("vwxyz")
    assert [t - t0 for t, _ in actor.seen] == [1.0, 2.0, 3.0, 4.0, 5.0]


class Periodic(Actor[object]):
    mailbox_size = 1

    def __init__(self) -> None:
        self.ticks: list[float] = []
        self.calls = 0

    async def on_start(self) -> None:
        self.timers.every("p", 1.0, "tick", quiet=self.quiet)

    def quiet(self) -> bool:
        self.calls += 1
        assert runnable_besides_timers() >= 0
        if self.calls == 4:
            raise RuntimeError("quiet hook failed")
        return self.calls == 2  # the second tick is applied in place, not delivered

    async def handle(self, message: object) -> object:
        self.ticks.append(trio.current_time())
        return None


async def test_quiet_ticks_are_not_delivered_and_a_raising_hook_crashes_the_actor(
    autojump_clock: trio.testing.MockClock,
) -> None:
    actor = Periodic()
    t0 = trio.current_time()
    with trio.fail_after(30), pytest.RaisesGroup(RuntimeError, flatten_subgroups=True):
        async with trio.open_nursery() as nursery:
            await nursery.start(run_actor, actor, "p")
            await trio.sleep(10)
    assert [t - t0 for t in actor.ticks] == [1.0, 3.0]
    assert actor.calls == 4  # the hook raised at 4 s: the actor crashed, its timer ended
    assert trio.current_time() - t0 == 4.0


async def test_a_stopped_actors_timers_never_fire(autojump_clock: trio.testing.MockClock) -> None:
    actor = Sched([("late", 5.0)])
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            address: Address[object] = await nursery.start(run_actor, actor, "s")
            await address.send("first")
            await trio.sleep(1)
            actor.stop()
            await trio.sleep(10)  # "late" was due at 5 s: dropped with its actor
            nursery.cancel_scope.cancel()
    assert [m for _, m in actor.seen] == ["first"]


async def test_sleep_until_wakes_at_the_deadline_and_still_obeys_outer_cancels(
    autojump_clock: trio.testing.MockClock,
) -> None:
    from actors.runtime import sleep_until

    t0 = trio.current_time()
    await sleep_until(t0 + 2.5)
    assert trio.current_time() - t0 == 2.5
    await sleep_until(t0)  # in the past: returns after one scheduler round
    assert trio.current_time() - t0 == 2.5
    with trio.move_on_after(1.0) as outer:
        await sleep_until(t0 + 100)
    assert outer.cancelled_caught and trio.current_time() - t0 == 3.5
    with pytest.RaisesGroup(ValueError):
        async with trio.open_nursery() as nursery:

            async def fail() -> None:
                await trio.sleep(1)
                raise ValueError("sibling failed")

            nursery.start_soon(fail)
            await sleep_until(t0 + 100)  # cancelled by the nursery at 4.5 s, not at 100 s
    assert trio.current_time() - t0 == 4.5


class _FullAddress:
    """A mailbox that is always full (the timer then hands the fire to its nursery)."""

    def send_nowait(self, message: object) -> None:
        from tradebot.errors import MailboxFull

        raise MailboxFull("full")


async def test_a_failing_fire_drops_its_timer_and_the_others_still_fire(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    from actors.runtime import Timers

    async with trio.open_nursery() as gone:
        pass  # a closed nursery: start_soon raises RuntimeError
    broken = Timers(gone, _FullAddress())  # type: ignore[arg-type]
    actor = Sched([("ok", 2.0)])
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            t0 = trio.current_time()
            await nursery.start(run_actor, actor, "s")
            broken.once("bad", 1.0, "never")
            await trio.sleep(5)
            nursery.cancel_scope.cancel()
    assert [(t - t0, m) for t, m in actor.seen] == [(2.0, "ok")]
    assert broken.active() == set() and "timer 'bad' dropped" in caplog.text
