"""Bounded mailboxes, addresses and the ask (request/reply) envelope.

A mailbox is one trio memory channel (``trio.open_memory_channel(mailbox_size)``) owned by
one actor *slot*. The :class:`Address` is the only way in. A supervised child keeps the
same mailbox and address across restarts, so addresses held elsewhere stay valid while the
supervisor restarts the actor behind them.
"""

from __future__ import annotations

import math
from typing import Any, Generic, TypeVar

import trio

from tradebot.errors import ActorStopped, AskTimeout, MailboxFull

__all__ = ["Address"]

M = TypeVar("M")


class _Ask:
    """One ask in flight: the message plus its one-shot reply slot.

    The reply slot is written exactly once (``value`` or ``error``) and ``done`` is set.
    ``abandoned`` is set by the asker when it stops waiting (timeout or cancellation); an
    abandoned ask that was not yet dequeued is skipped by the actor, never handled.
    """

    __slots__ = ("abandoned", "done", "error", "message", "value")

    def __init__(self, message: object) -> None:
        self.message = message
        self.done = trio.Event()
        self.value: object = None
        self.error: BaseException | None = None
        self.abandoned = False

    def reply(self, value: object) -> None:
        if not self.done.is_set():
            self.value = value
            self.done.set()

    def fail(self, error: BaseException) -> None:
        if not self.done.is_set():
            self.error = error
            self.done.set()


class _Wake:
    """Wakes a message loop parked on an empty mailbox after ``Actor.stop()``; never
    handled, never counted."""

    __slots__ = ()


_WAKE = _Wake()


class _Mailbox:
    """The bounded channel behind an address, plus the close/drain bookkeeping.

    Lifecycle: open → ``close_for_senders()`` (new and blocked senders get ActorStopped,
    queued messages can still be received) → ``discard()`` (everything still queued is
    dropped; queued asks fail with ActorStopped).
    """

    __slots__ = ("_closed", "_recv_state", "address", "name", "recv", "send_channel")

    def __init__(self, name: str, size: int) -> None:
        if not isinstance(size, int) or isinstance(size, bool) or size < 1:
            raise ValueError(f"actor {name!r}: mailbox_size must be an int >= 1, got {size!r}")
        self.name = name
        send, recv = trio.open_memory_channel[object](size)
        self.send_channel = send
        self.recv = recv
        state = getattr(recv, "_state", None)
        self._recv_state: Any = state if hasattr(state, "receive_tasks") else None
        self._closed = False
        self.address: Address[Any] = Address(self)

    @property
    def closed(self) -> bool:
        return self._closed

    def close_for_senders(self) -> None:
        """Refuse new messages; wake senders blocked on a full mailbox with ActorStopped."""
        self._closed = True
        self.send_channel.close()

    def parked(self) -> bool:
        """True while the owner's message loop waits on this empty mailbox (nothing queued,
        nothing handed over and not yet taken)."""
        state = self._recv_state
        if state is not None:
            # trio's own record of the parked receivers (a sender hands a message over by
            # removing the receiver from it); read directly, as statistics() would, but
            # without building a statistics object per mark
            return bool(state.receive_tasks)
        return self.recv.statistics().tasks_waiting_receive > 0

    def queued(self) -> int:
        """Messages currently waiting in the mailbox."""
        return self.recv.statistics().current_buffer_used

    def discard(self) -> int:
        """Close for senders, drop everything queued and return how many were dropped.

        Queued asks fail with :class:`ActorStopped` (their askers wake at once); asks whose
        asker already gave up are not counted.
        """
        self.close_for_senders()
        dropped = 0
        while True:
            try:
                item: Any = self.recv.receive_nowait()
            except (trio.WouldBlock, trio.EndOfChannel, trio.ClosedResourceError):
                break
            kind = type(item)
            if kind is _Wake:
                continue
            if kind is _Ask:
                if item.abandoned:
                    continue
                item.fail(ActorStopped(f"actor {self.name!r} stopped before handling the ask"))
            dropped += 1
        self.recv.close()
        return dropped


