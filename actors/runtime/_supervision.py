"""What supervision is configured with and what it reports: :class:`RestartPolicy` (backoff,
intensity), :class:`Restart`, :class:`ChildSpec`, the supervision events with their typed
payloads and severities, and :func:`journal_sink`."""

from __future__ import annotations

import enum
import math
import random
from collections.abc import Callable
from typing import Any

import attrs

from tradebot.events import (
    ChildCrashed,
    ChildGaveUp,
    ChildRestarted,
    ChildStarted,
    ChildStopped,
    Event,
    EventType,
    JournalPort,
    Severity,
    Supervision,
)
from tradebot.ports import Clock

from ._actor import Actor

__all__ = [
    "ChildSpec",
    "Restart",
    "RestartPolicy",
    "SupervisionEvent",
    "SupervisionEventKind",
    "SupervisionSink",
    "journal_sink",
]


def _seconds(*, allow_zero: bool) -> Callable[[Any, attrs.Attribute[Any], Any], None]:
    def check(_instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"{attribute.name} must be a number, got {value!r}")
        if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
            raise ValueError(
                f"{attribute.name} must be finite and {'>= 0' if allow_zero else '> 0'}, "
                f"got {value!r}"
            )

    return check


def _non_negative_int(_instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{attribute.name} must be an int >= 0, got {value!r}")


def _factor(_instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    _seconds(allow_zero=False)(_instance, attribute, value)
    if value < 1:
        raise ValueError(f"{attribute.name} must be >= 1, got {value!r}")


def _fraction(_instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    _seconds(allow_zero=True)(_instance, attribute, value)
    if value >= 1:
        raise ValueError(f"{attribute.name} must be in [0, 1), got {value!r}")


@attrs.frozen
class RestartPolicy:
    """How a supervisor restarts crashed children (docs/ARCHITECTURE.md §3: "e.g. 5 in 60 s").

    Attributes:
        max_restarts: restarts allowed within ``window_s`` over the whole supervisor
            (>= 0). The crash that would need restart number ``max_restarts + 1`` within
            the window escalates instead.
        window_s: the intensity window in seconds (> 0).
        backoff_initial_s: delay before the first restart of a child (>= 0 s).
        backoff_max_s: cap of the delay (>= 0 s).
        backoff_factor: growth per further restart of the same child within the window
            (>= 1).
        jitter: relative jitter in [0, 1): the delay is multiplied by a uniform factor in
            ``[1 - jitter, 1 + jitter]``. Deterministic with ``jitter=0`` or an injected
            seeded ``random.Random``.
    """

    max_restarts: int = attrs.field(default=5, validator=_non_negative_int)
    window_s: float = attrs.field(default=60.0, validator=_seconds(allow_zero=False))
    backoff_initial_s: float = attrs.field(default=0.5, validator=_seconds(allow_zero=True))
    backoff_max_s: float = attrs.field(default=30.0, validator=_seconds(allow_zero=True))
    backoff_factor: float = attrs.field(default=2.0, validator=_factor)
    jitter: float = attrs.field(default=0.1, validator=_fraction)

    def backoff_s(self, attempt: int, rng: random.Random | None = None) -> float:
        """Delay in seconds before restart number ``attempt`` (1-based) of one child.

        ``min(backoff_max_s, backoff_initial_s * backoff_factor ** (attempt - 1))``, then
        jittered. ``attempt`` counts the child's restarts within ``window_s``, so the delay
        falls back to ``backoff_initial_s`` once a child has been stable for a window.
        """
        if attempt < 1:
            raise ValueError(f"attempt must be >= 1, got {attempt!r}")
        try:
            delay = self.backoff_initial_s * self.backoff_factor ** (attempt - 1)
        except OverflowError:
            delay = self.backoff_max_s
        delay = min(self.backoff_max_s, delay)
        if self.jitter:
            u = (rng if rng is not None else random).random()
            delay *= 1.0 + self.jitter * (2.0 * u - 1.0)
        return max(0.0, delay)


class Restart(enum.Enum):
    """When a child is restarted (Erlang/OTP restart types)."""

    PERMANENT = "permanent"
    """Always restarted, also after a normal (self-requested) stop."""
    TRANSIENT = "transient"
    """Restarted only after a crash; a normal stop ends it."""
    TEMPORARY = "temporary"
    """Never restarted."""


@attrs.frozen
class ChildSpec:
    """A static child of :func:`supervise`.

    Attributes:
        name: unique within the supervisor; also the child's address name.
        start: factory called for every (re)start; returns a *fresh* actor instance.
        restart: restart type.
    """

    name: str
    start: Callable[[], Actor[Any]]
    restart: Restart = Restart.PERMANENT


class SupervisionEventKind(enum.Enum):
    STARTED = "started"  # on_start returned; the instance handles messages now
    CRASHED = "crashed"  # with error and formatted traceback
    RESTARTED = "restarted"  # a new instance is being started (attempt, delay_s waited)
    GAVE_UP = "gave_up"  # restart intensity exceeded: the supervisor escalates
    STOPPED = "stopped"  # the child ended for good (leftover_messages dropped)
    CANCELLED_ON_STOP = "cancelled_on_stop"  # a stop request's deadline expired


_PAYLOADS: dict[SupervisionEventKind, type[Supervision] | type[ChildRestarted]] = {
    SupervisionEventKind.STARTED: ChildStarted,
    SupervisionEventKind.CRASHED: ChildCrashed,
    SupervisionEventKind.RESTARTED: ChildRestarted,
    SupervisionEventKind.GAVE_UP: ChildGaveUp,
    SupervisionEventKind.STOPPED: ChildStopped,
    SupervisionEventKind.CANCELLED_ON_STOP: ChildStopped,
}


@attrs.frozen
class SupervisionEvent:
    """One thing that happened to a supervised child (journal it via ``event_type``).

    Attributes:
        kind: what happened.
        supervisor: the supervisor's name.
        child: the child's name.
        at_s: ``trio.current_time()`` when it happened (virtual under MockClock).
        attempt: RESTARTED/GAVE_UP: the child's restart number within the window.
        delay_s: RESTARTED: the backoff waited before this start, in seconds.
        error: CRASHED/GAVE_UP: ``repr`` of the exception.
        traceback: CRASHED: the formatted traceback.
        leftover_messages: STOPPED/CANCELLED_ON_STOP: queued messages dropped unhandled.
        in_flight_cancelled: CANCELLED_ON_STOP: a message was being handled and was cancelled.
        reason: human-readable detail.
    """

    kind: SupervisionEventKind
    supervisor: str
    child: str
    at_s: float
    attempt: int = 0
    delay_s: float = 0.0
    error: str = ""
    traceback: str = ""
    leftover_messages: int = 0
    in_flight_cancelled: bool = False
    reason: str = ""

    @property
    def event_type(self) -> EventType:
        """The journal event type (``EventType.ACTOR_*``)."""
        return _PAYLOADS[self.kind].EVENT_TYPE

    def payload(self) -> Supervision | ChildRestarted:
        """The journal payload (``tradebot.events.ChildStarted`` ...): every field but
        ``at_s`` (the journal event's ``ts`` says when)."""
        return _PAYLOADS[self.kind](
            kind=self.kind.value,
            supervisor=self.supervisor,
            child=self.child,
            attempt=self.attempt,
            delay_s=self.delay_s,
            error=self.error,
            traceback=self.traceback,
            leftover_messages=self.leftover_messages,
            in_flight_cancelled=self.in_flight_cancelled,
            reason=self.reason,
        )

    @property
    def severity(self) -> Severity:
        """Journal severity: GAVE_UP critical, CRASHED error, CANCELLED_ON_STOP (or a stop
        with dropped messages) warning, else info."""
        if self.kind is SupervisionEventKind.GAVE_UP:
            return Severity.CRITICAL
        if self.kind is SupervisionEventKind.CRASHED:
            return Severity.ERROR
        if self.kind is SupervisionEventKind.CANCELLED_ON_STOP or self.leftover_messages:
            return Severity.WARNING
        return Severity.INFO


SupervisionSink = Callable[[SupervisionEvent], None]
"""Receives every supervision event, synchronously, in order. Must not block. An exception
from the sink is logged (logger ``actors.runtime``) and otherwise ignored."""


def journal_sink(journal: JournalPort, clock: Clock) -> SupervisionSink:
    """A sink that journals every supervision event (``JournalPort.emit``, never blocks).

    Mapping: the payload :meth:`SupervisionEvent.payload` (type ``EventType.ACTOR_*``),
    ``severity = event.severity``, ``ts = clock.now()``.
    """

    def sink(event: SupervisionEvent) -> None:
        journal.emit(Event.of(event.payload(), clock.now(), severity=event.severity))

    return sink
