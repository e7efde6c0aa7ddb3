"""PositionActor tick-to-decision latency (real clock).

500 open positions (250 symbols x long/short, each a PositionActor under the
PositionSupervisor, on the paper exchange with zero venue latency) while mark prices arrive
at 5,000 updates/s (round robin over the symbols, prices walking along real 1-minute closes
from the bundled data, rescaled per symbol). Latency = from the MarketRouter setting a
symbol's mark (the first update the actor had not yet consumed; conflated updates count
from the oldest) to that actor's trailing decision, p50 / p99. Target p99 < 1 ms.

Also reported: achieved update rate and decisions per second.
"""

from __future__ import annotations

import csv
import gc
import gzip
import os
import statistics
import time
from datetime import UTC, datetime
from decimal import Decimal
from importlib import resources

import trio

from actors.account import open_account
from actors.position import PositionActor
from actors.runtime import RestartPolicy
from adapters.paper import PaperEngine, PaperVenue, bybit_like
from benchmarks._harness import Record
from tradebot.clock import WallClock
from tradebot.domain import Instrument, PositionSide
from tradebot.events import MemoryJournal
from tradebot.ids import position_id_for
from tradebot.policies import PositionSettings, TrailingDecision
from tradebot.ports import MarkPrice, OpenRequest

N_SYMBOLS = 250
RATE_PER_S = 5_000
DURATION_S = 4.0
BATCH_S = 0.0004


def _closes() -> list[Decimal]:
    path = resources.files("tradebot") / "data" / "market" / "ETHUSDT.csv.gz"
    with path.open("rb") as raw, gzip.open(raw, "rt") as f:
        return [Decimal(r["close"]) for r in csv.DictReader(f)]


async def _main(record: Record) -> None:
    closes = _closes()
    base = closes[0]
    symbols = [f"B{i:03d}USDT" for i in range(N_SYMBOLS)]
    instruments = {
        s: Instrument(
            s,
            tick_size=Decimal("0.01"),
            qty_step=Decimal("0.001"),
            min_qty=Decimal("0.001"),
            min_notional=Decimal("5"),
        )
        for s in symbols
    }
    t0 = datetime(2025, 5, 20, tzinfo=UTC)
    engine = PaperEngine(bybit_like(), instruments, wallet_usdt=Decimal(10**9), start_ts=t0)
    clock = WallClock()
    venue = PaperVenue(engine, latency_s=0.0)
    journal = MemoryJournal()
    pending: dict[tuple[str, PositionSide], float] = {}
    latencies: list[float] = []
    measuring = {"on": False}

    def observer(actor: PositionActor, mark: MarkPrice, decision: TrailingDecision) -> None:
        key = (actor.symbol, actor.position_side)
        t = pending.pop(key, None)
        if t is not None and measuring["on"]:
            latencies.append(time.perf_counter() - t)

    policy = RestartPolicy()
    settings = PositionSettings()
    async with open_account(
        port=venue,
        journal=journal,
        clock=clock,
        instruments=instruments,
        settings=settings,
        policy=policy,
        sink=lambda e: None,
        on_decision=observer,
    ) as acct:
        market, sup = acct.market, acct.positions
        prices = {}
        for i, s in enumerate(symbols):
            p = (Decimal(100) + i).quantize(Decimal("0.01"))
            prices[s] = p
            venue.push_mark(s, p, clock.now())
            market.set_mark(MarkPrice(s, p, clock.now()))
        setup0 = time.perf_counter()
        for i, s in enumerate(symbols):
            for side in (PositionSide.LONG, PositionSide.SHORT):
                req = OpenRequest(
                    position_id=position_id_for("bench", s, side, t0),
                    symbol=s,
                    position_side=side,
                    qty=Decimal("1.000"),
                    reference_price=prices[s],
                    signal_id=f"b{i}",
                    wave_ts=t0,
                )
                out = await sup.open_position(req)
                assert out.opened, out
        record("positions_open", float(sup.open_count()), "positions")
        record("setup_open_500_positions_s", time.perf_counter() - setup0, "s")
        await trio.sleep(0.2)
        # long-lived setup objects out of the collector's way (as a service would do
        # after start-up); the collector itself stays on
        gc.collect()
        gc.freeze()
        load1 = os.getloadavg()[0]
        n_total = int(RATE_PER_S * DURATION_S)
        per_batch = max(1, int(RATE_PER_S * BATCH_S))
        sent = 0
        idx = 0
        measuring["on"] = True
        start = time.perf_counter()
        next_t = trio.current_time()
        while sent < n_total:
            for _ in range(per_batch):
                s = symbols[idx % N_SYMBOLS]
                step = closes[(idx // N_SYMBOLS) % len(closes)] / base
                p = (Decimal(100 + idx % N_SYMBOLS) * step).quantize(Decimal("0.01"))
                now_dt = clock.now()
                venue.push_mark(s, p, now_dt)
                t = time.perf_counter()
                for side in (PositionSide.LONG, PositionSide.SHORT):
                    pending.setdefault((s, side), t)
                market.set_mark(MarkPrice(s, p, now_dt))
                idx += 1
                sent += 1
            next_t += BATCH_S
            await trio.sleep_until(next_t)  # returns at once when behind schedule
        elapsed = time.perf_counter() - start
        await trio.sleep(0.2)
        measuring["on"] = False
        record("mark_updates_per_s_achieved", sent / elapsed, "updates/s")
        record("decisions_measured", float(len(latencies)), "decisions")
        if latencies:
            lat = sorted(latencies)
            record("tick_to_decision_p50_ms", statistics.median(lat) * 1000, "ms")
            record("tick_to_decision_p99_ms", lat[int(len(lat) * 0.99) - 1] * 1000, "ms")
            record("tick_to_decision_max_ms", lat[-1] * 1000, "ms")
        record("journal_events", float(len(journal.events)), "events")
        record("host_load_avg_1m_at_start", load1, "load")
        record("host_cpus", float(os.cpu_count() or 0), "cpus")


def run(record: Record) -> None:
    trio.run(_main, record)
