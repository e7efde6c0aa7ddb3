"""Stop distance versus the estimated liquidation distance at a leverage (pure).

A stop that sits at or beyond the position's liquidation price is useless: the exchange
liquidates the position (losing its whole margin plus the liquidation fee) before the stop
can trigger. The check runs at config time (``tradebot check-config``, every command that
loads a config) against ``exchange.default_leverage`` and every
``exchange.leverage_per_symbol`` entry.

Approximation (isolated margin, linear USDT contract, entry price ``P``, leverage ``L``,
maintenance margin rate ``MMR``): the liquidation price of a long is
``P × (1 − 1/L + MMR)`` and of a short ``P × (1 + 1/L − MMR)``, i.e. a distance from entry
of ``100/L − MMR`` percent — Bybit's help centre, "Liquidation Price Calculation under
Isolated Mode (Unified Trading Account)", USDT contracts: ``Entry − (Initial Margin −
Maintenance Margin) / Position Size`` with ``Initial Margin = Position Value / L`` and
``Maintenance Margin = Position Value × MMR``; Binance USDⓈ-M isolated margin is the same
to first order. (``../shared/reference/exchanges.md`` has no page on liquidation.) Ignored:
the estimated fee to close (a little closer), the maintenance deduction of higher risk
tiers (a little further), extra margin added (further) and cross margin, where the rest of
the wallet backs the position and liquidation is further away: the isolated estimate is
the near, conservative side. ``MMR`` is taken as :data:`MAINTENANCE_MARGIN_PCT` = 1 %,
at or above the first risk tier of the USDT perpetuals on both venues (Bybit BTCUSDT /
ETHUSDT 0.5 %, most others 1 %; Binance BTCUSDT 0.4 %).

Trailing and breakeven moves need no separate check: a stop never loosens
(docs/ARCHITECTURE.md §1.3), so every later stop is at most as far from entry as the
initial one (a breakeven stop is on the profit side).
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

__all__ = [
    "MAINTENANCE_MARGIN_PCT",
    "liquidation_distance_pct",
    "stop_liquidation_problems",
]

MAINTENANCE_MARGIN_PCT = Decimal("1")
"""Maintenance margin rate assumed by the check, percent of the position value."""


def liquidation_distance_pct(
    leverage: int, maintenance_margin_pct: Decimal = MAINTENANCE_MARGIN_PCT
) -> Decimal:
    """Estimated distance (percent of entry, may be <= 0) from entry to the liquidation
    price of an isolated position at ``leverage``: ``100 / leverage − maintenance_margin_pct``.

    Args:
        leverage: in [1, 125] (config range; any integer >= 1 is accepted here).
        maintenance_margin_pct: maintenance margin rate, percent, >= 0.

    Raises:
        ValueError: ``leverage`` < 1 or ``maintenance_margin_pct`` < 0.
    """
    if leverage < 1:
        raise ValueError(f"leverage must be >= 1, got {leverage}")
    if maintenance_margin_pct < 0:
        raise ValueError(f"maintenance_margin_pct must be >= 0, got {maintenance_margin_pct}")
    return Decimal(100) / Decimal(leverage) - maintenance_margin_pct


def stop_liquidation_problems(
    stops: Mapping[str, Decimal],
    leverages: Mapping[str, int],
    maintenance_margin_pct: Decimal = MAINTENANCE_MARGIN_PCT,
) -> list[tuple[str, str]]:
    """Every (stop key, reason) where a stop distance is at or beyond the estimated
    liquidation distance of one of the leverages.

    Args:
        stops: stop distance from entry, percent, by config key
            (``{"stop_loss.initial_pct": Decimal("2"), ...}``).
        leverages: leverage by config key (``{"exchange.default_leverage": 5,
            "exchange.leverage_per_symbol['BTCUSDT']": 40}``).
        maintenance_margin_pct: the maintenance margin rate assumed, percent.

    Returns:
        ``(stop_key, reason)`` pairs in input order; empty when every stop is nearer to
        entry than every liquidation estimate. The reason names the leverage key.
    """
    problems: list[tuple[str, str]] = []
    for stop_key, stop_pct in stops.items():
        for lev_key, leverage in leverages.items():
            liq = liquidation_distance_pct(leverage, maintenance_margin_pct)
            if stop_pct >= liq:
                problems.append(
                    (
                        stop_key,
                        f"{stop_pct} % from entry is at or beyond the estimated liquidation "
                        f"distance {liq.normalize():f} % at {lev_key} = {leverage} "
                        f"(100/{leverage} − {maintenance_margin_pct} % maintenance margin, "
                        "isolated): the position would be liquidated before the stop "
                        "triggers; lower the leverage or tighten the stop",
                    )
                )
    return problems
