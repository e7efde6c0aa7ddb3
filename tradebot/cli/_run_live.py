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
"""

from __future__ import annotations

import ipaddress
import os
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlsplit

import attrs
import trio

from tradebot.cli._shutdown import ShutdownWatch, open_shutdown_watch
from tradebot.clock import WallClock
from tradebot.config import Config
from tradebot.domain import InstrumentStatus
from tradebot.errors import (
    ConfigError,
    FatalVenueError,
    ReconcileFailed,
    SupervisorEscalation,
    VenueError,
)
from tradebot.events import (
    AlertRaised,
    BotStarted,
    BotStopped,
    BotStopping,
    Event,
    SafeModeEntered,
    Severity,
    StartupStep,
)

__all__ = [
    "EXIT_CONFIG",
    "EXIT_OK",
    "EXIT_RUNTIME",
    "EXIT_SAFE_MODE",
    "SPOOL_LIMIT_EVENTS",
    "RunOptions",
    "run_live",
]

EXIT_OK = 0
EXIT_RUNTIME = 1
EXIT_CONFIG = 2
EXIT_SAFE_MODE = 3

SPOOL_LIMIT_EVENTS = 1_000_000
"""Journal down with more events than this not durable (or any event lost) → safe mode."""
JOURNAL_CHECK_INTERVAL_S = 1.0
CLOCK_OFFSET_ENV = "TRADEBOT_CLOCK_OFFSET_S"
"""Rehearsal/test seam: shift the bot's clock (wave timing, journal times) by this many
seconds. Honoured only when every exchange and signal URL is a loopback address (a
sandbox), refused otherwise (exit 2)."""
_OPEN_STATUSES = ("OPENING", "ACTIVE", "CLOSING", "FAILED")


@attrs.frozen
class RunOptions:
    """What ``tradebot run`` runs.

    Attributes:
        config_path: the config file.
        dry_run: ``--dry-run`` (else ``bot.mode`` decides).
        symbols: ``--symbols`` subset of the venue's instruments; None = every trading
            USDT perpetual the venue lists.
    """

    config_path: Path
    dry_run: bool = False
    symbols: Sequence[str] | None = None


class StartupFailed(Exception):
    """A start-up step failed: ``message`` is the one line for the user."""

    def __init__(self, step: str, exit_code: int, message: str) -> None:
        super().__init__(message)
        self.step = step
        self.exit_code = exit_code
        self.message = message


class _SafeMode(Exception):
    def __init__(self, reason: str, error: str, supervisor: str = "", child: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.error = error
        self.supervisor = supervisor
        self.child = child


class _OffsetClock:
    """The wall clock shifted by ``offset_s`` (:data:`CLOCK_OFFSET_ENV`)."""

    def __init__(self, offset_s: float) -> None:
        self._offset = timedelta(seconds=offset_s)

    def now(self) -> datetime:
        return datetime.now(UTC) + self._offset


@attrs.define
class _Steps:
    """The start-up steps done so far; journaled as soon as (and whenever) a journal is
    there."""

    clock: Any
    out: TextIO
    pending: list[Event] = attrs.Factory(list)
    journal: Any = None

    def record(
        self,
        step: str,
        status: str,
        detail: str,
        t0: float,
        exit_code: int | None = None,
    ) -> None:
        event = Event.of(
            StartupStep(
                step=step,
                status=status,  # type: ignore[arg-type]
                detail=detail,
                elapsed_ms=round((time.perf_counter() - t0) * 1000, 3),
                exit_code=exit_code,
            ),
            self.clock.now(),
            severity=Severity.ERROR if status == "failed" else Severity.INFO,
        )
        if status != "failed":
            print(f"{step:<15} {status:<7} {detail}", file=self.out, flush=True)
        if self.journal is None:
            self.pending.append(event)
        else:
            self.journal.emit(event)

    def attach(self, journal: Any) -> None:
        self.journal = journal
        for event in self.pending:
            journal.emit(event)
        self.pending.clear()


# --- helpers -------------------------------------------------------------------------------


def _is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _venue_urls(cfg: Config) -> dict[str, str]:
    """``{config key: URL}`` the venue adapter will use (overrides, else the standard
    URLs of ``exchange.environment``)."""
    ex = cfg.exchange
    if ex.venue == "bybit":
        from adapters.bybit import bybit_urls

        b = bybit_urls(
            ex.environment,
            rest_url=ex.rest_url or None,
            public_ws_url=ex.ws_public_url or None,
            private_ws_url=ex.ws_private_url or None,
        )
        return {
            "exchange.rest_url": b.rest_url,
            "exchange.ws_public_url": b.public_ws_url,
            "exchange.ws_private_url": b.private_ws_url,
        }
    from adapters.binance import binance_urls

    n = binance_urls(
        ex.environment,
        rest_url=ex.rest_url or None,
        market_ws_url=ex.ws_public_url or None,
        private_ws_url=ex.ws_private_url or None,
    )
    return {
        "exchange.rest_url": n.rest_url,
        "exchange.ws_public_url": n.market_ws_url,
        "exchange.ws_private_url": n.private_ws_url,
    }


def _standard_hosts(venue: str) -> dict[str, set[str]]:
    """environment → the hosts of its standard URLs (from the adapters' own tables)."""
    out: dict[str, set[str]] = {}
    for env in ("mainnet", "testnet", "demo"):
        if venue == "bybit":
            from adapters.bybit import bybit_urls

            b = bybit_urls(env)
            urls = [b.rest_url, b.public_ws_url, b.private_ws_url]
        else:
            from adapters.binance import binance_urls

            n = binance_urls(env)
            urls = [n.rest_url, n.market_ws_url, n.private_ws_url]
        out[env] = {urlsplit(u).hostname or "" for u in urls}
    return out


def check_environment(cfg: Config) -> None:
    """Refuse a URL override that is another environment's standard host (keys of one
    environment never work on another; mixing them is a wrong environment, named as such).

    Raises:
        ConfigError: ``exchange.<url key>: ... is the <env> URL but exchange.environment is
            <env>``.
    """
    ex = cfg.exchange
    hosts = _standard_hosts(ex.venue)
    mine = hosts.get(ex.environment, set())
    problems: list[tuple[str, str]] = []
    for key, url in (
        ("exchange.rest_url", ex.rest_url),
        ("exchange.ws_public_url", ex.ws_public_url),
        ("exchange.ws_private_url", ex.ws_private_url),
    ):
        host = urlsplit(url).hostname if url else None
        if not host or host in mine:
            continue
        for env, env_hosts in hosts.items():
            if env != ex.environment and host in env_hosts:
                problems.append(
                    (
                        key,
                        f"wrong environment: {url} is the {ex.venue} {env} URL but "
                        f"exchange.environment is {ex.environment!r}",
                    )
                )
    if problems:
        raise ConfigError(problems)


def _clock(cfg: Config) -> Any:
    raw = os.environ.get(CLOCK_OFFSET_ENV, "").strip()
    if not raw:
        return WallClock()
    urls = [*_venue_urls(cfg).values(), cfg.signals.url]
    if not all(_is_loopback(u) for u in urls):
        raise ConfigError(
            [(CLOCK_OFFSET_ENV, "only for a loopback sandbox: every exchange and signal URL")]
        )
    try:
        return _OffsetClock(float(raw))
    except ValueError:
        raise ConfigError([(CLOCK_OFFSET_ENV, f"not a number of seconds: {raw!r}")]) from None


def _leverage(cfg: Config, symbols: Sequence[str]) -> dict[str, int]:
    ex = cfg.exchange
    return {s: int(ex.leverage_per_symbol.get(s, ex.default_leverage)) for s in symbols}


def _err(exc: BaseException) -> str:
    from tradebot.cli._errors import user_error

    leaf = user_error(exc)
    return f"{type(leaf).__name__}: {leaf}"[:2000]


def check_schema(dsn: str) -> str:
    """The schema's state, or raise.

    Returns:
        a one-line description (``schema version N (M migrations)``).

    Raises:
        StartupFailed: a migration of this code is not applied (older schema), or an
            applied one differs from its file.
    """
    from adapters.postgres.migrations import migration_status

    states = migration_status(dsn)
    pending = [s for s in states if s.file_present and s.applied_at is None]
    changed = [s for s in states if s.applied_at is not None and not s.checksum_ok]
    applied = [s.version for s in states if s.applied_at is not None]
    newest = max(applied, default=0)
    if pending:
        names = ", ".join(f"{s.version:04d}_{s.name}" for s in pending)
        raise StartupFailed(
            "schema",
            EXIT_RUNTIME,
            f"the database schema (version {newest}) is older than this code: {names} not "
            "applied; run `tradebot db migrate --config CONFIG` first",
        )
    if changed:
        names = ", ".join(f"{s.version:04d}_{s.name}" for s in changed)
        raise StartupFailed(
            "schema",
            EXIT_RUNTIME,
            f"applied migrations differ from this code's files: {names}",
        )
    extra = [s.version for s in states if not s.file_present]
    note = f"; {len(extra)} newer migration(s) unknown to this code" if extra else ""
    return f"schema version {newest} ({len(applied)} migrations){note}"


@attrs.frozen
class _GatedSource:
    """A signal source that connects only once ``gate`` is set (after reconciliation)."""

    gate: trio.Event
    inner: Any

    async def run(self, emit: Any) -> None:
        await self.gate.wait()
        await self.inner.run(emit)


# --- the run -------------------------------------------------------------------------------


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


async def _main(
    opts: RunOptions,
    cfg: Config,
    mode: str,
    account_name: str,
    credentials: tuple[str, str],
    feed: Any,
    clock: Any,
    dsn: str,
    steps: _Steps,
) -> int:
    from adapters.postgres.embedded import is_embedded, restart_embedded_server
    from adapters.postgres.journal import open_postgres_journal

    home = cfg.home_path()
    restarter = (lambda: restart_embedded_server(home)) if is_embedded(dsn, home) else None
    j = cfg.journal
    async with (
        open_shutdown_watch(steps.out) as shutdown,
        open_postgres_journal(
            dsn,
            spool_dir=cfg.spool_path(),
            durable_wait=True,
            clock=clock.now,
            max_batch_events=j.max_batch_events,
            retry_interval_s=j.retry_interval_s,
            max_retry_interval_s=j.max_retry_interval_s,
            drain_timeout_s=j.drain_timeout_s,
            application_name=f"tradebot-journal:{account_name}"[:63],
            server_restarter=restarter,
        ) as journal,
    ):
        steps.attach(journal)
        try:
            code, reason, open_positions = await _session(
                opts, cfg, mode, account_name, credentials, feed, clock, dsn, steps,
                journal, shutdown,
            )  # fmt: skip
        except StartupFailed as exc:
            print(f"{exc.step}: {exc.message}", file=steps.out)
            code, reason, open_positions = exc.exit_code, f"start-up failed: {exc.step}", None
            journal.emit(
                Event.of(
                    BotStopped(reason=reason, error=exc.message[:2000]),
                    clock.now(),
                    severity=Severity.ERROR,
                )
            )
            return code
        except Exception as exc:  # a bug or an unexpected failure: one line, bot.stopped
            print(f"error: {_err(exc)}", file=steps.out)
            journal.emit(
                Event.of(
                    BotStopped(reason="error", error=_err(exc)),
                    clock.now(),
                    severity=Severity.CRITICAL,
                )
            )
            return EXIT_RUNTIME
        journal.emit(
            Event.of(
                BotStopped(reason=reason, open_positions=open_positions),
                clock.now(),
                severity=Severity.INFO if code == EXIT_OK else Severity.CRITICAL,
            )
        )
    print(f"stopped: {reason}", file=steps.out, flush=True)
    return code


async def _make_venue(
    cfg: Config, mode: str, credentials: tuple[str, str], journal: Any, clock: Any
) -> Any:
    """The venue adapter: with the keys (live) or without them (dry-run: public only)."""
    environ = {
        cfg.exchange.api_key_env: credentials[0],
        cfg.exchange.api_secret_env: credentials[1],
    }
    live = mode == "live"
    if cfg.exchange.venue == "bybit":
        from adapters.bybit.factory import venue_from_config as bybit_venue

        return bybit_venue(
            cfg.exchange, journal=journal, clock=clock, environ=environ, require_credentials=live
        )
    from adapters.binance.factory import venue_from_config as binance_venue

    return binance_venue(
        cfg.exchange, journal=journal, clock=clock, environ=environ, require_credentials=live
    )


async def _step(
    steps: _Steps,
    name: str,
    fn: Callable[[], Awaitable[str]],
    *,
    fail: Callable[[BaseException], tuple[int, str]],
) -> None:
    t0 = time.perf_counter()
    try:
        detail = await fn()
    except StartupFailed:
        raise
    except Exception as exc:
        code, message = fail(exc)
        steps.record(name, "failed", message, t0, exit_code=code)
        raise StartupFailed(name, code, message) from exc
    steps.record(name, "ok", detail, t0)


async def _session(
    opts: RunOptions,
    cfg: Config,
    mode: str,
    account_name: str,
    credentials: tuple[str, str],
    feed: Any,
    clock: Any,
    dsn: str,
    steps: _Steps,
    journal: Any,
    shutdown: ShutdownWatch,
) -> tuple[int, str, int | None]:
    """Steps 4-9, then run until a signal; returns (exit code, stop reason, positions)."""
    from actors.account import open_account
    from actors.runtime import RestartPolicy

    ex = cfg.exchange
    urls = _venue_urls(cfg)
    rest_url = urls["exchange.rest_url"]
    journal.emit(
        Event.of(
            BotStarted(
                mode=mode,
                venue_profile=ex.venue,
                account=account_name,
                signals=feed.url,
            ),
            clock.now(),
        )
    )
    venue = await _make_venue(cfg, mode, credentials, journal, clock)
    async with venue:
        # 4. venue clock
        async def sync() -> str:
            offset = await venue.sync_time()
            return f"{ex.venue} {ex.environment} at {rest_url}: clock offset {offset} ms"

        with shutdown.cancel_on_request():
            await _step(
                steps,
                "venue_clock",
                sync,
                fail=lambda e: (EXIT_RUNTIME, f"cannot reach {ex.venue} at {rest_url}: {_err(e)}"),
            )
        if shutdown.requested.is_set():
            return EXIT_OK, f"signal {shutdown.signal_name} during start-up", None

        # 5. authentication
        async def auth() -> str:
            bal = await venue.balance()
            return f"API key accepted; {bal.available_usdt} USDT available"

        def auth_failed(e: BaseException) -> tuple[int, str]:
            from tradebot.cli._errors import user_error

            leaf = user_error(e)
            if isinstance(leaf, FatalVenueError):
                return EXIT_CONFIG, (
                    f"{ex.venue} refused the API key on environment {ex.environment!r} "
                    f"({rest_url}): {leaf}. Either the key/secret in ${ex.api_key_env} / "
                    f"${ex.api_secret_env} are wrong, or they belong to another environment "
                    "(mainnet, testnet and demo keys are separate: check exchange.environment)"
                )
            return EXIT_RUNTIME, f"authenticated call to {ex.venue} failed: {_err(e)}"

        if mode == "live":
            await _step(steps, "authentication", auth, fail=auth_failed)
        else:
            steps.record(
                "authentication", "skipped", "dry-run: no keys, public endpoints only", 0.0
            )

        # 6. instruments
        instruments: dict[str, Any] = {}

        async def load_instruments() -> str:
            listed = await venue.instruments()
            trading = {s: i for s, i in listed.items() if i.status is InstrumentStatus.TRADING}
            if opts.symbols is not None:
                missing = [s for s in opts.symbols if s not in trading]
                if missing:
                    raise ConfigError(
                        [("--symbols", f"not trading on {ex.venue}: {', '.join(missing)}")]
                    )
                trading = {s: trading[s] for s in opts.symbols}
            if not trading:
                raise RuntimeError(f"{ex.venue} lists no trading USDT perpetual")
            instruments.update(trading)
            return f"{len(listed)} listed, {len(trading)} traded"

        def instruments_failed(e: BaseException) -> tuple[int, str]:
            from tradebot.cli._errors import user_error

            leaf = user_error(e)
            if isinstance(leaf, ConfigError):
                return EXIT_CONFIG, "; ".join(f"{k}: {r}" for k, r in leaf.problems)
            return EXIT_RUNTIME, f"instruments: {_err(e)}"

        await _step(steps, "instruments", load_instruments, fail=instruments_failed)
        symbols = sorted(instruments)
        leverage = _leverage(cfg, symbols)

        # 7. account setup
        port: Any = venue
        engine: Any = None
        if mode == "live":

            async def setup() -> str:
                await venue.setup_account(leverage)
                blocked = dict(getattr(venue, "blocked_symbols", {}) or {})
                text = f"hedge mode verified and leverage set on {len(symbols)} symbols"
                if blocked:
                    text += "; entries refused on " + ", ".join(
                        f"{s} ({r})" for s, r in sorted(blocked.items())
                    )
                return text

            def setup_failed(e: BaseException) -> tuple[int, str]:
                from tradebot.cli._errors import user_error

                leaf = user_error(e)
                code = EXIT_CONFIG if isinstance(leaf, FatalVenueError) else EXIT_RUNTIME
                return code, f"account setup on {ex.venue}: {_err(e)}"

            await _step(steps, "account_setup", setup, fail=setup_failed)
        else:
            from adapters.paper import PaperEngine, PaperVenue, binance_like, bybit_like

            profile = (bybit_like if ex.venue == "bybit" else binance_like)(
                maker_fee_rate=Decimal(cfg.paper.maker_fee_pct) / 100,
                taker_fee_rate=Decimal(cfg.paper.taker_fee_pct) / 100,
                market_slippage_bps=Decimal(cfg.paper.slippage_pct) * 100,
            )
            engine = PaperEngine(
                profile, instruments, wallet_usdt=cfg.paper.wallet_usdt, start_ts=clock.now()
            )
            port = PaperVenue(engine, clock=clock, latency_s=cfg.paper.latency_ms / 1000)

            async def paper_setup() -> str:
                await port.setup_account(leverage)
                return (
                    f"dry-run: paper engine ({ex.venue} profile, wallet "
                    f"{cfg.paper.wallet_usdt} USDT) on {ex.venue}'s public marks"
                )

            await _step(
                steps,
                "account_setup",
                paper_setup,
                fail=lambda e: (EXIT_RUNTIME, f"paper engine: {_err(e)}"),
            )

        from adapters.signals import WebSocketSignalSource

        gate = trio.Event()

        def make_source(j: Any, c: Any) -> Any:
            return _GatedSource(gate, WebSocketSignalSource(feed, journal=j, clock=c))

        waves = attrs.evolve(cfg.wave_settings(), account=account_name)
        grace_s = float(cfg.bot.shutdown_grace_s)
        from tradebot.cli._ops_wiring import ops_journal

        tap = ops_journal(journal, cfg)
        t_reconcile = time.perf_counter()
        try:
            async with open_account(
                port=port,
                journal=tap,
                clock=clock,
                instruments=instruments,
                settings=cfg.position_settings(),
                waves=waves,
                signal_source=make_source,
                market_symbols=symbols if mode == "live" else None,
                policy=RestartPolicy(),
                stop_grace_s=grace_s / 3,
                # 8. reconciliation: the Reconciler's start-up pass runs inside
                # open_account, before the wave processor and the signal feed start
                reconcile=cfg.reconcile if engine is None else None,
                account_name=account_name,
            ) as account:
                async with (
                    trio.open_nursery() as side,
                    _maybe_ops(cfg, account, tap, mode) as ops,
                ):
                    if engine is not None:
                        side.start_soon(_dry_run_marks, venue, port, account, symbols)

                    report = account.startup_reconcile
                    if report is not None:
                        summary = ", ".join(f"{k} {v}" for k, v in sorted(report.findings.items()))
                        steps.record(
                            "reconciliation",
                            "ok",
                            f"journal and venue compared: {summary or 'no findings'}",
                            t_reconcile,
                        )
                    else:
                        steps.record(
                            "reconciliation",
                            "skipped",
                            "dry-run: the paper engine starts flat; journal positions are "
                            "not resumed",
                            t_reconcile,
                        )
                    # 9. only now the signal feed
                    gate.set()
                    steps.record("signals", "ok", f"signal feed started: {feed.url}", 0.0)
                    if ops is not None:
                        ops.ready(f"{mode}: reconciled, taking signals")
                    with shutdown.cancel_on_request():
                        await _watch_journal(journal)
                    # graceful stop (SIGTERM / SIGINT)
                    open_now = account.positions.open_count()
                    reason = f"signal {shutdown.signal_name}"
                    journal.emit(
                        Event.of(BotStopping(reason=reason, open_positions=open_now), clock.now())
                    )
                    print(
                        f"{reason}: stopping (grace {grace_s:g} s); exchange stops stay in place",
                        file=steps.out,
                        flush=True,
                    )
                    if ops is not None:
                        ops.stopping(reason)
                    with trio.move_on_after(grace_s):
                        await account.stop(grace_s / 3)
                    side.cancel_scope.cancel()
                open_left = account.positions.open_count()
            return EXIT_OK, reason, open_left
        except StartupFailed:
            raise
        except BaseException as exc:
            if isinstance(exc, trio.Cancelled | KeyboardInterrupt):
                raise
            from tradebot.cli._errors import _leaves

            failed = [e for e in _leaves(exc) if isinstance(e, StartupFailed)]
            if failed:
                raise failed[0] from None
            unreconciled = [e for e in _leaves(exc) if isinstance(e, ReconcileFailed)]
            if unreconciled:
                message = f"reconciliation: {unreconciled[0]}"
                steps.record(
                    "reconciliation", "failed", message, t_reconcile, exit_code=EXIT_RUNTIME
                )
                raise StartupFailed("reconciliation", EXIT_RUNTIME, message) from None
            found = _classify(exc)
            if found is None:
                raise
            return await _safe_mode(found, port, journal, clock, steps.out)


@asynccontextmanager
async def _maybe_ops(cfg: Config, account: Any, tap: Any, mode: str) -> AsyncIterator[Any]:
    """The operations surface (health, metrics, status page, control API, alerts,
    sd_notify) when ``health.enabled``; else nothing (yields None)."""
    if not cfg.health.enabled:
        yield None
        return
    from tradebot.cli._ops_wiring import open_ops_from_config

    async with open_ops_from_config(cfg, account, tap, mode=mode) as ops:
        yield ops


def _classify(exc: BaseException) -> _SafeMode | None:
    """Which safe-mode reason an error escaping the tree is (None: not one)."""
    from tradebot.cli._errors import _leaves

    for leaf in _leaves(exc):
        if isinstance(leaf, _SafeMode):
            return leaf
    for leaf in _leaves(exc):
        cause: BaseException | None = leaf
        while cause is not None:
            if isinstance(cause, FatalVenueError):
                return _SafeMode("authentication", _err(cause))
            cause = cause.__cause__
    for leaf in _leaves(exc):
        if isinstance(leaf, SupervisorEscalation):
            return _SafeMode(
                "restart_intensity",
                _err(leaf.__cause__ or leaf),
                supervisor=str(getattr(leaf, "supervisor", "")),
                child=str(getattr(leaf, "child", "")),
            )
    for leaf in _leaves(exc):
        if isinstance(leaf, VenueError | OSError):
            return _SafeMode("venue_error", _err(leaf))
    return None


async def _watch_journal(journal: Any) -> None:
    """Run until cancelled; raise :class:`_SafeMode` when the journal is beyond its spool
    limit (events lost, or down with more than :data:`SPOOL_LIMIT_EVENTS` not durable)."""
    stats = getattr(journal, "stats", None)
    while True:
        await trio.sleep(JOURNAL_CHECK_INTERVAL_S)
        lost = int(getattr(stats, "lost", 0)) if stats is not None else 0
        up = bool(getattr(journal, "is_up", True))
        backlog = int(getattr(journal, "backlog", 0))
        if lost > 0 or (not up and backlog > SPOOL_LIMIT_EVENTS):
            raise _SafeMode(
                "journal_unreachable",
                f"journal down: {backlog} events not durable, {lost} lost",
            )


async def _dry_run_marks(venue: Any, paper: Any, account: Any, symbols: Sequence[str]) -> None:
    """The venue's public mark-price stream drives the paper engine (stops, fills) and the
    MarketRouter: the dry run trades on the live market, matched by the paper engine."""
    from tradebot.ports import MarkPrice

    async def on_event(event: Any) -> None:
        if isinstance(event, MarkPrice):
            paper.push_mark(event.symbol, event.mark_price, event.ts)
        await account.market.emit(event)

    await venue.run_market_stream(list(symbols), on_event)


async def _safe_mode(
    sm: _SafeMode, port: Any, journal: Any, clock: Any, out: TextIO
) -> tuple[int, str, int | None]:
    """The tree is stopped (no new entries): verify every stop, journal, alert."""
    positions: int | None = None
    protected: int | None = None
    unprotected: list[str] = []
    with trio.move_on_after(30):
        try:
            found = await port.positions()
            positions, protected = 0, 0
            for p in found:
                if p.qty <= 0:
                    continue
                positions += 1
                stops = await port.stops(p.symbol, p.position_side)
                if stops:
                    protected += 1
                else:
                    unprotected.append(f"{p.symbol}:{p.position_side.value}")
        except Exception as exc:  # the venue cannot be asked: say so in the alert
            sm.error = f"{sm.error}; stops not verified: {_err(exc)}"[:2000]
    journal.emit(
        Event.of(
            SafeModeEntered(
                reason=sm.reason,
                supervisor=sm.supervisor,
                child=sm.child,
                error=sm.error,
                positions=positions,
                protected=protected,
                unprotected=tuple(unprotected),
            ),
            clock.now(),
            severity=Severity.CRITICAL,
        )
    )
    checked = (
        f"{positions} open position(s), {protected} with a stop on the venue"
        if positions is not None
        else "stops NOT verified (venue unreachable)"
    )
    journal.emit(
        Event.of(
            AlertRaised(
                message=f"safe mode ({sm.reason}): no new entries, exiting for a restart; "
                f"{checked}"
                + (f"; WITHOUT a stop: {', '.join(unprotected)}" if unprotected else ""),
                key=f"safe_mode:{sm.reason}",
                reason="safe_mode",
                error=sm.error,
            ),
            clock.now(),
            severity=Severity.CRITICAL,
        )
    )
    print(f"safe mode ({sm.reason}): {sm.error}; {checked}", file=out, flush=True)
    return EXIT_SAFE_MODE, f"safe mode: {sm.reason}", positions
