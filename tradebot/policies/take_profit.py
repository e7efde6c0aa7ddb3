"""Partial take-profit levels, "enhanced SL/TP" (DESIGN.md section 5).

A level ``(profit_pct, fraction)`` closes ``fraction`` of the *filled* entry quantity with
a reduce-only market order once the mark is ``profit_pct`` percent in profit. Each level
fires at most once (the PositionActor persists the done set). Quantities are floored to
the qty step; a level whose quantity floors to less than the minimum quantity is skipped
(marked done with reason); a level that would leave less than the minimum quantity behind
closes the whole remainder instead (no dust). After the first level fills, the stop may
move to breakeven (``breakeven_after_first``). The protective stop is whole-position
(Bybit ``tpslMode=Full`` / Binance ``closePosition=true``), so it always covers the
remaining quantity.
"""

from __future__ import annotations

from collections.abc import Set
from decimal import Decimal

import attrs

from tradebot.domain import Instrument, PositionSide
from tradebot.money import move_by_pct, pct_change

__all__ = ["TakeProfitOrder", "TakeProfitSettings", "breakeven_stop_price", "due_take_profits"]


def _levels_converter(value: object) -> tuple[tuple[Decimal, Decimal], ...]:
    out: list[tuple[Decimal, Decimal]] = []
    for item in value:  # type: ignore[attr-defined]
        p, f = item
        out.append((Decimal(str(p)), Decimal(str(f))))
    return tuple(out)


@attrs.frozen
class TakeProfitSettings:
    """Take-profit parameters (config section ``take_profit``).

    Attributes:
        levels: ``(profit_pct, fraction)`` pairs: profit in percent of entry (> 0, strictly
            increasing), fraction of the filled quantity in (0, 1], fractions summing to
            <= 1. Default: none (take-profit off).
        breakeven_after_first: move the stop to breakeven after the first level fills.
        breakeven_offset_pct: breakeven stop = entry moved this many percent into profit
            (fees); default 0.1.
    """

    levels: tuple[tuple[Decimal, Decimal], ...] = attrs.field(
        default=(), converter=_levels_converter
    )
    breakeven_after_first: bool = True
    breakeven_offset_pct: Decimal = Decimal("0.1")

    def __attrs_post_init__(self) -> None:
        last = Decimal(0)
        total = Decimal(0)
        for profit, fraction in self.levels:
            if profit <= last:
                raise ValueError("take_profit.levels: profit_pct must be > 0 and increasing")
            if not Decimal(0) < fraction <= Decimal(1):
                raise ValueError("take_profit.levels: fraction must be in (0, 1]")
            last = profit
            total += fraction
        if total > Decimal(1):
            raise ValueError("take_profit.levels: fractions sum to more than 1")


@attrs.frozen
class TakeProfitOrder:
    """One level due now. ``qty`` 0 means skip it (``reason`` says why) but mark it done."""

    level_index: int
    qty: Decimal
    reason: str = ""


def due_take_profits(
    *,
    settings: TakeProfitSettings,
    side: PositionSide,
    instrument: Instrument,
    entry_price: Decimal,
    mark_price: Decimal,
    filled_qty: Decimal,
    remaining_qty: Decimal,
    done: Set[int],
) -> list[TakeProfitOrder]:
    """Levels reached by ``mark_price`` that are not done yet, in level order.

    Args:
        filled_qty: the entry's filled quantity (base of the fractions).
        remaining_qty: the position's current quantity.
        done: indexes of levels already executed or skipped.

    Returns:
        Orders whose quantities sum to at most ``remaining_qty``, each floored to the step.
    """
    profit = side.sign * pct_change(entry_price, mark_price)
    out: list[TakeProfitOrder] = []
    left = remaining_qty
    for i, (level_pct, fraction) in enumerate(settings.levels):
        if i in done or profit < level_pct:
            continue
        qty = min(instrument.floor_qty(filled_qty * fraction), left)
        if qty <= 0 or qty < instrument.min_qty:
            out.append(TakeProfitOrder(i, Decimal(0), "qty_below_min"))
            continue
        if left - qty < instrument.min_qty:
            qty = left  # no dust left behind
        out.append(TakeProfitOrder(i, qty))
        left -= qty
        if left <= 0:
            break
    return out


def breakeven_stop_price(
    entry_price: Decimal, side: PositionSide, instrument: Instrument, offset_pct: Decimal
) -> Decimal:
    """Entry moved ``offset_pct`` percent into profit, rounded protectively (long up)."""
    return instrument.round_price(
        move_by_pct(entry_price, side.sign * offset_pct), side.stop_rounding
    )
