"""Payloads of ``tradebot import legacy`` (issue 14; :mod:`tradebot.legacy`).

Each imported source row is recorded by one journal event that names it (``source_table``,
``source_id``) and carries the row itself (``source_row``: every column, FLOAT values as
the shortest decimal string that round-trips them, times ISO-8601), so the journal keeps
what the old bot stored next to what tradebot made of it.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

import attrs

from tradebot.domain import PositionSide
from tradebot.events._base import Payload, payload
from tradebot.events._catalog import EventType as E

__all__ = [
    "LegacyEventImported",
    "LegacyImportCompleted",
    "LegacyPositionImported",
    "LegacySignalImported",
]


@payload(E.LEGACY_POSITION_IMPORTED)
@attrs.frozen(kw_only=True)
class LegacyPositionImported(Payload):
    """One position of the old bot imported (event ``position_id`` = ours, ``ts`` = when it
    opened).

    Attributes:
        source_table / source_id: the row (``monitoring.positions``, its ``id``).
        legacy_status: the old bot's status (``OPEN``, ``CLOSED``, ``LIQUIDATED``).
        imported_as: ``CLOSED`` (history) or ``ACTIVE`` (an open position tradebot now
            tracks; the Reconciler restarts it from its ``position.snapshot`` or closes it
            with the reason "closed before import").
        position_side: LONG or SHORT.
        symbol: normalised (``BTC/USDT:USDT`` → ``BTCUSDT``); venue: ``bybit`` / ``binance``.
        qty: base units, > 0. entry_price / exit_price / stop_price: USDT, None = unknown
            (missing, or zero/negative in the source).
        realized_pnl_usdt / fees_usdt: USDT as the old bot recorded them (None = unknown).
        opened_at / closed_at: aware UTC.
        close_reason: the old bot's exit reason ("" while open).
        trailing_activated / trailing_activation_price (USDT) / trailing_callback_pct
            (percent): the old bot's trailing state, None when the column is missing.
        stop_order_id: the venue order id of the old bot's stop ("" when none).
        adjustments: what the import changed, one line per value (quantized to the tick
            or step, zero price → unknown, naive time read as ``--naive-tz``).
        source_row: the source row, JSON-safe.
    """

    source_table: str
    source_id: str
    legacy_status: str
    imported_as: Literal["CLOSED", "ACTIVE"]
    position_side: PositionSide
    symbol: str
    venue: str = ""
    qty: Decimal
    entry_price: Decimal | None = None
    exit_price: Decimal | None = None
    stop_price: Decimal | None = None
    realized_pnl_usdt: Decimal | None = None
    fees_usdt: Decimal | None = None
    opened_at: datetime
    closed_at: datetime | None = None
    close_reason: str = ""
    trailing_activated: bool | None = None
    trailing_activation_price: Decimal | None = None
    trailing_callback_pct: Decimal | None = None
    stop_order_id: str = ""
    adjustments: tuple[str, ...] = ()
    source_row: Mapping[str, Any] = attrs.field(factory=dict)


@payload(E.LEGACY_SIGNAL_IMPORTED)
@attrs.frozen(kw_only=True)
class LegacySignalImported(Payload):
    """One ``fas.signals`` row imported into ``signals`` (whose ``event_id`` is this
    event's id; ``ts`` = the signal's time).

    Attributes:
        source_table / source_id: the row.
        signal_id: ``legacy:<id>``.
        symbol: normalised; venue: lower-case exchange name ("" when unknown).
        action: ``BUY`` / ``SELL`` ("" when the source had something else).
        score_week / score_month: as decimals (None when missing).
        decision: ``taken`` (a position of the old bot came from it), ``filtered``
            (processed, nothing opened) or ``unknown`` (never processed).
        reason: why that decision.
        source_row: the source row, JSON-safe.
    """

    source_table: str
    source_id: str
    signal_id: str
    symbol: str
    venue: str = ""
    action: str = ""
    score_week: Decimal | None = None
    score_month: Decimal | None = None
    decision: Literal["taken", "filtered", "unknown"]
    reason: str = ""
    source_row: Mapping[str, Any] = attrs.field(factory=dict)


@payload(E.LEGACY_EVENT)
@attrs.frozen(kw_only=True)
class LegacyEventImported(Payload):
    """One row of the old bot's ``events`` or ``monitoring.risk_events`` table, kept as it
    was (``ts`` = its time; event ``severity`` = its severity mapped onto ours, event
    ``position_id`` = our id of its position when that position was imported).

    Attributes:
        source_table / source_id: the row.
        original_type: its ``event_type``.
        original_severity: its ``severity`` / ``risk_level`` as stored ("" when none).
        data: its ``event_data`` / ``details`` JSON (any JSON value).
        legacy_position_id: its ``position_id`` ("" when none).
        order_id / exchange / correlation_id / error_message / stack_trace: as stored.
        extra: columns the importer does not know, JSON-safe.
    """

    source_table: str
    source_id: str
    original_type: str
    original_severity: str = ""
    data: Any = None
    legacy_position_id: str = ""
    order_id: str = ""
    exchange: str = ""
    correlation_id: str = ""
    error_message: str = ""
    stack_trace: str = ""
    extra: Mapping[str, Any] = attrs.field(factory=dict)


@payload(E.LEGACY_IMPORT_COMPLETED)
@attrs.frozen(kw_only=True)
class LegacyImportCompleted(Payload):
    """An import run that wrote something finished (one transaction with its rows).

    Attributes:
        run_id: uuid of the run (``legacy_import_runs.run_id``).
        source: the source DSN without its password.
        imported: rows imported per source table.
        skipped: rows skipped per source table.
        open_positions: open positions imported (tracked, to be reconciled).
    """

    run_id: str
    source: str
    imported: Mapping[str, int] = attrs.field(factory=dict)
    skipped: Mapping[str, int] = attrs.field(factory=dict)
    open_positions: int = 0
