"""The replay driver's way past a sleep that would change nothing (issue 15 item 1)."""

from __future__ import annotations

import trio
import trio.testing

from tradebot.cli._paper_drive import _idle_jump


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
