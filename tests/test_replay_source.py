"""Replay source: intrabar path, merge order across symbols, funding, window, instruments."""

from __future__ import annotations

import gzip
import itertools
import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from adapters.replay import (
    INTRABAR_OFFSETS_MS,
    FundingTick,
    KlineReplay,
    MarkTick,
    ReplayDataError,
    datetime_to_ms,
    ms_to_datetime,
)

T0 = 1747699200000  # 2025-05-20T00:00:00Z
M = 60_000


def write_klines(d: Path, symbol: str, rows: list[tuple[int, str, str, str, str]]) -> None:
    text = "open_time_ms,open,high,low,close,volume\n" + "".join(
        f"{t},{o},{h},{lo},{c},1.0\n" for t, o, h, lo, c in rows
    )
    with gzip.open(d / f"{symbol}.csv.gz", "wt") as fh:
        fh.write(text)


def write_funding(d: Path, symbol: str, rows: list[tuple[int, str]]) -> None:
    (d / "funding").mkdir(exist_ok=True)
    with gzip.open(d / "funding" / f"{symbol}-8h.csv.gz", "wt") as fh:
        fh.write("time_ms,funding_rate\n" + "".join(f"{t},{r}\n" for t, r in rows))


@pytest.fixture
def two_symbols(tmp_path: Path) -> Path:
    # AAAUSDT: up bar then down bar; BBBUSDT starts one minute later, has gaps at +0 and +3
    # (the tests that use it allow gaps: allow_gaps=True)
    write_klines(
        tmp_path,
        "AAAUSDT",
        [
            (T0, "10.0", "10.5", "9.8", "10.2"),  # up: open, low, high, close
            (T0 + M, "10.2", "10.4", "9.9", "10.0"),  # down: open, high, low, close
            (T0 + 2 * M, "10.0", "10.1", "9.9", "10.0"),  # flat counts as up
            (T0 + 3 * M, "10.0", "10.0", "10.0", "10.0"),
        ],
    )
    write_klines(
        tmp_path,
        "BBBUSDT",
        [
            (T0 - M, "2.00", "2.00", "2.00", "2.00"),
            (T0 + M, "2.00", "2.50", "1.70", "2.40"),
            (T0 + 2 * M, "2.40", "2.60", "2.30", "2.35"),
            (T0 + 4 * M, "2.35", "2.35", "2.35", "2.35"),
        ],
    )
    write_funding(
        tmp_path,
        "AAAUSDT",
        [(T0 - 8 * 3600_000, "0.0001"), (T0 + M + 1_000, "-2.5e-05"), (T0 + M + 20_000, "0.0003")],
    )
    return tmp_path


def test_intrabar_path_order_and_timestamps(two_symbols: Path) -> None:
    r = KlineReplay(two_symbols, allow_gaps=True, symbols=["AAAUSDT"], start=ms_to_datetime(T0))
    marks = [t for t in r.ticks() if isinstance(t, MarkTick)]
    assert [(t.ts_ms - T0, str(t.mark_price)) for t in marks[:8]] == [
        (1_000, "10.0"),
        (16_000, "9.8"),
        (31_000, "10.5"),
        (46_000, "10.2"),  # up bar
        (M + 1_000, "10.2"),
        (M + 16_000, "10.4"),
        (M + 31_000, "9.9"),
        (M + 46_000, "10.0"),  # down
    ]
    assert INTRABAR_OFFSETS_MS == (1_000, 16_000, 31_000, 46_000)
    assert all(isinstance(t.mark_price, Decimal) for t in marks)
    assert len(marks) == 4 * 4  # four candles, four points each, equal prices included


