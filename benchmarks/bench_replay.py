"""Replay throughput on the full 25-day, 16-symbol data set (``../shared/data/market``).

Figures (mark updates per second of wall time):

* ``source``: :class:`adapters.replay.KlineReplay` alone (gzip CSV → Decimal mark updates,
  merged across symbols).
* ``venue``: source → paper engine (``PaperVenue.push_mark``: stop/limit matching) + the
  invariant monitor on every engine step, under ``MockClock`` (the driver's sleeps included).
* ``end_to_end_<profile>``: ``tradebot paper`` over the whole set, for the bybit and the
  binance venue profile — the full actor tree (journal in an embedded PostgreSQL,
  durable_wait=False; wave processor, signal feed with generated signals, position
  supervisor and actors) — ``ticks_processed / wall_s`` of its report, and its
  ``trades_sha256`` (printed, to compare with the values in the README).
  Target (issue 15): >= 50,000 mark updates/s.

Skipped with a message when the data set is absent. Set ``BENCH_REPLAY_DAYS`` to limit the
end-to-end run to the first N days (default: all).
"""

from __future__ import annotations

import os
import tempfile
import time
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

import trio
import trio.testing

from benchmarks._harness import ROOT, Record

DATA = ROOT.parent / "shared" / "data" / "market" / "binance-usdm-1m-2025-05"


def run(record: Record) -> None:
    if not DATA.is_dir():
        print(f"   skipped: {DATA} not found (the full data set lives outside the project)")
        return
    from adapters.paper import EngineStep, PaperEngine, PaperVenue, bybit_like
    from adapters.replay import KlineReplay
    from tradebot.clock import TrioClock
    from tradebot.invariants import InvariantMonitor

    replay = KlineReplay(DATA)
    print(
        f"   data: {len(replay.symbols)} symbols, {replay.start:%Y-%m-%d %H:%M} → "
        f"{replay.end:%Y-%m-%d %H:%M} UTC"
    )

    t0 = time.perf_counter()
    n = 0
    for step in replay.steps():
        n += len(step.marks)
    dt = time.perf_counter() - t0
    record("source_mark_updates", n, "updates")
    record("source_throughput", n / dt, "updates/s")

    async def venue_only() -> int:
        clock = TrioClock(replay.start)
        engine = PaperEngine(bybit_like(), replay.instruments, start_ts=replay.start)
        venue = PaperVenue(engine, clock=clock)
        monitor = InvariantMonitor()

        def on_step(st: EngineStep) -> None:
            sym = st.symbol
            positions = engine.positions(sym) if sym else engine.positions()
            monitor.observe(st.ts, positions, engine.stops_for, engine.mark_price, symbol=sym)

        def on_quiet_mark(sym: str, mark: Decimal, ts: datetime) -> None:
            monitor.observe_quiet_mark(
                ts, sym, mark, engine.positions, engine.stops_for, engine.mark_price
            )

        engine.add_listener(on_step, on_quiet_mark=on_quiet_mark)
        base = trio.current_time()
        ticks = 0
        for step in replay.steps():
            await trio.sleep_until(base + (step.ts_ms - replay.start_ms) / 1000)
            for sym, price in step.marks:
                venue.push_mark(sym, price, step.ts)
            ticks += len(step.marks)
        return ticks

    t0 = time.perf_counter()
    ticks = trio.run(venue_only, clock=trio.testing.MockClock(autojump_threshold=0))
    record("venue_throughput", ticks / (time.perf_counter() - t0), "updates/s")

    import logging

    from tradebot.cli._paper_run import PaperRunOptions, run_paper

    logging.getLogger("tradebot.journal").setLevel(logging.ERROR)

    days = os.environ.get("BENCH_REPLAY_DAYS", "").strip()
    end = replay.start + timedelta(days=float(days)) if days else None
    for profile in ("bybit", "binance"):
        with tempfile.TemporaryDirectory(prefix="bench-replay-home-") as home:
            opts = PaperRunOptions(
                data_dir=DATA,
                signals="generate",
                end=end,
                home=Path(home),
                progress=False,
                venue_profile=profile,
            )
            result = run_paper(opts)
            rep = result.report
            from adapters.postgres.embedded import stop_embedded_server

            stop_embedded_server(Path(home))
        p = f"end_to_end_{profile}"
        record(f"{p}_mark_updates", rep.ticks_processed, "updates")
        record(f"{p}_sim_days", rep.sim_s / 86_400, "days")
        record(f"{p}_wall", rep.wall_s, "s")
        record(f"{p}_throughput", rep.ticks_processed / rep.wall_s, "updates/s")
        record(f"{p}_events_journaled", rep.events_journaled, "events")
        record(f"{p}_positions_opened", rep.positions_opened, "positions")
        record(f"{p}_invariant_violations", rep.invariant_violations, "violations")
        record(f"{p}_stop_coverage", float(rep.stop_coverage_pct), "%")
        print(f"   {p}_trades_sha256 {rep.trades_sha256}", flush=True)
