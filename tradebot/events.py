"""The journal event catalog and the journal port.

Every state change, decision, exchange request/outcome, reconnect and error becomes an
:class:`Event` (DESIGN.md invariant 6). ``EventType`` is the catalog; its value is the
string stored in ``events.type``. ``data`` holds JSON-safe details: use :func:`jsonable`
(Decimal → string, datetime → ISO-8601 UTC, enums → value, attrs → dict); it never raises
on a domain value.
"""

from __future__ import annotations

import enum
import json
import uuid
from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Protocol

import attrs

__all__ = [
    "Severity",
    "EventType",
    "Event",
    "JournalPort",
    "JournalReader",
    "MemoryJournal",
    "jsonable",
    "dumps",
]


class Severity(enum.Enum):
    DEBUG = "debug"
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"
    CRITICAL = "critical"


class EventType(enum.Enum):
    """Every kind of journaled event. Values are stable: they are stored in the database."""

    # bot lifecycle
    BOT_STARTED = "bot.started"
    BOT_STOPPING = "bot.stopping"
    BOT_STOPPED = "bot.stopped"
    SAFE_MODE_ENTERED = "bot.safe_mode"
    CONFIG_LOADED = "bot.config_loaded"
    # signals and waves
    SIGNAL_RECEIVED = "signal.received"
    SIGNAL_REJECTED = "signal.rejected"  # malformed / hostile / unknown, with reason
    SIGNAL_LATE = "signal.late"
    SIGNAL_FILTERED = "signal.filtered"
    SIGNAL_TAKEN = "signal.taken"
    SIGNAL_BUFFER_OVERFLOW = "signal.buffer_overflow"
    WAVE_STARTED = "wave.started"
    WAVE_COMPLETED = "wave.completed"
    WAVE_DUPLICATE = "wave.duplicate"
    # entries
    ENTRY_INTENT = "entry.intent"
    ENTRY_SUBMITTED = "entry.submitted"
    ENTRY_ACKED = "entry.acked"
    ENTRY_FILLED = "entry.filled"
    ENTRY_PARTIAL_FILL = "entry.partial_fill"
    ENTRY_REJECTED = "entry.rejected"
    ENTRY_OUTCOME_UNKNOWN = "entry.outcome_unknown"
    ENTRY_RESOLVED = "entry.resolved"
    # stops
    STOP_INTENT = "stop.intent"
    STOP_PLACED = "stop.placed"
    STOP_CONFIRMED = "stop.confirmed"
    STOP_REJECTED = "stop.rejected"
    STOP_RETRY = "stop.retry"
    STOP_MOVED = "stop.moved"
    STOP_CANCELLED = "stop.cancelled"
    STOP_TRIGGERED = "stop.triggered"
    EMERGENCY_STOP_PLACED = "stop.emergency"
    # trailing
    TRAILING_ACTIVATED = "trailing.activated"
    TRAILING_BREAKEVEN = "trailing.breakeven"
    TRAILING_UPDATE = "trailing.update"
    TRAILING_SKIPPED = "trailing.skipped"  # rate-limited / below min improvement
    # protection
    PROTECTION_VERIFIED = "protection.verified"
    PROTECTION_MISSING = "protection.missing"
    PROTECTION_REPAIRED = "protection.repaired"
    PROTECTION_BREACH = "protection.breach"
    # take-profit
    TP_PLACED = "tp.placed"
    TP_FILLED = "tp.filled"
    # aged exits
    AGED_STARTED = "aged.started"
    AGED_EXIT_PLACED = "aged.exit_placed"
    AGED_EXIT_MOVED = "aged.exit_moved"
    AGED_EXIT_FILLED = "aged.exit_filled"
    AGED_MARKET_CLOSE = "aged.market_close"
    # position lifecycle
    POSITION_OPENING = "position.opening"
    POSITION_ACTIVE = "position.active"
    POSITION_CLOSING = "position.closing"
    POSITION_CLOSED = "position.closed"
    POSITION_ROLLED_BACK = "position.rolled_back"
    POSITION_FAILED = "position.failed"
    POSITION_SNAPSHOT = "position.snapshot"  # persisted actor state (trailing, TP levels)
    POSITION_ILLEGAL_TRANSITION = "position.illegal_transition"  # a bug: from, to, reason
    POSITION_UNKNOWN_MESSAGE = "position.unknown_message"  # message_type, detail
    FLATTEN_INTENT = "position.flatten_intent"
    FLATTEN_VERIFIED = "position.flatten_verified"
    FLATTEN_FAILED = "position.flatten_failed"
    # orders and fills (generic)
    ORDER_INTENT = "order.intent"
    ORDER_SUBMITTED = "order.submitted"
    ORDER_UPDATE = "order.update"
    ORDER_CANCELLED = "order.cancelled"
    ORDER_REJECTED = "order.rejected"
    FILL = "order.fill"
    FUNDING = "account.funding"
    # exchange requests (adapters)
    EXCHANGE_REQUEST = "exchange.request"
    EXCHANGE_RESPONSE = "exchange.response"
    EXCHANGE_ERROR = "exchange.error"
    CLOCK_RESYNC = "exchange.clock_resync"
    RATE_LIMITED = "exchange.rate_limited"
    # reconciliation
    RECONCILE_STARTED = "reconcile.started"
    RECONCILE_COMPLETED = "reconcile.completed"
    RECONCILE_PHANTOM = "reconcile.phantom"  # journal says open, exchange says flat
    RECONCILE_UNTRACKED = "reconcile.untracked"  # exchange has a position we do not track
    RECONCILE_ADOPTED = "reconcile.adopted"
    ZOMBIE_ORDER = "reconcile.zombie_order"
    ZOMBIE_CANCELLED = "reconcile.zombie_cancelled"
    # actors
    ACTOR_STARTED = "actor.started"
    ACTOR_CRASHED = "actor.crashed"
    ACTOR_RESTARTED = "actor.restarted"
    ACTOR_GAVE_UP = "actor.gave_up"
    ACTOR_STOPPED = "actor.stopped"
    # streams
    STREAM_CONNECTED = "stream.connected"
    STREAM_DISCONNECTED = "stream.disconnected"
    STREAM_GAP = "stream.gap"
    STREAM_SILENT = "stream.silent"
    # database / journal
    DB_UNAVAILABLE = "db.unavailable"
    DB_RECOVERED = "db.recovered"
    SPOOL_REPLAYED = "db.spool_replayed"
    # alerts and operator
    ALERT_RAISED = "alert.raised"
    ALERT_SUPPRESSED = "alert.suppressed"
    OPERATOR_COMMAND = "operator.command"


