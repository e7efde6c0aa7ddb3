"""The journal's state and its worker-thread side: the constructor (every setting and
counter), the writer connection, one batch written in one transaction (with the
projections; event by event when a batch is refused for its data) — here, or with
``writer_process`` in the writer child (:mod:`adapters.postgres._journal_child`, the same
code) — the spool appends and the spool replay. Runs in ``trio.to_thread``; never touches
trio state except plain counters."""

from __future__ import annotations

import json
import os
import threading
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import trio

from adapters.postgres._journal_process import WriterProcessError, _WriterProcess
from adapters.postgres._journal_records import (
    _INSERT_EVENTS,
    _INSERT_ONE,
    _NOT_DATA_ERRORS,
    REJECTS_FILE_NAME,
    SPOOL_FILE_NAME,
    SPOOL_META_NAME,
    STRICT_EVENTS_ENV,
    JournalStats,
    _Item,
    _write_spool_meta,
    log,
)
from adapters.postgres.connection import connect
from adapters.postgres.projections import PROJECTIONS, ProjectionSkip, project
from tradebot.errors import JournalError

__all__ = ["_JournalStore"]


class _JournalStore:
    """State and synchronous I/O of :class:`adapters.postgres.journal.PostgresJournal`
    (its docstring and :func:`~adapters.postgres.journal.open_postgres_journal` give the
    settings)."""

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
        writer_process: bool = False,
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
        self.writer_process = writer_process
        self._writer_proc: _WriterProcess | None = None
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
        # signal id -> earliest wave_ts it was journaled in (signal_waves_since); pruned
        # to SIGNAL_MEMORY behind the newest wave and at most SIGNAL_MEMORY_MAX ids.
        self._signal_waves: dict[str, datetime] = {}
        self._signal_order: deque[tuple[datetime, str]] = deque()
        self._signal_newest: datetime | None = None

    # -- worker-thread side (never touches trio state except plain counters) -------------------

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

    def _write_with_retry_sync(self, batch: list[_Item]) -> list[list[str]] | None:
        """Write ``batch``; on a connection failure reconnect once and retry.

        With ``writer_process`` the writer child writes it; a failure there (the child's
        connection lost, the child dead) counts and retries exactly like a failure here,
        and a dead child is started again by the retry.

        Returns:
            None: not written (the database is down). Else the batch's events off their
            contract as the writer child reported them (``[[type, event_id, error], ...]``;
            always empty without ``writer_process``): the caller, on the trio thread,
            folds them into :attr:`stats` (``_child_schema_errors``).
        """
        for attempt in range(2):
            try:
                if self.writer_process:
                    return self._write_in_child_sync(batch)
                self._write_sync(self._ensure_conn_sync(), batch)
                return []
            except Exception as exc:
                self.stats.db_failures += 1
                log.warning("journal write failed (attempt %d): %s", attempt + 1, exc)
                self._close_quietly(self._conn)
                self._conn = None
        return None

    # -- the writer process (``writer_process=True``) -------------------------------------------

    def _child(self) -> _WriterProcess:
        if self._writer_proc is None:
            self._writer_proc = _WriterProcess(
                {
                    "dsn": self.dsn,
                    "application_name": self.application_name,
                    "connect_timeout_s": self.connect_timeout_s,
                    "spool_dir": str(self.spool_dir),
                    "max_batch_events": self.max_batch_events,
                }
            )
        return self._writer_proc

    @property
    def writer_pid(self) -> int | None:
        """The writer child's pid (None: no ``writer_process``, or no child running)."""
        return self._writer_proc.pid if self._writer_proc is not None else None

    def _start_child_sync(self) -> None:
        """Start the writer child ahead of the first batch (a failure is retried there)."""
        if not self.writer_process:
            return
        child = self._child()
        try:
            before = child.starts
            child.start()
            self.stats.writer_starts += child.starts - before
        except WriterProcessError as exc:
            log.warning("%s", exc)

    def _write_in_child_sync(self, batch: list[_Item]) -> list[list[str]]:
        """Ship ``batch`` to the writer child and fold its reply's counters into
        :attr:`stats`.

        Returns:
            The reply's ``schema_errors`` (``[[type, event_id, error_text], ...]``, the
            committed batch's events off their contract), left for the trio thread to
            count: counting them may journal an ``EVENT_SCHEMA_ERROR``, and ``emit`` is
            not for worker threads.

        Raises:
            WriterProcessError: not committed (the child's connection failed, or the child
                died / its pipe broke; a dead child is started again by the next call).
        """
        child = self._child()
        before = child.starts
        try:
            reply = child.write([it.spool_line() for it in batch])
        finally:
            self.stats.writer_starts += child.starts - before
        for level, message in reply.get("logs") or ():
            log.log(int(level), "%s", message)
        if not reply.get("ok"):
            raise WriterProcessError(str(reply.get("error") or "journal writer process failed"))
        stats = self.stats
        stats.committed += int(reply["committed"])
        stats.duplicates += int(reply["duplicates"])
        stats.unstorable += int(reply["unstorable"])
        stats.batches += 1
        reasons = stats.projection_skip_reasons
        for key, (n, event_id) in (reply.get("skips") or {}).items():
            seen = reasons.get(key, 0)
            reasons[key] = seen + int(n)
            stats.projection_skipped += int(n)
            if seen == 0:
                log.warning("journal: event %s stored but not projected (%s)", event_id, key)
        return [[str(t), str(i), str(e)] for t, i, e in reply.get("schema_errors") or ()]

    def _close_child_sync(self, timeout_s: float = 5.0) -> None:
        """Close the writer child (stdin closed: it exits; killed after ``timeout_s``)."""
        if self._writer_proc is not None:
            self._writer_proc.close(timeout_s)

    # -- one batch, one transaction ----------------------------------------------------------

    def _write_sync(
        self, conn: psycopg.Connection[Any], batch: list[_Item], lines: list[str] | None = None
    ) -> None:
        """One transaction: events + projections. Connection errors propagate.

        ``lines``: the batch's spool lines when the caller has them already (the writer
        child receives exactly those)."""
        try:
            with conn.transaction():
                inserted = self._insert_events_sync(conn, batch, lines)
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
        self, conn: psycopg.Connection[Any], batch: list[_Item], lines: list[str] | None = None
    ) -> set[uuid.UUID]:
        """Bulk insert; returns the ids of the newly inserted events that have a projection."""
        if lines is None:
            lines = [it.spool_line() for it in batch]
        payload = "[" + ",".join(line[:-1] for line in lines) + "]"
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
            replayed = self._replay_spool_sync(conn)
        except Exception as exc:
            self.stats.db_failures += 1
            log.warning("journal spool replay interrupted: %s", exc)
            self._close_quietly(self._conn)
            self._conn = None
            return False, 0
        self._start_child_sync()
        return True, replayed

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
