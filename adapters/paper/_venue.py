"""In-process :class:`tradebot.ports.ExchangePort` over a :class:`PaperEngine`, for trio.

Request model. Each call takes ``latency_s`` seconds of trio time in total: half before
the engine applies it (the request travelling), half after (the answer travelling). Under
``trio.testing.MockClock`` that time is virtual. A :class:`FaultPlan` may replace the call's
normal outcome (see :mod:`adapters.paper._faults`).

Feeding prices (how a replay driver uses it)::

    engine = PaperEngine(bybit_like(), instruments, wallet_usdt=Decimal(10000), start_ts=t0)
    venue = PaperVenue(engine, latency_s=0.05, faults=FaultPlan(seed=7))
    # inside trio, for each tick in time order (same ts for all symbols of one bar is fine):
    await trio.sleep_until(...)          # advance virtual time to the tick
    venue.push_mark("BTCUSDT", Decimal("67000.1"), ts)   # sync: triggers, fills, events
    venue.apply_funding("BTCUSDT", Decimal("0.0001"), ts)  # at funding timestamps

``push_mark`` runs one engine step (stops/limits matched, account events produced, step
listeners called) and queues a ``MarkPrice`` for every market-stream subscriber of the
symbol. Account events reach ``run_account_stream`` subscribers through unbounded queues,
subject to the plan's event faults. Pass ``clock`` so each request first moves the engine
time to ``clock.now()`` (e.g. a :class:`tradebot.clock.TrioClock` in replay).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import TypeVar

import attrs
import trio

from tradebot.domain import Instrument, OrderRole, PositionSide
from tradebot.errors import OutcomeUnknown, RateLimited, TransientError, VenueError
from tradebot.ids import parse_client_order_id
from tradebot.ports import (
    AccountEvent,
    Balance,
    Capabilities,
    Clock,
    EntryRequest,
    Fill,
    MarketEvent,
    MarkPrice,
    OrderState,
    PositionState,
    ReduceRequest,
    StopRequest,
    StopState,
    StreamGap,
)
from tradebot.scheduling import sleep_until

from ._engine import EngineStep, PaperEngine
from ._engine_model import ignore_quiet_mark
from ._faults import READ_METHODS, EventFaultKind, Fault, FaultKind, FaultPlan

__all__ = ["PaperVenue"]

T = TypeVar("T")


@attrs.frozen
class _Queued:
    event: AccountEvent | MarketEvent
    delay_s: float
    enqueued_at: float | None


class _Subscriber:
    def __init__(self, symbols: frozenset[str] | None) -> None:
        self.symbols = symbols
        self.send, self.receive = trio.open_memory_channel[_Queued](math.inf)


def _role_of(client_order_id: str) -> OrderRole | None:
    parsed = parse_client_order_id(client_order_id)
    return parsed[1] if parsed else None


def _trio_now() -> float | None:
    try:
        return trio.current_time()
    except RuntimeError:
        return None


class PaperVenue:
    """The paper exchange as an ``ExchangePort`` (hedge mode, one account).

    Args:
        engine: the matching engine (its profile gives ``capabilities``).
        latency_s: round-trip time of every request, trio seconds (>= 0).
        latency_by_method: per-method overrides of ``latency_s`` (method names as in
            ``ExchangePort``).
        faults: fault plan; None = no faults.
        clock: when given, every request first advances engine time to ``clock.now()``.
        rate_limits: per-method ``(max_requests, window_s)`` sliding windows in trio time
            (``"*"`` = all methods together), e.g. ``{"place_stop": (10, 1.0)}`` for
            Bybit's 10/s trading-stop limit. A request over the limit raises
            ``RateLimited`` (code ``"10006"`` on bybit-like, ``"-1003"`` otherwise) with
            ``retry_after_s`` until the window frees a slot; it is not applied.
    """

    def __init__(
        self,
        engine: PaperEngine,
        *,
        latency_s: float = 0.0,
        latency_by_method: Mapping[str, float] | None = None,
        faults: FaultPlan | None = None,
        clock: Clock | None = None,
        rate_limits: Mapping[str, tuple[int, float]] | None = None,
    ) -> None:
        if latency_s < 0:
            raise ValueError("latency_s must be >= 0")
        self.engine = engine
        self.faults = faults if faults is not None else FaultPlan()
        self.latency_s = latency_s
        self.latency_by_method = dict(latency_by_method or {})
        self._clock = clock
        self.rate_limits = dict(rate_limits or {})
        for key, (n, window) in self.rate_limits.items():
            if n < 1 or window <= 0:
                raise ValueError(f"rate_limits[{key!r}]: need max_requests >= 1, window_s > 0")
        self._hits: dict[str, deque[float]] = {}
        self._account_subs: list[_Subscriber] = []
        self._market_subs: list[_Subscriber] = []
        self.dropped_events: list[AccountEvent] = []
        self.fill_history: list[Fill] = []
        self._changes: dict[str, int] = {}
        self._changes_all = 0
        engine.subscribe(self._on_account_event)
        # a mark that moved nothing changes no version (see _on_step): not even called
        engine.add_listener(self._on_step, on_quiet_mark=ignore_quiet_mark)

    # --- what changed -------------------------------------------------------------------

    def _on_step(self, step: EngineStep) -> None:
        if step.kind == "mark" and not step.events:
            return  # a mark that moved nothing: no position, order or stop changed
        if step.symbol is None:
            self._changes_all += 1
        else:
            self._changes[step.symbol] = self._changes.get(step.symbol, 0) + 1

    def protection_version(self, symbol: str) -> int | None:
        """A number that changes whenever a position, order or stop of ``symbol`` may have.

        Counts the engine steps about ``symbol`` (or the whole account) other than mark
        updates that produced no account event. While it stays the same, ``positions``
        and ``stops`` for ``symbol`` answer what they answered before (their mark-derived
        fields aside), so a periodic protection check that saw a correct stop can be
        answered from that (issue 15 item 3; the PositionActor's quiet checks). None when
        the answer would not be the same as asking: a fault plan or rate limits are
        configured, or a read takes time (non-zero latency for ``positions``/``stops``).
        """
        if (
            not self.faults.empty
            or self.rate_limits
            or self.latency_by_method.get("positions", self.latency_s)
            or self.latency_by_method.get("stops", self.latency_s)
        ):
            return None
        return self._changes.get(symbol, 0) + self._changes_all

    # --- feeding ------------------------------------------------------------------------

    def push_mark(self, symbol: str, mark_price: Decimal, ts: datetime) -> tuple[AccountEvent, ...]:
        """Feed a mark price (sync): engine step, then ``MarkPrice`` to market subscribers.

        Returns the account events of the step. Raises ValueError for bad input.
        """
        events = self.engine.set_mark(symbol, mark_price, ts)
        if self._market_subs:
            ev = MarkPrice(symbol=symbol, mark_price=mark_price, ts=ts)
            now = _trio_now()
            for sub in self._market_subs:
                if sub.symbols is None or symbol in sub.symbols:
                    sub.send.send_nowait(_Queued(ev, 0.0, now))
        return events

    def push_marks(
        self, marks: Sequence[tuple[str, Decimal]], ts: datetime
    ) -> tuple[AccountEvent, ...]:
        """Feed the mark prices of one instant (sync): the same as :meth:`push_mark` for
        each ``(symbol, price)`` in order, in one call (the replay driver's path).

        Returns the account events of the steps. Raises ValueError for bad input (the
        marks before it are applied).
        """
        if self._market_subs:
            out: tuple[AccountEvent, ...] = ()
            for symbol, mark_price in marks:
                out += self.push_mark(symbol, mark_price, ts)
            return out
        return self.engine.set_marks(marks, ts)

    def apply_funding(self, symbol: str, rate: Decimal, ts: datetime) -> tuple[AccountEvent, ...]:
        """Settle funding on the engine (see ``PaperEngine.apply_funding``)."""
        return self.engine.apply_funding(symbol, rate, ts)

    def inject_stream_gap(self, stream: str = "private", reason: str = "injected") -> None:
        """Emit a ``StreamGap`` now on the private (account) or public (market) stream."""
        if stream not in ("private", "public"):
            raise ValueError("stream must be 'private' or 'public'")
        gap = StreamGap(stream=stream, reason=reason, ts=self.engine.now)
        subs = self._account_subs if stream == "private" else self._market_subs
        now = _trio_now()
        for sub in subs:
            sub.send.send_nowait(_Queued(gap, 0.0, now))

    def _on_account_event(self, event: AccountEvent) -> None:
        if isinstance(event, Fill):
            self.fill_history.append(event)  # the venue's own record (``executions``)
        fault = self.faults.pick_event()
        now = _trio_now()
        if fault is not None and fault.kind in (EventFaultKind.DROP, EventFaultKind.GAP):
            self.dropped_events.append(event)
            if fault.kind is EventFaultKind.GAP:
                gap = StreamGap(
                    stream="private", reason="injected gap: events lost", ts=self.engine.now
                )
                for sub in self._account_subs:
                    sub.send.send_nowait(_Queued(gap, 0.0, now))
            return
        delay = fault.delay_s if fault is not None else 0.0
        for sub in self._account_subs:
            sub.send.send_nowait(_Queued(event, delay, now))

    # --- plumbing -----------------------------------------------------------------------

    @property
    def capabilities(self) -> Capabilities:
        return self.engine.profile.capabilities

    async def _call(
        self,
        method: str,
        fn: Callable[[], T],
        *,
        role: OrderRole | None = None,
        symbol: str | None = None,
        position_side: PositionSide | None = None,
        on_partial: Callable[[Fault], T] | None = None,
    ) -> T:
        half = self.latency_by_method.get(method, self.latency_s) / 2
        self._check_rate(method)
        fault = self.faults.pick(method, role, symbol, position_side)
        if half:
            await sleep_until(trio.current_time() + half)
        if fault is not None:
            kind = fault.kind
            if kind is FaultKind.REJECT:
                raise fault.error(
                    f"[{fault.code}] {fault.message}", code=fault.code, venue_message=fault.message
                )
            if kind is FaultKind.SERVER_ERROR:
                code = f"http_{fault.http_status}"
                raise TransientError(
                    f"{method}: HTTP {fault.http_status} (not applied)",
                    code=code,
                    venue_message="Service Unavailable",
                )
            if kind is FaultKind.RATE_LIMIT:
                raise RateLimited(
                    f"{method}: rate limited",
                    code=fault.code or "rate_limit",
                    retry_after_s=fault.retry_after_s,
                )
            if kind is FaultKind.LOST_REQUEST:
                await trio.sleep(fault.timeout_s)
                if method in READ_METHODS:
                    raise TransientError(f"{method}: timed out", code="timeout")
                raise OutcomeUnknown(
                    f"{method}: timed out after {fault.timeout_s}s", code="timeout"
                )
            if kind is FaultKind.TIMEOUT_AFTER_ACCEPT:
                self._sync_clock()
                try:
                    fn()  # applied on the venue
                except VenueError:
                    pass  # the venue refused, but the answer is lost with the connection
                await trio.sleep(fault.timeout_s)
                if method in READ_METHODS:
                    raise TransientError(f"{method}: timed out", code="timeout")
                raise OutcomeUnknown(
                    f"{method}: timed out after {fault.timeout_s}s (the venue may have applied it)",
                    code="timeout",
                )
            if kind is FaultKind.PARTIAL_FILL and on_partial is not None:
                self._sync_clock()
                result = on_partial(fault)
                await sleep_until(trio.current_time() + half)
                return result
        self._sync_clock()
        result = fn()
        if half:
            await sleep_until(trio.current_time() + half)
        # With zero latency (the paper run's reads) the answer is synchronous, like a local
        # call: no checkpoint, so a verification costs no scheduler round trips.
        return result

    def _check_rate(self, method: str) -> None:
        if not self.rate_limits:
            return
        now = trio.current_time()
        for key in (method, "*"):
            limit = self.rate_limits.get(key)
            if limit is None:
                continue
            n, window = limit
            hits = self._hits.setdefault(key, deque())
            while hits and hits[0] <= now - window:
                hits.popleft()
            if len(hits) >= n:
                code = "10006" if self.engine.profile.position_level_stop else "-1003"
                raise RateLimited(
                    f"{method}: rate limit {n}/{window}s",
                    code=code,
                    retry_after_s=hits[0] + window - now,
                )
        for key in (method, "*"):
            if key in self.rate_limits:
                self._hits[key].append(now)

    def _sync_clock(self) -> None:
        if self._clock is not None:
            self.engine.advance_to(self._clock.now())

    # --- ExchangePort -------------------------------------------------------------------

    async def instruments(self) -> Mapping[str, Instrument]:
        return await self._call("instruments", self.engine.instruments)

    async def balance(self) -> Balance:
        return await self._call("balance", self.engine.balance)

    async def setup_account(self, leverage_by_symbol: Mapping[str, int]) -> None:
        def apply() -> None:
            for symbol, lev in sorted(leverage_by_symbol.items()):
                self.engine.set_leverage(symbol, lev)

        await self._call("setup_account", apply)

    async def place_entry(self, request: EntryRequest) -> OrderState:
        def partial(f: Fault) -> OrderState:
            return self.engine.place_entry(request, fill_ratio=f.fill_ratio, remainder=f.remainder)

        return await self._call(
            "place_entry",
            lambda: self.engine.place_entry(request),
            role=OrderRole.ENTRY,
            symbol=request.symbol,
            position_side=request.position_side,
            on_partial=partial,
        )

    async def place_stop(self, request: StopRequest) -> StopState:
        return await self._call(
            "place_stop",
            lambda: self.engine.place_stop(request),
            role=OrderRole.STOP,
            symbol=request.symbol,
            position_side=request.position_side,
        )

    async def amend_stop(self, current: StopState, new_trigger_price: Decimal) -> StopState:
        return await self._call(
            "amend_stop",
            lambda: self.engine.amend_stop(current, new_trigger_price),
            role=OrderRole.STOP,
            symbol=current.symbol,
            position_side=current.position_side,
        )

    async def cancel_stop(self, stop: StopState) -> None:
        await self._call(
            "cancel_stop",
            lambda: self.engine.cancel_stop(stop),
            role=OrderRole.STOP,
            symbol=stop.symbol,
            position_side=stop.position_side,
        )

    async def place_reduce(self, request: ReduceRequest) -> OrderState:
        return await self._call(
            "place_reduce",
            lambda: self.engine.place_reduce(request),
            role=request.role,
            symbol=request.symbol,
            position_side=request.position_side,
        )

    async def cancel_order(self, symbol: str, client_order_id: str) -> None:
        await self._call(
            "cancel_order",
            lambda: self.engine.cancel_order(symbol, client_order_id),
            role=_role_of(client_order_id),
            symbol=symbol,
        )

    async def get_order(self, symbol: str, client_order_id: str) -> OrderState | None:
        """Regular orders first, then algo orders (both id spaces). A faulted lookup
        raises (TransientError / RateLimited / RejectedError); None only when the engine
        has no such order."""
        return await self._call(
            "get_order",
            lambda: self.engine.get_order(symbol, client_order_id),
            role=_role_of(client_order_id),
            symbol=symbol,
        )

    async def open_orders(self, symbol: str | None = None) -> Sequence[OrderState]:
        return await self._call(
            "open_orders", lambda: self.engine.open_orders(symbol), symbol=symbol
        )

    async def positions(self, symbol: str | None = None) -> Sequence[PositionState]:
        return await self._call("positions", lambda: self.engine.positions(symbol), symbol=symbol)

    async def executions(self, symbol: str, since: datetime) -> Sequence[Fill]:
        """:meth:`tradebot.ports.VenueReadPort.executions` from the engine's fill history."""
        return await self._call(
            "executions",
            lambda: [f for f in self.fill_history if f.symbol == symbol and f.ts >= since],
        )

    async def stops(self, symbol: str, position_side: PositionSide) -> Sequence[StopState]:
        return await self._call(
            "stops",
            lambda: self.engine.stops_for(symbol, position_side),
            role=OrderRole.STOP,
            symbol=symbol,
        )

    async def run_market_stream(
        self, symbols: Sequence[str], emit: Callable[[MarketEvent], Awaitable[None]]
    ) -> None:
        """Deliver ``MarkPrice`` for ``symbols`` (empty = all) and public ``StreamGap`` until
        cancelled."""
        sub = _Subscriber(frozenset(symbols) if symbols else None)
        self._market_subs.append(sub)
        try:
            await self._pump(sub, emit)  # type: ignore[arg-type]
        finally:
            self._market_subs.remove(sub)

    async def run_account_stream(self, emit: Callable[[AccountEvent], Awaitable[None]]) -> None:
        """Deliver account events (after event faults) until cancelled. Events produced
        before the subscription are not replayed (like a real private stream)."""
        sub = _Subscriber(None)
        self._account_subs.append(sub)
        try:
            await self._pump(sub, emit)  # type: ignore[arg-type]
        finally:
            self._account_subs.remove(sub)

    @staticmethod
    async def _pump(
        sub: _Subscriber, emit: Callable[[AccountEvent | MarketEvent], Awaitable[None]]
    ) -> None:
        async for item in sub.receive:
            if item.delay_s > 0:
                start = item.enqueued_at if item.enqueued_at is not None else trio.current_time()
                await sleep_until(start + item.delay_s)
            await emit(item.event)
