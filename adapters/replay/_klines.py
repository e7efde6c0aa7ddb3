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

Validation (:func:`read_bars`; every failure is a :class:`ReplayDataError` naming the file,
the line and the rule): each price passes :func:`tradebot.price_checks.price_problem`
(finite, > 0, <= 1e9 USDT, <= 12 decimals); ``low <= open, close <= high``; open times on
a minute and strictly increasing (a repeated minute is a duplicate); no missing minute
between two candles of the window unless gaps are allowed; and no move larger than the
bound (default 50 %) between two consecutive price points of the replay — the previous
candle's close → this open, then along this candle's intrabar path (open → nearer extreme
→ other extreme → close, see :mod:`adapters.replay._source`) — unless the bound is None.
"""

from __future__ import annotations

import csv
import gzip
import io
import itertools
from collections.abc import Iterator
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import NamedTuple, NoReturn

from tradebot.errors import TradebotError
from tradebot.price_checks import DEFAULT_MAX_MOVE_PCT, move_pct, price_problem

__all__ = ["Bar", "DecimalCache", "ReplayDataError", "read_bars", "read_funding"]

KLINE_HEADER = ("open_time_ms", "open", "high", "low", "close", "volume")
FUNDING_HEADER = ("time_ms", "funding_rate")
MINUTE_MS = 60_000
MAX_OPEN_TIME_MS = 4_102_444_800_000
"""2100-01-01T00:00Z: an open time at or after it (or before 1970) is a format error."""


class ReplayDataError(TradebotError):
    """A market-data file is missing, unreadable or malformed.

    The message names the file, the line number and what is wrong, so a user pointing
    ``--data`` at their own download sees exactly which row to fix.

    Attributes:
        rule: which rule the data broke: ``"format"`` (header, not a number, not on a
            minute), ``"price"`` (a price that is not finite, not positive, too large or
            too fine, :func:`tradebot.price_checks.price_problem`), ``"ohlc"`` (high/low
            do not bound open/close), ``"order"`` (a duplicate or out-of-order minute),
            ``"gap"`` (missing minutes), ``"move"`` (a move beyond the bound), ``"window"``
            (no candles in the chosen window) or ``""`` (anything else: missing
            directory, unreadable file).
    """

    def __init__(self, message: str, *, rule: str = "") -> None:
        super().__init__(message)
        self.rule = rule


class Bar(NamedTuple):
    """One 1-minute candle (immutable; a named tuple: ~0.4 us less per candle to build than
    a frozen attrs class, and a replay builds one per symbol per minute). Prices are exact
    Decimals in USDT.

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

    __slots__ = ("_cache", "_prices")

    def __init__(self) -> None:
        self._cache: dict[str, Decimal] = {}
        self._prices: dict[str, Decimal] = {}

    def __call__(self, text: str) -> Decimal:
        d = self._cache.get(text)
        if d is None:
            d = Decimal(text)  # may raise InvalidOperation: caller reports file/line
            if len(self._cache) < 2_000_000:
                self._cache[text] = d
        return d

    def price(self, text: str) -> Decimal:
        """``text`` as a valid market price (checked once per distinct text).

        Raises:
            decimal.InvalidOperation: not a decimal number.
            ValueError: a decimal that fails :func:`tradebot.price_checks.price_problem`
                (the reason is the message).
        """
        d = self._prices.get(text)
        if d is None:
            d = Decimal(text)
            problem = price_problem(d)
            if problem is not None:
                raise ValueError(problem)
            if len(self._prices) < 2_000_000:
                self._prices[text] = d
        return d


def _open_text(path: Path) -> io.TextIOBase:
    try:
        # surrogateescape: a non-ASCII byte does not fail the whole read buffer (which would
        # name line 1 and drop the good rows before it): it reaches its row as a lone
        # surrogate, and that row is refused with its own line number
        if path.suffix == ".gz":
            return io.TextIOWrapper(
                gzip.open(path, "rb"), encoding="ascii", errors="surrogateescape", newline=""
            )
        return open(path, encoding="ascii", errors="surrogateescape", newline="")
    except OSError as exc:
        raise ReplayDataError(f"{path}: cannot open: {exc}") from exc


_COLUMNS = ("open", "high", "low", "close")


