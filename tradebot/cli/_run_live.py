"""``tradebot run``: the bot live on one exchange account (or a dry run on its live market).

Wiring only (``tradebot.cli`` is the one place that imports both actors and adapters): the
account tree is :func:`actors.account.open_account`, the same one ``tradebot paper``
replays. Start-up, in this order, each step journaled as ``bot.startup_step``
(:class:`tradebot.events.StartupStep`; the steps before the journal opens are journaled
once it is open, with their own times) and each failure one clear line and an exit code
(docs/ARCHITECTURE.md §10)::

    1 config          load + check the file; bot.mode live (or dry-run); secrets present;
                      URL overrides of another environment refused              → exit 2
    2 lock            PostgreSQL session advisory lock of the account on a dedicated
                      connection held for the process lifetime; a second instance is
                      told which pid/host holds it                              → exit 1
    3 schema          refuse a schema older than the code (run tradebot db migrate) → 1
    4 venue_clock     venue server time (clock offset for signing)              → exit 1
    5 authentication  one signed call (balance); bad keys / wrong environment are named
                      as such                                                   → exit 2
                      (dry-run: skipped, no keys)
    6 instruments     the venue's instruments; the traded symbols (all trading USDT
                      perpetuals, or --symbols)                                 → exit 1/2
    7 account_setup   hedge mode verified per traded symbol, leverage          → exit 1
                      (dry-run: the paper engine, fed by the venue's public marks)
      the account tree starts (open_account), signals gated
    8 reconciliation  the Reconciler's start-up pass (actors/reconcile): journaled
                      intents resolved, tracked positions resumed from their snapshots
                      (or closed with their exit fills when flat), untracked ones adopted
                      or alerted (``reconcile.untracked``), zombie orders cancelled;
                      a failed read → exit 1 (dry-run: skipped, the paper engine starts
                      flat). Then the Reconciler runs every ``reconcile.interval_s`` and
                      after every private-stream gap; the operations surface (health,
                      metrics, status page, control API, alerts) starts with the tree
                      and sends READY=1 after this step
    9 signals         only now the signal feed connects to signals.url

Running: until SIGTERM/SIGINT (:mod:`tradebot.cli._shutdown`) → graceful stop: no new
signals, the wave processor and the positions stop in order within
``bot.shutdown_grace_s`` (in-flight opens finish or roll back), exchange stops stay in
place, ``bot.stopped`` is journaled, the journal drains, exit 0.

Safe mode (exit 3, so systemd restarts the process): the tree gave up (a supervisor's
restart intensity exceeded), the venue refused our credentials while running
(``FatalVenueError``), or the journal lost events / is down with more than
:data:`SPOOL_LIMIT_EVENTS` not durable. Then: no new entries (the tree is stopped), every
open position on the venue is checked for a stop (an alert per position without one),
``bot.safe_mode`` with the reason and the counts, an ``alert.raised`` (critical),
``bot.stopped``.

Dry-run (``--dry-run`` or ``bot.mode = "dry-run"``): the venue adapter is built WITHOUT
keys and only its public endpoints are used (server time, instruments, the mark-price
stream); the orders go to the paper engine (:mod:`adapters.paper`) whose marks are the
venue's live marks. The journal account is ``<bot.account>-dry-run`` (its own lock, its own
position ids), so a dry run never touches the live account's journal state.

Exit codes: 0 stopped by a signal, 1 venue/database failure or another instance running,
2 configuration or credentials, 3 safe mode.

This module runs steps 1-3 (:func:`run_live`) and re-exports the launcher's public names.
The parts: :mod:`tradebot.cli._run_steps` (options, exit codes, the step records),
:mod:`tradebot.cli._run_checks` (environment, clock offset, schema),
:mod:`tradebot.cli._run_session` (the journal, the venue, steps 4-9, the account tree, the
graceful stop, the dry-run marks), :mod:`tradebot.cli._run_safe_mode` (safe mode).
"""

from __future__ import annotations

import os
import sys
import time
from typing import TextIO

import trio

