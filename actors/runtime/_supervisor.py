"""Supervision: restart policy, static and keyed (dynamic) supervisors, supervision events.

Semantics follow Erlang/OTP supervisors, adapted to trio's structured concurrency:

* Each child runs in a *slot*: one task of the supervisor's nursery that owns the child's
  mailbox and address and runs actor instances one after the other. The address stays
  valid across restarts; queued messages wait for the restarted instance.
* A crash (any ``Exception`` from the actor, caught with ``except*``) is reported and,
  depending on :class:`Restart`, the child is restarted after a jittered exponential
  backoff. ``Cancelled`` and ``BaseException``\\s are never treated as crashes.
* Restart intensity is counted over the whole supervisor: more than
  ``policy.max_restarts`` restarts within ``policy.window_s`` seconds and the supervisor
  gives up: it cancels all its children and raises
  :class:`~tradebot.errors.SupervisorEscalation` to its parent (docs/ARCHITECTURE.md §3).
* No orphan tasks: every task lives in a nursery whose owner outlives it.
"""

from __future__ import annotations

import enum
import logging
import math
import random
import traceback
from collections import deque
from collections.abc import AsyncIterator, Callable, Hashable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import attrs
import trio

from tradebot.errors import ActorStopped, SupervisorEscalation
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

from ._actor import Actor, _Control, _Ending, _run_incarnation
from ._mailbox import Address, _Mailbox
from ._shutdown import Stoppable

__all__ = [
    "ChildSpec",
    "DynamicSupervisor",
    "Restart",
    "RestartPolicy",
    "SupervisionEvent",
    "SupervisionEventKind",
    "SupervisionSink",
    "Supervisor",
    "journal_sink",
    "open_dynamic_supervisor",
    "run_dynamic_supervisor",
    "supervise",
]

_log = logging.getLogger("actors.runtime")


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


class _Escalation(Exception):
    def __init__(
        self, supervisor: str, child: str, policy: RestartPolicy, cause: BaseException | None
    ) -> None:
        super().__init__(supervisor, child)
        self.supervisor = supervisor
        self.child = child
        self.policy = policy
        self.cause = cause


def _escalation_error(group: BaseExceptionGroup[_Escalation]) -> SupervisorEscalation:
    first = group.exceptions[0]
    while isinstance(first, BaseExceptionGroup):
        first = first.exceptions[0]
    assert isinstance(first, _Escalation)
    error = SupervisorEscalation(
        first.supervisor,
        first.child,
        max_restarts=first.policy.max_restarts,
        window_s=first.policy.window_s,
    )
    error.__cause__ = first.cause
    error.__suppress_context__ = True
    return error


def _leaf(error: BaseException) -> BaseException:
    while isinstance(error, BaseExceptionGroup) and len(error.exceptions) == 1:
        error = error.exceptions[0]
    return error


class _FactoryFailed(Actor[Any]):
    """Stands in for an actor whose factory raised on a restart: crashes in on_start."""

    def __init__(self, error: Exception) -> None:
        self._error = error

    async def on_start(self) -> None:
        raise self._error


def _check_deadline(deadline_s: float) -> None:
    if (
        isinstance(deadline_s, bool)
        or not isinstance(deadline_s, int | float)
        or math.isnan(deadline_s)
        or deadline_s < 0
    ):
        raise ValueError(f"deadline_s must be a number >= 0, got {deadline_s!r}")


