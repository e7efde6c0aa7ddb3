"""Timers an actor schedules to itself; they deliver messages into its own mailbox."""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable

import trio

from tradebot.errors import ActorStopped, MailboxFull

from ._mailbox import Address

__all__ = ["Timers"]


class _TimerFire:
    """Envelope of a timer's message inside the mailbox (checked when dequeued)."""

    __slots__ = ("generation", "key", "message", "timers")

    def __init__(self, timers: Timers, key: Hashable, generation: int, message: object) -> None:
        self.timers = timers
        self.key = key
        self.generation = generation
        self.message = message


class _Entry:
    __slots__ = ("generation", "periodic", "queued", "scope")

    def __init__(self, generation: int, periodic: bool) -> None:
        self.generation = generation
        self.periodic = periodic
        self.queued = False
        self.scope = trio.CancelScope()


def _check_seconds(name: str, value: float, *, allow_zero: bool) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number of seconds, got {value!r}")
    if value < 0 or (value == 0 and not allow_zero):
        raise ValueError(f"{name} must be {'>= 0' if allow_zero else '> 0'} s, got {value!r}")


class Timers:
    """Keyed timers of one actor instance (``self.timers`` inside an actor).

    Each timer puts its ``message`` into the actor's own mailbox, so timer logic runs in
    the message loop like any other message (and under ``MockClock`` in virtual time).

    Guarantees:
        * Keys: one timer per key; ``once``/``every`` with an existing key replaces it.
        * No stale fires: once ``cancel(key)`` (or a replacement) returns, no message of the
          old timer is handled any more, even one already sitting in the mailbox.
        * Timing: a fire is enqueued at its due time on the trio clock, or later if the
          mailbox is full (backpressure; the timer waits, it never drops a ``once``).
        * ``every`` is fixed-rate (due times ``start + n * interval_s``, no drift) and
          conflating: while one tick of a key waits unhandled in the mailbox, further due
          ticks of that key are skipped, so a slow actor never works through a tick backlog.
        * Lifetime: timers belong to one actor instance; they are cancelled when it stops,
          crashes or receives a stop request (new ones are then ignored). A restarted
          instance starts with no timers.
    """

    __slots__ = ("_address", "_closed", "_entries", "_generation", "_nursery")

    def __init__(self, nursery: trio.Nursery, address: Address[object]) -> None:
        self._nursery = nursery
        self._address = address
        self._entries: dict[Hashable, _Entry] = {}
        self._generation = 0
        self._closed = False

    def _new_entry(self, key: Hashable, periodic: bool) -> _Entry | None:
        if self._closed:  # stopping: the actor is going away, its timers would never fire
            return None
        self.cancel(key)
        self._generation += 1
        entry = _Entry(self._generation, periodic)
        self._entries[key] = entry
        return entry

    def once(self, key: Hashable, delay_s: float, message: object) -> None:
        """Deliver ``message`` once, ``delay_s`` (>= 0) seconds from now.

        Replaces an existing timer with the same ``key``. The key stays in :meth:`active`
        until the message has been handled (or the timer is cancelled).

        Ignored after a stop request (the actor is going away).

        Raises:
            ValueError: ``delay_s`` negative or not finite.
        """
        _check_seconds("delay_s", delay_s, allow_zero=True)
        entry = self._new_entry(key, periodic=False)
        if entry is None:
            return
        self._nursery.start_soon(self._run_once, key, entry, trio.current_time() + delay_s, message)

    def every(
        self,
        key: Hashable,
        interval_s: float,
        message: object,
        *,
        quiet: Callable[[], bool] | None = None,
    ) -> None:
        """Deliver ``message`` every ``interval_s`` (> 0) seconds, first one interval from now.

        Replaces an existing timer with the same ``key``. Ticks are conflated (see class
        docstring): at most one undelivered tick per key is ever in the mailbox.

        ``quiet``: optional, called synchronously at each due time (in the timer's task, not
        the actor's); True means the actor has just applied this tick itself because handling
        it would change nothing else (e.g. a periodic check whose answer is known), so the
        message is not delivered and the actor is not woken. It must not block; it should
        answer True only while :meth:`Actor.parked` holds. An exception from it crashes the
        actor.

        Ignored after a stop request (the actor is going away).

        Raises:
            ValueError: ``interval_s`` not positive or not finite.
        """
        _check_seconds("interval_s", interval_s, allow_zero=False)
        entry = self._new_entry(key, periodic=True)
        if entry is None:
            return
        self._nursery.start_soon(
            self._run_every, key, entry, trio.current_time(), interval_s, message, quiet
        )

    def cancel(self, key: Hashable) -> None:
        """Cancel the timer with ``key`` (no-op if none). Its pending fire is never handled."""
        entry = self._entries.pop(key, None)
        if entry is not None:
            entry.scope.cancel()

    def cancel_all(self) -> None:
        """Cancel every timer of this actor."""
        for key in list(self._entries):
            self.cancel(key)

    def active(self) -> set[Hashable]:
        """Keys of timers that will still deliver (scheduled, or fired but not yet handled)."""
        return set(self._entries)

    def _close(self) -> None:
        self.cancel_all()
        self._closed = True

    def _accept(self, fire: _TimerFire) -> bool:
        """Called by the message loop for a dequeued fire: handle it or drop it as stale."""
        entry = self._entries.get(fire.key)
        if entry is None or entry.generation != fire.generation:
            return False
        entry.queued = False
        if not entry.periodic:
            del self._entries[fire.key]
        return True

    async def _deliver(self, key: Hashable, entry: _Entry, message: object) -> bool:
        if entry.scope.cancel_called:
            return False
        entry.queued = True
        fire = _TimerFire(self, key, entry.generation, message)
        try:
            # room in the mailbox (the usual case): enqueue without a checkpoint, so a fire
            # costs the timer task one wake-up, not two
            self._address.send_nowait(fire)  # type: ignore[arg-type]
        except MailboxFull:
            try:
                await self._address.send(fire)  # type: ignore[arg-type]
            except ActorStopped:
                return False
        except ActorStopped:
            return False
        return True

    async def _run_once(self, key: Hashable, entry: _Entry, due: float, message: object) -> None:
        with entry.scope:
            await trio.sleep_until(due)
            await self._deliver(key, entry, message)

    async def _run_every(
        self,
        key: Hashable,
        entry: _Entry,
        start: float,
        interval_s: float,
        message: object,
        quiet: Callable[[], bool] | None = None,
    ) -> None:
        with entry.scope:
            n = 1
            while True:
                await trio.sleep_until(start + n * interval_s)
                if (
                    not entry.queued
                    and not (quiet is not None and not entry.scope.cancel_called and quiet())
                    and not await self._deliver(key, entry, message)
                ):
                    return
                now = trio.current_time()
                n += 1
                if start + n * interval_s <= now:  # delivery was blocked: skip missed ticks
                    n = math.floor((now - start) / interval_s) + 1
