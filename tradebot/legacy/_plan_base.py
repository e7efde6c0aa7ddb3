"""The planner's shared part: deterministic ids, the row-value helpers, table checks.

Owns the constants of the import (:data:`CLOSED_BEFORE_IMPORT`, :data:`ORIGIN_LEGACY`),
the deterministic ids (:func:`legacy_position_id`, :func:`legacy_event_id`: the same
source row always gets the same id, so even a lost mapping table cannot import a row
twice), :class:`_Skip` (a row not imported, with the report's reason) and
:class:`_PlannerBase`: one run's state (source, target, report, the items planned so far)
with the helpers every table's planner uses — exact Decimal values, prices on the tick,
aware UTC times, normalised symbols, the report counters' save/restore for a skipped row,
the required-column check of a table and the strict event check (:meth:`_event`).
The tables' planners: :mod:`tradebot.legacy._plan_positions`,
:mod:`tradebot.legacy._plan_signals`, :mod:`tradebot.legacy._plan_events`.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime, tzinfo
from decimal import Decimal
from typing import Any

from tradebot.domain import Instrument
from tradebot.events import Event, decode
from tradebot.legacy._convert import nearest_step, normalise_symbol, to_aware_utc, to_decimal_exact
from tradebot.legacy._model import AdoptionSpec, ImportItem, LegacySource, SourceTable, TargetState
from tradebot.legacy._report import ImportReport
from tradebot.legacy._schema import TableSpec

__all__ = [
    "CLOSED_BEFORE_IMPORT",
    "ORIGIN_LEGACY",
    "SnapshotBuilder",
    "legacy_event_id",
    "legacy_position_id",
]

CLOSED_BEFORE_IMPORT = "closed before import"
"""Close reason of a legacy-origin position the Reconciler finds flat on the exchange."""

ORIGIN_LEGACY = "legacy"
"""``positions.origin`` of imported positions."""

SnapshotBuilder = Callable[[AdoptionSpec], Mapping[str, Any]]
"""AdoptionSpec → ``position.snapshot`` data (the CLI passes the PositionActor's codec)."""

_NS = uuid.UUID("6f1d2c1e-9a0b-4c51-8d0e-3b7a4f1e2d10")


def legacy_position_id(source_table: str, source_id: str) -> str:
    """Our 16-hex-char position id of a legacy position row (deterministic)."""
    return hashlib.sha256(f"legacy|{source_table}|{source_id}".encode()).hexdigest()[:16]


def legacy_event_id(source_table: str, source_id: str, kind: str) -> uuid.UUID:
    """The journal event id of one source row's ``kind`` of event (deterministic)."""
    return uuid.uuid5(_NS, f"{source_table}|{source_id}|{kind}")


class _Skip(Exception):
    """This row is not imported; the message is the report's reason."""


def _jsonable(value: Any, data_type: str = "") -> Any:
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        d = to_decimal_exact(value, data_type)
        return None if d is None else str(d)
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return str(value)


class _PlannerBase:
    """One planning run's state and the helpers the tables' planners share."""

    def __init__(
        self,
        source: LegacySource,
        target: TargetState,
        *,
        instruments: Mapping[str, Instrument],
        account: str,
        naive_tz: tzinfo,
        now: datetime,
        snapshot_for: SnapshotBuilder,
        report: ImportReport,
    ) -> None:
        self.src = source
        self.target = target
        self.instruments = instruments
        self.account = account
        self.naive_tz = naive_tz
        self.now = now
        self.snapshot_for = snapshot_for
        self.r = report
        self.items: list[ImportItem] = []
        self.kept_position_ids: set[str] = set()  # imported now or before (source ids)

    # -- value helpers ------------------------------------------------------------------

    def _types(self, t: SourceTable) -> Mapping[str, str]:
        return t.columns

    def dec(self, t: SourceTable, row: Mapping[str, Any], col: str) -> Decimal | None:
        if col not in row:
            return None
        v = row[col]
        try:
            return to_decimal_exact(v, t.columns.get(col, ""))
        except ValueError as exc:
            raise _Skip(f"{col}: {exc}") from None

    def price(
        self,
        t: SourceTable,
        row: Mapping[str, Any],
        col: str,
        inst: Instrument | None,
        adj: list[str],
    ) -> Decimal | None:
        """A price that must be > 0: zero/negative → unknown (reported); on the tick."""
        raw = row.get(col)
        d = self.dec(t, row, col)
        if d is None:
            if isinstance(raw, float):  # NaN / inf
                self._unknown(t, row, col, raw, adj)
            return None
        if d <= 0:
            self._unknown(t, row, col, raw, adj)
            return None
        if inst is not None:
            q = nearest_step(d, inst.tick_size)
            if q <= 0:
                self._unknown(t, row, col, raw, adj)
                return None
            if q != d:
                self.r.count_moved(f"{t.name}.{col}")
                adj.append(f"{col} {d} → {q} (tick {inst.tick_size})")
            return q
        return d

    def _unknown(
        self, t: SourceTable, row: Mapping[str, Any], col: str, raw: Any, adj: list[str]
    ) -> None:
        self.r.prices_unknown.append(
            {"table": t.name, "id": str(row.get("id")), "column": col, "value": repr(raw)}
        )
        adj.append(f"{col} {raw!r} → unknown (a price must be > 0)")

    def when(
        self, row: Mapping[str, Any], col: str, adj: list[str] | None = None
    ) -> datetime | None:
        if col not in row:
            return None
        try:
            ts, naive = to_aware_utc(row[col], self.naive_tz)
        except ValueError as exc:
            raise _Skip(f"{col}: {exc}") from None
        if naive:
            self.r.naive_timestamps += 1
            if adj is not None and self.r.naive_tz != "UTC":
                adj.append(f"{col} naive, read as {self.r.naive_tz}")
        return ts

    def symbol(self, raw: Any, adj: list[str] | None = None) -> str:
        text = str(raw or "")
        try:
            s = normalise_symbol(text)
        except ValueError:
            raise _Skip("empty symbol") from None
        if s != text:
            self.r.symbols_normalised += 1
            if adj is not None:
                adj.append(f"symbol {text!r} → {s}")
        return s

    def _save(self) -> tuple[int, dict[str, int], int, int, int]:
        r = self.r
        return (
            r.floats_converted,
            dict(r.moved),
            len(r.prices_unknown),
            r.naive_timestamps,
            r.symbols_normalised,
        )

    def _restore(self, saved: tuple[int, dict[str, int], int, int, int]) -> None:
        """Forget what a skipped row counted: the money section covers imported rows."""
        r = self.r
        r.floats_converted, r.moved, n_unknown, r.naive_timestamps, r.symbols_normalised = saved
        del r.prices_unknown[n_unknown:]

    def _imported(self, row: Mapping[str, Any]) -> None:
        self.r.floats_converted += sum(1 for v in row.values() if isinstance(v, float))

    # -- tables --------------------------------------------------------------------------

    def check_columns(self, spec: TableSpec) -> SourceTable | None:
        """The table if present with its required columns; records missing/unknown columns."""
        rep = self.r.table(spec.name)
        t = self.src.tables.get(spec.name)
        if t is None:
            rep.present = False
            rep.note = "table not found: skipped"
            return None
        if t.error:
            rep.note = f"cannot read: {t.error}: skipped"
            return None
        cols = set(t.columns)
        rep.read = t.read
        rep.unknown_columns = sorted(cols - spec.known)
        optional_missing = [c for c in spec.optional if c not in cols]
        if spec.time_candidates:  # one time column of the candidates is enough
            present_times = [c for c in spec.time_candidates if c in cols]
            optional_missing = [c for c in optional_missing if c not in spec.time_candidates]
            if not present_times:
                optional_missing.append(" or ".join(spec.time_candidates))
        rep.missing_columns = [*[c for c in spec.required if c not in cols], *optional_missing]
        missing_required = [c for c in spec.required if c not in cols]
        if missing_required:
            for _ in range(t.read):
                rep.skip(f"required column missing: {', '.join(missing_required)}")
            rep.note = "required columns missing: table skipped"
            return None
        return t

    def time_column(self, spec: TableSpec, t: SourceTable) -> str | None:
        return next((c for c in spec.time_candidates if c in t.columns), None)

    def _event(self, ev: Event, event_id: uuid.UUID) -> Event:
        out = Event(
            type=ev.type,
            ts=ev.ts,
            data=ev.data,
            severity=ev.severity,
            position_id=ev.position_id,
            client_order_id=ev.client_order_id,
            symbol=ev.symbol,
            correlation_id=ev.correlation_id,
            event_id=event_id,
        )
        decode(out)  # strict: an event off its payload contract is a bug here, not data
        return out
