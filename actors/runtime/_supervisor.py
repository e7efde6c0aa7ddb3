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

import random
from collections.abc import AsyncIterator, Callable, Hashable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import attrs
import trio

from ._actor import Actor
from ._mailbox import Address
from ._shutdown import Stoppable
from ._slot import _check_deadline, _Core, _Escalation, _escalation_error
from ._supervision import (
    ChildSpec,
    Restart,
    RestartPolicy,
    SupervisionEvent,
    SupervisionEventKind,
    SupervisionSink,
    journal_sink,
)

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
