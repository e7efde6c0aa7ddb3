"""Sanity rules for market prices: what a price must look like before anything acts on it.

One place for the rules, used by the replay reader (:mod:`adapters.replay`), the paper
engine (``PaperEngine.set_mark``) and the market router (live mark prices,
:class:`actors.routers.MarketRouter`), so a price the replay refuses is also refused live.

Rules for a single price (:func:`price_problem`), in USDT:

* a :class:`decimal.Decimal` (never a float);
* finite: ``NaN``, ``sNaN`` and ``Infinity`` are refused;
* ``> 0``;
* ``<= MAX_PRICE_USDT`` (1e9): no USDT-margined perpetual trades anywhere near it (BTC is
  ~1e5), and anything larger breaks the tick/step arithmetic long before it means
  anything (``1e400`` is a valid Decimal whose ``quantize`` to a tick raises);
* ``>= MIN_PRICE_USDT`` (1e-12): venue tick sizes go down to 1e-8 (Binance
  ``PRICE_FILTER.tickSize``, Bybit ``priceFilter.tickSize``) and the paper engine keeps
  average entry prices to 1e-12, so a smaller price cannot be traded or stored.

Rule between two consecutive prices of one symbol (:func:`move_pct`): the relative move
``(p1 - p0) / p0`` in percent. A replay refuses a move larger than its bound (default
``DEFAULT_MAX_MOVE_PCT`` = 50 % between two consecutive intrabar points, i.e. within one
minute) unless the user allows it: the largest such move in the bundled 3 days is 4.1 %
(AVAXUSDT) and in the 25-day, 16-symbol set 6.9 % (LAYERUSDT), so 50 % is generous for
real data and still catches a fat-finger row such as BTCUSDT at 0.1.

Rule for a stop's fill (:func:`stop_slippage_pct`): how much worse than its trigger price
it filled; beyond ``DEFAULT_GAP_FILL_PCT`` (1 %) it is a ``stop.gap_fill`` incident.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

__all__ = [
    "DEFAULT_GAP_FILL_PCT",
    "DEFAULT_MAX_MOVE_PCT",
    "MAX_PRICE_USDT",
    "MIN_PRICE_USDT",
    "move_pct",
    "price_problem",
    "stop_slippage_pct",
]

MAX_PRICE_USDT = Decimal("1e9")
"""Largest price accepted, USDT."""
MIN_PRICE_USDT = Decimal("1e-12")
"""Smallest price accepted, USDT."""
DEFAULT_MAX_MOVE_PCT = Decimal(50)
"""Default bound on the move between two consecutive price points of a replay, percent."""

_HUNDRED = Decimal(100)


def price_problem(price: object) -> str | None:
    """Why ``price`` is not a usable market price, or None when it is.

    Args:
        price: the candidate price (USDT).

    Returns:
        None for a valid price, else a short reason such as ``"not finite (NaN)"``,
        ``"not positive (0)"``, ``"above 1e9 USDT (1E+400)"``. Never raises.
    """
    try:
        if type(price) is Decimal and MIN_PRICE_USDT <= price <= MAX_PRICE_USDT:
            return None  # the fast path of every valid price
    except InvalidOperation:  # NaN compared: reported below
        pass
    if not isinstance(price, Decimal):
        return f"not a Decimal ({type(price).__name__})"
    if not price.is_finite():
        return f"not finite ({price})"
    if price <= 0:
        return f"not positive ({price})"
    if price > MAX_PRICE_USDT:
        return f"above {MAX_PRICE_USDT} USDT ({price})"
    if price < MIN_PRICE_USDT:
        return f"below {MIN_PRICE_USDT} USDT ({price})"
    return None


def move_pct(p0: Decimal, p1: Decimal) -> Decimal:
    """Signed move from ``p0`` to ``p1`` in percent of ``p0`` (``100 → 1`` is ``-99``).

    Both prices must be valid (:func:`price_problem` is None), so ``p0 > 0``.
    """
    return (p1 - p0) * _HUNDRED / p0


DEFAULT_GAP_FILL_PCT = Decimal(1)
"""A stop fill worse than its trigger price by more than this, percent of the trigger, is a
``stop.gap_fill`` incident (journal and report). A stop becomes a market order at the first
price seen through its trigger (gap-aware fills, :mod:`adapters.paper._engine`; the venues'
stop-market semantics), so a small overshoot is normal: in the bundled 3 days (137 stop
fills, either venue profile) the worst is 0.90 % worse than its trigger (the run report's
``stop_fills.max_slippage_pct``)."""


def stop_slippage_pct(sign: int, trigger_price: Decimal, fill_price: Decimal) -> Decimal:
    """How much worse than its trigger a stop filled, percent of the trigger price.

    Args:
        sign: the position side's sign (+1 long: the stop sells, a lower fill is worse;
            -1 short: the stop buys, a higher fill is worse).
        trigger_price: the stop's trigger (> 0).
        fill_price: the execution price.

    Returns:
        ``> 0`` when the fill is worse than the trigger, ``<= 0`` when it is at or better.
    """
    return (trigger_price - fill_price) * sign * _HUNDRED / trigger_price
