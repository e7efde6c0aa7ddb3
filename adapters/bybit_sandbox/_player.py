"""Market data for the sandbox: a bybit-like paper engine over bundled (or given) data, and
a player that feeds the recorded 1-minute path as live mark prices."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import trio

from adapters.bybit_sandbox._server import BybitSandbox
from adapters.paper import PaperEngine, bybit_like
from adapters.replay import KlineReplay, bundled_data_dir, load_instruments_json
from tradebot.domain import Instrument

__all__ = ["play_market_data", "sandbox_engine"]


def sandbox_engine(
    instruments: Mapping[str, Instrument] | None = None,
    *,
    data_dir: Path | None = None,
    wallet_usdt: Decimal = Decimal(10000),
) -> PaperEngine:
    """A ``bybit_like`` paper engine for the sandbox, clocked at wall time.

    Args:
        instruments: the instruments to serve; default: the symbols of ``data_dir`` (the
            bundled ``tradebot/data/market`` when None) that have both a rule in its
            ``instruments.json`` and a kline file.
        wallet_usdt: starting USDT wallet.
    """
    if instruments is None:
        root = data_dir or bundled_data_dir()
        table = load_instruments_json(root / "instruments.json")
        have = {p.name.removesuffix(".csv.gz") for p in root.glob("*.csv.gz")}
        # serve only what can be priced: symbols with a kline file to play
        instruments = {s: i for s, i in table.items() if s in have} or table
    return PaperEngine(
        bybit_like(), instruments, wallet_usdt=wallet_usdt, start_ts=datetime.now(UTC)
    )


async def play_market_data(
    sandbox: BybitSandbox,
    *,
    data_dir: Path | None = None,
    symbols: list[str] | None = None,
    step_interval_s: float = 0.25,
    loop: bool = True,
) -> None:
    """Feed recorded marks (4 per 1-minute candle: open, extremes, close) into the sandbox,
    one replay instant every ``step_interval_s`` wall seconds, until cancelled.

    Only symbols the sandbox serves are played. Runs forever with ``loop=True``.
    """
    known = set(sandbox.engine.instruments())
    root = data_dir or bundled_data_dir()
    have = {p.name.removesuffix(".csv.gz") for p in root.glob("*.csv.gz")}
    wanted = [s for s in (symbols or sorted(known)) if s in known and s in have]
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
