"""The replay market-data source: candles → time-ordered mark-price updates and funding.

Intrabar path (documented so results can be reasoned about; docs/ARCHITECTURE.md §8): each
1-minute candle becomes four mark-price updates at fixed offsets inside its minute,

=========  =====================  ======================
offset     up bar (close>=open)   down bar (close<open)
=========  =====================  ======================
+1 s       open                   open
+16 s      low                    high
+31 s      high                   low
+46 s      close                  close
=========  =====================  ======================

i.e. the conventional "open → nearer-looking extreme first" assumption used by bar
back-testers: an up bar is assumed to dip first and rally to its high, a down bar to pop
first and sell off. This is the *adverse-first* ordering for a position that ends the
bar in profit, so stops are tested before trailing gains are banked. The close holds from
+46 s until the next candle's open at +61 s. The points sit 1 s after the 15-second grid
so that a price update never lands on the same instant as the bot's own minute-aligned
timers (wave processing at minutes 5/20/35/50, docs/ARCHITECTURE.md §5): which of two things
scheduled for the same virtual instant runs first is up to the trio scheduler, and keeping
them apart keeps a replay identical run to run. Every candle yields exactly four updates (also
when some are equal), so ``ticks processed = 4 × candles``.

Merge order across symbols: by time, then by the point's offset, then by symbol name; a
symbol with no candle in a minute (gap, or outside its file) is simply absent from it.
Funding settlements (``funding/SYMBOL-8h.csv.gz``, when present) are delivered in the same
stream at their own timestamps; one that falls on the same millisecond as a mark update is
delivered after it (funding settles against the mark price of that moment).

Default window: the *common* window of the selected symbols (latest first candle → earliest
last candle + 1 minute), so every symbol trades for the whole run; ``start``/``end``
narrow it (``end`` exclusive). A symbol with no candle in a chosen window (data sets whose
symbols cover different periods) is left out of the replay with a note
(:attr:`KlineReplay.notes`); only when no symbol is left is the window an error.

Validation: construction reads every selected file over the window once and applies the
rules of :mod:`adapters.replay._klines` (prices, OHLC, order, gaps, the move bound), so bad
data is refused with its file and line before anything runs; the parsed candles are kept
for the iterations (up to :data:`MAX_KEPT_BARS`; a streamed iteration applies the rules
again).
"""

from __future__ import annotations

import gzip
import heapq
import re
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from operator import attrgetter
from pathlib import Path

import attrs

from adapters.replay._instruments import (
    bundled_data_dir,
    derive_instrument,
    load_instruments_json,
)
from adapters.replay._klines import (
    MAX_OPEN_TIME_MS,
    MINUTE_MS,
    Bar,
    DecimalCache,
    ReplayDataError,
    read_bars,
    read_funding,
)
from tradebot.domain import Instrument
from tradebot.price_checks import DEFAULT_MAX_MOVE_PCT
from tradebot.signalgen import read_closes

__all__ = [
    "INTRABAR_OFFSETS_MS",
    "FundingTick",
    "KlineReplay",
    "MarkTick",
    "ReplayStep",
    "datetime_to_ms",
    "intrabar_path",
    "ms_to_datetime",
]

MAX_KEPT_BARS = 4_000_000
"""Candles (all symbols together) that construction keeps parsed in memory for the
iterations (~100 bytes each; about 6 months of 16 symbols); a larger window is streamed
from the files again on every iteration."""

INTRABAR_OFFSETS_MS: tuple[int, int, int, int] = (1_000, 16_000, 31_000, 46_000)
"""Offsets of the four intrabar points from the candle open, ms."""

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SYMBOL_RE = re.compile(r"^[A-Z0-9]{2,30}$")


def ms_to_datetime(ms: int) -> datetime:
    """Unix ms → aware UTC datetime (exact, no float)."""
    return _EPOCH + timedelta(milliseconds=ms)


def datetime_to_ms(dt: datetime) -> int:
    """Aware datetime → Unix ms (exact, no float). Raises ValueError for naive datetimes."""
    if dt.tzinfo is None:
        raise ValueError(f"expected an aware UTC datetime, got {dt!r}")
    delta = dt.astimezone(UTC) - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


def intrabar_path(bar: Bar) -> tuple[Decimal, Decimal, Decimal, Decimal]:
    """The four mark prices of a candle, in time order (table in the module docstring)."""
    if bar.close >= bar.open:
        return (bar.open, bar.low, bar.high, bar.close)
    return (bar.open, bar.high, bar.low, bar.close)


