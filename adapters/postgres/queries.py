"""Read helpers over the journal for the CLI (``tradebot events``, ``status``, reports).

Sync functions (psycopg 3 sync API); from trio call them via ``trio.to_thread.run_sync``.
Decimal values inside ``data`` come back as JSON strings (as stored).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import attrs

from adapters.postgres.connection import connect
from tradebot.events import Event, EventType, Severity

__all__ = [
    "StoredEvent",
    "event_counts",
    "events_for_correlation",
    "events_for_position",
    "open_positions",
    "recent_events",
]

_COLUMNS = (
    "event_id, ts, seq, type, severity::text, position_id, client_order_id, symbol, "
    "correlation_id, data, recorded_at"
)


@attrs.frozen
class StoredEvent:
    """One row of ``events``.

    Attributes:
        seq: insertion order (ties within one ``ts``).
        type: the stored type string (an :class:`EventType` value, see :meth:`event_type`).
        recorded_at: when the database stored it (lag = recorded_at - ts).
    """

    event_id: uuid.UUID
    ts: datetime
    seq: int
    type: str
    severity: str
    position_id: str | None
    client_order_id: str | None
    symbol: str | None
    correlation_id: str | None
    data: Mapping[str, Any]
    recorded_at: datetime

    @property
    def event_type(self) -> EventType | None:
        """The catalog entry, or None for a type this version does not know."""
        try:
            return EventType(self.type)
        except ValueError:
            return None

    def to_event(self) -> Event | None:
        """Back to an :class:`Event` (None for an unknown type)."""
        et = self.event_type
        if et is None:
            return None
        return Event(
            et,
            self.ts,
            dict(self.data),
            Severity(self.severity),
            self.position_id,
            self.client_order_id,
            self.symbol,
            self.correlation_id,
            self.event_id,
        )


def _rows(dsn: str, query: str, params: Sequence[Any] | Mapping[str, Any]) -> list[StoredEvent]:
    with connect(dsn, application_name="tradebot-cli") as conn:
        return [
            StoredEvent(r[0], r[1], int(r[2]), r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[10])
            for r in conn.execute(query, params)
        ]


def events_for_position(dsn: str, position_id: str) -> list[StoredEvent]:
    """Every event of one position in order (``ts``, then insertion order): its whole life,
    including events about its orders (matched by ``client_order_id`` prefix ``tb-<id>-``)
    and signal/wave events whose data names it (``data.position_id``, e.g. the
    ``signal.taken`` that opened it)."""
    return _rows(
        dsn,
        f"""SELECT {_COLUMNS} FROM events
            WHERE position_id = %(p)s OR client_order_id LIKE %(like)s
               OR data->>'position_id' = %(p)s
            ORDER BY ts, seq""",
        {"p": position_id, "like": f"tb-{position_id}-%"},
    )


def events_for_correlation(dsn: str, correlation_id: str) -> list[StoredEvent]:
    """Every event of one chain (e.g. a wave id), in order."""
    return _rows(
        dsn,
        f"SELECT {_COLUMNS} FROM events WHERE correlation_id = %s ORDER BY ts, seq",
        (correlation_id,),
    )


def recent_events(
    dsn: str,
    *,
    limit: int = 100,
    types: Sequence[EventType | str] = (),
    since: datetime | None = None,
    symbol: str | None = None,
) -> list[StoredEvent]:
    """The newest ``limit`` events (optionally of ``types``, after ``since``, for ``symbol``),
    returned oldest first."""
    where = ["TRUE"]
    params: list[Any] = []
    if types:
        where.append("type = ANY(%s)")
        params.append([t.value if isinstance(t, EventType) else str(t) for t in types])
    if since is not None:
        where.append("ts >= %s")
        params.append(since)
    if symbol:
        where.append("symbol = %s")
        params.append(symbol)
    params.append(max(0, int(limit)))
    rows = _rows(
        dsn,
        f"""SELECT {_COLUMNS} FROM events WHERE {" AND ".join(where)}
                          ORDER BY ts DESC, seq DESC LIMIT %s""",
        params,
    )
    rows.reverse()
    return rows


def event_counts(
    dsn: str, *, since: datetime | None = None, until: datetime | None = None
) -> dict[str, int]:
    """Number of events per type (``{"stop.moved": 12, ...}``) in ``[since, until)``."""
    with connect(dsn, application_name="tradebot-cli") as conn:
        rows = conn.execute(
            """SELECT type, count(*) FROM events
               WHERE (%(since)s::timestamptz IS NULL OR ts >= %(since)s)
                 AND (%(until)s::timestamptz IS NULL OR ts < %(until)s)
               GROUP BY type ORDER BY type""",
            {"since": since, "until": until},
        ).fetchall()
    return {str(r[0]): int(r[1]) for r in rows}


def open_positions(dsn: str) -> list[dict[str, Any]]:
    """``positions`` rows in OPENING/ACTIVE/CLOSING as dicts (Decimal values)."""
    with connect(dsn, application_name="tradebot-cli") as conn:
        cur = conn.execute(
            """SELECT position_id, account, venue, symbol, position_side::text AS position_side,
                      status::text AS status, qty, entry_price, intended_stop_price, stop_price,
                      fees_usdt, opened_at, updated_at
               FROM positions WHERE status IN ('OPENING', 'ACTIVE', 'CLOSING')
               ORDER BY opened_at"""
        )
        names = [d.name for d in cur.description or []]
        return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
