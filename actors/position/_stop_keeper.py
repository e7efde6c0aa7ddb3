"""The stop keeper: the ONE object that calls the stop methods of the exchange port.

Owns: the position's :class:`tradebot.ports.StopPort` (``place_entry`` — the entry that
carries the attached stop on Bybit —, ``place_stop``, ``amend_stop``, ``cancel_stop``).
Nothing else in the code base receives a StopPort (docs/ARCHITECTURE.md §1 invariant 1):
the rest of the PositionActor holds a :class:`tradebot.ports.PositionVenuePort`, which has
none of those methods, so a stop call from anywhere else fails ``mypy --strict``;
``tests/test_architecture.py`` fails when another module obtains a StopPort or reaches
its methods by any route (aliasing, ``getattr``, ``functools.partial``, an entry with
``stop_price=``).
Consumes: requests from the actor's parts: place a new stop (bounded retries), move the
live stop (amend in place where the venue can, else make-before-break), cancel a stop,
submit the entry.
Emits: ``stop.intent`` (durable, before each venue call), ``stop.placed``, ``stop.moved``,
``stop.retry``, ``stop.rejected``, ``stop.cancelled``, ``exchange.error``. It records the
live stop and the intended stop price in the position's record.

Stop moves never leave the position without a live stop: amend in place (Bybit
trading-stop), or place the new stop, confirm it, then cancel the old one.
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING

from actors.runtime import RetryAttempt, retry
from tradebot.domain import OrderRole
from tradebot.errors import (
    OutcomeUnknown,
    RateLimited,
    UnknownOrder,
    VenueError,
    WouldTriggerImmediately,
)
from tradebot.events import EventType, Severity
from tradebot.ports import EntryRequest, OrderState, StopPort, StopRequest, StopState

if TYPE_CHECKING:
    from ._base import PositionBase

__all__ = ["StopFailed", "StopKeeper", "retry_after"]


def retry_after(exc: Exception, delay_s: float) -> float:
    """The pause before a retry: a venue's rate limit says how long (``retry_after_s``);
    otherwise the backoff's ``delay_s``."""
    return exc.retry_after_s if isinstance(exc, RateLimited) else delay_s


class StopFailed(Exception):
    """Placing a stop failed on every attempt (the last error in the message)."""


