"""Ports: what the core needs from the outside world, as Protocols.

The exchange port is shaped by what Bybit v5 (linear) and Binance USDⓈ-M really do
(../shared/reference/exchanges.md), not by the simulator:

* Bybit attaches the stop to the entry order and moves it in place with
  ``/v5/position/trading-stop`` (no client id, whole position, ``tpslMode=Full``).
* Binance places the stop after the fill as an algo ``STOP_MARKET closePosition=true``
  order with its own id space (``clientAlgoId``) and cannot amend it: replace is
  make-before-break (place new, then cancel old).

:class:`Capabilities` tells the PositionActor which of those it is talking to.

Error contract for every async method: raises a subclass of
:class:`tradebot.errors.VenueError`. A *query* that fails raises; it never returns an empty
result that could be mistaken for "no order / no position".
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Protocol, runtime_checkable

import attrs

from tradebot.domain import Instrument, OrderRole, OrderStatus, OrderType, PositionSide, Side

__all__ = [
    "Capabilities",
    "Balance",
    "EntryRequest",
    "StopRequest",
    "ReduceRequest",
    "OrderState",
    "StopState",
    "PositionState",
    "MarkPrice",
    "OrderUpdate",
    "Fill",
    "PositionUpdate",
    "StreamGap",
    "AccountEvent",
    "MarketEvent",
    "VenueReadPort",
    "AccountSetupPort",
    "OrderPort",
    "StopPort",
    "StreamPort",
    "PositionVenuePort",
    "ExchangePort",
    "Clock",
    "OpenRequest",
    "OpenOutcome",
    "PositionOpener",
]


@attrs.frozen
class Capabilities:
    """What the venue does natively; the PositionActor adapts its protocol to it.

    Attributes:
        venue: ``"bybit"``, ``"binance"``, ``"paper-bybit"``, ``"paper-binance"``.
        attached_stop: the stop can ride on the entry order (Bybit ``stopLoss`` on create).
        amend_stop: the stop can be moved in place (Bybit ``trading-stop``); otherwise
            replace is cancel-and-replace, done make-before-break by the actor.
        stop_has_client_id: stops are orders with our client id (Binance ``clientAlgoId``);
            False for Bybit position-level TP/SL.
        max_conditional_per_symbol: venue cap on live conditional orders per symbol.
    """

    venue: str
    attached_stop: bool
    amend_stop: bool
    stop_has_client_id: bool
    max_conditional_per_symbol: int = 10


@attrs.frozen
class Balance:
    """Wallet in USDT. ``available_usdt`` is what new margin can use."""

    wallet_usdt: Decimal
    available_usdt: Decimal


@attrs.frozen
class EntryRequest:
    """A market entry.

    Attributes:
        symbol: instrument symbol.
        position_side: LONG or SHORT (hedge mode).
        qty: base quantity, already floored to the qty step, > 0.
        client_order_id: deterministic id (<= 36 chars ``[A-Za-z0-9_-]``).
        stop_price: when the venue has ``attached_stop``, the stop to attach (mark-price
            triggered, whole position); must be None otherwise.
    """

    symbol: str
    position_side: PositionSide
    qty: Decimal
    client_order_id: str
    stop_price: Decimal | None = None


@attrs.frozen
class StopRequest:
    """A protective stop: mark-price triggered, market on trigger, reduce-only.

    Attributes:
        qty: None = whole position (Bybit Full / Binance ``closePosition=true``); else a
            partial quantity (Bybit Partial / Binance ``quantity``).
        client_order_id: used when ``Capabilities.stop_has_client_id``; ignored otherwise.
    """

    symbol: str
    position_side: PositionSide
    trigger_price: Decimal
    client_order_id: str
    qty: Decimal | None = None


@attrs.frozen
class ReduceRequest:
    """A reduce-only order (take-profit, aged exit, close). ``price`` None = market."""

    symbol: str
    position_side: PositionSide
    qty: Decimal
    client_order_id: str
    price: Decimal | None = None
    role: OrderRole = OrderRole.CLOSE


@attrs.frozen
class OrderState:
    """A venue order normalized. Quantities in base units; prices in USDT."""

    symbol: str
    client_order_id: str
    venue_order_id: str
    side: Side
    position_side: PositionSide
    order_type: OrderType
    status: OrderStatus
    qty: Decimal
    filled_qty: Decimal
    avg_fill_price: Decimal | None
    price: Decimal | None = None
    trigger_price: Decimal | None = None
    reduce_only: bool = False
    close_position: bool = False
    updated_at: datetime | None = None


@attrs.frozen
class StopState:
    """A live protective stop as the venue shows it.

    For position-level stops (Bybit trading-stop) ``client_order_id`` and
    ``venue_order_id`` may be "" and ``qty`` None (whole position).
    """

    symbol: str
    position_side: PositionSide
    trigger_price: Decimal
    client_order_id: str = ""
    venue_order_id: str = ""
    qty: Decimal | None = None


@attrs.frozen
class PositionState:
    """One side of a hedge-mode position. ``qty`` is >= 0 (0 = flat)."""

    symbol: str
    position_side: PositionSide
    qty: Decimal
    entry_price: Decimal
    mark_price: Decimal | None = None
    liq_price: Decimal | None = None
    unrealized_pnl_usdt: Decimal | None = None
    stop_price: Decimal | None = None  # position-level (attached) stop, if the venue has one


# --- stream events --------------------------------------------------------------------


@attrs.frozen
class MarkPrice:
    """Latest mark price of ``symbol`` at ``ts`` (UTC)."""

    symbol: str
    mark_price: Decimal
    ts: datetime


@attrs.frozen
class OrderUpdate:
    """An order changed (private stream ``order`` / ``ORDER_TRADE_UPDATE`` / ``ALGO_UPDATE``)."""

    order: OrderState
    ts: datetime


@attrs.frozen
class Fill:
    """An execution. ``fee_usdt`` > 0 is a cost, < 0 a rebate.

    ``trigger_price`` is set on the fill of a triggered stop (``reason == "stop"``): the
    stop's trigger price, so the slippage of the fill (``price`` vs ``trigger_price``) is
    visible; None for every other execution.
    """

    symbol: str
    client_order_id: str
    venue_order_id: str
    trade_id: str
    side: Side
    position_side: PositionSide
    qty: Decimal
    price: Decimal
    fee_usdt: Decimal
    is_maker: bool
    ts: datetime
    realized_pnl_usdt: Decimal | None = None
    reason: str = ""  # "", "stop", "liquidation", "adl", "funding"
    trigger_price: Decimal | None = None


@attrs.frozen
class PositionUpdate:
    """A position side changed (size, entry, attached stop)."""

    position: PositionState
    ts: datetime


@attrs.frozen
class StreamGap:
    """A stream reconnected or lost events: positions must be re-verified."""

    stream: str  # "public" | "private"
    reason: str
    ts: datetime


AccountEvent = OrderUpdate | Fill | PositionUpdate | StreamGap
MarketEvent = MarkPrice | StreamGap


class VenueReadPort(Protocol):
    """The read side of one exchange account: what the venue does natively, instruments,
    balance, and look-ups of orders, positions and stops. Every query that fails raises."""

    @property
    def capabilities(self) -> Capabilities: ...

    async def instruments(self) -> Mapping[str, Instrument]:
        """All linear USDT instruments by symbol (paged on the venue as needed)."""
        ...

    async def balance(self) -> Balance: ...

    async def get_order(self, symbol: str, client_order_id: str) -> OrderState | None:
        """Look up an order (regular or conditional) by client id.

        Returns None only when the venue definitively says it has no such order.
        A failed lookup raises.
        """
        ...

    async def open_orders(self, symbol: str | None = None) -> Sequence[OrderState]:
        """Open regular *and* conditional/algo orders."""
        ...

    async def positions(self, symbol: str | None = None) -> Sequence[PositionState]:
        """Non-flat position sides (qty > 0)."""
        ...

    async def stops(self, symbol: str, position_side: PositionSide) -> Sequence[StopState]:
        """Live protective stops of one position side (position-level and orders)."""
        ...

    async def executions(self, symbol: str, since: datetime) -> Sequence[Fill]:
        """Executions of ``symbol`` at or after ``since`` (aware UTC), oldest first: what
        closed a position while the bot was down (stop, liquidation, a close by hand).
        Fees and prices as in :class:`Fill`; ``client_order_id`` "" when the venue
        generated the order (a triggered position-level stop, a liquidation)."""
        ...


class AccountSetupPort(Protocol):
    """Account configuration done once at start-up."""

    async def setup_account(self, leverage_by_symbol: Mapping[str, int]) -> None:
        """Ensure hedge mode and set leverage; "not modified" answers count as success."""
        ...


class OrderPort(Protocol):
    """Reduce-only orders (take-profit, aged exit, close) and cancelling regular orders.

    Nothing here can place, move or cancel a stop, nor open a position.
    """

    async def place_reduce(self, request: ReduceRequest) -> OrderState:
        """Reduce-only market or limit order (hedge mode: side opposite to position)."""
        ...

    async def cancel_order(self, symbol: str, client_order_id: str) -> None:
        """Cancel a regular order by client id. Raises ``UnknownOrder`` if gone."""
        ...


class StopPort(Protocol):
    """The calls that create, move or remove a position's protective stop.

    Owned by ONE object: the PositionActor's stop keeper (``actors/position/_stop_keeper.py``,
    docs/ARCHITECTURE.md §1 invariant 1). The entry is here because on venues with
    ``attached_stop`` it carries the stop (Bybit ``stopLoss`` on create). Every other part
    of the actor gets a :class:`PositionVenuePort`, which has none of these methods, so a
    call from elsewhere fails ``mypy --strict``; ``tests/test_architecture.py`` also fails
    when any other module obtains a StopPort or reaches these methods. The Reconciler will
    cancel zombie orders through a narrow port of its own, never through this one.
    """

    async def place_entry(self, request: EntryRequest) -> OrderState:
        """Submit a market entry (with attached stop when supported).

        Returns the acknowledged order (may not be filled yet). Raises ``OutcomeUnknown``
        when the submit may have taken effect: the caller resolves via ``get_order``.
        """
        ...

    async def place_stop(self, request: StopRequest) -> StopState:
        """Place (or, for position-level stops, set) the protective stop.

        Raises ``WouldTriggerImmediately`` when the trigger is already through the mark.
        """
        ...

    async def amend_stop(self, current: StopState, new_trigger_price: Decimal) -> StopState:
        """Move a stop in place. Only when ``capabilities.amend_stop``; "not modified"
        (Bybit 34040) is success."""
        ...

    async def cancel_stop(self, stop: StopState) -> None:
        """Cancel a stop. Raises ``UnknownOrder`` if it no longer exists."""
        ...


class StreamPort(Protocol):
    """The venue's public and private streams."""

    async def run_market_stream(
        self, symbols: Sequence[str], emit: Callable[[MarketEvent], Awaitable[None]]
    ) -> None:
        """Stream mark prices for ``symbols`` until cancelled, reconnecting as needed;
        emits ``StreamGap`` after every reconnect."""
        ...

    async def run_account_stream(self, emit: Callable[[AccountEvent], Awaitable[None]]) -> None:
        """Stream order/fill/position events until cancelled; ``StreamGap`` on reconnect."""
        ...


