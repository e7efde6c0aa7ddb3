"""``tradebot signal-server`` / ``tradebot signals listen`` and the JSON-lines file source.

In-process tests run the CLI coroutines under MockClock over real loopback sockets; one
test runs both commands as real subprocesses.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import partial
from importlib import resources
from pathlib import Path

import trio
import trio.testing

from actors.runtime import run_actor
from actors.signal_feed import GetFeedStatus, SignalFeed
from actors.wave import GetWaveStatus, WaveProcessor
from adapters.paper._instruments import load_instruments
from adapters.signals import FileSignalSource, SignalServer, load_waves
from tests.test_wave_processor import RecordingOpener
from tradebot.cli import build_parser
from tradebot.cli.cmd_signal_server import serve
from tradebot.cli.cmd_signals import listen
from tradebot.clock import TrioClock
from tradebot.events import EventType, MemoryJournal
from tradebot.signals import FeedItem, Signal, Wave, WaveSettings

BUNDLED = Path(str(resources.files("tradebot") / "data" / "signals" / "signals-2025-05-20.jsonl"))

LINES = [
    '{"type":"wave","timestamp":"2025-05-21T11:00:00Z","signals":[{"id":"a1","symbol":"BTCUSDT",'
    '"exchange":"bybit","action":"BUY","score_week":"72.5","score_month":"65.1"},{"id":"a2",'
    '"pair_symbol":"ETHUSDT","exchange_name":"bybit","recommended_action":"SELL",'
    '"score_week":-4}]}',
    '{"type":"signal","timestamp":"2025-05-21T11:15:00Z","id":"b1","symbol":"SOLUSDT",'
    '"exchange":"bybit","action":"BUY","score_week":"50"}',
    '{"type":"signal","timestamp":"2025-05-21T11:15:00Z","id":"b2","symbol":"XRPUSDT",'
    '"exchange":"bybit","action":"SELL","score_week":NaN}',
    "this is not json",
    '{"type":"wave","timestamp":"2025-05-21T11:30:00Z","signals":[]}',
]


def first_wave_ts(path: Path) -> datetime:
    with path.open() as f:
        return datetime.fromisoformat(json.loads(f.readline())["timestamp"])


def write_file(tmp_path: Path, lines: list[str], extra: bytes = b"") -> Path:
    path = tmp_path / "signals.jsonl"
    path.write_bytes(("\n".join(lines) + "\n").encode() + extra)
    return path


def server_args(path: Path, **kw: object) -> argparse.Namespace:
    args = build_parser().parse_args(["signal-server", "--replay", str(path)])
    for k, v in kw.items():
        setattr(args, k, v)
    return args


def test_cli_registers_commands() -> None:
    parser = build_parser()
    args = parser.parse_args(
        ["signals", "listen", "ws://127.0.0.1:1/x", "--json", "--duration", "2"]
    )
    assert args.json and args.duration == 2.0 and callable(args.func)
    args = parser.parse_args(["signals", "generate", "--out", "x.jsonl"])
    assert callable(args.func)
    args = parser.parse_args(["signal-server", "--replay", "f", "--port", "0", "--speed", "60"])
    assert args.speed == 60.0


def test_load_waves_groups_by_timestamp_and_keeps_hostile_lines(tmp_path: Path) -> None:
    waves = load_waves(write_file(tmp_path, LINES, b"\xff\xfe not utf-8\n"))
    assert [len(w) for w in waves] == [1, 3, 2]  # junk lines join the current wave
    assert waves[-1][-1] == b"\xff\xfe not utf-8"  # sent as a binary frame


async def test_signal_server_and_listen_print_every_wave_and_rejection(
    autojump_clock: trio.testing.MockClock, tmp_path: Path, capsys: object
) -> None:
    path = write_file(tmp_path, LINES, b"\xff\xfe not utf-8\n")
    out = io.StringIO()
    with trio.fail_after(600):
        async with trio.open_nursery() as nursery:
            port = await nursery.start(
                partial(
                    serve, server_args(path, interval=5.0, start_delay=2.0, exit_after_last=None)
                )
            )
            await listen(f"ws://127.0.0.1:{port}/signals", out=out, as_json=True, duration_s=30)
            nursery.cancel_scope.cancel()
    rows = [json.loads(line) for line in out.getvalue().splitlines()]
    kinds = [(r["kind"], r.get("status") or r.get("event")) for r in rows]
    assert kinds[0] == ("stream", "stream.connected")
    signals = [r for r in rows if r["kind"] == "signal"]
    assert [
        (r["status"], r.get("signal_id"), r.get("reason", "").split(":")[0]) for r in signals
    ] == [
        ("accepted", "a1", ""),
        ("rejected", "a2", "negative_score"),
        ("accepted", "b1", ""),
        ("rejected", "b2", "score_not_finite"),
        ("rejected", None, "invalid_json"),
        ("rejected", None, "invalid_utf8"),
    ]
    assert signals[0]["score_week"] == "72.5"  # decimals as strings
    waves = [r for r in rows if r["kind"] == "wave"]
    assert [(w["wave_id"], w["accepted"], w["rejected"]) for w in waves] == [
        ("wave-20250521T1100Z", 1, 1),
        ("wave-20250521T1130Z", 0, 0),
    ]


async def test_signal_server_token_required(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    server = SignalServer(load_waves(write_file(tmp_path, LINES[:1])), token="t0k")
    outs = []
    with trio.fail_after(600):
        async with trio.open_nursery() as nursery:
            port = await nursery.start(partial(server.serve))
            for token in (None, "t0k"):
                out = io.StringIO()
                await listen(f"ws://127.0.0.1:{port}/", out=out, duration_s=3, token=token)
                outs.append(out.getvalue())
            nursery.cancel_scope.cancel()
    assert "rejected with HTTP 401" in outs[0] and "ACCEPT" not in outs[0]
    assert "ACCEPT a1 BTCUSDT bybit BUY score_week=72.5 score_month=65.1" in outs[1]
    assert server.refused >= 1 and server.connections == 1


def test_subprocess_signal_server_and_listen(tmp_path: Path) -> None:
    path = write_file(tmp_path, LINES)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tradebot",
            "signal-server",
            "--replay",
            str(path),
            "--interval",
            "0.2",
            "--start-delay",
            "1.5",
            "--exit-after-last",
            "4",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert server.stdout is not None
        url = server.stdout.readline().strip()
        assert url.startswith("ws://127.0.0.1:") and url.endswith("/signals")
        listener = subprocess.run(
            [sys.executable, "-m", "tradebot", "signals", "listen", url, "--duration", "2"],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )
        assert listener.returncode == 0, listener.stderr
        text = listener.stdout
        assert "# connected " + url in text
        assert "ACCEPT a1 BTCUSDT" in text and "REJECT a2 negative_score" in text
        assert "signal wave-20250521T1115Z ACCEPT b1 SOLUSDT" in text
        assert "REJECT invalid_json" in text
        assert server.wait(timeout=60) == 0
    finally:
        server.kill()
        server.wait()
        for stream in (server.stdout, server.stderr):
            if stream is not None:
                stream.close()


async def test_file_source_paced_replay_is_deterministic(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The bundled signals file through FileSignalSource (paced on the virtual clock) →
    SignalFeed → WaveProcessor: every wave processed once at T+5, twice identical."""
    instruments = load_instruments()
    prices = {s: Decimal(1) for s in instruments}
    prices.update(
        {
            "BTCUSDT": Decimal(100_000),
            "ETHUSDT": Decimal(2500),
            "BNBUSDT": Decimal(650),
            "BCHUSDT": Decimal(400),
            "XMRUSDT": Decimal(300),
            "LTCUSDT": Decimal(100),
            "SOLUSDT": Decimal(170),
        }
    )
    start = first_wave_ts(BUNDLED) - timedelta(minutes=1)

    async def run_once() -> tuple[list[tuple[str, str, str]], int, int]:
        journal = MemoryJournal()
        opener = RecordingOpener(latency_s=2.0)
        clock = TrioClock(start)
        source = FileSignalSource(
            BUNDLED, journal=journal, clock=clock, paced=True, arrival_offset_s=30
        )
        async with trio.open_nursery() as nursery:
            waves = await nursery.start(
                run_actor,
                WaveProcessor(
                    settings=WaveSettings(account="paper"),
                    journal=journal,
                    reader=journal,
                    clock=clock,
                    opener=opener,
                    instruments=instruments,
                    price_of=prices.get,
                ),
                "waves",
            )
            feed_actor = SignalFeed(source, waves)
            feed = await nursery.start(run_actor, feed_actor, "feed")
            await feed_actor.exhausted.wait()
            await trio.sleep(10 * 60)
            status = await waves.ask(GetWaveStatus(), timeout_s=5)
            fs = await feed.ask(GetFeedStatus(), timeout_s=5)
            nursery.cancel_scope.cancel()
        decided = [
            (e.data["signal_id"], e.data["decision"], e.data["reason"])
            for e in journal.of_type(EventType.SIGNAL_TAKEN, EventType.SIGNAL_FILTERED)
        ]
        assert len({d[0] for d in decided}) == len(decided) == fs.signals
        completed = journal.of_type(EventType.WAVE_COMPLETED)
        assert len(completed) == fs.waves == 271
        assert len(status.completed) == 96  # the actor keeps the last day in memory
        for e in completed:  # each wave completed at T + 5 min + the opens' latency
            wave_ts = datetime.fromisoformat(str(e.data["wave_ts"]))
            started = [
                s
                for s in journal.of_type(EventType.WAVE_STARTED)
                if s.data["wave_id"] == e.data["wave_id"]
            ]
            assert started[0].ts == wave_ts + timedelta(minutes=5)
        assert not journal.of_type(EventType.SIGNAL_REJECTED, EventType.SIGNAL_LATE)
        return decided, len(opener.requests), sum(e.data["opened"] for e in completed)

    with trio.fail_after(7 * 86400):  # virtual seconds: the file spans ~3 days
        a = await run_once()
        b = await run_once()
    assert a == b
    assert a[1] > 0 and a[2] > 0


