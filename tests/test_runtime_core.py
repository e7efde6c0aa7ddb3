"""Actor runtime core: mailbox ordering and backpressure, ask, LatestValue, timers.

Every test runs under trio's MockClock (pytest-trio's ``autojump_clock`` fixture) and
asserts exact virtual times.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Iterator

import attrs
import pytest
import trio
import trio.lowlevel
import trio.testing

from actors.runtime import Actor, Address, LatestValue, run_actor
from tradebot.errors import ActorStopped, AskTimeout, MailboxFull


@attrs.frozen
class Put:
    producer: int
    seq: int


@attrs.frozen
class Work:
    duration_s: float


class Recorder(Actor[object]):
    mailbox_size = 16

    def __init__(self) -> None:
        self.seen: list[object] = []
        self.times: list[float] = []

    async def handle(self, message: object) -> object:
        if isinstance(message, Work):
            await trio.sleep(message.duration_s)
        if message == "boom":
            raise ValueError("boom")
        if message == "stop":
            self.stop()
        self.seen.append(message)
        self.times.append(trio.current_time())
        return ("ok", message)


async def test_100k_messages_from_10_producers_complete_in_per_producer_order(
    autojump_clock: trio.testing.MockClock,
) -> None:
    actor = Recorder()
    per_producer = 10_000
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            address: Address[object] = await nursery.start(run_actor, actor, "sink")

            async def producer(p: int) -> None:
                for i in range(per_producer):
                    await address.send(Put(p, i))

            async with trio.open_nursery() as producers:
                for p in range(10):
                    producers.start_soon(producer, p)
            await address.ask("flush", timeout_s=10)
            nursery.cancel_scope.cancel()
    puts = [m for m in actor.seen if isinstance(m, Put)]
    assert len(puts) == 10 * per_producer
    for p in range(10):
        assert [m.seq for m in puts if m.producer == p] == list(range(per_producer))
    assert not address.alive


async def test_send_nowait_raises_mailbox_full_and_send_waits_for_room(
    autojump_clock: trio.testing.MockClock,
) -> None:
    actor = Recorder()
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            address: Address[object] = await nursery.start(run_actor, actor, "r")
            address.send_nowait(Work(1.0))
            await trio.lowlevel.checkpoint()  # the actor takes Work off the queue and sleeps 1 s
            for i in range(Recorder.mailbox_size):
                address.send_nowait(i)
            with pytest.raises(MailboxFull):
                address.send_nowait("overflow")
            t0 = trio.current_time()
            await address.send("late")  # room only once Work is done at t0 + 1 s
            assert trio.current_time() - t0 == pytest.approx(1.0, abs=1e-9)
            await address.ask("flush", timeout_s=5)
            nursery.cancel_scope.cancel()
    assert actor.seen[1:17] == list(range(16))
    assert actor.seen[17] == "late"


async def test_ask_to_busy_actor_times_out_at_exactly_its_timeout(
    autojump_clock: trio.testing.MockClock,
) -> None:
    actor = Recorder()
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            address: Address[object] = await nursery.start(run_actor, actor, "busy")
            await address.send(Work(10.0))
            t0 = trio.current_time()
            with pytest.raises(AskTimeout):
                await address.ask("q", timeout_s=2.5)
            assert trio.current_time() - t0 == 2.5
            # the abandoned request is never handled; the actor stays usable
            assert await address.ask("later", timeout_s=20) == ("ok", "later")
            assert trio.current_time() - t0 == 10.0
            assert "q" not in actor.seen
            nursery.cancel_scope.cancel()


async def test_ask_to_dead_actor_fails_at_once(autojump_clock: trio.testing.MockClock) -> None:
    actor = Recorder()
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            address: Address[object] = await nursery.start(run_actor, actor, "dead")
            assert await address.ask("stop", timeout_s=1) == ("ok", "stop")
        assert not address.alive
        t0 = trio.current_time()
        with pytest.raises(ActorStopped):
            await address.ask("q", timeout_s=30)
        with pytest.raises(ActorStopped):
            await address.send("q")
        with pytest.raises(ActorStopped):
            address.send_nowait("q")
        assert trio.current_time() == t0


async def test_pending_asks_fail_at_once_when_the_actor_dies(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The in-flight ask gets the handler's exception; queued asks get ActorStopped at the
    crash time, not at their timeouts; a blocked sender is woken too."""
    actor = Recorder()
    results: dict[str, object] = {}
    with trio.fail_after(60):
        with pytest.RaisesGroup(pytest.RaisesExc(ValueError, match="boom")):
            async with trio.open_nursery() as nursery:
                address: Address[object] = await nursery.start(run_actor, actor, "crashy")
                await address.send(Work(3.0))

                async def asker(tag: str, message: object) -> None:
                    try:
                        await address.ask(message, timeout_s=100)
                    except Exception as exc:
                        results[tag] = (type(exc).__name__, trio.current_time())

                nursery.start_soon(asker, "crashing", "boom")
                await trio.sleep(0.5)
                nursery.start_soon(asker, "queued", "after")
                await trio.sleep(100)
    assert results == {"crashing": ("ValueError", 3.0), "queued": ("ActorStopped", 3.0)}


