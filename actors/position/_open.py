"""The open protocol (docs/ARCHITECTURE.md §4): atomic entry + stop.

Consumes: the :class:`OpenTicket`'s :class:`tradebot.ports.OpenRequest` (in ``on_start``,
before any message is handled, so nothing races it).
Emits: ``entry.intent`` (durable, before anything reaches the venue), ``position.opening``,
``entry.submitted`` / ``acked`` / ``filled`` / ``partial_fill`` / ``rejected`` /
``outcome_unknown`` / ``resolved``, ``stop.rejected``, ``stop.confirmed``,
``position.active`` / ``rolled_back`` / ``failed``, ``alert.raised`` (with ``message``),
``position.snapshot``; resolves the ticket exactly once.
Owns: the entry order (its client order id is deterministic; an unknown outcome is
resolved by looking it up, never by a second submission) and the OPENING → ACTIVE /
ROLLED_BACK / FAILED transitions.

Bybit: the stop rides on the entry (``attached_stop``) and is confirmed on the position.
Binance: the stop is placed on fill — already on the filled part of a partial fill.
Stop rejected because the mark is through it: close at market. Other stop failures:
bounded retries, then flatten the filled quantity, then the emergency stop.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import trio

from tradebot.domain import OrderRole, OrderStatus, OrderType
from tradebot.errors import (
    DuplicateClientOrderId,
    OutcomeUnknown,
    RejectedError,
    TransientError,
    UnknownOrder,
    VenueError,
    WouldTriggerImmediately,
)
from tradebot.events import EventType, Severity
from tradebot.ids import client_order_id
from tradebot.policies import NoValidStop, initial_stop_price, is_tighter
from tradebot.ports import EntryRequest, OpenRequest, OrderState

from ._exits import PositionExits
from ._lifecycle import Lifecycle
from ._stop_keeper import StopFailed

__all__ = ["PositionOpen"]


class PositionOpen(PositionExits):
    """The open protocol (see the module docstring)."""

    async def _open(self, req: OpenRequest) -> None:
        self._r.req_qty = req.qty
        try:
            intended = initial_stop_price(
                req.reference_price, self.position_side, self.instrument, self._s.stop_loss
            )
        except (NoValidStop, ValueError) as exc:
            await self._rollback(f"no_valid_stop: {exc}")
            return
        stop_cid = client_order_id(self.position_id, OrderRole.STOP, 1)
        await self._ev_durable(
            EventType.ENTRY_INTENT,
            cid=self._r.entry_cid,
            qty=req.qty,
            reference_price=req.reference_price,
            intended_stop=intended,
            stop_client_order_id=stop_cid,
            signal_id=req.signal_id,
            wave_ts=req.wave_ts,
            score_week=req.score_week,
            score_month=req.score_month,
            attached_stop=self._caps.attached_stop,
            venue=self._caps.venue,
            account=self.account,
        )
        await self._snapshot()
        self._ev(EventType.POSITION_OPENING, cid=self._r.entry_cid)
        entry_req = self._keeper.entry_request(req.qty, intended)
        order: OrderState | None
        try:
            self._ev(
                EventType.ENTRY_SUBMITTED,
                cid=self._r.entry_cid,
                qty=req.qty,
                stop_price=entry_req.stop_price,
            )
            order = await self._submit_entry(entry_req)
            self._ev(
                EventType.ENTRY_ACKED,
                cid=self._r.entry_cid,
                status=order.status,
                venue_order_id=order.venue_order_id,
            )
        except (OutcomeUnknown, DuplicateClientOrderId) as exc:
            if not self._entry_unknown_journaled:
                self._ev(
                    EventType.ENTRY_OUTCOME_UNKNOWN, Severity.WARNING, self._r.entry_cid, error=exc
                )
            order = await self._resolve_entry()
            if order is None:
                return
        except (RejectedError, TransientError) as exc:
            self._ev(
                EventType.ENTRY_REJECTED,
                Severity.WARNING,
                self._r.entry_cid,
                error=exc,
                code=exc.code,
            )
            await self._rollback(f"entry_rejected: {exc.code or type(exc).__name__}")
            return
        await self._confirm_entry(order, intended)

    async def _submit_entry(self, entry_req: EntryRequest) -> OrderState:
        """Submit the entry; when no answer came within ``entry_probe_after_s``, look the
        client id up in parallel and continue as soon as the venue shows it filled.

        A lost answer (timeout after the venue accepted) would otherwise leave a filled
        position without its stop for the whole request timeout. The lookup never submits
        anything, so there is still never a second entry.

        Raises:
            VenueError: the submission's error when the lookup found nothing meanwhile.
        """
        ex = self._s.execution
        found: list[OrderState] = []
        failed: list[VenueError] = []

        async def submit(cancel: trio.CancelScope) -> None:
            try:
                found.append(
                    await self._retry(
                        "place_entry",
                        lambda: self._keeper.submit_entry(entry_req),
                        ex.stop_attempts,
                    )
                )
            except VenueError as exc:
                failed.append(exc)
            cancel.cancel()

        async def probe(cancel: trio.CancelScope) -> None:
            await trio.sleep(ex.entry_probe_after_s)
            self._entry_unknown_journaled = True
            self._ev(
                EventType.ENTRY_OUTCOME_UNKNOWN,
                Severity.WARNING,
                self._r.entry_cid,
                error=f"no answer after {ex.entry_probe_after_s} s; looking it up",
            )
            while True:
                try:
                    order = await self._venue.get_order(self.symbol, self._r.entry_cid)
                except VenueError:
                    order = None
                if order is not None and order.filled_qty > 0:
                    self._ev(
                        EventType.ENTRY_RESOLVED,
                        cid=self._r.entry_cid,
                        found=True,
                        status=order.status,
                        via="lookup_while_pending",
                    )
                    found.append(order)
                    cancel.cancel()
                    return
                await trio.sleep(ex.entry_probe_interval_s)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(submit, nursery.cancel_scope)
            nursery.start_soon(probe, nursery.cancel_scope)
        if found:
            return found[0]
        raise failed[0]

    async def _confirm_entry(self, order: OrderState | None, intended: Decimal | None) -> None:
        """Wait for the entry's fill (query by client id), then protect the filled qty."""
        deadline = trio.current_time() + self._s.execution.fill_timeout_s
        delay = 0.05
        early_failed = False
        while order is None or not (
            order.status.is_terminal and order.status is not OrderStatus.PARTIALLY_FILLED
        ):
            if order is not None and order.status is OrderStatus.FILLED:
                break
            if (
                order is not None
                and order.filled_qty > 0
                and self._r.stop is None
                and not self._caps.attached_stop
                and not early_failed
            ):
                # part of the entry filled and the rest is still working: protect the
                # filled part now (a whole-position stop also covers later fills) instead
                # of leaving it naked until the entry completes
                early_failed = not await self._early_stop(order)
                if early_failed:
                    break
            if trio.current_time() >= deadline:
                break
            await trio.sleep(delay)
            delay = min(delay * 2, 1.0)
            try:
                order = await self._query_order(self._r.entry_cid)
            except VenueError as exc:
                await self._fail_unknown_entry(exc)
                return
        if order is not None and not order.status.is_terminal:
            # still working after the timeout: cancel the rest, protect what filled
            try:
                await self._retry(
                    "cancel_order",
                    lambda: self._venue.cancel_order(self.symbol, self._r.entry_cid),
                    3,
                )
            except (UnknownOrder, VenueError):
                pass
            try:
                order = await self._query_order(self._r.entry_cid)
            except VenueError as exc:
                await self._fail_unknown_entry(exc)
                return
        filled = order.filled_qty if order is not None else Decimal(0)
        if order is None or filled <= 0:
            await self._rollback("entry_not_filled")
            return
        self._r.filled_qty = filled
        self._r.qty = filled
        self._r.entry_price = order.avg_fill_price or (
            self._ticket.request.reference_price if self._ticket else None
        )
        etype = (
            EventType.ENTRY_FILLED if filled >= self._r.req_qty else EventType.ENTRY_PARTIAL_FILL
        )
        await self._ev_durable(
            etype,
            cid=self._r.entry_cid,
            filled_qty=filled,
            requested_qty=self._r.req_qty,
            avg_fill_price=self._r.entry_price,
        )
        await self._protect_new_position(intended)

    async def _early_stop(self, order: OrderState) -> bool:
        """Place the initial stop while the entry is still partially filled."""
        price = order.avg_fill_price or (
            self._ticket.request.reference_price if self._ticket else None
        )
        if price is None:
            return False
        self._ev(
            EventType.ENTRY_PARTIAL_FILL,
            cid=self._r.entry_cid,
            filled_qty=order.filled_qty,
            requested_qty=self._r.req_qty,
            avg_fill_price=price,
            still_working=True,
        )
        try:
            target = initial_stop_price(
                price, self.position_side, self.instrument, self._s.stop_loss
            )
            await self._keeper.place_new_stop(target, "initial_partial")
        except (NoValidStop, ValueError, WouldTriggerImmediately, StopFailed) as exc:
            self._ev(
                EventType.STOP_REJECTED,
                Severity.WARNING,
                reason="early_stop_failed",
                error=str(exc),
            )
            return False
        return True

    async def _protect_new_position(self, attached: Decimal | None) -> None:
        assert self._r.entry_price is not None
        if self._r.stop is not None:  # placed while the entry was partially filled
            await self._activate()
            return
        if self._caps.attached_stop and attached is not None:
            stops = await self._venue_stops()
            if len(stops) == 1:
                self._r.stop = stops[0]
                self._r.stop_price = stops[0].trigger_price
                await self._activate()
                return
            # the attached stop is missing: place it (below)
        try:
            target = initial_stop_price(
                self._r.entry_price, self.position_side, self.instrument, self._s.stop_loss
            )
        except (NoValidStop, ValueError):
            await self._flatten_or_emergency("no_valid_stop")
            return
        if attached is not None and is_tighter(attached, target, self.position_side):
            target = attached
        try:
            await self._keeper.place_new_stop(target, "initial")
        except WouldTriggerImmediately as exc:
            self._ev(
                EventType.STOP_REJECTED,
                Severity.WARNING,
                reason="would_trigger_immediately",
                error=exc,
                code=exc.code,
                stop_price=target,
            )
            await self._close("stop_would_trigger_immediately")
            if self.lifecycle is Lifecycle.CLOSED:
                self._resolve(False, "stop_would_trigger_immediately: closed at market")
            else:
                await self._flatten_or_emergency("stop_would_trigger_immediately; close failed")
            return
        except StopFailed as exc:
            await self._flatten_or_emergency(f"stop_failed: {exc}")
            return
        await self._activate()

    async def _activate(self) -> None:
        self._transition(Lifecycle.ACTIVE, "stop_confirmed")
        self._r.opened_at = self._clock.now()
        self._ev(
            EventType.STOP_CONFIRMED,
            cid=self._r.stop.client_order_id if self._r.stop else None,
            stop_price=self._r.stop_price,
            qty=self._r.qty,
        )
        await self._ev_durable(
            EventType.POSITION_ACTIVE,
            entry_price=self._r.entry_price,
            qty=self._r.qty,
            stop_price=self._r.stop_price,
        )
        await self._snapshot()
        self._resolve(True)

    async def _rollback(self, reason: str) -> None:
        self._transition(Lifecycle.ROLLED_BACK, reason)
        self._r.close_reason = reason
        await self._ev_durable(EventType.POSITION_ROLLED_BACK, Severity.WARNING, reason=reason)
        await self._snapshot()
        self._resolve(False, reason)

    async def _fail_unknown_entry(self, exc: BaseException) -> None:
        """The entry's outcome cannot be resolved: never resubmit; alert, keep FAILED."""
        self._transition(Lifecycle.FAILED, "entry_outcome_unresolved")
        self._r.close_reason = "entry_outcome_unresolved"
        await self._ev_durable(
            EventType.POSITION_FAILED,
            Severity.CRITICAL,
            cid=self._r.entry_cid,
            reason="entry_outcome_unresolved",
            error=exc,
        )
        self._ev(
            EventType.ALERT_RAISED,
            Severity.CRITICAL,
            reason="entry_outcome_unresolved",
            error=exc,
            message=(
                f"{self.symbol} {self.position_side.value}: entry {self._r.entry_cid} of "
                f"unknown outcome could not be looked up ({type(exc).__name__}); check the "
                "venue by hand"
            ),
        )
        await self._snapshot()
        self._resolve(False, "entry_outcome_unresolved")

    async def _resolve_entry(self, **context: Any) -> OrderState | None:
        """Resolve an entry of unknown outcome by looking its client order id up.

        Journals ENTRY_RESOLVED. Returns the venue's order, or None after having ended the
        position: rolled back when the venue has no such order (nothing was placed), failed
        (with its alert) when every lookup failed. Never submits a second entry
        (docs/ARCHITECTURE.md §1 invariant 4).
        """
        try:
            order = await self._query_order(self._r.entry_cid)
        except VenueError as exc:
            # no order list shows the entry, but its side may hold the position it opened
            # (a lookup that cannot confirm the absence raises): own and protect that one
            order = await self._entry_from_position()
            if order is None:
                await self._fail_unknown_entry(exc)
                return None
            self._ev(
                EventType.ENTRY_RESOLVED,
                cid=self._r.entry_cid,
                found=True,
                status=order.status,
                via="position_list",
                error=f"{type(exc).__name__}: {exc}",
                **context,
            )
            return order
        self._ev(
            EventType.ENTRY_RESOLVED,
            cid=self._r.entry_cid,
            found=order is not None,
            status=None if order is None else order.status,
            **context,
        )
        if order is None:
            await self._rollback("entry_not_placed")
        return order

    async def _entry_from_position(self) -> OrderState | None:
        """The entry as the position list shows it (this actor is the only owner of its
        symbol and side), or None when the side is flat or the list cannot be read."""
        try:
            pos = await self._venue_position()
        except VenueError:
            return None
        if pos is None:
            return None
        return OrderState(
            symbol=self.symbol,
            client_order_id=self._r.entry_cid,
            venue_order_id="",
            side=self.position_side.entry_side,
            position_side=self.position_side,
            order_type=OrderType.MARKET,
            status=OrderStatus.FILLED,
            qty=pos.qty,
            filled_qty=pos.qty,
            avg_fill_price=pos.entry_price or None,
        )