def _new_uuid() -> uuid.UUID:
    return uuid.uuid4()


@attrs.frozen
class Event:
    """One journal entry.

    Attributes:
        type: the catalog entry.
        ts: aware UTC time of the event (from the Clock port, so replay is deterministic).
        data: JSON-safe mapping (see :func:`jsonable`); Decimal values become strings.
        severity: default INFO.
        position_id: the position the event belongs to, if any.
        client_order_id: the order it concerns, if any.
        symbol: instrument symbol, if any.
        correlation_id: ties a chain together (e.g. a wave id, a request id).
        event_id: uuid, primary key; makes spool replay idempotent.
    """

    type: EventType
    ts: datetime
    data: Mapping[str, Any] = attrs.field(factory=dict)
    severity: Severity = Severity.INFO
    position_id: str | None = None
    client_order_id: str | None = None
    symbol: str | None = None
    correlation_id: str | None = None
    event_id: uuid.UUID = attrs.field(factory=_new_uuid)


class JournalPort(Protocol):
    """Where events go.

    ``emit`` never blocks and never raises for a valid event (fire-and-forget; the event is
    buffered, written by group commit, spooled to disk when the database is down).
    ``emit_durable`` returns once the event is committed to the database or fsynced to the
    spool — use it for intent before an exchange call, fills and stop changes.
    """

    def emit(self, event: Event) -> None: ...

    async def emit_durable(self, event: Event) -> None: ...


def jsonable(value: Any) -> Any:
    """Convert a domain value into JSON-safe primitives. Never raises.

    Decimal → str (exact), datetime → ISO-8601, date → ISO, Enum → value, UUID → str,
    attrs instance → dict, Mapping → dict with str keys, list/tuple/set → list, bytes →
    latin-1 text, float NaN/inf → str. Unknown objects → ``repr``.
    """
    try:
        if value is None or isinstance(value, (bool, int, str)):
            return value
        if isinstance(value, float):
            return (
                value
                if value == value and value not in (float("inf"), float("-inf"))
                else str(value)
            )
        if isinstance(value, Decimal):
            return str(value)
        if isinstance(value, datetime):
            return value.isoformat()
        if isinstance(value, date):
            return value.isoformat()
        if isinstance(value, enum.Enum):
            return jsonable(value.value)
        if isinstance(value, uuid.UUID):
            return str(value)
        if attrs.has(type(value)):
            return {f.name: jsonable(getattr(value, f.name)) for f in attrs.fields(type(value))}
        if isinstance(value, Mapping):
            return {str(k): jsonable(v) for k, v in value.items()}
        if isinstance(value, (list, tuple, set, frozenset)):
            return [jsonable(v) for v in value]
        if isinstance(value, (bytes, bytearray)):
            return bytes(value).decode("latin-1")
        if isinstance(value, BaseException):
            return f"{type(value).__name__}: {value}"
        return repr(value)
    except Exception as exc:  # pragma: no cover - defensive: journaling must never raise
        return f"<unserializable {type(value).__name__}: {exc!r}>"


def dumps(value: Any) -> str:
    """JSON text of :func:`jsonable` ``(value)``; compact, keys in insertion order."""
    return json.dumps(jsonable(value), separators=(",", ":"), ensure_ascii=False)


class JournalReader(Protocol):
    """Reads back what the journal holds, for recovery and idempotency.

    Implementations serve recent writes from a write-through cache so that a reader never
    waits on the database in a virtual-time run (replay determinism, DESIGN.md section 8).
    """

    async def latest_snapshot(self, position_id: str) -> Mapping[str, Any] | None:
        """``data`` of the newest ``POSITION_SNAPSHOT`` event of the position, or None."""
        ...

    async def is_wave_processed(self, wave_id: str) -> bool:
        """True once a ``WAVE_COMPLETED`` event with ``data["wave_id"] == wave_id`` exists."""
        ...


class MemoryJournal:
    """In-process journal that keeps events in a list (tests, dry runs).

    Implements :class:`JournalPort` and :class:`JournalReader`. Events are JSON-encoded on
    emit (exactly as the PostgreSQL journal does), so a value that could not be journaled
    fails here too.
    """

    def __init__(self) -> None:
        self.events: list[Event] = []
        self._snapshots: dict[str, Mapping[str, Any]] = {}
        self._waves: set[str] = set()

    def emit(self, event: Event) -> None:
        dumps(event.data)  # same encoding path as the database journal
        self.events.append(event)
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

    def of_type(self, *types: EventType) -> list[Event]:
        """Events of the given types, in emission order."""
        return [e for e in self.events if e.type in types]
