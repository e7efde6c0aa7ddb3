"""Aged-position exit schedule (docs/ARCHITECTURE.md §5, "Aged positions").

With ``age_h`` = hours since the position became ACTIVE and ``aged_h = age_h - max_age_h``:

* ``age_h < max_age_h`` (3 h): nothing.
* ``0 <= aged_h < grace_h`` (8 h): ONE reduce-only limit exit at breakeven including fees:
  long ``entry * (1 + entry_fee) / (1 - exit_fee)``, short ``entry * (1 - entry_fee) /
  (1 + exit_fee)``.
* afterwards the target moves toward loss: ``loss_pct = loss_step_pct_per_h`` (0.5) ×
  whole hours past the grace period, multiplied by ``acceleration`` (1.2) once
  ``aged_h >= accelerate_after_h`` (10 h); target = breakeven moved ``loss_pct`` against
  the position (long down, short up).
* when ``loss_pct`` reaches ``max_loss_pct`` (10): close at market.

Example with the defaults (long, entry 100, fees 0): aged at 3 h → limit 100;
at 12 h age (aged 9 h, 1 h past grace) → 99.5; at 13 h (aged 10 h, 2 h past grace,
accelerated) → 100 × (1 - 0.012) = 98.8; at 20 h (9 h past grace: 0.5 × 9 × 1.2 = 5.4 %)
→ 94.6; at 28 h (17 h past grace: 10.2 % ≥ 10) → market close.

Prices are rounded to the tick toward *less loss* (long up, short down) and clamped to
the instrument's price floor: never 0, never below the minimum price (e.g. tick 0.0001 at
price 0.0003). The order is replaced only when the rounded target differs from the live
order price, i.e. by at least one tick (:func:`should_replace_exit`).
"""

from __future__ import annotations

import enum
import functools
import math
from datetime import datetime
from decimal import Decimal

import attrs

from tradebot.bounds import decimal_field, number_field
from tradebot.domain import Instrument, PositionSide
from tradebot.money import HUNDRED, ONE, Rounding, move_by_pct

__all__ = [
    "AgedPhase",
    "AgedSettings",
    "AgedTarget",
    "aged_target",
    "breakeven_exit_price",
    "should_replace_exit",
]


@attrs.frozen
class AgedSettings:
    """Aged-exit parameters (config section ``aged``; defaults docs/ARCHITECTURE.md §5).

    Attributes:
        max_age_h: hours after which a position is aged, in (0, 8760]; default 3.
        grace_h: hours the breakeven exit waits, in [0, 8760]; default 8.
        loss_step_pct_per_h: loss added per whole hour after the grace period, percent, in
            (0, 100); default 0.5.
        acceleration: multiplier applied once aged for ``accelerate_after_h``, in [1, 100];
            1.2.
        accelerate_after_h: aged hours after which the acceleration applies, in [0, 8760];
            10.
        max_loss_pct: loss cap, percent, in (0, 100); reaching it closes at market; 10.
        entry_fee_pct: fee paid on the entry (taker), percent, in [0, 5); 0.055.
        exit_fee_pct: fee paid on the limit exit (maker), percent, in [0, 5); 0.02.

    Raises:
        ValueError: a value out of range.
    """

    max_age_h: float = number_field(3.0, gt="0", le="8760")
    grace_h: float = number_field(8.0, ge="0", le="8760")
    loss_step_pct_per_h: Decimal = decimal_field("0.5", gt="0", lt="100")
    acceleration: Decimal = decimal_field("1.2", ge="1", le="100")
    accelerate_after_h: float = number_field(10.0, ge="0", le="8760")
    max_loss_pct: Decimal = decimal_field("10", gt="0", lt="100")
    entry_fee_pct: Decimal = decimal_field("0.055", ge="0", lt="5")
    exit_fee_pct: Decimal = decimal_field("0.02", ge="0", lt="5")


class AgedPhase(enum.Enum):
    NOT_AGED = "NOT_AGED"
    BREAKEVEN = "BREAKEVEN"
    STEPPING = "STEPPING"
    MARKET_CLOSE = "MARKET_CLOSE"


