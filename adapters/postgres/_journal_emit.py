"""The journal's ``JournalPort`` side: ``emit`` (encode, contract check against the payload
classes, buffer, wake the writer), ``emit_durable``, ``flush`` and the state properties."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import trio

from adapters.postgres._journal_reads import _JournalReads
from adapters.postgres._journal_records import (
    _SEVERITIES,
    _clean_text,
    _encode_data,
    _Item,
    log,
)
from tradebot.events import (
    Event,
    EventSchemaError,
    EventSchemaErrorRecorded,
    EventType,
    Severity,
    decode_data,
)

__all__ = ["_JournalEmit"]


class _JournalEmit(_JournalReads):
    """Emission, contract check and encoding."""

    # -- JournalPort ---------------------------------------------------------------------------

    @property
    def is_up(self) -> bool:
        """True while events go straight to the database (False: spooling)."""
        return self._up

    @property
    def pending(self) -> int:
        """Events buffered and not yet handed to the writer."""
        return len(self._pending)

    @property
    def backlog(self) -> int:
        """Events emitted but not yet durable (committed or spooled): the journal lag
        for ``/metrics``."""
        return self._seq - self._durable_seq

    def emit(self, event: Event) -> None:
        """Buffer ``event`` for the next group commit. Never blocks; never raises, except
        :class:`~tradebot.events.EventSchemaError` with ``strict_schema`` (tests)."""
        item = self._encode(event)
        problem = self._check_schema(item)
        if problem is not None and self.strict_schema:
            self._seq -= 1  # never buffered
            raise problem
        self._buffer(item)
        if problem is not None:
            self._schema_error(item, problem)

    def _buffer(self, item: _Item) -> None:
        if self._closed:
            # Too late for the writer: keep it on disk; the next journal replays it.
            try:
                self._spool_sync([item], fsync=False)
            except OSError:
                self.stats.lost += 1
            return
        self._pending.append(item)
        self.stats.emitted += 1
        by_type = self.stats.by_type
        by_type[item.type] = by_type.get(item.type, 0) + 1
        self._cache(item)
        self._wakeup.set()

    async def emit_durable(self, event: Event) -> None:
        """Buffer ``event`` and wait until it is committed or fsynced to the spool.

        With ``durable_wait=False`` (replay/paper in virtual time) returns once buffered.
        """
        self.emit(event)
        if not self.durable_wait or self._closed:
            return
        seq = self._seq
        if self._durable_seq >= seq:
            return
        done = trio.Event()
        self._waiters.append((seq, done))
        await done.wait()

    async def flush(self) -> None:
        """Wait until everything emitted so far is durable (regardless of ``durable_wait``)."""
        seq = self._seq
        if self._durable_seq >= seq or self._closed:
            return
        done = trio.Event()
        self._waiters.append((seq, done))
        self._wakeup.set()
        await done.wait()

    # -- contract check ------------------------------------------------------------------------

    def _check_schema(self, item: _Item) -> EventSchemaError | None:
        """Decode ``item``'s data into its payload class (kept for the projection)."""
        try:
            etype = EventType(item.type)
        except ValueError:
            return EventSchemaError(item.type, [f"unknown event type {item.type!r}"])
        try:
            item.payload = decode_data(etype, item.jdata)
        except EventSchemaError as exc:
            return exc
        return None

    def _schema_error(self, item: _Item, problem: EventSchemaError) -> None:
        """Count a stored event that does not match its payload class; journal the first
        of each type as ``EVENT_SCHEMA_ERROR``."""
        self.stats.schema_errors += 1
        n = self.stats.schema_error_types.get(item.type, 0)
        self.stats.schema_error_types[item.type] = n + 1
        if n or item.type == EventType.EVENT_SCHEMA_ERROR.value:
            return
        log.error("journal: event %s stored but off its contract: %s", item.event_id, problem)
        self.emit(
            Event.of(
                EventSchemaErrorRecorded(
                    event_type=item.type, event_id=str(item.event_id), error=str(problem)[:2000]
                ),
                self._now(),
                severity=Severity.ERROR,
            )
        )

    # -- encoding ------------------------------------------------------------------------------

    def _encode(self, event: Event) -> _Item:
        self._seq += 1
        try:
            data_text, jdata = _encode_data(event.data)
            ts = event.ts
            if not isinstance(ts, datetime):
                jdata = {**jdata, "_invalid_ts": repr(ts)}
                data_text = json.dumps(jdata, separators=(",", ":"), ensure_ascii=False)
                ts = self._now()
            elif ts.tzinfo is None:
                ts = ts.replace(tzinfo=UTC)
            etype = event.type.value if isinstance(event.type, EventType) else str(event.type)
            sev = (
                event.severity.value
                if isinstance(event.severity, Severity)
                else str(event.severity)
            )
            if sev not in _SEVERITIES:
                sev = "info"
            eid = event.event_id if isinstance(event.event_id, uuid.UUID) else uuid.uuid4()
            return _Item(
                self._seq,
                eid,
                ts,
                _clean_text(etype) or "unknown",
                sev,
                _clean_text(event.position_id),
                _clean_text(event.client_order_id),
                _clean_text(event.symbol),
                _clean_text(event.correlation_id),
                data_text,
                jdata,
            )
        except Exception as exc:  # never raise from emit: keep what identifies the event
            jdata = {"_unencodable": f"{type(exc).__name__}: {exc}"[:2000]}
            etype_value: Any = getattr(event.type, "value", None)
            return _Item(
                self._seq,
                event.event_id if isinstance(event.event_id, uuid.UUID) else uuid.uuid4(),
                event.ts if isinstance(event.ts, datetime) and event.ts.tzinfo else self._now(),
                etype_value if isinstance(etype_value, str) else "journal.unencodable",
                "error",
                _clean_text(event.position_id),
                _clean_text(event.client_order_id),
                _clean_text(event.symbol),
                _clean_text(event.correlation_id),
                json.dumps(jdata),
                jdata,
            )
