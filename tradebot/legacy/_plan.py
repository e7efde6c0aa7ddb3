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
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, tzinfo
from decimal import Decimal
from typing import Any, Literal

from tradebot.domain import Instrument, PositionSide
from tradebot.events import (
    Event,
    EventType,
    LegacyEventImported,
    LegacyPositionImported,
    LegacySignalImported,
    Severity,
    decode,
)
from tradebot.legacy._convert import (
    nearest_step,
    normalise_symbol,
    parse_side,
    to_aware_utc,
    to_decimal_exact,
)
from tradebot.legacy._model import (
    AdoptionSpec,
    ImportItem,
    ImportPlan,
    LegacySource,
    PositionRow,
    SignalRow,
    SourceTable,
    TargetState,
)
from tradebot.legacy._report import ImportReport
from tradebot.legacy._schema import (
    EVENTS,
    IMPORTED,
    NOT_IMPORTED,
    POSITIONS,
    RISK_EVENTS,
    SIGNALS,
    TRADES,
    TableSpec,
)
from tradebot.policies import TrailingPhase, TrailingState
from tradebot.signals import wave_floor, wave_id_for

__all__ = [
    "CLOSED_BEFORE_IMPORT",
    "ORIGIN_LEGACY",
    "SnapshotBuilder",
    "legacy_event_id",
    "legacy_position_id",
    "plan_import",
]

CLOSED_BEFORE_IMPORT = "closed before import"
"""Close reason of a legacy-origin position the Reconciler finds flat on the exchange."""

ORIGIN_LEGACY = "legacy"
"""``positions.origin`` of imported positions."""

SnapshotBuilder = Callable[[AdoptionSpec], Mapping[str, Any]]
"""AdoptionSpec → ``position.snapshot`` data (the CLI passes the PositionActor's codec)."""

_NS = uuid.UUID("6f1d2c1e-9a0b-4c51-8d0e-3b7a4f1e2d10")

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


