"""Domain types shared by every layer: sides, instruments, order and position shapes.

All values are frozen attrs classes; money fields are ``Decimal`` (see :mod:`tradebot.money`).
Times are timezone-aware UTC ``datetime``.
"""

from __future__ import annotations

import enum
from datetime import datetime
from decimal import Decimal

import attrs

from tradebot.money import Rounding, quantize_to_step

__all__ = [
    "Side",
    "PositionSide",
    "InstrumentStatus",
    "Instrument",
    "OrderType",
    "OrderStatus",
    "OrderRole",
    "TriggerBy",
]


class Side(enum.Enum):
    """Order side."""

    BUY = "BUY"
    SELL = "SELL"

    @property
    def opposite(self) -> Side:
        return Side.SELL if self is Side.BUY else Side.BUY


class PositionSide(enum.Enum):
    """Hedge-mode position side (Binance ``positionSide`` LONG/SHORT, Bybit ``positionIdx`` 1/2).

    Source: Bybit v5 ``positionIdx`` (1 = long, 2 = short in hedge mode), Binance
    ``positionSide`` (../shared/reference/exchanges.md section 2).
    """

    LONG = "LONG"
    SHORT = "SHORT"

    @property
    def entry_side(self) -> Side:
        """Order side that opens/increases this position side."""
        return Side.BUY if self is PositionSide.LONG else Side.SELL

    @property
    def exit_side(self) -> Side:
        """Order side that reduces/closes this position side."""
        return Side.SELL if self is PositionSide.LONG else Side.BUY

    @property
    def sign(self) -> int:
        """+1 for long, -1 for short: PnL = sign * (exit - entry) * qty."""
        return 1 if self is PositionSide.LONG else -1

    @property
    def bybit_position_idx(self) -> int:
        """Bybit ``positionIdx`` in hedge mode."""
        return 1 if self is PositionSide.LONG else 2

    @property
    def stop_rounding(self) -> Rounding:
        """Protective rounding direction for this side's stop.

        A long's stop sits below the price; rounding it UP keeps it closer to the mark,
        i.e. tighter (protective). A short's stop sits above; rounding DOWN is protective.
        """
        return Rounding.UP if self is PositionSide.LONG else Rounding.DOWN

    @classmethod
    def from_action(cls, action: str) -> PositionSide:
        """``BUY``/``LONG`` → LONG, ``SELL``/``SHORT`` → SHORT (case-insensitive).

        Raises:
            ValueError: for anything else.
        """
        a = action.strip().upper()
        if a in ("BUY", "LONG"):
            return cls.LONG
        if a in ("SELL", "SHORT"):
            return cls.SHORT
        raise ValueError(f"unknown action {action!r}")


class InstrumentStatus(enum.Enum):
    """Trading status of an instrument."""

    TRADING = "TRADING"
    REDUCE_ONLY = "REDUCE_ONLY"  # open positions may be reduced, no new entries (Binance -4140)
    CLOSED = "CLOSED"


