"""The PostgreSQL journal: group commit from many trio tasks, spool to disk when the DB is down.

Usage::

    async with open_postgres_journal(dsn, spool_dir=home / "spool") as journal:
        journal.emit(event)                 # fire-and-forget: never blocks, never raises
        await journal.emit_durable(event)   # returns once committed (or fsynced to the spool)

How it works (docs/ARCHITECTURE.md §7):

- ``emit`` encodes the event at once (Decimal-safe JSON via :func:`tradebot.events.jsonable`),
  appends it to an in-memory buffer, updates the reader cache and wakes the writer task.
- One writer task (in a nursery owned by :func:`open_postgres_journal`) takes everything
  buffered (up to ``max_batch_events``) and writes it in ONE transaction on its own
  connection in a worker thread (``trio.to_thread.run_sync``; psycopg's sync API): an
  ``INSERT ... SELECT FROM unnest(...) ON CONFLICT (event_id, ts) DO NOTHING RETURNING``
  plus the relational projections of the newly inserted events
  (:mod:`adapters.postgres.projections`). While a batch commits, new events collect into the
  next batch: many tasks share one commit (group commit).
- Connection lost (server restart, ``pg_terminate_backend``, network): the writer reconnects
  once at once and retries the batch (idempotent: an ambiguous commit cannot duplicate). If
  that fails the journal goes *down*: it emits ``DB_UNAVAILABLE``, appends every batch to an
  append-only JSON-lines spool file (``<spool_dir>/journal-spool.jsonl``, fsynced) and
  retries the database every ``retry_interval_s`` (doubling up to ``max_retry_interval_s``).
  When the database is back it replays the spool in order (idempotent by event uuid),
  truncates it and emits ``DB_RECOVERED`` and ``SPOOL_REPLAYED``. Events emitted meanwhile
  wait behind the spool, so the journal's order is the emission order.
- Contract check: ``emit`` decodes every event's data into its payload class
  (:mod:`tradebot.events`). A mismatch is never a lost event: it is stored as is, counted
  (``JournalStats.schema_errors`` / ``schema_error_types``), logged, and the first one of
  each type is journaled as ``EVENT_SCHEMA_ERROR``; its projection is skipped. With
  ``strict_schema`` (tests: ``$TRADEBOT_STRICT_EVENTS=1``) ``emit`` raises
  :class:`~tradebot.events.EventSchemaError` instead and stores nothing.
- A spool left by a crashed process is replayed when the next journal opens. A spool is
  never discarded: beside it, ``journal-spool.meta.json`` names the database it belongs to
  (database name and the DSN without its password), and :func:`replay_spool_file`
  (``tradebot db replay-spool``) loads a spool into a database later.
- Embedded server (the bot's own child, ``server_restarter``): when the database cannot
  be reached, the prober restarts the server (at most ``max_server_restarts`` attempts per
  outage, each journaled ``DB_SERVER_RESTART`` with its outcome), then replays the spool
  and carries on. If it cannot, the events stay in the spool.
- On exit the context manager drains the buffer (to the DB or the spool) within
  ``drain_timeout_s``; whatever is still not durable then is written to the spool.

Replay determinism (docs/ARCHITECTURE.md §8): with ``durable_wait=False`` ``emit_durable``
returns as soon as the event is buffered, so no task waits on a worker thread (under
``MockClock`` autojump that would let virtual time jump). The :class:`JournalReader` methods
serve from a write-through cache (latest ``POSITION_SNAPSHOT`` per position, completed wave
ids) and only query the database (then the spool) on a miss, e.g. after a restart.
Snapshots are returned in their stored JSON form (Decimal values as strings).
"""

from __future__ import annotations

import json
import logging
import os
import threading
import uuid
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import attrs
import psycopg
import trio

from adapters.postgres.connection import connect
from adapters.postgres.projections import PROJECTIONS, ProjectionSkip, project
from tradebot.config import Config
from tradebot.errors import JournalError
from tradebot.events import (
    DbRecovered,
    DbServerRestart,
    DbUnavailable,
    Event,
    EventSchemaError,
    EventSchemaErrorRecorded,
    EventType,
    Payload,
    Severity,
    SpoolReplayed,
    TrackedPosition,
    decode_data,
    jsonable,
)

__all__ = [
    "SPOOL_FILE_NAME",
    "STRICT_EVENTS_ENV",
    "JournalStats",
    "PostgresJournal",
    "open_postgres_journal",
    "SPOOL_META_NAME",
    "read_spool_meta",
    "replay_spool_file",
    "spool_event_count",
    "spool_meta_path_for",
]

log = logging.getLogger("tradebot.journal")

SPOOL_FILE_NAME = "journal-spool.jsonl"
STRICT_EVENTS_ENV = "TRADEBOT_STRICT_EVENTS"
"""Environment variable: ``1`` makes ``emit`` raise on an event that does not match its
payload class (the default of ``strict_schema``; the test suite sets it)."""
SPOOL_META_NAME = "journal-spool.meta.json"
REJECTS_FILE_NAME = "journal-rejects.jsonl"

# One round trip per batch. The batch travels as ONE JSON array text (the same lines the
# spool holds), parsed by the server: adapting tens of thousands of uuid/timestamp
# parameters in Python cost twice the server's whole insert time. Returns (rows inserted,
# ids of inserted rows whose type has a projection): the projections must run exactly for
# the newly inserted events, and asking only for those keeps the result tiny.
_INSERT_EVENTS = """
WITH ins AS (
    INSERT INTO events (event_id, ts, type, severity, position_id, client_order_id, symbol,
                        correlation_id, data)
    SELECT (e.j->>'event_id')::uuid, (e.j->>'ts')::timestamptz, e.j->>'type',
           (e.j->>'severity')::event_severity, e.j->>'position_id', e.j->>'client_order_id',
           e.j->>'symbol', e.j->>'correlation_id', COALESCE(e.j->'data', '{}'::jsonb)
    FROM jsonb_array_elements(%s::jsonb) WITH ORDINALITY AS e(j, ord)
    ORDER BY e.ord
    ON CONFLICT (event_id, ts) DO NOTHING
    RETURNING event_id, type
)
SELECT count(*), array_agg(event_id::text) FILTER (WHERE type = ANY(%s::text[])) FROM ins
"""

