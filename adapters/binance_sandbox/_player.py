"""Market data for the Binance sandbox: a ``binance_like`` paper engine over the bundled
(or given) data, and a player that feeds the recorded 1-minute path as live mark prices."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import trio

from adapters.binance_sandbox._server import BinanceSandbox
from adapters.paper import PaperEngine, binance_like
from adapters.replay import KlineReplay, bundled_data_dir, load_instruments_json
from tradebot.domain import Instrument

__all__ = ["play_market_data", "sandbox_engine"]


def _kline_symbols(root: Path) -> set[str]:
    return {p.name.removesuffix(".csv.gz") for p in root.glob("*.csv.gz")}


def sandbox_engine(
    instruments: Mapping[str, Instrument] | None = None,
    *,
    data_dir: Path | None = None,
    wallet_usdt: Decimal = Decimal(10000),
) -> PaperEngine:
    """A ``binance_like`` paper engine for the sandbox, clocked at wall time.

    Args:
        instruments: the instruments to serve; default: the symbols of ``data_dir`` (the
            bundled ``tradebot/data/market`` when None) that have a rule in its
            ``instruments.json`` and a kline file.
        wallet_usdt: starting USDT wallet.
    """
    if instruments is None:
        root = data_dir or bundled_data_dir()
        table = load_instruments_json(root / "instruments.json")
        have = _kline_symbols(root)
        instruments = {s: i for s, i in table.items() if s in have} or table
    return PaperEngine(
        binance_like(), instruments, wallet_usdt=wallet_usdt, start_ts=datetime.now(UTC)
    )


async def play_market_data(
    sandbox: BinanceSandbox,
    *,
    data_dir: Path | None = None,
    step_interval_s: float = 0.25,
    loop: bool = True,
) -> None:
    """Feed recorded marks (4 per 1-minute candle: open, extremes, close) into the sandbox,
    one replay instant every ``step_interval_s`` wall seconds, until cancelled.

    Raises:
        ValueError: no kline file for any of the sandbox's instruments.
    """
    root = data_dir or bundled_data_dir()
    wanted = sorted(set(sandbox.engine.instruments()) & _kline_symbols(root))
    if not wanted:
        raise ValueError(f"{root}: no kline files for the sandbox's instruments")
    replay = KlineReplay(root, symbols=wanted, with_funding=False)
    while True:
        for step in replay.steps():
            for symbol, price in step.marks:
                sandbox.set_mark(symbol, price)
            await trio.sleep(step_interval_s)
        if not loop:
            return