def read_bars(
    path: Path,
    symbol: str,
    *,
    start_ms: int | None = None,
    end_ms: int | None = None,
    cache: DecimalCache | None = None,
    max_move_pct: Decimal | None = DEFAULT_MAX_MOVE_PCT,
    allow_gaps: bool = False,
) -> Iterator[Bar]:
    """Stream the candles of one kline file, in file order, validated.

    Args:
        path: ``SYMBOL.csv.gz`` (or an uncompressed ``.csv``).
        symbol: the symbol the file holds (from its name).
        start_ms: first candle open time to yield (inclusive), Unix ms; None = from the start.
            Rows before it are skipped unparsed (only their time is read).
        end_ms: yield candles with ``open_time_ms < end_ms``; None = to the end.
        cache: shared Decimal cache (a new one when None).
        max_move_pct: bound on the move between two consecutive price points, percent of
            the earlier one (> 0); None = no bound (the user allowed price jumps).
        allow_gaps: accept missing minutes between two yielded candles.

    Yields:
        :class:`Bar` in strictly increasing ``open_time_ms``; every bar before a bad row is
        yielded before the error is raised.

    Raises:
        ReplayDataError: unreadable file, wrong header, a price that is not a number or
            fails :func:`tradebot.price_checks.price_problem` (NaN, Infinity, <= 0,
            ``1e400``), ``high < low`` or open/close outside [low, high], a time not on a
            minute, a duplicate or out-of-order minute, a gap (unless ``allow_gaps``) or a
            move beyond ``max_move_pct`` (rules in the module docstring). The message is
            ``"<path>:<line>: <what is wrong>"``; ``rule`` says which rule.
    """
    cache = cache if cache is not None else DecimalCache()
    price = cache.price
    known = cache._prices  # the checked prices: a hit needs no call
    bound = None if max_move_pct is None else max_move_pct / 100
    with _open_text(path) as fh:
        reader = csv.reader(fh)
        try:
            header = next(reader, None)
        except (OSError, EOFError, csv.Error, UnicodeDecodeError) as exc:
            raise ReplayDataError(f"{path}: unreadable: {exc}") from exc
        if header is None or tuple(h.strip() for h in header[:6]) != KLINE_HEADER:
            raise ReplayDataError(
                f"{path}: expected header {','.join(KLINE_HEADER)}, got {header!r}",
                rule="format",
            )
        last_t = -1
        prev: Bar | None = None  # the last yielded bar
        line = 1
        try:
            for row in reader:
                line = reader.line_num
                if not row:
                    continue
                try:
                    t = int(row[0])
                except (ValueError, IndexError):
                    raise ReplayDataError(
                        f"{path}:{line}: bad row {row!r}: open_time_ms is not an integer",
                        rule="format",
                    ) from None
                if end_ms is not None and t >= end_ms:
                    break
                if not 0 <= t < MAX_OPEN_TIME_MS:
                    raise ReplayDataError(
                        f"{path}:{line}: open_time_ms {t} is outside 1970..2100", rule="format"
                    )
                if t <= last_t:
                    what = "duplicate minute" if t == last_t else "out of order"
                    raise ReplayDataError(
                        f"{path}:{line}: open_time_ms {t} {what}: not after the previous "
                        f"row's {last_t}",
                        rule="order",
                    )
                if start_ms is not None and t < start_ms:
                    last_t = t  # before the window: skipped unparsed, but kept in order
                    continue
                if len(row) < 5:
                    raise ReplayDataError(
                        f"{path}:{line}: bad row {row!r}: expected {len(KLINE_HEADER)} columns",
                        rule="format",
                    )
                k = 1
                try:  # (a checked price is never zero, so a hit is truthy)
                    o = known.get(row[1]) or price(row[1])
                    k = 2
                    h = known.get(row[2]) or price(row[2])
                    k = 3
                    lo = known.get(row[3]) or price(row[3])
                    k = 4
                    c = known.get(row[4]) or price(row[4])
                except InvalidOperation:
                    raise ReplayDataError(
                        f"{path}:{line}: bad row {row!r}: {_COLUMNS[k - 1]} {row[k]!r} "
                        "is not a decimal number",
                        rule="format",
                    ) from None
                except ValueError as exc:
                    raise ReplayDataError(
                        f"{path}:{line}: {_COLUMNS[k - 1]} price {exc}", rule="price"
                    ) from None
                if t % MINUTE_MS:
                    raise ReplayDataError(
                        f"{path}:{line}: open_time_ms {t} is not on a minute", rule="format"
                    )
                if not (lo <= h and lo <= o <= h and lo <= c <= h):
                    raise ReplayDataError(
                        f"{path}:{line}: inconsistent candle o={o} h={h} l={lo} c={c} "
                        "(needs low <= open, close <= high)",
                        rule="ohlc",
                    )
                if prev is not None:
                    if not allow_gaps and t - prev.open_time_ms != MINUTE_MS:
                        missing = (t - prev.open_time_ms) // MINUTE_MS - 1
                        raise ReplayDataError(
                            f"{path}:{line}: gap: {missing} minute(s) missing after "
                            f"open_time_ms {prev.open_time_ms}",
                            rule="gap",
                        )
                    if (
                        bound is not None
                        and o is not prev.close  # the usual case: open = previous close
                        and abs(o - prev.close) > bound * prev.close
                    ):
                        _move_error(
                            path, line, max_move_pct, "previous close", prev.close, "open", o
                        )
                if bound is not None and h - lo > bound * lo:
                    # some step of the intrabar path may exceed the bound: find which
                    names = (
                        ("open", "low", "high", "close")
                        if c >= o
                        else ("open", "high", "low", "close")
                    )
                    values = {"open": o, "high": h, "low": lo, "close": c}
                    for a, b in itertools.pairwise(names):
                        if abs(values[b] - values[a]) > bound * values[a]:
                            _move_error(path, line, max_move_pct, a, values[a], b, values[b])
                last_t = t
                bar = Bar(symbol, t, o, h, lo, c)
                prev = bar
                yield bar
        except (OSError, EOFError, csv.Error, UnicodeDecodeError) as exc:
            raise ReplayDataError(f"{path}:{line}: unreadable: {exc}") from exc


def _move_error(
    path: Path,
    line: int,
    bound_pct: Decimal | None,
    from_name: str,
    p0: Decimal,
    to_name: str,
    p1: Decimal,
) -> NoReturn:
    pct = move_pct(p0, p1)
    raise ReplayDataError(
        f"{path}:{line}: price moves {pct:+.2f} % between two consecutive points "
        f"({from_name} {p0} -> {to_name} {p1}), beyond the {bound_pct} % bound",
        rule="move",
    )


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
