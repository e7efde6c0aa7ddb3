"""Recovery: a restarted PositionActor resumes from its snapshot and the exchange; an
untracked position (reconciler) is adopted.

Consumes: the newest ``position.snapshot`` (already loaded into the record), the venue's
position, stops and the entry order (looked up by client id).
Emits: ``entry.resolved``, ``reconcile.adopted``, ``stop.cancelled`` (duplicate stops left
by a crash), ``protection.*`` (the verification that follows), ``position.closed`` /
``rolled_back`` / ``failed``, ``position.snapshot``; resolves the opener's ticket when the
crash happened during the open.
Owns: the transitions of recovery: OPENING → (the open protocol continues, never a second
entry), CLOSING → ACTIVE (the close is decided again), OPENING → ACTIVE / CLOSED (adoption).
A FAILED snapshot stays FAILED (FAILED → CLOSED only, when the venue shows it flat).
"""

from __future__ import annotations

from decimal import Decimal

from tradebot.events import EventType
from tradebot.policies import NoValidStop, initial_stop_price, is_tighter

from ._lifecycle import Lifecycle
from ._manage import PositionManage

__all__ = ["PositionRecovery"]


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
            self._r.qty = Decimal(0)
            await self._cleanup_orders()
            await self._finish_closed("closed_while_down")
            self._resolve(False, "closed_while_down")
            return
        self._r.qty = pos.qty
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
        self._ev(EventType.RECONCILE_ADOPTED, qty=pos.qty, entry_price=pos.entry_price)
        stops = await self._venue_stops()
        if stops:
            self._r.stop = stops[0]
            self._r.stop_price = stops[0].trigger_price
        await self._verify("adopted")
        await self._snapshot()
