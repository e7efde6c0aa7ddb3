"""Partial take-profit levels, "enhanced SL/TP" (docs/ARCHITECTURE.md §5).

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

from collections.abc import Iterable, Iterator, Set
from decimal import Decimal
from typing import Any

import attrs

from tradebot.bounds import CrossFieldError, decimal_field, setting
from tradebot.domain import Instrument, PositionSide
from tradebot.money import move_by_pct, pct_change

__all__ = [
    "TakeProfitLevel",
    "TakeProfitOrder",
    "TakeProfitSettings",
    "breakeven_stop_price",
    "due_take_profits",
]


@attrs.frozen
class TakeProfitLevel:
    """One take-profit level (config ``[[take_profit.levels]]``).

    Attributes:
        profit_pct: profit at which the level fires, percent of entry, in (0, 1000].
        fraction: fraction of the filled entry quantity it closes, in (0, 1].

    Unpacks as ``profit_pct, fraction = level``.
    """

    profit_pct: Decimal = decimal_field(attrs.NOTHING, gt="0", le="1000")
    fraction: Decimal = decimal_field(attrs.NOTHING, gt="0", le="1")

    def __iter__(self) -> Iterator[Decimal]:
        return iter((self.profit_pct, self.fraction))


def _levels_converter(value: Iterable[Any]) -> tuple[TakeProfitLevel, ...]:
    """Levels given as :class:`TakeProfitLevel` or ``(profit_pct, fraction)`` pairs."""
    out: list[TakeProfitLevel] = []
    for item in value:
        if isinstance(item, TakeProfitLevel):
            out.append(item)
            continue
        p, f = item
        out.append(TakeProfitLevel(Decimal(str(p)), Decimal(str(f))))
    return tuple(out)


@attrs.frozen
class TakeProfitSettings:
    """Take-profit parameters (config section ``take_profit``).

    Attributes:
        levels: :class:`TakeProfitLevel` ``(profit_pct, fraction)``: ``profit_pct``
            strictly increasing, fractions summing to <= 1. Default: none (take-profit
            off). Also accepts ``(profit_pct, fraction)`` pairs of decimal strings.
        breakeven_after_first: move the stop to breakeven after the first level fills.
        breakeven_offset_pct: breakeven stop = entry moved this many percent into profit
            (fees), in [0, 100); default 0.1.

    Raises:
        ValueError: a value out of range; :class:`tradebot.bounds.CrossFieldError` for
            levels not increasing or fractions summing to more than 1.
    """

    levels: tuple[TakeProfitLevel, ...] = attrs.field(default=(), converter=_levels_converter)
    breakeven_after_first: bool = setting(True, validator=attrs.validators.instance_of(bool))
    breakeven_offset_pct: Decimal = decimal_field("0.1", ge="0", lt="100")

    def __attrs_post_init__(self) -> None:
        total = Decimal(0)
        for i, level in enumerate(self.levels):
            if i and level.profit_pct <= self.levels[i - 1].profit_pct:
                raise CrossFieldError(
                    f"levels[{i}].profit_pct",
                    f"must be > {{0}} (got {level.profit_pct} <= "
                    f"{self.levels[i - 1].profit_pct}): levels go up in profit",
                    (f"levels[{i - 1}].profit_pct",),
                )
            total += level.fraction
        if total > Decimal(1):
            raise CrossFieldError("levels", f"fractions sum to {total} > 1")


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
