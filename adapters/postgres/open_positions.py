"""The PostgreSQL journal's open positions (:class:`tradebot.events.OpenPositionsReader`).

Authority, newest first: the reader cache of the journal (every snapshot written by this
process, and the latest snapshots of live positions preloaded at start), then the
``positions`` projection (status ``OPENING``/``ACTIVE``/``CLOSING``/``FAILED``) for the
account (all accounts, plus cached snapshots not yet projected, when no account is given).
A projection row without any snapshot is an entry intent that never got its
snapshot (lifecycle ``INTENT``); a row whose newest snapshot is final is skipped (the
projection may lag the cache).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import psycopg
import trio

from adapters.postgres.connection import connect
from tradebot.errors import JournalError
from tradebot.events import TrackedPosition, tracked_from_snapshot

if TYPE_CHECKING:
    from adapters.postgres.journal import PostgresJournal

__all__ = ["open_positions_of"]

_LIVE_ROWS = """SELECT position_id, symbol, position_side::text, status::text
                FROM positions
                WHERE status IN ('OPENING', 'ACTIVE', 'CLOSING', 'FAILED')
                  AND (%s::text IS NULL OR account = %s::text)
                ORDER BY opened_at, position_id"""


def _rows_sync(journal: PostgresJournal, account: str | None) -> list[tuple[Any, ...]]:
    conn = connect(
        journal.dsn,
        autocommit=True,
        application_name=journal.application_name + "-reconcile",
        connect_timeout_s=journal.connect_timeout_s,
    )
    try:
        return list(conn.execute(_LIVE_ROWS, (account, account)).fetchall())
    finally:
        conn.close()


async def open_positions_of(
    journal: PostgresJournal, account: str | None = None
) -> list[TrackedPosition]:
    """See the module docstring.

    Raises:
        JournalError: the database is unreachable.
    """
    try:
        rows = await trio.to_thread.run_sync(_rows_sync, journal, account)
    except psycopg.Error as exc:
        raise JournalError(f"journal database unavailable for open positions: {exc}") from exc
    out: dict[str, TrackedPosition] = {}
    for pid, symbol, side, _status in rows:
        snap = await journal.latest_snapshot(str(pid))
        if snap is None:
            out[str(pid)] = TrackedPosition(str(pid), str(symbol), str(side), "INTENT")
            continue
        t = tracked_from_snapshot(str(pid), snap)
        if t is not None:
            out[str(pid)] = t
    if account is not None:
        return list(out.values())
    # no account filter: also positions not yet projected (still in the write buffer)
    for pid, snap in list(journal.cached_snapshots().items()):
        if pid not in out:
            t = tracked_from_snapshot(pid, snap)
            if t is not None:
                out[pid] = t
    return list(out.values())
