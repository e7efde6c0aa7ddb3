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
import gc
import random
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path
from typing import Any, NoReturn, TextIO

import attrs
import trio

from adapters.paper import PaperEngine
from adapters.replay import KlineReplay
from tradebot.cli._paper_db import PAPER_DATABASE, _paper_spool_dir, prepare_database
from tradebot.cli._paper_drive import _RunState
from tradebot.cli._paper_options import (
    PROFILES,
    PaperRunFailed,
    PaperRunOptions,
    PaperRunResult,
    _default_config,
    _settings,
    parse_speed,
)
from tradebot.cli._paper_options import default_home as default_home
from tradebot.cli._paper_signals import _signal_source
from tradebot.cli._paper_tree import _run_tree
from tradebot.errors import ConfigError
from tradebot.invariants import InvariantMonitor
from tradebot.report import build_report
from tradebot.scheduling import MockClock, replay_clock

__all__ = [
    "PROFILES",
    "PaperRunFailed",
    "PaperRunOptions",
    "PaperRunResult",
    "parse_speed",
    "run_paper",
]


# --- determinism --------------------------------------------------------------------------


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


# --- the run ------------------------------------------------------------------------------


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
    # Loading (klines parse, signal generation) allocates ~10 objects per candle and frees
    # none of them: the cyclic collector would walk the growing heap again and again for
    # nothing (~10 % of the load). It is paused until the replay starts (and the loaded
    # data is frozen out of its reach there, see _run_loaded).
    gc_was_on = gc.isenabled()
    gc.disable()
    try:
        return _run_loaded(opts, stream, gc_was_on)
    finally:
        if gc_was_on:
            gc.enable()


def _run_loaded(opts: PaperRunOptions, stream: TextIO | None, gc_was_on: bool) -> PaperRunResult:
    err = stream if stream is not None else sys.stderr
    if opts.config is None:
        opts = attrs.evolve(opts, config=_default_config())
    if opts.venue_profile not in PROFILES:
        raise ConfigError([("--venue-profile", f"expected one of {', '.join(PROFILES)}")])
    # The embedded journal database (recreated for every run) is prepared on a thread
    # while the klines are read and checked: the two overlap (the thread mostly waits on
    # the server). With an explicit --dsn the data is checked first, so a bad file never
    # touches the user's database.
    with contextlib.ExitStack() as prep_stack:
        prep: Future[str] | None = None
        if opts.dsn is None:
            pool = prep_stack.enter_context(
                ThreadPoolExecutor(max_workers=1, thread_name_prefix="paper-db")
            )
            prep = pool.submit(prepare_database, opts)
        replay = KlineReplay(
            opts.data_dir,
            symbols=opts.symbols,
            start=opts.start,
            end=opts.end,
            max_move_pct=opts.max_move_pct,
            allow_gaps=opts.allow_gaps,
        )
        dsn = prep.result() if prep is not None else ""
    _pos, wave_settings, _account = _settings(opts.config)
    with tempfile.TemporaryDirectory(prefix="tradebot-paper-") as tmp:
        signals = _signal_source(opts, replay, Path(tmp), int(wave_settings.delay_min))
        if prep is None:
            dsn = prepare_database(opts)
        state = _RunState()
        state.spool_dir = _paper_spool_dir(opts, err, state)
        monitor = InvariantMonitor()
        engine_box: list[PaperEngine] = []
        clock_arg: dict[str, Any] = {}
        if opts.speed is None:
            clock_arg["clock"] = replay_clock()
        elif opts.speed != 1.0:
            clock_arg["clock"] = MockClock(rate=opts.speed)
        t_wall = time.perf_counter()
        with contextlib.ExitStack() as stack:
            # The parsed klines (and everything loaded so far) live until the end: keep the
            # cyclic collector from walking them at every full collection (~8 of them, each
            # ~85 ms over the 25-day set); undone when the replay ends.
            gc.freeze()
            stack.callback(gc.unfreeze)
            if gc_was_on:
                gc.enable()  # the replay makes cycles (trio's tasks, exceptions)
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
        "journal_drain_s": round(state.journal_drain_s, 3),
        "journal_drain_events": state.journal_drain_events,
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
