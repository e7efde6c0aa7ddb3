"""JournalTap: the account's journal, with redaction and observers.

The launcher wraps its journal in a :class:`JournalTap` *before* ``open_account`` and passes
the tap everywhere the journal would go, so every event of the account (actors, adapters,
routers) passes through it:

1. its ``data`` is redacted (:class:`tradebot.redact.Redactor`: secret values, DSN
   passwords, tokens in URLs), so no secret reaches the journal or the ``alerts`` table;
2. it is forwarded to the wrapped journal (``emit`` / ``emit_durable`` unchanged);
3. every observer (the health state, the Alerter) is called with it, synchronously and
   after the journal took it. An observer must not block; one that raises is logged and
   the event still counts as journaled (an observer can never break trading).

Reads (``latest_snapshot``, ``is_wave_processed``) and every other attribute of the wrapped
journal (``is_up``, ``backlog``, ``stats`` ...) are delegated.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

import attrs

from actors.position import PositionJournal
from tradebot.events import Event
from tradebot.redact import Redactor

__all__ = ["EventObserver", "JournalTap"]

EventObserver = Callable[[Event], None]
_log = logging.getLogger("tradebot.ops")


class JournalTap:
    """Wraps a journal (see the module docstring).

    Args:
        journal: the journal (PostgreSQL or memory): port + reader.
        redactor: secrets to mask in event data (default: credential shapes only).
    """

    def __init__(self, journal: PositionJournal, redactor: Redactor | None = None) -> None:
        self.inner = journal
        self.redactor = redactor or Redactor()
        self._observers: list[EventObserver] = []

    def observe(self, observer: EventObserver) -> Callable[[], None]:
        """Call ``observer(event)`` for every later event; returns the unsubscribe call."""
        self._observers.append(observer)

        def remove() -> None:
            if observer in self._observers:
                self._observers.remove(observer)

        return remove

    def _clean(self, event: Event) -> Event:
        data = self.redactor.data(event.data)
        return event if data is event.data else attrs.evolve(event, data=data)

    def _notify(self, event: Event) -> None:
        for obs in list(self._observers):
            try:
                obs(event)
            except Exception:
                _log.exception("ops observer failed on %s", event.type.value)

    def emit(self, event: Event) -> None:
        event = self._clean(event)
        self.inner.emit(event)
        self._notify(event)

    async def emit_durable(self, event: Event) -> None:
        event = self._clean(event)
        await self.inner.emit_durable(event)
        self._notify(event)

    async def latest_snapshot(self, position_id: str) -> Mapping[str, Any] | None:
        return await self.inner.latest_snapshot(position_id)

    async def is_wave_processed(self, wave_id: str) -> bool:
        return await self.inner.is_wave_processed(wave_id)

    async def signal_waves_since(self, since: datetime) -> Mapping[str, datetime]:
        return await self.inner.signal_waves_since(since)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)
