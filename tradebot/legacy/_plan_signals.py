"""The planner of ``fas.signals``: old signals → ``signals`` rows and their events.

Owns :class:`_SignalPlanner`: each signal row → a ``signals`` row and a
``legacy.signal_imported`` event, with the decision ``taken`` (a position came from it,
linked through ``monitoring.trades``), ``filtered`` (processed, nothing opened) or
``unknown`` (not processed, or the processing state not recorded); LONG/SHORT actions are
read as BUY/SELL, the wave is the signal time's wave.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from tradebot.events import Event, LegacySignalImported
from tradebot.legacy._model import ImportItem, SignalRow, SourceTable
from tradebot.legacy._plan_base import _jsonable, _PlannerBase, _Skip, legacy_event_id
from tradebot.legacy._schema import SIGNALS
from tradebot.signals import wave_floor, wave_id_for

__all__: list[str] = []


class _SignalPlanner(_PlannerBase):
    """``fas.signals`` → signals rows and ``legacy.signal_imported`` events."""

    def signals(self, taken: set[str]) -> None:
        spec = SIGNALS
        t = self.check_columns(spec)
        if t is None:
            return
        rep = self.r.table(spec.name)
        tcol = self.time_column(spec, t)
        for row in t.rows:
            sid = str(row["id"])
            if (spec.name, sid) in self.target.imported_keys:
                rep.already_imported += 1
                continue
            saved = self._save()
            try:
                item = self._signal(t, row, sid, tcol, taken)
            except _Skip as skip:
                self._restore(saved)
                rep.skip(str(skip))
                continue
            self._imported(row)
            rep.imported += 1
            self.items.append(item)

    def _signal(
        self,
        t: SourceTable,
        row: Mapping[str, Any],
        sid: str,
        tcol: str | None,
        taken: set[str],
    ) -> ImportItem:
        if tcol is None:
            raise _Skip("no timestamp column")
        ts = self.when(row, tcol)
        if ts is None:
            raise _Skip(f"{tcol} is NULL")
        symbol = self.symbol(row.get("pair_symbol"))
        action = str(row.get("recommended_action") or "").strip().upper()
        if action in ("LONG", "SHORT"):
            action = "BUY" if action == "LONG" else "SELL"
        if action not in ("BUY", "SELL"):
            action = ""
        processed = row.get("is_processed")
        decision: Literal["taken", "filtered", "unknown"]
        if sid in taken:
            decision, reason = "taken", "legacy: a position was opened from it"
        elif processed is True:
            decision, reason = "filtered", "legacy: processed, no position opened"
        elif processed is False:
            decision, reason = "unknown", "legacy: not processed by the old bot"
        else:
            decision, reason = "unknown", "legacy: processing state not recorded"
        week = self.dec(t, row, "score_week")
        month = self.dec(t, row, "score_month")
        venue = str(row.get("exchange_name") or "").strip().lower()
        payload = LegacySignalImported(
            source_table=t.name,
            source_id=sid,
            signal_id=f"legacy:{sid}",
            symbol=symbol,
            venue=venue,
            action=action,
            score_week=week,
            score_month=month,
            decision=decision,
            reason=reason,
            source_row={k: _jsonable(v, t.columns.get(k, "")) for k, v in row.items()},
        )
        eid = legacy_event_id(t.name, sid, "signal")
        ev = self._event(Event.of(payload, ts, symbol=symbol), eid)
        wts = wave_floor(ts)
        srow = SignalRow(
            eid, f"legacy:{sid}", wave_id_for(wts), wts, symbol, venue, action, week, month,
            decision, reason, ts,
        )  # fmt: skip
        return ImportItem(t.name, sid, "signal", str(eid), (ev,), signal=srow)