@attrs.frozen(slots=True)
class MarkTick:
    """One mark-price update: ``symbol`` at ``mark_price`` (USDT) at ``ts_ms`` (Unix ms UTC)."""

    ts_ms: int
    symbol: str
    mark_price: Decimal


@attrs.frozen(slots=True)
class FundingTick:
    """A funding settlement of ``symbol`` at ``ts_ms`` with ``funding_rate`` (a fraction;
    positive: longs pay shorts ``qty * mark * rate``)."""

    ts_ms: int
    symbol: str
    funding_rate: Decimal


@attrs.frozen(slots=True)
class ReplayStep:
    """Everything that happens at one instant of the replay.

    Attributes:
        ts_ms: Unix ms UTC.
        ts: the same instant as an aware UTC datetime (one object shared by all updates).
        marks: ``(symbol, mark_price)`` pairs, symbols in name order; may be empty.
        funding: ``(symbol, funding_rate)`` settlements, after the marks of this instant.
    """

    ts_ms: int
    ts: datetime
    marks: tuple[tuple[str, Decimal], ...]
    funding: tuple[tuple[str, Decimal], ...] = ()


def _kline_files(data_dir: Path) -> dict[str, Path]:
    if not data_dir.is_dir():
        raise ReplayDataError(f"{data_dir}: not a directory")
    out: dict[str, Path] = {}
    for p in sorted(data_dir.iterdir()):
        name = p.name
        for suffix in (".csv.gz", ".csv"):
            if name.endswith(suffix) and p.is_file():
                sym = name[: -len(suffix)]
                if _SYMBOL_RE.match(sym) and sym not in out:
                    out[sym] = p
    return out


def _first_last_ms(path: Path) -> tuple[int, int]:
    """Open times of the first and last candle of a file (reads the file once, no parsing)."""
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as fh:
                raw = fh.read()
        else:
            raw = path.read_bytes()
    except (OSError, EOFError) as exc:
        raise ReplayDataError(f"{path}: unreadable: {exc}") from exc
    raw = raw.strip()
    # the second line and the last one (not a list of every line: ~50k per file)
    head_end = raw.find(b"\n")
    if head_end < 0:
        raise ReplayDataError(f"{path}: no candles")
    second_end = raw.find(b"\n", head_end + 1)
    second = raw[head_end + 1 : second_end if second_end >= 0 else len(raw)]
    last_line = raw[raw.rfind(b"\n") + 1 :]
    try:
        first, last = int(second.split(b",", 1)[0]), int(last_line.split(b",", 1)[0])
    except ValueError:
        raise ReplayDataError(
            f"{path}: first or last row has no integer open_time_ms", rule="format"
        ) from None
    if not (0 <= first < MAX_OPEN_TIME_MS and 0 <= last < MAX_OPEN_TIME_MS):
        raise ReplayDataError(
            f"{path}: first or last open_time_ms outside 1970..2100 ({first}, {last})",
            rule="format",
        )
    return first, last


