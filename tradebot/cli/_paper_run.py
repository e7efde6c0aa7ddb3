"""``tradebot paper``: the whole actor tree of one account on replayed market data.

This is wiring (``tradebot.cli`` is the only place that imports both ``actors`` and
``adapters``). The tree is the production one (docs/ARCHITECTURE.md §3); only the exchange is
the paper venue and the market stream is the replay::

    trio.run (virtual time: MockClock autojump | real time | N x real time)
    ├─ Journal            PostgresJournal (embedded PG database tradebot_paper, or --dsn),
    │                     durable_wait=False so no actor waits on a DB thread
    ├─ PaperVenue         PaperEngine (profile bybit|binance) as the ExchangePort
    ├─ replay driver      KlineReplay steps → venue.push_mark (engine: stops, fills)
    │                     → MarketRouter.set_mark (LatestValue per symbol); funding
    ├─ AccountRouter      venue account stream → owning PositionActor
    ├─ supervisor "account": WaveProcessor
    ├─ supervisor "signals": SignalFeed (file source paced on the clock, or WebSocket)
    └─ DynamicSupervisor "positions": PositionSupervisor → PositionActor per (symbol, side)

Time: the clock port is :class:`tradebot.clock.TrioClock` started at the replay start, so
"now" is the data's time. ``--speed max`` runs under ``trio.testing.MockClock`` with
autojump (virtual time jumps whenever every task waits: a 3-day replay takes seconds and is
identical run to run); ``realtime`` uses trio's real clock (one simulated second per
second, for a live-looking run with a WebSocket signal source); ``Nx`` runs N times faster
than real time.

Every venue step (mark, funding, request) is checked by the
:class:`tradebot.invariants.InvariantMonitor` (engine step listener). The report
(:mod:`tradebot.report`) is built after the journal has drained, from the journal's own
counts in the database, the engine's trade list and the monitor.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, NoReturn, TextIO

import attrs
import trio
import trio.testing

from adapters.paper import EngineStep, PaperEngine, PaperVenue, binance_like, bybit_like
from adapters.replay import KlineReplay
from tradebot.cli._shutdown import open_shutdown_watch
from tradebot.clock import TrioClock
from tradebot.errors import ConfigError, TradebotError
from tradebot.events import BotStarted, BotStopped, BotStopping, Event, Severity, SpoolKeptAside
from tradebot.invariants import InvariantMonitor
from tradebot.ports import MarkPrice
from tradebot.price_checks import DEFAULT_MAX_MOVE_PCT
from tradebot.redact import Redactor
from tradebot.report import RunReport, build_report

__all__ = [
    "PROFILES",
    "PaperRunFailed",
    "PaperRunOptions",
    "PaperRunResult",
    "parse_speed",
    "run_paper",
]

PROFILES = {"bybit": bybit_like, "binance": binance_like}
EQUITY_SAMPLE_S = 900
QUERY_METHODS = ("instruments", "balance", "get_order", "open_orders", "positions", "stops")
"""ExchangePort methods that only read venue state."""
SIGNAL_ARRIVAL_OFFSET_S = 30.0
"""Signals of wave T arrive T + 30 s (the signal service computes, then publishes)."""


def parse_speed(text: str) -> float | None:
    """``max`` → None (virtual time, autojump); ``realtime`` → 1.0; ``60x`` → 60.0.

    Raises:
        ValueError: anything else, or a factor <= 0.
    """
    t = text.strip().lower()
    if t == "max":
        return None
    if t in ("realtime", "1x"):
        return 1.0
    if t.endswith("x"):
        try:
            f = float(t[:-1])
        except ValueError:
            raise ValueError(f"bad speed {text!r}: max, realtime or a factor like 60x") from None
        if f > 0 and math.isfinite(f):
            return f
    raise ValueError(f"bad speed {text!r}: max, realtime or a factor like 60x")


@attrs.frozen
class PaperRunOptions:
    """What ``tradebot paper`` runs.

    Attributes:
        data_dir: kline directory; None = the bundled 3 days.
        symbols: subset of symbols; None = all in ``data_dir``.
        signals: ``"auto"`` (bundled file for bundled data, else ``generate``),
            ``"generate"`` (tradebot.signalgen on the replayed prices), a JSON-lines file
            path, or a ``ws://``/``wss://`` URL of a signal service.
        start, end: replay window (aware UTC); None = the data's common window.
        speed: see :func:`parse_speed` (None = max).
        venue_profile: ``"bybit"`` or ``"binance"``.
        dsn: journal database; None = the embedded server's ``tradebot_paper`` database,
            recreated for every run.
        reset_db: with an explicit ``dsn``, empty the journal tables first (otherwise a
            database that already holds events is refused).
        home: embedded server home (None = ``$TRADEBOT_HOME`` or the default).
        wallet_usdt: starting wallet of the paper account.
        latency_s: paper venue round trip of every state-changing request (virtual seconds
            under ``max``); queries are answered at once.
        config: a loaded ``tradebot.config.Config`` (policies, waves, risk, leverage, the
            paper venue's fees and slippage, the signal-service client settings), or None
            for the built-in defaults.
        progress: draw a progress line on ``progress_stream`` while running.
        max_move_pct: the replay's bound on a move between consecutive price points,
            percent (None = price jumps allowed); see :mod:`tradebot.price_checks`.
        allow_gaps: accept missing minutes in the data.
        ops: run the operations surface beside the account (``[health]`` HTTP server,
            control API, alerts, sd_notify ``READY=1`` / ``WATCHDOG=1`` / ``STOPPING=1``;
            :mod:`tradebot.cli._ops_wiring`); needs a ``speed`` (not virtual ``max``).
    """

    data_dir: Path | None = None
    symbols: Sequence[str] | None = None
    signals: str = "auto"
    start: datetime | None = None
    end: datetime | None = None
    speed: float | None = None
    venue_profile: str = "bybit"
    dsn: str | None = None
    reset_db: bool = False
    home: Path | None = None
    wallet_usdt: Decimal = Decimal(10000)
    latency_s: float = 0.05
    config: Any = None
    progress: bool = True
    max_move_pct: Decimal | None = DEFAULT_MAX_MOVE_PCT
    allow_gaps: bool = False
    ops: bool = False


@attrs.frozen
class PaperRunResult:
    """The report plus what a caller needs to look further (the journal DSN)."""

    report: RunReport
    dsn: str
    instrument_lines: tuple[str, ...]
    examples: dict[str, list[str]]
    notes: tuple[str, ...] = ()
    """Human notes about the run's inputs (symbols left out of the window, ...)."""


# --- database ------------------------------------------------------------------------------

PAPER_DATABASE = "tradebot_paper"
_JOURNAL_TABLES = (
    "events",
    "fills",
    "orders",
    "tp_levels",
    "positions",
    "signals",
    "waves",
    "alerts",
)


def prepare_database(opts: PaperRunOptions) -> str:
    """A migrated, empty journal database for this run; returns its DSN.

    Embedded default: the ``tradebot_paper`` database is dropped and recreated. An explicit
    DSN is migrated; if it already holds events it is emptied only with ``reset_db``.

    Raises:
        ConfigError: an explicit database holds events and ``reset_db`` is False.
    """
    from adapters.postgres.connection import connect
    from adapters.postgres.embedded import (
        dsn_for_database,
        embedded_pgdata,
        ensure_database,
        start_embedded_server_object,
    )
    from adapters.postgres.migrations import migrate

    if opts.dsn is None:
        server = start_embedded_server_object(embedded_pgdata(opts.home))
        admin = str(server.get_uri())
        with connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{PAPER_DATABASE}" WITH (FORCE)')
        ensure_database(admin, PAPER_DATABASE)
        dsn = dsn_for_database(admin, PAPER_DATABASE)
        migrate(dsn)
        return dsn
    dsn = opts.dsn
    migrate(dsn)
    with connect(dsn, autocommit=True) as conn:
        row = conn.execute("SELECT EXISTS (SELECT 1 FROM events)").fetchone()
        if row is not None and row[0]:
            if not opts.reset_db:
                raise ConfigError(
                    [
                        (
                            "--dsn",
                            "the database already holds journal events; "
                            "use an empty database or pass --reset-db to empty it",
                        )
                    ]
                )
            conn.execute(f"TRUNCATE {', '.join(_JOURNAL_TABLES)} CASCADE")
    return dsn


# --- signals --------------------------------------------------------------------------------


def _wave_ts_of(line: str) -> datetime | None:
    try:
        obj = json.loads(line)
        ts = obj.get("timestamp") or obj.get("wave_ts")
        return datetime.fromisoformat(str(ts).replace("Z", "+00:00"))
    except (ValueError, AttributeError, TypeError):
        return None


def _window_signals_file(
    src: Path, dst: Path, start: datetime, end: datetime, delay_min: int
) -> int:
    """Copy the lines of ``src`` whose wave can still be processed inside the window
    (``start <= T + delay <= end``) to ``dst``; lines without a readable timestamp are
    kept (the source journals them as rejections). Returns the number of lines kept."""
    kept = 0
    delay = timedelta(minutes=delay_min)
    with (
        open(src, encoding="utf-8", errors="surrogateescape") as fin,
        open(dst, "w", encoding="utf-8", errors="surrogateescape") as fout,
    ):
        for line in fin:
            if not line.strip():
                continue
            ts = _wave_ts_of(line)
            if ts is not None and ts.tzinfo is not None and not (start <= ts + delay <= end):
                continue
            fout.write(line if line.endswith("\n") else line + "\n")
            kept += 1
    return kept


# --- progress -------------------------------------------------------------------------------


class _Progress:
    """One self-overwriting status line on a TTY; a line every ~10 % otherwise."""

    def __init__(self, stream: TextIO, start_ms: int, end_ms: int, enabled: bool) -> None:
        self._s = stream
        self._start = start_ms
        self._span = max(1, end_ms - start_ms)
        self._on = enabled
        self._tty = enabled and stream.isatty()
        self._last_wall = 0.0
        self._last_decile = -1
        self._t0 = time.perf_counter()

    def update(
        self,
        ts: datetime,
        ts_ms: int,
        ticks: int,
        open_pos: int,
        opened: int,
        events: int,
        force: bool = False,
    ) -> None:
        if not self._on:
            return
        now = time.perf_counter()
        frac = min(1.0, max(0.0, (ts_ms - self._start) / self._span))
        decile = int(frac * 10)
        if self._tty:
            if not force and now - self._last_wall < 0.25:
                return
        elif not force and decile == self._last_decile:
            return
        self._last_wall = now
        self._last_decile = decile
        width = 24
        bar = "#" * int(frac * width) + "." * (width - int(frac * width))
        rate = ticks / max(1e-9, now - self._t0)
        line = (
            f"[{bar}] {frac * 100:5.1f}% sim {ts:%Y-%m-%d %H:%M}Z  positions "
            f"{open_pos} open / {opened} opened  events {events:,}  ticks {ticks:,} "
            f"({rate:,.0f}/s)"
        )
        if self._tty:
            self._s.write("\r" + line + "\x1b[K")
        else:
            self._s.write(line + "\n")
        self._s.flush()

    def done(self) -> None:
        if self._tty:
            self._s.write("\n")
            self._s.flush()


# --- determinism ----------------------------------------------------------------------------


class _NoShuffle(random.Random):
    def shuffle(self, x: Any) -> None:  # type: ignore[override]
        return None


@contextlib.contextmanager
def deterministic_trio_scheduling() -> Iterator[bool]:
    """Make trio run same-instant tasks in a fixed order (task creation order) while inside.

    Trio deliberately randomizes the order in which tasks that became runnable together
    are stepped (e.g. two timers of one PositionActor due at the same virtual instant: an
    age tick and a protection check). In a replay that turns into different — equally
    valid — interleavings, and the trade list differs run to run. Trio has a switch for
    exactly this (used by its Hypothesis integration): ``_ALLOW_DETERMINISTIC_SCHEDULING``
    sorts each batch by task creation order and then shuffles it with ``_r``; we set it
    and give it an ``_r`` whose shuffle is a no-op. Both are private, so this degrades to a
    no-op (yielding False) if a future trio renames them; the run is then still correct,
    just not guaranteed identical run to run. Only used for ``--speed max`` replays.
    """
    try:
        import trio._core._run as run_mod

        saved = (run_mod._ALLOW_DETERMINISTIC_SCHEDULING, run_mod._r)
    except (ImportError, AttributeError):
        yield False
        return
    run_mod._ALLOW_DETERMINISTIC_SCHEDULING = True  # type: ignore[misc]
    run_mod._r = _NoShuffle(0)
    try:
        yield True
    finally:
        run_mod._ALLOW_DETERMINISTIC_SCHEDULING, run_mod._r = saved  # type: ignore[misc]


# --- the run --------------------------------------------------------------------------------


@attrs.define
class _RunState:
    ticks: int = 0
    equity: list[tuple[datetime, Decimal]] = attrs.Factory(list)
    last_ts: datetime | None = None
    last_ts_ms: int = 0
    wall_s: float = 0.0
    sim_s: int = 0
    examples: dict[str, list[str]] = attrs.Factory(dict)
    spool_dir: Path | None = None
    journal_emitted: int = -1
    journal_spooled: int = -1
    projection_skipped: int = 0
    journal_by_type: dict[str, int] = attrs.Factory(dict)
    journal_server_restarts: int = 0
    kept_spool: tuple[Path, int] | None = None
    interrupted: str = ""
    """The signal that ended the replay early ("" = it ran to the end)."""


def _default_config() -> Any:
    """``tradebot.config.default_config()`` (None if the config module is unavailable)."""
    try:
        from tradebot.config import default_config
    except ImportError:  # pragma: no cover
        return None
    return default_config()


def _profile(opts: PaperRunOptions) -> Any:
    """The venue profile; fees and slippage from ``[paper]`` of the config when given."""
    make = PROFILES[opts.venue_profile]
    paper = getattr(opts.config, "paper", None)
    if paper is None:
        return make()
    return make(
        maker_fee_rate=Decimal(paper.maker_fee_pct) / 100,
        taker_fee_rate=Decimal(paper.taker_fee_pct) / 100,
        market_slippage_bps=Decimal(paper.slippage_pct) * 100,
    )


def _leverage(config: Any, symbols: Sequence[str]) -> dict[str, int]:
    """Leverage per symbol: ``[exchange]`` of the config, else 5 (the config default)."""
    exchange = getattr(config, "exchange", None)
    default = int(getattr(exchange, "default_leverage", 5))
    per_symbol = dict(getattr(exchange, "leverage_per_symbol", {}) or {})
    return {s: int(per_symbol.get(s, default)) for s in symbols}


def _settings(config: Any) -> tuple[Any, Any, str]:
    """(PositionSettings, WaveSettings, account) from a loaded config, or the defaults."""
    from tradebot.policies import PositionSettings
    from tradebot.signals import WaveSettings

    if config is None:
        return PositionSettings(), WaveSettings(account="paper"), "paper"
    to_pos = getattr(config, "position_settings", None)
    to_wave = getattr(config, "wave_settings", None)
    pos = to_pos() if callable(to_pos) else PositionSettings()
    wave = to_wave() if callable(to_wave) else WaveSettings(account="paper")
    account = str(getattr(wave, "account", "paper"))
    return pos, wave, account


async def _drive(
    replay: KlineReplay,
    venue: PaperVenue,
    engine: PaperEngine,
    on_mark: Callable[[MarkPrice], None],
    state: _RunState,
    progress: Callable[[datetime, int], None],
) -> None:
    """Feed the replay into the venue and the market router, on the trio clock."""
    t0 = trio.current_time()
    start_ms = replay.start_ms
    next_equity_ms = start_ms
    push = venue.push_mark
    ticks = 0
    for step in replay.steps():
        await trio.sleep_until(t0 + (step.ts_ms - start_ms) / 1000)
        ts = step.ts
        for symbol, price in step.marks:
            push(symbol, price, ts)
            on_mark(MarkPrice(symbol, price, ts))
        ticks += len(step.marks)
        for symbol, rate in step.funding:
            if engine.mark_price(symbol) is not None:
                venue.apply_funding(symbol, rate, ts)
        if step.ts_ms >= next_equity_ms:
            state.equity.append((ts, engine.wallet().equity_usdt))
            next_equity_ms = step.ts_ms + EQUITY_SAMPLE_S * 1000
        state.ticks = ticks
        state.last_ts = ts
        state.last_ts_ms = step.ts_ms
        progress(ts, step.ts_ms)
    # run to the end of the window (the last price holds until then), and at least 1 s
    # past the last price so that requests in flight settle
    last_ms = state.last_ts_ms if state.last_ts is not None else start_ms
    await trio.sleep_until(t0 + (max(replay.end_ms, last_ms + 1000) - start_ms) / 1000)
    end_ts = replay.end
    state.equity.append((end_ts, engine.wallet().equity_usdt))


def _stop_autojump_spin() -> None:
    """Let the trio loop sleep while the journal drains on its writer thread.

    With ``MockClock(autojump_threshold=0)`` an idle loop never blocks: while the only work
    left is the journal's writer thread, trio polls with a zero timeout in a busy loop
    (holding the GIL against that very thread; ~0.9 s of a 5 s 24 h replay). Every actor
    has stopped by now, so virtual time no longer decides anything: a threshold of 50 ms
    of real idleness keeps autojump working (a trio deadline still fires) without the spin.
    The thread's completion wakes the loop at once, so no latency is added.
    """
    trio_clock = trio.lowlevel.current_clock()
    if isinstance(trio_clock, trio.testing.MockClock) and trio_clock.autojump_threshold == 0:
        trio_clock.autojump_threshold = 0.05


@asynccontextmanager
async def _paper_ops(opts: PaperRunOptions, account: Any, tap: Any) -> AsyncIterator[Any]:
    """The operations surface of a ``--ops`` paper run (None without ``--ops``)."""
    if not opts.ops:
        yield None
        return
    from tradebot.cli._ops_wiring import open_ops_from_config

    async with open_ops_from_config(
        opts.config or _default_config(), account, tap, mode="paper", setup_logs=False
    ) as ops:
        yield ops


async def _run_tree(
    opts: PaperRunOptions,
    replay: KlineReplay,
    dsn: str,
    signals: Any,
    state: _RunState,
    monitor: InvariantMonitor,
    engine_box: list[PaperEngine],
    stream: TextIO,
) -> None:
    from actors.account import open_account
    from actors.runtime import RestartPolicy
    from adapters.postgres.journal import open_postgres_journal

    clock = TrioClock(replay.start)
    pos_settings, wave_settings, _account = _settings(opts.config)
    spool_dir = state.spool_dir
    assert spool_dir is not None
    restarter = None
    if opts.dsn is None:  # the embedded server is this run's own child: restart it if it dies
        from adapters.postgres.embedded import restart_embedded_server

        def restarter() -> object:
            return restart_embedded_server(opts.home)

    async with open_postgres_journal(
        dsn,
        spool_dir=spool_dir,
        durable_wait=False,
        clock=clock.now,
        drain_timeout_s=120.0,
        server_restarter=restarter,
    ) as journal:
        profile = _profile(opts)
        engine = PaperEngine(
            profile, replay.instruments, wallet_usdt=opts.wallet_usdt, start_ts=replay.start
        )
        engine_box.append(engine)
        # State-changing requests (entry, stop place/amend/cancel, reduce, cancel) take the
        # configured round trip, so the protection windows measured are those of the writes;
        # queries (positions, stops, orders, balance) are answered at once. A periodic
        # protection check of each position is two queries every 30 s: giving them a
        # virtual round trip changes no outcome but costs ~1/3 of the replay's speed.
        venue = PaperVenue(
            engine,
            clock=clock,
            latency_s=opts.latency_s,
            latency_by_method=dict.fromkeys(QUERY_METHODS, 0.0),
        )

        def on_step(step: EngineStep) -> None:
            sym = step.symbol
            if step.kind == "mark" and not step.events and sym and not monitor.watching(sym):
                monitor.skip()
                return
            monitor.observe(
                step.ts,
                engine.positions(sym) if sym else engine.positions(),
                engine.stops_for,
                engine.mark_price,
                symbol=sym,
            )

        engine.add_listener(on_step)
        journal.emit(
            Event.of(
                BotStarted(
                    mode="paper",
                    venue_profile=opts.venue_profile,
                    window_start=replay.start,
                    window_end=replay.end,
                    symbols=tuple(replay.symbols),
                    wallet_usdt=opts.wallet_usdt,
                    instrument_sources=replay.instrument_sources,
                    signals=Redactor().text(str(signals[0])),
                    symbols_left_out=replay.left_out,
                ),
                clock.now(),
            )
        )
        if state.kept_spool is not None:
            kept_path, kept_events = state.kept_spool
            journal.emit(
                Event.of(
                    SpoolKeptAside(
                        path=str(kept_path),
                        events=kept_events,
                        reason="stale spool of an earlier paper run whose database is "
                        "recreated for this run",
                    ),
                    clock.now(),
                    severity=Severity.WARNING,
                )
            )
        stats = getattr(journal, "stats", None)
        prog = _Progress(stream, replay.start_ms, replay.end_ms, opts.progress)

        def progress(ts: datetime, ts_ms: int) -> None:
            prog.update(
                ts,
                ts_ms,
                state.ticks,
                monitor.open_positions(),
                monitor.positions_seen,
                int(getattr(stats, "emitted", 0)) if stats is not None else 0,
            )

        try:
            _desc, make_source = signals
            acct_journal = journal
            if opts.ops:
                from tradebot.cli._ops_wiring import ops_journal

                acct_journal = ops_journal(journal, opts.config or _default_config())
            async with (
                open_account(
                    port=venue,
                    journal=acct_journal,
                    clock=clock,
                    instruments=replay.instruments,
                    settings=pos_settings,
                    waves=wave_settings,
                    signal_source=make_source,
                    leverage=_leverage(opts.config, replay.symbols),
                    policy=RestartPolicy(),
                ) as account,
                _paper_ops(opts, account, acct_journal) as ops,
            ):
                if ops is not None:
                    ops.ready("paper replay running")
                wall0 = time.perf_counter()
                async with open_shutdown_watch(stream) as shutdown:
                    with shutdown.cancel_on_request():
                        await _drive(
                            replay, venue, engine, account.market.set_mark, state, progress
                        )
                state.interrupted = shutdown.signal_name
                state.wall_s = time.perf_counter() - wall0
                if ops is not None:
                    ops.stopping("paper replay finished")
                prog.update(
                    replay.end,
                    replay.end_ms,
                    state.ticks,
                    monitor.open_positions(),
                    monitor.positions_seen,
                    int(getattr(stats, "emitted", 0)) if stats is not None else 0,
                    force=True,
                )
                prog.done()
                stop_reason = (
                    f"signal {state.interrupted}" if state.interrupted else "replay finished"
                )
                journal.emit(
                    Event.of(
                        BotStopping(
                            reason=stop_reason,
                            open_positions=account.positions.open_count(),
                        ),
                        clock.now(),
                    )
                )
        except BaseException as exc:
            # The run failed: the journal still closes with bot.stopped and the reason;
            # positions are left as they are, with their stops on the venue (no flatten).
            from tradebot.cli._errors import user_error

            err = user_error(exc)
            _stop_autojump_spin()
            journal.emit(
                Event.of(
                    BotStopped(
                        reason="interrupted" if isinstance(err, KeyboardInterrupt) else "error",
                        error=f"{type(err).__name__}: {err}"[:2000],
                        open_positions=len(engine.positions()),
                    ),
                    clock.now(),
                    severity=Severity.ERROR,
                )
            )
            raise
        journal.emit(
            Event.of(
                BotStopped(
                    reason=stop_reason,
                    open_positions=len(engine.positions()) if state.interrupted else None,
                ),
                clock.now(),
            )
        )
        state.sim_s = (
            int((clock.now() - replay.start).total_seconds())
            if state.interrupted
            else replay.duration_s
        )
        _stop_autojump_spin()
    # the journal has drained (its context exited): what it handed to the database
    if stats is not None:
        state.journal_emitted = int(getattr(stats, "emitted", -1))
        state.journal_spooled = int(getattr(stats, "spooled", -1))
        state.projection_skipped = int(getattr(stats, "projection_skipped", 0))
        state.journal_by_type = dict(getattr(stats, "by_type", {}))
        state.journal_server_restarts = int(getattr(stats, "server_restarts", 0))


def _paper_spool_dir(opts: PaperRunOptions, err: TextIO, state: _RunState) -> Path:
    """Where this run's journal spools if the database goes away mid-run.

    ``<home>/paper-spool`` (home: ``opts.home``, else the embedded server's default home).
    A spool left there by an
    earlier paper run belongs to a journal database that no longer exists (it is recreated
    or emptied for every run), so it is not replayed into this one — and never discarded:
    it is moved to ``<home>/paper-spool/kept/journal-spool-<time>-previous-paper-run.jsonl``
    (with its ``.meta.json``), the run says so and journals ``SPOOL_KEPT_ASIDE``, and
    ``tradebot db replay-spool --spool FILE --dsn DSN --force`` loads it into a database.
    """
    from adapters.postgres.embedded import default_home as embedded_home
    from adapters.postgres.journal import (
        SPOOL_FILE_NAME,
        spool_event_count,
        spool_meta_path_for,
    )

    # never a temporary directory: a spool must outlive the run when the database is gone
    spool_dir = (opts.home if opts.home is not None else embedded_home()) / "paper-spool"
    stale = spool_dir / SPOOL_FILE_NAME
    n = spool_event_count(stale)
    if n > 0:
        stamp = datetime.fromtimestamp(stale.stat().st_mtime, UTC).strftime("%Y%m%dT%H%M%SZ")
        kept_dir = spool_dir / "kept"
        kept_dir.mkdir(parents=True, exist_ok=True)
        kept = kept_dir / f"journal-spool-{stamp}-previous-paper-run.jsonl"
        k = 1
        while kept.exists():
            k += 1
            kept = kept_dir / f"journal-spool-{stamp}-previous-paper-run-{k}.jsonl"
        os.replace(stale, kept)
        meta = spool_meta_path_for(stale)
        if meta.exists():
            os.replace(meta, spool_meta_path_for(kept))
        state.kept_spool = (kept, n)
        err.write(
            f"kept a stale paper-run journal spool aside ({n} events; its database "
            f"{PAPER_DATABASE} is recreated for this run): {kept}\n"
            f"  load it into a database later: tradebot db replay-spool --spool {kept} "
            "--dsn DSN --force\n"
        )
    else:
        stale.unlink(missing_ok=True)
    return spool_dir


def _signal_source(
    opts: PaperRunOptions, replay: KlineReplay, tmpdir: Path, delay_min: int
) -> tuple[str, Callable[[Any, Any], Any]]:
    """(description, factory(journal, clock) → SignalSource)."""
    from adapters.signals import FileSignalSource, WebSocketSignalSource
    from tradebot import signalgen

    spec = opts.signals.strip()
    if spec.startswith(("ws://", "wss://")):
        if opts.speed is None:
            raise ConfigError(
                [
                    (
                        "--signals",
                        "a WebSocket signal source needs --speed "
                        "realtime (or Nx): virtual time cannot wait for a network",
                    )
                ]
            )
        from tradebot.signals import FeedSettings

        to_feed = getattr(opts.config, "feed_settings", None)
        base = to_feed() if callable(to_feed) else FeedSettings()
        settings = attrs.evolve(base, url=spec)
        return spec, lambda journal, clock: WebSocketSignalSource(
            settings, journal=journal, clock=clock
        )
    if spec == "auto":
        spec = "bundled" if opts.data_dir is None else "generate"
    path = tmpdir / "signals-window.jsonl"
    if spec == "generate":
        from adapters.replay import ReplayDataError

        try:
            waves = signalgen.generate(
                replay.data_dir,
                start=replay.start - timedelta(minutes=15),
                end=replay.end,
                symbols=replay.symbols,
            )
        except ValueError as exc:  # a bad row outside the window (the generator reads it all)
            raise ReplayDataError(f"signal generation: {exc}", rule="format") from None
        src = tmpdir / "signals-generated.jsonl"
        with open(src, "w", encoding="utf-8") as fh:
            signalgen.write_jsonl(waves, fh)
        desc = f"generated from the replayed prices ({len(waves)} waves, tradebot.signalgen)"
    elif spec == "bundled":
        src = signalgen.bundled_signals_path()
        desc = f"bundled {src.name}"
    else:
        src = Path(spec).expanduser()
        if not src.is_file():
            raise ConfigError([("--signals", f"no such file: {src}")])
        desc = str(src)
    kept = _window_signals_file(src, path, replay.start, replay.end, delay_min)
    desc += f"; {kept} waves in the window"
    return desc, lambda journal, clock: FileSignalSource(
        path, journal=journal, clock=clock, paced=True, arrival_offset_s=SIGNAL_ARRIVAL_OFFSET_S
    )


class PaperRunFailed(TradebotError):
    """The paper run stopped on an error (after the journal closed with ``bot.stopped``).

    Attributes:
        user_cause: the error that stopped it (possibly an exception group; the CLI shows
            its leaf, :func:`tradebot.cli._errors.user_error`).
        user_notes: what was left behind: the positions still open on the paper venue,
            each with its stop (they are not flattened on an error).
        open_positions: the same as ``(symbol, position_side, qty, entry_price, stops)``.
    """

    def __init__(
        self,
        cause: BaseException,
        notes: list[str],
        open_positions: list[tuple[str, str, Decimal, Decimal, list[Decimal]]],
    ) -> None:
        super().__init__(f"paper run failed: {type(cause).__name__}: {cause}")
        self.user_cause = cause
        self.user_notes = notes
        self.open_positions = open_positions


def _raise_run_failed(
    exc: BaseException, engine_box: list[PaperEngine], replay: KlineReplay
) -> NoReturn:
    from tradebot.cli._errors import user_error

    if isinstance(user_error(exc), KeyboardInterrupt):
        raise KeyboardInterrupt from exc
    engine = engine_box[0] if engine_box else None
    open_positions: list[tuple[str, str, Decimal, Decimal, list[Decimal]]] = []
    if engine is not None:
        for p in engine.positions():
            stops = [s.trigger_price for s in engine.stops_for(p.symbol, p.position_side)]
            open_positions.append((p.symbol, p.position_side.value, p.qty, p.entry_price, stops))
    notes = [
        f"the run stopped at {engine.now.isoformat() if engine else replay.start.isoformat()}; "
        "the journal closed with bot.stopped (reason: error)"
    ]
    if open_positions:
        notes.append(
            f"{len(open_positions)} position(s) left open, each with its stop on the paper venue:"
        )
        for sym, side, qty, entry, stops in open_positions:
            stop_text = ", ".join(str(x) for x in stops) if stops else "NONE"
            notes.append(f"  {sym} {side} qty {qty} entry {entry} stop {stop_text}")
    else:
        notes.append("no position was open")
    raise PaperRunFailed(exc, notes, open_positions) from exc


def run_paper(opts: PaperRunOptions, *, stream: TextIO | None = None) -> PaperRunResult:
    """Run the paper account over the replay and return the report.

    One run per home (or ``--dsn`` database) at a time (:mod:`tradebot.cli._paper_lock`).
    SIGINT / SIGTERM end the replay early and gracefully (:mod:`tradebot.cli._shutdown`):
    the tree stops in order, ``bot.stopped`` is journaled with the signal, and the report
    of the part replayed is returned (``details.interrupted``).

    Raises:
        PaperRunLocked: another paper run holds this home's lock.
        adapters.replay.ReplayDataError: bad ``--data`` / window (before anything runs).
        ConfigError: bad options (unknown profile, WebSocket with ``max`` speed, ...).
        PaperRunFailed: the run started and stopped on an error (its ``user_cause``); the
            journal closed with ``bot.stopped``, open positions kept their stops.
        Exception: database failures before the run (embedded server, migrations).
    """
    from tradebot.cli._paper_lock import paper_lock

    with paper_lock(opts.dsn, opts.home):
        return _run_paper_locked(opts, stream=stream)


def _run_paper_locked(opts: PaperRunOptions, *, stream: TextIO | None = None) -> PaperRunResult:
    err = stream if stream is not None else sys.stderr
    if opts.config is None:
        opts = attrs.evolve(opts, config=_default_config())
    if opts.venue_profile not in PROFILES:
        raise ConfigError([("--venue-profile", f"expected one of {', '.join(PROFILES)}")])
    replay = KlineReplay(
        opts.data_dir,
        symbols=opts.symbols,
        start=opts.start,
        end=opts.end,
        max_move_pct=opts.max_move_pct,
        allow_gaps=opts.allow_gaps,
    )
    _pos, wave_settings, _account = _settings(opts.config)
    with tempfile.TemporaryDirectory(prefix="tradebot-paper-") as tmp:
        signals = _signal_source(opts, replay, Path(tmp), int(wave_settings.delay_min))
        dsn = prepare_database(opts)
        state = _RunState()
        state.spool_dir = _paper_spool_dir(opts, err, state)
        monitor = InvariantMonitor()
        engine_box: list[PaperEngine] = []
        clock_arg: dict[str, Any] = {}
        if opts.speed is None:
            clock_arg["clock"] = trio.testing.MockClock(autojump_threshold=0)
        elif opts.speed != 1.0:
            clock_arg["clock"] = trio.testing.MockClock(rate=opts.speed)
        t_wall = time.perf_counter()
        with contextlib.ExitStack() as stack:
            deterministic = False
            if opts.speed is None:
                deterministic = stack.enter_context(deterministic_trio_scheduling())
            try:
                trio.run(
                    _run_tree,
                    opts,
                    replay,
                    dsn,
                    signals,
                    state,
                    monitor,
                    engine_box,
                    err,
                    **clock_arg,
                )
            except BaseException as exc:
                _raise_run_failed(exc, engine_box, replay)
        total_wall = time.perf_counter() - t_wall
    engine = engine_box[0]
    import psycopg

    from adapters.postgres.journal import SPOOL_FILE_NAME, spool_event_count
    from tradebot.cli._journal_read import (
        close_reasons,
        event_counts,
        journaled_trade_fills,
        positions_by_exit,
    )

    spool_path = (state.spool_dir or Path(".")) / SPOOL_FILE_NAME
    journal_state: dict[str, Any] = {"database": "reachable"}
    db_reasons: dict[str, int] | None
    try:
        counts = event_counts(dsn)
        journaled_fills: int | None = journaled_trade_fills(dsn)
        db_reasons = close_reasons(dsn)
        examples = positions_by_exit(dsn)
    except psycopg.Error as exc:
        # The database is gone (and could not be restarted): the events are in the spool.
        # Report from the journal's own counts and say how to load the spool later.
        counts = dict(state.journal_by_type)
        journaled_fills, db_reasons, examples = None, None, {}
        spooled = spool_event_count(spool_path)
        journal_state = {
            "database": "unreachable at the end of the run",
            "error": f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc) else ''}",
            "events_in_spool": spooled,
            "spool": str(spool_path),
            "replay_command": (
                f"tradebot db replay-spool --paper --spool {spool_path}"
                if opts.dsn is None
                else f"tradebot db replay-spool --spool {spool_path} --dsn DSN"
            ),
            "counts_from": "the journal's own emit counters (not the database)",
        }
    else:
        left = spool_event_count(spool_path)
        if left:
            journal_state = {
                "database": "reachable",
                "events_in_spool": left,
                "spool": str(spool_path),
                "replay_command": f"tradebot db replay-spool --paper --spool {spool_path}"
                if opts.dsn is None
                else f"tradebot db replay-spool --spool {spool_path} --dsn DSN",
            }
    journal_state["server_restarts"] = state.journal_server_restarts
    if state.kept_spool is not None:
        journal_state["kept_aside_spool"] = str(state.kept_spool[0])
    fills = sorted([*engine.trade_log, *engine.funding_log], key=lambda f: f.ts)
    details = {
        "venue_profile": opts.venue_profile,
        "window_start": replay.start.isoformat(),
        "window_end": replay.end.isoformat(),
        "symbols": list(replay.symbols),
        "symbols_left_out": dict(replay.left_out),
        "max_move_pct": opts.max_move_pct,
        "allow_gaps": opts.allow_gaps,
        "instrument_sources": dict(replay.instrument_sources),
        "signals": signals[0],
        "speed": "max" if opts.speed is None else f"{opts.speed:g}x",
        "latency_ms": round(opts.latency_s * 1000, 3),
        "open_positions_at_end": len(engine.positions()),
        "unprotected_ms_total": monitor.summary().unprotected_ms,
        "driver_wall_s": round(state.wall_s, 3),
        "journal_db": PAPER_DATABASE if opts.dsn is None else "--dsn",
        "deterministic_scheduling": deterministic,
        "journal_emitted": state.journal_emitted,
        "journal_spooled": state.journal_spooled,
        "journal_projection_skipped": state.projection_skipped,
        "trades_journaled_as_order_fill": journaled_fills,
        "journal": journal_state,
        "interrupted": state.interrupted or None,
    }
    report = build_report(
        event_counts=counts,
        fills=fills,
        invariants=monitor.summary(end_ts=replay.end),
        start_ts=replay.start,
        starting_wallet_usdt=opts.wallet_usdt,
        equity_curve=state.equity,
        ticks_processed=state.ticks,
        wall_s=total_wall,
        sim_s=state.sim_s,
        details=details,
        close_reasons=db_reasons,
    )
    return PaperRunResult(
        report=report,
        dsn=dsn,
        instrument_lines=tuple(replay.describe_instruments()),
        examples=examples,
        notes=tuple(replay.notes),
    )


def default_home() -> Path | None:
    env = os.environ.get("TRADEBOT_HOME", "").strip()
    return Path(env).expanduser() if env else None
