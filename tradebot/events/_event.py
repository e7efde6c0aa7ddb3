"""One journal entry (:class:`Event`) and the journal ports."""

from __future__ import annotations

import builtins
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol, TypeVar

import attrs

from tradebot.events._base import Payload
from tradebot.events._catalog import EventType, Severity
from tradebot.events._codec import decode, encode

__all__ = ["Event", "JournalPort", "JournalReader", "OpenPositionsReader", "TrackedPosition"]

P = TypeVar("P", bound=Payload)


def _new_uuid() -> uuid.UUID:
    return uuid.uuid4()


@attrs.frozen
class Event:
    """One journal entry.

    Build it from a payload with :meth:`of` (the type comes from the payload's class); read
    the typed payload back with :attr:`payload`.

    Attributes:
        type: the catalog entry.
        ts: aware UTC time of the event (from the Clock port, so replay is deterministic).
        data: JSON-safe mapping, the encoded payload (:func:`tradebot.events.encode`);
            Decimal values are strings. This is what the journals store.
        severity: default INFO.
        position_id: the position the event belongs to, if any.
        client_order_id: the order it concerns, if any.
        symbol: instrument symbol, if any.
        correlation_id: ties a chain together (e.g. a wave id, a request id).
        event_id: uuid, primary key; makes spool replay idempotent.
    """

    type: EventType
    ts: datetime
    data: Mapping[str, Any] = attrs.field(factory=dict)
    severity: Severity = Severity.INFO
    position_id: str | None = None
    client_order_id: str | None = None
    symbol: str | None = None
    correlation_id: str | None = None
    event_id: uuid.UUID = attrs.field(factory=_new_uuid)

    @classmethod
    def of(
        cls,
        payload: Payload,
        ts: datetime,
        *,
        severity: Severity = Severity.INFO,
        position_id: str | None = None,
        client_order_id: str | None = None,
        symbol: str | None = None,
        correlation_id: str | None = None,
    ) -> Event:
        """The event of ``payload`` (type = the payload class's event type) at ``ts``."""
        return cls(
            type=payload.EVENT_TYPE,
            ts=ts,
            data=encode(payload),
            severity=severity,
            position_id=position_id,
            client_order_id=client_order_id,
            symbol=symbol,
            correlation_id=correlation_id,
        )

    @property
    def payload(self) -> Payload:
        """The typed payload decoded from :attr:`data` (a new object on every access).

        Raises:
            EventSchemaError: the data does not match the type's payload class.
        """
        return decode(self)

    def payload_as(self, cls: builtins.type[P]) -> P:
        """:attr:`payload`, checked to be a ``cls``.

        Raises:
            EventSchemaError: the data does not match the type's payload class.
            TypeError: the event's payload class is not ``cls``.
        """
        p = decode(self)
        if not isinstance(p, cls):
            name = builtins.type(p).__name__
            raise TypeError(f"{self.type.value} carries {name}, not {cls.__name__}")
        return p


class JournalPort(Protocol):
    """Where events go.

    ``emit`` never blocks and never raises for a valid event (fire-and-forget; the event is
    buffered, written by group commit, spooled to disk when the database is down).
    ``emit_durable`` returns once the event is committed to the database or fsynced to the
    spool — use it for intent before an exchange call, fills and stop changes. A journal
    checks every event's data against its payload class (see the implementations for what
    a mismatch does).
    """

    def emit(self, event: Event) -> None: ...

    async def emit_durable(self, event: Event) -> None: ...


class JournalReader(Protocol):
    """Reads back what the journal holds, for recovery and idempotency.

    Implementations serve recent writes from a write-through cache so that a reader never
    waits on the database in a virtual-time run (replay determinism, docs/ARCHITECTURE.md
    §8).
    """

    async def latest_snapshot(self, position_id: str) -> Mapping[str, Any] | None:
        """``data`` of the newest ``POSITION_SNAPSHOT`` event of the position, or None."""
        ...

    async def is_wave_processed(self, wave_id: str) -> bool:
        """True once a ``WAVE_COMPLETED`` event with ``data["wave_id"] == wave_id`` exists."""
        ...

    async def signal_waves_since(self, since: datetime) -> Mapping[str, datetime]:
        """Signal id → ``wave_ts`` (aware UTC) of the earliest wave it was journaled in, for
        the signal events (``SIGNAL_TAKEN``/``_FILTERED``/``_LATE``/``_REJECTED``) of waves
        at or after ``since``. The WaveProcessor's start-up memory of used signal ids
        (a reused id is refused, docs/ARCHITECTURE.md §5). Implementations may bound what
        they keep (the PostgreSQL journal: the last 24 h of its database, plus this
        process's events).

        Raises:
            JournalError: the journal cannot answer (database unreachable).
        """
        ...


FINAL_LIFECYCLES = frozenset({"CLOSED", "ROLLED_BACK"})
"""Snapshot ``lifecycle`` values of a position that is over (nothing left to manage)."""


@attrs.frozen
class TrackedPosition:
    """A position the journal says is not over (the Reconciler's view of the journal).

    Attributes:
        position_id: 16 hex chars.
        symbol: instrument symbol.
        position_side: ``"LONG"`` or ``"SHORT"``.
        lifecycle: the newest snapshot's lifecycle (``OPENING``, ``ACTIVE``, ``CLOSING``,
            ``FAILED``), or ``"INTENT"`` when an entry intent was journaled but no snapshot
            followed it (the process died between the two: the entry was never sent, since
            the snapshot is made durable before the entry request).
        origin: ``"tradebot"``, or e.g. ``"legacy"`` for positions imported from another bot.
    """

    position_id: str
    symbol: str
    position_side: str
    lifecycle: str
    origin: str = "tradebot"


class OpenPositionsReader(Protocol):
    """The journal's open positions (start-up recovery and reconciliation)."""

    async def open_positions(self, account: str | None = None) -> Sequence[TrackedPosition]:
        """Positions whose newest snapshot is not final, plus entry intents without a
        snapshot; ``account`` filters where the journal knows the account (PostgreSQL).

        Raises:
            JournalError: the database is unreachable (PostgreSQL journal).
        """
        ...


def tracked_from_snapshot(position_id: str, data: Mapping[str, Any]) -> TrackedPosition | None:
    """The :class:`TrackedPosition` of a snapshot's data, or None when it is final or not
    a position snapshot (no symbol/side)."""
    lifecycle = str(data.get("lifecycle", ""))
    symbol, side = data.get("symbol"), data.get("position_side")
    if lifecycle in FINAL_LIFECYCLES or not symbol or side not in ("LONG", "SHORT"):
        return None
    origin = "legacy" if data.get("origin") == "legacy" else "tradebot"
    return TrackedPosition(position_id, str(symbol), str(side), lifecycle or "ACTIVE", origin)
