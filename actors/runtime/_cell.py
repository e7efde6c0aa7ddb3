"""The conflating latest-value cell (mark prices; docs/ARCHITECTURE.md §3)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from typing import Generic, TypeVar

import trio

__all__ = ["LatestValue"]

T = TypeVar("T")

_log = logging.getLogger(__name__)


class LatestValue(Generic[T]):
    """A cell holding only the newest value; readers wake once per change.

    A producer overwrites; nothing ever queues, so a burst of 10,000 updates costs 10,000
    O(1) assignments and a consumer that was busy sees only the newest value afterwards.

    Guarantees:
        * ``set`` never blocks and is O(1); the first ``set`` after consumers parked also
          reschedules them (O(waiting consumers)), later ``set`` calls before they run are
          plain assignments.
        * ``version`` counts ``set`` calls (0 = never set); it only grows.
        * Loss by design: intermediate values between two reads are skipped (conflated).
          The newest value is never lost: a waiting consumer always ends up reading it.
        * Ordering: versions a consumer sees strictly increase.
        * Cancellation: ``wait_changed`` can be cancelled at any time without side effects.
        * Listeners (:meth:`add_listener`) are called synchronously inside ``set``, in
          registration order, with no argument: the zero-task-switch way for an actor to
          learn "there is a newer value" (it posts one conflated message to its own
          mailbox and reads :meth:`get` when handling it). A listener must not block;
          an exception it raises is logged and swallowed (the producer never breaks).
        * Closing: after ``close()`` waiters that have seen the newest value get
          ``trio.EndOfChannel``; subscriptions end after yielding the newest value.
    """

    __slots__ = ("_called", "_closed", "_listeners", "_lot", "_value", "_version")

    def __init__(self, initial: T | None = None) -> None:
        """Args: initial: optional first value (then ``version`` starts at 1)."""
        self._value: T | None = initial
        self._version = 0 if initial is None else 1
        self._lot = trio.lowlevel.ParkingLot()
        self._closed = False
        self._listeners: dict[int, Callable[[], None]] = {}
        self._called: tuple[Callable[[], None], ...] = ()  # the listeners, in order

    @property
    def version(self) -> int:
        """Number of ``set`` calls so far (plus 1 for an initial value)."""
        return self._version

    def get(self) -> T | None:
        """The newest value, or None if never set. Never blocks."""
        return self._value

    def set(self, value: T) -> None:
        """Overwrite the value and wake every waiting consumer. Never blocks.

        Raises:
            trio.ClosedResourceError: the cell was closed.
        """
        if self._closed:
            raise trio.ClosedResourceError("LatestValue is closed")
        self._value = value
        self._version += 1
        if self._lot:
            self._lot.unpark_all()
        if self._called:
            for listener in self._called:
                try:
                    listener()
                except Exception:  # a consumer's bug must not break the price producer
                    _log.exception("LatestValue listener failed")

    def add_listener(self, listener: Callable[[], None]) -> Callable[[], None]:
        """Call ``listener()`` after every ``set``; returns a function that removes it.

        Removing twice is harmless. Listeners run in registration order.
        """
        key = id(listener) ^ len(self._listeners) << 1
        while key in self._listeners:
            key += 1
        self._listeners[key] = listener
        self._called = tuple(self._listeners.values())

        def remove() -> None:
            if self._listeners.pop(key, None) is not None:
                self._called = tuple(self._listeners.values())

        return remove

    def close(self) -> None:
        """No more values: wake waiters so they can finish (idempotent)."""
        self._closed = True
        self._lot.unpark_all()

    async def wait_changed(self, seen_version: int) -> tuple[int, T]:
        """Wait until ``version > seen_version`` and return ``(version, newest value)``.

        Returns at once (after a trio checkpoint) when a newer value already exists.

        Raises:
            trio.EndOfChannel: the cell is closed and holds nothing newer than
                ``seen_version``.
        """
        if self._version > seen_version:
            await trio.lowlevel.checkpoint()
        while self._version <= seen_version:
            if self._closed:
                raise trio.EndOfChannel
            await self._lot.park()
        return self._version, self._value  # type: ignore[return-value]

    def subscribe(self) -> AsyncIterator[T]:
        """Iterate over values: the current one (if set), then the newest after each change.

        One subscription belongs to one consumer task. Iteration ends when the cell closes.
        """
        return _Subscription(self)


class _Subscription(AsyncIterator[T]):
    __slots__ = ("_cell", "_seen")

    def __init__(self, cell: LatestValue[T]) -> None:
        self._cell = cell
        self._seen = 0

    def __aiter__(self) -> _Subscription[T]:
        return self

    async def __anext__(self) -> T:
        try:
            self._seen, value = await self._cell.wait_changed(self._seen)
        except trio.EndOfChannel:
            raise StopAsyncIteration from None
        return value