@attrs.frozen
class Instrument:
    """A USDT-margined perpetual contract's trading rules.

    Attributes:
        symbol: venue symbol, e.g. ``"BTCUSDT"``.
        tick_size: price increment (> 0). Applies to limit and trigger prices.
        qty_step: quantity increment (> 0), base asset units.
        min_qty: smallest order quantity (>= qty_step).
        min_notional: smallest ``price * qty`` in USDT (>= 0).
        max_qty: largest order quantity, or None when unbounded (Bybit
            ``lotSizeFilter.maxOrderQty``, Binance ``LOT_SIZE.maxQty``).
        min_price: smallest valid price (>= tick_size).
        status: TRADING / REDUCE_ONLY / CLOSED.
        max_market_qty: largest *market* order quantity (> 0), or None when only
            ``max_qty`` applies. Bybit ``lotSizeFilter.maxMktOrderQty`` (smaller than
            ``maxOrderQty`` on every USDT perpetual; docs v5/market/instrument), Binance
            ``MARKET_LOT_SIZE.maxQty`` (exchanges.md section 6). Entries are market orders,
            so sizing caps them by it.
    """

    symbol: str
    tick_size: Decimal
    qty_step: Decimal
    min_qty: Decimal
    min_notional: Decimal
    max_qty: Decimal | None = None
    min_price: Decimal | None = None
    status: InstrumentStatus = InstrumentStatus.TRADING
    max_market_qty: Decimal | None = None

    def __attrs_post_init__(self) -> None:
        if self.tick_size <= 0 or self.qty_step <= 0:
            raise ValueError(f"{self.symbol}: tick_size and qty_step must be > 0")
        if self.min_qty <= 0 or self.min_notional < 0:
            raise ValueError(f"{self.symbol}: min_qty must be > 0 and min_notional >= 0")
        if self.max_market_qty is not None and self.max_market_qty <= 0:
            raise ValueError(f"{self.symbol}: max_market_qty must be > 0")

    @property
    def market_qty_cap(self) -> Decimal | None:
        """The largest quantity of one market order: the smaller of :attr:`max_qty` and
        :attr:`max_market_qty` (None when neither is set)."""
        caps = [c for c in (self.max_qty, self.max_market_qty) if c is not None]
        return min(caps) if caps else None

    @property
    def price_floor(self) -> Decimal:
        """Smallest valid price: ``max(min_price, tick_size)``; never 0."""
        mp = self.min_price if self.min_price is not None else self.tick_size
        return max(mp, self.tick_size)

    def round_price(self, price: Decimal, rounding: Rounding) -> Decimal:
        """Round ``price`` to the tick in ``rounding`` direction, clamped to :attr:`price_floor`.

        Never returns 0 or a price below the instrument's minimum, so a coarse tick
        (tick 0.0001 at price 0.0003) can never produce an invalid order price.
        """
        p = quantize_to_step(price, self.tick_size, rounding)
        floor = quantize_to_step(self.price_floor, self.tick_size, Rounding.UP)
        return p if p >= floor else floor

    def floor_qty(self, qty: Decimal) -> Decimal:
        """Floor ``qty`` to the qty step (may return 0 when ``qty < qty_step``)."""
        return quantize_to_step(qty, self.qty_step, Rounding.DOWN)

    def notional(self, price: Decimal, qty: Decimal) -> Decimal:
        """``price * qty`` in USDT."""
        return price * qty

    def check_order(
        self, price: Decimal, qty: Decimal, *, reduce_only: bool = False, market: bool = False
    ) -> str | None:
        """Validate an order against the instrument's rules.

        Args:
            market: a market order (also capped by :attr:`max_market_qty`).

        Returns:
            None when valid, else a short reason (``"qty_below_min"``, ``"qty_not_on_step"``,
            ``"price_not_on_tick"``, ``"below_min_notional"``, ``"qty_above_max"``,
            ``"qty_above_max_market"``).
            Reduce-only orders are exempt from min notional (both venues allow closing dust).
        """
        if qty <= 0 or qty < self.min_qty:
            return "qty_below_min"
        if quantize_to_step(qty, self.qty_step, Rounding.DOWN) != qty:
            return "qty_not_on_step"
        if self.max_qty is not None and qty > self.max_qty:
            return "qty_above_max"
        if market and self.max_market_qty is not None and qty > self.max_market_qty:
            return "qty_above_max_market"
        if price <= 0 or quantize_to_step(price, self.tick_size, Rounding.DOWN) != price:
            return "price_not_on_tick"
        if not reduce_only and price * qty < self.min_notional:
            return "below_min_notional"
        return None


class OrderType(enum.Enum):
    MARKET = "MARKET"
    LIMIT = "LIMIT"
    STOP_MARKET = "STOP_MARKET"  # conditional, mark-price triggered, market on trigger


class OrderStatus(enum.Enum):
    """Normalized order status (Bybit ``orderStatus``, Binance ``status``/``algoStatus``)."""

    NEW = "NEW"  # resting (limit) or untriggered (conditional)
    PARTIALLY_FILLED = "PARTIALLY_FILLED"
    FILLED = "FILLED"
    CANCELED = "CANCELED"
    REJECTED = "REJECTED"
    EXPIRED = "EXPIRED"
    TRIGGERED = "TRIGGERED"  # conditional fired; the resulting market order follows

    @property
    def is_terminal(self) -> bool:
        return self in (
            OrderStatus.FILLED,
            OrderStatus.CANCELED,
            OrderStatus.REJECTED,
            OrderStatus.EXPIRED,
        )

    @property
    def is_live(self) -> bool:
        return self in (OrderStatus.NEW, OrderStatus.PARTIALLY_FILLED)


class OrderRole(enum.Enum):
    """What an order does for its position; the letter is embedded in client order ids."""

    ENTRY = "E"
    STOP = "S"
    TAKE_PROFIT = "T"
    AGED_EXIT = "A"
    CLOSE = "C"
    EMERGENCY_STOP = "X"


class TriggerBy(enum.Enum):
    MARK_PRICE = "MARK_PRICE"
    LAST_PRICE = "LAST_PRICE"


def utc_ts(dt: datetime) -> datetime:
    """Assert ``dt`` is timezone-aware UTC and return it.

    Raises:
        ValueError: for a naive datetime or another offset.
    """
    if dt.tzinfo is None or dt.utcoffset() is None or dt.utcoffset().total_seconds() != 0:  # type: ignore[union-attr]
        raise ValueError(f"expected an aware UTC datetime, got {dt!r}")
    return dt
