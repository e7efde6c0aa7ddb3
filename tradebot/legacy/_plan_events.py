"""The planner of ``events`` and ``monitoring.risk_events``: → ``legacy.event`` events.

Owns :class:`_EventPlanner`: each row of the old bot's event tables → one
``legacy.event`` journal event (its original type and severity, its JSON data as stored,
the columns we do not know under ``extra``), at the row's time; the old severity words map
to ours (:data:`_SEVERITY`, unknown → INFO); a row naming an imported position is tied to
that position's id.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from tradebot.events import Event, LegacyEventImported, Severity
from tradebot.legacy._model import ImportItem, SourceTable
from tradebot.legacy._plan_base import (
    _jsonable,
    _PlannerBase,
    _Skip,
    legacy_event_id,
    legacy_position_id,
)
from tradebot.legacy._schema import EVENTS, POSITIONS, TableSpec

__all__: list[str] = []

_SEVERITY = {
    "debug": Severity.DEBUG,
    "info": Severity.INFO,
    "notice": Severity.INFO,
    "low": Severity.INFO,
    "warning": Severity.WARNING,
    "warn": Severity.WARNING,
    "medium": Severity.WARNING,
    "error": Severity.ERROR,
    "high": Severity.ERROR,
    "critical": Severity.CRITICAL,
    "fatal": Severity.CRITICAL,
}


class _EventPlanner(_PlannerBase):
    """``events`` / ``monitoring.risk_events`` → ``legacy.event`` events."""

    def events(self, spec: TableSpec) -> None:
        t = self.check_columns(spec)
        if t is None:
            return
        rep = self.r.table(spec.name)
        tcol = self.time_column(spec, t)
        known = spec.known
        for row in t.rows:
            sid = str(row["id"])
            if (spec.name, sid) in self.target.imported_keys:
                rep.already_imported += 1
                continue
            saved = self._save()
            try:
                if tcol is None:
                    raise _Skip("no timestamp column")
                ts = self.when(row, tcol)
                if ts is None:
                    raise _Skip(f"{tcol} is NULL")
                item = self._legacy_event(t, spec, row, sid, ts, known)
            except _Skip as skip:
                self._restore(saved)
                rep.skip(str(skip))
                continue
            self._imported(row)
            rep.imported += 1
            self.items.append(item)

    def _legacy_event(
        self,
        t: SourceTable,
        spec: TableSpec,
        row: Mapping[str, Any],
        sid: str,
        ts: datetime,
        known: frozenset[str],
    ) -> ImportItem:
        sev_raw = str(row.get("severity") if spec is EVENTS else row.get("risk_level") or "")
        if row.get("severity" if spec is EVENTS else "risk_level") is None:
            sev_raw = ""
        severity = _SEVERITY.get(sev_raw.strip().lower(), Severity.INFO)
        lpid = row.get("position_id")
        pid = None
        if lpid is not None and str(lpid) in self.kept_position_ids:
            pid = legacy_position_id(POSITIONS.name, str(lpid))
        symbol = None
        if row.get("symbol"):
            symbol = self.symbol(row.get("symbol"))
        data_col = "event_data" if spec is EVENTS else "details"
        payload = LegacyEventImported(
            source_table=t.name,
            source_id=sid,
            original_type=str(row.get("event_type") or ""),
            original_severity=sev_raw,
            data=row.get(data_col),  # the JSON as stored (its numbers stay numbers)
            legacy_position_id="" if lpid is None else str(lpid),
            order_id=str(row.get("order_id") or ""),
            exchange=str(row.get("exchange") or ""),
            correlation_id=str(row.get("correlation_id") or ""),
            error_message=str(row.get("error_message") or ""),
            stack_trace=str(row.get("stack_trace") or ""),
            extra={k: _jsonable(v, t.columns.get(k, "")) for k, v in row.items() if k not in known},
        )
        eid = legacy_event_id(t.name, sid, "event")
        ev = self._event(
            Event.of(
                payload,
                ts,
                severity=severity,
                position_id=pid,
                symbol=symbol,
                correlation_id=str(row.get("correlation_id") or "") or None,
            ),
            eid,
        )
        return ImportItem(t.name, sid, "event", str(eid), (ev,))
