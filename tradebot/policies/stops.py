"""Stop-loss prices and the stop invariants (docs/ARCHITECTURE.md §1 invariant 3, §5).

Every stop price that leaves tradebot goes through this module:

* it is rounded to the instrument's tick in the *protective* direction
  (:attr:`tradebot.domain.PositionSide.stop_rounding`: long → up, short → down);
* it sits strictly on the protective side of the reference (mark) price
  (long: below, short: above); when protective rounding would land on or through the
  reference (coarse ticks), the next tick away from the market is used;
* it never loosens (long: new >= old, short: new <= old);
* it is never 0 and never below the instrument's minimum price.

All prices are USDT ``Decimal``; percentages are percent (``2`` = 2 %).
"""

from __future__ import annotations

from decimal import Decimal

import attrs

from tradebot.bounds import decimal_field
from tradebot.domain import Instrument, PositionSide
from tradebot.money import Rounding, move_by_pct, quantize_to_step

__all__ = [
    "NoValidStop",
    "StopLossSettings",
    "emergency_stop_price",
    "initial_stop_price",
    "is_protective",
    "is_tighter",
    "protective_stop_price",
    "stop_violations",
    "tightest",
]


class NoValidStop(ValueError):
    """No tick-valid stop exists on the protective side of the reference price.

    Raised e.g. for a long at the instrument's minimum price (nothing below it is a valid
    price). The caller must not open (or must close) such a position.
    """


@attrs.frozen
class StopLossSettings:
    """Stop-loss distances.

    Attributes:
        initial_pct: initial stop distance from the entry price, percent, in (0, 100).
            Config ``stop_loss.initial_pct``; default 2 (docs/ARCHITECTURE.md §5).
        emergency_pct: distance from entry of the emergency stop the PositionActor places
            when it cannot flatten, percent, in (0, 100). Config
            ``stop_loss.emergency_pct``; default 3 (docs/ARCHITECTURE.md §5, Protection). The
            stop of an *adopted* position uses ``protection.emergency_pct``.
    """

    initial_pct: Decimal = decimal_field("2", gt="0", lt="100")
    emergency_pct: Decimal = decimal_field("3", gt="0", lt="100")


def is_protective(stop_price: Decimal, reference_price: Decimal, side: PositionSide) -> bool:
    """True when the stop is strictly on the protective side of ``reference_price``.

    Long: ``stop < reference``; short: ``stop > reference``. A stop at the reference
    would trigger at once.
    """
    return (
        stop_price < reference_price if side is PositionSide.LONG else stop_price > reference_price
    )


def is_tighter(new: Decimal, old: Decimal, side: PositionSide) -> bool:
    """True when ``new`` is strictly tighter (closer to the market on the protective side)
    than ``old``: long ``new > old``, short ``new < old``."""
    return new > old if side is PositionSide.LONG else new < old


def tightest(a: Decimal, b: Decimal, side: PositionSide) -> Decimal:
    """The tighter of two stops (long: max, short: min) — "never loosens" as a function."""
    return max(a, b) if side is PositionSide.LONG else min(a, b)


def protective_stop_price(
    raw_price: Decimal, reference_price: Decimal, side: PositionSide, instrument: Instrument
) -> Decimal:
    """Round a raw stop level to a valid, protective stop price.

    Args:
        raw_price: the unrounded level (USDT, > 0 or the floor applies).
        reference_price: the price the stop must be on the protective side of (mark or
            entry), USDT > 0.
        side: position side.
        instrument: tick size and minimum price.

    Returns:
        A multiple of the tick, >= the instrument's price floor, strictly below
        ``reference_price`` for a long (above for a short). Rounded in the protective
        direction unless that lands on/through the reference, then one tick further away.

    Raises:
        NoValidStop: long whose reference is at or below the minimum price + nothing fits.
    """
    p = instrument.round_price(raw_price, side.stop_rounding)
    if is_protective(p, reference_price, side):
        return p
    tick = instrument.tick_size
    if side is PositionSide.LONG:
        # largest tick multiple strictly below the reference
        p = quantize_to_step(reference_price, tick, Rounding.DOWN)
        if p >= reference_price:
            p = p - tick
        if p < instrument.price_floor or p <= 0:
            raise NoValidStop(
                f"{instrument.symbol}: no valid long stop below {reference_price} (tick {tick})"
            )
        return p
    p = quantize_to_step(reference_price, tick, Rounding.UP)
    if p <= reference_price:
        p = p + tick
    return instrument.round_price(p, Rounding.UP)


def initial_stop_price(
    entry_price: Decimal,
    side: PositionSide,
    instrument: Instrument,
    settings: StopLossSettings | None = None,
) -> Decimal:
    """The initial stop: ``stop_loss.initial_pct`` (default 2 %) from the entry price.

    Long: ``entry * (1 - pct/100)`` rounded up to the tick; short: ``entry * (1 + pct/100)``
    rounded down — both protective (docs/ARCHITECTURE.md §5, "Initial stop"). Trigger: mark price.

    Raises:
        NoValidStop: see :func:`protective_stop_price`.
        ValueError: ``entry_price <= 0``.
    """
    if entry_price <= 0:
        raise ValueError(f"entry_price must be > 0, got {entry_price}")
    s = settings or StopLossSettings()
    raw = move_by_pct(entry_price, -side.sign * s.initial_pct)
    return protective_stop_price(raw, entry_price, side, instrument)


def emergency_stop_price(
    entry_price: Decimal,
    side: PositionSide,
    instrument: Instrument,
    settings: StopLossSettings | None = None,
    mark_price: Decimal | None = None,
) -> Decimal:
    """The emergency stop for an adopted position: ``protection.emergency_pct`` (default 3 %)
    from the entry, protective rounding; if the mark is given and the level is already
    through it, the caller must use :func:`tradebot.policies.protection.decide_repair`.

    Raises:
        NoValidStop, ValueError: as :func:`initial_stop_price`.
    """
    if entry_price <= 0:
        raise ValueError(f"entry_price must be > 0, got {entry_price}")
    s = settings or StopLossSettings()
    raw = move_by_pct(entry_price, -side.sign * s.emergency_pct)
    return protective_stop_price(raw, entry_price, side, instrument)


def stop_violations(
    new_stop: Decimal,
    *,
    side: PositionSide,
    instrument: Instrument,
    mark_price: Decimal | None = None,
    previous_stop: Decimal | None = None,
) -> list[str]:
    """Check a stop against invariant 3 of docs/ARCHITECTURE.md §1.

    Returns:
        The list of violated rules (empty = valid): ``"zero_or_negative"``,
        ``"below_min_price"``, ``"not_on_tick"``, ``"not_protective_of_mark"``,
        ``"loosened"``.
    """
    problems: list[str] = []
    if new_stop <= 0:
        problems.append("zero_or_negative")
        return problems
    if new_stop < instrument.price_floor:
        problems.append("below_min_price")
    if quantize_to_step(new_stop, instrument.tick_size, Rounding.DOWN) != new_stop:
        problems.append("not_on_tick")
    if mark_price is not None and not is_protective(new_stop, mark_price, side):
        problems.append("not_protective_of_mark")
    if previous_stop is not None and is_tighter(previous_stop, new_stop, side):
        problems.append("loosened")
    return problems
