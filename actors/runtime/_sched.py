"""How many trio tasks are runnable now, cheaply (the quiet checks' "nothing else at this
instant" test, docs/ARCHITECTURE.md §3)."""

from __future__ import annotations

from collections.abc import Callable

import trio

__all__ = ["tasks_runnable"]


def _public() -> int:
    return trio.lowlevel.current_statistics().tasks_runnable


def _make() -> Callable[[], int]:
    """``len`` of the run queue, read directly: ``trio.lowlevel.current_statistics()``
    builds a whole statistics record (with the I/O manager's) to give this one number, a
    measurable share of a replay that asks it ~25,000 times a simulated day. The run queue
    is private to trio, so any change there falls back to the public call."""
    try:
        from trio._core._run import GLOBAL_RUN_CONTEXT
    except ImportError:  # pragma: no cover - a trio without it
        return _public

    def fast() -> int:
        try:
            return len(GLOBAL_RUN_CONTEXT.runner.runq)
        except AttributeError:  # pragma: no cover - outside a run, or trio changed
            return _public()

    return fast


tasks_runnable: Callable[[], int] = _make()
"""Number of tasks in trio's run queue now (``RunStatistics.tasks_runnable``).

Raises:
    RuntimeError: outside a trio run (from the public fallback).
"""
