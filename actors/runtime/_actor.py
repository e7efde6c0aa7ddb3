"""The Actor base class, the message loop and ``run_actor``."""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import Any, ClassVar, Generic, TypeVar

import trio

from tradebot.errors import ActorStopped

from ._mailbox import _WAKE, Address, _Ask, _Mailbox, _Wake
from ._timers import Timers, _TimerFire

__all__ = ["Actor", "run_actor"]

M = TypeVar("M")


class Actor(Generic[M]):
    """Base class of every actor: one trio task that owns its state and handles one
    message at a time from a bounded mailbox.

    Subclass and override :meth:`handle` (and optionally :meth:`on_start`/:meth:`on_stop`).
    Messages should be frozen attrs classes. Run an actor with :func:`run_actor` or, in
    production, as a supervised child (:func:`supervise`, :class:`DynamicSupervisor`).

    While running, the runtime provides:
        * ``self.address`` — this actor's :class:`Address` (stable across restarts when
          supervised; hand it out freely).
        * ``self.timers`` — :class:`Timers` that deliver messages to this mailbox.
        * ``self.nursery`` — a nursery for slow I/O; post results back with
          ``await self.address.send(...)`` so state changes only in the message loop.
          Its tasks are cancelled when the actor stops; an exception escaping one of them
          crashes the actor. After a stop request sends to ``self.address`` raise
          ``ActorStopped``: use :meth:`post` to ignore that.

    Guarantees:
        * ``on_start`` completes before the first message is handled (messages sent
          meanwhile are queued). A restarted actor is a fresh instance from the factory,
          so it must recover its state in ``on_start``.
        * ``handle`` calls never overlap; messages are handled in mailbox (FIFO) order.
        * An exception from ``on_start``/``handle``/``on_stop`` or a nursery task crashes
          the actor (its supervisor decides about a restart). If the message was an
          ``ask``, the asker gets the same exception. Expected failures (a rejected
          order, ...) should be *returned* as values, not raised.
        * ``on_stop`` runs only on a normal stop (``stop()`` or a stop request), not after
          a crash or cancellation.

    Stopping:
        * ``self.stop()`` (from ``handle``, ``on_start`` or a nursery task): the loop ends
          after the current message; see :meth:`stop`.
        * A stop request (``Supervisor.stop_child``, ``DynamicSupervisor.stop_child``,
          :class:`GracefulStop`) with ``deadline_s``: the mailbox refuses new messages at
          once (blocked senders get ``ActorStopped``), timers are cancelled, the queued
          messages are handled, then ``on_stop``. Whatever is not done at the deadline is
          cancelled (the in-flight ``handle``, nursery tasks) and the dropped messages are
          counted in the ``CANCELLED_ON_STOP`` supervision event.
        * Cancellation (the enclosing scope is cancelled): immediate; no ``on_stop``.
    """

    mailbox_size: ClassVar[int] = 1000
    """Mailbox capacity in messages (>= 1); ``send`` waits and ``send_nowait`` raises
    ``MailboxFull`` beyond it."""

    address: Address[M]
    timers: Timers
    nursery: trio.Nursery
    _stop_flag: bool = False
    _control: _Control | None = None

    async def on_start(self) -> None:
        """Called once before the first message (recover state here). Default: nothing."""

    async def handle(self, message: M) -> object:
        """Handle one message; the return value is the reply to an ``ask``."""
        raise NotImplementedError(f"{type(self).__name__} must implement handle()")

    async def on_stop(self) -> None:
        """Called once after the last message on a normal stop. Default: nothing."""

    def parked(self) -> bool:
        """True while this actor's message loop waits on an empty mailbox: no message is
        being handled, none is queued and none is on its way in. Code that runs
        synchronously in another task (e.g. a ``LatestValue`` listener) may then apply a
        change that handling a message *now* would apply, with the same result and
        without a task switch. False outside the message loop (``on_start``, stopped)."""
        control = self._control
        return control is not None and control.current is None and control.mailbox.parked()

    def stop(self) -> None:
        """Ask this actor to stop after the message it is handling now.

        The loop ends after the current ``handle`` returns (or before the first message
        if called in ``on_start``), then ``on_stop`` runs. Messages still queued are not
        handled by this instance: when the actor is not restarted they are dropped (asks
        fail with ``ActorStopped``) and their count is reported. Never blocks.
        """
        self._stop_flag = True
        control = self._control
        if control is not None and control.current is None:
            # The loop may be parked on an empty mailbox: wake it. A full mailbox needs
            # no wake-up (the loop checks the flag after the next message).
            try:
                control.mailbox.send_channel.send_nowait(_WAKE)
            except (trio.WouldBlock, trio.ClosedResourceError, trio.BrokenResourceError):
                pass

    async def post(self, message: M) -> None:
        """Send ``message`` to this actor's own mailbox; silently dropped if it is stopping.

        For nursery tasks returning results of slow I/O to the message loop.
        """
        try:
            await self.address.send(message)
        except ActorStopped:
            pass