async def test_file_source_rejects_bad_lines_with_line_numbers(
    autojump_clock: trio.testing.MockClock,
    tmp_path: Path,
) -> None:
    path = write_file(tmp_path, LINES, b"x" * 2_000_000 + b"\n" + b"\xff\n")
    journal = MemoryJournal()
    got: list[FeedItem] = []

    async def emit(item: FeedItem) -> None:
        got.append(item)

    await FileSignalSource(
        path, journal=journal, clock=TrioClock(datetime(2025, 1, 1, tzinfo=UTC))
    ).run(emit)
    rejected = journal.of_type(EventType.SIGNAL_REJECTED)
    assert [(e.data["line"], e.data["reason"].split(":")[0]) for e in rejected] == [
        (1, "negative_score"),
        (3, "score_not_finite"),
        (4, "invalid_json"),
        (6, "message_too_large"),
        (7, "invalid_utf8"),
    ]
    assert [type(i).__name__ for i in got] == [
        "Wave",
        "Signal",
        "Rejection",
        "Rejection",
        "Wave",
        "Rejection",
        "Rejection",
    ]
    assert isinstance(got[1], Signal) and isinstance(got[0], Wave)
    missing = MemoryJournal()
    await FileSignalSource(
        tmp_path / "nope.jsonl", journal=missing, clock=TrioClock(datetime(2025, 1, 1, tzinfo=UTC))
    ).run(emit)
    assert (
        missing.of_type(EventType.SIGNAL_REJECTED)[0].data["reason"].startswith("file_unreadable")
    )
