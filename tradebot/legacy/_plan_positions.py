"""The planner of ``monitoring.positions``: CLOSED / LIQUIDATED and OPEN rows.

Owns :class:`_PositionPlanner`: CLOSED / LIQUIDATED rows → ``positions`` CLOSED (origin
``legacy``) plus one ``legacy.position_imported`` event recording the source row; OPEN
rows → ``positions`` ACTIVE, the ``legacy.position_imported`` event and a
``position.snapshot`` built by the caller's codec (qty, entry, stop price, and the old
bot's trailing state as ours: phase and water mark, :meth:`_trailing`), with a
description of each open position for the report. Of two OPEN rows for one
(symbol, side) the newer is imported; a position tradebot already tracks live is not.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any, Literal

from tradebot.domain import Instrument, PositionSide
from tradebot.events import Event, EventType, LegacyPositionImported, Severity
from tradebot.legacy._convert import nearest_step, parse_side, to_aware_utc, to_decimal_exact
from tradebot.legacy._model import AdoptionSpec, ImportItem, PositionRow, SourceTable
from tradebot.legacy._plan_base import (
    CLOSED_BEFORE_IMPORT,
    _jsonable,
    _PlannerBase,
    _Skip,
    legacy_event_id,
    legacy_position_id,
)
from tradebot.legacy._schema import POSITIONS
from tradebot.policies import TrailingPhase, TrailingState

__all__: list[str] = []


class _PositionPlanner(_PlannerBase):
    """``monitoring.positions`` → positions, their import events and snapshots."""

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