class KlineReplay:
    """A replay of 1-minute candles of several symbols as mark-price updates.

    Construction resolves the symbol set, the window and every symbol's instrument rules
    (reading each file's first and last line), then parses and validates every candle of
    the window once and keeps them (up to :data:`MAX_KEPT_BARS`), so iterating (the replay,
    the signal generator's closes) parses nothing again; beyond that bound iteration
    streams the files (never more than one candle per symbol held). Iteration can be
    repeated.

    Args:
        data_dir: directory of ``SYMBOL.csv.gz`` files (``funding/`` beside them optional);
            None = the bundled 3-day set.
        symbols: subset to replay (None = every file in the directory).
        start: first instant (inclusive, aware UTC; may fall inside a minute: the candle of
            that minute contributes its points at or after ``start``); None = common start.
        end: end instant (exclusive, aware UTC); None = common end.
        with_funding: deliver funding settlements from ``funding/SYMBOL-8h.csv.gz``.
        max_move_pct: bound on the move between two consecutive price points of a symbol,
            percent (> 0; default 50); None = price jumps allowed.
        allow_gaps: accept missing minutes inside a symbol's data in the window.

    Attributes:
        symbols: the replayed symbols, sorted.
        left_out: symbol → why it is not replayed (no candle in the window).
        notes: one human line per symbol left out.
        start_ms, end_ms: the resolved window ``[start_ms, end_ms)``.
        instruments: symbol → Instrument.
        instrument_sources: symbol → ``"data-dir"``, ``"bundled"`` or ``"derived"``.

    Raises:
        ReplayDataError: directory missing, no kline files, unknown symbol requested, a
            window that is empty or has no candle of any symbol (``rule == "window"``),
            malformed instrument table, a file breaking a validation rule (file, line and
            ``rule`` in the error).
        ValueError: ``max_move_pct`` not a finite Decimal > 0.
    """

    def __init__(
        self,
        data_dir: Path | None = None,
        *,
        symbols: Sequence[str] | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        with_funding: bool = True,
        max_move_pct: Decimal | None = DEFAULT_MAX_MOVE_PCT,
        allow_gaps: bool = False,
    ) -> None:
        self.data_dir = Path(data_dir) if data_dir is not None else bundled_data_dir()
        files = _kline_files(self.data_dir)
        if not files:
            raise ReplayDataError(f"{self.data_dir}: no SYMBOL.csv.gz kline files")
        if symbols is not None:
            wanted = sorted({s.strip().upper() for s in symbols if s.strip()})
            missing = [s for s in wanted if s not in files]
            if missing:
                raise ReplayDataError(
                    f"{self.data_dir}: no kline file for {', '.join(missing)} "
                    f"(have {', '.join(files)})"
                )
            files = {s: files[s] for s in wanted}
        if max_move_pct is not None and (
            not isinstance(max_move_pct, Decimal)
            or not max_move_pct.is_finite()
            or max_move_pct <= 0
        ):
            raise ValueError(f"max_move_pct must be a finite Decimal > 0, got {max_move_pct!r}")
        self.max_move_pct = max_move_pct
        self.allow_gaps = allow_gaps
        self.with_funding = with_funding
        self.left_out: dict[str, str] = {}
        self.notes: list[str] = []

        spans = {s: _first_last_ms(p) for s, p in files.items()}
        common_start = max(first for first, _ in spans.values())
        common_end = min(last for _, last in spans.values()) + MINUTE_MS
        self.start_ms = common_start if start is None else datetime_to_ms(start)
        self.end_ms = common_end if end is None else datetime_to_ms(end)
        if start is not None and end is None:
            self.end_ms = max(common_end, self.start_ms)
        if start is not None and end is not None and self.end_ms <= self.start_ms:
            raise ReplayDataError(
                f"window start {ms_to_datetime(self.start_ms).isoformat()} is not before its "
                f"end {ms_to_datetime(self.end_ms).isoformat()}",
                rule="window",
            )
        data_start = min(first for first, _ in spans.values())
        data_end = max(last for _, last in spans.values()) + MINUTE_MS
        if self.end_ms <= max(self.start_ms, data_start) or self.start_ms >= data_end:
            raise ReplayDataError(
                f"empty replay window {ms_to_datetime(self.start_ms).isoformat()} → "
                f"{ms_to_datetime(self.end_ms).isoformat()} (data covers "
                f"{ms_to_datetime(data_start).isoformat()} → "
                f"{ms_to_datetime(data_end).isoformat()}; all symbols together "
                f"{ms_to_datetime(common_start).isoformat()} → "
                f"{ms_to_datetime(common_end).isoformat()})",
                rule="window",
            )
        self._files = files
        self._spans = spans
        self._kept: dict[str, list[Bar]] | None = None
        first_closes = self._validate(spans)
        for sym in self.left_out:
            del self._files[sym]
        if not self._files:
            raise ReplayDataError(
                f"no symbol has a candle in the replay window "
                f"{ms_to_datetime(self.start_ms).isoformat()} → "
                f"{ms_to_datetime(self.end_ms).isoformat()}",
                rule="window",
            )
        self.symbols: tuple[str, ...] = tuple(sorted(self._files))
        self.instruments: dict[str, Instrument] = {}
        self.instrument_sources: dict[str, str] = {}
        self._resolve_instruments(first_closes)

    def _validate(self, spans: Mapping[str, tuple[int, int]]) -> dict[str, list[Bar]]:
        """Read every file over the window once (all validation rules); fill
        :attr:`left_out`/:attr:`notes`; return each symbol's first (up to) 1,440 bars."""
        first: dict[str, list[Bar]] = {}
        cache = DecimalCache()
        kept: dict[str, list[Bar]] | None = {}
        total = 0
        for sym in self._files:
            lo, hi = spans[sym]
            bars: list[Bar] = []
            n = 0
            if hi + MINUTE_MS > self.start_ms and lo < self.end_ms:
                every: list[Bar] | None = [] if kept is not None else None
                for bar in self._read(sym, cache):
                    n += 1
                    if len(bars) < 1440:
                        bars.append(bar)
                    if every is not None:
                        every.append(bar)
                if kept is not None and every is not None:
                    total += len(every)
                    if total > MAX_KEPT_BARS:
                        kept = None  # too big to hold: iteration streams the files again
                    else:
                        kept[sym] = every
            if n == 0:
                why = (
                    f"no candles in the window (its data covers {ms_to_datetime(lo).isoformat()}"
                    f" → {ms_to_datetime(hi + MINUTE_MS).isoformat()})"
                )
                self.left_out[sym] = why
                self.notes.append(f"{sym}: {why}; left out of this run")
            else:
                first[sym] = bars
        self._kept = kept
        return first

    def _read(self, symbol: str, cache: DecimalCache) -> Iterator[Bar]:
        kept = self._kept
        if kept is not None and symbol in kept:
            return iter(kept[symbol])
        return read_bars(
            self._files[symbol],
            symbol,
            start_ms=self.start_ms // MINUTE_MS * MINUTE_MS,
            end_ms=self.end_ms,
            cache=cache,
            max_move_pct=self.max_move_pct,
            allow_gaps=self.allow_gaps,
        )

    @property
    def start(self) -> datetime:
        return ms_to_datetime(self.start_ms)

    @property
    def end(self) -> datetime:
        return ms_to_datetime(self.end_ms)

    @property
    def duration_s(self) -> int:
        """Length of the window in seconds."""
        return (self.end_ms - self.start_ms) // 1000

    def _resolve_instruments(self, first_bars: Mapping[str, list[Bar]]) -> None:
        beside_path = self.data_dir / "instruments.json"
        beside = load_instruments_json(beside_path) if beside_path.exists() else {}
        bundled_path = bundled_data_dir() / "instruments.json"
        bundled = load_instruments_json(bundled_path) if bundled_path != beside_path else {}
        for sym in self.symbols:
            if sym in beside:
                self.instruments[sym] = beside[sym]
                is_bundled = beside_path.resolve() == bundled_path.resolve()
                self.instrument_sources[sym] = "bundled" if is_bundled else "data-dir"
            elif sym in bundled:
                self.instruments[sym] = bundled[sym]
                self.instrument_sources[sym] = "bundled"
            else:
                self.instruments[sym] = derive_instrument(sym, first_bars[sym])
                self.instrument_sources[sym] = "derived"

    def describe_instruments(self) -> list[str]:
        """One human line per symbol: its rules and where they came from."""
        return [
            f"{s:<12} tick {i.tick_size:<10} step {i.qty_step:<8} min_qty {i.min_qty:<8} "
            f"min_notional {i.min_notional:<5} ({self.instrument_sources[s]})"
            for s, i in self.instruments.items()
        ]

    def funding_events(self) -> list[tuple[int, str, Decimal]]:
        """All funding settlements in the window: ``(ts_ms, symbol, rate)`` in stream order."""
        if not self.with_funding:
            return []
        out: list[tuple[int, str, Decimal]] = []
        for sym in self.symbols:
            path = self.data_dir / "funding" / f"{sym}-8h.csv.gz"
            for t, rate in read_funding(path, start_ms=self.start_ms, end_ms=self.end_ms):
                out.append((t, sym, rate))
        out.sort(key=lambda e: (e[0], e[1]))
        return out

    def bars(self) -> Iterator[Bar]:
        """Candles of all symbols in the window, merged by (open time, symbol)."""
        cache = DecimalCache()
        iters = [self._read(s, cache) for s in self.symbols]
        # symbols are sorted and each file is time-ordered: merge by (time, symbol)
        return heapq.merge(*iters, key=attrgetter("open_time_ms", "symbol"))

    def steps(self) -> Iterator[ReplayStep]:
        """The replay as :class:`ReplayStep` instants, strictly increasing in time."""
        funding = self.funding_events()
        fi = 0
        nf = len(funding)
        start_ms, end_ms = self.start_ms, self.end_ms
        minute: list[Bar] = []
        minute_t = -1

        def emit_minute(t0: int, bars_: list[Bar]) -> Iterator[ReplayStep]:
            nonlocal fi
            symbols = [b.symbol for b in bars_]
            # the k-th point of every candle, paired with its symbol
            points = [
                tuple(zip(symbols, col, strict=True))
                for col in zip(*map(intrabar_path, bars_), strict=True)
            ]
            for k, off in enumerate(INTRABAR_OFFSETS_MS):
                ts_ms = t0 + off
                if ts_ms >= end_ms:
                    return
                if ts_ms < start_ms:  # a window starting inside a minute
                    continue
                while fi < nf and funding[fi][0] < ts_ms:
                    t = funding[fi][0]
                    group = []
                    while fi < nf and funding[fi][0] == t:
                        group.append((funding[fi][1], funding[fi][2]))
                        fi += 1
                    yield ReplayStep(t, ms_to_datetime(t), (), tuple(group))
                same: list[tuple[str, Decimal]] = []
                while fi < nf and funding[fi][0] == ts_ms:
                    same.append((funding[fi][1], funding[fi][2]))
                    fi += 1
                yield ReplayStep(
                    ts_ms,
                    ms_to_datetime(ts_ms),
                    points[k],
                    tuple(same),
                )

        for bar in self.bars():
            if bar.open_time_ms != minute_t:
                if minute:
                    yield from emit_minute(minute_t, minute)
                minute = []
                minute_t = bar.open_time_ms
            minute.append(bar)
        if minute:
            yield from emit_minute(minute_t, minute)
        while fi < nf:
            t = funding[fi][0]
            group = []
            while fi < nf and funding[fi][0] == t:
                group.append((funding[fi][1], funding[fi][2]))
                fi += 1
            yield ReplayStep(t, ms_to_datetime(t), (), tuple(group))

    def ticks(self) -> Iterator[MarkTick | FundingTick]:
        """The replay flattened into single updates, in stream order."""
        for step in self.steps():
            for sym, price in step.marks:
                yield MarkTick(step.ts_ms, sym, price)
            for sym, rate in step.funding:
                yield FundingTick(step.ts_ms, sym, rate)

    def signal_closes(
        self, since_ms: int
    ) -> tuple[dict[str, dict[int, Decimal]], tuple[int, int]] | None:
        """What :func:`tradebot.signalgen.generate` reads from the files, for waves from
        ``since_ms`` + 4 h to the window's end, without reading the window again.

        Returns:
            Per replayed symbol, ``close time ms → close`` of every candle of its file
            whose close time is in ``[since_ms, window end]`` (the window's from the kept
            candles, the history before it from the file by
            :func:`tradebot.signalgen.read_closes`), and the first and last close time of
            the replayed files (``close_span_ms``). None when
            the candles are not kept, or a file is not ``.csv.gz`` (the generator reads
            only those): the generator then reads the files itself.

        Raises:
            ValueError: a history row that is not a number (file and line named).
        """
        kept = self._kept
        if kept is None or any(self._files[s].suffix != ".gz" for s in self.symbols):
            return None
        out: dict[str, dict[int, Decimal]] = {}
        for sym in self.symbols:
            bars = kept.get(sym, [])
            first_open = bars[0].open_time_ms if bars else self.end_ms
            history_from = since_ms - MINUTE_MS  # open time of the close at since_ms
            closes = (
                read_closes(self._files[sym], history_from, first_open)
                if history_from < first_open
                else {}
            )
            closes.update({b.open_time_ms + MINUTE_MS: b.close for b in bars})
            out[sym] = closes
        spans = [self._spans[s] for s in self.symbols]
        first = min(lo for lo, _ in spans) + MINUTE_MS
        last = max(hi for _, hi in spans) + MINUTE_MS
        return out, (first, last)

    def symbol_closes(self) -> Mapping[str, list[tuple[int, Decimal]]]:
        """Per symbol, ``(open_time_ms, close)`` of every candle in the window (for signal
        generation and charts; 16 symbols × 36k candles fits comfortably)."""
        out: dict[str, list[tuple[int, Decimal]]] = {s: [] for s in self.symbols}
        for bar in self.bars():
            out[bar.symbol].append((bar.open_time_ms, bar.close))
        return out
