"""Duplicate delivery after a restart, with the real PostgreSQL journal and a real
WebSocket signal server: the restarted bot is handed the same wave again (the server
replays its latest wave on subscribe) and does not process it a second time.
"""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import psycopg
import trio

from actors.runtime import run_actor
from actors.signal_feed import SignalFeed
from actors.wave import GetWaveStatus, WaveProcessor, WaveStatus
from adapters.postgres.journal import open_postgres_journal
from adapters.signals import SignalServer, WebSocketSignalSource
from tests.test_wave_processor import INSTRUMENTS, PRICES, SYMBOLS, RecordingOpener
from tradebot.clock import TrioClock
from tradebot.signals import FeedSettings, WaveSettings

T0 = datetime(2025, 5, 21, 11, 0, tzinfo=UTC)
WAVE = json.dumps(
    {
        "type": "wave",
        "timestamp": "2025-05-21T11:00:00Z",
        "signals": [
            {
                "id": f"p{i}",
                "symbol": SYMBOLS[i],
                "exchange": "bybit",
                "action": "BUY",
                "score_week": f"{90 - i}",
                "score_month": "50",
            }
            for i in range(8)
        ],
    }
)


async def run_bot(
    dsn: str, spool: Path, url: str, opener: RecordingOpener, until: str
) -> WaveStatus:
    """One bot life: journal, WaveProcessor, SignalFeed on the WebSocket source."""
    # Real time: the wave is due 0.5 s after start (T + 5 min on the bot's clock).
    clock = TrioClock(T0 + timedelta(minutes=5) - timedelta(seconds=0.5))
    async with (
        open_postgres_journal(dsn, spool_dir=spool) as journal,
        trio.open_nursery() as nursery,
    ):
        waves = await nursery.start(
            run_actor,
            WaveProcessor(
                settings=WaveSettings(venues=frozenset({"bybit"})),
                journal=journal,
                reader=journal,
                clock=clock,
                opener=opener,
                instruments=INSTRUMENTS,
                price_of=PRICES.get,
            ),
            "waves",
        )
        source = WebSocketSignalSource(
            FeedSettings(url=url), journal=journal, clock=clock, rng=random.Random(3)
        )
        await nursery.start(run_actor, SignalFeed(source, waves), "feed")
        while True:
            status: WaveStatus = await waves.ask(GetWaveStatus(), timeout_s=5)
            if (until == "completed" and status.completed) or (
                until == "duplicate" and status.duplicate_deliveries
            ):
                break
            await trio.sleep(0.05)
        await journal.flush()
        nursery.cancel_scope.cancel()
    return status


async def test_duplicate_delivery_after_restart_not_processed_again_postgres(
    fresh_db_dsn: str, tmp_path: Path
) -> None:
    server = SignalServer([[WAVE]], interval_s=0.1)
    first, second = RecordingOpener(latency_s=0.01), RecordingOpener(latency_s=0.01)
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            port = await nursery.start(server.serve)
            url = f"ws://127.0.0.1:{port}/signals"
            status = await run_bot(fresh_db_dsn, tmp_path / "spool1", url, first, "completed")
            assert status.completed[0].opened == 5
            await run_bot(fresh_db_dsn, tmp_path / "spool2", url, second, "duplicate")
            nursery.cancel_scope.cancel()
    assert len(first.requests) == 5 and second.requests == []
    with psycopg.connect(fresh_db_dsn) as conn:
        waves = conn.execute(
            "SELECT wave_id, signals_received, signals_taken, signals_filtered FROM waves"
        ).fetchall()
        decided = conn.execute(
            "SELECT signal_id, decision::text, reason FROM signals ORDER BY signal_id"
        ).fetchall()
        completed = conn.execute(
            "SELECT count(*) FROM events WHERE type = 'wave.completed'"
        ).fetchone()
        duplicates = conn.execute(
            "SELECT count(*) FROM events WHERE type = 'wave.duplicate'"
            " AND data->>'status' = 'already_processed'"
        ).fetchone()
    assert waves == [("wave-20250521T1100Z", 8, 5, 3)]
    assert completed == (1,)
    assert duplicates == (1,)
    assert [(s, d) for s, d, _ in decided] == [
        ("p0", "taken"),
        ("p1", "taken"),
        ("p2", "taken"),
        ("p3", "taken"),
        ("p4", "taken"),
        ("p5", "filtered"),
        ("p6", "filtered"),
        ("p7", "filtered"),
    ]
    assert [r for _, _, r in decided[5:]] == [
        "max_trades_per_wave",
        "max_trades_per_wave",
        "below_reserve_cutoff",
    ]


async def test_reused_signal_id_refused_after_restart_from_the_postgres_journal(
    fresh_db_dsn: str, tmp_path: Path
) -> None:
    """Bot life 1 takes signal r1 in wave W; bot life 2 (a new journal: preload from the
    database) is sent r1 again in wave W+15 and refuses it ``duplicate_signal_id``. Waves
    are an hour before the wall clock, inside the journal's 24 h signal window."""
    from actors.wave import Deliver
    from tradebot.domain import PositionSide
    from tradebot.signals import Signal, Wave

    now = datetime.now(UTC)
    w = now.replace(minute=now.minute // 15 * 15, second=0, microsecond=0) - timedelta(hours=1)
    w2 = w + timedelta(minutes=15)

    def sig(sid: str, i: int, ts: datetime) -> Signal:
        return Signal(sid, SYMBOLS[i], "bybit", PositionSide.LONG, Decimal(80), None, ts)

    async def life(spool: str, wave: Wave, opener: RecordingOpener) -> None:
        clock = TrioClock(wave.wave_ts + timedelta(minutes=5) - timedelta(seconds=0.5))
        async with (
            open_postgres_journal(fresh_db_dsn, spool_dir=tmp_path / spool) as journal,
            trio.open_nursery() as nursery,
        ):
            waves = await nursery.start(
                run_actor,
                WaveProcessor(
                    settings=WaveSettings(venues=frozenset({"bybit"})),
                    journal=journal,
                    reader=journal,
                    clock=clock,
                    opener=opener,
                    instruments=INSTRUMENTS,
                    price_of=PRICES.get,
                ),
                "waves",
            )
            await waves.send(Deliver(wave))
            while True:
                status: WaveStatus = await waves.ask(GetWaveStatus(), timeout_s=5)
                if status.completed:
                    break
                await trio.sleep(0.05)
            await journal.flush()
            nursery.cancel_scope.cancel()

    first, second = RecordingOpener(latency_s=0.01), RecordingOpener(latency_s=0.01)
    with trio.fail_after(60):
        await life("spool1", Wave(w, (sig("r1", 1, w), sig("r2", 2, w))), first)
        await life("spool2", Wave(w2, (sig("r1", 3, w2), sig("r3", 4, w2))), second)
    assert sorted(r.signal_id for _, r in first.requests) == ["r1", "r2"]
    assert [r.signal_id for _, r in second.requests] == ["r3"]
    with psycopg.connect(fresh_db_dsn) as conn:
        rows = conn.execute(
            "SELECT signal_id, wave_id, decision::text, reason, symbol FROM signals"
            " WHERE decision = 'rejected'"
        ).fetchall()
    first_wave = f"wave-{w:%Y%m%dT%H%MZ}"
    assert rows == [
        (
            "r1",
            f"wave-{w2:%Y%m%dT%H%MZ}",
            "rejected",
            f"duplicate_signal_id:first seen in {first_wave}",
            SYMBOLS[3],
        )
    ]