async def test_handler_exception_is_reraised_in_the_asker(
    autojump_clock: trio.testing.MockClock,
) -> None:
    actor = Recorder()
    with trio.fail_after(60):
        with pytest.RaisesGroup(ValueError):
            async with trio.open_nursery() as nursery:
                address: Address[object] = await nursery.start(run_actor, actor, "x")
                with pytest.raises(ValueError, match="boom"):
                    await address.ask("boom", timeout_s=1)
                await trio.sleep_forever()


async def test_ask_rejects_bad_timeout(autojump_clock: trio.testing.MockClock) -> None:
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            address: Address[object] = await nursery.start(run_actor, Recorder(), "x")
            for bad in (0, -1, float("nan")):
                with pytest.raises(ValueError):
                    await address.ask("q", timeout_s=bad)
            nursery.cancel_scope.cancel()


async def test_bad_mailbox_size_is_a_clear_error() -> None:
    class Bad(Recorder):
        mailbox_size = 0

    with pytest.raises(ValueError, match="mailbox_size"):
        await run_actor(Bad(), name="bad")


# ---------------------------------------------------------------- LatestValue


async def test_latest_value_sleeping_consumer_sees_only_the_newest(
    autojump_clock: trio.testing.MockClock,
) -> None:
    cell: LatestValue[int] = LatestValue()
    seen: list[int] = []
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:

            async def consumer() -> None:
                async for value in cell.subscribe():
                    seen.append(value)
                    await trio.sleep(1.0)  # busy while the burst happens

            nursery.start_soon(consumer)
            await trio.sleep(0.1)
            cell.set(-1)
            await trio.sleep(0.1)  # consumer took -1 and is now sleeping
            for i in range(10_000):
                cell.set(i)
            assert cell.version == 10_001
            await trio.sleep(5)
            cell.close()
    assert seen == [-1, 9_999]


async def test_latest_value_1000_consumers_all_see_every_distinct_final_value(
    autojump_clock: trio.testing.MockClock,
) -> None:
    cell: LatestValue[str] = LatestValue()
    last: dict[int, list[str]] = {i: [] for i in range(1000)}
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:

            async def consumer(i: int) -> None:
                async for value in cell.subscribe():
                    last[i].append(value)

            for i in range(1000):
                nursery.start_soon(consumer, i)
            await trio.sleep(1)
            for round_ in range(3):
                for j in range(100):
                    cell.set(f"r{round_}-{j}")
                await trio.sleep(1)  # every consumer runs between rounds
            cell.close()
    for values in last.values():
        assert values == ["r0-99", "r1-99", "r2-99"]


