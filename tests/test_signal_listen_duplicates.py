"""``tradebot signals listen`` reports what the bot would decide, duplicates included
(issue 17 item 7): a wave re-sent three times is accepted once and then shown as
duplicate deliveries; a signal id reused in a later wave is reported with the reason.
Real loopback WebSocket (the signal server), under MockClock."""

from __future__ import annotations

import argparse
import io
import json
from functools import partial
from pathlib import Path

import trio
import trio.testing

from tradebot.cli import build_parser
from tradebot.cli.cmd_signal_server import serve
from tradebot.cli.cmd_signals import listen

WAVE = (
    '{"type":"wave","timestamp":"2025-05-21T11:00:00Z","signals":['
    '{"id":"a1","symbol":"BTCUSDT","exchange":"bybit","action":"BUY","score_week":"72.5"},'
    '{"id":"a2","symbol":"ETHUSDT","exchange":"bybit","action":"SELL","score_week":"60"}]}'
)
LATER = (
    '{"type":"wave","timestamp":"2025-05-21T11:15:00Z","signals":['
    '{"id":"a1","symbol":"SOLUSDT","exchange":"bybit","action":"BUY","score_week":"50"},'
    '{"id":"b1","symbol":"XRPUSDT","exchange":"bybit","action":"BUY","score_week":"55"}]}'
)
SINGLE_AGAIN = (
    '{"type":"signal","timestamp":"2025-05-21T11:15:00Z","id":"b1","symbol":"XRPUSDT",'
    '"exchange":"bybit","action":"BUY","score_week":"55"}'
)


def _args(path: Path) -> argparse.Namespace:
    args = build_parser().parse_args(["signal-server", "--replay", str(path)])
    args.interval, args.start_delay, args.exit_after_last = 5.0, 2.0, None
    return args


async def _listen(tmp_path: Path, as_json: bool) -> str:
    path = tmp_path / "signals.jsonl"
    path.write_text("\n".join([WAVE, WAVE, WAVE, LATER, SINGLE_AGAIN]) + "\n")
    out = io.StringIO()
    with trio.fail_after(600):
        async with trio.open_nursery() as nursery:
            port = await nursery.start(partial(serve, _args(path)))
            await listen(f"ws://127.0.0.1:{port}/signals", out=out, as_json=as_json, duration_s=30)
            nursery.cancel_scope.cancel()
    return out.getvalue()


async def test_resent_wave_and_reused_signal_id_are_reported_as_duplicates(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    rows = [json.loads(x) for x in (await _listen(tmp_path, True)).splitlines()]
    waves = [
        (r["wave_id"], r["accepted"], r["duplicates"], r["delivery"])
        for r in rows
        if r["kind"] == "wave"
    ]
    assert waves == [
        ("wave-20250521T1100Z", 2, 0, 1),
        ("wave-20250521T1100Z", 0, 2, 2),
        ("wave-20250521T1100Z", 0, 2, 3),
        ("wave-20250521T1115Z", 1, 1, 1),
    ]
    signals = [
        (r["status"], r["signal_id"], r.get("reason", "").split(":")[0])
        for r in rows
        if r["kind"] == "signal"
    ]
    assert signals == [
        ("accepted", "a1", ""),
        ("accepted", "a2", ""),
        ("duplicate", "a1", "duplicate_delivery"),
        ("duplicate", "a2", "duplicate_delivery"),
        ("duplicate", "a1", "duplicate_delivery"),
        ("duplicate", "a2", "duplicate_delivery"),
        ("accepted", "b1", ""),
        ("duplicate", "a1", "signal_id_reused"),
        ("duplicate", "b1", "duplicate_delivery"),
    ]
    reused = next(r for r in rows if r.get("reason", "").startswith("signal_id_reused"))
    assert "first used in wave-20250521T1100Z" in reused["reason"]
    assert reused["symbol"] == "SOLUSDT"


async def test_text_output_names_the_duplicates(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    text = await _listen(tmp_path, False)
    assert text.count("ACCEPT a1 ") == 1
    assert "accepted=0 rejected=0 duplicates=2  (re-sent: delivery 3)" in text
    assert "DUPLICATE a1 duplicate_delivery:already received in wave-20250521T1100Z" in text
    assert "DUPLICATE a1 signal_id_reused:first used in wave-20250521T1100Z" in text
    assert "signal wave-20250521T1115Z DUPLICATE b1 duplicate_delivery" in text
