"""Timers an actor schedules to itself; they deliver messages into its own mailbox."""

from __future__ import annotations

import heapq
import logging
import math
from collections.abc import Callable, Hashable

import trio

from tradebot.errors import ActorStopped, MailboxFull
from tradebot.scheduling import other_deadline_by, tasks_runnable, wait_deadline

from ._mailbox import Address

__all__ = ["Timers", "fire_timers_before", "runnable_besides_timers"]

_log = logging.getLogger(__name__)


class _TimerFire:
    """Envelope of a timer's message inside the mailbox (checked when dequeued)."""

    __slots__ = ("generation", "key", "message", "timers")

    def __init__(self, timers: Timers, key: Hashable, generation: int, message: object) -> None:
        self.timers = timers
        self.key = key
        self.generation = generation
        self.message = message


class _Entry:
    """One scheduled timer: its due time on the trio clock and what it delivers."""

    __slots__ = (
        "cancelled",
        "due",
        "generation",
        "interval_s",
        "key",
        "message",
        "n",
        "order",
        "periodic",
        "queued",
        "quiet",
        "start",
        "timers",
    )

    def __init__(
        self,
        timers: Timers,
        key: Hashable,
        generation: int,
        message: object,
        *,
        due: float,
        periodic: bool = False,
        start: float = 0.0,
        interval_s: float = 0.0,
        quiet: Callable[[], bool] | None = None,
    ) -> None:
        self.timers = timers
        self.key = key
        self.generation = generation
        self.message = message
        self.due = due
        self.periodic = periodic
        self.start = start
        self.interval_s = interval_s
        self.n = 1
        self.quiet = quiet
        self.queued = False
        self.cancelled = False
        self.order = 0


class _TimerService:
    """Every timer of one trio run, in one heap, fired by one system task.

    One task sleeping until the earliest due time replaces a task per timer: a fire costs
    a heap pop and a call, not a task wake-up with its own cancel scope (issue 15; a replay
    fires ~25,000 protection ticks a day). Timers due at the same instant fire in the
    order a task per timer would have run under deterministic scheduling: the newest timer
    first (``order`` descending). A fire that cannot be enqueued at once (full mailbox) is
    handed to a task in the owning actor's nursery, which waits for room.
    """

    __slots__ = ("_heap", "_order", "_scope", "woken")

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, _Entry]] = []
        self._order = 0
        self._scope: trio.CancelScope | None = None
        self.woken = 0
        """Tasks the fires of the pass running now made runnable (0 between passes)."""

    def add(self, entry: _Entry, *, new: bool) -> None:
        if new:
            self._order += 1
            entry.order = self._order
        heapq.heappush(self._heap, (entry.due, -entry.order, entry))
        scope = self._scope
        if scope is not None and entry.due < scope.deadline:
            scope.deadline = entry.due

    async def run(self) -> None:
        heap = self._heap
        while True:
            self._scope = scope = trio.CancelScope(deadline=heap[0][0] if heap else math.inf)
            with scope:
                await wait_deadline(scope)
            self._scope = None
            self._fire_due(trio.current_time())

    def _fire_due(self, now: float) -> None:
        """One pass: fire every timer due at or before ``now``, heap order."""
        heap = self._heap
        try:
            while heap and heap[0][0] <= now:
                entry = heapq.heappop(heap)[2]
                if not entry.cancelled:
                    before = tasks_runnable()
                    try:
                        entry.timers._fire(entry, now)
                    except Exception:
                        # never let one actor's timer end this system task (that would
                        # crash the whole run): drop the timer, say so
                        entry.cancelled = True
                        if entry.timers._entries.get(entry.key) is entry:
                            del entry.timers._entries[entry.key]
                        _log.exception("timer %r dropped: its fire failed", entry.key)
                    self.woken += tasks_runnable() - before
        finally:
            self.woken = 0

    def fire_before(self, limit: float, jump: Callable[[float], None]) -> bool:
        """Fire, from the calling task, the timer passes due strictly before ``limit`` that
        would run alone: what the service's own wake-ups would do, without them.

        For each due time ``t < limit`` in turn: only when nothing is runnable and no
        other cancel scope's deadline comes at or before ``t`` (so the service's wake-up
        at ``t`` would be the only task of its scheduler pass), the clock is moved to
        ``t`` by ``jump(seconds)`` and the fires of ``t`` run here, in the same order, with
        the same ``now`` and the same :func:`runnable_besides_timers`; then the service's
        own deadline moves to the next due time. The replay driver's idle jump
        (``--speed max``) uses it: a timer pass costs its fires, not a scheduler pass with
        a cancel scope and a task switch.

        Returns:
            True when no timer pass before ``limit`` is left; False when one could not run
            here (the caller lets the scheduler run instead: something is runnable, e.g.
            an actor a fire woke, another deadline comes first, or the service is not
            waiting).
        """
        heap = self._heap
        while heap and heap[0][0] < limit:
            scope = self._scope
            if scope is None or scope.cancel_called or tasks_runnable():
                return False  # the service is not waiting on a live deadline
            due = heap[0][0]
            if other_deadline_by(scope, due):
                return False  # another task is due first or at the same instant
            now = trio.current_time()
            if due > now:
                jump(due - now)
            self._fire_due(trio.current_time())
            scope.deadline = heap[0][0] if heap else math.inf
        return not tasks_runnable()


_SERVICE: trio.lowlevel.RunVar[_TimerService] = trio.lowlevel.RunVar("tradebot_timer_service")


