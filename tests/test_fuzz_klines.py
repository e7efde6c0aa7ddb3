"""Fuzzing the kline reader (``adapters.replay.read_bars`` / ``KlineReplay``).

Documented contract: a kline file either yields validated candles or raises
``ReplayDataError`` (with the file and line) — no other exception, whatever the bytes.
Nothing accepted is lost: every valid row before the first bad one is yielded, exactly.
"""

from __future__ import annotations

import gzip
from decimal import Decimal
from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from adapters.replay import KlineReplay, ReplayDataError, read_bars
from tests._fuzz_support import fuzz

T0 = 1747699200000
M = 60_000
HEADER = "open_time_ms,open,high,low,close,volume\n"

junk_cell = st.one_of(
    st.sampled_from(
        ["NaN", "sNaN", "-Infinity", "Infinity", "1e400", "-1", "0", "", "abc", "1e-20"]
    ),
    st.text(max_size=12),
    st.integers().map(str),
    st.decimals(allow_nan=True, allow_infinity=True).map(str),
)


@st.composite
def kline_rows(draw: Any) -> tuple[list[str], list[tuple[int, Decimal, Decimal, Decimal, Decimal]]]:
    """(lines, the valid-by-construction prefix as values)."""
    n = draw(st.integers(min_value=0, max_value=40))
    price = Decimal(draw(st.sampled_from(["0.0001", "0.5", "17.25", "2500.5", "105000.1"])))
    lines: list[str] = []
    valid: list[tuple[int, Decimal, Decimal, Decimal, Decimal]] = []
    t = T0
    prefix_ok = True
    for _ in range(n):
        # a small, consistent candle around the previous close (moves well under 50 %)
        moves = draw(st.lists(st.integers(min_value=-20, max_value=20), min_size=2, max_size=2))
        o = price
        c = (price * (1 + Decimal(moves[0]) / 1000)).quantize(price)
        h = max(o, c) * (1 + Decimal(abs(moves[1])) / 1000)
        lo = min(o, c) * (1 - Decimal(abs(moves[1])) / 1000)
        h, lo = h.quantize(price), lo.quantize(price)
        cells = [str(t), str(o), str(h), str(lo), str(c), "1.0"]
        mutation = draw(st.integers(min_value=0, max_value=12))
        bad = False
        if mutation == 0:
            k = draw(st.integers(min_value=0, max_value=5))
            cells[k] = draw(junk_cell)
            bad = True
        elif mutation == 1:
            cells = draw(st.lists(junk_cell, max_size=8))
            bad = True
        elif mutation == 2 and valid:
            cells[0] = str(t - M * draw(st.integers(min_value=1, max_value=2)))  # dup / back
            bad = True
        elif mutation == 3:
            cells[0] = str(t + M * draw(st.integers(min_value=1, max_value=5)))  # gap
            bad = True
        elif mutation == 4:
            cells[2], cells[3] = cells[3], cells[2]  # high <-> low
            bad = h != lo
        line = ",".join(cells).replace("\n", " ").replace("\r", " ")
        lines.append(line + "\n")
        if bad:
            prefix_ok = False
        if prefix_ok:
            valid.append((t, o, h, lo, c))
            price = c
            t += M
        elif not bad:
            t += M
    return lines, valid


def _write(d: Path, lines: list[str], gz: bool) -> Path:
    path = d / ("FUZZUSDT.csv.gz" if gz else "FUZZUSDT.csv")
    text = HEADER + "".join(lines)
    if gz:
        with gzip.open(path, "wt", encoding="ascii", errors="replace") as fh:
            fh.write(text)
    else:
        path.write_bytes(text.encode("utf-8", "replace"))
    return path


@fuzz
@given(kline_rows(), st.booleans())
def test_reader_yields_the_valid_prefix_or_a_replay_data_error(
    tmp_path_factory: Any, case: Any, gz: bool
) -> None:
    lines, valid = case
    d = tmp_path_factory.mktemp("k")
    path = _write(d, lines, gz)
    got = []
    error: ReplayDataError | None = None
    try:
        for bar in read_bars(path, "FUZZUSDT"):
            got.append((bar.open_time_ms, bar.open, bar.high, bar.low, bar.close))
    except ReplayDataError as exc:  # the only exception allowed
        error = exc
        assert str(exc).startswith(str(path)), str(exc)
    assert got[: len(valid)] == valid  # nothing accepted is lost
    if len(valid) == len(lines):
        assert error is None and got == valid
    # the replay built on the same file: ReplayDataError or a working replay
    try:
        replay = KlineReplay(d, with_funding=False)
    except ReplayDataError:
        return
    assert error is None or len(got) == 0 or replay.symbols == ("FUZZUSDT",)
    ticks = sum(len(s.marks) for s in replay.steps())
    assert ticks <= 4 * len(got) + 4


@fuzz
@given(st.binary(max_size=600))
def test_arbitrary_bytes_are_a_replay_data_error_or_candles(
    tmp_path_factory: Any, raw: bytes
) -> None:
    d = tmp_path_factory.mktemp("b")
    for name, data in (("RAWUSDT.csv", raw), ("HDRUSDT.csv", HEADER.encode() + raw)):
        (d / name).write_bytes(data)
        try:
            list(read_bars(d / name, name[:7]))
        except ReplayDataError:
            pass
        (d / name).unlink()
