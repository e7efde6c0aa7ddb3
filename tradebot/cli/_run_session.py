"""``tradebot run``'s session: the journal, the venue, steps 4-9 and the account tree.

Owns what runs inside ``trio.run`` once the lock and the schema are checked:
:func:`_main` opens the shutdown watch and the PostgreSQL journal (the earlier steps are
journaled then) and journals ``bot.stopped`` however the session ends; :func:`_session`
builds the venue adapter (with keys, or without them for a dry run), runs the steps venue
clock, authentication, instruments and account setup (dry-run: the paper engine fed by
the venue's public marks, :func:`_dry_run_marks`), starts the account tree
(:func:`actors.account.open_account`: reconciliation inside, the signal feed gated until
after it, :class:`_GatedSource`) with the operations surface, then runs until a signal and
stops gracefully, or hands a safe-mode failure to :mod:`tradebot.cli._run_safe_mode`.
The order of the steps: :mod:`tradebot.cli._run_live`.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Any

import attrs
import trio

from tradebot.cli._run_checks import _venue_urls
from tradebot.cli._run_safe_mode import _classify, _safe_mode, _watch_journal
from tradebot.cli._run_steps import (
    EXIT_CONFIG,
    EXIT_OK,
    EXIT_RUNTIME,
    RunOptions,
    StartupFailed,
    _err,
    _step,
    _Steps,
)
from tradebot.cli._shutdown import ShutdownWatch, open_shutdown_watch
from tradebot.config import Config
from tradebot.domain import InstrumentStatus
from tradebot.errors import ConfigError, FatalVenueError, ReconcileFailed
from tradebot.events import BotStarted, BotStopped, BotStopping, Event, Severity

__all__: list[str] = []


def _leverage(cfg: Config, symbols: Sequence[str]) -> dict[str, int]:
    ex = cfg.exchange
    return {s: int(ex.leverage_per_symbol.get(s, ex.default_leverage)) for s in symbols}


@attrs.frozen
class _GatedSource:
    """A signal source that connects only once ``gate`` is set (after reconciliation)."""

    gate: trio.Event
    inner: Any

    async def run(self, emit: Any) -> None:
        await self.gate.wait()
        await self.inner.run(emit)


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


async def _dry_run_marks(venue: Any, paper: Any, account: Any, symbols: Sequence[str]) -> None:
    """The venue's public mark-price stream drives the paper engine (stops, fills) and the
    MarketRouter: the dry run trades on the live market, matched by the paper engine."""
    from tradebot.ports import MarkPrice

    async def on_event(event: Any) -> None:
        if isinstance(event, MarkPrice):
            paper.push_mark(event.symbol, event.mark_price, event.ts)
        await account.market.emit(event)

    await venue.run_market_stream(list(symbols), on_event)
