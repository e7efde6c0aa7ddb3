"""Reading 1-minute kline and funding files (gzip CSV) into exact Decimal values.

File formats (``tradebot/data/market/README.md``, ``../shared/data/market/*/README.md``):

* ``SYMBOL.csv.gz``: header ``open_time_ms,open,high,low,close,volume``; one row per
  1-minute candle, ``open_time_ms`` = candle open time (Unix ms, UTC), prices in USDT as
  decimal text, rows in increasing time order.
* ``funding/SYMBOL-8h.csv.gz``: header ``time_ms,funding_rate``; the funding rate of each
  8-hour interval as a fraction (``"8.378e-05"`` = 0.008378 %), at its settlement time.

Prices are never floats: each price text is converted with ``Decimal(text)`` once and
cached (consecutive candles share most of their price strings: close of one bar = open of
the next, so the cache makes conversion nearly free).
"""

from __future__ import annotations

import csv
import gzip
import io
from collections.abc import Iterator
from decimal import Decimal, InvalidOperation
from pathlib import Path

import attrs

from tradebot.errors import TradebotError

__all__ = ["Bar", "DecimalCache", "ReplayDataError", "read_bars", "read_funding"]

KLINE_HEADER = ("open_time_ms", "open", "high", "low", "close", "volume")
FUNDING_HEADER = ("time_ms", "funding_rate")
MINUTE_MS = 60_000


class ReplayDataError(TradebotError):
    """A market-data file is missing, unreadable or malformed.

    The message names the file, the line number and what is wrong, so a user pointing
    ``--data`` at their own download sees exactly which row to fix.
    """


@attrs.frozen(slots=True)
class Bar:
    """One 1-minute candle. Prices are exact Decimals in USDT.

    Attributes:
        symbol: e.g. ``"BTCUSDT"``.
        open_time_ms: candle open time, Unix ms UTC (a multiple of 60,000).
        open, high, low, close: prices, ``low <= open, close <= high``, all > 0.
    """

    symbol: str
    open_time_ms: int
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal


class DecimalCache:
    """``text → Decimal`` with memoization (replay price strings repeat constantly)."""

    __slots__ = ("_cache",)

    def __init__(self) -> None:
        self._cache: dict[str, Decimal] = {}

    def __call__(self, text: str) -> Decimal:
        d = self._cache.get(text)
        if d is None:
            d = Decimal(text)  # may raise InvalidOperation: caller reports file/line
            if len(self._cache) < 2_000_000:
                self._cache[text] = d
        return d


def _open_text(path: Path) -> io.TextIOBase:
    try:
        if path.suffix == ".gz":
            return io.TextIOWrapper(gzip.open(path, "rb"), encoding="ascii", newline="")
        return open(path, encoding="ascii", newline="")
    except OSError as exc:
        raise ReplayDataError(f"{path}: cannot open: {exc}") from exc


def read_bars(
    path: Path,
    symbol: str,
    *,
    start_ms: int | None = None,
    end_ms: int | None = None,
    cache: DecimalCache | None = None,
) -> Iterator[Bar]:
    """Stream the candles of one kline file, in file order, validated.

    Args:
        path: ``SYMBOL.csv.gz`` (or an uncompressed ``.csv``).
        symbol: the symbol the file holds (from its name).
        start_ms: first candle open time to yield (inclusive), Unix ms; None = from the start.
        end_ms: yield candles with ``open_time_ms < end_ms``; None = to the end.
        cache: shared Decimal cache (a new one when None).

    Yields:
        :class:`Bar` in strictly increasing ``open_time_ms``.

    Raises:
        ReplayDataError: unreadable file, wrong header, a non-numeric or non-positive price,
            ``high < low`` or open/close outside [low, high], a time not on a minute, or
            times not strictly increasing. Gaps (missing minutes) are allowed.
    """
    conv = cache if cache is not None else DecimalCache()
    with _open_text(path) as fh:
        reader = csv.reader(fh)
        try:
            header = next(reader, None)
        except (OSError, EOFError, csv.Error, UnicodeDecodeError) as exc:
            raise ReplayDataError(f"{path}: unreadable: {exc}") from exc
        if header is None or tuple(h.strip() for h in header[:6]) != KLINE_HEADER:
            raise ReplayDataError(
                f"{path}: expected header {','.join(KLINE_HEADER)}, got {header!r}"
            )
        last_t = -1
        line = 1
        try:
            for row in reader:
                line += 1
                if not row:
                    continue
                try:
                    t = int(row[0])
                    if end_ms is not None and t >= end_ms:
                        break
                    if start_ms is not None and t < start_ms:
                        last_t = t
                        continue
                    o, h, lo, c = conv(row[1]), conv(row[2]), conv(row[3]), conv(row[4])
                except (ValueError, IndexError, InvalidOperation) as exc:
                    raise ReplayDataError(
                        f"{path}:{line}: bad row {row!r}: {type(exc).__name__}"
                    ) from None
                if t % MINUTE_MS:
                    raise ReplayDataError(f"{path}:{line}: open_time_ms {t} is not on a minute")
                if t <= last_t:
                    raise ReplayDataError(
                        f"{path}:{line}: open_time_ms {t} not after previous {last_t}"
                    )
                if not (0 < lo <= h and lo <= o <= h and lo <= c <= h):
                    raise ReplayDataError(
                        f"{path}:{line}: inconsistent candle o={o} h={h} l={lo} c={c}"
                    )
                last_t = t
                yield Bar(symbol, t, o, h, lo, c)
        except (OSError, EOFError, csv.Error, UnicodeDecodeError) as exc:
            raise ReplayDataError(f"{path}:{line}: unreadable: {exc}") from exc


def read_funding(
    path: Path, *, start_ms: int | None = None, end_ms: int | None = None
) -> list[tuple[int, Decimal]]:
    """All funding settlements of one symbol inside ``[start_ms, end_ms)``.

    Returns:
        ``(time_ms, funding_rate)`` pairs in time order; the rate is a fraction
        (positive: longs pay shorts). Empty when the file does not exist.

    Raises:
        ReplayDataError: wrong header or a malformed row.
    """
    if not path.exists():
        return []
    out: list[tuple[int, Decimal]] = []
    with _open_text(path) as fh:
        reader = csv.reader(fh)
        try:
            header = next(reader, None)
            if header is None or tuple(h.strip() for h in header[:2]) != FUNDING_HEADER:
                raise ReplayDataError(
                    f"{path}: expected header {','.join(FUNDING_HEADER)}, got {header!r}"
                )
            for line, row in enumerate(reader, start=2):
                if not row:
                    continue
                try:
                    t = int(row[0])
                    rate = Decimal(row[1].strip())
                except (ValueError, IndexError, InvalidOperation):
                    raise ReplayDataError(f"{path}:{line}: bad row {row!r}") from None
                if not rate.is_finite():
                    raise ReplayDataError(f"{path}:{line}: funding rate not finite: {row[1]!r}")
                if (start_ms is None or t >= start_ms) and (end_ms is None or t < end_ms):
                    out.append((t, rate))
        except (OSError, EOFError, csv.Error, UnicodeDecodeError) as exc:
            raise ReplayDataError(f"{path}: unreadable: {exc}") from exc
    out.sort(key=lambda p: p[0])
    return out
