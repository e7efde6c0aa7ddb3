"""``tradebot paper --speed realtime --signals ws://…`` against a loopback signal server.

A live-looking run: the bot's clock runs at wall speed from the window start, the signal
service publishes a wave over a real WebSocket on 127.0.0.1, the wave processor handles it
at its processing time (wave + 5 min) and positions open on the paper venue.
"""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import trio

from adapters.signals import SignalServer, load_waves
from tradebot import signalgen
from tradebot.cli import main


@pytest.fixture
def signal_server(tmp_path: Path) -> Iterator[int]:
    """A SignalServer in its own thread/trio loop publishing the bundled 04:15 wave."""
    lines = signalgen.bundled_signals_path().read_text().splitlines()
    wave = [x for x in lines if json.loads(x)["timestamp"] == "2025-05-20T04:15:00Z"]
    assert wave
    path = tmp_path / "wave.jsonl"
    path.write_text("\n".join(wave) + "\n")
    ready: queue.Queue[tuple[int, trio.lowlevel.TrioToken, trio.CancelScope]] = queue.Queue()

    async def serve() -> None:
        server = SignalServer(load_waves(path), interval_s=0.1)
        async with trio.open_nursery() as nursery:
            port = await nursery.start(server.serve)
            ready.put((port, trio.lowlevel.current_trio_token(), nursery.cancel_scope))

    thread = threading.Thread(target=trio.run, args=(serve,), daemon=True)
    thread.start()
    port, token, scope = ready.get(timeout=30)
    try:
        yield port
    finally:
        trio.from_thread.run_sync(scope.cancel, trio_token=token)
        thread.join(timeout=30)


@pytest.mark.slow
def test_realtime_paper_run_with_websocket_signals(
    signal_server: int, fresh_db_dsn: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report_path = tmp_path / "report.json"
    # 04:19:45 → 04:20:01: the mark at 04:19:46 prices the wave, processed at 04:20:00
    rc = main(
        [
            "paper",
            "--speed",
            "realtime",
            "--signals",
            f"ws://127.0.0.1:{signal_server}/signals",
            "--from",
            "2025-05-20T04:19:45Z",
            "--to",
            "2025-05-20T04:20:01Z",
            "--dsn",
            fresh_db_dsn,
            "--report-json",
            str(report_path),
            "--no-progress",
        ]
    )
    out = capsys.readouterr().out
    assert rc == 0, out
    report = json.loads(report_path.read_text())
    assert report["positions_opened"] >= 1
    assert report["invariant_violations"] == 0 and report["stop_coverage_pct"] == "100.00"
    assert report["details"]["speed"] == "1x"
    assert report["sim_s"] == 16
    with psycopg.connect(fresh_db_dsn) as conn:
        types = {t for (t,) in conn.execute("SELECT DISTINCT type FROM events")}
        waves = conn.execute(
            "SELECT data->>'wave_id', (data->>'taken')::int FROM events "
            "WHERE type = 'wave.completed'"
        ).fetchall()
    assert "stream.connected" in types
    assert waves == [("wave-20250520T0415Z", report["positions_opened"])]


def test_websocket_signals_need_a_real_clock(
    fresh_db_dsn: str, capsys: pytest.CaptureFixture[str]
) -> None:
    rc = main(
        ["paper", "--signals", "ws://127.0.0.1:9/signals", "--dsn", fresh_db_dsn, "--no-progress"]
    )
    assert rc == 2
    assert "needs --speed realtime" in capsys.readouterr().err