from tradebot.cli._run_checks import (
    CLOCK_OFFSET_ENV,
    _clock,
    check_environment,
    check_schema,
)
from tradebot.cli._run_safe_mode import SPOOL_LIMIT_EVENTS
from tradebot.cli._run_session import _main
from tradebot.cli._run_steps import (
    EXIT_CONFIG,
    EXIT_OK,
    EXIT_RUNTIME,
    EXIT_SAFE_MODE,
    RunOptions,
    StartupFailed,
    _err,
    _Steps,
)
from tradebot.clock import WallClock
from tradebot.errors import ConfigError

__all__ = [
    "CLOCK_OFFSET_ENV",
    "EXIT_CONFIG",
    "EXIT_OK",
    "EXIT_RUNTIME",
    "EXIT_SAFE_MODE",
    "SPOOL_LIMIT_EVENTS",
    "RunOptions",
    "StartupFailed",
    "check_environment",
    "check_schema",
    "run_live",
]

_OPEN_STATUSES = ("OPENING", "ACTIVE", "CLOSING", "FAILED")


def run_live(opts: RunOptions, *, out: TextIO | None = None) -> int:
    """Start-up, run until a signal, graceful stop (module docstring). Returns the exit
    code; every failure is one clear line on ``out`` (default stderr), no traceback."""
    stream = out if out is not None else sys.stderr
    from tradebot.config import load_config

    boot = WallClock()
    steps = _Steps(boot, stream)
    t0 = time.perf_counter()
    # 1. config
    try:
        cfg = load_config(opts.config_path, require_secrets=False)
        mode = "dry-run" if opts.dry_run or cfg.bot.mode == "dry-run" else cfg.bot.mode
        if mode == "paper":
            raise ConfigError(
                [
                    (
                        "bot.mode",
                        'is "paper": `tradebot run` trades on the exchange and needs '
                        'bot.mode = "live" (or "dry-run", or --dry-run to rehearse on the '
                        "live market without orders); replay history with `tradebot paper`",
                    )
                ]
            )
        check_environment(cfg)
        credentials: tuple[str, str] = ("", "")
        if mode == "live":
            from adapters.bybit.factory import read_credentials

            credentials = read_credentials(cfg.exchange.api_key_env, cfg.exchange.api_secret_env)
        feed = cfg.feed_settings()
        clock = _clock(cfg)
    except ConfigError as exc:
        for key, reason in exc.problems:
            print(f"{key}: {reason}", file=stream)
        return EXIT_CONFIG
    steps.clock = clock
    account_name = cfg.bot.account if mode == "live" else f"{cfg.bot.account}-dry-run"
    steps.record(
        "config",
        "ok",
        f"{opts.config_path}: mode {mode}, {cfg.exchange.venue} {cfg.exchange.environment}, "
        f"account {account_name}",
        t0,
    )
    # 2. database and lock
    t0 = time.perf_counter()
    from adapters.postgres.embedded import resolve_dsn
    from adapters.postgres.instance import InstanceAlreadyRunning, acquire_instance_lock

    try:
        dsn = resolve_dsn(cfg.database.dsn or None, home=cfg.home_path())
        from tradebot import __version__

        lock = acquire_instance_lock(dsn, account_name, version=__version__)
    except InstanceAlreadyRunning as exc:
        h = exc.holder
        print(
            f"lock: another tradebot run holds account {account_name!r} "
            f"(pid {h.get('pid', '?')} on host {h.get('hostname') or '?'}, since "
            f"{h.get('started_at')}); refusing to start a second instance",
            file=stream,
        )
        return EXIT_RUNTIME
    except Exception as exc:  # database unreachable / embedded server cannot start
        print(f"lock: cannot reach the database: {_err(exc)}", file=stream)
        return EXIT_RUNTIME
    try:
        steps.record("lock", "ok", f"account {account_name} (pid {os.getpid()})", t0)
        # 3. schema
        t0 = time.perf_counter()
        try:
            schema = check_schema(dsn)
        except StartupFailed as exc:
            print(f"schema: {exc.message}", file=stream)
            return EXIT_RUNTIME
        except Exception as exc:
            print(f"schema: cannot read the schema: {_err(exc)}", file=stream)
            return EXIT_RUNTIME
        steps.record("schema", "ok", schema, t0)
        try:
            return trio.run(
                _main, opts, cfg, mode, account_name, credentials, feed, clock, dsn, steps
            )
        except KeyboardInterrupt:  # a signal before the receiver was installed
            print("interrupted during start-up", file=stream)
            return EXIT_RUNTIME
    finally:
        lock.release()