class _Planner:
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

    # -- positions -----------------------------------------------------------------------

    def positions(self, trade_signal: Mapping[str, str]) -> None:
        spec = POSITIONS
        t = self.check_columns(spec)
        if t is None:
            return
        rep = self.r.table(spec.name)
        live = set(self.target.live_keys)
        # newest OPEN row first: of two OPEN rows for one (symbol, side) the newer is real
        rows = sorted(
            t.rows,
            key=lambda r: (
                str(r.get("status") or "").upper() != "OPEN",
                -(self._sort_ts(r)),
                str(r.get("id")),
            ),
        )
        for row in rows:
            sid = str(row["id"])
            key = (spec.name, sid)
            status = str(row.get("status") or "").strip().upper()
            try:
                money = self._position_money(t, row)
            except ValueError:
                money = (None, None)
            self.r.source_all.add(*money)
            if key in self.target.imported_keys:
                rep.already_imported += 1
                self.kept_position_ids.add(sid)
                self.r.source_kept.add(*money)
                if status == "OPEN":
                    self._describe_open_already(row, sid)
                continue
            saved = self._save()
            try:
                item = self._position(t, row, sid, status, trade_signal, live)
            except _Skip as skip:
                self._restore(saved)
                rep.skip(str(skip))
                if status == "OPEN":
                    self.r.open_positions.append(
                        {
                            "source_id": sid,
                            "symbol": str(row.get("symbol")),
                            "side": str(row.get("side")),
                            "adoption": "not imported",
                            "description": f"id {sid} {row.get('symbol')} {row.get('side')}: "
                            f"NOT imported ({skip}); if it is open on the exchange the "
                            "Reconciler will find it untracked and adopt it from there",
                        }
                    )
                continue
            self._imported(row)
            rep.imported += 1
            self.kept_position_ids.add(sid)
            self.r.source_kept.add(*money)
            self.items.append(item)

    def _sort_ts(self, row: Mapping[str, Any]) -> float:
        for col in ("opened_at", "last_update"):
            try:
                ts, _ = to_aware_utc(row.get(col), self.naive_tz)
            except ValueError:
                continue
            if ts is not None:
                return ts.timestamp()
        return 0.0

    def _position_money(
        self, t: SourceTable, row: Mapping[str, Any]
    ) -> tuple[Decimal | None, Decimal | None]:
        cols = t.columns
        pnl = to_decimal_exact(row.get("realized_pnl"), cols.get("realized_pnl", ""))
        fees = to_decimal_exact(row.get("fees"), cols.get("fees", ""))
        return pnl, fees

    def _position(
        self,
        t: SourceTable,
        row: Mapping[str, Any],
        sid: str,
        status: str,
        trade_signal: Mapping[str, str],
        live: set[tuple[str, str, str]],
    ) -> ImportItem:
        adj: list[str] = []
        if status not in ("OPEN", "CLOSED", "LIQUIDATED"):
            raise _Skip(f"unknown status {status!r}")
        try:
            side = parse_side(row.get("side"))
        except ValueError:
            raise _Skip(f"unknown side {row.get('side')!r}") from None
        symbol = self.symbol(row.get("symbol"), adj)
        inst = self.instruments.get(symbol)
        raw_qty = row.get("quantity")
        qty = self.dec(t, row, "quantity")
        if qty is None or qty <= 0:
            raise _Skip("quantity missing or not positive")
        if inst is not None:
            q = nearest_step(qty, inst.qty_step)
            if q <= 0:
                raise _Skip(f"quantity rounds to 0 on step {inst.qty_step}")
            if q != qty:
                self.r.count_moved(f"{t.name}.quantity")
                adj.append(f"quantity {qty} → {q} (step {inst.qty_step})")
            qty = q
        elif isinstance(raw_qty, float):
            adj.append(f"{symbol}: instrument unknown, values not rounded to tick/step")
        entry = self.price(t, row, "entry_price", inst, adj)
        exit_ = self.price(t, row, "exit_price", inst, adj) if status != "OPEN" else None
        stop = self.price(t, row, "stop_loss_price", inst, adj)
        act_price = self.price(t, row, "trailing_activation_price", inst, adj)
        cb = self.dec(t, row, "trailing_callback_rate")
        pnl = self.dec(t, row, "realized_pnl")
        fees = self.dec(t, row, "fees")
        opened = self.when(row, "opened_at", adj)
        closed = self.when(row, "closed_at", adj)
        last = self.when(row, "last_update", adj)
        if opened is None:
            opened = closed or last
            if opened is None:
                raise _Skip("no opened_at, closed_at or last_update time")
            adj.append("opened_at missing: taken from closed_at/last_update")
        exit_reason = str(row.get("exit_reason") or "")
        pid = legacy_position_id(t.name, sid)
        tid = row.get("trade_id")
        linked = trade_signal.get(str(tid)) if tid is not None else None
        signal_id = f"legacy:{linked}" if linked is not None else None
        activated = row.get("trailing_activated")
        activated = bool(activated) if activated is not None else None
        events: list[Event] = []
        if status == "OPEN":
            if entry is None:
                raise _Skip("open position without a valid entry price")
            lkey = (self.account, symbol, side.value)
            if lkey in live:
                raise _Skip(f"tradebot already tracks a live {symbol} {side.value} position")
            live.add(lkey)
            trailing = self._trailing(side, activated, stop, cb, act_price, row, inst, t)
            snap = dict(
                self.snapshot_for(
                    AdoptionSpec(
                        position_id=pid,
                        symbol=symbol,
                        position_side=side,
                        qty=qty,
                        entry_price=entry,
                        opened_at=opened,
                        stop_price=stop,
                        trailing=trailing,
                    )
                )
            )
            prow = PositionRow(
                pid, self.account, str(row.get("exchange") or "").lower(), symbol, side,
                "ACTIVE", qty, entry, stop, None, pnl, fees or Decimal(0), signal_id, opened,
                None, None,
            )  # fmt: skip
            imported_as: Literal["CLOSED", "ACTIVE"] = "ACTIVE"
            self._describe_open(sid, pid, prow, trailing, activated, cb, act_price, inst)
        else:
            if closed is None:
                closed = last or opened
                adj.append("closed_at missing: taken from last_update/opened_at")
            if closed < opened:
                raise _Skip("closed_at before opened_at")
            reason = exit_reason or ("liquidated" if status == "LIQUIDATED" else "closed")
            prow = PositionRow(
                pid, self.account, str(row.get("exchange") or "").lower(), symbol, side,
                "CLOSED", qty, entry, stop, exit_, pnl, fees or Decimal(0), signal_id, opened,
                closed, reason,
            )  # fmt: skip
            imported_as = "CLOSED"
            snap = {}
        payload = LegacyPositionImported(
            source_table=t.name,
            source_id=sid,
            legacy_status=status,
            imported_as=imported_as,
            position_side=side,
            symbol=symbol,
            venue=prow.venue,
            qty=qty,
            entry_price=entry,
            exit_price=exit_,
            stop_price=stop,
            realized_pnl_usdt=pnl,
            fees_usdt=fees,
            opened_at=opened,
            closed_at=prow.closed_at,
            close_reason=prow.close_reason or "",
            trailing_activated=activated,
            trailing_activation_price=act_price,
            trailing_callback_pct=cb,
            stop_order_id=str(row.get("stop_loss_order_id") or ""),
            adjustments=tuple(adj),
            source_row={k: _jsonable(v, t.columns.get(k, "")) for k, v in row.items()},
        )
        events.append(
            self._event(
                Event.of(payload, opened, position_id=pid, symbol=symbol),
                legacy_event_id(t.name, sid, "position"),
            )
        )
        if snap:
            events.append(
                self._event(
                    Event(
                        type=EventType.POSITION_SNAPSHOT,
                        ts=self.now,
                        data=snap,
                        severity=Severity.DEBUG,
                        position_id=pid,
                        symbol=symbol,
                    ),
                    legacy_event_id(t.name, sid, "snapshot"),
                )
            )
        return ImportItem(t.name, sid, "position", pid, tuple(events), position=prow)

    def _trailing(
        self,
        side: PositionSide,
        activated: bool | None,
        stop: Decimal | None,
        cb: Decimal | None,
        act_price: Decimal | None,
        row: Mapping[str, Any],
        inst: Instrument | None,
        t: SourceTable,
    ) -> TrailingState:
        """The old bot's trailing state as ours: activated → phase ACTIVE with the water
        mark the stop implies (stop = mark ∓ callback %); else INACTIVE (our activation
        rule applies from the next mark price)."""
        if not activated:
            return TrailingState()
        wm: Decimal | None = None
        if stop is not None and cb is not None and 0 < cb < 100:
            factor = 1 - cb / 100 if side is PositionSide.LONG else 1 + cb / 100
            wm = stop / factor
        else:
            seen = [
                p
                for p in (
                    act_price,
                    to_decimal_exact(row.get("current_price"), t.columns.get("current_price", "")),
                    to_decimal_exact(row.get("mark_price"), t.columns.get("mark_price", "")),
                )
                if p is not None and p > 0
            ]
            if seen:
                wm = max(seen) if side is PositionSide.LONG else min(seen)
        if wm is not None and inst is not None:
            wm = nearest_step(wm, inst.tick_size)
        return TrailingState(phase=TrailingPhase.ACTIVE, water_mark=wm)

    def _describe_open(
        self,
        sid: str,
        pid: str,
        p: PositionRow,
        trailing: TrailingState,
        activated: bool | None,
        cb: Decimal | None,
        act_price: Decimal | None,
        inst: Instrument | None,
    ) -> None:
        if trailing.phase is TrailingPhase.ACTIVE:
            tr = f"trailing ACTIVE, water mark {trailing.water_mark}"
        elif activated is None:
            tr = "trailing state unknown (column missing): INACTIVE"
        else:
            tr = "trailing not activated: INACTIVE"
        legacy_tr = []
        if act_price is not None:
            legacy_tr.append(f"legacy activation price {act_price}")
        if cb is not None:
            legacy_tr.append(f"legacy callback {cb} %")
        stop = f"stop {p.stop_price}" if p.stop_price is not None else "no stop known"
        inst_note = "" if inst is not None else "; instrument not in the import's table"
        self.r.open_positions.append(
            {
                "source_id": sid,
                "position_id": pid,
                "symbol": p.symbol,
                "side": p.position_side.value,
                "qty": str(p.qty),
                "entry_price": str(p.entry_price),
                "opened_at": p.opened_at.isoformat(),
                "stop_price": None if p.stop_price is None else str(p.stop_price),
                "trailing_phase": trailing.phase.value,
                "water_mark": None if trailing.water_mark is None else str(trailing.water_mark),
                "legacy_trailing_activation_price": None if act_price is None else str(act_price),
                "legacy_trailing_callback_pct": None if cb is None else str(cb),
                "adoption": "tracked",
                "description": (
                    f"id {sid} → {pid} {p.symbol} {p.position_side.value} qty {p.qty} entry "
                    f"{p.entry_price} opened {p.opened_at.isoformat()} (tradebot's aged-exit "
                    f"rule counts from it), {stop}; {tr}"
                    + (f" ({', '.join(legacy_tr)}; tradebot's trailing settings apply)"
                       if legacy_tr else "")
                    + "; tracked ACTIVE: open on the exchange → restarted from its snapshot, "
                    f"flat → closed '{CLOSED_BEFORE_IMPORT}'{inst_note}"
                ),
            }
        )  # fmt: skip

    def _describe_open_already(self, row: Mapping[str, Any], sid: str) -> None:
        pid = legacy_position_id(POSITIONS.name, sid)
        self.r.open_positions.append(
            {
                "source_id": sid,
                "position_id": pid,
                "symbol": str(row.get("symbol")),
                "side": str(row.get("side")),
                "adoption": "already imported",
                "description": f"id {sid} → {pid} {row.get('symbol')} {row.get('side')}: "
                "already imported by an earlier run (tracked; the Reconciler decides)",
            }
        )

    # -- signals -------------------------------------------------------------------------

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

    # -- events --------------------------------------------------------------------------

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

    # -- the rest ------------------------------------------------------------------------

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
