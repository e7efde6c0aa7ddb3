"""Supervision, dynamic supervisor, graceful stop — under MockClock with exact virtual times."""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
import trio
import trio.testing

from actors.runtime import (
    Actor,
    Address,
    ChildSpec,
    DynamicSupervisor,
    GracefulStop,
    Restart,
    RestartPolicy,
    StopGroup,
    SupervisionEvent,
    SupervisionEventKind,
    Supervisor,
    journal_sink,
    open_dynamic_supervisor,
    run_dynamic_supervisor,
    supervise,
)
from tradebot.clock import TrioClock
from tradebot.errors import ActorStopped, SupervisorEscalation
from tradebot.events import EventType, MemoryJournal, Severity

K = SupervisionEventKind
NO_JITTER = RestartPolicy(
    max_restarts=3,
    window_s=60.0,
    backoff_initial_s=0.5,
    backoff_max_s=30.0,
    backoff_factor=2.0,
    jitter=0.0,
)


class Journal:
    """A sink that records events with times relative to t0."""

    def __init__(self) -> None:
        self.events: list[SupervisionEvent] = []
        self.t0 = trio.current_time()

    def __call__(self, event: SupervisionEvent) -> None:
        self.events.append(event)

    def of(self, child: str, *kinds: SupervisionEventKind) -> list[tuple[Any, ...]]:
        return [
            (e.kind, e.at_s - self.t0)
            for e in self.events
            if e.child == child and (not kinds or e.kind in kinds)
        ]


class Crasher(Actor[str]):
    def __init__(self, starts: list[float]) -> None:
        self.starts = starts

    async def on_start(self) -> None:
        self.starts.append(trio.current_time())

    async def handle(self, message: str) -> object:
        if message == "crash":
            raise RuntimeError("boom")
        if message == "exit":
            self.stop()
        return message


class Counter(Actor[object]):
    def __init__(self, log: list[float] | None = None, work_s: float = 0.0) -> None:
        self.log = log if log is not None else []
        self.work_s = work_s
        self.count = 0

    async def handle(self, message: object) -> object:
        if self.work_s:
            await trio.sleep(self.work_s)
        self.count += 1
        self.log.append(trio.current_time())
        return self.count

    async def on_stop(self) -> None:
        self.log.append(-trio.current_time())  # negative marks on_stop


async def test_crashes_restart_on_exact_backoff_schedule_then_fourth_escalates(
    autojump_clock: trio.testing.MockClock,
) -> None:
    journal = Journal()
    t0 = journal.t0
    starts: list[float] = []
    sibling_log: list[float] = []
    sibling_replies: list[object] = []
    children = [
        ChildSpec("crasher", lambda: Crasher(starts)),
        ChildSpec("sibling", lambda: Counter(sibling_log)),
    ]
    with trio.fail_after(120):
        with pytest.RaisesGroup(SupervisorEscalation) as caught:
            async with trio.open_nursery() as nursery:
                sup: Supervisor = await nursery.start(supervise, children, NO_JITTER, journal)
                crasher: Address[str] = sup.address("crasher")
                sibling: Address[object] = sup.address("sibling")

                async def ping_sibling() -> None:
                    await trio.sleep(0.5)  # pings at 0.5, 1.5, ..., 15.5
                    for _ in range(100):
                        sibling_replies.append(await sibling.ask("ping", timeout_s=1))
                        await trio.sleep(1.0)

                nursery.start_soon(ping_sibling)
                for crash_at in (10.0, 11.0, 13.0, 16.0):
                    await trio.sleep_until(t0 + crash_at)
                    assert crasher.alive  # the same address across restarts
                    await crasher.send("crash")
                await trio.sleep(100)  # never reached: escalation cancels us
    assert trio.current_time() - t0 == 16.0
    error = caught.value.exceptions[0]
    assert isinstance(error, SupervisorEscalation)
    assert (error.supervisor, error.child, error.max_restarts) == ("supervisor", "crasher", 3)
    assert isinstance(error.__cause__, RuntimeError)
    # restarts at crash + 0.5, + 1.0, + 2.0
    assert [s - t0 for s in starts] == [0.0, 10.5, 12.0, 15.0]
    restarted = [
        (e.attempt, e.delay_s, e.at_s - t0) for e in journal.events if e.kind is K.RESTARTED
    ]
    assert restarted == [(1, 0.5, 10.5), (2, 1.0, 12.0), (3, 2.0, 15.0)]
    assert journal.of("crasher", K.CRASHED, K.GAVE_UP) == [
        (K.CRASHED, 10.0),
        (K.CRASHED, 11.0),
        (K.CRASHED, 13.0),
        (K.CRASHED, 16.0),
        (K.GAVE_UP, 16.0),
    ]
    crashed = [e for e in journal.events if e.kind is K.CRASHED]
    assert all("RuntimeError: boom" in e.traceback and "in handle" in e.traceback for e in crashed)
    assert crashed[0].event_type is EventType.ACTOR_CRASHED
    assert crashed[0].severity is Severity.ERROR
    (gave_up,) = [e for e in journal.events if e.kind is K.GAVE_UP]
    assert (gave_up.event_type, gave_up.severity) == (EventType.ACTOR_GAVE_UP, Severity.CRITICAL)
    # the sibling was never restarted and answered every ping until the escalation
    assert journal.of("sibling") == [(K.STARTED, 0.0), (K.STOPPED, 16.0)]
    assert sibling_replies == list(range(1, 17))
    assert not crasher.alive and not sibling.alive


