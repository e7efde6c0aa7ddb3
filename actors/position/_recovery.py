"""Recovery: a restarted PositionActor resumes from its snapshot and the exchange; an
untracked position (reconciler) is adopted.

Consumes: the newest ``position.snapshot`` (already loaded into the record), the venue's
position, stops and the entry order (looked up by client id).
Emits: ``entry.resolved``, ``reconcile.adopted``, ``position.exit_recorded`` (a position
found flat: its exit from the venue's executions), ``stop.cancelled`` (duplicate stops left
by a crash), ``protection.*`` (the verification that follows), ``position.closed`` /
``rolled_back`` / ``failed``, ``position.snapshot``; resolves the opener's ticket when the
crash happened during the open.
Owns: the transitions of recovery: OPENING → (the open protocol continues, never a second
entry), CLOSING → ACTIVE (the close is decided again), OPENING → ACTIVE / CLOSED (adoption).
A FAILED snapshot stays FAILED (FAILED → CLOSED only, when the venue shows it flat).
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from tradebot.domain import OrderRole, PositionSide, Side
from tradebot.errors import VenueError
from tradebot.events import EventType, Severity
from tradebot.ids import parse_client_order_id
from tradebot.legacy import CLOSED_BEFORE_IMPORT
from tradebot.policies import NoValidStop, initial_stop_price, is_tighter
from tradebot.ports import Fill

from ._lifecycle import Lifecycle
from ._manage import PositionManage

__all__ = ["CLOSED_BEFORE_IMPORT", "PositionRecovery"]


_EXEC_LOOKBACK = timedelta(days=7)
"""How far back the venue's executions are searched when the open time is unknown."""

_ROLE_REASON = {
    OrderRole.STOP: "stop",
    OrderRole.EMERGENCY_STOP: "stop",
    OrderRole.TAKE_PROFIT: "take_profit",
    OrderRole.AGED_EXIT: "aged_exit",
}


def _how_closed(fills: list[Fill], position_id: str) -> str:
    """The reason of the last closing fill: the venue's (``stop``, ``liquidation``, ``adl``),
    else the role of our order that filled, else ``closed_by_hand``."""
    last = fills[-1]
    if last.reason in ("stop", "liquidation", "adl"):
        return last.reason
    parsed = parse_client_order_id(last.client_order_id)
    if parsed is not None and parsed[0] == position_id:
        return _ROLE_REASON.get(parsed[1], "close")
    if not last.client_order_id:
        return "stop"  # a venue-generated order on a position-level stop (Bybit trading-stop)
    return "closed_by_hand"