_INSERT_ONE = """
INSERT INTO events (event_id, ts, type, severity, position_id, client_order_id, symbol,
                    correlation_id, data)
VALUES (%s, %s, %s, %s::event_severity, %s, %s, %s, %s, %s::jsonb)
ON CONFLICT (event_id, ts) DO NOTHING
RETURNING event_id
"""

_SEVERITIES = {s.value for s in Severity}

# Errors that say "this database cannot take events right now" (schema missing, no
# privilege, read-only replica, disk full) rather than "this event is bad": the journal
# treats them like a lost connection (spool, retry) instead of storing event by event.
_NOT_DATA_ERRORS: tuple[type[psycopg.Error], ...] = (
    psycopg.errors.UndefinedTable,
    psycopg.errors.UndefinedColumn,
    psycopg.errors.UndefinedFunction,
    psycopg.errors.UndefinedObject,
    psycopg.errors.InsufficientPrivilege,
    psycopg.errors.ReadOnlySqlTransaction,
    psycopg.errors.DiskFull,
    psycopg.errors.InFailedSqlTransaction,
)


@attrs.define
class JournalStats:
    """Counters of one journal (read them any time; they only grow).

    Attributes:
        emitted: events accepted by ``emit``/``emit_durable``.
        committed: events newly inserted into ``events`` by this journal.
        duplicates: events the database already had (replay after an ambiguous commit).
        batches: committed transactions.
        spooled: events written to the spool file.
        replayed: spooled events replayed into the database.
        db_failures: connection losses / failed connection attempts.
        projection_skipped: events stored but not projected (see ``projection_skip_reasons``).
        unstorable: events whose data the database refused; stored with a replacement
            ``data`` (``{"_unstorable": ...}``) or, failing that, in the rejects file.
        lost: events neither stored nor spooled (only when, at shutdown, the database is
            unreachable AND the spool cannot be written); always 0 otherwise.
        schema_errors: events stored whose data did not match their payload class
            (per type in ``schema_error_types``); always 0 for correct emitters.
        server_restarts: embedded-server restart attempts (``server_restarter``).
        by_type: events accepted, per ``events.type`` (the run report's counts when the
            database is gone at the end).
    """

    emitted: int = 0
    committed: int = 0
    duplicates: int = 0
    batches: int = 0
    spooled: int = 0
    replayed: int = 0
    db_failures: int = 0
    projection_skipped: int = 0
    unstorable: int = 0
    lost: int = 0
    schema_errors: int = 0
    projection_skip_reasons: dict[str, int] = attrs.field(factory=dict)
    schema_error_types: dict[str, int] = attrs.field(factory=dict)
    server_restarts: int = 0
    by_type: dict[str, int] = attrs.field(factory=dict)


@attrs.define(slots=True)
class _Item:
    """An encoded event ready for the database or the spool."""

    seq: int
    event_id: uuid.UUID
    ts: datetime
    type: str
    severity: str
    position_id: str | None
    client_order_id: str | None
    symbol: str | None
    correlation_id: str | None
    data_text: str
    jdata: Mapping[str, Any]
    payload: Payload | None = None  # decoded at emit (None: from the spool, decode later)

    def spool_line(self) -> str:
        head = json.dumps(
            {
                "event_id": str(self.event_id),
                "ts": self.ts.isoformat(),
                "type": self.type,
                "severity": self.severity,
                "position_id": self.position_id,
                "client_order_id": self.client_order_id,
                "symbol": self.symbol,
                "correlation_id": self.correlation_id,
            },
            ensure_ascii=False,
        )
        return head[:-1] + ',"data":' + self.data_text + "}\n"

    @classmethod
    def from_spool_line(cls, line: str) -> _Item:
        raw = json.loads(line)
        data = raw.get("data")
        data = data if isinstance(data, dict) else {"value": data}
        ts = datetime.fromisoformat(str(raw["ts"]))
        if ts.tzinfo is None:
            ts = ts.replace(tzinfo=UTC)
        return cls(
            seq=-1,
            event_id=uuid.UUID(str(raw["event_id"])),
            ts=ts,
            type=str(raw["type"]),
            severity=str(raw.get("severity") or "info"),
            position_id=raw.get("position_id"),
            client_order_id=raw.get("client_order_id"),
            symbol=raw.get("symbol"),
            correlation_id=raw.get("correlation_id"),
            data_text=json.dumps(data, separators=(",", ":"), ensure_ascii=False),
            jdata=data,
        )


def _clean_text(value: Any) -> str | None:
    if value is None:
        return None
    text = value if isinstance(value, str) else str(value)
    if "\x00" in text:
        text = text.replace("\x00", "\ufffd")
    return text


