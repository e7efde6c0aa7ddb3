"""Value conversions of the legacy import: FLOAT money, naive times, ccxt symbols, sides.

Rules (../shared/reference/legacy-bot-schema.md, "What is known to be wrong in such data"):

* A FLOAT (``double precision``) becomes the shortest decimal that round-trips it
  (Python's ``repr``: ``0.1 + 0.2`` → ``Decimal("0.30000000000000004")``); a ``real``
  (float4) the shortest decimal that round-trips it as a float4. ``numeric`` stays exact.
* Prices are then rounded to the instrument's tick and quantities to its step, to the
  *nearest* multiple (half-even): the old bot sent on-tick values, so the nearest multiple
  is what it meant; a value that moved is counted.
* A price that must be positive and is zero or negative is unknown (None), never 0.
* A timestamp without time zone is read in ``naive_tz`` (UTC by default) and returned as
  aware UTC.
"""

from __future__ import annotations

import math
import struct
from datetime import UTC, datetime, tzinfo
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Any

from tradebot.domain import PositionSide

__all__ = [
    "nearest_step",
    "normalise_symbol",
    "parse_side",
    "to_aware_utc",
    "to_decimal_exact",
]


def _shortest_float4(v: float) -> str:
    packed = struct.pack("<f", v)
    for digits in range(1, 18):
        text = f"{v:.{digits}g}"
        if struct.pack("<f", float(text)) == packed:
            return text
    return repr(v)


def to_decimal_exact(value: Any, data_type: str = "double precision") -> Decimal | None:
    """The decimal the old bot meant by ``value`` (None for NULL or a non-finite float).

    Args:
        value: what psycopg returned for the column (float, Decimal, int, str or None).
        data_type: the column's ``information_schema.columns.data_type`` (``real`` is
            float4: its float was widened by the driver, so the float4 shortest form is used).

    Raises:
        ValueError: a string or other value that is not a decimal number.
    """
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError(f"not a number: {value!r}")
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        text = _shortest_float4(value) if data_type == "real" else repr(value)
        return Decimal(text)
    if isinstance(value, Decimal):
        return value if value.is_finite() else None
    if isinstance(value, int):
        return Decimal(value)
    try:
        d = Decimal(str(value).strip())
    except InvalidOperation:
        raise ValueError(f"not a number: {value!r}") from None
    return d if d.is_finite() else None


def nearest_step(value: Decimal, step: Decimal) -> Decimal:
    """``value`` rounded to the nearest multiple of ``step`` (> 0), half-even, written with
    the step's exponent (``0.30000000000000004`` on step ``0.01`` → ``0.30``).

    Raises:
        ValueError: ``step <= 0``.
    """
    if step <= 0:
        raise ValueError(f"step must be > 0, got {step}")
    units = (value / step).to_integral_value(rounding=ROUND_HALF_EVEN)
    result = units * step
    exp = step.normalize().as_tuple().exponent
    if isinstance(exp, int) and exp < 0:
        result = result.quantize(Decimal(1).scaleb(exp))
    return result


def to_aware_utc(value: Any, naive_tz: tzinfo = UTC) -> tuple[datetime | None, bool]:
    """``(aware UTC datetime, was_naive)``; ``(None, False)`` for NULL.

    Raises:
        ValueError: a value that is not a datetime (or an ISO-8601 string).
    """
    if value is None:
        return None, False
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if not isinstance(value, datetime):
        raise ValueError(f"not a timestamp: {value!r}")
    if value.tzinfo is None or value.utcoffset() is None:
        return value.replace(tzinfo=naive_tz).astimezone(UTC), True
    return value.astimezone(UTC), False


def normalise_symbol(raw: str) -> str:
    """Venue symbol of a legacy symbol: ``BTC/USDT:USDT`` / ``BTC/USDT`` / ``btcusdt`` /
    ``BTC-USDT`` → ``BTCUSDT``.

    Raises:
        ValueError: an empty symbol.
    """
    s = raw.strip().upper()
    if "/" in s:
        base, _, rest = s.partition("/")
        quote = rest.partition(":")[0]
        s = base + quote
    s = s.replace("-", "").replace("_", "")
    if not s:
        raise ValueError(f"empty symbol {raw!r}")
    return s


def parse_side(raw: Any) -> PositionSide:
    """``long``/``buy`` → LONG, ``short``/``sell`` → SHORT (any case).

    Raises:
        ValueError: anything else.
    """
    return PositionSide.from_action(str(raw or ""))
