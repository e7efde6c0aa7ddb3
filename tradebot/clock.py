"""Clock port implementations (docs/ARCHITECTURE.md §8)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import trio

__all__ = ["WallClock", "TrioClock"]


class WallClock:
    """Real UTC wall clock (live trading)."""

    def now(self) -> datetime:
        return datetime.now(UTC)


class TrioClock:
    """``start`` plus the trio clock's elapsed seconds since construction.

    Under ``trio.testing.MockClock`` (autojump) this is virtual time, which makes replay
    deterministic and independent of machine speed. Must be constructed and used inside
    ``trio.run``.
    """

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("start must be an aware UTC datetime")
        self._start = start.astimezone(UTC)
        self._t0 = trio.current_time()
        self._last_t = self._t0
        self._last_dt = self._start

    def now(self) -> datetime:
        t = trio.current_time()
        if t != self._last_t:  # many reads per virtual instant: compute each instant once
            self._last_dt = self._start + timedelta(seconds=t - self._t0)
            self._last_t = t
        return self._last_dt