class _Core:
    """State shared by the slots of one supervisor."""

    def __init__(
        self,
        name: str,
        policy: RestartPolicy,
        sink: SupervisionSink,
        rng: random.Random | None,
        nursery: trio.Nursery,
    ) -> None:
        if not isinstance(policy, RestartPolicy):
            raise TypeError(f"policy must be a RestartPolicy, got {policy!r}")
        self.name = name
        self.policy = policy
        self.sink = sink
        self.rng = rng
        self.nursery = nursery
        self.children: dict[Hashable, _Child] = {}
        self.restart_times: deque[float] = deque()
        self.closing = False

    def emit(self, kind: SupervisionEventKind, child: str, **fields: Any) -> None:
        event = SupervisionEvent(
            kind=kind, supervisor=self.name, child=child, at_s=trio.current_time(), **fields
        )
        try:
            self.sink(event)
        except Exception:
            _log.exception("supervision sink failed on %r", event)

    def allow_restart(self, now: float) -> bool:
        window = self.restart_times
        while window and window[0] <= now - self.policy.window_s:
            window.popleft()
        if len(window) >= self.policy.max_restarts:
            return False
        window.append(now)
        return True

    async def start(
        self, key: Hashable, name: str, factory: Callable[[], Actor[Any]], restart: Restart
    ) -> _Child:
        while True:
            existing = self.children.get(key)
            if existing is None or existing.ended.is_set():
                break
            if not existing.control.stop_requested:
                await existing.first_done.wait()
                return existing
            # The old child is draining: never two children for one key, not even briefly.
            await existing.ended.wait()
        if self.closing:
            raise ActorStopped(f"supervisor {self.name!r} is stopping; not starting {name!r}")
        if not isinstance(restart, Restart):
            raise TypeError(f"restart must be a Restart, got {restart!r}")
        actor = factory()
        if not isinstance(actor, Actor):
            raise TypeError(f"factory of {name!r} returned {actor!r}, not an Actor")
        child = _Child(self, key, name, factory, restart, type(actor).mailbox_size)
        self.children[key] = child
        self.nursery.start_soon(child.run, actor, name=f"actor:{self.name}/{name}")
        await child.first_done.wait()
        return child


class _Child:
    """One supervised slot: a stable mailbox/address and a sequence of instances."""

    def __init__(
        self,
        core: _Core,
        key: Hashable,
        name: str,
        factory: Callable[[], Actor[Any]],
        restart: Restart,
        mailbox_size: int,
    ) -> None:
        self.core = core
        self.key = key
        self.name = name
        self.factory = factory
        self.restart = restart
        self.mailbox = _Mailbox(name, mailbox_size)
        self.address: Address[Any] = self.mailbox.address
        self.control = _Control(self.mailbox)
        self.first_done = trio.Event()
        self.ended = trio.Event()
        self.backoff_scope: trio.CancelScope | None = None
        self.restart_times: deque[float] = deque()

    def _on_started(self) -> None:
        self.core.emit(SupervisionEventKind.STARTED, self.name)
        self.first_done.set()

    def request_stop(self, deadline_s: float) -> None:
        self.control.request_stop(deadline_s)
        if self.backoff_scope is not None:
            self.backoff_scope.cancel()

    async def stop(self, deadline_s: float) -> None:
        """Graceful stop: drain within ``deadline_s`` s, then cancel; wait until ended."""
        _check_deadline(deadline_s)
        self.request_stop(deadline_s)
        await self.ended.wait()

    def _note_restart(self, now: float) -> int:
        window = self.restart_times
        while window and window[0] <= now - self.core.policy.window_s:
            window.popleft()
        window.append(now)
        return len(window)

    async def run(self, actor: Actor[Any]) -> None:
        core = self.core
        control = self.control
        control.on_started = self._on_started
        final: tuple[SupervisionEventKind, str] | None = None
        escalated = False
        try:
            while True:
                crash: BaseException | None = None
                ending: _Ending | None = None
                try:
                    ending = await _run_incarnation(actor, control)
                except* Exception as group:
                    crash = _leaf(group)
                self.first_done.set()
                if crash is None:
                    if ending is _Ending.CANCELLED_ON_STOP:
                        final = (SupervisionEventKind.CANCELLED_ON_STOP, "stop deadline expired")
                        break
                    if control.stop_requested:
                        final = (SupervisionEventKind.STOPPED, "stop requested; drained")
                        break
                    if self.restart is not Restart.PERMANENT:
                        final = (SupervisionEventKind.STOPPED, "stopped itself")
                        break
                    error = None
                else:
                    core.emit(
                        SupervisionEventKind.CRASHED,
                        self.name,
                        error=repr(crash),
                        traceback="".join(traceback.format_exception(crash)),
                    )
                    if control.stop_requested:
                        final = (SupervisionEventKind.STOPPED, "crashed while stopping")
                        break
                    if self.restart is Restart.TEMPORARY:
                        final = (
                            SupervisionEventKind.STOPPED,
                            "crashed; temporary children are not restarted",
                        )
                        break
                    error = crash
                now = trio.current_time()
                if not core.allow_restart(now):
                    escalated = True
                    core.emit(
                        SupervisionEventKind.GAVE_UP,
                        self.name,
                        attempt=len(self.restart_times) + 1,
                        error=repr(error) if error is not None else "",
                        reason=f"more than {core.policy.max_restarts} restart(s) within "
                        f"{core.policy.window_s:g} s",
                    )
                    raise _Escalation(core.name, self.name, core.policy, error)
                attempt = self._note_restart(now)
                delay_s = core.policy.backoff_s(attempt, core.rng)
                with trio.CancelScope() as backoff:
                    self.backoff_scope = backoff
                    await trio.sleep(delay_s)
                self.backoff_scope = None
                if control.stop_requested:
                    final = (SupervisionEventKind.STOPPED, "stop requested during restart backoff")
                    break
                core.emit(
                    SupervisionEventKind.RESTARTED, self.name, attempt=attempt, delay_s=delay_s
                )
                try:
                    actor = self.factory()
                except Exception as exc:
                    actor = _FactoryFailed(exc)
        finally:
            in_flight = (
                control.current is not None
                and final is not None
                and final[0] is SupervisionEventKind.CANCELLED_ON_STOP
            )
            leftover = self.mailbox.discard()
            if core.children.get(self.key) is self:
                del core.children[self.key]
            self.first_done.set()
            self.ended.set()
            if final is not None:
                core.emit(
                    final[0],
                    self.name,
                    leftover_messages=leftover,
                    in_flight_cancelled=in_flight,
                    reason=final[1],
                )
            elif not escalated:
                core.emit(
                    SupervisionEventKind.STOPPED,
                    self.name,
                    leftover_messages=leftover,
                    reason="cancelled",
                )


