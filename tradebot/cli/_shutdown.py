"""Graceful shutdown on SIGTERM / SIGINT for ``tradebot run`` and ``tradebot paper``.

The process does not die on the signal: :func:`open_shutdown_watch` installs trio's signal
receiver (``trio.open_signal_receiver``; it replaces the default handlers, so Ctrl-C no
longer raises ``KeyboardInterrupt`` through the actor tree and SIGTERM no longer kills the
process with 143) and turns the first signal into a request the launcher acts on: stop
taking signals, let in-flight opens finish or roll back within ``bot.shutdown_grace_s``,
leave the exchange stops in place, journal ``bot.stopped``, drain the journal, exit 0
(docs/ARCHITECTURE.md §10). A second signal while stopping is reported and ignored; the
grace deadline bounds the stop.

Usage::

    async with open_shutdown_watch() as shutdown:
        with shutdown.cancel_on_request():   # this block ends when a signal arrives
            await run_until_cancelled()
        if shutdown.signal_name:             # "SIGTERM" / "SIGINT" or "" (ended by itself)
            ...
"""

from __future__ import annotations

import signal
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import TextIO

import attrs
import trio

__all__ = ["SHUTDOWN_SIGNALS", "ShutdownWatch", "open_shutdown_watch"]

SHUTDOWN_SIGNALS = (signal.SIGTERM, signal.SIGINT)


@attrs.define
class ShutdownWatch:
    """What :func:`open_shutdown_watch` yields.

    Attributes:
        requested: set when the first shutdown signal arrived.
        signal_name: ``"SIGTERM"`` / ``"SIGINT"`` of that signal, "" before.
        signals_received: signals received so far (a second one is only reported).
    """

    requested: trio.Event = attrs.Factory(trio.Event)
    signal_name: str = ""
    signals_received: int = 0
    _scopes: list[trio.CancelScope] = attrs.Factory(list)
    _stream: TextIO | None = None

    @contextmanager
    def cancel_on_request(self) -> Iterator[trio.CancelScope]:
        """A cancel scope that is cancelled when a shutdown signal arrives (at once if one
        already has)."""
        scope = trio.CancelScope()
        if self.requested.is_set():
            scope.cancel()
        self._scopes.append(scope)
        try:
            with scope:
                yield scope
        finally:
            self._scopes.remove(scope)

    def request(self, name: str) -> None:
        """Act as if signal ``name`` arrived (the launcher's own stop, e.g. safe mode)."""
        self.signals_received += 1
        out = self._stream if self._stream is not None else sys.stderr
        if self.requested.is_set():
            print(f"{name} received again: already stopping", file=out, flush=True)
            return
        self.signal_name = name
        self.requested.set()
        for scope in list(self._scopes):
            scope.cancel()

    async def _run(self, receiver: AsyncIterator[int]) -> None:
        async for signum in receiver:
            self.request(signal.Signals(signum).name)


@asynccontextmanager
async def open_shutdown_watch(stream: TextIO | None = None) -> AsyncIterator[ShutdownWatch]:
    """Receive SIGTERM and SIGINT for the duration of the block (main thread only).

    Args:
        stream: where a repeated signal is reported (default stderr).
    """
    watch = ShutdownWatch(stream=stream)
    with trio.open_signal_receiver(*SHUTDOWN_SIGNALS) as receiver:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(watch._run, receiver)
            try:
                yield watch
            finally:
                nursery.cancel_scope.cancel()