def test_merge_order_window_and_funding(two_symbols: Path) -> None:
    r = KlineReplay(two_symbols, allow_gaps=True)
    # common window: latest first candle (AAA at T0) → earliest last candle + 1 min (AAA +3)
    assert (r.start_ms, r.end_ms) == (T0, T0 + 4 * M)
    ticks = list(r.ticks())
    keys = [(t.ts_ms, 0 if isinstance(t, MarkTick) else 1, t.symbol) for t in ticks]
    assert keys == sorted(keys), "stream is ordered by time, marks before funding, then symbol"
    at = {}
    for t in ticks:
        at.setdefault(t.ts_ms, []).append(t)
    # minute +1: both symbols at every intrabar point, in symbol order
    assert [(t.symbol, str(t.mark_price)) for t in at[T0 + M + 31_000]] == [
        ("AAAUSDT", "9.9"),
        ("BBBUSDT", "2.50"),
    ]
    # BBB has no candle at T0 (inside the window) → absent, not invented
    assert [t.symbol for t in at[T0 + 1_000]] == ["AAAUSDT"]
    # BBB's candle before the window is excluded
    assert all(t.ts_ms >= T0 for t in ticks)
    fund = [t for t in ticks if isinstance(t, FundingTick)]
    assert [(t.ts_ms - T0, t.symbol, t.funding_rate) for t in fund] == [
        (M + 1_000, "AAAUSDT", Decimal("-0.000025")),
        (M + 20_000, "AAAUSDT", Decimal("0.0003")),
    ]
    # funding on the same ms as a mark comes right after that instant's marks
    i = ticks.index(fund[0])
    assert isinstance(ticks[i - 1], MarkTick) and ticks[i - 1].ts_ms == T0 + M + 1_000
    # funding between two mark instants is its own step
    steps = list(r.steps())
    lone = [s for s in steps if not s.marks]
    assert [s.ts_ms - T0 for s in lone] == [M + 20_000]
    assert all(a.ts_ms < b.ts_ms for a, b in itertools.pairwise(steps))


def test_window_bounds_and_no_funding(two_symbols: Path) -> None:
    r = KlineReplay(
        two_symbols,
        start=ms_to_datetime(T0 + M),
        end=ms_to_datetime(T0 + M + 31_000),
        with_funding=False,
    )
    ticks = list(r.ticks())
    assert [(t.ts_ms - T0, t.symbol) for t in ticks] == [
        (M + 1_000, "AAAUSDT"),
        (M + 1_000, "BBBUSDT"),
        (M + 16_000, "AAAUSDT"),
        (M + 16_000, "BBBUSDT"),
    ]
    assert r.duration_s == 31
    # a window starting inside a minute keeps that candle's later points only
    r = KlineReplay(
        two_symbols,
        symbols=["AAAUSDT"],
        start=ms_to_datetime(T0 + M + 20_000),
        end=ms_to_datetime(T0 + 2 * M),
        with_funding=False,
    )
    assert [(t.ts_ms - T0, str(t.mark_price)) for t in r.ticks()] == [
        (M + 31_000, "9.9"),
        (M + 46_000, "10.0"),
    ]
    with pytest.raises(ReplayDataError, match="empty replay window"):
        KlineReplay(
            two_symbols,
            allow_gaps=True,
            start=ms_to_datetime(T0 + 10 * M),
            end=ms_to_datetime(T0 + 11 * M),
        )


def test_instruments_derived_and_from_data_dir(two_symbols: Path) -> None:
    r = KlineReplay(two_symbols, allow_gaps=True)
    assert r.instrument_sources == {"AAAUSDT": "derived", "BBBUSDT": "derived"}
    a = r.instruments["AAAUSDT"]
    # median close 10.0 → tick 10^(1-5), step 10^floor(log10(5/10)) = 0.1, min notional 5
    assert (a.tick_size, a.qty_step, a.min_qty, a.min_notional) == (
        Decimal("0.0001"),
        Decimal("0.1"),
        Decimal("0.1"),
        Decimal(5),
    )
    b = r.instruments["BBBUSDT"]  # median close in window of 2.40, 2.35, 2.35 → 2.35
    assert (b.tick_size, b.qty_step) == (Decimal("0.00001"), Decimal(1))
    assert any("(derived)" in line for line in r.describe_instruments())
    (two_symbols / "instruments.json").write_text(
        json.dumps(
            [
                {
                    "symbol": "AAAUSDT",
                    "tick_size": "0.01",
                    "qty_step": "0.5",
                    "min_qty": "1",
                    "min_notional": "10",
                }
            ]
        )
    )
    r2 = KlineReplay(two_symbols, allow_gaps=True)
    assert r2.instrument_sources == {"AAAUSDT": "data-dir", "BBBUSDT": "derived"}
    assert r2.instruments["AAAUSDT"].tick_size == Decimal("0.01")