async def test_latest_value_wait_changed_semantics(autojump_clock: trio.testing.MockClock) -> None:
    cell: LatestValue[int] = LatestValue()
    assert cell.get() is None and cell.version == 0
    cell.set(5)
    assert await cell.wait_changed(0) == (1, 5)  # newer value already there: immediate
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_set_later, cell, 7, 2.0)
            t0 = trio.current_time()
            assert await cell.wait_changed(1) == (2, 7)
            assert trio.current_time() - t0 == 2.0
    with trio.move_on_after(1) as scope:  # cancellable, no side effect
        await cell.wait_changed(2)
    assert scope.cancelled_caught and cell.get() == 7
    cell.close()
    with pytest.raises(trio.EndOfChannel):
        await cell.wait_changed(2)
    with pytest.raises(trio.ClosedResourceError):
        cell.set(8)


async def _set_later(cell: LatestValue[int], value: int, delay_s: float) -> None:
    await trio.sleep(delay_s)
    cell.set(value)


# ---------------------------------------------------------------- timers


@attrs.frozen
class Tick:
    name: str


class TimerActor(Actor[object]):
    def __init__(self) -> None:
        self.fired: list[tuple[float, str]] = []

    async def on_start(self) -> None:
        self.timers.once("a", 1.5, Tick("a"))
        self.timers.every("hb", 2.0, Tick("hb"))
        self.timers.once("cancelled", 3.0, Tick("cancelled"))
        self.timers.once("replaced", 1.0, Tick("replaced-old"))
        self.timers.once("replaced", 4.5, Tick("replaced-new"))

    async def handle(self, message: object) -> object:
        if isinstance(message, Tick):
            self.fired.append((trio.current_time(), message.name))
            if message.name == "a":
                self.timers.cancel("cancelled")
        elif isinstance(message, Work):
            await trio.sleep(message.duration_s)
        elif message == "active":
            return self.timers.active()
        elif message == "stop-hb":
            self.timers.cancel("hb")
        return None


async def test_timers_once_every_cancel_replace_exact_times(
    autojump_clock: trio.testing.MockClock,
) -> None:
    actor = TimerActor()
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            t0 = trio.current_time()
            address: Address[object] = await nursery.start(run_actor, actor, "t")
            assert await address.ask("active", timeout_s=1) == {"a", "hb", "cancelled", "replaced"}
            await trio.sleep(7.0 - (trio.current_time() - t0))
            await address.send("stop-hb")
            await trio.sleep(10)
            assert await address.ask("active", timeout_s=1) == set()
            nursery.cancel_scope.cancel()
    assert [(t - t0, n) for t, n in actor.fired] == [
        (1.5, "a"),
        (2.0, "hb"),
        (4.0, "hb"),
        (4.5, "replaced-new"),
        (6.0, "hb"),
    ]


async def test_every_conflates_ticks_while_actor_is_busy_and_stale_fires_are_dropped(
    autojump_clock: trio.testing.MockClock,
) -> None:
    actor = TimerActor()
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            t0 = trio.current_time()
            address: Address[object] = await nursery.start(run_actor, actor, "t")
            await trio.sleep(0.5)
            await address.send(Work(9.0))  # busy from 0.5 to 9.5: ticks at 2,4,6,8 conflate
            await trio.sleep(12.5 - (trio.current_time() - t0))
            nursery.cancel_scope.cancel()
    hb = [t - t0 for t, n in actor.fired if n == "hb"]
    assert hb == [9.5, 10.0, 12.0]


async def test_timer_rejects_bad_delays(autojump_clock: trio.testing.MockClock) -> None:
    class Bad(Actor[object]):
        async def on_start(self) -> None:
            for bad in (-1.0, float("inf"), float("nan")):
                with pytest.raises(ValueError):
                    self.timers.once("k", bad, "m")
            with pytest.raises(ValueError):
                self.timers.every("k", 0, "m")
            self.stop()

    with trio.fail_after(5):
        await run_actor(Bad(), name="bad")


