"""The restart machinery inside a supervisor: the state its slots share (:class:`_Core`:
sink, restart intensity, nursery), one child slot (:class:`_Child`: mailbox and address
kept across incarnations, crash → backoff → restart, stop with a deadline) and the
escalation that ends a supervisor which restarted too often."""

from __future__ import annotations

import logging
import math
import random
import traceback
from collections import deque
from collections.abc import Callable, Hashable
from typing import Any

import trio

from tradebot.errors import ActorStopped, SupervisorEscalation

from ._actor import Actor, _Control, _Ending, _run_incarnation
from ._mailbox import Address, _Mailbox
from ._supervision import (
    Restart,
    RestartPolicy,
    SupervisionEvent,
    SupervisionEventKind,
    SupervisionSink,
)

__all__ = ["_Child", "_Core", "_check_deadline", "_escalation_error", "_leaf"]


_log = logging.getLogger("actors.runtime")


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