def _strip_nul(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, dict):
        return {_strip_nul(k): _strip_nul(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_strip_nul(v) for v in value]
    return value


def _encode_data(data: Any) -> tuple[str, Mapping[str, Any]]:
    j = jsonable(data)
    if not isinstance(j, dict):
        j = {"value": j}
    text = json.dumps(j, separators=(",", ":"), ensure_ascii=False)
    if "\\u0000" in text:  # PostgreSQL text/jsonb cannot hold NUL
        j = _strip_nul(j)
        text = json.dumps(j, separators=(",", ":"), ensure_ascii=False)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates
        text = text.encode("utf-8", "replace").decode("utf-8")
        j = json.loads(text)
    return text, j


class PostgresJournal:
    """Group-commit journal on PostgreSQL with a disk spool. Implements ``JournalPort`` and
    ``JournalReader`` (:mod:`tradebot.events`). Create it with :func:`open_postgres_journal`.

    Owns: one writer connection (used only from the writer's worker thread), one reader
    connection (cache misses), the spool file.
    """

    def __init__(
        self,
        dsn: str,
        *,
        spool_dir: Path,
        durable_wait: bool = True,
        clock: Callable[[], datetime] | None = None,
        max_batch_events: int = 5000,
        retry_interval_s: float = 0.5,
        max_retry_interval_s: float = 5.0,
        drain_timeout_s: float = 30.0,
        application_name: str = "tradebot-journal",
        connect_timeout_s: int = 5,
        strict_schema: bool | None = None,
        server_restarter: Callable[[], object] | None = None,
        max_server_restarts: int = 3,
    ) -> None:
        if max_batch_events < 1:
            raise ValueError("max_batch_events must be >= 1")
        self.connect_timeout_s = max(2, int(connect_timeout_s))
        self.dsn = dsn
        self.spool_dir = Path(spool_dir)
        self.spool_path = self.spool_dir / SPOOL_FILE_NAME
        self.spool_meta_path = self.spool_dir / SPOOL_META_NAME
        self.server_restarter = server_restarter
        self.max_server_restarts = max(0, int(max_server_restarts))
        self._restarts_this_outage = 0
        self._probe_connect_failed = False
        self._final_recovery_tried = False
        self.rejects_path = self.spool_dir / REJECTS_FILE_NAME
        self.durable_wait = durable_wait
        self._now = clock or (lambda: datetime.now(UTC))
        self.max_batch_events = max_batch_events
        self.retry_interval_s = retry_interval_s
        self.max_retry_interval_s = max_retry_interval_s
        self.drain_timeout_s = drain_timeout_s
        self.application_name = application_name
        self.stats = JournalStats()
        self.strict_schema = (
            os.environ.get(STRICT_EVENTS_ENV, "").strip().lower() in ("1", "true", "yes")
            if strict_schema is None
            else strict_schema
        )

        self._pending: deque[_Item] = deque()
        self._seq = 0
        self._durable_seq = 0
        self._waiters: deque[tuple[int, trio.Event]] = deque()
        self._wakeup = trio.Event()
        self._closing = False
        self._closed = False
        self._finished = trio.Event()
        self._probe_conn: psycopg.Connection[Any] | None = None
        self._probe_wakeup = trio.Event()
        # Shielded only once started: a caller cancelled during open stops the writer too.
        self._writer_scope = trio.CancelScope()
        self._finished_flag = threading.Event()
        self._inflight: list[_Item] = []
        self._conn: psycopg.Connection[Any] | None = None
        self._reader_conn: psycopg.Connection[Any] | None = None
        self._reader_lock = trio.Lock()
        self._up = False
        self._down_since: datetime | None = None
        self._spooled_since_down = 0

        # write-through reader cache (None = known absent)
        self._snapshots: dict[str, Mapping[str, Any] | None] = {}
        self._waves: dict[str, bool] = {}
        # True once the cache was preloaded from a reachable database at open: a miss is
        # then an authoritative "absent" and never waits on the database.
        self._cache_complete = False
        self.snapshot_preload_days = 30

    # -- JournalPort ---------------------------------------------------------------------

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

    # -- JournalReader -------------------------------------------------------------------

    async def latest_snapshot(self, position_id: str) -> Mapping[str, Any] | None:
        """``data`` (JSON form) of the newest ``POSITION_SNAPSHOT`` of the position, or None.

        Raises:
            JournalError: cache miss, the database unreachable and nothing in the spool.
        """
        if position_id in self._snapshots:
            return self._snapshots[position_id]
        if self._cache_complete:
            return None
        found = await self._read_miss(
            """SELECT data FROM events WHERE position_id = %s AND type = %s
               ORDER BY ts DESC, seq DESC LIMIT 1""",
            (position_id, EventType.POSITION_SNAPSHOT.value),
            lambda it: (
                it.type == EventType.POSITION_SNAPSHOT.value and it.position_id == position_id
            ),
        )
        if position_id not in self._snapshots:  # an emit may have raced the read
            self._snapshots[position_id] = found
        return self._snapshots[position_id]

    async def is_wave_processed(self, wave_id: str) -> bool:
        """True once a ``WAVE_COMPLETED`` event with ``data["wave_id"] == wave_id`` exists.

        Raises:
            JournalError: cache miss, the database unreachable and nothing in the spool.
        """
        if wave_id in self._waves:
            return self._waves[wave_id]
        if self._cache_complete:
            return False
        found = await self._read_miss(
            "SELECT data FROM events WHERE type = %s AND data->>'wave_id' = %s LIMIT 1",
            (EventType.WAVE_COMPLETED.value, wave_id),
            lambda it: (
                it.type == EventType.WAVE_COMPLETED.value
                and str(it.jdata.get("wave_id")) == wave_id
            ),
        )
        if not self._waves.get(wave_id):
            self._waves[wave_id] = found is not None
        return self._waves[wave_id]

    async def open_positions(self, account: str | None = None) -> list[TrackedPosition]:
        """:class:`tradebot.events.OpenPositionsReader` (see
        :mod:`adapters.postgres.open_positions`)."""
        from adapters.postgres.open_positions import open_positions_of

        return await open_positions_of(self, account)

    def cached_snapshots(self) -> Mapping[str, Mapping[str, Any]]:
        """The reader cache's newest snapshot data per position id (read-only use)."""
        return {k: v for k, v in self._snapshots.items() if v is not None}

    async def _read_miss(
        self, query: str, params: tuple[Any, ...], spool_match: Callable[[_Item], bool]
    ) -> Mapping[str, Any] | None:
        # Newer than anything in the DB: events still in the spool (not yet replayed).
        in_spool = await trio.to_thread.run_sync(self._scan_spool_sync, spool_match)
        if in_spool is not None:
            return in_spool
        async with self._reader_lock:
            try:
                return await trio.to_thread.run_sync(self._read_db_sync, query, params)
            except psycopg.Error as exc:
                raise JournalError(f"journal database unavailable for a cache miss: {exc}") from exc

    def _read_db_sync(self, query: str, params: tuple[Any, ...]) -> Mapping[str, Any] | None:
        for attempt in range(2):
            try:
                if self._reader_conn is None or self._reader_conn.closed:
                    self._reader_conn = connect(
                        self.dsn,
                        autocommit=True,
                        application_name=self.application_name + "-reader",
                        connect_timeout_s=self.connect_timeout_s,
                    )
                row = self._reader_conn.execute(query, params).fetchone()
                return None if row is None else dict(row[0])
            except psycopg.OperationalError:
                self._close_quietly(self._reader_conn)
                self._reader_conn = None
                if attempt:
                    raise
        return None  # pragma: no cover

    def _scan_spool_sync(self, match: Callable[[_Item], bool]) -> Mapping[str, Any] | None:
        found: Mapping[str, Any] | None = None
        try:
            with self.spool_path.open(encoding="utf-8") as f:
                for line in f:
                    try:
                        item = _Item.from_spool_line(line)
                    except Exception:
                        continue
                    if match(item):
                        found = item.jdata
        except FileNotFoundError:
            return None
        return found

    async def _preload(self) -> None:
        """Fill the reader cache from the database (completed waves; latest snapshots of
        live positions and of positions snapshotted in the last ``snapshot_preload_days``)."""
        try:
            waves, snaps = await trio.to_thread.run_sync(self._preload_sync, abandon_on_cancel=True)
        except psycopg.Error as exc:
            log.warning("journal cache preload failed (%s); misses will query the database", exc)
            return
        for w in waves:
            self._waves.setdefault(w, True)
        for pid, data in snaps.items():
            self._snapshots.setdefault(pid, data)
        self._cache_complete = True

    def _preload_sync(self) -> tuple[list[str], dict[str, Mapping[str, Any]]]:
        conn = self._ensure_conn_sync()
        waves = [
            str(r[0])
            for r in conn.execute(
                "SELECT DISTINCT data->>'wave_id' FROM events WHERE type = %s AND data ? 'wave_id'",
                (EventType.WAVE_COMPLETED.value,),
            )
        ]
        rows = conn.execute(
            """SELECT DISTINCT ON (position_id) position_id, data FROM events
               WHERE type = %s AND position_id IS NOT NULL
                 AND (ts >= now() - make_interval(days => %s)
                      OR position_id IN (SELECT position_id FROM positions
                                         WHERE status IN ('OPENING', 'ACTIVE', 'CLOSING')))
               ORDER BY position_id, ts DESC, seq DESC""",
            (EventType.POSITION_SNAPSHOT.value, self.snapshot_preload_days),
        ).fetchall()
        return waves, {str(r[0]): dict(r[1]) for r in rows}

    def _cache(self, item: _Item) -> None:
        if item.type == EventType.POSITION_SNAPSHOT.value and item.position_id is not None:
            self._snapshots[item.position_id] = item.jdata
        elif item.type == EventType.WAVE_COMPLETED.value and "wave_id" in item.jdata:
            self._waves[str(item.jdata["wave_id"])] = True

    # -- contract check ------------------------------------------------------------------

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

    # -- encoding ------------------------------------------------------------------------

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

    # -- writer task ---------------------------------------------------------------------

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """The writer loop; :func:`open_postgres_journal` runs it. Returns after ``aclose``.

        While the database is down a separate prober task retries the connection (with
        backoff) so that a hanging connect never delays spooling: durable waits stay as
        short as an fsync. When the prober has a working connection, the writer adopts it,
        replays the spool and goes back to writing to the database.
        """
        try:
            if await self._recover():
                await self._preload()
            self._writer_scope.shield = True
            task_status.started()
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._probe_loop)
                await self._write_loop()
                nursery.cancel_scope.cancel()
        finally:
            self._close_quietly(self._probe_conn)
            self._probe_conn = None
            self._finished.set()
            self._finished_flag.set()

    async def _write_loop(self) -> None:
        while True:
            if not self._up and self._probe_conn is not None:
                self._close_quietly(self._conn)
                self._conn, self._probe_conn = self._probe_conn, None
                if not await self._recover():
                    self._probe_wakeup.set()  # replay failed half-way: keep probing
                continue
            if not self._pending:
                if self._closing:
                    if (
                        not self._up
                        and self.server_restarter is not None
                        and not self._final_recovery_tried
                    ):
                        # The embedded server may be back (restarted) without the prober
                        # having noticed yet: one last try, so the spool goes home now.
                        self._final_recovery_tried = True
                        if await self._recover():
                            continue
                    return
                await self._wakeup.wait()
                self._wakeup = trio.Event()
                continue
            self._wakeup = trio.Event()
            n = min(len(self._pending), self.max_batch_events)
            batch = [self._pending.popleft() for _ in range(n)]
            self._inflight = batch
            if self._up:
                ok = await trio.to_thread.run_sync(
                    self._write_with_retry_sync, batch, abandon_on_cancel=True
                )
                if not ok:
                    self._go_down("connection lost")
            if not self._up:
                try:
                    await trio.to_thread.run_sync(
                        self._spool_sync, batch, True, abandon_on_cancel=True
                    )
                except OSError as exc:
                    # Disk full / unwritable spool: keep the batch in memory (front of the
                    # queue, order kept), do not report it durable, retry later.
                    log.critical(
                        "journal spool write failed (%s); holding %d events in memory",
                        exc,
                        len(batch),
                    )
                    self._pending.extendleft(reversed(batch))
                    self._inflight = []
                    if self._closing:
                        return
                    with trio.move_on_after(self.retry_interval_s):
                        while self._probe_conn is None:  # noqa: ASYNC110 - or the DB returns
                            await trio.sleep(self.retry_interval_s / 10)
                    continue
            self._inflight = []
            self._mark_durable(batch[-1].seq)

    async def _probe_loop(self) -> None:
        """While down: try to connect every ``retry_interval_s`` (doubling up to
        ``max_retry_interval_s``); hand a working connection to the writer."""
        retry_s = self.retry_interval_s
        while True:
            if self._up or self._probe_conn is not None:
                retry_s = self.retry_interval_s
                await self._probe_wakeup.wait()
                self._probe_wakeup = trio.Event()
                continue
            await trio.sleep(retry_s)
            if self._up or self._probe_conn is not None:
                continue
            conn = await trio.to_thread.run_sync(self._probe_sync, abandon_on_cancel=True)
            if conn is None:
                if (
                    self.server_restarter is not None
                    and self._probe_connect_failed
                    and self._restarts_this_outage < self.max_server_restarts
                ):
                    await self._restart_server()
                    retry_s = self.retry_interval_s
                    continue
                retry_s = min(retry_s * 2, self.max_retry_interval_s)
                continue
            self._probe_conn = conn
            self._wakeup.set()

    async def _restart_server(self) -> None:
        """One bounded attempt to bring the embedded server back, journaled."""
        self._restarts_this_outage += 1
        self.stats.server_restarts += 1
        attempt = self._restarts_this_outage
        error = ""
        restarter = self.server_restarter
        assert restarter is not None
        try:
            await trio.to_thread.run_sync(restarter, abandon_on_cancel=True)
        except Exception as exc:  # the server could not be started: say why, keep spooling
            error = f"{type(exc).__name__}: {exc}"[:500]
        ok = not error
        gave_up = not ok and attempt >= self.max_server_restarts
        log.warning(
            "journal: embedded database server restart %d/%d %s%s",
            attempt,
            self.max_server_restarts,
            "succeeded" if ok else f"failed ({error})",
            "; giving up, events stay in the spool" if gave_up else "",
        )
        self.emit(
            Event.of(
                DbServerRestart(
                    attempt=attempt,
                    max_attempts=self.max_server_restarts,
                    ok=ok,
                    error=error or None,
                    gave_up=gave_up,
                    spool_path=str(self.spool_path),
                ),
                self._now(),
                severity=Severity.WARNING if ok else Severity.ERROR,
            )
        )

    def _probe_sync(self) -> psycopg.Connection[Any] | None:
        conn: psycopg.Connection[Any] | None = None
        self._probe_connect_failed = False
        try:
            conn = connect(
                self.dsn,
                autocommit=True,
                application_name=self.application_name,
                connect_timeout_s=self.connect_timeout_s,
            )
            row = conn.execute("SELECT to_regclass('events') IS NOT NULL").fetchone()
            if row and row[0]:
                return conn
            log.warning(
                "journal database reachable but table events missing: run `tradebot db migrate`"
            )
        except Exception as exc:
            self._probe_connect_failed = conn is None
            self.stats.db_failures += 1
            log.debug("journal probe failed: %s", exc)
        self._close_quietly(conn)
        return None

    def _mark_durable(self, seq: int) -> None:
        if seq > self._durable_seq:
            self._durable_seq = seq
        while self._waiters and self._waiters[0][0] <= self._durable_seq:
            self._waiters.popleft()[1].set()
        # waiters are appended in seq order except flush(); release any that are covered
        if self._waiters and any(s <= self._durable_seq for s, _ in self._waiters):
            keep: deque[tuple[int, trio.Event]] = deque()
            for s, ev in self._waiters:
                if s <= self._durable_seq:
                    ev.set()
                else:
                    keep.append((s, ev))
            self._waiters = keep

    def _go_down(self, reason: str) -> None:
        if not self._up and self._down_since is not None:
            return
        self._up = False
        self._down_since = self._now()
        self._spooled_since_down = 0
        self._probe_wakeup.set()
        log.warning("journal database unavailable (%s); spooling to %s", reason, self.spool_path)
        self.emit(
            Event.of(
                DbUnavailable(reason=reason, spool_path=str(self.spool_path)),
                self._now(),
                severity=Severity.ERROR,
            )
        )

    async def _recover(self) -> bool:
        """Connect; replay the spool; mark up. Returns True when the database is usable."""
        was_down = self._down_since is not None
        ok, replayed = await trio.to_thread.run_sync(self._recover_sync, abandon_on_cancel=True)
        if not ok:
            if self._down_since is None:
                self._go_down("cannot connect")
            return False
        self._up = True
        self._restarts_this_outage = 0
        if was_down or replayed:
            down_for_s = (
                (self._now() - self._down_since).total_seconds()
                if self._down_since is not None
                else None
            )
            self.emit(
                Event.of(
                    DbRecovered(
                        down_for_s=None if down_for_s is None else round(down_for_s, 3),
                        spooled=self._spooled_since_down,
                    ),
                    self._now(),
                )
            )
            if replayed:
                self.emit(
                    Event.of(
                        SpoolReplayed(events=replayed, spool_path=str(self.spool_path)),
                        self._now(),
                    )
                )
            log.info("journal database back; replayed %d spooled events", replayed)
        self._down_since = None
        return True

    # -- worker-thread side (never touches trio state except plain counters) --------------

    def _ensure_conn_sync(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed or self._conn.broken:
            self._close_quietly(self._conn)
            self._conn = None
            self._conn = connect(
                self.dsn,
                autocommit=True,
                application_name=self.application_name,
                connect_timeout_s=self.connect_timeout_s,
            )
        return self._conn

    @staticmethod
    def _close_quietly(conn: psycopg.Connection[Any] | None) -> None:
        if conn is not None:
            try:
                conn.close()
            except Exception:
                pass

    def _write_with_retry_sync(self, batch: list[_Item]) -> bool:
        """Write ``batch``; on a connection failure reconnect once and retry. False = down."""
        for attempt in range(2):
            try:
                self._write_sync(self._ensure_conn_sync(), batch)
                return True
            except Exception as exc:
                self.stats.db_failures += 1
                log.warning("journal write failed (attempt %d): %s", attempt + 1, exc)
                self._close_quietly(self._conn)
                self._conn = None
        return False

    def _write_sync(self, conn: psycopg.Connection[Any], batch: list[_Item]) -> None:
        """One transaction: events + projections. Connection errors propagate."""
        try:
            with conn.transaction():
                inserted = self._insert_events_sync(conn, batch)
                self._project_sync(conn, batch, inserted)
        except psycopg.Error as exc:
            if isinstance(exc, (psycopg.OperationalError, *_NOT_DATA_ERRORS)):
                raise
            if conn.broken or conn.closed:
                raise
            # A data problem in the bulk insert (should not happen: values are sanitized).
            # Store event by event so one bad event cannot block the journal.
            log.error("journal bulk insert refused (%s); storing event by event", exc)
            with conn.transaction():
                inserted = self._insert_one_by_one_sync(conn, batch)
                self._project_sync(conn, batch, inserted)
        self.stats.batches += 1

    def _insert_events_sync(
        self, conn: psycopg.Connection[Any], batch: list[_Item]
    ) -> set[uuid.UUID]:
        """Bulk insert; returns the ids of the newly inserted events that have a projection."""
        payload = "[" + ",".join(it.spool_line()[:-1] for it in batch) + "]"
        projected = sorted({it.type for it in batch if it.type in PROJECTIONS})
        row = conn.execute(_INSERT_EVENTS, [payload, projected]).fetchone()
        n_inserted = int(row[0]) if row else 0
        ids = {uuid.UUID(x) for x in (row[1] or [])} if row else set()
        self.stats.committed += n_inserted
        self.stats.duplicates += len(batch) - n_inserted
        return ids

    def _insert_one_by_one_sync(
        self, conn: psycopg.Connection[Any], batch: list[_Item]
    ) -> set[uuid.UUID]:
        inserted: set[uuid.UUID] = set()
        for it in batch:
            params = [
                it.event_id,
                it.ts,
                it.type,
                it.severity,
                it.position_id,
                it.client_order_id,
                it.symbol,
                it.correlation_id,
                it.data_text,
            ]
            try:
                with conn.transaction():
                    row = conn.execute(_INSERT_ONE, params).fetchone()
            except psycopg.OperationalError:
                raise
            except psycopg.Error as exc:
                self.stats.unstorable += 1
                params[8] = json.dumps(
                    {
                        "_unstorable": f"{type(exc).__name__}: {exc}"[:2000],
                        "_data_repr": it.data_text[:10000],
                    }
                )
                try:
                    with conn.transaction():
                        row = conn.execute(_INSERT_ONE, params).fetchone()
                except psycopg.OperationalError:
                    raise
                except psycopg.Error:
                    self._append_lines_sync(self.rejects_path, [it.spool_line()], fsync=True)
                    continue
            if row is not None:
                inserted.add(row[0])
                self.stats.committed += 1
            else:
                self.stats.duplicates += 1
        return inserted

    def _project_sync(
        self, conn: psycopg.Connection[Any], batch: list[_Item], inserted: set[uuid.UUID]
    ) -> None:
        todo = [it for it in batch if it.type in PROJECTIONS and it.event_id in inserted]
        if not todo:
            return
        skipped: list[tuple[_Item, str]] = []
        try:
            with conn.transaction(), conn.cursor() as cur:  # savepoint
                for it in todo:
                    try:
                        project(cur, it, it.payload)
                    except ProjectionSkip as skip:
                        skipped.append((it, str(skip)))
            for it, reason in skipped:
                self._skipped(it, reason)
            return
        except psycopg.OperationalError:
            raise
        except psycopg.Error:
            if conn.broken or conn.closed:
                raise
        # Something in the batch violated a constraint: one savepoint per event.
        for it in todo:
            try:
                with conn.transaction(), conn.cursor() as cur:
                    project(cur, it, it.payload)
            except ProjectionSkip as skip:
                self._skipped(it, str(skip))
            except psycopg.OperationalError:
                raise
            except psycopg.Error as exc:
                if conn.broken or conn.closed:
                    raise
                self._skipped(
                    it, f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
                )

    def _skipped(self, it: _Item, reason: str) -> None:
        self.stats.projection_skipped += 1
        key = f"{it.type}: {reason}"
        n = self.stats.projection_skip_reasons.get(key, 0)
        self.stats.projection_skip_reasons[key] = n + 1
        if n == 0:
            log.warning("journal: event %s stored but not projected (%s)", it.event_id, key)

    def _append_lines_sync(self, path: Path, lines: list[str], *, fsync: bool) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8") as f:
            f.write("".join(lines))
            f.flush()
            if fsync:
                os.fsync(f.fileno())

    def _spool_sync(self, batch: list[_Item], fsync: bool = True) -> None:
        if not self.spool_meta_path.exists():
            # wall clock: this runs on the writer's thread (the journal clock may be trio's)
            _write_spool_meta(self.spool_meta_path, self.dsn, datetime.now(UTC))
        self._append_lines_sync(self.spool_path, [it.spool_line() for it in batch], fsync=fsync)
        self.stats.spooled += len(batch)
        self._spooled_since_down += len(batch)

    def _recover_sync(self) -> tuple[bool, int]:
        try:
            conn = self._ensure_conn_sync()
            row = conn.execute("SELECT to_regclass('events') IS NOT NULL").fetchone()
            if not (row and row[0]):
                raise JournalError("table events missing: run `tradebot db migrate`")
        except Exception as exc:
            log.warning("journal database not usable: %s", exc)
            self.stats.db_failures += 1
            self._close_quietly(self._conn)
            self._conn = None
            return False, 0
        try:
            return True, self._replay_spool_sync(conn)
        except Exception as exc:
            self.stats.db_failures += 1
            log.warning("journal spool replay interrupted: %s", exc)
            self._close_quietly(self._conn)
            self._conn = None
            return False, 0

    def _replay_spool_sync(self, conn: psycopg.Connection[Any]) -> int:
        if not self.spool_path.exists() or self.spool_path.stat().st_size == 0:
            return 0
        replayed = 0
        chunk: list[_Item] = []
        with self.spool_path.open(encoding="utf-8") as f:
            for line in f:
                if not line.strip():
                    continue
                if not line.endswith("\n"):
                    # torn final line (crash while appending): keep it for a human
                    self._append_lines_sync(self.rejects_path, [line + "\n"], fsync=True)
                    continue
                try:
                    chunk.append(_Item.from_spool_line(line))
                except Exception:
                    self._append_lines_sync(self.rejects_path, [line], fsync=True)
                    continue
                if len(chunk) >= self.max_batch_events:
                    self._write_sync(conn, chunk)
                    replayed += len(chunk)
                    chunk = []
        if chunk:
            self._write_sync(conn, chunk)
            replayed += len(chunk)
        # Everything is committed: the spool can go. (A crash right here replays it again,
        # which is harmless: ON CONFLICT (event_id, ts) DO NOTHING.)
        with self.spool_path.open("r+") as f:
            f.truncate(0)
            os.fsync(f.fileno())
        self.spool_meta_path.unlink(missing_ok=True)
        self.stats.replayed += replayed
        return replayed

    # -- shutdown ------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Drain: write everything buffered (DB or spool), then close connections."""
        if self._closed:
            return
        self._closing = True
        self._wakeup.set()
        with trio.CancelScope(shield=True):
            if not self._finished.is_set():
                # Wait in real time, not on the trio clock: under MockClock autojump a trio
                # deadline would expire at once while the writer waits on its thread.
                await trio.to_thread.run_sync(
                    self._finished_flag.wait, self.drain_timeout_s, abandon_on_cancel=True
                )
                await trio.lowlevel.checkpoint()
            if not self._finished.is_set() or self._pending or self._inflight:
                # Writer stuck (DB hung): keep what is not durable on disk; replay is idempotent.
                leftover = list(self._inflight) + list(self._pending)
                self._pending.clear()
                if leftover:
                    try:
                        self._spool_sync(leftover, fsync=True)
                    except OSError as exc:
                        self.stats.lost += len(leftover)
                        log.critical(
                            "journal: database and spool both unavailable at shutdown "
                            "(%s); %d events lost",
                            exc,
                            len(leftover),
                        )
            self._closed = True
            self._writer_scope.cancel()
            self._mark_durable(self._seq)
            conn, reader = self._conn, self._reader_conn
            self._conn = self._reader_conn = None
            await trio.to_thread.run_sync(self._close_quietly, conn, abandon_on_cancel=True)
            await trio.to_thread.run_sync(self._close_quietly, reader, abandon_on_cancel=True)


@asynccontextmanager
async def open_postgres_journal(
    dsn: str,
    *,
    spool_dir: Path,
    durable_wait: bool = True,
    clock: Callable[[], datetime] | None = None,
    max_batch_events: int = 5000,
    retry_interval_s: float = 0.5,
    max_retry_interval_s: float = 5.0,
    drain_timeout_s: float = 30.0,
    application_name: str = "tradebot-journal",
    connect_timeout_s: int = 5,
    strict_schema: bool | None = None,
    server_restarter: Callable[[], object] | None = None,
    max_server_restarts: int = 3,
) -> AsyncIterator[PostgresJournal]:
    """Open the journal, run its writer task, drain it on exit.

    Args:
        dsn: database with the migrations applied (``tradebot db migrate``).
        spool_dir: directory for the spool file (created if missing), e.g.
            ``$TRADEBOT_HOME/spool`` (config ``journal.spool_dir``).
        durable_wait: False → ``emit_durable`` returns once buffered (virtual-time runs).
        clock: ``() -> aware UTC datetime`` for the journal's own events (DB_UNAVAILABLE…).
        max_batch_events: most events per transaction (>= 1).
        retry_interval_s / max_retry_interval_s: reconnect backoff while down.
        drain_timeout_s: how long closing may wait for the database before spooling.
        application_name: the writer's ``application_name`` in ``pg_stat_activity``.
        connect_timeout_s: libpq connect timeout (>= 2 s); an unreachable host blocks the
            open (once) and the background prober, never spooling.
        strict_schema: ``emit`` raises on an event off its payload class instead of
            storing and counting it; None = ``$TRADEBOT_STRICT_EVENTS`` (see the module
            docstring).
        server_restarter: for the embedded server (the bot's own child): a blocking
            callable that starts it again (raises if it cannot), e.g.
            ``lambda: restart_embedded_server(home)``; called by the prober when a
            connection attempt fails, at most ``max_server_restarts`` times per outage.

    Does not raise when the database is down at open: the journal starts in spool mode.
    """
    journal = PostgresJournal(
        dsn,
        spool_dir=spool_dir,
        durable_wait=durable_wait,
        clock=clock,
        max_batch_events=max_batch_events,
        retry_interval_s=retry_interval_s,
        max_retry_interval_s=max_retry_interval_s,
        drain_timeout_s=drain_timeout_s,
        application_name=application_name,
        connect_timeout_s=connect_timeout_s,
        strict_schema=strict_schema,
        server_restarter=server_restarter,
        max_server_restarts=max_server_restarts,
    )
    await trio.Path(spool_dir).mkdir(parents=True, exist_ok=True)
    async with trio.open_nursery() as nursery:
        await nursery.start(_run_journal, journal)
        try:
            yield journal
        finally:
            await journal.aclose()
            nursery.cancel_scope.cancel()


@asynccontextmanager
async def open_journal_from_config(
    cfg: Config,
    *,
    durable_wait: bool = True,
    clock: Callable[[], datetime] | None = None,
    apply_migrations: bool = True,
) -> AsyncIterator[PostgresJournal]:
    """:func:`open_postgres_journal` configured from ``[database]`` and ``[journal]``.

    Resolves the DSN (``database.dsn``, ``$TRADEBOT_DSN``, else the embedded server under
    ``database.home``/``$TRADEBOT_HOME``, started if needed) and applies pending migrations
    (``apply_migrations``). If the database is unreachable the journal still opens, in
    spool mode. Spool: ``journal.spool_dir`` or ``<home>/spool``.
    """
    from adapters.postgres.embedded import is_embedded, resolve_dsn, restart_embedded_server
    from adapters.postgres.migrations import migrate

    home = cfg.home_path()
    dsn = await trio.to_thread.run_sync(lambda: resolve_dsn(cfg.database.dsn or None, home=home))
    restarter = (lambda: restart_embedded_server(home)) if is_embedded(dsn, home) else None
    if apply_migrations:
        try:
            await trio.to_thread.run_sync(migrate, dsn)
        except psycopg.OperationalError as exc:
            log.warning("cannot migrate now (%s); the journal starts in spool mode", exc)
    j = cfg.journal
    async with open_postgres_journal(
        dsn,
        spool_dir=cfg.spool_path(),
        durable_wait=durable_wait,
        clock=clock,
        max_batch_events=j.max_batch_events,
        retry_interval_s=j.retry_interval_s,
        max_retry_interval_s=j.max_retry_interval_s,
        drain_timeout_s=j.drain_timeout_s,
        application_name=f"tradebot-journal:{cfg.bot.account}"[:63],
        server_restarter=restarter,
    ) as journal:
        yield journal


async def _run_journal(
    journal: PostgresJournal, *, task_status: Any = trio.TASK_STATUS_IGNORED
) -> None:
    # Shielded: cancelling the caller must not interrupt a commit or lose the buffer; the
    # writer stops when aclose() has drained it (or cancels this scope after the timeout).
    with journal._writer_scope:
        await journal.run(task_status=task_status)


# -- spool files outside a running journal -------------------------------------------------


def _redacted(dsn: str) -> tuple[str, str]:
    """(database name, DSN without password) of ``dsn``; never raises."""
    try:
        from psycopg import conninfo

        params = conninfo.conninfo_to_dict(dsn)
        params.pop("password", None)
        return str(params.get("dbname") or ""), conninfo.make_conninfo(**params)  # type: ignore[arg-type]
    except Exception:
        return "", ""


def _write_spool_meta(path: Path, dsn: str, now: datetime) -> None:
    database, redacted = _redacted(dsn)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        json.dumps(
            {"database": database, "dsn": redacted, "first_spooled_at": now.isoformat()},
            indent=2,
        )
        + "\n",
        encoding="utf-8",
    )