class Address(Generic[M]):
    """Where messages for one actor go. Cheap to copy around; compare by identity.

    Guarantees:
        * Ordering: messages from one sending task are handled in the order sent (FIFO per
          sender; the mailbox is a single FIFO). No ordering between different senders
          beyond arrival order.
        * Loss: a message accepted by ``send``/``send_nowait`` is handled unless the actor
          stops first. A stopping actor drains its mailbox within the stop deadline; what
          is left is dropped and its count reported to the supervision sink. A *crashed*
          supervised actor keeps its mailbox: queued messages go to the restarted instance.
        * Blocking: ``send`` waits while the mailbox is full (backpressure); ``send_nowait``
          never blocks.
        * Dead actors: every operation on a stopped actor fails at once with
          :class:`~tradebot.errors.ActorStopped`, never hangs; senders blocked on a full
          mailbox are woken with ActorStopped when the actor stops.
    """

    __slots__ = ("_mailbox", "_send")

    def __init__(self, mailbox: _Mailbox) -> None:
        self._mailbox = mailbox
        self._send = mailbox.send_channel

    @property
    def name(self) -> str:
        """The actor's name (unique within its supervisor)."""
        return self._mailbox.name

    @property
    def alive(self) -> bool:
        """True while the address accepts messages.

        A supervised child stays alive while its supervisor restarts it (messages queue
        during the backoff); it turns False once the child is stopped for good.
        """
        return not self._mailbox.closed

    def __repr__(self) -> str:
        return f"<Address {self.name!r} {'alive' if self.alive else 'stopped'}>"

    async def send(self, message: M) -> None:
        """Enqueue ``message``, waiting while the mailbox is full.

        Raises:
            ActorStopped: the actor is stopped, or stopped while we waited for room.

        Cancellation: if cancelled while waiting for room, the message was not enqueued.
        """
        try:
            await self._send.send(message)
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            raise ActorStopped(f"actor {self.name!r} is stopped") from None

    def send_nowait(self, message: M) -> None:
        """Enqueue ``message`` now or fail; never blocks.

        Raises:
            MailboxFull: the mailbox holds ``mailbox_size`` messages.
            ActorStopped: the actor is stopped.
        """
        try:
            self._send.send_nowait(message)
        except trio.WouldBlock:
            raise MailboxFull(f"mailbox of actor {self.name!r} is full") from None
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            raise ActorStopped(f"actor {self.name!r} is stopped") from None

    async def ask(self, message: M, timeout_s: float) -> Any:
        """Send ``message`` and wait for the actor's reply (the return value of ``handle``).

        Args:
            message: the request.
            timeout_s: total seconds (> 0) for enqueueing (backpressure included) and the
                reply. Measured on the trio clock (virtual under ``MockClock``).

        Returns:
            Whatever the actor's ``handle(message)`` returned.

        Raises:
            AskTimeout: no reply after exactly ``timeout_s``. The request is then dropped
                unhandled if the actor had not started on it yet; if it had, it runs to
                completion and the reply is discarded (treat the outcome as unknown).
            ActorStopped: the actor is stopped (at once), or stops before replying. A
                supervised actor that *crashes* on another message keeps this request
                queued for its restarted instance.
            Exception: the exception ``handle`` raised for this message, re-raised here.
                The actor itself crashes with it (and is restarted by its supervisor).
            ValueError: ``timeout_s`` is not a positive number.

        An actor must not ask itself from ``handle`` (it cannot reply while it waits: the
        ask times out); two actors asking each other can deadlock the same way until
        their timeouts.
        """
        if not timeout_s > 0 or math.isnan(timeout_s):
            raise ValueError(f"timeout_s must be > 0, got {timeout_s!r}")
        request = _Ask(message)
        try:
            with trio.move_on_after(timeout_s):
                try:
                    await self._send.send(request)
                except (trio.ClosedResourceError, trio.BrokenResourceError):
                    raise ActorStopped(f"actor {self.name!r} is stopped") from None
                await request.done.wait()
        finally:
            if not request.done.is_set():
                request.abandoned = True
        if not request.done.is_set():
            raise AskTimeout(f"ask to actor {self.name!r} got no reply within {timeout_s:g} s")
        if request.error is not None:
            raise request.error
        return request.value
