"""The journal event catalog: :class:`Severity` and :class:`EventType`.

``EventType`` values are stable: they are stored in ``events.type``. Each type has exactly
one payload class (:data:`tradebot.events.PAYLOADS`) that says what its ``data`` holds.
"""

from __future__ import annotations

import enum

__all__ = ["EventType", "Severity"]


class Severity(enum.Enum):
    """How much an event matters (``events.severity``, PostgreSQL enum ``event_severity``)."""

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
    BOT_PAUSED = "bot.paused"  # operator: new entries off (management continues)
    BOT_RESUMED = "bot.resumed"  # operator: new entries on again
    CONFIG_LOADED = "bot.config_loaded"
    BOT_STARTUP_STEP = "bot.startup_step"  # one step of the `tradebot run` start-up sequence
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
    STOP_GAP_FILL = "stop.gap_fill"  # a stop filled worse than its trigger beyond the bound
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
    POSITION_EXIT_RECORDED = "position.exit_recorded"  # exit found in venue executions
    POSITION_ROLLED_BACK = "position.rolled_back"
    POSITION_FAILED = "position.failed"
    POSITION_ILLEGAL_TRANSITION = "position.illegal_transition"  # a bug: from, to, reason
    POSITION_UNKNOWN_MESSAGE = "position.unknown_message"  # message_type, detail
    POSITION_SNAPSHOT = "position.snapshot"  # persisted actor state (trailing, TP levels)
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
    RECONCILE_FOREIGN_ORDER = "reconcile.foreign_order"  # not our prefix: reported once
    RECONCILE_QTY_CHANGED = "reconcile.qty_changed"  # venue qty != the owner's
    RECONCILE_RESUMED = "reconcile.resumed"  # a tracked position's actor (re)started
    RECONCILE_INTENT_ROLLED_BACK = "reconcile.intent_rolled_back"  # intent, no snapshot
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
    MARK_REJECTED = "market.mark_rejected"  # a venue mark price failed the sanity check
    # database / journal
    DB_UNAVAILABLE = "db.unavailable"
    DB_RECOVERED = "db.recovered"
    SPOOL_REPLAYED = "db.spool_replayed"
    DB_SERVER_RESTART = "db.server_restart"  # the embedded server died: one restart attempt
    SPOOL_KEPT_ASIDE = "db.spool_kept_aside"  # a stale spool moved aside, never discarded
    EVENT_SCHEMA_ERROR = "db.schema_error"  # an event whose data does not match its payload class
    # alerts and operator
    ALERT_RAISED = "alert.raised"
    ALERT_SUPPRESSED = "alert.suppressed"
    OPERATOR_COMMAND = "operator.command"
    # import from the bot tradebot replaces (`tradebot import legacy`, tradebot/legacy/)
    LEGACY_POSITION_IMPORTED = "legacy.position_imported"
    LEGACY_SIGNAL_IMPORTED = "legacy.signal_imported"
    LEGACY_EVENT = "legacy.event"  # one row of the old bot's events / risk_events tables
    LEGACY_IMPORT_COMPLETED = "legacy.import_completed"