class _Ending(enum.Enum):
    SELF_STOPPED = "self_stopped"  # the actor called stop() (or its loop ended by itself)
    DRAINED = "drained"  # a stop request: mailbox drained and on_stop done in time
    CANCELLED_ON_STOP = "cancelled_on_stop"  # a stop request's deadline expired


class _Control:
    """Per-slot control block shared by the loop, the stop request and the supervisor."""

    __slots__ = (
        "actor",
        "current",
        "mailbox",
        "on_started",
        "scope",
        "stop_deadline",
        "stop_requested",
        "timers",
    )

    def __init__(self, mailbox: _Mailbox) -> None:
        self.mailbox = mailbox
        self.actor: Actor[Any] | None = None
        self.current: object | None = None  # message being handled now
        self.on_started: Callable[[], None] | None = None
        self.scope: trio.CancelScope | None = None
        self.timers: Timers | None = None
        self.stop_requested = False
        self.stop_deadline: float | None = None

    def request_stop(self, deadline_s: float) -> None:
        """Stop accepting messages; drain and stop within ``deadline_s`` from now."""
        deadline = trio.current_time() + max(0.0, deadline_s)
        self.stop_requested = True
        if self.stop_deadline is None or deadline < self.stop_deadline:
            self.stop_deadline = deadline
        self.mailbox.close_for_senders()
        if self.timers is not None:
            self.timers._close()
        if self.scope is not None:
            self.scope.deadline = min(self.scope.deadline, self.stop_deadline)


async def _run_incarnation(actor: Actor[Any], control: _Control) -> _Ending:
    """Run one actor instance until it stops; raise its crash as the exception.

    A crash in on_start/handle/on_stop is raised bare; an exception escaping a task in
    the actor's nursery comes as an ExceptionGroup (trio strict groups).
    """
    mailbox = control.mailbox
    receive = mailbox.recv.receive
    failure: Exception | None = None
    control.actor = actor
    control.current = None
    with trio.CancelScope() as scope:
        if control.stop_deadline is not None:
            scope.deadline = control.stop_deadline
        control.scope = scope
        try:
            async with trio.open_nursery() as nursery:
                timers = Timers(nursery, mailbox.address)
                control.timers = timers
                if control.stop_requested:
                    timers._close()
                actor.address = mailbox.address
                actor.timers = timers
                actor.nursery = nursery
                actor._control = control
                handle = actor.handle
                try:
                    await actor.on_start()
                    if control.on_started is not None:
                        control.on_started()
                    while not actor._stop_flag:
                        try:
                            item: Any = await receive()
                        except trio.EndOfChannel:  # stop requested and mailbox drained
                            break
                        kind = type(item)
                        control.current = item
                        if kind is _Ask:
                            if item.abandoned:  # the asker gave up before we started
                                control.current = None
                                continue
                            try:
                                result = await handle(item.message)
                            except Exception as exc:
                                item.fail(exc)
                                raise
                            except BaseException:
                                item.fail(
                                    ActorStopped(
                                        f"actor {mailbox.name!r} was cancelled while handling the ask"
                                    )
                                )
                                raise
                            item.reply(result)
                        elif kind is _TimerFire:
                            if item.timers._accept(item):
                                await handle(item.message)
                        elif kind is not _Wake:
                            await handle(item)
                        control.current = None
                    timers._close()
                    await actor.on_stop()
                except Exception as exc:
                    failure = exc
                finally:
                    timers._close()
                    actor._control = None
                    nursery.cancel_scope.cancel()
        finally:
            control.scope = None
            control.timers = None
    if failure is not None:
        raise failure
    if scope.cancelled_caught:
        return _Ending.CANCELLED_ON_STOP
    return _Ending.DRAINED if control.stop_requested else _Ending.SELF_STOPPED


async def run_actor(
    actor: Actor[M],
    name: str,
    *,
    task_status: trio.TaskStatus[Address[M]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run one unsupervised actor until it stops, crashes or is cancelled.

    ``name`` may be passed positionally, so ``await nursery.start(run_actor, actor, "name")``
    works (``nursery.start`` takes no keyword arguments).

    ``task_status.started(address)`` is called once ``on_start`` has returned, so
    ``address = await nursery.start(run_actor, actor, name=...)`` gives a ready actor (an
    ``on_start`` failure is raised from ``nursery.start``).

    On exit (any reason) the mailbox closes: queued messages are dropped, queued and
    in-flight asks fail with ``ActorStopped``, later sends raise ``ActorStopped``.

    Raises:
        Exception: the actor's crash (bare for on_start/handle/on_stop; an ExceptionGroup
            for an exception escaping a task of ``actor.nursery``).
        ValueError: invalid ``mailbox_size``.
    """
    mailbox = _Mailbox(name, type(actor).mailbox_size)
    control = _Control(mailbox)
    control.on_started = lambda: task_status.started(mailbox.address)
    try:
        await _run_incarnation(actor, control)
    finally:
        mailbox.discard()
