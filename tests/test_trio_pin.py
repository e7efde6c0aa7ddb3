"""Replay determinism rests on a private trio switch: the pin holds and the switch still works.

``tradebot.cli._paper_run.deterministic_trio_scheduling`` sets
``trio._core._run._ALLOW_DETERMINISTIC_SCHEDULING`` and replaces ``trio._core._run._r`` so
that tasks woken at the same virtual instant run in one fixed order (trio sorts each batch
by task creation counter, then shuffles it with ``_r``). Both names are private: a trio
release may drop or rename them, and ``deterministic_trio_scheduling`` then silently
degrades to a no-op (runs stay correct but ``trades_sha256`` is no longer reproducible).
These tests turn that silent degradation into a loud failure, and check that the installed
trio is inside the range pinned in ``pyproject.toml``.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import tomllib
from pathlib import Path

import trio
import trio.testing
from packaging.requirements import Requirement
from packaging.version import Version

from tradebot.cli._paper_run import deterministic_trio_scheduling

ROOT = Path(__file__).resolve().parent.parent

HOW_TO_FIX = (
    "replay determinism (identical trades_sha256 run to run) depends on trio's private "
    "scheduling switch trio._core._run._ALLOW_DETERMINISTIC_SCHEDULING and its batch "
    "shuffler trio._core._run._r (see deterministic_trio_scheduling in "
    "tradebot/cli/_paper_run.py). trio {version} changed them: read trio/_core/_run.py "
    "(the run loop's `batch.sort(key=lambda t: t._counter); _r.shuffle(batch)`), adapt "
    "deterministic_trio_scheduling, re-check both venue profiles' trades_sha256, and only "
    "then widen the trio pin in pyproject.toml."
)


def _pinned_trio() -> Requirement:
    doc = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    reqs = [Requirement(r) for r in doc["project"]["dependencies"]]
    (trio_req,) = [r for r in reqs if r.name == "trio"]
    return trio_req


def test_trio_pin_has_an_upper_bound_and_holds_the_installed_version() -> None:
    req = _pinned_trio()
    uppers = [s for s in req.specifier if s.operator in ("<", "<=", "~=", "==")]
    assert uppers, f"pyproject.toml pins {req}: the private switch needs an upper bound"
    installed = Version(trio.__version__)
    assert req.specifier.contains(installed, prereleases=True), (
        f"trio {installed} is installed but pyproject.toml pins {req}: "
        + HOW_TO_FIX.format(version=installed)
    )


def test_private_scheduling_switch_exists() -> None:
    import trio._core._run as run_mod

    missing = [n for n in ("_ALLOW_DETERMINISTIC_SCHEDULING", "_r") if not hasattr(run_mod, n)]
    assert not missing, f"missing {missing}: " + HOW_TO_FIX.format(version=trio.__version__)
    assert isinstance(run_mod._r, random.Random), HOW_TO_FIX.format(version=trio.__version__)
    before = (run_mod._ALLOW_DETERMINISTIC_SCHEDULING, run_mod._r)
    with deterministic_trio_scheduling() as switched:
        assert switched is True, HOW_TO_FIX.format(version=trio.__version__)
        assert run_mod._ALLOW_DETERMINISTIC_SCHEDULING is True
    assert (run_mod._ALLOW_DETERMINISTIC_SCHEDULING, run_mod._r) == before  # restored


# Run in a fresh interpreter: importing hypothesis (a pytest plugin here) already turns
# trio's switch on for the whole test process, which would hide what the switch does.
_PROBE = """
import json, trio, trio.testing
from tradebot.cli._paper_run import deterministic_trio_scheduling

async def main(order):
    async def waiter(i):
        await trio.sleep_until(10.0)  # all woken in the same scheduler batch
        order.append(i)
    async with trio.open_nursery() as nursery:
        for i in range(8):
            nursery.start_soon(waiter, i)

def one_run():
    order = []
    trio.run(main, order, clock=trio.testing.MockClock(autojump_threshold=0))
    return order

plain = [one_run() for _ in range(40)]
with deterministic_trio_scheduling() as switched:
    pinned = [one_run() for _ in range(40)]