@attrs.frozen
class AgedTarget:
    """Where the aged exit order should be now.

    Attributes:
        phase: schedule phase.
        price: the limit price (valid tick, >= price floor) for BREAKEVEN/STEPPING, else None.
        loss_pct: target loss from breakeven, percent (0 in BREAKEVEN).
        hours_past_grace: whole hours past the grace period (0 before).
    """

    phase: AgedPhase
    price: Decimal | None
    loss_pct: Decimal = Decimal(0)
    hours_past_grace: int = 0


def breakeven_exit_price(
    entry_price: Decimal, side: PositionSide, settings: AgedSettings | None = None
) -> Decimal:
    """Unrounded exit price at which the round trip nets zero after both fees."""
    s = settings or AgedSettings()
    fe = s.entry_fee_pct / HUNDRED
    fx = s.exit_fee_pct / HUNDRED
    if side is PositionSide.LONG:
        return entry_price * (ONE + fe) / (ONE - fx)
    return entry_price * (ONE - fe) / (ONE + fx)


def _exit_rounding(side: PositionSide) -> Rounding:
    # toward less loss: a long sells higher, a short buys lower
    return Rounding.UP if side is PositionSide.LONG else Rounding.DOWN


def aged_target(
    *,
    opened_at: datetime,
    now: datetime,
    entry_price: Decimal,
    side: PositionSide,
    instrument: Instrument,
    settings: AgedSettings | None = None,
) -> AgedTarget:
    """The aged-exit target at ``now``.

    Args:
        opened_at: when the position became ACTIVE (aware UTC).
        now: current time (aware UTC).
        entry_price: average entry price, USDT > 0.
        side: position side.
        instrument: tick size / price floor.

    Returns:
        An :class:`AgedTarget`; its ``price`` is always a valid, non-zero tick multiple.

    Raises:
        ValueError: ``entry_price <= 0``.
    """
    if entry_price <= 0:
        raise ValueError(f"entry_price must be > 0, got {entry_price}")
    s = settings or AgedSettings()
    age_h = (now - opened_at).total_seconds() / 3600.0
    if age_h < s.max_age_h:
        return AgedTarget(AgedPhase.NOT_AGED, None)
    aged_h = age_h - s.max_age_h
    if aged_h < s.grace_h:
        return _aged_at(-1, False, entry_price, side, instrument, s)
    hours = math.floor(aged_h - s.grace_h + 1e-9)
    return _aged_at(hours, aged_h >= s.accelerate_after_h, entry_price, side, instrument, s)


@functools.lru_cache(maxsize=4096)
def _aged_at(
    hours: int,
    accelerated: bool,
    entry_price: Decimal,
    side: PositionSide,
    instrument: Instrument,
    s: AgedSettings,
) -> AgedTarget:
    """The target once aged: BREAKEVEN (``hours`` = -1) or ``hours`` whole hours past the
    grace period (``accelerated``: ``aged_h >= accelerate_after_h``). Pure, so memoized:
    a position asks the same question every aged-exit tick for an hour."""
    be = breakeven_exit_price(entry_price, side, s)
    rounding = _exit_rounding(side)
    if hours < 0:
        return AgedTarget(AgedPhase.BREAKEVEN, instrument.round_price(be, rounding))
    loss = s.loss_step_pct_per_h * hours
    if accelerated:
        loss = loss * s.acceleration
    if loss >= s.max_loss_pct:
        return AgedTarget(AgedPhase.MARKET_CLOSE, None, loss, hours)
    raw = move_by_pct(be, -side.sign * loss)
    return AgedTarget(AgedPhase.STEPPING, instrument.round_price(raw, rounding), loss, hours)


def should_replace_exit(
    current_price: Decimal | None, target: AgedTarget, tick_size: Decimal
) -> bool:
    """True when the live exit order (``current_price``; None = none placed) must be
    (re)placed: none yet, or the target moved by at least one tick."""
    if target.price is None:
        return False
    if current_price is None:
        return True
    return abs(target.price - current_price) >= tick_size
