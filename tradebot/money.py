"""Decimal money and precision helpers.

Every price, quantity, fee and PnL in tradebot is a :class:`decimal.Decimal`. Floats are
rejected at the boundary (:func:`to_decimal`) so binary rounding ("float dust") can never
enter a money path. All rounding is explicit about its direction, because on an exchange the
direction of a rounding is a risk decision: a stop is rounded toward the protective side, a
quantity is floored so we never order more than we can afford.

Sources: tick size / qty step semantics from Bybit ``instruments-info`` (``priceFilter``,
``lotSizeFilter``) and Binance ``exchangeInfo`` filters (``PRICE_FILTER``, ``LOT_SIZE``,
``MIN_NOTIONAL``); see ../shared/reference/exchanges.md section 6.
"""

from __future__ import annotations

import decimal
import enum
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

__all__ = [
    "ZERO",
    "ONE",
    "HUNDRED",
    "Rounding",
    "to_decimal",
    "quantize_to_step",
    "pct_of",
    "move_by_pct",
    "pct_change",
]

ZERO = Decimal(0)
ONE = Decimal(1)
HUNDRED = Decimal(100)

# A private context with enough precision for any price * qty product we meet
# (28 significant digits is the default; crypto prices have <= 12 and qty <= 12).
_CTX = decimal.Context(
    prec=34,
    rounding=decimal.ROUND_HALF_EVEN,
    traps=[
        decimal.InvalidOperation,
        decimal.DivisionByZero,
        decimal.Overflow,
    ],
)


class Rounding(enum.Enum):
    """Direction of a rounding to a tick or step.

    ``DOWN`` goes toward -infinity, ``UP`` toward +infinity (not toward/away from zero:
    all our prices and quantities are positive, and being explicit avoids the
    ``ROUND_DOWN`` vs ``ROUND_FLOOR`` confusion).
    """

    DOWN = "down"
    UP = "up"


def to_decimal(value: object, *, field: str = "value") -> Decimal:
    """Convert an exact representation to Decimal.

    Args:
        value: a ``Decimal``, ``int`` or decimal string such as ``"0.001"``.
        field: name used in the error message.

    Returns:
        The finite Decimal.

    Raises:
        TypeError: for ``float`` (inexact by construction), ``bool`` and other types.
        ValueError: for strings that are not a finite decimal (``"NaN"``, ``"1e400"`` is
            accepted only if finite; ``"inf"`` and garbage are rejected).
    """
    if isinstance(value, (bool, float)):
        raise TypeError(f"{field}: expected a decimal string, got {type(value).__name__} {value!r}")
    if isinstance(value, Decimal):
        d = value
    elif isinstance(value, int):
        d = Decimal(value)
    elif isinstance(value, str):
        try:
            d = Decimal(value.strip())
        except decimal.InvalidOperation:
            raise ValueError(f"{field}: not a decimal number: {value!r}") from None
    else:
        raise TypeError(f"{field}: expected a decimal string, got {type(value).__name__} {value!r}")
    if not d.is_finite():
        raise ValueError(f"{field}: not a finite number: {value!r}")
    return d


def quantize_to_step(value: Decimal, step: Decimal, rounding: Rounding) -> Decimal:
    """Round ``value`` to an integer multiple of ``step`` in the given direction.

    Args:
        value: any finite Decimal.
        step: the tick size or qty step, > 0.
        rounding: ``DOWN`` (floor) or ``UP`` (ceiling).

    Returns:
        ``n * step`` for an integer ``n``, expressed with the step's exponent so that
        ``str()`` gives what an exchange expects (``"0.010"`` for step ``0.001``).
        Idempotent: quantizing a multiple of ``step`` returns it unchanged.

    Raises:
        ValueError: if ``step <= 0``.
    """
    if step <= 0:
        raise ValueError(f"step must be > 0, got {step}")
    mode = ROUND_FLOOR if rounding is Rounding.DOWN else ROUND_CEILING
    units = _CTX.divide(value, step).to_integral_value(rounding=mode)
    result = _CTX.multiply(units, step)
    # Present with the step's exponent when that is exact (it always is for n * step).
    exp = step.normalize().as_tuple().exponent
    if isinstance(exp, int) and exp < 0:
        result = result.quantize(Decimal(1).scaleb(exp), context=_CTX)
    return result


def pct_of(value: Decimal, pct: Decimal) -> Decimal:
    """``pct`` percent of ``value`` (``pct_of(200, 1.5) == 3``)."""
    return _CTX.divide(_CTX.multiply(value, pct), HUNDRED)


def move_by_pct(price: Decimal, pct: Decimal) -> Decimal:
    """``price`` moved by ``pct`` percent (negative moves down): ``price * (1 + pct/100)``."""
    return _CTX.multiply(price, _CTX.add(ONE, _CTX.divide(pct, HUNDRED)))


def pct_change(from_price: Decimal, to_price: Decimal) -> Decimal:
    """Percent change from ``from_price`` to ``to_price``.

    Raises:
        ValueError: if ``from_price <= 0``.
    """
    if from_price <= 0:
        raise ValueError(f"from_price must be > 0, got {from_price}")
    return _CTX.divide(_CTX.multiply(_CTX.subtract(to_price, from_price), HUNDRED), from_price)
