"""The replay driver's way past a sleep that would change nothing (issue 15 item 1)."""

from __future__ import annotations

import trio
import trio.testing

from actors.runtime import Actor, run_actor, runnable_besides_timers
from tradebot.cli._paper_drive import _idle_jump
from tradebot.scheduling import sleep_until


async def test_jumps_only_when_nothing_runs_or_is_due_first(
    autojump_clock: trio.testing.MockClock,
) -> None:
    jump = _idle_jump()
    assert jump is not None
    t0 = trio.current_time()
    assert jump(t0 + 15) and trio.current_time() == t0 + 15  # idle: the clock moves
    async with trio.open_nursery() as nursery:
        fired: list[float] = []

        async def timer() -> None:
            await trio.sleep(5)
            fired.append(trio.current_time())

        nursery.start_soon(timer)
        assert not jump(t0 + 30)  # a task is runnable (the timer, not yet started)
        await trio.testing.wait_all_tasks_blocked()  # now it sleeps until t0 + 20
        assert not jump(t0 + 30)  # a deadline (t0 + 20) comes first: sleep instead
        assert not jump(t0 + 20)  # ... or at the same instant (a tie the scheduler breaks)
        assert jump(t0 + 19.5) and trio.current_time() == t0 + 19.5
        await trio.sleep_until(t0 + 30)
    assert fired == [t0 + 20]


async def test_no_jumping_on_a_real_clock() -> None:
    assert _idle_jump() is None


class _Ticker(Actor[object]):
    """A periodic timer with a quiet hook that applies two ticks of three in place."""

    def __init__(self, interval_s: float, log: list[tuple[float, str, int]]) -> None:
        self.interval_s = interval_s
        self.log = log
        self.tasks: set[str] = set()
        self.calls = 0

    async def on_start(self) -> None:
        self.timers.every("v", self.interval_s, "tick", quiet=self.quiet)
        self.timers.once("o", self.interval_s * 2.5, "once")

    def quiet(self) -> bool:
        self.calls += 1
        self.tasks.add(trio.lowlevel.current_task().name)
        self.log.append((trio.current_time(), "quiet", runnable_besides_timers()))
        return self.calls % 3 != 0

    async def handle(self, message: object) -> object:
        self.log.append((trio.current_time(), str(message), 0))
        if message == "once":
            await trio.sleep(3.0)  # a sleep of its own: a deadline between two steps
            self.log.append((trio.current_time(), "slept", runnable_besides_timers()))
        return None


async def _replay_like(
    use_jump: bool,
) -> tuple[dict[float, list[tuple[float, str, int]]], set[str]]:
    logs: dict[float, list[tuple[float, str, int]]] = {}
    tasks: set[str] = set()
    steps: list[float] = []
    jump = _idle_jump() if use_jump else None
    async with trio.open_nursery() as nursery:
        t0 = trio.current_time()
        actors = []
        for k, interval in enumerate((7.3, 11.1, 30.0, 4.05)):
            logs[interval] = []
            actor = _Ticker(interval, logs[interval])
            actors.append(actor)
            await nursery.start(run_actor, actor, f"ticker-{k}")
            await trio.sleep(1.7)  # different phases
        for n in range(1, 41):
            due = t0 + 15 * n
            if jump is None or not jump(due):
                await sleep_until(due)
            steps.append(round(trio.current_time() - t0, 6))
        nursery.cancel_scope.cancel()
    for actor in actors:
        tasks |= actor.tasks
    assert steps == [15.0 * n for n in range(1, 41)]
    # times relative to the run's start (the two runs start at different clock values)
    return {k: [(round(t - t0, 6), w, r) for t, w, r in v] for k, v in logs.items()}, tasks


async def test_timer_passes_before_a_jump_fire_in_the_driver_as_the_service_would(
    autojump_clock: trio.testing.MockClock,
) -> None:
    slept, service_tasks = await _replay_like(use_jump=False)
    jumped, driver_tasks = await _replay_like(use_jump=True)
    # the same fires at the same times, the same quiet answers and deliveries, the same
    # "runnable besides timers" seen by each hook ...
    assert jumped == slept
    assert sum(1 for v in slept.values() for _, w, _ in v if w == "quiet") > 150
    # ... but most of them ran in the driver's task, without a wake-up of the service
    assert service_tasks == {"actors.runtime.timers"}
    assert "actors.runtime.timers" in driver_tasks and len(driver_tasks) == 2
