"""What the importer knows of the old bot's schema (../shared/reference/legacy-bot-schema.md).

The importer reads ``information_schema`` and maps only the columns listed here; a column
it finds that is not listed is reported ("columns the importer did not know") and kept in
the journal's copy of the row, never guessed at. A listed column that is missing is
reported; a missing *required* column skips its whole table (with the reason).
"""

from __future__ import annotations

import attrs

__all__ = ["IMPORTED", "NOT_IMPORTED", "TableSpec"]


@attrs.frozen
class TableSpec:
    """One source table the importer reads.

    Attributes:
        name: ``schema.table``.
        required: columns without which no row can be imported.
        optional: other columns it maps (missing → values unknown, reported).
        since: columns compared with ``--since`` (the first present one; none present →
            every row is read).
        time_candidates: for tables whose time column name the audit did not record, the
            names tried in order (part of ``optional``).
    """

    name: str
    required: tuple[str, ...]
    optional: tuple[str, ...]
    since: tuple[str, ...] = ()
    time_candidates: tuple[str, ...] = ()

    @property
    def known(self) -> frozenset[str]:
        return frozenset(self.required) | frozenset(self.optional)


_TIME_NAMES = ("created_at", "timestamp", "signal_time", "ts", "time", "created")

POSITIONS = TableSpec(
    "monitoring.positions",
    required=("id", "symbol", "side", "quantity", "status"),
    optional=(
        "trade_id",
        "exchange",
        "entry_price",
        "current_price",
        "mark_price",
        "unrealized_pnl",
        "unrealized_pnl_percent",
        "has_stop_loss",
        "stop_loss_price",
        "stop_loss_order_id",
        "has_trailing_stop",
        "trailing_activated",
        "trailing_activation_price",
        "trailing_callback_rate",
        "exit_price",
        "realized_pnl",
        "fees",
        "exit_reason",
        "opened_at",
        "closed_at",
        "last_update",
        "ws_position_id",
    ),
    since=("closed_at", "last_update", "opened_at"),
)
TRADES = TableSpec("monitoring.trades", required=("id", "signal_id"), optional=())
SIGNALS = TableSpec(
    "fas.signals",
    required=("id", "pair_symbol"),
    optional=(
        "exchange_name",
        "score_week",
        "score_month",
        "recommended_action",
        "is_processed",
        *_TIME_NAMES,
    ),
    since=_TIME_NAMES,
    time_candidates=_TIME_NAMES,
)
EVENTS = TableSpec(
    "public.events",
    required=("id", "event_type"),
    optional=(
        "event_data",
        "correlation_id",
        "position_id",
        "order_id",
        "symbol",
        "exchange",
        "severity",
        "error_message",
        "stack_trace",
        "created_at",
    ),
    since=("created_at",),
    time_candidates=("created_at",),
)
RISK_EVENTS = TableSpec(
    "monitoring.risk_events",
    required=("id", "event_type"),
    optional=("position_id", "risk_level", "details", *_TIME_NAMES),
    since=_TIME_NAMES,
    time_candidates=_TIME_NAMES,
)

IMPORTED: tuple[TableSpec, ...] = (POSITIONS, TRADES, SIGNALS, EVENTS, RISK_EVENTS)
"""Tables read, in reading order (trades link positions to signals)."""

NOT_IMPORTED: dict[str, str] = {
    "monitoring.alerts": "no tradebot counterpart (system alerts of the old bot)",
    "monitoring.performance": "no tradebot counterpart (derived balance snapshots)",
    "public.transaction_log": "no tradebot counterpart (database timings)",
    "public.performance_metrics": "no tradebot counterpart (metrics time series)",
    "public.orders": "no tradebot counterpart (an older generation's orders)",
}
"""Tables of the old bot that are counted and reported but not imported, with why."""