@attrs.frozen
class Job:
    producer: int
    seq: int
    duration_s: float


class JobActor(Actor[Job]):
    mailbox_size = 4

    def __init__(self) -> None:
        self.handled: dict[tuple[int, int], tuple[float, float]] = {}
        self.order: list[tuple[int, int]] = []

    async def handle(self, message: Job) -> object:
        start = trio.current_time()
        await trio.sleep(message.duration_s)
        self.handled[(message.producer, message.seq)] = (start, trio.current_time())
        self.order.append((message.producer, message.seq))
        return message.seq


AskRecord = tuple[int, int, float, float, str, float]


async def _random_schedule(seed: int) -> tuple[JobActor, list[AskRecord]]:
    rng = random.Random(seed)
    actor = JobActor()
    asks: list[AskRecord] = []
    async with trio.open_nursery() as nursery:
        address: Address[Job] = await nursery.start(run_actor, actor, "jobs")

        async def producer(p: int, prng: random.Random) -> None:
            for seq in range(30):
                await trio.sleep(prng.choice([0.0, 0.05, 0.1, 0.3]))
                job = Job(p, seq, prng.choice([0.0, 0.01, 0.1, 0.25]))
                if prng.random() < 0.4:
                    timeout_s = prng.choice([0.05, 0.2, 0.5, 2.0])
                    t0 = trio.current_time()
                    try:
                        assert await address.ask(job, timeout_s=timeout_s) == seq
                        asks.append((p, seq, t0, timeout_s, "reply", trio.current_time()))
                    except AskTimeout:
                        asks.append((p, seq, t0, timeout_s, "timeout", trio.current_time()))
                else:
                    await address.send(job)

        async with trio.open_nursery() as producers:
            for p in range(4):
                producers.start_soon(producer, p, random.Random(rng.random()))
        await trio.sleep(100)  # let the mailbox drain
        nursery.cancel_scope.cancel()
    return actor, asks


@contextlib.contextmanager
def _seeded_trio_scheduler(seed: int) -> Iterator[None]:
    """Tasks woken at the same virtual instant run in an order fixed by ``seed``.

    Trio steps each batch of runnable tasks in a random order. Under pytest the
    Hypothesis plugin turns on trio's private ``_ALLOW_DETERMINISTIC_SCHEDULING`` (sort the
    batch by task creation, then ``_r.shuffle``), but ``_r`` is one process-wide
    ``random.Random`` seeded from os.urandom and advanced by every batch of every earlier
    test — including real-socket, real-time tests whose batch counts vary with CPU load.
    Without this, how ties at one instant resolve here depended on the session and the load.
    Private names, guarded by tests/test_trio_pin.py.
    """
    import trio._core._run as run_mod

    saved = (run_mod._ALLOW_DETERMINISTIC_SCHEDULING, run_mod._r)
    run_mod._ALLOW_DETERMINISTIC_SCHEDULING = True  # type: ignore[misc]
    run_mod._r = random.Random(seed)
    try:
        yield
    finally:
        run_mod._ALLOW_DETERMINISTIC_SCHEDULING, run_mod._r = saved  # type: ignore[misc]


