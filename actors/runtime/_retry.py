"""One retry helper: bounded attempts with jittered exponential backoff on the trio clock.

Used for every "call the venue again after a pause" in the actors, so the delays follow
one rule and are exact under ``trio.testing.MockClock`` (the pause is ``trio.sleep``: in
virtual time a test sees the attempts at exactly ``initial_s * factor ** (n - 1)``).

Why ours and not a library: the PositionActor journals every retry with its attempt number
and the pause (``exchange.error`` / ``stop.retry`` events) and honours a venue's
``retry_after_s`` per error; the call-site hook below does both without global
instrumentation hooks, and the delays stay bit-identical to the replays recorded so far.
"""

from __future__ import annotations

import math
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

import attrs
import trio

__all__ = ["Backoff", "RetryAttempt", "retry"]

T = TypeVar("T")


def _non_negative(_inst: object, attr: attrs.Attribute[float], value: float) -> None:
    if not value >= 0:
        raise ValueError(f"{attr.name} must be >= 0 s, got {value!r}")


def _factor(_inst: object, attr: attrs.Attribute[float], value: float) -> None:
    if not value >= 1:
        raise ValueError(f"{attr.name} must be >= 1, got {value!r}")


def _fraction(_inst: object, attr: attrs.Attribute[float], value: float) -> None:
    if not 0 <= value < 1:
        raise ValueError(f"{attr.name} must be in [0, 1), got {value!r}")


@attrs.frozen
class Backoff:
    """A jittered exponential backoff schedule.

    Attributes:
        initial_s: pause after the first failed attempt, seconds (>= 0).
        factor: growth per further failed attempt (>= 1); 2 = doubling.
        max_s: cap of the pause before jitter, seconds (>= 0; default no cap).
        jitter: relative jitter in [0, 1): the pause is multiplied by a uniform factor in
            ``[1 - jitter, 1 + jitter]`` drawn from the given ``random.Random``. 0 (the
            default) = exact pauses, what replays need.

    Raises:
        ValueError: a value out of its range.
    """

    initial_s: float = attrs.field(validator=_non_negative)
    factor: float = attrs.field(default=2.0, validator=_factor)
    max_s: float = attrs.field(default=math.inf, validator=_non_negative)
    jitter: float = attrs.field(default=0.0, validator=_fraction)

    def delay_s(self, attempt: int, rng: random.Random | None = None) -> float:
        """Pause after failed attempt number ``attempt`` (1-based), seconds.

        ``min(max_s, initial_s * factor ** (attempt - 1))``, then jittered (``rng`` or the
        module's random generator; pass a seeded one for reproducible jitter).
        """
        if attempt < 1:
            raise ValueError(f"attempt is 1-based, got {attempt}")
        try:
            delay = min(self.max_s, self.initial_s * self.factor ** (attempt - 1))
        except OverflowError:
            delay = self.max_s
        if self.jitter:
            u = (rng or random).random()
            delay *= 1.0 + self.jitter * (2.0 * u - 1.0)
        return delay


@attrs.frozen
class RetryAttempt:
    """One failed attempt, as the ``on_retry`` hook sees it (before the pause).

    Attributes:
        attempt: number of the attempt that failed (1-based).
        error: its exception.
        wait_s: the pause that follows, seconds.
        last: True when no attempt follows (only with ``wait_after_last``).
    """

    attempt: int
    error: Exception
    wait_s: float
    last: bool


async def retry(
    fn: Callable[[int], Awaitable[T]],
    *,
    attempts: int,
    backoff: Backoff,
    retry_on: type[Exception] | tuple[type[Exception], ...],
    never_on: type[Exception] | tuple[type[Exception], ...] = (),
    on_retry: Callable[[RetryAttempt], None] | None = None,
    wait_for: Callable[[Exception, float], float] | None = None,
    wait_after_last: bool = False,
    rng: random.Random | None = None,
) -> T:
    """Call ``fn(attempt)`` (attempt = 1, 2, ...) until it returns; retry the errors
    ``retry_on`` (except ``never_on``, which propagate at once) up to ``attempts`` calls.

    Between two attempts: ``on_retry`` is called (journal it), then ``trio.sleep`` for the
    pause: ``backoff.delay_s(attempt)``, or what ``wait_for(error, delay)`` returns (e.g. a
    venue's ``retry_after_s``). The schedule advances by one step per failed attempt
    whatever the pause was.

    Args:
        fn: the attempt; gets its 1-based number.
        attempts: maximum number of calls (>= 1).
        backoff: the pause schedule.
        retry_on: exception types that are retried.
        never_on: subtypes of ``retry_on`` that are not.
        on_retry: called after each failed attempt, before its pause; must not block.
        wait_for: pause override ``(error, scheduled_pause_s) -> pause_s``.
        wait_after_last: also pause (and call ``on_retry`` with ``last=True``) after the
            last failed attempt before raising, so the caller's next step starts one pause
            later (the PositionActor's stop placement does, as it always has).
        rng: random source of the jitter.

    Returns:
        What ``fn`` returned.

    Raises:
        ValueError: ``attempts`` < 1.
        Exception: the last attempt's error, or at once any error not retried.
    """
    if attempts < 1:
        raise ValueError(f"attempts must be >= 1, got {attempts}")
    attempt = 1
    while True:
        try:
            return await fn(attempt)
        except retry_on as exc:
            if isinstance(exc, never_on):
                raise
            last = attempt >= attempts
            if last and not wait_after_last:
                raise
            delay = backoff.delay_s(attempt, rng)
            wait = wait_for(exc, delay) if wait_for is not None else delay
            if on_retry is not None:
                on_retry(RetryAttempt(attempt, exc, wait, last))
            await trio.sleep(wait)
            if last:
                raise
        attempt += 1