def test_backoff_is_capped_and_jitter_deterministic_with_seeded_rng() -> None:
    policy = RestartPolicy(
        backoff_initial_s=1.0, backoff_max_s=10.0, backoff_factor=3.0, jitter=0.0
    )
    assert [policy.backoff_s(n) for n in range(1, 6)] == [1.0, 3.0, 9.0, 10.0, 10.0]
    assert policy.backoff_s(100_000) == 10.0
    jittered = RestartPolicy(backoff_initial_s=1.0, jitter=0.2)
    a = [jittered.backoff_s(1, random.Random(7)) for _ in range(3)]
    b = [jittered.backoff_s(1, random.Random(7)) for _ in range(3)]
    assert a == b
    rng = random.Random(1)
    samples = [jittered.backoff_s(1, rng) for _ in range(1000)]
    assert 0.8 <= min(samples) < 0.85 and 1.15 < max(samples) <= 1.2


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_restarts": -1},
        {"window_s": 0},
        {"backoff_initial_s": -0.1},
        {"backoff_factor": 0.5},
        {"jitter": 1.0},
        {"jitter": float("nan")},
        {"max_restarts": 1.5},
    ],
)
def test_restart_policy_rejects_bad_values(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        RestartPolicy(**kwargs)


async def test_window_expiry_resets_intensity_and_backoff(
    autojump_clock: trio.testing.MockClock,
) -> None:
    journal = Journal()
    t0 = journal.t0
    starts: list[float] = []
    policy = RestartPolicy(max_restarts=1, window_s=10.0, backoff_initial_s=0.5, jitter=0.0)
    with trio.fail_after(120):
        async with trio.open_nursery() as nursery:
            sup: Supervisor = await nursery.start(
                supervise, [ChildSpec("c", lambda: Crasher(starts))], policy, journal
            )
            address = sup.address("c")
            for crash_at in (1.0, 20.0, 40.0):  # always > window_s apart: never escalates
                await trio.sleep_until(t0 + crash_at)
                await address.send("crash")
            await trio.sleep(1)
            await sup.stop(1.0)
    assert [s - t0 for s in starts] == [0.0, 1.5, 20.5, 40.5]
    assert [e.attempt for e in journal.events if e.kind is K.RESTARTED] == [1, 1, 1]


async def test_restart_types_and_mailbox_survives_restart(
    autojump_clock: trio.testing.MockClock,
) -> None:
    journal = Journal()
    starts: dict[str, list[float]] = {"perm": [], "trans": [], "temp": []}
    children = [
        ChildSpec(n, (lambda n=n: Crasher(starts[n])), r)  # type: ignore[misc]
        for n, r in (
            ("perm", Restart.PERMANENT),
            ("trans", Restart.TRANSIENT),
            ("temp", Restart.TEMPORARY),
        )
    ]
    policy = RestartPolicy(max_restarts=10, backoff_initial_s=1.0, jitter=0.0)
    with trio.fail_after(120):
        async with trio.open_nursery() as nursery:
            sup: Supervisor = await nursery.start(supervise, children, policy, journal)
            perm, trans, temp = (sup.address(n) for n in ("perm", "trans", "temp"))
            # permanent: restarted even after a normal exit
            await perm.send("exit")
            # transient: restarted after a crash; a message sent during the backoff waits
            # in the (same) mailbox and the restarted instance answers it
            await trans.send("crash")
            assert await trans.ask("hello", timeout_s=5) == "hello"
            # temporary: never restarted; its address dies and askers fail at once
            await temp.send("crash")
            await trio.sleep(0.1)
            assert not temp.alive
            with pytest.raises(ActorStopped):
                await temp.ask("x", timeout_s=5)
            # transient: a normal exit ends it
            await trans.send("exit")
            await trio.sleep(2)
            assert not trans.alive and perm.alive
            assert sup.names() == ["perm"]
            await sup.stop(1.0)
    t0 = journal.t0
    assert [s - t0 for s in starts["perm"]] == [0.0, 1.0]
    assert [s - t0 for s in starts["trans"]] == [0.0, 1.0]
    assert [s - t0 for s in starts["temp"]] == [0.0]
    reasons = {e.child: e.reason for e in journal.events if e.kind is K.STOPPED}
    assert reasons == {
        "temp": "crashed; temporary children are not restarted",
        "trans": "stopped itself",
        "perm": "stop requested; drained",
    }


async def test_100_concurrent_start_child_for_one_key_create_exactly_one_child(
    autojump_clock: trio.testing.MockClock,
) -> None:
    journal = Journal()
    created: list[Counter] = []

    class Slow(Counter):
        async def on_start(self) -> None:
            await trio.sleep(0.5)  # e.g. recovering state: callers wait meanwhile

    def factory() -> Counter:
        created.append(Slow())
        return created[-1]

    addresses: list[Address[Any]] = []
    with trio.fail_after(60):
        async with open_dynamic_supervisor(NO_JITTER, journal, name="positions") as sup:
            async with trio.open_nursery() as nursery:
                for _ in range(100):
                    nursery.start_soon(_start_into, sup, ("BTCUSDT", "long"), factory, addresses)
            assert trio.current_time() - journal.t0 == 0.5
            assert len(created) == 1 and len(addresses) == 100
            assert all(a is addresses[0] for a in addresses)
            assert sup.keys() == [("BTCUSDT", "long")] and len(sup) == 1
            assert sup.get(("BTCUSDT", "long")) is addresses[0]
            assert sup.get(("ETHUSDT", "long")) is None
            assert await addresses[0].ask("q", timeout_s=1) == 1
            # another key is another child; a stopped key can be started again
            other = await sup.start_child(("BTCUSDT", "short"), factory, name="btc-short")
            assert other is not addresses[0] and other.name == "btc-short"
            await sup.stop_child(("BTCUSDT", "long"), deadline_s=1.0)
            assert sup.get(("BTCUSDT", "long")) is None and not addresses[0].alive
            again = await sup.start_child(("BTCUSDT", "long"), factory)
            assert again is not addresses[0] and again.alive and len(created) == 3
            await sup.stop(deadline_s=1.0)
            with pytest.raises(ActorStopped):
                await sup.start_child(("X", "long"), factory)
    assert [e.kind for e in journal.events].count(K.STARTED) == 3


async def _start_into(
    sup: DynamicSupervisor, key: Any, factory: Callable[[], Counter], out: list[Address[Any]]
) -> None:
    out.append(await sup.start_child(key, factory))


async def test_dynamic_supervisor_escalates_and_cancels_all_children(
    autojump_clock: trio.testing.MockClock,
) -> None:
    journal = Journal()
    starts: list[float] = []
    policy = RestartPolicy(max_restarts=0, jitter=0.0)
    with trio.fail_after(60):
        with pytest.raises(SupervisorEscalation) as caught:
            async with open_dynamic_supervisor(policy, journal, name="positions") as sup:
                a = await sup.start_child("a", lambda: Crasher(starts))
                b = await sup.start_child("b", Counter)
                await trio.sleep(3)
                await a.send("crash")
                await trio.sleep_forever()
    assert isinstance(caught.value.__cause__, RuntimeError)
    assert trio.current_time() - journal.t0 == 3.0
    assert not a.alive and not b.alive
    assert journal.of("b") == [(K.STARTED, 0.0), (K.STOPPED, 3.0)]
    assert journal.of("a", K.GAVE_UP) == [(K.GAVE_UP, 3.0)]


async def test_graceful_stop_drains_within_deadline(
    autojump_clock: trio.testing.MockClock,
) -> None:
    journal = Journal()
    log: list[float] = []
    with trio.fail_after(60):
        async with open_dynamic_supervisor(NO_JITTER, journal, name="s") as sup:
            address = await sup.start_child("k", lambda: Counter(log, work_s=1.0))
            for i in range(3):
                await address.send(i)
            t0 = trio.current_time()
            await sup.stop_child("k", deadline_s=10.0)
            assert trio.current_time() - t0 == 3.0
            with pytest.raises(ActorStopped):
                await address.send("late")
    assert [x - t0 for x in log] == [1.0, 2.0, 3.0, -3.0]  # all handled, then on_stop
    (stopped,) = [e for e in journal.events if e.kind is K.STOPPED]
    assert (stopped.leftover_messages, stopped.in_flight_cancelled) == (0, False)


async def test_graceful_stop_cancels_after_deadline_and_reports_leftovers(
    autojump_clock: trio.testing.MockClock,
) -> None:
    journal = Journal()
    log: list[float] = []
    blocked: list[tuple[str, float]] = []

    class Small(Counter):
        mailbox_size = 10

    with trio.fail_after(60):
        async with open_dynamic_supervisor(NO_JITTER, journal, name="s") as sup:
            address = await sup.start_child("k", lambda: Small(log, work_s=1.0))
            for i in range(10):
                await address.send(i)
            await trio.sleep(0.5)  # message 0 in flight until t0 + 0.5, 1..9 queued
            address.send_nowait(10)  # the mailbox is full again
            t0 = trio.current_time()

            async def blocked_sender() -> None:
                try:
                    await address.send("blocked")  # gets in when message 0 is done
                except ActorStopped:
                    blocked.append(("sender:ActorStopped", trio.current_time() - t0))

            async def asker() -> None:
                try:
                    await address.ask("blocked-ask", timeout_s=100)
                except ActorStopped:
                    blocked.append(("ask:ActorStopped", trio.current_time() - t0))

            async with trio.open_nursery() as nursery:
                nursery.start_soon(blocked_sender)
                await trio.sleep(0.25)
                nursery.start_soon(asker)
                await trio.sleep(0.5)
                await sup.stop_child("k", deadline_s=4.0)  # at t0 + 0.75
                assert trio.current_time() - t0 == 4.75
    # handled within the deadline: 0..4; 5 was in flight at t0 + 4.75 and was cancelled;
    # 6..10 and "blocked" were left over; the still blocked ask failed at the stop request
    assert [x - t0 for x in log] == [0.5, 1.5, 2.5, 3.5, 4.5]
    (cancelled,) = [e for e in journal.events if e.kind is K.CANCELLED_ON_STOP]
    assert cancelled.at_s - t0 == 4.75
    assert cancelled.in_flight_cancelled is True
    assert cancelled.leftover_messages == 6
    assert cancelled.event_type is EventType.ACTOR_STOPPED
    assert blocked == [("ask:ActorStopped", 0.75)]


async def test_stop_request_wakes_blocked_senders_at_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    journal = Journal()
    results: list[tuple[str, float]] = []

    class Tiny(Counter):
        mailbox_size = 1

    with trio.fail_after(60):
        async with open_dynamic_supervisor(NO_JITTER, journal, name="s") as sup:
            address = await sup.start_child("k", lambda: Tiny(work_s=5.0))
            await address.send(0)
            await trio.sleep(0.1)
            await address.send(1)  # fills the mailbox
            t0 = trio.current_time()

            async def sender() -> None:
                try:
                    await address.send(2)
                except ActorStopped:
                    results.append(("stopped", trio.current_time() - t0))

            async with trio.open_nursery() as nursery:
                nursery.start_soon(sender)
                await trio.sleep(1)
                nursery.start_soon(sup.stop_child, "k", 100.0)
    assert results == [("stopped", 1.0)]


async def test_graceful_stop_runs_groups_in_order(autojump_clock: trio.testing.MockClock) -> None:
    journal = Journal()
    logs: dict[str, list[float]] = {"signal_feed": [], "wave": [], "journal": []}
    position_logs: list[float] = []
    children = [
        ChildSpec(n, (lambda n=n: Counter(logs[n], work_s=1.0)))  # type: ignore[misc]
        for n in ("journal", "signal_feed", "wave")
    ]
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            sup: Supervisor = await nursery.start(supervise, children, NO_JITTER, journal)
            positions: DynamicSupervisor = await nursery.start(
                run_dynamic_supervisor, NO_JITTER, journal, "positions"
            )
            for i in range(3):
                await positions.start_child(i, lambda: Counter(position_logs, work_s=1.0))
                await positions.get(i).send("tick")  # type: ignore[union-attr]
                await positions.get(i).send("tick")  # type: ignore[union-attr]
            for name in logs:
                await sup.address(name).send("x")
            t0 = trio.current_time()
            shutdown = GracefulStop(
                [
                    StopGroup("entries", [sup.child("signal_feed"), sup.child("wave")], 5.0),
                    StopGroup("positions", [positions], 30.0),
                    StopGroup("journal", [sup.child("journal")], 10.0),
                ]
            )
            await shutdown.run()
            assert shutdown.completed == ["entries", "positions", "journal"]
            assert sup.names() == []
    rel = {n: [x - t0 for x in v] for n, v in logs.items()}
    # entries drain their message (1 s) and stop at 1; positions, stopped concurrently
    # only then, drain their 2 messages by 2; the journal handled its message at 1 but is
    # stopped only after the positions, at 2.
    assert rel["signal_feed"] == [1.0, -1.0] and rel["wave"] == [1.0, -1.0]
    assert sorted(x - t0 for x in position_logs) == [-2.0] * 3 + [1.0] * 3 + [2.0] * 3
    assert rel["journal"] == [1.0, -2.0]
    stopped = [e.child for e in journal.events if e.kind is K.STOPPED]
    assert sorted(stopped[:2]) == ["signal_feed", "wave"]
    assert sorted(stopped[2:5]) == ["0", "1", "2"]
    assert stopped[5:] == ["journal"]
    with pytest.raises(ValueError):
        StopGroup("x", [], -1.0)


async def test_sink_failure_is_logged_not_fatal(
    autojump_clock: trio.testing.MockClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    def bad_sink(event: SupervisionEvent) -> None:
        raise OSError("journal down")

    caplog.set_level(logging.ERROR, logger="actors.runtime")
    with trio.fail_after(60):
        async with open_dynamic_supervisor(NO_JITTER, bad_sink, name="s") as sup:
            address = await sup.start_child("k", Counter)
            assert await address.ask("q", timeout_s=1) == 1
            await sup.stop(1.0)
    assert "supervision sink failed" in caplog.text


async def test_restart_factory_failure_counts_as_crash(
    autojump_clock: trio.testing.MockClock,
) -> None:
    journal = Journal()
    calls: list[float] = []

    def factory() -> Crasher:
        calls.append(trio.current_time() - journal.t0)
        if len(calls) > 1:
            raise OSError("cannot build")
        return Crasher([])

    policy = RestartPolicy(max_restarts=2, backoff_initial_s=1.0, jitter=0.0)
    with trio.fail_after(60), pytest.raises(SupervisorEscalation) as caught:
        async with open_dynamic_supervisor(policy, journal, name="s") as sup:
            address = await sup.start_child("k", factory)
            await address.send("crash")
            await trio.sleep_forever()
    assert calls == [0.0, 1.0, 3.0]
    assert isinstance(caught.value.__cause__, OSError)
    with pytest.RaisesGroup(ZeroDivisionError):  # an initial factory failure: to the caller
        async with open_dynamic_supervisor(policy, journal, name="s2") as sup2:
            await sup2.start_child("k", lambda: 1 / 0)  # type: ignore[arg-type,return-value]


async def test_start_child_waits_for_a_draining_child_never_two_per_key(
    autojump_clock: trio.testing.MockClock,
) -> None:
    journal = Journal()

    class TimerOnEachMessage(Counter):
        async def handle(self, message: object) -> object:
            self.timers.once("later", 0.5, "timer")  # ignored while draining: no crash
            return await super().handle(message)

    with trio.fail_after(60):
        async with open_dynamic_supervisor(NO_JITTER, journal, name="s") as sup:
            old = await sup.start_child("k", lambda: TimerOnEachMessage(work_s=1.0))
            for i in range(3):
                await old.send(i)
            t0 = trio.current_time()
            async with trio.open_nursery() as nursery:
                nursery.start_soon(sup.stop_child, "k", 10.0)
                await trio.sleep(0.1)
                assert sup.get("k") is None  # draining: not alive for senders
                new = await sup.start_child("k", Counter)
                assert trio.current_time() - t0 == 3.0
            assert new is not old and new.alive and not old.alive
            await sup.stop(1.0)
    kinds = [(e.kind, e.at_s - t0) for e in journal.events if e.child == "k"]
    assert kinds == [(K.STARTED, 0.0), (K.STOPPED, 3.0), (K.STARTED, 3.0), (K.STOPPED, 3.0)]
    assert journal.events[1].leftover_messages == 0


async def test_stop_in_on_start_ends_a_transient_child_with_nothing_left_over(
    autojump_clock: trio.testing.MockClock,
) -> None:
    journal = Journal()

    class Done(Counter):
        async def on_start(self) -> None:
            self.stop()  # e.g. recovered state says the position is already closed

    with trio.fail_after(60):
        async with open_dynamic_supervisor(NO_JITTER, journal, name="s") as sup:
            address = await sup.start_child("k", Done)
            await trio.sleep(1)
            assert not address.alive and sup.keys() == []
    stopped = journal.events[-1]
    assert (stopped.kind, stopped.reason, stopped.leftover_messages) == (
        K.STOPPED,
        "stopped itself",
        0,
    )


def _model(policy: RestartPolicy, crashes: list[float]) -> tuple[list[float], int | None]:
    """Reference model: restart times after each crash, and the index of the escalating
    crash (None if none escalates)."""
    window: list[float] = []
    restarts: list[float] = []
    for i, c in enumerate(crashes):
        window = [t for t in window if t > c - policy.window_s]
        if len(window) >= policy.max_restarts:
            return restarts, i
        window.append(c)
        restarts.append(c + policy.backoff_s(len(window)))
    return restarts, None


class SignallingCrasher(Crasher):
    def __init__(self, starts: list[float], started: Callable[[], None]) -> None:
        super().__init__(starts)
        self._started = started

    async def on_start(self) -> None:
        await super().on_start()
        self._started()


async def _crash_schedule(
    policy: RestartPolicy, rng: random.Random
) -> tuple[list[float], list[float], list[float]]:
    starts: list[float] = []
    crashes: list[float] = []
    escalated_at: list[float] = []
    restarted = trio.Event()

    def started() -> None:
        restarted.set()

    try:
        async with trio.open_nursery() as nursery:
            spec = ChildSpec("c", lambda: SignallingCrasher(starts, started))
            sup: Supervisor = await nursery.start(supervise, [spec], policy, lambda e: None)
            address = sup.address("c")
            for _ in range(12):
                await restarted.wait()
                restarted = trio.Event()
                await trio.sleep(rng.choice([0.1, 1.0, 4.0, 20.0, 70.0]))
                crashes.append(trio.current_time())
                await address.send("crash")
            await trio.sleep(100)
            await sup.stop(1.0)
    except* SupervisorEscalation:
        escalated_at.append(trio.current_time())
    return starts, crashes, escalated_at


async def test_randomized_crash_schedules_match_the_reference_model(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """30 seeded random policies and crash schedules: every restart time and the
    escalating crash agree with a straightforward reference model of the policy."""
    for seed in range(30):
        rng = random.Random(seed)
        policy = RestartPolicy(
            max_restarts=rng.choice([0, 1, 2, 3, 5]),
            window_s=rng.choice([5.0, 30.0, 60.0]),
            backoff_initial_s=rng.choice([0.0, 0.5, 1.0]),
            backoff_max_s=rng.choice([2.0, 30.0]),
            backoff_factor=rng.choice([1.0, 2.0, 3.0]),
            jitter=0.0,
        )
        with trio.fail_after(10_000):
            starts, crashes, escalated_at = await _crash_schedule(policy, rng)
        restarts, escalating = _model(policy, crashes)
        assert starts[1:] == pytest.approx(restarts, abs=1e-9), seed
        if escalating is None:
            assert escalated_at == [], seed
        else:
            assert escalated_at == [crashes[escalating]], seed
            assert len(crashes) == escalating + 1, seed


async def test_journal_sink_maps_supervision_events_to_actor_events(
    autojump_clock: trio.testing.MockClock,
) -> None:
    journal = MemoryJournal()
    start = datetime(2025, 5, 21, 11, 0, tzinfo=UTC)
    clock = TrioClock(start)
    starts: list[float] = []
    policy = RestartPolicy(max_restarts=1, backoff_initial_s=2.0, jitter=0.0)
    with trio.fail_after(60), pytest.raises(SupervisorEscalation):
        async with open_dynamic_supervisor(policy, journal_sink(journal, clock), name="p") as sup:
            address = await sup.start_child("k", lambda: Crasher(starts), name="position-1")
            await trio.sleep(1)
            await address.send("crash")
            await trio.sleep(10)
            await address.send("crash")
            await trio.sleep_forever()
    got = [
        (e.type, e.severity, (e.ts - start).total_seconds(), e.data["child"])
        for e in journal.events
    ]
    assert got == [
        (EventType.ACTOR_STARTED, Severity.INFO, 0.0, "position-1"),
        (EventType.ACTOR_CRASHED, Severity.ERROR, 1.0, "position-1"),
        (EventType.ACTOR_RESTARTED, Severity.INFO, 3.0, "position-1"),
        (EventType.ACTOR_STARTED, Severity.INFO, 3.0, "position-1"),
        (EventType.ACTOR_CRASHED, Severity.ERROR, 11.0, "position-1"),
        (EventType.ACTOR_GAVE_UP, Severity.CRITICAL, 11.0, "position-1"),
    ]
    assert "RuntimeError: boom" in journal.events[1].data["traceback"]
    assert journal.events[2].data["delay_s"] == 2.0 and journal.events[2].data["attempt"] == 1