async def test_randomized_sends_and_asks_keep_order_and_exact_timeouts(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """40 seeded random schedules of sends and asks with random handling times: per-sender
    FIFO; replies arrive exactly when handling ends, never after the ask's deadline;
    timeouts fire exactly at the deadline and an abandoned request never *starts* after
    its asker gave up.

    Each schedule also seeds trio's same-instant tie order (``_seeded_trio_scheduler``),
    so the run is reproducible whatever ran before it. The deadline is compared as trio
    computes it, ``t0 + timeout_s`` (``move_on_after``): a reply that lands at the very
    instant of the deadline (handling ends then, and the actor is stepped before the
    asker) is in time, and ``t - t0 <= timeout_s`` would wrongly fail it by one ulp of
    float rounding.
    """
    outcomes = set()
    at_deadline = 0
    for seed in range(40):
        with trio.fail_after(600), _seeded_trio_scheduler(seed):
            actor, asks = await _random_schedule(seed)
        for p in range(4):
            seqs = [s for q, s in actor.order if q == p]
            assert seqs == sorted(seqs), seed
        for p, seq, t0, timeout_s, outcome, t in asks:
            outcomes.add(outcome)
            handled = actor.handled.get((p, seq))
            deadline = t0 + timeout_s
            if outcome == "reply":
                assert handled is not None and t == handled[1], seed
                assert t <= deadline, seed
                at_deadline += t == deadline
            else:
                assert t == deadline, seed
                assert handled is None or handled[0] <= t, seed
    assert outcomes == {"reply", "timeout"}
    assert at_deadline > 0  # the tie at the deadline instant is exercised


async def test_stop_from_a_nursery_task_wakes_an_idle_actor_and_post_is_safe(
    autojump_clock: trio.testing.MockClock,
) -> None:
    stopped_at: list[float] = []

    class Background(Actor[object]):
        async def on_start(self) -> None:
            self.nursery.start_soon(self._work)

        async def _work(self) -> None:
            await trio.sleep(2.0)
            await self.post("result")  # handled like any message
            await trio.sleep(1.0)
            self.stop()  # the loop is parked on an empty mailbox
            await self.post("too late")  # ignored, never raises

        async def handle(self, message: object) -> object:
            stopped_at.append(trio.current_time())
            return None

        async def on_stop(self) -> None:
            stopped_at.append(-trio.current_time())

    with trio.fail_after(60):
        t0 = trio.current_time()
        await run_actor(Background(), "bg")
    assert [abs(t) - t0 for t in stopped_at] == [2.0, 3.0]
    assert stopped_at[1] < 0


async def test_latest_value_listeners_run_in_order_and_can_be_removed() -> None:
    from actors.runtime import LatestValue

    cell: LatestValue[int] = LatestValue()
    seen: list[tuple[str, int | None]] = []

    def broken() -> None:
        raise RuntimeError("a consumer bug")

    remove_a = cell.add_listener(lambda: seen.append(("a", cell.get())))
    cell.add_listener(broken)  # logged and swallowed: the producer never breaks
    cell.add_listener(lambda: seen.append(("b", cell.get())))
    cell.set(1)
    remove_a()
    remove_a()  # idempotent
    cell.set(2)
    assert seen == [("a", 1), ("b", 1), ("b", 2)]
    assert cell.version == 2


async def test_parked_is_true_only_while_the_loop_waits_on_an_empty_mailbox(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """``Actor.parked()`` (the quiet-mark fast path relies on it): False in ``on_start``,
    True once the loop waits, False as soon as a message is handed over (before the actor
    runs) and while it is handled; the fast read agrees with trio's own statistics."""
    seen: list[bool] = []

    class Probe(Actor[str]):
        async def on_start(self) -> None:
            seen.append(self.parked())

        async def handle(self, message: str) -> object:
            seen.append(self.parked())
            await trio.sleep(1)
            return None

    actor = Probe()
    async with trio.open_nursery() as nursery:
        address: Address[str] = await nursery.start(run_actor, actor, "probe")
        await trio.sleep(0.1)
        control = actor._control
        assert control is not None
        mailbox = control.mailbox
        assert mailbox._recv_state is not None  # the pinned trio keeps the fast read
        stats = mailbox.recv.statistics
        assert actor.parked() and stats().tasks_waiting_receive == 1
        address.send_nowait("a")
        assert not actor.parked() and stats().tasks_waiting_receive == 0  # handed over
        address.send_nowait("b")
        await trio.sleep(0.5)  # handling "a", "b" queued
        assert not actor.parked()
        await trio.sleep(2)  # both handled
        assert actor.parked()
        nursery.cancel_scope.cancel()
    assert seen == [False, False, False]
