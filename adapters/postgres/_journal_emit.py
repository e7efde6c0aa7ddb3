"""The journal's ``JournalPort`` side: ``emit`` (encode, contract check against the payload
classes, buffer, wake the writer), ``emit_durable``, ``flush``, the state properties and
the bookkeeping of events off their contract (checked here, by the writer child, or when
spooled)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import trio

from adapters.postgres._journal_reads import _JournalReads
from adapters.postgres._journal_records import (
    _SEVERITIES,
    _check_contract,
    _clean_text,
    _encode_data,
    _Item,
    log,
)
from tradebot.events import (
    Event,
    EventSchemaErrorRecorded,
    EventType,
    Severity,
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
        :class:`~tradebot.events.EventSchemaError` with ``strict_schema`` (tests).

        The contract check (``event.data`` against its payload class) runs here, except
        with ``writer_process`` and not ``strict_schema`` (``tradebot paper``): then the
        writer child checks each event of the batch it writes and the journal counts the
        ones off their contract (and journals ``EVENT_SCHEMA_ERROR``) when that batch is
        committed, or when it is spooled instead (:meth:`_check_spooled`)."""
        item = self._encode(event)
        if self.writer_process and not self.strict_schema and not self._closed:
            self._buffer(item)
            return
        problem = _check_contract(item)
        if problem is not None and self.strict_schema:
            self._seq -= 1  # never buffered
            raise problem
        self._buffer(item)
        if problem is not None:
            self._schema_error(item.type, str(item.event_id), str(problem))

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

    @property
    def _checks_in_child(self) -> bool:
        """True when ``emit`` leaves the contract check to the writer child."""
        return self.writer_process and not self.strict_schema

    def _check_spooled(self, items: list[_Item]) -> None:
        """The contract check of events that went to the spool (or were lost) instead of
        the writer child, when ``emit`` did not check them (:attr:`_checks_in_child`).
        Trio thread only (it may emit ``EVENT_SCHEMA_ERROR``)."""
        for it in items:
            problem = _check_contract(it)
            if problem is not None:
                self._schema_error(it.type, str(it.event_id), str(problem))

    def _child_schema_errors(self, errors: list[list[str]]) -> None:
        """Fold the writer child's ``schema_errors`` of one committed batch
        (``[[type, event_id, error_text], ...]``, :mod:`adapters.postgres._journal_child`).
        Trio thread only (it may emit ``EVENT_SCHEMA_ERROR``)."""
        for etype, event_id, error in errors:
            self._schema_error(str(etype), str(event_id), str(error))

    def _schema_error(self, etype: str, event_id: str, problem: str) -> None:
        """Count a stored event (type ``etype``, id ``event_id``) that does not match its
        payload class (``problem``: the error text); journal the first of each type as
        ``EVENT_SCHEMA_ERROR``."""
        self.stats.schema_errors += 1
        n = self.stats.schema_error_types.get(etype, 0)
        self.stats.schema_error_types[etype] = n + 1
        if n or etype == EventType.EVENT_SCHEMA_ERROR.value:
            return
        log.error("journal: event %s stored but off its contract: %s", event_id, problem)
        self.emit(
            Event.of(
                EventSchemaErrorRecorded(event_type=etype, event_id=event_id, error=problem[:2000]),
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
