"""Signal generator (stand-in for the signal service): rule, determinism, no look-ahead, CLI."""

from __future__ import annotations

import argparse
import gzip
import json
from decimal import Decimal
from pathlib import Path

import pytest

from tradebot import signalgen

T0 = 1747699200000  # 2025-05-20T00:00:00Z
M = 60_000


def write_closes(d: Path, symbol: str, closes: list[str]) -> None:
    rows = "".join(f"{T0 + i * M},{c},{c},{c},{c},1\n" for i, c in enumerate(closes))
    with gzip.open(d / f"{symbol}.csv.gz", "wt") as fh:
        fh.write("open_time_ms,open,high,low,close,volume\n" + rows)


def test_rule_on_hand_made_prices(tmp_path: Path) -> None:
    n = 300  # 5 h of candles
    # UPUSDT: 100 for 4 h then a step to 103 over the last hour → m240 = m60 = +3 %
    write_closes(tmp_path, "UPUSDT", ["100"] * 240 + ["103"] * (n - 240))
    # DNUSDT: falls 0.3 % in the last hour, flat before → both negative
    write_closes(tmp_path, "DNUSDT", ["50"] * 240 + ["49.85"] * (n - 240))
    # MIXUSDT: 4 h up, last hour down → signs disagree → never a signal
    write_closes(tmp_path, "MIXUSDT", ["10"] * 100 + ["12"] * 140 + ["11"] * (n - 240))
    waves = signalgen.generate(tmp_path, exchange="binance")
    first = waves[0]
    # the candle opening at 04:14 closes at 04:15: earliest boundary with 4 h of closes
    assert first["timestamp"] == "2025-05-20T04:15:00Z"
    by_sym = {s["symbol"]: s for s in first["signals"]}
    assert set(by_sym) == {"UPUSDT", "DNUSDT"}
    up = by_sym["UPUSDT"]
    assert (up["action"], up["score_week"], up["score_month"]) == ("BUY", "100.0", "100.0")
    dn = by_sym["DNUSDT"]
    # m240 = m60 = -0.3 %: week = 0.3/3*100 = 10.0, month = 0.3/1.5*100 = 20.0
    assert (dn["action"], dn["score_week"], dn["score_month"]) == ("SELL", "10.0", "20.0")
    assert [s["symbol"] for s in first["signals"]] == ["UPUSDT", "DNUSDT"]  # ranked
    assert up == {
        "id": "gen-202505200415-UPUSDT",
        "symbol": "UPUSDT",
        "exchange": "binance",
        "action": "BUY",
        "score_week": "100.0",
        "score_month": "100.0",
    }
    # the step closed at 04:01: from 05:15 on c(T - 60 min) = 103 → 1 h momentum 0, no signal
    assert any(
        s["symbol"] == "UPUSDT"
        for w in waves
        if w["timestamp"] == "2025-05-20T05:00:00Z"
        for s in w["signals"]
    )
    assert all(
        s["symbol"] != "UPUSDT"
        for w in waves
        if w["timestamp"] >= "2025-05-20T05:15"
        for s in w["signals"]
    )
    assert all(s["symbol"] != "MIXUSDT" for w in waves for s in w["signals"])
    # scores are decimal strings in [0, 100]
    for w in waves:
        for s in w["signals"]:
            assert Decimal(0) <= Decimal(s["score_week"]) <= 100


def test_deterministic_and_no_look_ahead(tmp_path: Path) -> None:
    a = signalgen.generate()
    b = signalgen.generate()
    assert a == b and len(a) > 200
    assert all(1 <= len(w["signals"]) <= 6 for w in a)
    # changing prices after T never changes the wave at T
    closes = [str(100 + (i % 37) - (i % 11)) for i in range(600)]
    write_closes(tmp_path, "AAAUSDT", closes)
    before = signalgen.generate(tmp_path)
    write_closes(tmp_path, "AAAUSDT", closes[:400] + ["1000"] * 200)
    after = signalgen.generate(tmp_path)
    cut = "2025-05-20T06:40:00Z"  # candle 400 closes at 06:41
    assert [w for w in before if w["timestamp"] <= cut] == [
        w for w in after if w["timestamp"] <= cut
    ]


