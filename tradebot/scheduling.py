"""Cheap trio scheduling primitives for the hot paths (issue 15): the run queue's length
(the quiet checks' "nothing else at this instant" test, docs/ARCHITECTURE.md §3) and a
sleep woken by its deadline without a ``Cancelled`` round trip. Used by the actor runtime,
the paper venue and the replay driver."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, TypeVar

import trio
import trio.lowlevel

try:  # trio.testing.MockClock itself: trio.testing would also import pytest when it is
    # installed (~70 ms of every replay's start-up)
    from trio._core._mock_clock import MockClock
except ImportError:  # pragma: no cover - a trio that moved it
    from trio.testing import MockClock

T = TypeVar("T")

__all__ = [
    "MockClock",
    "next_deadline",
    "other_deadline_by",
    "replay_clock",
    "sleep_until",
    "tasks_runnable",
    "wait_deadline",
]


def _public_runnable() -> int:
    return trio.lowlevel.current_statistics().tasks_runnable


def _public_next_deadline() -> float:
    return trio.current_time() + trio.lowlevel.current_statistics().seconds_to_next_deadline


def _runner_read(read: Callable[[Any], T], public: Callable[[], T]) -> Callable[[], T]:
    """``read(runner)`` of this trio run's runner, read directly.

    ``trio.lowlevel.current_statistics()`` builds a whole statistics record (with the I/O
    manager's) to give one number, a measurable share of a replay that asks ~25,000 times
    a simulated day. The runner is private to trio, so a trio without it — or a read that
    fails on it — falls back to ``public``.
    """
    try:
        from trio._core._run import GLOBAL_RUN_CONTEXT
    except ImportError:  # pragma: no cover - a trio without it
        return public

    def fast() -> T:
        try:
            return read(GLOBAL_RUN_CONTEXT.runner)
        except AttributeError:  # pragma: no cover - outside a run, or trio changed
            return public()

    return fast


tasks_runnable: Callable[[], int] = _runner_read(lambda r: len(r.runq), _public_runnable)
"""Number of tasks in trio's run queue now (``RunStatistics.tasks_runnable``).

Raises:
    RuntimeError: outside a trio run (from the public fallback).
"""

next_deadline: Callable[[], float] = _runner_read(
    lambda r: float(r.deadlines.next_deadline()), _public_next_deadline
)
"""The earliest deadline (trio clock time, s) of any cancel scope now; ``inf`` = none.

Raises:
    RuntimeError: outside a trio run (from the public fallback).
"""


def _probe_other_deadline(scope: trio.CancelScope, t: float) -> bool:
    saved = scope.deadline
    scope.deadline = math.inf
    try:
        return next_deadline() <= t
    finally:
        scope.deadline = saved


_RUN_CONTEXT: Any  # trio's run context (private; None: the scan falls back)
try:
    from trio._core._run import GLOBAL_RUN_CONTEXT

    _RUN_CONTEXT = GLOBAL_RUN_CONTEXT
except ImportError:  # pragma: no cover - a trio without it
    _RUN_CONTEXT = None


def _scan_other_deadline(scope: trio.CancelScope, t: float) -> bool:
    heap = _RUN_CONTEXT.runner.deadlines._heap  # (deadline, id, scope), a binary heap
    n = len(heap)
    todo = [0]
    while todo:
        i = todo.pop()
        if i >= n:
            continue
        deadline, _, other = heap[i]
        if deadline > t:
            continue  # nothing below it is earlier
        if other is not scope and deadline == other._registered_deadline:  # live entry
            return True
        todo.append(2 * i + 1)
        todo.append(2 * i + 2)
    return False


def other_deadline_by(scope: trio.CancelScope, t: float) -> bool:
    """True when a cancel scope other than ``scope`` has a deadline at or before ``t``
    (trio clock time, s).

    Read from trio's deadline heap (the entries at or before ``t`` only, stale ones
    skipped); a trio without it falls back to moving ``scope``'s own deadline away, asking
    :func:`next_deadline`, and moving it back (the same answer, two deadline updates).

    Raises:
        RuntimeError: outside a trio run.
    """
    try:
        return _scan_other_deadline(scope, t)
    except (ImportError, AttributeError):  # pragma: no cover - trio changed
        return _probe_other_deadline(scope, t)


async def sleep_until(deadline: float) -> None:
    """Sleep until ``deadline`` on the trio clock, like :func:`trio.sleep_until`, minus its
    cost when the deadline passes.

    trio wakes a sleeper whose deadline passed by cancelling its scope: a ``Cancelled``
    exception is built, raised into the task and caught again, one per wake-up — the bulk
    of a replay's scheduling cost. Here the wake-up at the deadline reschedules the task
    with a plain value instead, at the same point of the same scheduler pass (so the order
    of tasks is unchanged). Any other cancellation (an enclosing scope, Ctrl-C) is
    delivered as usual, as ``Cancelled``/``KeyboardInterrupt``.

    Args:
        deadline: trio clock time (s); in the past = one scheduler round, like trio's.

    Raises:
        trio.Cancelled: an enclosing scope was cancelled first.
    """
    with trio.CancelScope(deadline=deadline) as scope:
        await wait_deadline(scope)


async def wait_deadline(scope: trio.CancelScope) -> None:
    """Wait inside the entered ``scope`` until its deadline passes (it may be moved while
    waiting), woken with a plain value as in :func:`sleep_until`.

    Raises:
        trio.Cancelled: an enclosing scope (or ``scope`` itself, by ``cancel()``) was
            cancelled first.
    """
    task = trio.lowlevel.current_task()

    def abort(_raise_cancel: object) -> trio.lowlevel.Abort:
        if scope.cancel_called and trio.current_time() >= scope.deadline:
            trio.lowlevel.reschedule(task)  # woken by the deadline: no exception
            return trio.lowlevel.Abort.FAILED
        return trio.lowlevel.Abort.SUCCEEDED

    await trio.lowlevel.wait_task_rescheduled(abort)


def replay_clock() -> MockClock:
    """``MockClock(autojump_threshold=0)`` for ``--speed max`` replays, with a cheaper jump.

    When the run loop finds nothing to do, MockClock jumps to the next deadline by asking
    ``trio.lowlevel.current_statistics()`` for the distance, a whole statistics record per
    idle pass; this clock reads the next deadline alone (:func:`next_deadline`) and jumps
    by the very same arithmetic (``next - current_time()``), so every virtual time is the
    same. Its time is read from the clock's virtual base (rate 0: MockClock adds 0.0 times
    the real time elapsed), without a ``perf_counter()`` call per read. (MockClock is
    final: its private ``_autojump`` hook and ``current_time`` are replaced on the
    instance; if a trio release stops calling them, it still works, at the old cost.)
    """
    clock = MockClock(autojump_threshold=0)
    if clock.rate == 0 and hasattr(clock, "_virtual_base"):
        # at rate 0, MockClock's time is its virtual base plus 0.0 times the real time
        # elapsed: read the base, without a perf_counter() call per read (trio reads the
        # time many times per scheduler pass)
        def current_time() -> float:
            return clock._virtual_base  # type: ignore[no-any-return]

        clock.current_time = current_time  # type: ignore[method-assign]

    def autojump() -> None:
        jump = next_deadline() - clock.current_time()
        if 0 < jump < math.inf:
            clock.jump(jump)

    clock._autojump = autojump  # type: ignore[method-assign]
    return clock
