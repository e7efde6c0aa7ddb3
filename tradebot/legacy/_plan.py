"""The planner: old rows → tradebot rows and journal events, with the report's numbers.

Pure (no I/O): the source rows come from the read-only reader, what tradebot holds from the
store; the store writes the plan. What becomes what (issue 14 items 1–5):

* ``monitoring.positions`` CLOSED / LIQUIDATED → ``positions`` CLOSED, origin ``legacy``,
  plus one ``legacy.position_imported`` event recording the source row.
* ``monitoring.positions`` OPEN → ``positions`` ACTIVE, origin ``legacy``, the
  ``legacy.position_imported`` event and a ``position.snapshot`` built by the real codec
  (qty, entry, stop price, trailing phase and water mark): the Reconciler restarts it from
  that snapshot when the exchange shows it, or closes it with
  :data:`CLOSED_BEFORE_IMPORT` when the exchange shows it flat.
* ``monitoring.trades`` → links positions (``trade_id``) to signals (``signal_id``).
* ``fas.signals`` → ``signals`` (+ ``legacy.signal_imported``) with decision ``taken``
  (a position came from it), ``filtered`` (processed, nothing opened) or ``unknown``.
* ``events`` and ``monitoring.risk_events`` → ``legacy.event`` journal events.

Ids are deterministic in (source table, source id): a position's id is
:func:`legacy_position_id`, event ids are uuid5, so even a lost mapping table cannot
import a row twice.

This module owns the run (:func:`plan_import`, :func:`finish_report`), the
``monitoring.trades`` links and the tables not imported; the parts:
:mod:`tradebot.legacy._plan_base` (ids, value helpers, table checks),
:mod:`tradebot.legacy._plan_positions`, :mod:`tradebot.legacy._plan_signals`,
:mod:`tradebot.legacy._plan_events` (one planner per source table kind).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, tzinfo
from decimal import Decimal

from tradebot.domain import Instrument
from tradebot.legacy._model import ImportPlan, LegacySource, TargetState
from tradebot.legacy._plan_base import (
    CLOSED_BEFORE_IMPORT,
    ORIGIN_LEGACY,
    SnapshotBuilder,
    legacy_event_id,
    legacy_position_id,
)
from tradebot.legacy._plan_events import _EventPlanner
from tradebot.legacy._plan_positions import _PositionPlanner
from tradebot.legacy._plan_signals import _SignalPlanner
from tradebot.legacy._report import ImportReport
from tradebot.legacy._schema import EVENTS, IMPORTED, NOT_IMPORTED, POSITIONS, RISK_EVENTS, TRADES

__all__ = [
    "CLOSED_BEFORE_IMPORT",
    "ORIGIN_LEGACY",
    "SnapshotBuilder",
    "finish_report",
    "legacy_event_id",
    "legacy_position_id",
    "plan_import",
]


class _Planner(_PositionPlanner, _SignalPlanner, _EventPlanner):
    """One run: the tables' planners plus the links and the tables not imported."""

    def linked_signals(self) -> tuple[set[str], dict[str, str]]:
        """(signal ids a position came from, positions trade id → signal id)."""
        t = self.check_columns(TRADES)
        rep = self.r.table(TRADES.name)
        rep.imported_by_tradebot = False
        if t is None:
            if rep.present:
                rep.note = "cannot link positions to signals: " + rep.note
            else:
                rep.note = "table not found: positions are not linked to signals"
            return set(), {}
        rep.note = "not imported: links positions (trade_id) to their signals"
        trade_signal = {
            str(r["id"]): str(r["signal_id"]) for r in t.rows if r.get("signal_id") is not None
        }
        rep.unknown_columns = []  # only id/signal_id are read; the table is not imported
        pos = self.src.tables.get(POSITIONS.name)
        taken: set[str] = set()
        if pos is not None and "trade_id" in pos.columns:
            for r in pos.rows:
                tid = r.get("trade_id")
                if tid is not None and str(tid) in trade_signal:
                    taken.add(trade_signal[str(tid)])
        return taken, trade_signal

    # -- tables not imported -------------------------------------------------------------

    def other_tables(self) -> None:
        imported = {s.name for s in IMPORTED}
        for name, t in sorted(self.src.tables.items()):
            if name in imported:
                continue
            rep = self.r.table(name)
            rep.imported_by_tradebot = False
            rep.read = t.total
            rep.note = NOT_IMPORTED.get(name, "unknown table: not imported")
            if t.total:
                rep.skipped[rep.note] = t.total


def plan_import(
    source: LegacySource,
    target: TargetState,
    *,
    instruments: Mapping[str, Instrument],
    instruments_source: str,
    snapshot_for: SnapshotBuilder,
    account: str = "default",
    naive_tz: tzinfo = UTC,
    naive_tz_name: str = "UTC",
    since: datetime | None = None,
    now: datetime,
    dry_run: bool = False,
) -> ImportPlan:
    """Decide what one run imports and count it (see the module docstring).

    Args:
        source: the rows read from the old database.
        target: what tradebot's database already holds.
        instruments: tick size / qty step by (normalised) symbol.
        instruments_source: where they came from (for the report).
        snapshot_for: builds ``position.snapshot`` data of an OPEN position.
        account: the tradebot account the positions belong to.
        naive_tz / naive_tz_name: the zone naive timestamps are in.
        since: the ``--since`` bound already applied by the reader (for the report).
        now: aware UTC time of the run (the snapshots' time).
        dry_run: the report says "would import".

    Returns:
        The plan; its ``report`` has every number except the tradebot-side sums of a real
        run (the store fills them after writing: :func:`finish_report`).

    Raises:
        tradebot.events.EventSchemaError: an event built here is off its contract (a bug).
    """
    run_id = uuid.uuid4()
    report = ImportReport(
        dry_run=dry_run,
        source=source.label,
        instruments=instruments_source,
        naive_tz=naive_tz_name,
        since=since.isoformat() if since else "",
        run_id=str(run_id),
    )
    p = _Planner(
        source,
        target,
        instruments=instruments,
        account=account,
        naive_tz=naive_tz,
        now=now,
        snapshot_for=snapshot_for,
        report=report,
    )
    taken, trade_signal = p.linked_signals()
    p.positions(trade_signal)
    p.signals(taken)
    p.events(EVENTS)
    p.events(RISK_EVENTS)
    p.other_tables()
    plan = ImportPlan(
        run_id=run_id,
        items=tuple(p.items),
        report=report,
        kept_position_ids=frozenset(p.kept_position_ids),
    )
    finish_report(plan, target.legacy_money)
    return plan


def finish_report(
    plan: ImportPlan, legacy_money: Mapping[str, tuple[Decimal | None, Decimal]]
) -> None:
    """Fill the tradebot-side sums: over the source rows tradebot holds, the tradebot rows'
    values (``legacy_money``: what the database holds; before a write, plus the plan's own
    rows — what it would hold)."""
    money = dict(legacy_money)
    for it in plan.items:
        if it.position is not None and it.source_id not in money:
            money[it.source_id] = (it.position.realized_pnl_usdt, it.position.fees_usdt)
    rep = plan.report
    rep.tradebot.realized_pnl_usdt = Decimal(0)
    rep.tradebot.fees_usdt = Decimal(0)
    rep.tradebot.positions = 0
    for sid in sorted(plan.kept_position_ids):
        if sid in money:
            rep.tradebot.add(*money[sid])
