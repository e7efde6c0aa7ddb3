"""The shapes passed between the source reader, the planner and the store.

:class:`LegacySource` is what the read-only reader saw (adapters/postgres/legacy_source.py);
:class:`TargetState` what tradebot's database already holds
(adapters/postgres/legacy_store.py); :class:`ImportPlan` what the planner
(:func:`tradebot.legacy.plan_import`) decided, written by the store in one transaction.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

import attrs

from tradebot.domain import PositionSide
from tradebot.events import Event
from tradebot.legacy._report import ImportReport
from tradebot.policies import TrailingState

__all__ = [
    "AdoptionSpec",
    "ImportItem",
    "ImportPlan",
    "LegacySource",
    "PositionRow",
    "SignalRow",
    "SourceTable",
    "TargetState",
]


@attrs.frozen
class SourceTable:
    """One table of the old database.

    Attributes:
        name: ``schema.table``.
        columns: column name → ``information_schema.columns.data_type``.
        rows: the rows read (tables the importer reads; empty for the others).
        read: rows selected (after ``--since``).
        total: rows in the table.
        error: why the table could not be read ("" when it was).
    """

    name: str
    columns: Mapping[str, str]
    rows: tuple[Mapping[str, Any], ...] = ()
    read: int = 0
    total: int = 0
    error: str = ""


@attrs.frozen
class LegacySource:
    """What the reader saw in one REPEATABLE READ snapshot of the old database.

    Attributes:
        label: the source DSN without its password (for the report).
        tables: every table found in the schemas ``monitoring``, ``fas`` and ``public``.
    """

    label: str
    tables: Mapping[str, SourceTable]


@attrs.frozen
class TargetState:
    """What tradebot's database holds before the run.

    Attributes:
        imported_keys: ``(source_table, source_id)`` already imported (legacy_import_map).
        live_keys: ``(account, symbol, position side value)`` of live tradebot positions.
        legacy_money: per imported ``monitoring.positions`` id, the tradebot row's
            ``(realized_pnl_usdt, fees_usdt)`` (USDT; pnl None = unknown).
    """

    imported_keys: frozenset[tuple[str, str]] = frozenset()
    live_keys: frozenset[tuple[str, str, str]] = frozenset()
    legacy_money: Mapping[str, tuple[Decimal | None, Decimal]] = attrs.field(factory=dict)


@attrs.frozen
class AdoptionSpec:
    """An OPEN legacy position as tradebot will track it: the snapshot builder (the real
    ``position.snapshot`` codec, actors/position/_state.py, injected by the CLI) turns it
    into snapshot data. Prices USDT, qty base units, times aware UTC."""

    position_id: str
    symbol: str
    position_side: PositionSide
    qty: Decimal
    entry_price: Decimal
    opened_at: datetime
    stop_price: Decimal | None
    trailing: TrailingState


@attrs.frozen
class PositionRow:
    """A ``positions`` row (origin ``legacy``); status ``CLOSED`` or ``ACTIVE``."""

    position_id: str
    account: str
    venue: str
    symbol: str
    position_side: PositionSide
    status: Literal["CLOSED", "ACTIVE"]
    qty: Decimal
    entry_price: Decimal | None
    stop_price: Decimal | None
    exit_price: Decimal | None
    realized_pnl_usdt: Decimal | None
    fees_usdt: Decimal
    signal_id: str | None
    opened_at: datetime
    closed_at: datetime | None
    close_reason: str | None


@attrs.frozen
class SignalRow:
    """A ``signals`` row; ``event_id`` is the ``legacy.signal_imported`` event."""

    event_id: uuid.UUID
    signal_id: str
    wave_id: str
    wave_ts: datetime
    symbol: str
    venue: str
    action: str
    score_week: Decimal | None
    score_month: Decimal | None
    decision: str
    reason: str
    ts: datetime


@attrs.frozen
class ImportItem:
    """One source row to import: its journal events and its relational row.

    Attributes:
        kind: ``position``, ``signal`` or ``event``.
        target_id: the position id / signals event id / events event id.
        events: journal events, the first records the source row.
    """

    source_table: str
    source_id: str
    kind: Literal["position", "signal", "event"]
    target_id: str
    events: tuple[Event, ...]
    position: PositionRow | None = None
    signal: SignalRow | None = None


@attrs.frozen
class ImportPlan:
    """Everything one run would write, and its report (numbers for the plan; the store
    fills the tradebot-side sums after it wrote).

    Attributes:
        kept_position_ids: source ids of the ``monitoring.positions`` rows read that
            tradebot holds after the run (imported now or by an earlier run).
    """

    run_id: uuid.UUID
    items: tuple[ImportItem, ...]
    report: ImportReport
    kept_position_ids: frozenset[str] = frozenset()