class PositionRecovery(PositionManage):
    """Restart from snapshot + exchange; adoption (see the module docstring)."""

    async def _recover(self) -> None:
        """Rebuild from the snapshot (already loaded) and the exchange."""
        if self.lifecycle in (Lifecycle.CLOSED, Lifecycle.ROLLED_BACK):
            self._resolve(False, self._r.close_reason or self.lifecycle.value.lower())
            return
        if self.lifecycle is Lifecycle.OPENING:
            # crashed inside the open protocol: the intent was journaled, the entry may or
            # may not exist; resolve by client id, never submit a second entry
            order = await self._resolve_entry(after="restart")
            if order is None:
                return
            # a stop placed before the crash (early protection of a partial fill, or the
            # attached one) is adopted instead of placing a second one
            stops = await self._venue_stops()
            if stops:
                keep = stops[0]
                for st in stops[1:]:
                    if is_tighter(st.trigger_price, keep.trigger_price, self.position_side):
                        keep = st
                for st in stops:
                    if st is not keep:
                        await self._keeper.cancel_stop_quietly(st)
                self._r.stop, self._r.stop_price = keep, keep.trigger_price
            intended = None
            if self._caps.attached_stop and self._ticket is not None:
                try:
                    intended = initial_stop_price(
                        self._ticket.request.reference_price,
                        self.position_side,
                        self.instrument,
                        self._s.stop_loss,
                    )
                except (NoValidStop, ValueError):
                    intended = None
            await self._confirm_entry(order, intended)
            return
        if self.lifecycle is Lifecycle.CLOSING:
            self._transition(Lifecycle.ACTIVE, "recovered_while_closing")
        pos = await self._venue_position()
        if pos is None:
            how = await self._record_exit_while_down()
            self._r.qty = Decimal(0)
            await self._cleanup_orders()
            reason = self._closed_while_down_reason(how)
            await self._finish_closed(reason)
            self._resolve(False, reason)
            return
        self._r.qty = pos.qty
        if self._r.imported:
            self._r.imported = False  # seen on the venue: from now on ours like any other
            await self._snapshot()
        await self._adopt_aged_exit()
        stops = await self._venue_stops()
        mine = [
            s
            for s in stops
            if self._r.stop_price is not None and s.trigger_price == self._r.stop_price
        ]
        if mine:
            self._r.stop = mine[0]
        elif stops:
            self._r.stop = stops[0]
        await self._verify("recovered")
        self._resolve(
            self.lifecycle is Lifecycle.ACTIVE,
            "" if self.lifecycle is Lifecycle.ACTIVE else self._r.close_reason,
        )

    async def _adopt_aged_exit(self) -> None:
        """After a crash during an aged-exit replacement the venue may hold the new exit
        order (its reply was lost) while the snapshot names the old one: keep the newest
        open aged exit of this position (highest sequence number) as the live one and
        cancel any other, so there is never a second exit order left behind."""
        try:
            orders = await self._venue.open_orders(self.symbol)
        except VenueError as exc:
            self._ev(EventType.EXCHANGE_ERROR, Severity.WARNING, what="open_orders", error=exc)
            return
        aged = []
        for o in orders:
            parsed = parse_client_order_id(o.client_order_id)
            if parsed and parsed[0] == self.position_id and parsed[1] is OrderRole.AGED_EXIT:
                aged.append((parsed[2], o))
        if not aged:
            if self._r.aged_cid:
                self._r.aged_cid, self._r.aged_price = "", None  # gone while we were down
            return
        aged.sort(key=lambda x: x[0])
        keep = aged[-1][1]
        self._r.aged_cid, self._r.aged_price = keep.client_order_id, keep.price
        for _seq, o in aged[:-1]:
            try:
                await self._venue.cancel_order(self.symbol, o.client_order_id)
            except VenueError as exc:
                self._ev(
                    EventType.EXCHANGE_ERROR,
                    Severity.WARNING,
                    o.client_order_id,
                    what="cancel_order",
                    error=exc,
                )

    def _closed_while_down_reason(self, how: str) -> str:
        if self._r.origin == "legacy" and self._r.imported:
            return CLOSED_BEFORE_IMPORT
        return f"closed_while_down ({how})"

    async def _record_exit_while_down(self) -> str:
        """The position is flat on the venue and nobody saw it close: find its closing
        executions (since it opened) and journal ``position.exit_recorded`` with the exit
        price, PnL and fees. Returns how it closed (``stop``, ``liquidation``,
        ``closed_by_hand``, …, or ``unknown`` when the venue's history has nothing)."""
        since = self._r.opened_at or (self._clock.now() - _EXEC_LOOKBACK)
        try:
            fills = await self._retry(
                "executions",
                lambda: self._venue.executions(self.symbol, since),
                self._s.execution.query_attempts,
            )
        except VenueError as exc:
            self._ev(EventType.EXCHANGE_ERROR, Severity.WARNING, what="executions", error=exc)
            fills = []
        closing = Side.SELL if self.position_side is PositionSide.LONG else Side.BUY
        mine = [f for f in fills if f.position_side is self.position_side and f.side is closing]
        # the newest closing fills that add up to what the position held
        want = self._r.qty if self._r.qty > 0 else self._r.filled_qty
        picked: list[Fill] = []
        total = Decimal(0)
        for f in reversed(mine):
            if want > 0 and total >= want:
                break
            picked.append(f)
            total += f.qty
        picked.reverse()
        if not picked:
            self._ev(EventType.POSITION_EXIT_RECORDED, Severity.WARNING, reason="unknown")
            return "unknown"
        notional = sum((f.qty * f.price for f in picked), Decimal(0))
        exit_price = (notional / total).quantize(self.instrument.tick_size)
        entry = self._r.entry_price
        pnl = None
        if entry is not None:
            sign = 1 if self.position_side is PositionSide.LONG else -1
            pnl = sign * (notional - entry * total)
        fees = sum((f.fee_usdt for f in picked), Decimal(0))
        how = _how_closed(picked, self.position_id)
        await self._ev_durable(
            EventType.POSITION_EXIT_RECORDED,
            qty=total,
            exit_price=exit_price,
            realized_pnl_usdt=pnl,
            fees_usdt=fees,
            reason=how,
            fills=len(picked),
            trade_ids=[f.trade_id for f in picked],
        )
        return how

    async def _adopt(self) -> None:
        """A position found on the exchange without our intent: protect it (emergency stop
        when it has none) and manage it."""
        self._r.adopted = True
        pos = await self._venue_position()
        if pos is None:
            self._transition(Lifecycle.CLOSED, "nothing_to_adopt")
            self._r.close_reason = "nothing_to_adopt"
            return
        self._r.qty = self._r.filled_qty = pos.qty
        self._r.entry_price = pos.entry_price
        self._r.opened_at = self._clock.now()
        self._transition(Lifecycle.ACTIVE, "adopted")
        self._ev(
            EventType.RECONCILE_ADOPTED,
            qty=pos.qty,
            entry_price=pos.entry_price,
            account=self.account,
            venue=self._caps.venue,
        )
        stops = await self._venue_stops()
        if stops:
            self._r.stop = stops[0]
            self._r.stop_price = stops[0].trigger_price
        await self._verify("adopted")
        await self._snapshot()
