"""Paper engine throughput: mark-price updates per second with 500 open positions with stops.

Synthetic instruments (250 symbols, long + short each = 500 hedge-mode positions), each
position protected (bybit-like: position-level stop; binance-like: algo STOP_MARKET
closePosition). Marks follow a seeded random walk of +-0.05% per update, so stops do not
fire and every update exercises the matching scan. Reported: updates/s for the bare engine,
with a step listener that checks every position's stop (the invariant-monitor pattern), and
through ``PaperVenue.push_mark`` (adds the MarkPrice fan-out).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from adapters.paper import (
    EngineStep,
    PaperEngine,
    PaperVenue,
    VenueProfile,
    binance_like,
    bybit_like,
)
from tradebot.domain import Instrument, PositionSide
from tradebot.ports import EntryRequest, StopRequest

N_SYMBOLS = 250
T0 = datetime(2025, 5, 20, tzinfo=UTC)


def _setup(profile: VenueProfile) -> tuple[PaperEngine, list[str]]:
    symbols = [f"S{i:03d}USDT" for i in range(N_SYMBOLS)]
    instruments = [
        Instrument(s, Decimal("0.01"), Decimal("0.001"), Decimal("0.001"), Decimal("5"))
        for s in symbols
    ]
    engine = PaperEngine(profile, instruments, wallet_usdt=Decimal(10_000_000), start_ts=T0)
    for i, s in enumerate(symbols):
        engine.set_mark(s, Decimal(100), T0)
        for side, stop in ((PositionSide.LONG, "90"), (PositionSide.SHORT, "110")):
            cid = f"tb-{i:04d}{side.value[0]}-E0"
            if profile.capabilities.attached_stop:
                engine.place_entry(EntryRequest(s, side, Decimal(1), cid, Decimal(stop)))
            else:
                engine.place_entry(EntryRequest(s, side, Decimal(1), cid))
                engine.place_stop(StopRequest(s, side, Decimal(stop), cid.replace("E0", "S0")))
    assert len(engine.positions()) == 2 * N_SYMBOLS
    return engine, symbols


def _ticks(symbols: list[str], n: int, seed: int = 1) -> list[tuple[str, Decimal, datetime]]:
    rng = random.Random(seed)
    price = {s: Decimal(100) for s in symbols}
    out = []
    for k in range(n):
        s = symbols[k % len(symbols)]
        step = Decimal(rng.randint(-5, 5)) / 100  # +-0.05 on 100
        price[s] = min(max(price[s] + step, Decimal(95)), Decimal(105))
        out.append((s, price[s], T0 + timedelta(milliseconds=k)))
    return out


def _rate(
    fn: Callable[[str, Decimal, datetime], object], ticks: list[tuple[str, Decimal, datetime]]
) -> float:
    t0 = time.perf_counter()
    for s, p, ts in ticks:
        fn(s, p, ts)
    return len(ticks) / (time.perf_counter() - t0)


def run(record: Callable[[str, float, str], None]) -> None:
    n = 50_000
    for name, profile in (("bybit", bybit_like()), ("binance", binance_like())):
        engine, symbols = _setup(profile)
        ticks = _ticks(symbols, n)
        record(
            f"{name}: engine.set_mark, 500 positions", _rate(engine.set_mark, ticks), "updates/s"
        )

        checked = [0]

        def monitor(
            step: EngineStep, engine: PaperEngine = engine, checked: list[int] = checked
        ) -> None:
            # the invariant-monitor pattern: every position of the stepped symbol has a stop
            if step.symbol is None:
                return
            for pos in engine.positions(step.symbol):
                checked[0] += 1
                if not engine.stops_for(pos.symbol, pos.position_side):
                    raise AssertionError(f"unprotected {pos}")

        engine.add_listener(monitor)
        record(f"{name}: set_mark + per-step monitor", _rate(engine.set_mark, ticks), "updates/s")
        venue = PaperVenue(engine)
        record(f"{name}: venue.push_mark + monitor", _rate(venue.push_mark, ticks), "updates/s")
        assert checked[0] > 0 and len(engine.positions()) == 2 * N_SYMBOLS
