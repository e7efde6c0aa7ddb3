"""The PositionActor's exits: close at market, flatten (or the emergency stop), partial
take-profit, the aged-position exit, external closes, and ending the actor.

Consumes (from the other parts): ``Close(reason)`` and the decisions that end a position
(protection breach, aged max loss, stop would trigger at once), mark prices for the
take-profit levels, fills of our exit orders, the aged-exit clock.
Emits: ``position.closing`` / ``position.closed`` / ``position.rolled_back`` /
``position.failed``, ``position.flatten_intent`` / ``_verified`` / ``_failed``,
``order.intent`` (durable, before each venue call), ``order.rejected``,
``order.cancelled``, ``tp.placed`` / ``tp.filled``, ``aged.*``, ``stop.triggered``,
``stop.emergency``, ``alert.raised`` (with ``message``), ``position.snapshot``.
Owns: the exit orders (take-profit orders, the one aged exit order) and their
cancellation; the lifecycle moves into CLOSING / CLOSED / ROLLED_BACK / FAILED (always
through the transition table). A close that fails returns the position to the state it
came from; a FAILED position stays FAILED while it is being closed (FAILED → CLOSED only).
"""

from __future__ import annotations

from decimal import Decimal

import trio

from tradebot.domain import OrderRole, OrderStatus, PositionSide
from tradebot.errors import OutcomeUnknown, UnknownOrder, VenueError, WouldTriggerImmediately
from tradebot.events import EventType, Severity
from tradebot.policies import (
    AgedPhase,
    NoValidStop,
    aged_target,
    breakeven_stop_price,
    due_take_profits,
    emergency_stop_price,
    is_tighter,
    should_replace_exit,
)
from tradebot.ports import OrderState, ReduceRequest

from ._base import PositionBase
from ._lifecycle import Lifecycle
from ._stop_keeper import StopFailed

__all__ = ["PositionExits"]


