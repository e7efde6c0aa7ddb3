"""The PositionActor's common part: its state, journal helpers and venue look-ups.

Owns: the one :class:`PositionRecord` of the position (``self._r``), the volatile state of
the actor (newest mark, journaling throttles, timer bookkeeping), the narrow venue view
``self._venue`` (:class:`tradebot.ports.PositionVenuePort`: reads and reduce-only orders,
no stop method) and the :class:`StopKeeper` (``self._keeper``, the only holder of the
:class:`tradebot.ports.StopPort`).
Consumes: nothing by itself (the message loop is in ``_actor.py``).
Emits: ``position.snapshot``; ``exchange.error`` for each retried venue call;
``position.illegal_transition`` when a part asks for a transition the table forbids.

The parts of the actor are a chain of classes, each in its own module, each building on
the one below: ``_base`` → ``_exits`` (close, flatten, take-profit, aged exit) → ``_open``
(the open protocol) → ``_manage`` (trailing, protection, account events) → ``_recovery``
(restart, adoption) → ``_actor`` (the message loop).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol, TypeVar

import trio

from actors.runtime import Actor, Backoff, LatestValue, RetryAttempt, retry
from tradebot.domain import Instrument, PositionSide
from tradebot.errors import OutcomeUnknown, TransientError
from tradebot.events import Event, EventType, JournalPort, JournalReader, Severity
from tradebot.policies import PositionSettings, QuietBand, TrailingDecision
from tradebot.ports import (
    Clock,
    ExchangePort,
    MarkPrice,
    OpenOutcome,
    OrderState,
    PositionState,
    PositionVenuePort,
    StopState,
)

from ._lifecycle import Lifecycle
from ._messages import OpenTicket, PositionMessage, PositionStatus
from ._state import PositionRecord, snapshot_data
from ._stop_keeper import StopKeeper, retry_after

__all__ = ["PositionBase", "PositionJournal"]

T = TypeVar("T")


class PositionJournal(JournalPort, JournalReader, Protocol):
    """The journal a PositionActor writes to and recovers from."""


class PositionBase(Actor[PositionMessage]):
    """State and helpers shared by every part of the PositionActor (see the module doc).

    The constructor's arguments are documented on :class:`actors.position.PositionActor`.
    """

    mailbox_size = 256

    def __init__(
        self,
        *,
        position_id: str,
        symbol: str,
        position_side: PositionSide,
        instrument: Instrument,
        port: ExchangePort,
        journal: PositionJournal,
        clock: Clock,
        marks: LatestValue[MarkPrice],
        settings: PositionSettings | None = None,
        ticket: OpenTicket | None = None,
        adopted: bool = False,
        on_decision: Callable[[Any, MarkPrice, TrailingDecision], None] | None = None,
        on_closed: Callable[[Any], None] | None = None,
        on_attach: Callable[[Any], None] | None = None,
        account: str = "",
    ) -> None:
        self.position_id = position_id
        self.account = account
        self.symbol = symbol
        self.position_side = position_side
        self.instrument = instrument
        self._caps = port.capabilities
        self._journal = journal
        self._clock = clock
        self._marks = marks
        self._s = settings or PositionSettings()
        self._ticket = ticket
        self._on_decision = on_decision
        self._on_closed = on_closed
        self._on_attach = on_attach
        # the persisted state (POSITION_SNAPSHOT)
        self._r = PositionRecord.new(
            position_id, symbol, position_side, adopted=adopted, on_illegal=self._illegal
        )
        # the exchange, split by ownership: everything but the stop keeper sees the
        # narrow view; the stop keeper alone gets the stop methods (StopPort)
        self._venue: PositionVenuePort = port
        self._keeper = StopKeeper(port, self)
        self._backoff = Backoff(initial_s=self._s.execution.retry_backoff_s)
        # folded aged-exit clock (see _ManageTick): trio time of its start, next tick number
        self._age_start = 0.0
        self._age_n = 1
        # volatile
        self._mark: Decimal | None = None
        self._mark_pending = False
        # marks inside this band change nothing and are taken without a task switch while
        # the actor is parked (PositionManage._post_mark); recomputed after every message
        self._quiet: QuietBand | None = None
        self.quiet_marks = 0
        # quiet periodic checks (PositionManage._quiet_tick): the venue's change counter for
        # the symbol (paper venue only; None = always ask) and what the last check saw
        self._protection_version: Callable[[str], int | None] | None = getattr(
            port, "protection_version", None
        )
        self._checked: tuple[int, PositionState, list[StopState]] | None = None
        # the quiet tick's memo of decide_repair's mark-independent part for ``_checked``:
        # (checked, intended stop, entry price, target stop) of a call that said OK
        self._quiet_repair: tuple[object, Decimal | None, Decimal, Decimal] | None = None
        self.quiet_ticks = 0
        self._entry_unknown_journaled = False
        self._skip_journaled = False
        self._last_position_ts: datetime | None = None
        self._last_snapshot_s = -1e18
        self._snapshot_wm: Decimal | None = None
        self._verified_journaled_at: datetime | None = None
        self._stop_verified_at: datetime | None = None  # last check that found the stop
        self._verified_journaled_price: Decimal | None = None
        self._quiet_verifications = 0
        self._finished = False

    # --- status ----------------------------------------------------------------------

    @property
    def lifecycle(self) -> Lifecycle:
        """The lifecycle state (changed only through the transition table)."""
        return self._r.state

    @property
    def replacing_stop(self) -> bool:
        """A make-before-break stop replacement is in progress (two stops on the venue)."""
        return self._keeper.replacing

    @property
    def stop_state(self) -> StopState | None:
        """The live stop as this actor knows it."""
        return self._r.stop

    def status(self) -> PositionStatus:
        r = self._r
        return PositionStatus(
            position_id=self.position_id,
            symbol=self.symbol,
            position_side=self.position_side,
            lifecycle=r.state,
            qty=r.qty,
            filled_qty=r.filled_qty,
            entry_price=r.entry_price,
            stop_price=r.stop_price,
            stop_client_order_id=r.stop.client_order_id if r.stop else "",
            trailing=r.trailing,
            tp_levels_done=frozenset(r.tp_done),
            aged_exit_price=r.aged_price,
            opened_at=r.opened_at,
            mark_price=self._mark,
            close_reason=r.close_reason,
            stop_verified_at=self._stop_verified_at,
        )

    @property
    def entry_notional_usdt(self) -> Decimal:
        return (self._r.entry_price or Decimal(0)) * self._r.qty

    # --- lifecycle -------------------------------------------------------------------

    def _transition(self, to: Lifecycle, reason: str) -> None:
        """Change the lifecycle (the table in ``_lifecycle.py``).

        Raises:
            IllegalTransition: not in the table (journaled first).
        """
        self._r.lifecycle.transition(to, reason)

    def _illegal(self, frm: Lifecycle, to: Lifecycle, reason: str) -> None:
        self._ev(
            EventType.POSITION_ILLEGAL_TRANSITION,
            Severity.CRITICAL,
            from_state=frm.value,
            to_state=to.value,
            reason=reason,
            message=f"illegal lifecycle transition {frm.value} -> {to.value} ({reason})",
        )

    # --- journal helpers -------------------------------------------------------------

    def _event(
        self, etype: EventType, severity: Severity, cid: str | None, data: dict[str, Any]
    ) -> Event:
        return Event(
            type=etype,
            ts=self._clock.now(),
            data=data,
            severity=severity,
            position_id=self.position_id,
            client_order_id=cid,
            symbol=self.symbol,
        )

    def _ev(
        self,
        etype: EventType,
        severity: Severity = Severity.INFO,
        cid: str | None = None,
        **data: Any,
    ) -> None:
        data.setdefault("position_side", self.position_side.value)
        self._journal.emit(self._event(etype, severity, cid, data))

    async def _ev_durable(
        self,
        etype: EventType,
        severity: Severity = Severity.INFO,
        cid: str | None = None,
        **data: Any,
    ) -> None:
        data.setdefault("position_side", self.position_side.value)
        await self._journal.emit_durable(self._event(etype, severity, cid, data))

    async def _snapshot(self, durable: bool = True) -> None:
        if not durable:
            self._snapshot_now()
            return
        ev = self._snapshot_event()
        await self._journal.emit_durable(ev)

    def _snapshot_now(self) -> None:
        """Journal a snapshot now, not durably (``emit``: never blocks)."""
        self._journal.emit(self._snapshot_event())

    def _snapshot_event(self) -> Event:
        ev = self._event(EventType.POSITION_SNAPSHOT, Severity.DEBUG, None, snapshot_data(self._r))
        self._last_snapshot_s = trio.current_time()
        self._snapshot_wm = self._r.trailing.water_mark
        return ev

    def _resolve(self, opened: bool, reason: str = "") -> None:
        if self._ticket is not None:
            self._ticket.resolve(OpenOutcome(self.position_id, opened, reason))

    # --- venue call helpers ----------------------------------------------------------

    async def _retry(self, what: str, fn: Callable[[], Awaitable[T]], attempts: int) -> T:
        """Call ``fn``; retry TransientError (incl. RateLimited: after its
        ``retry_after_s``) with the doubling backoff, journaling each retry."""

        def journal(a: RetryAttempt) -> None:
            self._ev(
                EventType.EXCHANGE_ERROR,
                Severity.WARNING,
                what=what,
                attempt=a.attempt,
                error=a.error,
                retry_in_s=a.wait_s,
            )

        async def call(_attempt: int) -> T:
            return await fn()

        return await retry(
            call,
            attempts=attempts,
            backoff=self._backoff,
            retry_on=TransientError,
            on_retry=journal,
            wait_for=retry_after,
        )

    async def _query_order(self, cid: str) -> OrderState | None:
        """Look an order up by client id, retrying failed lookups (a failed lookup is not
        "no order"). Raises the last VenueError when every attempt failed."""

        def journal(a: RetryAttempt) -> None:
            self._ev(
                EventType.EXCHANGE_ERROR,
                Severity.WARNING,
                cid,
                what="get_order",
                attempt=a.attempt,
                error=a.error,
            )

        async def call(_attempt: int) -> OrderState | None:
            return await self._venue.get_order(self.symbol, cid)

        return await retry(
            call,
            attempts=self._s.execution.query_attempts,
            backoff=self._backoff,
            retry_on=(TransientError, OutcomeUnknown),
            on_retry=journal,
        )

    async def _venue_position(self) -> PositionState | None:
        """This side's position on the venue (None = flat). Raises after failed retries."""
        positions = await self._retry(
            "positions",
            lambda: self._venue.positions(self.symbol),
            self._s.execution.query_attempts,
        )
        for p in positions:
            if p.position_side is self.position_side and p.qty > 0:
                return p
        return None

    async def _venue_stops(self) -> list[StopState]:
        stops = await self._retry(
            "stops",
            lambda: self._venue.stops(self.symbol, self.position_side),
            self._s.execution.query_attempts,
        )
        return list(stops)