print(json.dumps({"switched": switched, "plain": plain, "pinned": pinned}))
"""


def test_switch_makes_same_instant_wakeups_run_in_one_fixed_order() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE], capture_output=True, text=True, timeout=120, cwd=ROOT
    )
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)
    msg = HOW_TO_FIX.format(version=trio.__version__)
    assert got["switched"] is True, msg
    pinned = {tuple(o) for o in got["pinned"]}
    assert len(pinned) == 1, f"switch on, yet {len(pinned)} different orders: {msg}"
    # trio sorts the batch by creation counter and pops from its end
    assert pinned == {tuple(range(7, -1, -1))}, f"switch on, order {pinned}: {msg}"
    # Without the switch trio randomizes each batch (reverses it half the time): over 40
    # runs a single order would have probability 2**-39. If trio ever makes scheduling
    # deterministic by itself this fails too, and the switch may no longer be needed.
    plain = {tuple(o) for o in got["plain"]}
    assert len(plain) > 1, f"switch off, still one order {plain}: {msg}"


async def test_the_fast_scheduling_reads_match_trios_public_statistics() -> None:
    # tradebot.scheduling reads trio's run queue and deadline heap directly (private) and
    # falls back to current_statistics() when they move: check the fast reads are in use
    # and agree with the public figures, so a trio upgrade that changes them is noticed
    import trio._core._run as run_mod

    from tradebot.scheduling import next_deadline, tasks_runnable

    assert hasattr(run_mod.GLOBAL_RUN_CONTEXT.runner, "runq")
    assert hasattr(run_mod.GLOBAL_RUN_CONTEXT.runner, "deadlines")
    assert tasks_runnable.__name__ == "fast" and next_deadline.__name__ == "fast"
    async with trio.open_nursery() as nursery:
        for _ in range(3):
            nursery.start_soon(trio.sleep, 5)
        stats = trio.lowlevel.current_statistics()
        assert tasks_runnable() == stats.tasks_runnable == 3
        await trio.testing.wait_all_tasks_blocked()
        stats = trio.lowlevel.current_statistics()
        assert tasks_runnable() == 0
        expected = trio.current_time() + stats.seconds_to_next_deadline
        assert abs(next_deadline() - expected) < 0.01
        nursery.cancel_scope.cancel()


async def test_other_deadline_by_reads_the_heap_as_the_public_probe_answers(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # the timer service's "does another task come first?" reads trio's deadline heap
    # (private); it must answer what moving its own deadline away and asking would
    from tradebot.scheduling import _probe_other_deadline, _scan_other_deadline

    t0 = trio.current_time()
    with trio.CancelScope(deadline=t0 + 10) as mine:
        both = (_scan_other_deadline, _probe_other_deadline)
        assert [f(mine, t0 + 10) for f in both] == [False, False]  # only mine
        async with trio.open_nursery() as nursery:
            nursery.start_soon(trio.sleep_until, t0 + 12)
            nursery.start_soon(trio.sleep_until, t0 + 10)  # a tie with mine
            await trio.testing.wait_all_tasks_blocked()
            assert [f(mine, t0 + 9.5) for f in both] == [False, False]
            assert [f(mine, t0 + 10) for f in both] == [True, True]
            mine.deadline = t0 + 5  # moved: its old heap entry is stale
            mine.deadline = t0 + 7
            assert [f(mine, t0 + 9) for f in both] == [False, False]
            assert [f(mine, t0 + 12) for f in both] == [True, True]
            nursery.cancel_scope.cancel()
        assert [f(mine, t0 + 12) for f in both] == [False, False]  # theirs are gone


def test_the_replay_clock_jumps_through_its_own_cheaper_hook() -> None:
    # trio's run loop calls the clock's private _autojump when idle; replay_clock replaces
    # it on the instance (MockClock is final). Check trio still calls it and that virtual
    # time lands on the deadlines exactly, as MockClock's own jump would.
    from tradebot.scheduling import replay_clock

    clock = replay_clock()
    hook = clock._autojump
    calls = []

    def counting() -> None:
        calls.append(clock.current_time())
        hook()

    clock._autojump = counting  # type: ignore[method-assign]

    async def main() -> list[float]:
        seen = []
        for d in (0.1, 2.5, 30.0):
            await trio.sleep(d)
            seen.append(trio.current_time())
        return seen

    assert trio.run(main, clock=clock) == [0.1, 2.6, 32.6]
    assert len(calls) == 3
    reference = trio.testing.MockClock(autojump_threshold=0)
    reference.jump(32.6)
    assert clock.current_time() == reference.current_time() == 32.6
