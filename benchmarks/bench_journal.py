"""Journal benchmark: group-commit throughput and durable latency on a real PostgreSQL.

Runs against ``$TRADEBOT_TEST_DSN`` when set, else a private embedded server (default
durability settings: fsync on) in a temporary directory. Figures:

- fire-and-forget events/s: 50 tasks ``emit`` 100,000 events; time until all are committed.
- durable events/s: 50 tasks each ``await emit_durable`` in a loop for 3 s.
- group-commit latency at 1,000 events/s: one event every ms (in 10-event bursts every
  10 ms), each in its own task awaiting ``emit_durable``; p50/p99/max of the wait.
- the same with the database unreachable (spool file, fsync per batch).

Targets (issue 2): >= 20,000 events/s fire-and-forget; durable p99 < 20 ms at 1,000 events/s.
"""

from __future__ import annotations

import shutil
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import trio
import trio.lowlevel

from adapters.postgres.embedded import (
    _embedded_postgres,
    dsn_for_database,
    ensure_database,
    start_embedded_server_object,
)
from adapters.postgres.journal import open_postgres_journal
from adapters.postgres.migrations import migrate
from benchmarks._harness import Record
from tradebot.events import Event, TrailingUpdated


def _event(k: int, i: int) -> Event:
    return Event.of(
        TrailingUpdated(
            mark_price=Decimal("65001.5"),
            water_mark=Decimal("65001.5"),
            stop_price=Decimal("64123.45"),
            update_count=i,
            reason="improved",
        ),
        datetime.now(UTC),
        position_id=f"pos{k}",
        symbol="BTCUSDT",
    )


async def _fire_and_forget(dsn: str, spool: Path, n: int, tasks: int) -> float:
    async with open_postgres_journal(dsn, spool_dir=spool) as journal:
        t0 = time.perf_counter()

        async def producer(k: int) -> None:
            for i in range(n // tasks):
                journal.emit(_event(k, i))
                if i % 100 == 0:
                    await trio.lowlevel.checkpoint()

        async with trio.open_nursery() as nursery:
            for k in range(tasks):
                nursery.start_soon(producer, k)
        await journal.flush()
        return n / (time.perf_counter() - t0)


async def _durable(dsn: str, spool: Path, seconds: float, tasks: int) -> float:
    count = 0
    async with open_postgres_journal(dsn, spool_dir=spool) as journal:
        deadline = time.perf_counter() + seconds

        async def producer(k: int) -> None:
            nonlocal count
            i = 0
            while time.perf_counter() < deadline:
                await journal.emit_durable(_event(k, i))
                i += 1
                count += 1

        t0 = time.perf_counter()
        async with trio.open_nursery() as nursery:
            for k in range(tasks):
                nursery.start_soon(producer, k)
        return count / (time.perf_counter() - t0)


async def _latency(dsn: str, spool: Path, rate_per_s: int, seconds: float) -> list[float]:
    latencies: list[float] = []
    async with open_postgres_journal(dsn, spool_dir=spool) as journal:

        async def one(i: int) -> None:
            t = time.perf_counter()
            await journal.emit_durable(_event(0, i))
            latencies.append((time.perf_counter() - t) * 1000)

        burst = max(1, rate_per_s // 100)
        async with trio.open_nursery() as nursery:
            start = trio.current_time()
            for tick in range(int(seconds * 100)):
                await trio.sleep_until(start + tick / 100)
                for j in range(burst):
                    nursery.start_soon(one, tick * burst + j)
    return latencies


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run(record: Record) -> None:
    import os

    root: Path | None = None
    server: Any = None
    env_dsn = os.environ.get("TRADEBOT_TEST_DSN", "").strip()
    spool = Path(tempfile.mkdtemp(prefix="tradebot-bench-spool-"))
    try:
        if env_dsn:
            admin = env_dsn
            name = f"tradebot_bench_{uuid.uuid4().hex[:8]}"
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{name}"')
            dsn = psycopg.conninfo.make_conninfo(admin, dbname=name)
        else:
            root = Path(tempfile.mkdtemp(prefix="tradebot-bench-pg-"))
            server = start_embedded_server_object(root / "pgdata")
            admin = str(server.get_uri())
            ensure_database(admin, "tradebot")
            dsn = dsn_for_database(admin, "tradebot")
        migrate(dsn)

        eps = trio.run(_fire_and_forget, dsn, spool, 100_000, 50)
        record("fire_and_forget_events_per_s (50 tasks, 100k events)", eps, "events/s")
        dps = trio.run(_durable, dsn, spool, 3.0, 50)
        record("durable_events_per_s (50 tasks awaiting commit)", dps, "events/s")
        lat = trio.run(_latency, dsn, spool, 1000, 5.0)
        record("durable_latency_p50_ms @1000 events/s", statistics.median(lat), "ms")
        record("durable_latency_p99_ms @1000 events/s", _pct(lat, 0.99), "ms")
        record("durable_latency_max_ms @1000 events/s", max(lat), "ms")
        # database unreachable: everything goes to the fsynced spool file
        import logging

        logging.getLogger("tradebot.journal").setLevel(logging.CRITICAL)
        down = "postgresql://postgres@127.0.0.1:1/down"
        down_spool = spool / "down"
        sps = trio.run(_fire_and_forget, down, down_spool, 100_000, 50)
        record("spool_events_per_s (DB down, 50 tasks, 100k)", sps, "events/s")
        lat = trio.run(_latency, down, down_spool, 1000, 3.0)
        record("spool_durable_latency_p99_ms @1000 events/s", _pct(lat, 0.99), "ms")
    finally:
        shutil.rmtree(spool, ignore_errors=True)
        if server is not None and root is not None:
            ep = _embedded_postgres()
            try:
                ep._commands.pg_ctl(
                    ["-m", "immediate", "-w", "stop"], pgdata=server.pgdata, user=server.system_user
                )
            except Exception:
                pass
            shutil.rmtree(root, ignore_errors=True)