def test_bundled_file_is_generator_output(tmp_path: Path) -> None:
    path = signalgen.bundled_signals_path()
    lines = path.read_text().splitlines()
    assert [json.loads(x) for x in lines] == signalgen.generate()
    # and it is what the documented command writes, byte for byte
    from tradebot.cli import main

    out = tmp_path / "s.jsonl"
    assert main(["signals", "generate", "--out", str(out)]) == 0
    assert out.read_bytes() == path.read_bytes()


def test_cli_writes_file_and_reports_bad_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    parser = argparse.ArgumentParser()
    signalgen.add_arguments(parser)
    out = tmp_path / "s.jsonl"
    args = parser.parse_args(
        [
            "--out",
            str(out),
            "--from",
            "2025-05-21T00:00:00Z",
            "--to",
            "2025-05-21T06:00Z",
            "--symbols",
            "BTCUSDT,ETHUSDT",
        ]
    )
    assert signalgen.run(args) == 0
    waves = [json.loads(x) for x in out.read_text().splitlines()]
    assert waves and waves[0]["timestamp"] >= "2025-05-21T00:00:00Z"
    assert waves[-1]["timestamp"] <= "2025-05-21T06:00:00Z"
    assert {s["symbol"] for w in waves for s in w["signals"]} <= {"BTCUSDT", "ETHUSDT"}
    assert signalgen.run(parser.parse_args(["--data", str(tmp_path / "none")])) == 2
    assert "not a directory" in capsys.readouterr().err
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "XUSDT.csv.gz").write_bytes(
        gzip.compress(b"open_time_ms,open,high,low,close,volume\n1,2,3\n")
    )
    assert signalgen.run(parser.parse_args(["--data", str(bad)])) == 2
    assert "bad row" in capsys.readouterr().err
    with pytest.raises(ValueError, match="per_wave"):
        signalgen.generate(per_wave=0)


@pytest.mark.parametrize(
    "start,end",
    [
        (None, None),
        ("2025-05-20T06:07:00+00:00", "2025-05-21T12:00:00+00:00"),  # history before it
        ("2025-05-21T00:00:30+00:00", None),  # a window starting inside a minute
    ],
)
def test_waves_from_the_replays_candles_are_the_waves_from_the_files(
    start: str | None, end: str | None
) -> None:
    # tradebot paper --signals generate hands the generator the kept candles and the 4 h
    # before the window instead of the files: the very same waves
    from datetime import datetime, timedelta

    from adapters.replay import KlineReplay, datetime_to_ms

    replay = KlineReplay(
        start=datetime.fromisoformat(start) if start else None,
        end=datetime.fromisoformat(end) if end else None,
    )
    first_wave = replay.start - timedelta(minutes=15)
    known = replay.signal_closes(datetime_to_ms(first_wave) - signalgen.LONG_LOOKBACK_MS)
    assert known is not None
    args = {"start": first_wave, "end": replay.end, "symbols": replay.symbols}
    from_files = signalgen.generate(replay.data_dir, **args)  # type: ignore[arg-type]
    given = signalgen.generate(
        replay.data_dir,
        closes=known[0],
        close_span_ms=known[1],
        **args,  # type: ignore[arg-type]
    )
    assert given == from_files and len(given) > 20


def test_a_bad_history_row_before_the_window_is_named(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from adapters.replay import KlineReplay

    write_closes(tmp_path, "UPUSDT", ["100"] * 600)
    with gzip.open(tmp_path / "UPUSDT.csv.gz", "rt") as fh:
        raw = fh.read().splitlines()
    raw[100] = f"{T0 + 99 * M},100,100,100,1x0,1"  # line 101: its close is not a number
    with gzip.open(tmp_path / "UPUSDT.csv.gz", "wt") as fh:
        fh.write("\n".join(raw) + "\n")
    replay = KlineReplay(tmp_path, start=datetime(2025, 5, 20, 5, tzinfo=UTC))
    with pytest.raises(ValueError, match=r"UPUSDT.csv.gz:101: bad row"):
        replay.signal_closes(T0)
