"""Position sizing and risk limits (docs/ARCHITECTURE.md §5, "Sizing/risk").

Fixed notional per position (``risk.position_size_usdt``): ``qty = floor_to_step(notional /
price)``, capped by the largest market order (entries are market orders: Bybit
``maxMktOrderQty``, Binance ``MARKET_LOT_SIZE.maxQty``, and the overall max qty), then
checked against the instrument's min qty, min notional and trading status. Limits: max open positions, max total exposure (sum of entry notionals).
"""

from __future__ import annotations

from decimal import Decimal

import attrs

from tradebot.bounds import CrossFieldError, decimal_field, int_field
from tradebot.domain import Instrument, InstrumentStatus

__all__ = ["SizingResult", "SizingSettings", "check_limits", "size_position"]


@attrs.frozen
class SizingSettings:
    """Risk parameters (config section ``risk``; docs/ARCHITECTURE.md §5 "Sizing/risk").

    Attributes:
        position_size_usdt: entry notional per position, USDT, in (0, 1e12] and
            <= ``max_exposure_usdt``; default 200.
        max_open_positions: cap on concurrently open positions, in [1, 10000]; default 10.
        max_exposure_usdt: cap on the summed entry notional of open positions, USDT, in
            (0, 1e12]; default 2000.

    The upper bounds keep ``notional / price`` quantizable to a qty step (28 significant
    digits); ``Decimal("1e400")`` would make :func:`size_position` raise.

    Raises:
        ValueError: a value out of range; :class:`tradebot.bounds.CrossFieldError` when
            ``position_size_usdt > max_exposure_usdt`` (no position could ever open).
    """

    position_size_usdt: Decimal = decimal_field("200", gt="0", le="1e12")
    max_open_positions: int = int_field(10, ge="1", le="10000")
    max_exposure_usdt: Decimal = decimal_field("2000", gt="0", le="1e12")

    def __attrs_post_init__(self) -> None:
        if self.position_size_usdt > self.max_exposure_usdt:
            raise CrossFieldError(
                "position_size_usdt",
                f"must be <= {{0}} (got {self.position_size_usdt} > {self.max_exposure_usdt})",
                ("max_exposure_usdt",),
            )


@attrs.frozen
class SizingResult:
    """``qty`` > 0 when ``ok``; otherwise ``reason`` is one of ``"bad_price"``,
    ``"not_tradable"``, ``"qty_below_min"``, ``"below_min_notional"``."""

    ok: bool
    qty: Decimal
    notional_usdt: Decimal
    reason: str = ""


def size_position(notional_usdt: Decimal, price: Decimal, instrument: Instrument) -> SizingResult:
    """Quantity for a fixed notional at ``price``, floored to the qty step.

    Args:
        notional_usdt: target notional, USDT > 0.
        price: reference (mark) price, USDT > 0.
        instrument: qty step / min qty / max qty / max market qty / min notional / status.

    Returns:
        A :class:`SizingResult`; never raises for bad input (``ok=False`` with reason).
        A quantity above :attr:`Instrument.market_qty_cap` (the smaller of ``max_qty``
        and ``max_market_qty``) is capped to it, floored to the step.
    """
    zero = Decimal(0)
    if price <= 0 or notional_usdt <= 0:
        return SizingResult(False, zero, zero, "bad_price")
    if instrument.status is not InstrumentStatus.TRADING:
        return SizingResult(False, zero, zero, "not_tradable")
    qty = instrument.floor_qty(notional_usdt / price)
    cap = instrument.market_qty_cap
    if cap is not None and qty > cap:
        qty = instrument.floor_qty(cap)
    if qty <= 0 or qty < instrument.min_qty:
        return SizingResult(False, zero, zero, "qty_below_min")
    notional = qty * price
    if notional < instrument.min_notional:
        return SizingResult(False, qty, notional, "below_min_notional")
    return SizingResult(True, qty, notional)


def check_limits(
    *, open_count: int, exposure_usdt: Decimal, new_notional_usdt: Decimal, settings: SizingSettings
) -> str | None:
    """None when a new position fits the limits, else ``"max_open_positions"`` or
    ``"max_exposure"``."""
    if open_count >= settings.max_open_positions:
        return "max_open_positions"
    if exposure_usdt + new_notional_usdt > settings.max_exposure_usdt:
        return "max_exposure"
    return None