def spool_meta_path_for(spool_path: Path) -> Path:
    """``X.jsonl`` → ``X.meta.json`` (``journal-spool.jsonl`` → ``journal-spool.meta.json``)."""
    return spool_path.with_name(spool_path.name.removesuffix(".jsonl") + ".meta.json")


def read_spool_meta(spool_path: Path) -> dict[str, Any]:
    """The ``journal-spool.meta.json`` beside ``spool_path`` (``{}`` when absent/unreadable):
    ``database``, ``dsn`` (no password), ``first_spooled_at``."""
    meta = spool_meta_path_for(spool_path)
    try:
        raw = json.loads(meta.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return raw if isinstance(raw, dict) else {}


def spool_event_count(spool_path: Path) -> int:
    """Lines (events) in a spool file; 0 when it does not exist."""
    try:
        with spool_path.open("rb") as fh:
            return sum(1 for line in fh if line.strip())
    except FileNotFoundError:
        return 0


def replay_spool_file(dsn: str, spool_path: Path, *, max_batch_events: int = 5000) -> int:
    """Load a spool file into the journal database ``dsn`` (``tradebot db replay-spool``).

    Idempotent (event uuid primary key: events already stored are skipped), in file order,
    with the relational projections; a torn or unparsable line goes to
    ``journal-rejects.jsonl`` beside the spool. On success the file is emptied and its
    ``.meta.json`` removed.

    Returns:
        The number of events replayed (stored or already present).

    Raises:
        psycopg.Error: the database cannot be reached or refused the batch (the spool is
            left as it was).
        JournalError: table ``events`` missing (run ``tradebot db migrate``).
    """
    j = PostgresJournal(dsn, spool_dir=spool_path.parent, max_batch_events=max_batch_events)
    j.spool_path = spool_path
    j.spool_meta_path = spool_meta_path_for(spool_path)
    try:
        conn = j._ensure_conn_sync()
        row = conn.execute("SELECT to_regclass('events') IS NOT NULL").fetchone()
        if not (row and row[0]):
            raise JournalError("table events missing: run `tradebot db migrate`")
        return j._replay_spool_sync(conn)
    finally:
        j._close_quietly(j._conn)