class StopKeeper:
    """Places, moves and cancels one position's stop; submits its entry.

    Args:
        port: the stop methods of the venue (the only StopPort in the actor).
        host: the actor it belongs to (journal, settings, record, venue look-ups).
    """

    def __init__(self, port: StopPort, host: PositionBase) -> None:
        self._port = port
        self._host = host
        self.replacing = False  # make-before-break in progress (two stops on the venue)

    # --- entry -----------------------------------------------------------------------

    def entry_request(self, qty: Decimal, intended_stop: Decimal) -> EntryRequest:
        """The market entry of ``qty`` (base units) with ``intended_stop`` attached where
        the venue has ``attached_stop`` (Bybit ``stopLoss``), without a stop elsewhere."""
        h = self._host
        return EntryRequest(
            symbol=h.symbol,
            position_side=h.position_side,
            qty=qty,
            client_order_id=h._r.entry_cid,
            stop_price=intended_stop if h._caps.attached_stop else None,
        )

    async def submit_entry(self, request: EntryRequest) -> OrderState:
        """Submit the market entry; ``request.stop_price`` attaches the stop (only where
        the venue has ``attached_stop``). One call, no retry (the caller retries)."""
        return await self._port.place_entry(request)

    # --- place -----------------------------------------------------------------------

    def _stop_request(self, price: Decimal, cid: str) -> StopRequest:
        h = self._host
        return StopRequest(
            symbol=h.symbol,
            position_side=h.position_side,
            trigger_price=price,
            client_order_id=cid,
        )

    async def place_new_stop(
        self, price: Decimal, reason: str, role: OrderRole = OrderRole.STOP
    ) -> StopState:
        """Place a stop with bounded retries (``execution.stop_attempts``, a fresh client
        id each, the doubling backoff after every failed attempt); it becomes the live stop.

        Raises:
            WouldTriggerImmediately: the level is already through the mark.
            StopFailed: every attempt failed.
        """
        h = self._host
        r = h._r
        cids: dict[int, str] = {}

        async def attempt(n: int) -> StopState:
            cid = cids[n] = r.next_cid(role)
            await h._ev_durable(
                EventType.STOP_INTENT, cid=cid, stop_price=price, reason=reason, attempt=n
            )
            try:
                return await self._port.place_stop(self._stop_request(price, cid))
            except OutcomeUnknown:
                found = await self._find_stop(cid, price)
                if found is None:
                    raise
                return found

        def journal(a: RetryAttempt) -> None:
            cid = cids[a.attempt]
            if isinstance(a.error, OutcomeUnknown):
                h._ev(EventType.STOP_RETRY, Severity.WARNING, cid, attempt=a.attempt, error=a.error)
                return
            code = a.error.code if isinstance(a.error, VenueError) else ""
            h._ev(
                EventType.STOP_RETRY,
                Severity.WARNING,
                cid,
                attempt=a.attempt,
                error=a.error,
                code=code,
                retry_in_s=a.wait_s,
            )

        try:
            st = await retry(
                attempt,
                attempts=h._s.execution.stop_attempts,
                backoff=h._backoff,
                retry_on=VenueError,
                never_on=WouldTriggerImmediately,
                on_retry=journal,
                wait_for=retry_after,
                wait_after_last=True,
            )
        except WouldTriggerImmediately:
            raise
        except VenueError as last:
            raise StopFailed(f"{type(last).__name__}: {last}") from last
        cid = cids[max(cids)]
        r.stop = st
        r.stop_price = st.trigger_price
        await h._ev_durable(
            EventType.STOP_PLACED,
            cid=cid,
            stop_price=st.trigger_price,
            venue_order_id=st.venue_order_id,
            reason=reason,
        )
        return st

    async def _find_stop(self, cid: str, price: Decimal) -> StopState | None:
        """Resolve an unknown stop-placement outcome by client id (or, for position-level
        stops without ids, by the venue's stop list)."""
        h = self._host
        try:
            stops = await h._venue_stops()
        except VenueError:
            return None
        for s in stops:
            if (h._caps.stop_has_client_id and s.client_order_id == cid) or (
                not h._caps.stop_has_client_id and s.trigger_price == price
            ):
                return s
        return None

    # --- move ------------------------------------------------------------------------

    async def move_stop(self, new_price: Decimal, reason: str) -> bool:
        """Move the live stop to ``new_price`` (tighter). True when the venue confirmed.

        Amend in place when the venue can; otherwise make-before-break. On failure the old
        stop stays live (the position stays protected) and False is returned.
        """
        h = self._host
        r = h._r
        old = r.stop
        old_price = r.stop_price
        if old is not None and h._caps.amend_stop:
            await h._ev_durable(
                EventType.STOP_INTENT,
                cid=old.client_order_id or None,
                stop_price=new_price,
                old_stop_price=old_price,
                reason=reason,
            )
            try:
                st = await h._retry(
                    "amend_stop",
                    lambda: self._port.amend_stop(old, new_price),
                    h._s.execution.stop_attempts,
                )
            except WouldTriggerImmediately as exc:
                return self._stop_rejected("would_trigger_immediately", exc, new_price)
            except VenueError as exc:
                return self._stop_rejected("amend_failed", exc, new_price, Severity.ERROR)
            r.stop = st
            r.stop_price = st.trigger_price
            await h._ev_durable(
                EventType.STOP_MOVED,
                cid=st.client_order_id or None,
                old_stop_price=old_price,
                stop_price=st.trigger_price,
                reason=reason,
            )
            return True
        # make-before-break
        self.replacing = True
        try:
            try:
                st = await self.place_new_stop(new_price, reason)
            except WouldTriggerImmediately as exc:
                return self._stop_rejected("would_trigger_immediately", exc, new_price)
            except StopFailed as exc:
                r.stop, r.stop_price = old, old_price
                return self._stop_rejected("replace_failed", exc, new_price, Severity.ERROR)
            if old is not None and (
                old.client_order_id != st.client_order_id or old.venue_order_id != st.venue_order_id
            ):
                await self.cancel_stop_quietly(old)
            h._ev(
                EventType.STOP_MOVED,
                cid=st.client_order_id or None,
                old_stop_price=old_price,
                stop_price=st.trigger_price,
                reason=reason,
            )
            return True
        finally:
            self.replacing = False

    def _stop_rejected(
        self,
        reason: str,
        exc: Exception,
        stop_price: Decimal,
        severity: Severity = Severity.WARNING,
    ) -> bool:
        """Journal a stop move the venue refused (the old stop stays in force); False."""
        self._host._ev(
            EventType.STOP_REJECTED,
            severity,
            reason=reason,
            error=exc,
            code=getattr(exc, "code", ""),
            stop_price=stop_price,
        )
        return False

    # --- cancel ----------------------------------------------------------------------

    async def cancel_stop_quietly(self, stop: StopState) -> bool:
        """Cancel ``stop``; True when it is gone (cancelled now or already), False (and an
        ``exchange.error``) when the venue kept refusing."""
        h = self._host
        try:
            await h._retry(
                "cancel_stop", lambda: self._port.cancel_stop(stop), h._s.execution.stop_attempts
            )
        except UnknownOrder:
            return True
        except VenueError as exc:
            h._ev(
                EventType.EXCHANGE_ERROR,
                Severity.ERROR,
                stop.client_order_id or None,
                what="cancel_stop",
                error=exc,
            )
            return False
        h._ev(
            EventType.STOP_CANCELLED,
            cid=stop.client_order_id or None,
            stop_price=stop.trigger_price,
        )
        return True
