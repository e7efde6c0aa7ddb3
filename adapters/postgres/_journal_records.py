"""The journal's fixed parts: file names, the environment switch, the insert SQL, which
database errors mean "cannot take events now", the counters (:class:`JournalStats`), one
buffered event (:class:`_Item`, also one spool line), the text/JSON encoding of event data,
and the spool's ``.meta.json`` and line-count helpers."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import attrs
import psycopg

from tradebot.events import (
    EventSchemaError,
    EventType,
    Payload,
    Severity,
    decode_data,
    jsonable,
)

__all__ = [
    "REJECTS_FILE_NAME",
    "SPOOL_FILE_NAME",
    "SPOOL_META_NAME",
    "STRICT_EVENTS_ENV",
    "JournalStats",
    "read_spool_meta",
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
# COPY into a temp table + INSERT ... SELECT ... ON CONFLICT was measured against it on a
# paper run's 14,515 events: at the replay's batch size (~40 events) 1.43 s vs 0.77 s, at
# 5,000 events 0.28 s vs 0.33 s but with 2.4x the client CPU; the JSON array stays.
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
        writer_starts: writer processes started (``writer_process``; 1 + restarts after a
            child died).
        drain_events: events not yet durable when closing began (buffered + in flight).
        drain_s: wall-clock seconds closing waited for the writer to make them durable
            (0.0 until the journal closed).
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
    writer_starts: int = 0
    drain_events: int = 0
    drain_s: float = 0.0


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
    # decoded by the contract check (at emit, or in the writer child); None: not checked
    # yet, or off its contract (the projection decodes again and skips it)
    payload: Payload | None = None

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


def _check_contract(item: _Item) -> EventSchemaError | None:
    """The contract check: decode ``item.jdata`` into the payload class of ``item.type``
    and keep it in ``item.payload`` (for the projection).

    Returns:
        None when the data matches; else the problem (unknown type, or the codec's
        :class:`~tradebot.events.EventSchemaError`). Never raises.
    """
    try:
        etype = EventType(item.type)
    except ValueError:
        return EventSchemaError(item.type, [f"unknown event type {item.type!r}"])
    try:
        item.payload = decode_data(etype, item.jdata)
    except EventSchemaError as exc:
        return exc
    except Exception as exc:  # a codec bug must not fail the batch (or raise from emit)
        return EventSchemaError(item.type, [f"{type(exc).__name__}: {exc}"[:1000]])
    return None


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
