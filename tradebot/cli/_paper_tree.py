"""The trio main of a ``tradebot paper`` run: the journal, the paper engine and venue with
the invariant monitor on every engine step, the account tree (:func:`actors.account.open_account`),
the optional operations surface, the replay driven to its end, and ``bot.started`` /
``bot.stopping`` / ``bot.stopped`` journaled in every outcome."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from decimal import Decimal
from typing import Any, TextIO

from adapters.paper import EngineStep, PaperEngine, PaperVenue
from adapters.replay import KlineReplay
from tradebot.cli._paper_drive import _drive, _Progress, _RunState, _stop_autojump_spin
from tradebot.cli._paper_options import (
    QUERY_METHODS,
    PaperRunOptions,
    _default_config,
    _leverage,
    _profile,
    _settings,
)
from tradebot.cli._shutdown import open_shutdown_watch
from tradebot.clock import TrioClock
from tradebot.events import BotStarted, BotStopped, BotStopping, Event, Severity, SpoolKeptAside
from tradebot.invariants import InvariantMonitor
from tradebot.redact import Redactor

__all__ = ["_run_tree"]


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
        writer_process=True,
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

        mark_of = engine.mark_price

        def on_step(step: EngineStep) -> None:
            # every step but a mark step with no event (that one comes to on_quiet_mark)
            sym = step.symbol
            monitor.observe(
                step.ts,
                engine.positions(sym) if sym else engine.positions(),
                engine.stops_for,
                mark_of,
                symbol=sym,
            )

        observe_quiet_mark = monitor.observe_quiet_mark
        positions_of, stops_for = engine.positions, engine.stops_for  # bound once, not per mark

        def on_quiet_mark(sym: str, mark: Decimal, ts: datetime) -> None:
            observe_quiet_mark(ts, sym, mark, positions_of, stops_for, mark_of)

        engine.add_listener(on_step, on_quiet_mark=on_quiet_mark)
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
            if not opts.progress:
                return  # (no figures gathered per step for a line nobody sees)
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
                            replay, venue, engine, account.market.set_marks, state, progress
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
        state.journal_drain_s = float(getattr(stats, "drain_s", 0.0))
        state.journal_drain_events = int(getattr(stats, "drain_events", 0))