def _service() -> _TimerService:
    """This trio run's timer service (started as a system task on first use)."""
    try:
        return _SERVICE.get()
    except LookupError:
        svc = _TimerService()
        _SERVICE.set(svc)
        trio.lowlevel.spawn_system_task(svc.run, name="actors.runtime.timers")
        return svc


def fire_timers_before(limit: float, jump: Callable[[float], None]) -> bool:
    """This trio run's :meth:`_TimerService.fire_before` (True: no timer service yet,
    so no timer is due)."""
    try:
        svc = _SERVICE.get()
    except LookupError:
        return True
    return svc.fire_before(limit, jump)


def runnable_besides_timers() -> int:
    """Tasks runnable now, not counting those the timer fires of this instant woke.

    Called from a timer's ``quiet`` hook (see :meth:`Timers.every`): the actors that
    earlier fires of the same pass woke only handle their own timer messages, so they do
    not stand between this tick and anything else. Outside a pass: :func:`tasks_runnable`.

    Raises:
        RuntimeError: outside a trio run.
    """
    try:
        woken = _SERVICE.get().woken
    except LookupError:
        woken = 0
    return tasks_runnable() - woken


async def _raise(exc: BaseException) -> None:
    raise exc


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

    def _new_entry(self, key: Hashable) -> int | None:
        """The generation of a new timer ``key`` (None: closed), replacing an old one."""
        if self._closed:  # stopping: the actor is going away, its timers would never fire
            return None
        self.cancel(key)
        self._generation += 1
        return self._generation

    def once(self, key: Hashable, delay_s: float, message: object) -> None:
        """Deliver ``message`` once, ``delay_s`` (>= 0) seconds from now.

        Replaces an existing timer with the same ``key``. The key stays in :meth:`active`
        until the message has been handled (or the timer is cancelled).

        Ignored after a stop request (the actor is going away).

        Raises:
            ValueError: ``delay_s`` negative or not finite.
        """
        _check_seconds("delay_s", delay_s, allow_zero=True)
        generation = self._new_entry(key)
        if generation is None:
            return
        entry = _Entry(self, key, generation, message, due=trio.current_time() + delay_s)
        self._entries[key] = entry
        _service().add(entry, new=True)

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

        ``quiet``: optional, called synchronously at each due time, in the timer service's
        task or the replay driver's (:func:`fire_timers_before`), never the actor's;
        :func:`runnable_besides_timers` tells it whether anything but the actors that other
        fires of this instant woke is runnable. True means the actor has just applied this
        tick itself because handling it would change nothing else (e.g. a periodic check whose answer is known), so the
        message is not delivered and the actor is not woken. It must not block; it should
        answer True only while :meth:`Actor.parked` holds. An exception from it crashes the
        actor.

        Ignored after a stop request (the actor is going away).

        Raises:
            ValueError: ``interval_s`` not positive or not finite.
        """
        _check_seconds("interval_s", interval_s, allow_zero=False)
        generation = self._new_entry(key)
        if generation is None:
            return
        start = trio.current_time()
        entry = _Entry(
            self,
            key,
            generation,
            message,
            due=start + interval_s,
            periodic=True,
            start=start,
            interval_s=interval_s,
            quiet=quiet,
        )
        self._entries[key] = entry
        _service().add(entry, new=True)

    def cancel(self, key: Hashable) -> None:
        """Cancel the timer with ``key`` (no-op if none). Its pending fire is never handled."""
        entry = self._entries.pop(key, None)
        if entry is not None:
            entry.cancelled = True

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

    def _fire(self, entry: _Entry, now: float) -> None:
        """The timer service's call at ``entry``'s due time (``now``)."""
        if entry.periodic:
            quiet = entry.quiet
            if not entry.queued:
                try:
                    applied = quiet is not None and quiet()
                except BaseException as exc:  # crashes the actor, as in its own task
                    entry.cancelled = True
                    self._nursery.start_soon(_raise, exc)
                    return
                if not applied and not self._deliver(entry):
                    return
            self._rearm(entry, now)
        else:
            self._deliver(entry)

    def _rearm(self, entry: _Entry, now: float) -> None:
        """Schedule the next tick of a periodic ``entry`` (missed ticks skipped)."""
        if entry.cancelled:
            return
        start, interval_s = entry.start, entry.interval_s
        entry.n += 1
        if start + entry.n * interval_s <= now:  # delivery was blocked: skip missed ticks
            entry.n = math.floor((now - start) / interval_s) + 1
        entry.due = start + entry.n * interval_s
        _service().add(entry, new=False)

    def _deliver(self, entry: _Entry) -> bool:
        """Enqueue ``entry``'s fire; False if it will never deliver (cancelled, stopped, or
        waiting for mailbox room in a task that re-arms a periodic timer when done)."""
        if entry.cancelled:
            return False
        entry.queued = True
        fire = _TimerFire(self, entry.key, entry.generation, entry.message)
        try:
            self._address.send_nowait(fire)  # type: ignore[arg-type]
        except MailboxFull:
            self._nursery.start_soon(self._deliver_blocked, entry, fire)
            return False
        except ActorStopped:
            return False
        return True

    async def _deliver_blocked(self, entry: _Entry, fire: _TimerFire) -> None:
        """Wait for mailbox room (backpressure: a ``once`` is never dropped)."""
        try:
            await self._address.send(fire)  # type: ignore[arg-type]
        except ActorStopped:
            return
        if entry.periodic:
            self._rearm(entry, trio.current_time())
