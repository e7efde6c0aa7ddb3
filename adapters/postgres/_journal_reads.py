"""The journal's ``JournalReader`` side: the write-through cache (latest
``POSITION_SNAPSHOT`` per position, completed wave ids), its preload at open, and a miss
served from the database, then the spool."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import trio

from adapters.postgres._journal_records import (
    _Item,
    log,
)
from adapters.postgres._journal_store import _JournalStore
from adapters.postgres.connection import connect
from tradebot.errors import JournalError
from tradebot.events import (
    SIGNAL_EVENT_TYPES,
    EventType,
    TrackedPosition,
)

__all__ = ["SIGNAL_MEMORY", "SIGNAL_MEMORY_MAX", "_JournalReads"]

SIGNAL_MEMORY = timedelta(hours=24)
"""How far back the journal remembers signal ids (``signal_waves_since``): behind the
newest wave journaled, and the preload's window of event time."""
SIGNAL_MEMORY_MAX = 200_000
"""At most this many signal ids are remembered (the oldest are forgotten first)."""
_SIGNAL_TYPES = frozenset(t.value for t in SIGNAL_EVENT_TYPES)


def _signal_rows(conn: psycopg.Connection[Any]) -> list[tuple[str, datetime]]:
    """(signal id, earliest wave_ts) of the signal events of the last :data:`SIGNAL_MEMORY`
    of event time (index ``events_type_ts``; the ``ts`` partitions)."""
    rows = conn.execute(
        """SELECT data->>'signal_id', min((data->>'wave_ts')::timestamptz) FROM events
           WHERE type = ANY(%s) AND ts >= now() - %s
             AND data->>'signal_id' IS NOT NULL AND data->>'wave_ts' IS NOT NULL
           GROUP BY 1""",
        (sorted(_SIGNAL_TYPES), SIGNAL_MEMORY),
    ).fetchall()
    return [(str(r[0]), r[1].astimezone(UTC)) for r in rows]


class _JournalReads(_JournalStore):
    """Reader cache and misses."""

    # -- JournalReader -------------------------------------------------------------------------

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

    async def open_positions(self, account: str | None = None) -> list[TrackedPosition]:
        """:class:`tradebot.events.OpenPositionsReader` (see
        :mod:`adapters.postgres.open_positions`)."""
        from adapters.postgres.open_positions import open_positions_of

        return await open_positions_of(self, account)  # type: ignore[arg-type]

    def cached_snapshots(self) -> Mapping[str, Mapping[str, Any]]:
        """The reader cache's newest snapshot data per position id (read-only use)."""
        return {k: v for k, v in self._snapshots.items() if v is not None}

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

    async def signal_waves_since(self, since: datetime) -> Mapping[str, datetime]:
        """Signal id → ``wave_ts`` of the earliest wave it was journaled in (signal events
        of :data:`~tradebot.events.SIGNAL_EVENT_TYPES`), for waves at or after ``since``.

        Served from the cache: what the preload found in the database (events of the last
        :data:`SIGNAL_MEMORY`, by event time) plus this process's events, bounded to
        :data:`SIGNAL_MEMORY` behind the newest wave and :data:`SIGNAL_MEMORY_MAX` ids.
        Without a preload (database down at open) it queries the database.

        Raises:
            JournalError: no preload and the database unreachable.
        """
        if not self._cache_complete:
            async with self._reader_lock:
                try:
                    rows = await trio.to_thread.run_sync(self._signal_rows_sync)
                except psycopg.Error as exc:
                    raise JournalError(
                        f"journal database unavailable for the signal ids: {exc}"
                    ) from exc
            for sid, wave_ts in rows:
                self._remember_signal(sid, wave_ts)
        return {sid: ts for sid, ts in self._signal_waves.items() if ts >= since}

    def _signal_rows_sync(self) -> list[tuple[str, datetime]]:
        for attempt in range(2):
            try:
                if self._reader_conn is None or self._reader_conn.closed:
                    self._reader_conn = connect(
                        self.dsn,
                        autocommit=True,
                        application_name=self.application_name + "-reader",
                        connect_timeout_s=self.connect_timeout_s,
                    )
                return _signal_rows(self._reader_conn)
            except psycopg.OperationalError:
                self._close_quietly(self._reader_conn)
                self._reader_conn = None
                if attempt:
                    raise
        return []  # pragma: no cover

    def _remember_signal(self, signal_id: str, wave_ts: datetime) -> None:
        known = self._signal_waves.get(signal_id)
        if known is not None and known <= wave_ts:
            return
        self._signal_waves[signal_id] = wave_ts
        order = self._signal_order
        order.append((wave_ts, signal_id))
        newest = self._signal_newest = max(wave_ts, self._signal_newest or wave_ts)
        while order and (order[0][0] < newest - SIGNAL_MEMORY or len(order) > SIGNAL_MEMORY_MAX):
            ts, sid = order.popleft()
            if self._signal_waves.get(sid) == ts:
                del self._signal_waves[sid]

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
            waves, snaps, signals = await trio.to_thread.run_sync(
                self._preload_sync, abandon_on_cancel=True
            )
        except psycopg.Error as exc:
            log.warning("journal cache preload failed (%s); misses will query the database", exc)
            return
        for w in waves:
            self._waves.setdefault(w, True)
        for pid, data in snaps.items():
            self._snapshots.setdefault(pid, data)
        for sid, wave_ts in signals:
            self._remember_signal(sid, wave_ts)
        self._cache_complete = True

    def _preload_sync(
        self,
    ) -> tuple[list[str], dict[str, Mapping[str, Any]], list[tuple[str, datetime]]]:
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
        return waves, {str(r[0]): dict(r[1]) for r in rows}, _signal_rows(conn)

    def _cache(self, item: _Item) -> None:
        if item.type == EventType.POSITION_SNAPSHOT.value and item.position_id is not None:
            self._snapshots[item.position_id] = item.jdata
        elif item.type == EventType.WAVE_COMPLETED.value and "wave_id" in item.jdata:
            self._waves[str(item.jdata["wave_id"])] = True
        elif item.type in _SIGNAL_TYPES:
            sid, wave_ts = item.jdata.get("signal_id"), item.jdata.get("wave_ts")
            if isinstance(sid, str) and isinstance(wave_ts, str):
                try:
                    self._remember_signal(sid, datetime.fromisoformat(wave_ts))
                except ValueError:
                    pass  # off its contract; counted by the schema check
