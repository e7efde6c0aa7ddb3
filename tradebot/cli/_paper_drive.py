"""The replay driver of ``tradebot paper``: the run's mutable state (:class:`_RunState`),
the progress line, :func:`_drive` (replay steps → paper venue marks and funding → market
router, on the trio clock, equity sampled) and the end-of-run autojump relief."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import TextIO

import attrs
import trio

from actors.runtime import fire_timers_before
from adapters.paper import PaperEngine, PaperVenue
from adapters.replay import KlineReplay
from tradebot.cli._paper_options import (
    EQUITY_SAMPLE_S,
)
from tradebot.scheduling import MockClock, next_deadline, sleep_until, tasks_runnable

__all__ = ["_Progress", "_RunState", "_drive", "_stop_autojump_spin"]


@attrs.define
class _RunState:
    ticks: int = 0
    equity: list[tuple[datetime, Decimal]] = attrs.Factory(list)
    last_ts: datetime | None = None
    last_ts_ms: int = 0
    wall_s: float = 0.0
    sim_s: int = 0
    examples: dict[str, list[str]] = attrs.Factory(dict)
    spool_dir: Path | None = None
    journal_emitted: int = -1
    journal_spooled: int = -1
    projection_skipped: int = 0
    journal_by_type: dict[str, int] = attrs.Factory(dict)
    journal_server_restarts: int = 0
    journal_drain_s: float = 0.0
    journal_drain_events: int = 0
    kept_spool: tuple[Path, int] | None = None
    interrupted: str = ""
    """The signal that ended the replay early ("" = it ran to the end)."""


class _Progress:
    """One self-overwriting status line on a TTY; a line every ~10 % otherwise."""

    def __init__(self, stream: TextIO, start_ms: int, end_ms: int, enabled: bool) -> None:
        self._s = stream
        self._start = start_ms
        self._span = max(1, end_ms - start_ms)
        self._on = enabled
        self._tty = enabled and stream.isatty()
        self._last_wall = 0.0
        self._last_decile = -1
        self._t0 = time.perf_counter()

    def update(
        self,
        ts: datetime,
        ts_ms: int,
        ticks: int,
        open_pos: int,
        opened: int,
        events: int,
        force: bool = False,
    ) -> None:
        if not self._on:
            return
        now = time.perf_counter()
        frac = min(1.0, max(0.0, (ts_ms - self._start) / self._span))
        decile = int(frac * 10)
        if self._tty:
            if not force and now - self._last_wall < 0.25:
                return
        elif not force and decile == self._last_decile:
            return
        self._last_wall = now
        self._last_decile = decile
        width = 24
        bar = "#" * int(frac * width) + "." * (width - int(frac * width))
        rate = ticks / max(1e-9, now - self._t0)
        line = (
            f"[{bar}] {frac * 100:5.1f}% sim {ts:%Y-%m-%d %H:%M}Z  positions "
            f"{open_pos} open / {opened} opened  events {events:,}  ticks {ticks:,} "
            f"({rate:,.0f}/s)"
        )
        if self._tty:
            self._s.write("\r" + line + "\x1b[K")
        else:
            self._s.write(line + "\n")
        self._s.flush()

    def done(self) -> None:
        if self._tty:
            self._s.write("\n")
            self._s.flush()


async def _drive(
    replay: KlineReplay,
    venue: PaperVenue,
    engine: PaperEngine,
    on_marks: Callable[[Sequence[tuple[str, Decimal]], datetime], None],
    state: _RunState,
    progress: Callable[[datetime, int], None],
) -> None:
    """Feed the replay into the venue and the market router, on the trio clock.

    Each step's marks go to the venue in one call, then to the router in one call
    (``on_marks(marks, ts)``, e.g. :meth:`actors.routers.MarketRouter.set_marks`): the
    engine steps and the cells' listeners run in the same order as mark by mark (a
    listener only posts to its actor's mailbox; the engine never reads the cells).
    """
    t0 = trio.current_time()
    start_ms = replay.start_ms
    next_equity_ms = start_ms
    push = venue.push_marks
    ticks = 0
    jump = _idle_jump()
    for step in replay.steps():
        due = t0 + (step.ts_ms - start_ms) / 1000
        if jump is None or not jump(due):
            await sleep_until(due)
        ts = step.ts
        marks = step.marks
        if marks:
            push(marks, ts)
            on_marks(marks, ts)
            ticks += len(marks)
        for symbol, rate in step.funding:
            if engine.mark_price(symbol) is not None:
                venue.apply_funding(symbol, rate, ts)
        if step.ts_ms >= next_equity_ms:
            state.equity.append((ts, engine.wallet().equity_usdt))
            next_equity_ms = step.ts_ms + EQUITY_SAMPLE_S * 1000
        state.ticks = ticks
        state.last_ts = ts
        state.last_ts_ms = step.ts_ms
        progress(ts, step.ts_ms)
    # run to the end of the window (the last price holds until then), and at least 1 s
    # past the last price so that requests in flight settle
    last_ms = state.last_ts_ms if state.last_ts is not None else start_ms
    await trio.sleep_until(t0 + (max(replay.end_ms, last_ms + 1000) - start_ms) / 1000)
    end_ts = replay.end
    state.equity.append((end_ts, engine.wallet().equity_usdt))


_MAX_JUMPS = 64
"""Steps in a row the driver may take without a scheduler pass (signals, I/O completions
and the journal's writer get their turn at least this often)."""


def _idle_jump() -> Callable[[float], bool] | None:
    """Under an autojumping MockClock (``--speed max``), the driver's way past a sleep
    that would change nothing (issue 15 item 1: no per-point ``sleep_until`` when nothing
    is due in between).

    ``jump(due)`` moves the clock to ``due`` itself and returns True when no task is
    runnable and no deadline comes at or before ``due``: ``sleep_until(due)`` would then
    only have let the scheduler find nothing to run and autojump the clock to this very
    deadline, by the same arithmetic (``MockClock.jump(due - now)``). Timer passes due
    before ``due`` that would each run alone are run on the way
    (:func:`actors.runtime.fire_timers_before`). Otherwise it returns False and the driver
    sleeps as usual. None: not a replay clock (real time, a rate).
    """
    clock = trio.lowlevel.current_clock()
    if not (isinstance(clock, MockClock) and clock.autojump_threshold == 0 and clock.rate == 0):
        return None
    runs = 0

    def jump(due: float) -> bool:
        nonlocal runs
        if runs >= _MAX_JUMPS or tasks_runnable():
            runs = 0
            return False
        if next_deadline() <= due and (
            # the timer passes before it that would run alone run here (their fires,
            # without a scheduler pass each); anything else due first: sleep
            not fire_timers_before(due, clock.jump) or next_deadline() <= due
        ):
            runs = 0
            return False
        now = clock.current_time()
        if due > now:
            clock.jump(due - now)
        runs += 1
        return True

    return jump


def _stop_autojump_spin() -> None:
    """Let the trio loop sleep while the journal drains on its writer thread.

    With ``MockClock(autojump_threshold=0)`` an idle loop never blocks: while the only work
    left is the journal's writer thread, trio polls with a zero timeout in a busy loop
    (holding the GIL against that very thread; ~0.9 s of a 5 s 24 h replay). Every actor
    has stopped by now, so virtual time no longer decides anything: a threshold of 50 ms
    of real idleness keeps autojump working (a trio deadline still fires) without the spin.
    The thread's completion wakes the loop at once, so no latency is added.
    """
    trio_clock = trio.lowlevel.current_clock()
    if isinstance(trio_clock, MockClock) and trio_clock.autojump_threshold == 0:
        trio_clock.autojump_threshold = 0.05
