"""PositionActor: the one owner of one position and its stop (DESIGN.md sections 1, 3, 4).

Consumes:
    * :class:`MarkChanged` — posted by a listener on the symbol's ``LatestValue[MarkPrice]``
      cell whenever it changes (conflated: at most one pending; the handler reads the newest);
    * :class:`AccountEventMsg` — order/fill/position updates routed by the AccountRouter;
    * :class:`VerifyProtection` — periodic timer, stream gaps, reconciler findings;
    * :class:`AgeTick` — the aged-exit clock (timer);
    * :class:`Close` — operator / shutdown policy;
    * :class:`Query` — replies a :class:`PositionStatus`.

Emits: journal events (``tradebot.events.EventType``) for every step; POSITION_SNAPSHOT
events carry the state a restarted actor resumes from.

Owns: the position's stop (ONLY this class calls ``place_stop``/``amend_stop``/
``cancel_stop`` — an architecture test enforces it), its trailing state, take-profit levels
done, the aged exit order.

The open protocol (DESIGN.md section 4) runs in ``on_start`` before any message is
handled, so nothing can race it; its result is handed to the opener through an
:class:`OpenTicket`. A restarted actor (same ticket or ``recover=True``) rebuilds its state
from ``JournalReader.latest_snapshot`` plus the exchange (positions, stops, the entry
order by client id) before accepting messages.

Stop moves: amend in place where the venue can (Bybit trading-stop); otherwise
make-before-break — the new stop is placed and confirmed, then the old one cancelled — so
the position is never without a live stop.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol, TypeVar

import attrs
import trio

from actors.runtime import Actor, LatestValue
from tradebot.domain import Instrument, OrderRole, OrderStatus, OrderType, PositionSide
from tradebot.errors import (
    DuplicateClientOrderId,
    OutcomeUnknown,
    RateLimited,
    RejectedError,
    TransientError,
    UnknownOrder,
    VenueError,
    WouldTriggerImmediately,
)
from tradebot.events import Event, EventType, JournalPort, JournalReader, Severity
from tradebot.ids import client_order_id
from tradebot.policies import (
    AgedPhase,
    NoValidStop,
    PositionSettings,
    RepairAction,
    TrailingDecision,
    TrailingPhase,
    TrailingState,
    aged_target,
    breakeven_stop_price,
    decide_repair,
    due_take_profits,
    emergency_stop_price,
    initial_stop_price,
    is_tighter,
    should_replace_exit,
    trailing_step,
)
from tradebot.ports import (
    AccountEvent,
    Clock,
    EntryRequest,
    ExchangePort,
    Fill,
    MarkPrice,
    OpenOutcome,
    OpenRequest,
    OrderState,
    OrderUpdate,
    PositionState,
    PositionUpdate,
    ReduceRequest,
    StopRequest,
    StopState,
    StreamGap,
)

__all__ = [
    "AccountEventMsg",
    "AgeTick",
    "Close",
    "Lifecycle",
    "MarkChanged",
    "OpenTicket",
    "PositionActor",
    "PositionJournal",
    "PositionMessage",
    "PositionStatus",
    "Query",
    "VerifyProtection",
]

T = TypeVar("T")


class PositionJournal(JournalPort, JournalReader, Protocol):
    """The journal a PositionActor writes to and recovers from."""


class Lifecycle(enum.Enum):
    """DESIGN.md section 4: ``OPENING → ACTIVE → CLOSING → CLOSED`` (+ ROLLED_BACK, FAILED).

    FAILED: the position could be neither protected normally nor flattened; it carries an
    emergency stop and a critical alert was raised; the actor keeps verifying it.
    """

    OPENING = "OPENING"
    ACTIVE = "ACTIVE"
    CLOSING = "CLOSING"
    CLOSED = "CLOSED"
    ROLLED_BACK = "ROLLED_BACK"
    FAILED = "FAILED"


# --- messages ----------------------------------------------------------------------------


@attrs.frozen
class MarkChanged:
    """The symbol's mark-price cell changed (the actor reads the newest value itself)."""


@attrs.frozen
class AccountEventMsg:
    """An order/fill/position/stream-gap event for this position."""

    event: AccountEvent


@attrs.frozen
class VerifyProtection:
    """Check the stop on the exchange and repair it. ``reason``: ``"periodic"``,
    ``"stream_gap"``, ``"reconciler"``, ``"recovered"``, ..."""

    reason: str = "periodic"


@attrs.frozen
class AgeTick:
    """Re-evaluate the aged-exit schedule."""


@attrs.frozen
class _ManageTick:
    """Timer (internal): the periodic stop verification with the aged-exit clock folded in.

    Used when ``execution.age_tick_s`` is a whole multiple of
    ``protection.verify_interval_s`` (the defaults: 60 s and 30 s): one timer task and one
    message per verification instead of two timers that fire together anyway.
    """


@attrs.frozen
class Close:
    """Close the position at market (reduce-only) and end the actor; ``reason`` is journaled."""

    reason: str


@attrs.frozen
class Query:
    """Ask for a :class:`PositionStatus`."""


PositionMessage = MarkChanged | AccountEventMsg | VerifyProtection | AgeTick | Close | Query


@attrs.frozen
class PositionStatus:
    """A snapshot of the actor's view (reply to :class:`Query`).

    Prices in USDT, quantities in base units, times aware UTC.
    """

    position_id: str
    symbol: str
    position_side: PositionSide
    lifecycle: Lifecycle
    qty: Decimal
    filled_qty: Decimal
    entry_price: Decimal | None
    stop_price: Decimal | None
    stop_client_order_id: str
    trailing: TrailingState
    tp_levels_done: frozenset[int]
    aged_exit_price: Decimal | None
    opened_at: datetime | None
    mark_price: Decimal | None
    close_reason: str


@attrs.define
class OpenTicket:
    """Hand-off between the opener and the actor that opens the position.

    The actor calls :meth:`resolve` exactly once, when the position is ACTIVE or definitively
    not opened. A restarted actor gets the same ticket and resolves it after recovery.
    """

    request: OpenRequest
    done: trio.Event = attrs.Factory(trio.Event)
    outcome: OpenOutcome | None = None

    def resolve(self, outcome: OpenOutcome) -> None:
        if self.outcome is None:
            self.outcome = outcome
            self.done.set()

    async def wait(self) -> OpenOutcome:
        await self.done.wait()
        assert self.outcome is not None
        return self.outcome


_SEQ_SKIP_ON_RESTART = 100


class _StopFailed(Exception):
    """Internal: placing a stop failed on every attempt (last error attached)."""


# --- the actor ---------------------------------------------------------------------------


