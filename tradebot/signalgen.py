"""Signal generator: a deterministic stand-in for the external signal service.

The real bot receives scored signals from an external service over a WebSocket
(docs/ARCHITECTURE.md §9). For paper trading and replay there is no such service for past
dates, so this module makes waves of signals from the replayed prices themselves, with a
simple documented rule. It is **not** a trading strategy and makes no claim of edge; it
exists so that the whole actor tree (wave processor → position supervisor → positions)
runs on real price history with realistic signal traffic.

Scoring rule (at every 15-minute wave boundary ``T``, using only candles that closed at or
before ``T``, so there is no look-ahead):

* ``c(T)`` = close of the candle that closed at ``T`` (open time ``T - 1 min``).
* ``m60 = 100 * (c(T) / c(T - 60 min) - 1)`` and ``m240 = 100 * (c(T) / c(T - 240 min) - 1)``
  (percent momentum over 1 h and 4 h).
* A symbol is a candidate when ``m60`` and ``m240`` are both non-zero and have the same
  sign: ``BUY`` when positive, ``SELL`` when negative.
* ``score_week = min(100, 100 * |m240| / 3)`` (a 3 % move in 4 h scores 100) and
  ``score_month = min(100, 100 * |m60| / 1.5)`` (1.5 % in 1 h scores 100), rounded
  half-even to 0.1; sent as strings.
* The wave holds the ``per_wave`` (default 6) candidates with the highest
  ``score_week + score_month`` (ties: symbol name), at least ``min_score`` (default 5.0)
  each. A wave is emitted for every boundary with 4 h of history before it (so the first
  wave of a data set starts 4 h in); waves with no candidate are omitted.

Output: JSON lines, one wave per line, in the protocol of docs/ARCHITECTURE.md §9::

    {"type":"wave","timestamp":"2025-05-20T04:00:00Z","signals":[{"id":"gen-202505200400-BTCUSDT",
     "symbol":"BTCUSDT","exchange":"bybit","action":"BUY","score_week":"72.5","score_month":"65.1"}]}

CLI: ``tradebot signals generate --data DIR [--out FILE] [--from ISO] [--to ISO]``.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import io
import json
import sys
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from importlib import resources
from pathlib import Path
from typing import Any

__all__ = ["add_arguments", "bundled_signals_path", "generate", "run", "write_jsonl"]

MINUTE_MS = 60_000
WAVE_MS = 15 * MINUTE_MS
SHORT_LOOKBACK_MS = 60 * MINUTE_MS
LONG_LOOKBACK_MS = 240 * MINUTE_MS
_SHORT_FULL_SCALE_PCT = Decimal("1.5")
_LONG_FULL_SCALE_PCT = Decimal(3)
_HUNDRED = Decimal(100)
_TENTH = Decimal("0.1")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def bundled_signals_path() -> Path:
    """The bundled signals file for the bundled 3-day market data."""
    return Path(str(resources.files("tradebot") / "data" / "signals" / "signals-2025-05-20.jsonl"))


def _bundled_market_dir() -> Path:
    return Path(str(resources.files("tradebot") / "data" / "market"))


def _iso_z(ms: int) -> str:
    return (_EPOCH + timedelta(milliseconds=ms)).strftime("%Y-%m-%dT%H:%M:%SZ")


def _to_ms(dt: datetime) -> int:
    if dt.tzinfo is None:
        raise ValueError(f"expected an aware UTC datetime, got {dt!r}")
    d = dt.astimezone(UTC) - _EPOCH
    return (d.days * 86_400 + d.seconds) * 1000 + d.microseconds // 1000


def read_closes(
    path: Path, start_ms: int | None = None, end_ms: int | None = None
) -> dict[int, Decimal]:
    """``close time ms → close`` (close time = open time + 1 min) of one kline file.

    Args:
        path: a ``SYMBOL.csv.gz`` file (header ``open_time_ms,open,high,low,close,...``).
        start_ms, end_ms: only candles with ``start_ms <= open_time_ms < end_ms`` (None: no
            bound); reading stops at the first candle at or after ``end_ms``.

    Raises:
        ValueError: unreadable file, wrong header, a row read whose time or close is not a
            number (``"<path>:<line>: bad row ..."``).
    """
    out: dict[int, Decimal] = {}
    lo = -1 if start_ms is None else start_ms
    try:
        with gzip.open(path, "rb") as raw, io.TextIOWrapper(raw, encoding="ascii") as fh:
            reader = csv.reader(fh)
            header = next(reader, None)
            if header is None or [h.strip() for h in header[:5]] != [
                "open_time_ms",
                "open",
                "high",
                "low",
                "close",
            ]:
                raise ValueError(f"{path}: expected header open_time_ms,open,high,low,close,volume")
            for line, row in enumerate(reader, start=2):
                if not row:
                    continue
                try:
                    t = int(row[0])
                    if end_ms is not None and t >= end_ms:
                        break
                    if t >= lo:
                        out[t + MINUTE_MS] = Decimal(row[4])
                except (ValueError, IndexError, InvalidOperation):
                    raise ValueError(f"{path}:{line}: bad row {row!r}") from None
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: unreadable: {exc}") from exc
    return out


def _scale(momentum_pct: Decimal, full_scale_pct: Decimal) -> Decimal:
    s = min(_HUNDRED, abs(momentum_pct) * _HUNDRED / full_scale_pct)
    return s.quantize(_TENTH, rounding=ROUND_HALF_EVEN)


def generate(
    data_dir: Path | None = None,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    symbols: Sequence[str] | None = None,
    exchange: str = "bybit",
    per_wave: int = 6,
    min_score: Decimal = Decimal(5),
    closes: Mapping[str, Mapping[int, Decimal]] | None = None,
    close_span_ms: tuple[int, int] | None = None,
) -> list[dict[str, Any]]:
    """Waves of signals from the prices in ``data_dir`` (rule in the module docstring).

    Args:
        data_dir: directory of ``SYMBOL.csv.gz`` 1-minute kline files; None = bundled data.
        start: first wave boundary to consider (inclusive, aware UTC); None = first possible.
        end: last wave boundary (inclusive); None = last candle's close.
        symbols: subset of symbols (None = all files).
        exchange: value of each signal's ``exchange`` field (``"bybit"`` / ``"binance"``).
        per_wave: most signals per wave, >= 1.
        min_score: a candidate needs ``score_week`` and ``score_month`` >= this (0-100).
        closes: per symbol, ``close time ms → close``, already read, for at least every
            close time from ``start`` − 4 h to ``end`` (e.g.
            :meth:`adapters.replay.KlineReplay.signal_closes`): a symbol found here is not
            read from its file. Needs ``close_span_ms``.
        close_span_ms: the first and last close time (ms) of the files of ``closes``.

    Returns:
        Wave dicts in time order (JSON-ready: scores are strings).

    Raises:
        ValueError: missing directory, no kline files, a malformed file, bad arguments.
    """
    if per_wave < 1:
        raise ValueError("per_wave must be >= 1")
    directory = Path(data_dir) if data_dir is not None else _bundled_market_dir()
    if not directory.is_dir():
        raise ValueError(f"{directory}: not a directory")
    files = {p.name[: -len(".csv.gz")]: p for p in sorted(directory.glob("*.csv.gz"))}
    if symbols is not None:
        wanted = {s.upper() for s in symbols}
        missing = sorted(wanted - set(files))
        if missing:
            raise ValueError(f"{directory}: no kline file for {', '.join(missing)}")
        files = {s: p for s, p in files.items() if s in wanted}
    if not files:
        raise ValueError(f"{directory}: no SYMBOL.csv.gz kline files")
    if closes is not None and close_span_ms is None:
        raise ValueError("closes needs close_span_ms")
    known = closes if closes is not None else {}
    series: dict[str, Mapping[int, Decimal]] = {}
    firsts: list[int] = []
    lasts: list[int] = []
    for sym, path in files.items():
        if sym in known:
            series[sym] = known[sym]
            continue
        read = series[sym] = read_closes(path)
        if read:
            firsts.append(min(read))
            lasts.append(max(read))
    if close_span_ms is not None and any(sym in known for sym in files):
        firsts.append(close_span_ms[0])
        lasts.append(close_span_ms[1])
    first, last = min(firsts), max(lasts)
    t = -(-(first + LONG_LOOKBACK_MS) // WAVE_MS) * WAVE_MS  # first boundary with 4 h history
    if start is not None:
        t = max(t, -(-_to_ms(start) // WAVE_MS) * WAVE_MS)
    t_end = last if end is None else min(last, _to_ms(end))
    waves: list[dict[str, Any]] = []
    while t <= t_end:
        stamp = _iso_z(t)
        tag = stamp[:16].replace("-", "").replace(":", "").replace("T", "")
        cands: list[tuple[Decimal, str, str, Decimal, Decimal]] = []
        for sym in sorted(series):
            c = series[sym]
            now, c60, c240 = c.get(t), c.get(t - SHORT_LOOKBACK_MS), c.get(t - LONG_LOOKBACK_MS)
            if now is None or c60 is None or c240 is None:
                continue
            m60 = (now / c60 - 1) * _HUNDRED
            m240 = (now / c240 - 1) * _HUNDRED
            if m60.is_zero() or m240.is_zero() or (m60 > 0) != (m240 > 0):
                continue
            sw, sm = _scale(m240, _LONG_FULL_SCALE_PCT), _scale(m60, _SHORT_FULL_SCALE_PCT)
            if sw < min_score or sm < min_score:
                continue
            cands.append((sw + sm, sym, "BUY" if m60 > 0 else "SELL", sw, sm))
        cands.sort(key=lambda x: (-x[0], x[1]))
        if cands:
            waves.append(
                {
                    "type": "wave",
                    "timestamp": stamp,
                    "signals": [
                        {
                            "id": f"gen-{tag}-{sym}",
                            "symbol": sym,
                            "exchange": exchange,
                            "action": action,
                            "score_week": str(sw),
                            "score_month": str(sm),
                        }
                        for _, sym, action, sw, sm in cands[:per_wave]
                    ],
                }
            )
        t += WAVE_MS
    return waves


def write_jsonl(waves: Sequence[Mapping[str, Any]], out: io.TextIOBase | Any) -> None:
    """Write waves as compact JSON lines (stable key order)."""
    for wave in waves:
        out.write(json.dumps(wave, separators=(",", ":")) + "\n")


def _parse_iso(text: str) -> datetime:
    try:
        dt = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO-8601 time: {text!r}") from None
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``tradebot signals generate``."""
    parser.add_argument(
        "--data",
        type=Path,
        default=None,
        help="directory of SYMBOL.csv.gz 1m klines (default: bundled data)",
    )
    parser.add_argument(
        "--out", type=Path, default=None, help="output JSON-lines file (default: stdout)"
    )
    parser.add_argument(
        "--from",
        dest="start",
        type=_parse_iso,
        default=None,
        help="first wave time, ISO UTC (default: data start + 4 h)",
    )
    parser.add_argument(
        "--to",
        dest="end",
        type=_parse_iso,
        default=None,
        help="last wave time, ISO UTC (default: data end)",
    )
    parser.add_argument("--symbols", default=None, help="comma-separated subset of symbols")
    parser.add_argument(
        "--exchange",
        default="bybit",
        choices=["bybit", "binance"],
        help="value of each signal's exchange field (default bybit)",
    )
    parser.add_argument("--per-wave", type=int, default=6, help="most signals per wave (6)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """``tradebot signals generate``: exit 0 on success, 2 on bad input (message on stderr)."""
    try:
        waves = generate(
            args.data,
            start=args.start,
            end=args.end,
            symbols=args.symbols.split(",") if args.symbols else None,
            exchange=args.exchange,
            per_wave=args.per_wave,
        )
    except ValueError as exc:
        print(f"tradebot signals generate: {exc}", file=sys.stderr)
        return 2
    if args.out is None:
        write_jsonl(waves, sys.stdout)
    else:
        with open(args.out, "w", encoding="utf-8") as fh:
            write_jsonl(waves, fh)
        n = sum(len(w["signals"]) for w in waves)
        print(f"wrote {len(waves)} waves, {n} signals to {args.out}", file=sys.stderr)
    return 0