class PositionExits(PositionBase):
    """Close, flatten, take-profit, aged exit (see the module docstring)."""

    # --- flatten / close ---------------------------------------------------------------

    async def _market_reduce(self, qty: Decimal, reason: str) -> bool:
        """Reduce-only market order for ``qty`` then verify the side is flat."""
        cid = self._r.next_cid(OrderRole.CLOSE)
        await self._ev_durable(
            EventType.ORDER_INTENT, cid=cid, qty=qty, reason=reason, role=OrderRole.CLOSE.name
        )
        req = ReduceRequest(
            symbol=self.symbol,
            position_side=self.position_side,
            qty=qty,
            client_order_id=cid,
            role=OrderRole.CLOSE,
        )
        try:
            await self._retry("place_reduce", lambda: self._venue.place_reduce(req), 2)
        except OutcomeUnknown:
            pass  # verify below decides
        except VenueError as exc:
            self._ev(EventType.ORDER_REJECTED, Severity.ERROR, cid, error=exc, code=exc.code)
        try:
            pos = await self._venue_position()
        except VenueError as exc:
            self._ev(EventType.EXCHANGE_ERROR, Severity.ERROR, what="positions", error=exc)
            return False
        if pos is None:
            return True
        self._r.qty = pos.qty
        return False

    async def _flatten_or_emergency(self, reason: str) -> None:
        """Stop placement failed: flatten the filled qty and verify flat; if that fails,
        an emergency wide stop and a critical alert.

        Flattened: OPENING / ACTIVE → ROLLED_BACK (as journaled so far), FAILED → CLOSED
        (FAILED leaves only to CLOSED). Not flattened: → FAILED (a FAILED position stays
        FAILED and alerts again).
        """
        await self._ev_durable(
            EventType.FLATTEN_INTENT, Severity.ERROR, reason=reason, qty=self._r.qty
        )
        for attempt in range(1, self._s.execution.flatten_attempts + 1):
            if await self._market_reduce(self._r.qty, f"flatten: {reason}"):
                await self._ev_durable(
                    EventType.FLATTEN_VERIFIED, reason=reason, qty=self._r.filled_qty
                )
                self._r.qty = Decimal(0)
                await self._cleanup_orders()
                if self.lifecycle is Lifecycle.FAILED:
                    await self._finish_closed(f"flattened: {reason}")
                else:
                    await self._finish_closed(f"rolled_back: {reason}", Lifecycle.ROLLED_BACK)
                self._resolve(False, f"{reason}; flattened")
                return
            self._ev(EventType.FLATTEN_FAILED, Severity.ERROR, attempt=attempt, reason=reason)
            await trio.sleep(self._s.execution.retry_backoff_s * attempt)
        # flatten failed: emergency wide stop + critical alert
        assert self._r.entry_price is not None
        placed: Decimal | None = None
        try:
            price = emergency_stop_price(
                self._r.entry_price, self.position_side, self.instrument, self._s.stop_loss
            )
            st = await self._keeper.place_new_stop(
                price, "emergency", role=OrderRole.EMERGENCY_STOP
            )
            placed = st.trigger_price
            self._ev(
                EventType.EMERGENCY_STOP_PLACED,
                Severity.CRITICAL,
                st.client_order_id or None,
                stop_price=placed,
            )
        except (NoValidStop, ValueError, WouldTriggerImmediately, StopFailed) as exc:
            self._ev(
                EventType.EMERGENCY_STOP_PLACED, Severity.CRITICAL, placed=False, error=str(exc)
            )
        if self.lifecycle is not Lifecycle.FAILED:
            self._transition(Lifecycle.FAILED, f"flatten_failed: {reason}")
        self._r.close_reason = f"flatten_failed: {reason}"
        self._ev(
            EventType.ALERT_RAISED,
            Severity.CRITICAL,
            reason="flatten_failed",
            detail=reason,
            message=(
                f"{self.symbol} {self.position_side.value}: flatten failed ({reason}); "
                + (
                    f"emergency stop at {placed}"
                    if placed is not None
                    else "NO emergency stop could be placed"
                )
            ),
            emergency_stop=placed,
            qty=self._r.qty,
        )
        await self._ev_durable(
            EventType.POSITION_FAILED, Severity.CRITICAL, reason=reason, emergency_stop=placed
        )
        await self._snapshot()
        self._resolve(False, f"{reason}; flatten failed; emergency stop")

    async def _close(self, reason: str) -> None:
        """Close at market (reduce-only), verify flat, cancel leftovers, end the actor.

        OPENING / ACTIVE → CLOSING → CLOSED. A FAILED position stays FAILED while its
        reduce orders run (FAILED → CLOSED only). When the close fails the position
        returns to the state it came from (ACTIVE stays ACTIVE, FAILED stays FAILED) and
        an alert is raised; that state is what the snapshot carries.
        """
        if self.lifecycle in (Lifecycle.CLOSED, Lifecycle.ROLLED_BACK):
            return
        came_from = self.lifecycle
        if came_from is not Lifecycle.FAILED:
            self._transition(Lifecycle.CLOSING, reason)
        await self._ev_durable(EventType.POSITION_CLOSING, reason=reason, qty=self._r.qty)
        await self._cancel_exit_orders()
        for _attempt in range(self._s.execution.flatten_attempts):
            try:
                # close what the venue holds, not what events said last
                pos = await self._venue_position()
                qty = Decimal(0) if pos is None else pos.qty
                self._r.qty = qty
            except VenueError:
                qty = self._r.qty
            if qty <= 0:
                break
            if await self._market_reduce(qty, reason):
                self._r.qty = Decimal(0)
                break
            await trio.sleep(self._s.execution.retry_backoff_s)
        if self._r.qty > 0:
            if came_from is not Lifecycle.FAILED:
                self._transition(came_from, f"close_failed: {reason}")
            self._ev(EventType.FLATTEN_FAILED, Severity.ERROR, reason=reason, qty=self._r.qty)
            self._ev(
                EventType.ALERT_RAISED,
                Severity.ERROR,
                reason="close_failed",
                detail=reason,
                message=(
                    f"{self.symbol} {self.position_side.value}: close failed ({reason}); "
                    f"{self._r.qty} still held, stays {came_from.value}"
                ),
            )
            await self._snapshot()
            return
        await self._cleanup_orders()
        await self._finish_closed(reason)

    async def _close_part(self, fraction: Decimal, reason: str) -> None:
        """Reduce-only partial close of ``fraction`` (in (0, 1)) of the current quantity.

        Only an ACTIVE position; the stop stays in place (the exchange-side stop covers the
        smaller position; the next verification re-checks it). A part below ``min_qty`` is
        journaled ``order.rejected`` and nothing is sent; a remainder below ``min_qty``
        closes the whole position (:meth:`_close`).
        """
        if self.lifecycle is not Lifecycle.ACTIVE:
            return
        part = self.instrument.floor_qty(self._r.qty * fraction)
        if part <= 0 or part < self.instrument.min_qty:
            self._ev(
                EventType.ORDER_REJECTED,
                Severity.WARNING,
                None,
                error=f"partial close of {fraction} is {part}, below min_qty "
                f"{self.instrument.min_qty}",
                reason=reason,
            )
            return
        if self._r.qty - part < self.instrument.min_qty:
            await self._close(reason)
            return
        cid = self._r.next_cid(OrderRole.CLOSE)
        await self._ev_durable(
            EventType.ORDER_INTENT,
            cid=cid,
            qty=part,
            reason=f"partial close: {reason}",
            role=OrderRole.CLOSE.name,
        )
        req = ReduceRequest(
            symbol=self.symbol,
            position_side=self.position_side,
            qty=part,
            client_order_id=cid,
            role=OrderRole.CLOSE,
        )
        try:
            await self._retry("place_reduce", lambda: self._venue.place_reduce(req), 2)
        except OutcomeUnknown:
            pass  # the position read below says what happened
        except VenueError as exc:
            self._ev(EventType.ORDER_REJECTED, Severity.ERROR, cid, error=exc, code=exc.code)
        try:
            pos = await self._venue_position()
        except VenueError as exc:
            self._ev(EventType.EXCHANGE_ERROR, Severity.ERROR, what="positions", error=exc)
            return
        if pos is None:
            self._r.qty = Decimal(0)
            await self._cleanup_orders()
            await self._finish_closed(reason)
            return
        self._r.qty = pos.qty
        await self._snapshot()

    async def _cancel_exit_orders(self) -> None:
        for cid in [*self._r.tp_orders, *([self._r.aged_cid] if self._r.aged_cid else [])]:
            try:
                await self._retry(
                    "cancel_order",
                    lambda c=cid: self._venue.cancel_order(  # type: ignore[misc]
                        self.symbol, c
                    ),
                    3,
                )
                self._ev(EventType.ORDER_CANCELLED, cid=cid)
            except VenueError:
                pass
        self._r.tp_orders.clear()
        self._r.aged_cid = ""
        self._r.aged_price = None

    async def _cleanup_orders(self) -> None:
        """Cancel everything this position left on the venue (no zombies)."""
        await self._cancel_exit_orders()
        try:
            stops = await self._venue_stops()
        except VenueError:
            stops = []
        for s in stops:
            await self._keeper.cancel_stop_quietly(s)
        self._r.stop = None

    async def _finish_closed(self, reason: str, final: Lifecycle = Lifecycle.CLOSED) -> None:
        """End the position in ``final`` (CLOSED or ROLLED_BACK), journal it, stop."""
        self._transition(final, reason)
        self._r.close_reason = reason
        etype = (
            EventType.POSITION_CLOSED
            if final is Lifecycle.CLOSED
            else EventType.POSITION_ROLLED_BACK
        )
        await self._ev_durable(
            etype, reason=reason, filled_qty=self._r.filled_qty, entry_price=self._r.entry_price
        )
        await self._snapshot()
        self._finish()

    def _finish(self) -> None:
        if self._finished:
            return
        self._finished = True
        if getattr(self, "timers", None) is not None:
            self.timers.cancel_all()
        self.stop()
        if self._on_closed is not None:
            self._on_closed(self)

    async def _check_external_close(self, reason: str) -> None:
        """Confirm with the venue; if flat, end with ``reason`` and cancel leftovers."""
        try:
            pos = await self._venue_position()
        except VenueError:
            return  # the periodic verify will look again
        if pos is not None:
            self._r.qty = pos.qty
            return
        if self.lifecycle is Lifecycle.CLOSING:
            return  # our own close; _close finishes
        if reason == "stop_triggered":
            self._ev(EventType.STOP_TRIGGERED, stop_price=self._r.stop_price)
        self._r.qty = Decimal(0)
        await self._cleanup_orders()
        await self._finish_closed(reason)

    async def _take_profits(self, mark: Decimal) -> None:
        assert self._r.entry_price is not None
        due = due_take_profits(
            settings=self._s.take_profit,
            side=self.position_side,
            instrument=self.instrument,
            entry_price=self._r.entry_price,
            mark_price=mark,
            filled_qty=self._r.filled_qty,
            remaining_qty=self._r.qty,
            done=self._r.tp_done | set(self._r.tp_orders.values()),
        )
        for order in due:
            if order.qty <= 0:
                self._r.tp_done.add(order.level_index)
                self._ev(EventType.TP_PLACED, level=order.level_index, skipped=order.reason)
                continue
            cid = self._r.next_cid(OrderRole.TAKE_PROFIT)
            await self._ev_durable(
                EventType.ORDER_INTENT,
                cid=cid,
                role="TAKE_PROFIT",
                level=order.level_index,
                qty=order.qty,
                mark_price=mark,
            )
            req = ReduceRequest(
                symbol=self.symbol,
                position_side=self.position_side,
                qty=order.qty,
                client_order_id=cid,
                role=OrderRole.TAKE_PROFIT,
            )
            st: OrderState | None
            try:
                st = await self._retry("place_reduce", lambda r=req: self._venue.place_reduce(r), 3)  # type: ignore[misc]
            except OutcomeUnknown:
                st = await self._query_order(cid)
                if st is None:
                    continue
            except VenueError as exc:
                self._ev(
                    EventType.ORDER_REJECTED,
                    Severity.WARNING,
                    cid,
                    error=exc,
                    code=exc.code,
                    level=order.level_index,
                )
                continue
            self._r.tp_orders[cid] = order.level_index
            self._ev(EventType.TP_PLACED, cid=cid, level=order.level_index, qty=order.qty)
            await self._snapshot()
            if st is not None and st.status is OrderStatus.FILLED:
                await self._tp_filled(cid, st.filled_qty, st.avg_fill_price)
            if self.lifecycle is not Lifecycle.ACTIVE:
                return

    async def _tp_filled(self, cid: str, qty: Decimal, price: Decimal | None) -> None:
        level = self._r.tp_orders.pop(cid, None)
        if level is None or level in self._r.tp_done:
            return
        first = not self._r.tp_done
        self._r.tp_done.add(level)
        self._r.qty = max(Decimal(0), self._r.qty - qty)
        await self._ev_durable(
            EventType.TP_FILLED,
            cid=cid,
            level=level,
            qty=qty,
            price=price,
            remaining_qty=self._r.qty,
        )
        if self._r.qty <= 0:
            await self._cleanup_orders()
            await self._finish_closed("take_profit_complete")
            return
        if (
            first
            and self._s.take_profit.breakeven_after_first
            and self._r.entry_price is not None
            and self._r.stop_price is not None
        ):
            be = breakeven_stop_price(
                self._r.entry_price,
                self.position_side,
                self.instrument,
                self._s.take_profit.breakeven_offset_pct,
            )
            mark = self._mark
            protective = mark is None or (
                be < mark if self.position_side is PositionSide.LONG else be > mark
            )
            if (
                is_tighter(be, self._r.stop_price, self.position_side)
                and protective
                and await self._keeper.move_stop(be, "take_profit_breakeven")
            ):
                self._ev(EventType.TRAILING_BREAKEVEN, reason="take_profit", stop_price=be)
        await self._snapshot()

    async def _on_age_tick(self) -> None:
        if (
            self.lifecycle is not Lifecycle.ACTIVE
            or self._r.entry_price is None
            or self._r.opened_at is None
        ):
            return
        t = aged_target(
            opened_at=self._r.opened_at,
            now=self._clock.now(),
            entry_price=self._r.entry_price,
            side=self.position_side,
            instrument=self.instrument,
            settings=self._s.aged,
        )
        if t.phase is AgedPhase.NOT_AGED:
            return
        if not self._r.aged_started:
            self._r.aged_started = True
            self._ev(
                EventType.AGED_STARTED,
                age_h=(self._clock.now() - self._r.opened_at).total_seconds() / 3600,
            )
        if t.phase is AgedPhase.MARKET_CLOSE:
            self._ev(EventType.AGED_MARKET_CLOSE, loss_pct=t.loss_pct)
            await self._close("aged_max_loss")
            return
        if not should_replace_exit(self._r.aged_price, t, self.instrument.tick_size):
            return
        old_cid = self._r.aged_cid
        if old_cid:
            try:
                await self._retry(
                    "cancel_order", lambda: self._venue.cancel_order(self.symbol, old_cid), 3
                )
            except UnknownOrder:
                # gone: filled or cancelled by the venue; check the position
                await self._check_external_close("aged_exit")
                if self.lifecycle is not Lifecycle.ACTIVE:
                    return
            except VenueError as exc:
                self._ev(
                    EventType.EXCHANGE_ERROR,
                    Severity.WARNING,
                    old_cid,
                    what="cancel_order",
                    error=exc,
                )
                return
        cid = self._r.next_cid(OrderRole.AGED_EXIT)
        assert t.price is not None
        await self._ev_durable(
            EventType.ORDER_INTENT,
            cid=cid,
            role="AGED_EXIT",
            price=t.price,
            qty=self._r.qty,
            phase=t.phase.value,
        )
        req = ReduceRequest(
            symbol=self.symbol,
            position_side=self.position_side,
            qty=self._r.qty,
            client_order_id=cid,
            price=t.price,
            role=OrderRole.AGED_EXIT,
        )
        try:
            st = await self._retry("place_reduce", lambda: self._venue.place_reduce(req), 3)
        except VenueError as exc:
            self._r.aged_cid, self._r.aged_price = "", None
            self._ev(EventType.ORDER_REJECTED, Severity.WARNING, cid, error=exc, code=exc.code)
            return
        self._r.aged_cid, self._r.aged_price = cid, t.price
        etype = EventType.AGED_EXIT_MOVED if old_cid else EventType.AGED_EXIT_PLACED
        self._ev(
            etype,
            cid=cid,
            price=t.price,
            phase=t.phase.value,
            loss_pct=t.loss_pct,
            hours_past_grace=t.hours_past_grace,
        )
        await self._snapshot()
        if st.status is OrderStatus.FILLED:
            await self._check_external_close("aged_exit")