class Supervisor:
    """Handle to a running :func:`supervise` (its ``task_status.started`` value)."""

    def __init__(self, core: _Core, order: Sequence[str]) -> None:
        self._core = core
        self._order = list(order)

    @property
    def name(self) -> str:
        return self._core.name

    def address(self, name: str) -> Address[Any]:
        """The child's address (stable across restarts).

        Raises:
            KeyError: no such child, or it has ended.
        """
        return self._core.children[name].address

    def names(self) -> list[str]:
        """Names of the children that have not ended, in start order."""
        return [n for n in self._order if n in self._core.children]

    async def stop_child(self, name: str, deadline_s: float) -> None:
        """Gracefully stop one child (drain within ``deadline_s`` s, then cancel); it is
        not restarted. No-op if it has already ended."""
        child = self._core.children.get(name)
        if child is not None:
            await child.stop(deadline_s)

    def child(self, name: str) -> Stoppable:
        """A stop target for :class:`GracefulStop` (``await target.stop(deadline_s)``)."""
        return _ChildStopper(self, name)

    async def stop(self, deadline_s: float) -> None:
        """Stop every child gracefully, in reverse start order, each within ``deadline_s``.

        Then ``supervise`` returns.
        """
        _check_deadline(deadline_s)
        self._core.closing = True
        for name in reversed(self._order):
            await self.stop_child(name, deadline_s)


@attrs.frozen
class _ChildStopper:
    supervisor: Supervisor
    name: str

    async def stop(self, deadline_s: float) -> None:
        await self.supervisor.stop_child(self.name, deadline_s)


