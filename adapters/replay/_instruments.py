"""Instrument rules (tick size, qty step, minimums) for the symbols of a replay data set.

Kline files carry no trading rules, so each symbol's :class:`~tradebot.domain.Instrument`
comes from the first of these that knows it (the run prints which one per symbol):

1. ``"data-dir"``: an ``instruments.json`` beside the kline files (the user's own table for
   their own download; same shape as the bundled one).
2. ``"bundled"``: the project's table ``tradebot/data/market/instruments.json`` (Binance
   ``exchangeInfo`` filter shapes chosen for the 2025 price levels; see its README).
3. ``"derived"``: a rule from the prices, using the median close ``p`` of the symbol's first
   (up to) 1,440 candles in the replay window:

   * ``tick_size = 10 ** (floor(log10(p)) - 5)``: the tick is between 0.001 % and 0.01 % of
     the price (BTC at 105,000 → 1; ETH at 2,500 → 0.01; ADA at 0.75 → 0.000001), fine
     enough that a 0.5 % trailing distance spans hundreds of ticks.
   * ``min_notional = 5`` USDT (Binance ``MIN_NOTIONAL`` of most USD-M perpetuals).
   * ``qty_step = min_qty = 10 ** floor(log10(5 / p))``: one step is worth between 0.5 and
     5 USDT at ``p``, so min notional is reachable with a few steps and a 100 USDT position
     is sized to better than 5 %.

JSON shape: a list of objects ``{"symbol", "tick_size", "qty_step", "min_qty",
"min_notional", ["max_qty"], ["max_market_qty"], ["min_price"], ["status"]}`` with decimal
strings (``max_market_qty``: the largest market order, Bybit ``maxMktOrderQty``).
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Iterable, Mapping
from decimal import Decimal, InvalidOperation
from importlib import resources
from pathlib import Path

from adapters.replay._klines import Bar, ReplayDataError
from tradebot.domain import Instrument, InstrumentStatus

__all__ = [
    "DERIVED_MIN_NOTIONAL_USDT",
    "bundled_data_dir",
    "derive_instrument",
    "load_instruments_json",
]

DERIVED_MIN_NOTIONAL_USDT = Decimal(5)


def bundled_data_dir() -> Path:
    """The bundled 3-day data set (``tradebot/data/market``) as a filesystem path."""
    return Path(str(resources.files("tradebot") / "data" / "market"))


def load_instruments_json(path: Path) -> dict[str, Instrument]:
    """Parse an ``instruments.json`` table (shape in the module docstring).

    Raises:
        ReplayDataError: unreadable file, not a list of objects, a missing key, a value
            that is not a decimal string, or values the Instrument rejects (tick <= 0 ...).
    """
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ReplayDataError(f"{path}: cannot read instruments table: {exc}") from exc
    if not isinstance(raw, list):
        raise ReplayDataError(f"{path}: expected a JSON list of instrument objects")
    out: dict[str, Instrument] = {}
    for i, item in enumerate(raw):
        where = f"{path}[{i}]"
        if not isinstance(item, Mapping) or not isinstance(item.get("symbol"), str):
            raise ReplayDataError(f"{where}: expected an object with a 'symbol' string")

        def dec(
            key: str,
            *,
            optional: bool = False,
            _item: Mapping[str, object] = item,
            _where: str = where,
        ) -> Decimal | None:
            v = _item.get(key)
            if v is None and optional:
                return None
            if isinstance(v, bool) or not isinstance(v, (str, int)):
                raise ReplayDataError(f"{_where}.{key}: expected a decimal string, got {v!r}")
            try:
                d = Decimal(str(v))
            except InvalidOperation:
                raise ReplayDataError(f"{_where}.{key}: not a decimal: {v!r}") from None
            if not d.is_finite():
                raise ReplayDataError(f"{_where}.{key}: not finite: {v!r}")
            return d

        try:
            status = InstrumentStatus(str(item.get("status", "TRADING")))
            inst = Instrument(
                symbol=item["symbol"],
                tick_size=dec("tick_size"),  # type: ignore[arg-type]
                qty_step=dec("qty_step"),  # type: ignore[arg-type]
                min_qty=dec("min_qty"),  # type: ignore[arg-type]
                min_notional=dec("min_notional"),  # type: ignore[arg-type]
                max_qty=dec("max_qty", optional=True),
                max_market_qty=dec("max_market_qty", optional=True),
                min_price=dec("min_price", optional=True),
                status=status,
            )
        except ValueError as exc:
            raise ReplayDataError(f"{where}: {exc}") from None
        out[inst.symbol] = inst
    return out


def _pow10(exp: int) -> Decimal:
    return Decimal(1).scaleb(exp)


def derive_instrument(symbol: str, bars: Iterable[Bar]) -> Instrument:
    """Instrument rules for ``symbol`` from its prices (rule 3 of the module docstring).

    Args:
        symbol: the symbol.
        bars: its first candles (only the first 1,440 are used).

    Raises:
        ReplayDataError: when there is no candle to derive from.
    """
    closes: list[Decimal] = []
    for bar in bars:
        closes.append(bar.close)
        if len(closes) >= 1440:
            break
    if not closes:
        raise ReplayDataError(f"{symbol}: no candles in the window to derive instrument rules from")
    median = statistics.median_low(closes)
    # log10 on an exact Decimal (Decimal.log10 is correctly rounded; floor of it is exact
    # except when the median is an exact power of ten, where adjusted() is exact).
    magnitude = median.adjusted()  # floor(log10(median)) for any positive Decimal
    tick = _pow10(magnitude - 5)
    ratio = DERIVED_MIN_NOTIONAL_USDT / median
    step_exp = ratio.adjusted()  # floor(log10(5 / p))
    step = _pow10(step_exp)
    return Instrument(
        symbol=symbol,
        tick_size=tick,
        qty_step=step,
        min_qty=step,
        min_notional=DERIVED_MIN_NOTIONAL_USDT,
    )