class PositionVenuePort(VenueReadPort, OrderPort, Protocol):
    """What a PositionActor's parts other than its stop keeper may call: reads and
    reduce-only orders, no stop method and no entry."""


@runtime_checkable
class ExchangePort(VenueReadPort, AccountSetupPort, OrderPort, StopPort, StreamPort, Protocol):
    """One exchange account, hedge mode, USDT-margined linear perpetuals: every part.

    Venue adapters implement all of it. Wiring code hands it on; consumers keep only the
    narrow part they need (:class:`PositionVenuePort`, :class:`StopPort`, ...). The stop
    methods (``place_stop``, ``amend_stop``, ``cancel_stop``) and the entry with an
    attached stop are called only by the stop keeper of the PositionActor that owns the
    position (docs/ARCHITECTURE.md §1 invariant 1; see :class:`StopPort`).
    """


class Clock(Protocol):
    """The time port. Live: wall clock. Replay: data start + trio virtual time."""

    def now(self) -> datetime:
        """Current time, aware UTC."""
        ...


# --- opening positions (WaveProcessor → PositionSupervisor) ----------------------------


@attrs.frozen
class OpenRequest:
    """A request to open one position, produced by the WaveProcessor.

    Attributes:
        position_id: deterministic id (:func:`tradebot.ids.position_id_for`).
        symbol: instrument symbol.
        position_side: LONG or SHORT.
        qty: base quantity, floored to the qty step and checked against min qty/notional.
        reference_price: mark price used for sizing (USDT).
        signal_id: the signal's id, for the journal.
        wave_ts: the wave the signal belongs to (UTC, 15-minute boundary).
        score_week: signal score (Decimal) for the journal.
        score_month: signal score (Decimal) for the journal.
    """

    position_id: str
    symbol: str
    position_side: PositionSide
    qty: Decimal
    reference_price: Decimal
    signal_id: str
    wave_ts: datetime
    score_week: Decimal | None = None
    score_month: Decimal | None = None


@attrs.frozen
class OpenOutcome:
    """Result of an open attempt. ``opened`` False carries the reason (journaled)."""

    position_id: str
    opened: bool
    reason: str = ""


class PositionOpener(Protocol):
    """What the WaveProcessor needs from the PositionSupervisor.

    ``open_position`` returns once the position is ACTIVE (entry filled and stop confirmed)
    or definitively not opened (rolled back / rejected); it does not raise for venue
    rejections (they come back as ``opened=False`` with a reason).
    """

    def has_position(self, symbol: str, position_side: PositionSide) -> bool: ...

    def open_count(self) -> int: ...

    def exposure_usdt(self) -> Decimal:
        """Sum of open positions' notional at entry, USDT."""
        ...

    async def open_position(self, request: OpenRequest) -> OpenOutcome: ...
