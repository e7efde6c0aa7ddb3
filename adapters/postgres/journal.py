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
- ``writer_process=True`` (``tradebot paper``): the same transaction is written by a
  child Python process (:mod:`adapters.postgres._journal_child`) on its own connection,
  with its own GIL. The worker thread only ships the batch's spool lines down a pipe and
  waits for the counters (blocked in a read: the GIL is free for the replay). A failure
  there (the child's connection lost, the child killed) is a failed write like any other
  (reconnect/retry once, then down and spool); a dead child is started again by the next
  attempt; the child exits when its stdin closes, so a killed bot leaves no writer behind.
  Recovery (the spool replay) and the prober stay on the parent's own connection.
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
  :class:`~tradebot.events.EventSchemaError` instead and stores nothing. With
  ``writer_process`` and not ``strict_schema`` (``tradebot paper``) the check is off the
  emitting thread: the writer child decodes each event of a batch (the projection reuses
  the payload) and lists the mismatches in its reply; the writer task counts them, on the
  trio thread, when the batch is committed, so that batch's ``EVENT_SCHEMA_ERROR`` comes
  after it instead of right after the bad event. Events that never reach the child (spooled
  while down, spooled at or after close) are checked by the writer task or ``aclose`` once
  spooled; each event is checked exactly once.
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

import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
import trio

from adapters.postgres._journal_emit import _JournalEmit
from adapters.postgres._journal_records import (
    SPOOL_FILE_NAME,
    SPOOL_META_NAME,
    STRICT_EVENTS_ENV,
    JournalStats,
    log,
    read_spool_meta,
    spool_event_count,
    spool_meta_path_for,
)
from adapters.postgres._journal_records import _encode_data as _encode_data
from adapters.postgres._journal_records import _Item as _Item
from adapters.postgres.connection import connect
from tradebot.config import Config
from tradebot.errors import JournalError
from tradebot.events import (
    DbRecovered,
    DbServerRestart,
    DbUnavailable,
    Event,
    Severity,
    SpoolReplayed,
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


class PostgresJournal(_JournalEmit):
    """Group-commit journal on PostgreSQL with a disk spool. Implements ``JournalPort`` and
    ``JournalReader`` (:mod:`tradebot.events`). Create it with :func:`open_postgres_journal`.

    Owns: one writer connection (used only from the writer's worker thread), one reader
    connection (cache misses), the spool file.
    """

    # -- writer task ---------------------------------------------------------------------------

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
                schema_errors = await trio.to_thread.run_sync(
                    self._write_with_retry_sync, batch, abandon_on_cancel=True
                )
                if schema_errors is None:
                    self._go_down("connection lost")
                elif schema_errors:
                    # checked by the writer child; counted (and journaled) here, on the
                    # trio thread, once the batch is committed
                    self._child_schema_errors(schema_errors)
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
                if self._checks_in_child:
                    self._check_spooled(batch)  # these never reach the writer child
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

    # -- shutdown ------------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Drain: write everything buffered (DB or spool), then close connections."""
        if self._closed:
            return
        self._closing = True
        self._wakeup.set()
        drain_t0 = time.perf_counter()
        self.stats.drain_events = self._seq - self._durable_seq
        with trio.CancelScope(shield=True):
            if not self._finished.is_set():
                # Wait in real time, not on the trio clock: under MockClock autojump a trio
                # deadline would expire at once while the writer waits on its thread.
                await trio.to_thread.run_sync(
                    self._finished_flag.wait, self.drain_timeout_s, abandon_on_cancel=True
                )
                await trio.lowlevel.checkpoint()
            leftover: list[_Item] = []
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
            if leftover and self._checks_in_child:
                # never reached (or never came back from) the writer child; an
                # EVENT_SCHEMA_ERROR emitted now goes to the spool (closed)
                self._check_spooled(leftover)
            self.stats.drain_s = time.perf_counter() - drain_t0
            self._writer_scope.cancel()
            self._mark_durable(self._seq)
            conn, reader = self._conn, self._reader_conn
            self._conn = self._reader_conn = None
            await trio.to_thread.run_sync(self._close_quietly, conn, abandon_on_cancel=True)
            await trio.to_thread.run_sync(self._close_quietly, reader, abandon_on_cancel=True)
            await trio.to_thread.run_sync(self._close_child_sync, abandon_on_cancel=True)


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
    writer_process: bool = False,
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
            docstring). False with ``writer_process``: the check runs in the writer
            child, and a mismatch is counted when its batch is committed.
        server_restarter: for the embedded server (the bot's own child): a blocking
            callable that starts it again (raises if it cannot), e.g.
            ``lambda: restart_embedded_server(home)``; called by the prober when a
            connection attempt fails, at most ``max_server_restarts`` times per outage.
        writer_process: write the batches in a child process (module docstring); the
            replay uses it so that the writer never holds the main process's GIL.

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
        writer_process=writer_process,
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