class PositionActor(Actor[PositionMessage]):
    """Owns exactly one position (symbol, position side) and its stop.

    Args:
        position_id: the position's id (16 hex chars, :func:`tradebot.ids.position_id_for`).
        symbol: instrument symbol.
        position_side: LONG or SHORT.
        instrument: tick size / qty step / minimums of ``symbol``.
        port: the exchange.
        journal: journal port + reader (:class:`tradebot.events.MemoryJournal` in tests).
        clock: "now" (``TrioClock`` in replay/tests, ``WallClock`` live).
        marks: the symbol's mark-price cell (from :class:`actors.routers.MarketRouter`).
        settings: policy and execution settings.
        ticket: open this position (None = recover an existing one).
        adopted: the position exists on the exchange without our intent (reconciler); the
            actor protects it with the emergency stop.
        on_decision: optional observer ``(actor, mark, decision)`` called with each
            trailing decision (metrics, benchmarks); must not block. An exception from it
            crashes the actor (its supervisor restarts it).
        on_closed: optional callback when the actor reaches a final state (used by the
            supervisor to forget the key).
        on_attach: optional callback at the start of ``on_start`` (``self.address`` is
            valid): the supervisor registers the address with the AccountRouter there, so
            account events reach the actor while it opens.
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
        on_decision: Callable[[PositionActor, MarkPrice, TrailingDecision], None] | None = None,
        on_closed: Callable[[PositionActor], None] | None = None,
        on_attach: Callable[[PositionActor], None] | None = None,
    ) -> None:
        self.position_id = position_id
        self.symbol = symbol
        self.position_side = position_side
        self.instrument = instrument
        self._port = port
        self._caps = port.capabilities
        self._journal = journal
        self._clock = clock
        self._marks = marks
        self._s = settings or PositionSettings()
        self._ticket = ticket
        self._adopted = adopted
        self._on_decision = on_decision
        self._on_closed = on_closed
        self._on_attach = on_attach
        # state (persisted in POSITION_SNAPSHOT)
        self.lifecycle = Lifecycle.OPENING
        self._entry_cid = client_order_id(position_id, OrderRole.ENTRY, 0)
        self._req_qty = Decimal(0)
        self._filled_qty = Decimal(0)
        self._qty = Decimal(0)
        self._entry_price: Decimal | None = None
        self._opened_at: datetime | None = None
        self._stop: StopState | None = None
        self._stop_price: Decimal | None = None  # the stop we intend (= the live one normally)
        self._seq: dict[str, int] = {r.value: 0 for r in OrderRole}
        self._trailing = TrailingState()
        self._tp_done: set[int] = set()
        self._tp_orders: dict[str, int] = {}
        self._aged_cid = ""
        self._aged_price: Decimal | None = None
        self._aged_started = False
        # folded aged-exit clock (see _ManageTick): trio time of its start, next tick number
        self._age_start = 0.0
        self._age_n = 1
        self._close_reason = ""
        # volatile
        self._mark: Decimal | None = None
        self._mark_pending = False
        self._entry_unknown_journaled = False
        self._skip_journaled = False
        self._last_position_ts: datetime | None = None
        self._last_snapshot_s = -1e18
        self._snapshot_wm: Decimal | None = None
        self._verified_journaled_at: datetime | None = None
        self._verified_journaled_price: Decimal | None = None
        self._quiet_verifications = 0
        self.replacing_stop = False  # make-before-break in progress (two stops on the venue)
        self._finished = False

    # --- runtime hooks ---------------------------------------------------------------

    async def on_start(self) -> None:
        if self._on_attach is not None:
            self._on_attach(self)
        snap = await self._journal.latest_snapshot(self.position_id)
        if snap is not None:
            self._load_snapshot(snap)
            self._ev(
                EventType.ACTOR_RESTARTED,
                lifecycle=self.lifecycle.value,
                water_mark=self._trailing.water_mark,
            )
            await self._recover()
        elif self._ticket is not None:
            await self._open(self._ticket.request)
        else:
            await self._adopt()
        if self.lifecycle in (Lifecycle.ACTIVE, Lifecycle.FAILED):
            self._start_management()
        else:
            self._finish()

    async def handle(self, message: PositionMessage) -> object:
        if isinstance(message, MarkChanged):
            self._mark_pending = False
            await self._on_mark()
            return None
        if isinstance(message, AccountEventMsg):
            await self._on_account_event(message.event)
            return None
        if isinstance(message, VerifyProtection):
            await self._verify(message.reason)
            return None
        if isinstance(message, AgeTick):
            await self._on_age_tick()
            return None
        if isinstance(message, _ManageTick):
            await self._verify("periodic")
            age_s = self._s.execution.age_tick_s
            now = trio.current_time()
            if now >= self._age_start + self._age_n * age_s:
                self._age_n = math.floor((now - self._age_start) / age_s) + 1
                await self._on_age_tick()
            return None
        if isinstance(message, Close):
            await self._close(message.reason)
            return self.status()
        if isinstance(message, Query):
            return self.status()
        self._ev(
            EventType.ORDER_REJECTED,
            Severity.WARNING,
            reason="unknown_message",
            message=repr(message),
        )
        return None

    async def on_stop(self) -> None:
        self.timers.cancel_all()

    # --- status ----------------------------------------------------------------------

    @property
    def stop_state(self) -> StopState | None:
        """The live stop as this actor knows it."""
        return self._stop

    def status(self) -> PositionStatus:
        return PositionStatus(
            position_id=self.position_id,
            symbol=self.symbol,
            position_side=self.position_side,
            lifecycle=self.lifecycle,
            qty=self._qty,
            filled_qty=self._filled_qty,
            entry_price=self._entry_price,
            stop_price=self._stop_price,
            stop_client_order_id=self._stop.client_order_id if self._stop else "",
            trailing=self._trailing,
            tp_levels_done=frozenset(self._tp_done),
            aged_exit_price=self._aged_price,
            opened_at=self._opened_at,
            mark_price=self._mark,
            close_reason=self._close_reason,
        )

    @property
    def entry_notional_usdt(self) -> Decimal:
        return (self._entry_price or Decimal(0)) * self._qty

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

    def _snapshot_data(self) -> dict[str, Any]:
        return {
            "lifecycle": self.lifecycle.value,
            "symbol": self.symbol,
            "position_side": self.position_side.value,
            "entry_client_order_id": self._entry_cid,
            "requested_qty": str(self._req_qty),
            "filled_qty": str(self._filled_qty),
            "qty": str(self._qty),
            "entry_price": None if self._entry_price is None else str(self._entry_price),
            "opened_at": None if self._opened_at is None else self._opened_at.isoformat(),
            "stop_price": None if self._stop_price is None else str(self._stop_price),
            "stop_client_order_id": self._stop.client_order_id if self._stop else "",
            "stop_venue_order_id": self._stop.venue_order_id if self._stop else "",
            "seq": dict(self._seq),
            "trailing": self._trailing.to_dict(),
            "tp_levels_done": sorted(self._tp_done),
            "tp_orders": dict(self._tp_orders),
            "aged_client_order_id": self._aged_cid,
            "aged_exit_price": None if self._aged_price is None else str(self._aged_price),
            "aged_started": self._aged_started,
            "adopted": self._adopted,
            "close_reason": self._close_reason,
        }

    async def _snapshot(self, durable: bool = True) -> None:
        ev = self._event(EventType.POSITION_SNAPSHOT, Severity.DEBUG, None, self._snapshot_data())
        self._last_snapshot_s = trio.current_time()
        self._snapshot_wm = self._trailing.water_mark
        if durable:
            await self._journal.emit_durable(ev)
        else:
            self._journal.emit(ev)

    def _load_snapshot(self, d: Mapping[str, Any]) -> None:
        def dec(key: str) -> Decimal | None:
            v = d.get(key)
            return None if v is None else Decimal(str(v))

        self.lifecycle = Lifecycle(d.get("lifecycle", "OPENING"))
        self._entry_cid = str(d.get("entry_client_order_id", self._entry_cid))
        self._req_qty = dec("requested_qty") or Decimal(0)
        self._filled_qty = dec("filled_qty") or Decimal(0)
        self._qty = dec("qty") or Decimal(0)
        self._entry_price = dec("entry_price")
        oa = d.get("opened_at")
        self._opened_at = None if oa is None else datetime.fromisoformat(oa)
        self._stop_price = dec("stop_price")
        # ids used after the last snapshot must never be reused (Bybit refuses any reused
        # orderLinkId; Binance any id of an open order): a restarted actor skips ahead
        self._seq.update(
            {str(k): int(v) + _SEQ_SKIP_ON_RESTART for k, v in dict(d.get("seq", {})).items()}
        )
        self._trailing = TrailingState.from_dict(d.get("trailing", {}))
        self._tp_done = {int(i) for i in d.get("tp_levels_done", [])}
        self._tp_orders = {str(k): int(v) for k, v in dict(d.get("tp_orders", {})).items()}
        self._aged_cid = str(d.get("aged_client_order_id", ""))
        self._aged_price = dec("aged_exit_price")
        self._aged_started = bool(d.get("aged_started", False))
        self._adopted = bool(d.get("adopted", self._adopted))
        self._close_reason = str(d.get("close_reason", ""))

    def _next_cid(self, role: OrderRole) -> str:
        self._seq[role.value] += 1
        return client_order_id(self.position_id, role, self._seq[role.value])

    # --- venue call helpers ----------------------------------------------------------

    async def _retry(self, what: str, fn: Callable[[], Awaitable[T]], attempts: int) -> T:
        """Call ``fn``; retry TransientError (incl. RateLimited) with doubling backoff."""
        delay = self._s.execution.retry_backoff_s
        for attempt in range(1, attempts + 1):
            try:
                return await fn()
            except TransientError as exc:
                if attempt >= attempts:
                    raise
                wait = exc.retry_after_s if isinstance(exc, RateLimited) else delay
                self._ev(
                    EventType.EXCHANGE_ERROR,
                    Severity.WARNING,
                    what=what,
                    attempt=attempt,
                    error=exc,
                    retry_in_s=wait,
                )
                await trio.sleep(wait)
                delay *= 2
        raise AssertionError("unreachable")  # pragma: no cover

    async def _query_order(self, cid: str) -> OrderState | None:
        """Look an order up by client id, retrying failed lookups (a failed lookup is not
        "no order"). Raises the last VenueError when every attempt failed."""
        delay = self._s.execution.retry_backoff_s
        attempts = self._s.execution.query_attempts
        for attempt in range(1, attempts + 1):
            try:
                return await self._port.get_order(self.symbol, cid)
            except (TransientError, OutcomeUnknown) as exc:
                if attempt >= attempts:
                    raise
                self._ev(
                    EventType.EXCHANGE_ERROR,
                    Severity.WARNING,
                    cid,
                    what="get_order",
                    attempt=attempt,
                    error=exc,
                )
                await trio.sleep(delay)
                delay *= 2
        raise AssertionError("unreachable")  # pragma: no cover

    async def _venue_position(self) -> PositionState | None:
        """This side's position on the venue (None = flat). Raises after failed retries."""
        positions = await self._retry(
            "positions", lambda: self._port.positions(self.symbol), self._s.execution.query_attempts
        )
        for p in positions:
            if p.position_side is self.position_side and p.qty > 0:
                return p
        return None

    async def _venue_stops(self) -> list[StopState]:
        stops = await self._retry(
            "stops",
            lambda: self._port.stops(self.symbol, self.position_side),
            self._s.execution.query_attempts,
        )
        return list(stops)

    # --- open protocol (DESIGN.md section 4) -----------------------------------------

    def _resolve(self, opened: bool, reason: str = "") -> None:
        if self._ticket is not None:
            self._ticket.resolve(OpenOutcome(self.position_id, opened, reason))

    async def _open(self, req: OpenRequest) -> None:
        self._req_qty = req.qty
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
            cid=self._entry_cid,
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
        )
        await self._snapshot()
        self._ev(EventType.POSITION_OPENING, cid=self._entry_cid)
        entry_req = EntryRequest(
            symbol=self.symbol,
            position_side=self.position_side,
            qty=req.qty,
            client_order_id=self._entry_cid,
            stop_price=intended if self._caps.attached_stop else None,
        )
        order: OrderState | None
        try:
            self._ev(
                EventType.ENTRY_SUBMITTED,
                cid=self._entry_cid,
                qty=req.qty,
                stop_price=entry_req.stop_price,
            )
            order = await self._submit_entry(entry_req)
            self._ev(
                EventType.ENTRY_ACKED,
                cid=self._entry_cid,
                status=order.status,
                venue_order_id=order.venue_order_id,
            )
        except (OutcomeUnknown, DuplicateClientOrderId) as exc:
            if not self._entry_unknown_journaled:
                self._ev(
                    EventType.ENTRY_OUTCOME_UNKNOWN, Severity.WARNING, self._entry_cid, error=exc
                )
            order = await self._resolve_entry()
            if order is None:
                return
        except (RejectedError, TransientError) as exc:
            self._ev(
                EventType.ENTRY_REJECTED,
                Severity.WARNING,
                self._entry_cid,
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
                        "place_entry", lambda: self._port.place_entry(entry_req), ex.stop_attempts
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
                self._entry_cid,
                error=f"no answer after {ex.entry_probe_after_s} s; looking it up",
            )
            while True:
                try:
                    order = await self._port.get_order(self.symbol, self._entry_cid)
                except VenueError:
                    order = None
                if order is not None and order.filled_qty > 0:
                    self._ev(
                        EventType.ENTRY_RESOLVED,
                        cid=self._entry_cid,
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
                and self._stop is None
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
                order = await self._query_order(self._entry_cid)
            except VenueError as exc:
                await self._fail_unknown_entry(exc)
                return
        if order is not None and not order.status.is_terminal:
            # still working after the timeout: cancel the rest, protect what filled
            try:
                await self._retry(
                    "cancel_order", lambda: self._port.cancel_order(self.symbol, self._entry_cid), 3
                )
            except (UnknownOrder, VenueError):
                pass
            try:
                order = await self._query_order(self._entry_cid)
            except VenueError as exc:
                await self._fail_unknown_entry(exc)
                return
        filled = order.filled_qty if order is not None else Decimal(0)
        if order is None or filled <= 0:
            await self._rollback("entry_not_filled")
            return
        self._filled_qty = filled
        self._qty = filled
        self._entry_price = order.avg_fill_price or (
            self._ticket.request.reference_price if self._ticket else None
        )
        etype = EventType.ENTRY_FILLED if filled >= self._req_qty else EventType.ENTRY_PARTIAL_FILL
        await self._ev_durable(
            etype,
            cid=self._entry_cid,
            filled_qty=filled,
            requested_qty=self._req_qty,
            avg_fill_price=self._entry_price,
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
            cid=self._entry_cid,
            filled_qty=order.filled_qty,
            requested_qty=self._req_qty,
            avg_fill_price=price,
            still_working=True,
        )
        try:
            target = initial_stop_price(
                price, self.position_side, self.instrument, self._s.stop_loss
            )
            await self._place_new_stop(target, "initial_partial")
        except (NoValidStop, ValueError, WouldTriggerImmediately, _StopFailed) as exc:
            self._ev(
                EventType.STOP_REJECTED,
                Severity.WARNING,
                reason="early_stop_failed",
                error=str(exc),
            )
            return False
        return True

    async def _protect_new_position(self, attached: Decimal | None) -> None:
        assert self._entry_price is not None
        if self._stop is not None:  # placed while the entry was partially filled
            await self._activate()
            return
        if self._caps.attached_stop and attached is not None:
            stops = await self._venue_stops()
            if len(stops) == 1:
                self._stop = stops[0]
                self._stop_price = stops[0].trigger_price
                await self._activate()
                return
            # the attached stop is missing: place it (below)
        try:
            target = initial_stop_price(
                self._entry_price, self.position_side, self.instrument, self._s.stop_loss
            )
        except (NoValidStop, ValueError):
            await self._flatten_or_emergency("no_valid_stop")
            return
        if attached is not None and is_tighter(attached, target, self.position_side):
            target = attached
        try:
            await self._place_new_stop(target, "initial")
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
        except _StopFailed as exc:
            await self._flatten_or_emergency(f"stop_failed: {exc}")
            return
        await self._activate()

    async def _activate(self) -> None:
        self.lifecycle = Lifecycle.ACTIVE
        self._opened_at = self._clock.now()
        self._ev(
            EventType.STOP_CONFIRMED,
            cid=self._stop.client_order_id if self._stop else None,
            stop_price=self._stop_price,
            qty=self._qty,
        )
        await self._ev_durable(
            EventType.POSITION_ACTIVE,
            entry_price=self._entry_price,
            qty=self._qty,
            stop_price=self._stop_price,
        )
        await self._snapshot()
        self._resolve(True)

    async def _rollback(self, reason: str) -> None:
        self.lifecycle = Lifecycle.ROLLED_BACK
        self._close_reason = reason
        await self._ev_durable(EventType.POSITION_ROLLED_BACK, Severity.WARNING, reason=reason)
        await self._snapshot()
        self._resolve(False, reason)

    async def _fail_unknown_entry(self, exc: BaseException) -> None:
        """The entry's outcome cannot be resolved: never resubmit; alert, keep FAILED."""
        self.lifecycle = Lifecycle.FAILED
        self._close_reason = "entry_outcome_unresolved"
        await self._ev_durable(
            EventType.POSITION_FAILED,
            Severity.CRITICAL,
            cid=self._entry_cid,
            reason="entry_outcome_unresolved",
            error=exc,
        )
        self._ev(
            EventType.ALERT_RAISED, Severity.CRITICAL, reason="entry_outcome_unresolved", error=exc
        )
        await self._snapshot()
        self._resolve(False, "entry_outcome_unresolved")

    # --- stops -------------------------------------------------------------------------

    def _stop_request(self, price: Decimal, cid: str) -> StopRequest:
        return StopRequest(
            symbol=self.symbol,
            position_side=self.position_side,
            trigger_price=price,
            client_order_id=cid,
        )

    async def _place_new_stop(
        self, price: Decimal, reason: str, role: OrderRole = OrderRole.STOP
    ) -> StopState:
        """Place a stop with bounded retries; sets it as the live stop.

        Raises:
            WouldTriggerImmediately: the level is already through the mark.
            _StopFailed: every attempt failed.
        """
        delay = self._s.execution.retry_backoff_s
        last: BaseException | None = None
        for attempt in range(1, self._s.execution.stop_attempts + 1):
            cid = self._next_cid(role)
            await self._ev_durable(
                EventType.STOP_INTENT, cid=cid, stop_price=price, reason=reason, attempt=attempt
            )
            try:
                st = await self._port.place_stop(self._stop_request(price, cid))
            except WouldTriggerImmediately:
                raise
            except OutcomeUnknown as exc:
                last = exc
                found = await self._find_stop(cid, price)
                if found is not None:
                    st = found
                else:
                    self._ev(
                        EventType.STOP_RETRY, Severity.WARNING, cid, attempt=attempt, error=exc
                    )
                    await trio.sleep(delay)
                    delay *= 2
                    continue
            except VenueError as exc:
                last = exc
                wait = exc.retry_after_s if isinstance(exc, RateLimited) else delay
                self._ev(
                    EventType.STOP_RETRY,
                    Severity.WARNING,
                    cid,
                    attempt=attempt,
                    error=exc,
                    code=exc.code,
                    retry_in_s=wait,
                )
                await trio.sleep(wait)
                delay *= 2
                continue
            self._stop = st
            self._stop_price = st.trigger_price
            await self._ev_durable(
                EventType.STOP_PLACED,
                cid=cid,
                stop_price=st.trigger_price,
                venue_order_id=st.venue_order_id,
                reason=reason,
            )
            return st
        raise _StopFailed(f"{type(last).__name__}: {last}" if last else "no attempt")

    async def _find_stop(self, cid: str, price: Decimal) -> StopState | None:
        """Resolve an unknown stop-placement outcome by client id (or, for position-level
        stops without ids, by the venue's stop list)."""
        try:
            stops = await self._venue_stops()
        except VenueError:
            return None
        for s in stops:
            if (self._caps.stop_has_client_id and s.client_order_id == cid) or (
                not self._caps.stop_has_client_id and s.trigger_price == price
            ):
                return s
        return None

    async def _move_stop(self, new_price: Decimal, reason: str) -> bool:
        """Move the live stop to ``new_price`` (tighter). True when the venue confirmed.

        Amend in place when the venue can; otherwise make-before-break. On failure the old
        stop stays live (the position stays protected) and False is returned.
        """
        old = self._stop
        old_price = self._stop_price
        if old is not None and self._caps.amend_stop:
            await self._ev_durable(
                EventType.STOP_INTENT,
                cid=old.client_order_id or None,
                stop_price=new_price,
                old_stop_price=old_price,
                reason=reason,
            )
            try:
                st = await self._retry(
                    "amend_stop",
                    lambda: self._port.amend_stop(old, new_price),
                    self._s.execution.stop_attempts,
                )
            except WouldTriggerImmediately as exc:
                return self._stop_rejected("would_trigger_immediately", exc, new_price)
            except VenueError as exc:
                return self._stop_rejected("amend_failed", exc, new_price, Severity.ERROR)
            self._stop = st
            self._stop_price = st.trigger_price
            await self._ev_durable(
                EventType.STOP_MOVED,
                cid=st.client_order_id or None,
                old_stop_price=old_price,
                stop_price=st.trigger_price,
                reason=reason,
            )
            return True
        # make-before-break
        self.replacing_stop = True
        try:
            try:
                st = await self._place_new_stop(new_price, reason)
            except WouldTriggerImmediately as exc:
                return self._stop_rejected("would_trigger_immediately", exc, new_price)
            except _StopFailed as exc:
                self._stop, self._stop_price = old, old_price
                return self._stop_rejected("replace_failed", exc, new_price, Severity.ERROR)
            if old is not None and (
                old.client_order_id != st.client_order_id or old.venue_order_id != st.venue_order_id
            ):
                await self._cancel_stop_quietly(old)
            self._ev(
                EventType.STOP_MOVED,
                cid=st.client_order_id or None,
                old_stop_price=old_price,
                stop_price=st.trigger_price,
                reason=reason,
            )
            return True
        finally:
            self.replacing_stop = False

    async def _cancel_stop_quietly(self, stop: StopState) -> bool:
        try:
            await self._retry(
                "cancel_stop", lambda: self._port.cancel_stop(stop), self._s.execution.stop_attempts
            )
        except UnknownOrder:
            return True
        except VenueError as exc:
            self._ev(
                EventType.EXCHANGE_ERROR,
                Severity.ERROR,
                stop.client_order_id or None,
                what="cancel_stop",
                error=exc,
            )
            return False
        self._ev(
            EventType.STOP_CANCELLED,
            cid=stop.client_order_id or None,
            stop_price=stop.trigger_price,
        )
        return True

    # --- flatten / close ---------------------------------------------------------------

    async def _market_reduce(self, qty: Decimal, reason: str) -> bool:
        """Reduce-only market order for ``qty`` then verify the side is flat."""
        cid = self._next_cid(OrderRole.CLOSE)
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
            await self._retry("place_reduce", lambda: self._port.place_reduce(req), 2)
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
        self._qty = pos.qty
        return False

    async def _flatten_or_emergency(self, reason: str) -> None:
        """Stop placement failed: flatten the filled qty and verify flat; if that fails,
        an emergency wide stop and a critical alert."""
        await self._ev_durable(
            EventType.FLATTEN_INTENT, Severity.ERROR, reason=reason, qty=self._qty
        )
        for attempt in range(1, self._s.execution.flatten_attempts + 1):
            if await self._market_reduce(self._qty, f"flatten: {reason}"):
                await self._ev_durable(
                    EventType.FLATTEN_VERIFIED, reason=reason, qty=self._filled_qty
                )
                self._qty = Decimal(0)
                await self._cleanup_orders()
                await self._finish_closed(f"rolled_back: {reason}", Lifecycle.ROLLED_BACK)
                self._resolve(False, f"{reason}; flattened")
                return
            self._ev(EventType.FLATTEN_FAILED, Severity.ERROR, attempt=attempt, reason=reason)
            await trio.sleep(self._s.execution.retry_backoff_s * attempt)
        # flatten failed: emergency wide stop + critical alert
        assert self._entry_price is not None
        placed: Decimal | None = None
        try:
            price = emergency_stop_price(
                self._entry_price, self.position_side, self.instrument, self._s.stop_loss
            )
            st = await self._place_new_stop(price, "emergency", role=OrderRole.EMERGENCY_STOP)
            placed = st.trigger_price
            self._ev(
                EventType.EMERGENCY_STOP_PLACED,
                Severity.CRITICAL,
                st.client_order_id or None,
                stop_price=placed,
            )
        except (NoValidStop, ValueError, WouldTriggerImmediately, _StopFailed) as exc:
            self._ev(
                EventType.EMERGENCY_STOP_PLACED, Severity.CRITICAL, placed=False, error=str(exc)
            )
        self.lifecycle = Lifecycle.FAILED
        self._close_reason = f"flatten_failed: {reason}"
        self._ev(
            EventType.ALERT_RAISED,
            Severity.CRITICAL,
            reason="flatten_failed",
            detail=reason,
            emergency_stop=placed,
            qty=self._qty,
        )
        await self._ev_durable(
            EventType.POSITION_FAILED, Severity.CRITICAL, reason=reason, emergency_stop=placed
        )
        await self._snapshot()
        self._resolve(False, f"{reason}; flatten failed; emergency stop")

    async def _close(self, reason: str) -> None:
        """Close at market (reduce-only), verify flat, cancel leftovers, end the actor."""
        if self.lifecycle in (Lifecycle.CLOSED, Lifecycle.ROLLED_BACK):
            return
        self.lifecycle = Lifecycle.CLOSING
        await self._ev_durable(EventType.POSITION_CLOSING, reason=reason, qty=self._qty)
        await self._cancel_exit_orders()
        for _attempt in range(self._s.execution.flatten_attempts):
            try:
                # close what the venue holds, not what events said last
                pos = await self._venue_position()
                qty = Decimal(0) if pos is None else pos.qty
                self._qty = qty
            except VenueError:
                qty = self._qty
            if qty <= 0:
                break
            if await self._market_reduce(qty, reason):
                self._qty = Decimal(0)
                break
            await trio.sleep(self._s.execution.retry_backoff_s)
        if self._qty > 0:
            self.lifecycle = Lifecycle.ACTIVE
            self._ev(EventType.FLATTEN_FAILED, Severity.ERROR, reason=reason, qty=self._qty)
            self._ev(EventType.ALERT_RAISED, Severity.ERROR, reason="close_failed", detail=reason)
            await self._snapshot()
            return
        await self._cleanup_orders()
        await self._finish_closed(reason)

    async def _cancel_exit_orders(self) -> None:
        for cid in [*self._tp_orders, *([self._aged_cid] if self._aged_cid else [])]:
            try:
                await self._retry(
                    "cancel_order",
                    lambda c=cid: self._port.cancel_order(  # type: ignore[misc]
                        self.symbol, c
                    ),
                    3,
                )
                self._ev(EventType.ORDER_CANCELLED, cid=cid)
            except VenueError:
                pass
        self._tp_orders.clear()
        self._aged_cid = ""
        self._aged_price = None

    async def _cleanup_orders(self) -> None:
        """Cancel everything this position left on the venue (no zombies)."""
        await self._cancel_exit_orders()
        try:
            stops = await self._venue_stops()
        except VenueError:
            stops = []
        for s in stops:
            await self._cancel_stop_quietly(s)
        self._stop = None

    async def _finish_closed(self, reason: str, final: Lifecycle = Lifecycle.CLOSED) -> None:
        self.lifecycle = final
        self._close_reason = reason
        etype = (
            EventType.POSITION_CLOSED
            if final is Lifecycle.CLOSED
            else EventType.POSITION_ROLLED_BACK
        )
        await self._ev_durable(
            etype, reason=reason, filled_qty=self._filled_qty, entry_price=self._entry_price
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

    # --- management ------------------------------------------------------------------

    def _start_management(self) -> None:
        self.nursery.start_soon(self._watch_marks)
        verify_s = self._s.protection.verify_interval_s
        age_s = self._s.execution.age_tick_s
        ratio = age_s / verify_s
        if ratio >= 1 and ratio == int(ratio):
            # one timer: every verification also runs the aged-exit tick once it is due
            # (due times start + n * age_tick_s, the same as an own "age" timer's)
            self._age_start = trio.current_time()
            self._age_n = 1
            self.timers.every("verify", verify_s, _ManageTick())
        else:
            self.timers.every("verify", verify_s, VerifyProtection())
            self.timers.every("age", age_s, AgeTick())
        if self._marks.get() is not None:
            self._post_mark()

    def _post_mark(self) -> None:
        if not self._mark_pending:
            self._mark_pending = True
            try:
                self.address.send_nowait(MarkChanged())
            except Exception:
                self._mark_pending = False

    async def _watch_marks(self) -> None:
        # The cell calls ``_post_mark`` synchronously on every set: at most one MarkChanged
        # is pending in the mailbox at a time (conflated), and no task switch is spent per
        # tick on a watcher. Living in this actor's nursery ties the registration to this
        # incarnation: a crash or stop cancels the nursery and the ``finally`` unregisters.
        remove = self._marks.add_listener(self._post_mark)
        try:
            await trio.sleep_forever()
        finally:
            remove()

    async def _on_mark(self) -> None:
        mp = self._marks.get()
        if mp is None:
            return
        self._mark = mp.mark_price
        if self.lifecycle is not Lifecycle.ACTIVE or self._entry_price is None:
            return
        if self._s.take_profit.levels:
            await self._take_profits(mp.mark_price)
            if self.lifecycle is not Lifecycle.ACTIVE:
                return
        if self._stop_price is None or self._opened_at is None:
            return
        now = self._clock.now()
        d = trailing_step(
            self._trailing,
            settings=self._s.trailing,
            side=self.position_side,
            instrument=self.instrument,
            entry_price=self._entry_price,
            opened_at=self._opened_at,
            mark_price=mp.mark_price,
            current_stop=self._stop_price,
            now=now,
        )
        if self._on_decision is not None:
            self._on_decision(self, mp, d)
        phase_changed = d.state.phase is not self._trailing.phase
        self._trailing = d.state
        for e in d.events:
            if e == "activated":
                self._ev(
                    EventType.TRAILING_ACTIVATED,
                    mark_price=mp.mark_price,
                    water_mark=d.state.water_mark,
                )
            elif e == "breakeven":
                self._ev(EventType.TRAILING_BREAKEVEN, mark_price=mp.mark_price)
        if d.new_stop is not None:
            old = self._stop_price
            if await self._move_stop(d.new_stop, f"trailing:{d.reason}"):
                self._trailing = self._trailing.with_update(now)
                self._ev(
                    EventType.TRAILING_UPDATE,
                    mark_price=mp.mark_price,
                    water_mark=self._trailing.water_mark,
                    old_stop_price=old,
                    stop_price=self._stop_price,
                    update_count=self._trailing.update_count,
                    reason=d.reason,
                )
                self._skip_journaled = False
                await self._snapshot()
                return
        elif d.reason in ("rate_limited", "below_min_improvement") and not self._skip_journaled:
            # why a better stop was not sent: journaled once per update cycle (not per tick)
            self._skip_journaled = True
            self._ev(
                EventType.TRAILING_SKIPPED,
                Severity.DEBUG,
                mark_price=mp.mark_price,
                water_mark=self._trailing.water_mark,
                stop_price=self._stop_price,
                reason=d.reason,
            )
        if phase_changed:
            await self._snapshot()
        elif (
            self._trailing.phase is not TrailingPhase.INACTIVE
            and self._trailing.water_mark != self._snapshot_wm
            and trio.current_time() - self._last_snapshot_s >= self._s.execution.snapshot_interval_s
        ):
            # once trailing is engaged every new high/low-water mark is persisted, so a
            # restarted actor resumes exactly; before that the mark is flushed with the
            # periodic protection check (VerifyProtection)
            await self._snapshot(durable=False)

    async def _take_profits(self, mark: Decimal) -> None:
        assert self._entry_price is not None
        due = due_take_profits(
            settings=self._s.take_profit,
            side=self.position_side,
            instrument=self.instrument,
            entry_price=self._entry_price,
            mark_price=mark,
            filled_qty=self._filled_qty,
            remaining_qty=self._qty,
            done=self._tp_done | set(self._tp_orders.values()),
        )
        for order in due:
            if order.qty <= 0:
                self._tp_done.add(order.level_index)
                self._ev(EventType.TP_PLACED, level=order.level_index, skipped=order.reason)
                continue
            cid = self._next_cid(OrderRole.TAKE_PROFIT)
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
                st = await self._retry("place_reduce", lambda r=req: self._port.place_reduce(r), 3)  # type: ignore[misc]
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
            self._tp_orders[cid] = order.level_index
            self._ev(EventType.TP_PLACED, cid=cid, level=order.level_index, qty=order.qty)
            await self._snapshot()
            if st is not None and st.status is OrderStatus.FILLED:
                await self._tp_filled(cid, st.filled_qty, st.avg_fill_price)
            if self.lifecycle is not Lifecycle.ACTIVE:
                return

    async def _tp_filled(self, cid: str, qty: Decimal, price: Decimal | None) -> None:
        level = self._tp_orders.pop(cid, None)
        if level is None or level in self._tp_done:
            return
        first = not self._tp_done
        self._tp_done.add(level)
        self._qty = max(Decimal(0), self._qty - qty)
        await self._ev_durable(
            EventType.TP_FILLED, cid=cid, level=level, qty=qty, price=price, remaining_qty=self._qty
        )
        if self._qty <= 0:
            await self._cleanup_orders()
            await self._finish_closed("take_profit_complete")
            return
        if (
            first
            and self._s.take_profit.breakeven_after_first
            and self._entry_price is not None
            and self._stop_price is not None
        ):
            be = breakeven_stop_price(
                self._entry_price,
                self.position_side,
                self.instrument,
                self._s.take_profit.breakeven_offset_pct,
            )
            mark = self._mark
            protective = mark is None or (
                be < mark if self.position_side is PositionSide.LONG else be > mark
            )
            if (
                is_tighter(be, self._stop_price, self.position_side)
                and protective
                and await self._move_stop(be, "take_profit_breakeven")
            ):
                self._ev(EventType.TRAILING_BREAKEVEN, reason="take_profit", stop_price=be)
        await self._snapshot()

    # --- account events ----------------------------------------------------------------

    async def _on_account_event(self, ev: AccountEvent) -> None:
        if isinstance(ev, StreamGap):
            await self._verify("stream_gap")
            return
        if self.lifecycle not in (Lifecycle.ACTIVE, Lifecycle.FAILED, Lifecycle.CLOSING):
            return
        if isinstance(ev, Fill):
            # the fill itself is journaled once by the AccountRouter (it also sees fills
            # that arrive after this actor ended)
            if ev.client_order_id in self._tp_orders:
                await self._tp_filled(ev.client_order_id, ev.qty, ev.price)
                return
            if ev.client_order_id and ev.client_order_id == self._aged_cid:
                self._ev(
                    EventType.AGED_EXIT_FILLED, cid=ev.client_order_id, qty=ev.qty, price=ev.price
                )
            if ev.position_side is self.position_side and ev.side is self.position_side.exit_side:
                await self._check_external_close(self._fill_reason(ev))
            return
        if isinstance(ev, PositionUpdate):
            p = ev.position
            if p.position_side is not self.position_side:
                return
            if self._last_position_ts is not None and ev.ts < self._last_position_ts:
                return  # an older update delivered late
            self._last_position_ts = ev.ts
            if p.qty <= 0:
                await self._check_external_close("position_flat")
                return
            # the newest update wins (events queued while opening may be stale partials)
            self._qty = p.qty
            if (
                self._stop is not None
                and not self._stop.venue_order_id
                and not self._stop.client_order_id
                and p.stop_price != self._stop_price
            ):
                # a position-level stop (Bybit trading-stop) changed behind our back
                await self._verify("position_stop_changed")
            return
        if isinstance(ev, OrderUpdate):
            o = ev.order
            self._ev(
                EventType.ORDER_UPDATE,
                cid=o.client_order_id,
                status=o.status,
                filled_qty=o.filled_qty,
            )
            if o.client_order_id in self._tp_orders and o.status is OrderStatus.FILLED:
                await self._tp_filled(o.client_order_id, o.filled_qty, o.avg_fill_price)
            elif (
                self._stop is not None
                and o.client_order_id == self._stop.client_order_id
                and o.status in (OrderStatus.CANCELED, OrderStatus.EXPIRED, OrderStatus.REJECTED)
            ):
                await self._verify("stop_order_gone")

    def _fill_reason(self, ev: Fill) -> str:
        if ev.reason in ("liquidation", "adl"):
            return ev.reason
        if ev.reason == "stop" or (
            self._stop is not None
            and ev.client_order_id
            and ev.client_order_id == self._stop.client_order_id
        ):
            return "stop_triggered"
        if ev.client_order_id and ev.client_order_id == self._aged_cid:
            return "aged_exit"
        if ev.client_order_id.startswith(f"tb-{self.position_id}-"):
            return "own_order"
        return "external_close"

    async def _check_external_close(self, reason: str) -> None:
        """Confirm with the venue; if flat, end with ``reason`` and cancel leftovers."""
        try:
            pos = await self._venue_position()
        except VenueError:
            return  # the periodic verify will look again
        if pos is not None:
            self._qty = pos.qty
            return
        if self.lifecycle is Lifecycle.CLOSING:
            return  # our own close; _close finishes
        if reason == "stop_triggered":
            self._ev(EventType.STOP_TRIGGERED, stop_price=self._stop_price)
        self._qty = Decimal(0)
        await self._cleanup_orders()
        await self._finish_closed(reason)

    # --- protection --------------------------------------------------------------------

    def _stop_rejected(
        self,
        reason: str,
        exc: Exception,
        stop_price: Decimal,
        severity: Severity = Severity.WARNING,
    ) -> bool:
        """Journal a stop move the venue refused (the old stop stays in force); False."""
        self._ev(
            EventType.STOP_REJECTED,
            severity,
            reason=reason,
            error=exc,
            code=getattr(exc, "code", ""),
            stop_price=stop_price,
        )
        return False

    def _journal_verified(self, reason: str) -> None:
        """Journal a verification that found the stop in place.

        Every non-periodic verification, and every one that finds a different stop than the
        last journaled one, is journaled at once. Quiet periodic checks (same stop) are
        counted and journaled at most every ``protection.verified_journal_interval_s``, so
        the journal keeps the evidence (``quiet_checks``) without one row per 30 s per
        position.
        """
        now = self._clock.now()
        last = self._verified_journaled_at
        if (
            reason == "periodic"
            and last is not None
            and self._stop_price == self._verified_journaled_price
            and (now - last).total_seconds() < self._s.protection.verified_journal_interval_s
        ):
            self._quiet_verifications += 1
            return
        self._ev(
            EventType.PROTECTION_VERIFIED,
            Severity.DEBUG,
            stop_price=self._stop_price,
            reason=reason,
            quiet_checks=self._quiet_verifications,
        )
        self._verified_journaled_at = now
        self._verified_journaled_price = self._stop_price
        self._quiet_verifications = 0

    async def _verify(self, reason: str) -> None:
        if self.lifecycle not in (Lifecycle.ACTIVE, Lifecycle.FAILED) or self._entry_price is None:
            return
        try:
            pos = await self._venue_position()
            stops = await self._venue_stops()
        except VenueError as exc:
            self._ev(EventType.EXCHANGE_ERROR, Severity.WARNING, what="verify", error=exc)
            return
        if pos is None:
            self._qty = Decimal(0)
            await self._cleanup_orders()
            await self._finish_closed(f"closed_externally ({reason})")
            return
        self._qty = pos.qty
        mark = self._mark or pos.mark_price or self._entry_price
        intended = None if (self._adopted and self._stop_price is None) else self._stop_price
        d = decide_repair(
            side=self.position_side,
            instrument=self.instrument,
            entry_price=self._entry_price,
            mark_price=mark,
            intended_stop=intended,
            live_stop_prices=[s.trigger_price for s in stops],
            settings=self._s.protection,
        )
        if d.action is RepairAction.OK:
            self._stop = stops[0]
            self._stop_price = stops[0].trigger_price
            self._journal_verified(reason)
            if self._trailing.water_mark != self._snapshot_wm:
                await self._snapshot(durable=False)
            return
        if d.action is RepairAction.CLOSE:
            self._ev(
                EventType.PROTECTION_BREACH,
                Severity.ERROR,
                mark_price=mark,
                stop_price=self._stop_price,
                action="close",
                reason=d.reason,
            )
            await self._close(f"protection_breach: {d.reason}")
            return
        assert d.stop_price is not None
        if d.reason.startswith("breach"):
            self._ev(
                EventType.PROTECTION_BREACH,
                Severity.ERROR,
                mark_price=mark,
                stop_price=self._stop_price,
                action="tighten",
                new_stop_price=d.stop_price,
            )
        else:
            self._ev(
                EventType.PROTECTION_MISSING,
                Severity.WARNING,
                live=len(stops),
                reason=d.reason,
                trigger=reason,
            )
        keep = [s for s in stops if s.trigger_price == d.stop_price]
        if d.action is RepairAction.DEDUPE or (keep and d.action is RepairAction.PLACE):
            kept = keep[0]
            for s in stops:
                if s is not kept:
                    await self._cancel_stop_quietly(s)
            self._stop, self._stop_price = kept, kept.trigger_price
        elif stops:
            # one looser (or breached) stop: move it to the target
            self._stop, self._stop_price = stops[0], stops[0].trigger_price
            for s in stops[1:]:
                await self._cancel_stop_quietly(s)
            if not await self._move_stop(d.stop_price, f"repair:{d.reason}"):
                await self._handle_repair_failure(d.stop_price)
                return
        else:
            self._stop = None
            try:
                await self._place_new_stop(d.stop_price, f"repair:{d.reason}")
            except WouldTriggerImmediately:
                await self._close("protection_repair_would_trigger")
                return
            except _StopFailed as exc:
                self._ev(
                    EventType.ALERT_RAISED,
                    Severity.CRITICAL,
                    reason="repair_failed",
                    error=str(exc),
                )
                await self._flatten_or_emergency(f"repair_failed: {exc}")
                return
        self._ev(
            EventType.PROTECTION_REPAIRED,
            stop_price=self._stop_price,
            reason=d.reason,
            trigger=reason,
        )
        await self._snapshot()
        # the repaired stop may be behind what trailing wants at this mark: catch up now, so
        # a repair and a trailing move at the same instant end at the better price
        if self.lifecycle is Lifecycle.ACTIVE:
            await self._on_mark()

    async def _handle_repair_failure(self, target: Decimal) -> None:
        self._ev(
            EventType.ALERT_RAISED, Severity.ERROR, reason="repair_move_failed", stop_price=target
        )

    # --- aged exit ---------------------------------------------------------------------

    async def _on_age_tick(self) -> None:
        if (
            self.lifecycle is not Lifecycle.ACTIVE
            or self._entry_price is None
            or self._opened_at is None
        ):
            return
        t = aged_target(
            opened_at=self._opened_at,
            now=self._clock.now(),
            entry_price=self._entry_price,
            side=self.position_side,
            instrument=self.instrument,
            settings=self._s.aged,
        )
        if t.phase is AgedPhase.NOT_AGED:
            return
        if not self._aged_started:
            self._aged_started = True
            self._ev(
                EventType.AGED_STARTED,
                age_h=(self._clock.now() - self._opened_at).total_seconds() / 3600,
            )
        if t.phase is AgedPhase.MARKET_CLOSE:
            self._ev(EventType.AGED_MARKET_CLOSE, loss_pct=t.loss_pct)
            await self._close("aged_max_loss")
            return
        if not should_replace_exit(self._aged_price, t, self.instrument.tick_size):
            return
        old_cid = self._aged_cid
        if old_cid:
            try:
                await self._retry(
                    "cancel_order", lambda: self._port.cancel_order(self.symbol, old_cid), 3
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
        cid = self._next_cid(OrderRole.AGED_EXIT)
        assert t.price is not None
        await self._ev_durable(
            EventType.ORDER_INTENT,
            cid=cid,
            role="AGED_EXIT",
            price=t.price,
            qty=self._qty,
            phase=t.phase.value,
        )
        req = ReduceRequest(
            symbol=self.symbol,
            position_side=self.position_side,
            qty=self._qty,
            client_order_id=cid,
            price=t.price,
            role=OrderRole.AGED_EXIT,
        )
        try:
            st = await self._retry("place_reduce", lambda: self._port.place_reduce(req), 3)
        except VenueError as exc:
            self._aged_cid, self._aged_price = "", None
            self._ev(EventType.ORDER_REJECTED, Severity.WARNING, cid, error=exc, code=exc.code)
            return
        self._aged_cid, self._aged_price = cid, t.price
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

    async def _resolve_entry(self, **context: Any) -> OrderState | None:
        """Resolve an entry of unknown outcome by looking its client order id up.

        Journals ENTRY_RESOLVED. Returns the venue's order, or None after having ended the
        position: rolled back when the venue has no such order (nothing was placed), failed
        (with its alert) when every lookup failed. Never submits a second entry
        (DESIGN.md invariant 4).
        """
        try:
            order = await self._query_order(self._entry_cid)
        except VenueError as exc:
            # no order list shows the entry, but its side may hold the position it opened
            # (a lookup that cannot confirm the absence raises): own and protect that one
            order = await self._entry_from_position()
            if order is None:
                await self._fail_unknown_entry(exc)
                return None
            self._ev(
                EventType.ENTRY_RESOLVED,
                cid=self._entry_cid,
                found=True,
                status=order.status,
                via="position_list",
                error=exc,
                **context,
            )
            return order
        self._ev(
            EventType.ENTRY_RESOLVED,
            cid=self._entry_cid,
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
            client_order_id=self._entry_cid,
            venue_order_id="",
            side=self.position_side.entry_side,
            position_side=self.position_side,
            order_type=OrderType.MARKET,
            status=OrderStatus.FILLED,
            qty=pos.qty,
            filled_qty=pos.qty,
            avg_fill_price=pos.entry_price or None,
        )

    # --- recovery ----------------------------------------------------------------------

    async def _recover(self) -> None:
        """Rebuild from the snapshot (already loaded) and the exchange."""
        if self.lifecycle in (Lifecycle.CLOSED, Lifecycle.ROLLED_BACK):
            self._resolve(False, self._close_reason or self.lifecycle.value.lower())
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
                        await self._cancel_stop_quietly(st)
                self._stop, self._stop_price = keep, keep.trigger_price
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
            self.lifecycle = Lifecycle.ACTIVE
        pos = await self._venue_position()
        if pos is None:
            self._qty = Decimal(0)
            await self._cleanup_orders()
            await self._finish_closed("closed_while_down")
            self._resolve(False, "closed_while_down")
            return
        self._qty = pos.qty
        stops = await self._venue_stops()
        mine = [
            s for s in stops if self._stop_price is not None and s.trigger_price == self._stop_price
        ]
        if mine:
            self._stop = mine[0]
        elif stops:
            self._stop = stops[0]
        await self._verify("recovered")
        self._resolve(
            self.lifecycle is Lifecycle.ACTIVE,
            "" if self.lifecycle is Lifecycle.ACTIVE else self._close_reason,
        )

    async def _adopt(self) -> None:
        """A position found on the exchange without our intent: protect it (emergency stop
        when it has none) and manage it."""
        self._adopted = True
        pos = await self._venue_position()
        if pos is None:
            self.lifecycle = Lifecycle.CLOSED
            self._close_reason = "nothing_to_adopt"
            return
        self._qty = self._filled_qty = pos.qty
        self._entry_price = pos.entry_price
        self._opened_at = self._clock.now()
        self.lifecycle = Lifecycle.ACTIVE
        self._ev(EventType.RECONCILE_ADOPTED, qty=pos.qty, entry_price=pos.entry_price)
        stops = await self._venue_stops()
        if stops:
            self._stop = stops[0]
            self._stop_price = stops[0].trigger_price
        await self._verify("adopted")
        await self._snapshot()
