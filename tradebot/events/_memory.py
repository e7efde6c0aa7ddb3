"""An in-process journal (tests, dry runs) that checks every event's contract."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from tradebot.events._catalog import EventType
from tradebot.events._codec import decode_data
from tradebot.events._event import Event, TrackedPosition, tracked_from_snapshot
from tradebot.events._json import jsonable

__all__ = ["SIGNAL_EVENT_TYPES", "MemoryJournal"]

#: The events that record a signal id as used in its wave (``signal_waves_since``).
SIGNAL_EVENT_TYPES = frozenset(
    {
        EventType.SIGNAL_TAKEN,
        EventType.SIGNAL_FILTERED,
        EventType.SIGNAL_LATE,
        EventType.SIGNAL_REJECTED,
    }
)


class MemoryJournal:
    """In-process journal that keeps events in a list (tests, dry runs).

    Implements :class:`~tradebot.events.JournalPort` and
    :class:`~tradebot.events.JournalReader`. Events are JSON-encoded on emit (exactly as
    the PostgreSQL journal does) and their data is decoded into the type's payload class,
    so a value that could not be journaled, or data that does not match the payload class,
    fails here: with ``validate=True`` (the default) every scenario test is a contract test.

    Raises (from ``emit``/``emit_durable``):
        EventSchemaError: ``validate`` is on and the data does not match the payload class.
    """

    def __init__(self, *, validate: bool = True) -> None:
        self.events: list[Event] = []
        self.validate = validate
        self._snapshots: dict[str, Mapping[str, Any]] = {}
        self._waves: set[str] = set()
        self._intents: dict[str, tuple[str, str]] = {}

    def emit(self, event: Event) -> None:
        jdata = jsonable(event.data)  # same encoding path as the database journal
        json.dumps(jdata)
        if self.validate:
            decode_data(event.type, jdata)
        self.events.append(event)
        if event.type is EventType.ENTRY_INTENT and event.position_id is not None:
            side = event.data.get("position_side")
            self._intents[event.position_id] = (
                str(event.symbol or ""),
                str(getattr(side, "value", side) or ""),
            )
        if event.type is EventType.POSITION_SNAPSHOT and event.position_id is not None:
            self._snapshots[event.position_id] = event.data
        elif event.type is EventType.WAVE_COMPLETED and "wave_id" in event.data:
            self._waves.add(str(event.data["wave_id"]))

    async def emit_durable(self, event: Event) -> None:
        self.emit(event)

    async def latest_snapshot(self, position_id: str) -> Mapping[str, Any] | None:
        return self._snapshots.get(position_id)

    async def is_wave_processed(self, wave_id: str) -> bool:
        return wave_id in self._waves

    async def open_positions(self, account: str | None = None) -> list[TrackedPosition]:
        """:meth:`tradebot.events.OpenPositionsReader.open_positions` (``account`` is not
        known to this journal and ignored)."""
        out = []
        for pid, data in self._snapshots.items():
            t = tracked_from_snapshot(pid, data)
            if t is not None:
                out.append(t)
        for pid, (symbol, side) in self._intents.items():
            if pid not in self._snapshots and symbol and side in ("LONG", "SHORT"):
                out.append(TrackedPosition(pid, symbol, side, "INTENT"))
        return out

    async def signal_waves_since(self, since: datetime) -> Mapping[str, datetime]:
        first: dict[str, datetime] = {}
        for e in self.events:
            if e.type not in SIGNAL_EVENT_TYPES:
                continue
            sid, wave_ts = e.data.get("signal_id"), e.data.get("wave_ts")
            if sid is None or wave_ts is None:
                continue
            ts = wave_ts if isinstance(wave_ts, datetime) else datetime.fromisoformat(wave_ts)
            if ts >= since and (sid not in first or ts < first[sid]):
                first[str(sid)] = ts
        return first

    def of_type(self, *types: EventType) -> list[Event]:
        """Events of the given types, in emission order."""
        return [e for e in self.events if e.type in types]
