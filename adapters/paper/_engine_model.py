"""The paper engine's value types and money grid: wallet and step records, the internal
position and order records, the USDT/price quanta and their rounding helpers."""

from __future__ import annotations

import enum
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, ROUND_HALF_UP, Decimal

import attrs

from tradebot.domain import (
    OrderStatus,
    OrderType,
    PositionSide,
    Side,
)
from tradebot.errors import VenueError
from tradebot.money import ZERO
from tradebot.ports import (
    AccountEvent,
    OrderState,
)

__all__ = [
    "EPOCH",
    "PRICE_QUANTUM",
    "USDT_QUANTUM",
    "EngineStep",
    "EventSubscriber",
    "QuietMarkListener",
    "ignore_quiet_mark",
    "StepListener",
    "TriggerDirection",
    "WalletState",
]

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_BPS = Decimal(10000)
# Money settles to 1e-8 USDT (both venues report fees/PnL with 8 decimals); with every
# addend on that grid the wallet arithmetic is exact, so wallet == start + realized - fees
# - funding holds to the last digit. Average entry prices keep 1e-12.
USDT_QUANTUM = Decimal("1e-8")
PRICE_QUANTUM = Decimal("1e-12")


def _usdt(x: Decimal) -> Decimal:
    return x.quantize(USDT_QUANTUM, rounding=ROUND_HALF_EVEN)


def _avg_price(x: Decimal) -> Decimal:
    exp = x.as_tuple().exponent
    if isinstance(exp, int) and exp < -12:
        return x.quantize(PRICE_QUANTUM, rounding=ROUND_HALF_EVEN)
    return x


def _fee(x: Decimal) -> Decimal:
    return x.quantize(USDT_QUANTUM, rounding=ROUND_HALF_UP)


class TriggerDirection(enum.Enum):
    """Bybit ``triggerDirection``: RISE (1) triggers when mark >= trigger, FALL (2) when <=."""

    RISE = 1
    FALL = 2


@attrs.frozen
class WalletState:
    """The account's money, USDT.

    Attributes:
        wallet_usdt: deposits + realized PnL - fees - funding paid + funding received.
        available_usdt: what new margin can use (see module docstring).
        used_margin_usdt: initial margin of open positions.
        reserved_margin_usdt: initial margin held by resting opening limit orders.
        unrealized_pnl_usdt: at the current marks.
        realized_pnl_usdt: cumulative gross realized PnL (fees excluded).
        fees_usdt: cumulative trading fees paid (> 0 cost).
        funding_usdt: cumulative net funding paid (> 0 cost, < 0 received).
    """

    wallet_usdt: Decimal
    available_usdt: Decimal
    used_margin_usdt: Decimal
    reserved_margin_usdt: Decimal
    unrealized_pnl_usdt: Decimal
    realized_pnl_usdt: Decimal
    fees_usdt: Decimal
    funding_usdt: Decimal

    @property
    def equity_usdt(self) -> Decimal:
        return self.wallet_usdt + self.unrealized_pnl_usdt


@attrs.frozen
class EngineStep:
    """One engine step, as seen by step listeners.

    Attributes:
        seq: 1, 2, 3, ... per engine.
        kind: ``"mark"``, ``"request"`` or ``"funding"``.
        name: the request method (``"place_entry"``, ...), or ``"set_mark"`` etc.
        symbol: symbol concerned, if any.
        ts: engine time of the step (UTC).
        events: the account events the step produced, in order.
        error: the refusal, when a request was refused (state unchanged).
    """

    seq: int
    kind: str
    name: str
    symbol: str | None
    ts: datetime
    events: tuple[AccountEvent, ...]
    error: VenueError | None = None


@attrs.define
class _Position:
    symbol: str
    position_side: PositionSide
    qty: Decimal = ZERO
    entry_price: Decimal = ZERO
    margin_usdt: Decimal = ZERO
    stop_price: Decimal | None = None  # position-level stop (Bybit Full)
    liq_price: Decimal | None = None  # cached; recomputed on entry / leverage changes


@attrs.define
class _Order:
    seq: int
    symbol: str
    client_order_id: str
    venue_order_id: str
    side: Side
    position_side: PositionSide
    order_type: OrderType
    qty: Decimal  # ZERO for close-position orders (Binance reports origQty 0)
    price: Decimal | None
    trigger_price: Decimal | None
    trigger_direction: TriggerDirection | None
    reduce_only: bool
    close_position: bool
    is_algo: bool
    created_at: datetime
    updated_at: datetime
    status: OrderStatus = OrderStatus.NEW
    filled_qty: Decimal = ZERO
    filled_notional: Decimal = ZERO
    reserved_margin_usdt: Decimal = ZERO
    remainder_pending: bool = False  # partially filled market order waiting for next mark
    attached_stop: Decimal | None = None  # stop still to attach with the first fill

    def state(self) -> OrderState:
        avg = self.filled_notional / self.filled_qty if self.filled_qty > 0 else None
        return OrderState(
            symbol=self.symbol,
            client_order_id=self.client_order_id,
            venue_order_id=self.venue_order_id,
            side=self.side,
            position_side=self.position_side,
            order_type=self.order_type,
            status=self.status,
            qty=self.qty,
            filled_qty=self.filled_qty,
            avg_fill_price=avg,
            price=self.price,
            trigger_price=self.trigger_price,
            reduce_only=self.reduce_only,
            close_position=self.close_position,
            updated_at=self.updated_at,
        )

    @property
    def is_conditional(self) -> bool:
        return self.trigger_price is not None and self.status is OrderStatus.NEW

    @property
    def remaining_qty(self) -> Decimal:
        return self.qty - self.filled_qty


StepListener = Callable[[EngineStep], None]
QuietMarkListener = Callable[[str, Decimal, datetime], None]
"""``(symbol, mark_price, ts)`` of a mark step that produced no account event."""


def ignore_quiet_mark(symbol: str, mark_price: Decimal, ts: datetime) -> None:
    """The quiet form of a listener with nothing to do on a mark step without events
    (``add_listener(fn, on_quiet_mark=ignore_quiet_mark)``: not even called)."""


EventSubscriber = Callable[[AccountEvent], None]