def test_bundled_set_uses_bundled_table() -> None:
    r = KlineReplay(end=datetime(2025, 5, 20, 0, 1, tzinfo=UTC))
    assert len(r.symbols) == 16
    assert set(r.instrument_sources.values()) == {"bundled"}
    assert r.instruments["BTCUSDT"].tick_size == Decimal("0.1")
    steps = [s for s in r.steps() if s.marks]
    assert [s.ts_ms - datetime_to_ms(r.start) for s in steps] == list(INTRABAR_OFFSETS_MS)
    assert all(len(s.marks) == 16 for s in steps)


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        ("abc,1,1,1,1,1", "bad row|no integer open_time_ms"),
        (f"{T0},1,0.5,0.9,1,1", "inconsistent candle"),
        (f"{T0 + 1},1,1,1,1,1", "not on a minute"),
        (f"{T0},1,1,1,x,1", "bad row"),
        (f"{T0},0,0,0,0,1", "not positive"),
    ],
)
def test_malformed_rows_are_clear_errors(tmp_path: Path, row: str, reason: str) -> None:
    with gzip.open(tmp_path / "BADUSDT.csv.gz", "wt") as fh:
        fh.write("open_time_ms,open,high,low,close,volume\n" + f"{T0 - M},1,1,1,1,1\n" + row + "\n")
    with pytest.raises(ReplayDataError, match=reason):
        r = KlineReplay(tmp_path, start=ms_to_datetime(T0 - M), end=ms_to_datetime(T0 + 5 * M))
        list(r.ticks())


def test_bad_directory_and_symbols(tmp_path: Path) -> None:
    with pytest.raises(ReplayDataError, match="not a directory"):
        KlineReplay(tmp_path / "nope")
    with pytest.raises(ReplayDataError, match=r"no SYMBOL\.csv\.gz"):
        KlineReplay(tmp_path)
    write_klines(tmp_path, "AAAUSDT", [(T0, "1", "1", "1", "1")])
    with pytest.raises(ReplayDataError, match="no kline file for ZZZUSDT"):
        KlineReplay(tmp_path, symbols=["ZZZUSDT"])
    (tmp_path / "CCCUSDT.csv.gz").write_bytes(b"not gzip")
    with pytest.raises(ReplayDataError):
        KlineReplay(tmp_path)


def test_kept_candles_and_streamed_files_give_the_same_replay(
    two_symbols: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Construction keeps the parsed window (issue 15: parse once); a window beyond
    ``MAX_KEPT_BARS`` is streamed from the files instead — the same steps either way, and a
    kept replay no longer reads the files when iterated."""
    import adapters.replay._source as source

    kept = KlineReplay(two_symbols)
    kept_steps = list(kept.steps())
    monkeypatch.setattr(source, "MAX_KEPT_BARS", 1)
    streamed = KlineReplay(two_symbols)
    assert list(streamed.steps()) == kept_steps
    assert streamed.symbol_closes() == kept.symbol_closes()
    for p in two_symbols.glob("*.csv.gz"):
        p.write_bytes(b"")  # the files are gone: only the kept replay still iterates
    assert list(kept.steps()) == kept_steps
    with pytest.raises(ReplayDataError):
        list(streamed.steps())