async def supervise(
    children: Sequence[ChildSpec],
    policy: RestartPolicy,
    sink: SupervisionSink,
    *,
    name: str = "supervisor",
    rng: random.Random | None = None,
    task_status: trio.TaskStatus[Supervisor] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run ``children`` under ``policy`` until all have ended, or escalate.

    Children start in order; each one's first ``on_start`` has returned (or crashed) before
    the next is started. Then ``task_status.started(Supervisor)``.

    Returns when every child has ended for good (temporary/transient ones that stopped,
    or after :meth:`Supervisor.stop`). Cancellation cancels every child at once.

    Raises:
        SupervisorEscalation: restart intensity exceeded; all children were cancelled
            first. ``__cause__`` is the last crash.
        ValueError: duplicate child names.
        Exception: a factory raising on the *initial* start (in an ExceptionGroup).
    """
    names = [spec.name for spec in children]
    if len(set(names)) != len(names):
        raise ValueError(f"supervisor {name!r}: duplicate child names in {names!r}")
    try:
        async with trio.open_nursery() as nursery:
            core = _Core(name, policy, sink, rng, nursery)
            for spec in children:
                await core.start(spec.name, spec.name, spec.start, spec.restart)
            task_status.started(Supervisor(core, names))
    except* _Escalation as group:
        raise _escalation_error(group)  # noqa: B904  (__cause__ is the child's crash)


class DynamicSupervisor:
    """Keyed children started on demand: at most one live child per key.

    "One actor per (symbol, side)" is structural: :meth:`start_child` for a key whose
    child is alive returns that child's address instead of starting another one, and 100
    concurrent calls for one key create exactly one child. A child stays "alive" while it
    is being restarted. Get one from :func:`open_dynamic_supervisor` or
    :func:`run_dynamic_supervisor`.
    """

    def __init__(self, core: _Core) -> None:
        self._core = core
        self._stopped = trio.Event()

    @property
    def name(self) -> str:
        return self._core.name

    async def start_child(
        self,
        key: Hashable,
        factory: Callable[[], Actor[Any]],
        restart: Restart = Restart.TRANSIENT,
        *,
        name: str | None = None,
    ) -> Address[Any]:
        """Start a child for ``key`` unless one is alive; return the child's address.

        Waits until the child's first ``on_start`` has returned or crashed (a crash is
        then handled by the restart policy; the address stays valid while restarting).
        If the key's child is draining after a stop request, waits until it has ended and
        then starts a new one: there are never two children for one key.

        Args:
            key: hashable identity, e.g. ``("BTCUSDT", PositionSide.LONG)``.
            factory: called for every (re)start, returns a fresh actor.
            restart: restart type (default TRANSIENT: restarted after crashes only).
            name: child name for addresses and events (default ``str(key)``).

        Raises:
            ActorStopped: the supervisor is stopping.
            Exception: whatever ``factory`` raised on this first start.
        """
        child = await self._core.start(
            key, name if name is not None else str(key), factory, restart
        )
        return child.address

    def get(self, key: Hashable) -> Address[Any] | None:
        """Address of the live child for ``key``, or None."""
        child = self._core.children.get(key)
        return child.address if child is not None and child.address.alive else None

    def keys(self) -> list[Hashable]:
        """Keys of the live children."""
        return [k for k, c in self._core.children.items() if c.address.alive]

    def __len__(self) -> int:
        return len(self.keys())

    async def stop_child(self, key: Hashable, deadline_s: float) -> None:
        """Gracefully stop the child for ``key`` (drain within ``deadline_s`` s, then
        cancel); it is not restarted. No-op if there is none."""
        child = self._core.children.get(key)
        if child is not None:
            await child.stop(deadline_s)

    async def stop(self, deadline_s: float) -> None:
        """Refuse new children, then stop all children concurrently within ``deadline_s``."""
        _check_deadline(deadline_s)
        self._core.closing = True
        async with trio.open_nursery() as nursery:
            for key in list(self._core.children):
                nursery.start_soon(self.stop_child, key, deadline_s)
        self._stopped.set()


@asynccontextmanager
async def open_dynamic_supervisor(
    policy: RestartPolicy,
    sink: SupervisionSink,
    *,
    name: str,
    rng: random.Random | None = None,
) -> AsyncIterator[DynamicSupervisor]:
    """``async with open_dynamic_supervisor(policy, sink, name=...) as sup:``

    Like a nursery, the block does not exit before every child has ended: call
    ``await sup.stop(deadline_s)`` to end them (or cancel the block).

    Raises:
        SupervisorEscalation: restart intensity exceeded; every child was cancelled (and
            the block's body too).
    """
    try:
        async with trio.open_nursery() as nursery:
            yield DynamicSupervisor(_Core(name, policy, sink, rng, nursery))
    except* _Escalation as group:
        raise _escalation_error(group)  # noqa: B904  (__cause__ is the child's crash)


async def run_dynamic_supervisor(
    policy: RestartPolicy,
    sink: SupervisionSink,
    name: str,
    rng: random.Random | None = None,
    *,
    task_status: trio.TaskStatus[DynamicSupervisor] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Task form of :func:`open_dynamic_supervisor`: ``sup = await nursery.start(
    run_dynamic_supervisor, policy, sink, "positions")``. Returns after ``sup.stop()``.

    Raises:
        SupervisorEscalation: as :func:`open_dynamic_supervisor`.
    """
    async with open_dynamic_supervisor(policy, sink, name=name, rng=rng) as sup:
        task_status.started(sup)
        await sup._stopped.wait()
