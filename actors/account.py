"""The actor tree of one exchange account, built in one place for every mode.

``open_account`` is the only code that wires the account's actors together
(docs/ARCHITECTURE.md §3): ``tradebot paper`` (replay in virtual time), the live launcher,
the tests and the benchmarks all call it, with the exchange port, the journal, the clock,
the instruments, the settings and a signal source of their mode::

    open_account(...)                       an async context manager → Account
    ├─ AccountRouter      port.run_account_stream → the owning PositionActor
    ├─ MarketRouter       LatestValue mark cells; port.run_market_stream when
    │                     ``market_symbols`` is given (live), else the caller sets marks
    │                     (replay driver: ``account.market.set_mark``)
    ├─ supervisor "positions" (keyed DynamicSupervisor)
    │  └─ PositionSupervisor → one PositionActor per (symbol, position side)
    ├─ supervisor "reconcile": Reconciler (when ``reconcile`` is given): its start-up
    │                     pass runs BEFORE the wave processor and the signal feed start
    ├─ supervisor "account":  WaveProcessor (when ``waves`` is given)
    └─ supervisor "signals":  SignalFeed (when ``signal_source`` is given)

Every supervision event (start, crash with its traceback, restart with its delay, give-up,
stop with leftover messages) goes to the journal through the one
:func:`actors.runtime.journal_sink`.

Ordered graceful stop (:meth:`Account.stop`, also run when the context exits normally):
the signal feed first (no new signals), then the wave processor (no new opens), then the
reconciler, then the positions (each PositionActor stops its loop; its exchange-side stop stays in place), then
the streams are cancelled. Exchange stops are never cancelled by a shutdown.

Consumes: the port's account stream (and market stream when asked). Emits: supervision
events (``actor.*``). Owns: the routers, the supervisors and their nursery.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

import attrs
import trio

from actors.position import PositionActor, PositionJournal
from actors.position_supervisor import PositionSupervisor
from actors.reconcile import ReconcileNow, Reconciler, ReconcileReport, ZombieCanceller
from actors.routers import AccountRouter, MarketRouter
from actors.runtime import (
    Address,
    ChildSpec,
    DynamicSupervisor,
    RestartPolicy,
    SupervisionSink,
    Supervisor,
    journal_sink,
    open_dynamic_supervisor,
    supervise,
)
from actors.signal_feed import SignalFeed
from actors.wave import EntryGate, SetEntriesPaused, WaveProcessor
from tradebot.domain import Instrument
from tradebot.errors import ReconcileFailed
from tradebot.events import JournalReader, OpenPositionsReader
from tradebot.policies import PositionSettings, ReconcileSettings, TrailingDecision
from tradebot.ports import Clock, ExchangePort, MarkPrice
from tradebot.signals import WaveSettings

__all__ = ["Account", "SignalSourceFactory", "open_account"]

STARTUP_RECONCILE_TIMEOUT_S = 300.0
"""The start-up reconciliation pass must end within this many seconds (trio clock)."""

SignalSourceFactory = Callable[[Any, Clock], Any]
"""``(journal, clock) -> SignalSource``: builds the signal source (called on every start of
the SignalFeed, so a restarted feed gets a fresh source)."""

DEFAULT_STOP_GRACE_S = 5.0
"""Deadline of each step of the ordered stop, seconds of the trio clock."""


@attrs.define
class Account:
    """The running tree of one account (yielded by :func:`open_account`).

    Attributes:
        port: the exchange port the tree trades on.
        journal: the journal (port + reader).
        clock: the time port.
        market: mark-price cells per symbol (``set_mark`` for a replay driver).
        account_router: routes account events to the owning PositionActor.
        positions: the PositionSupervisor (the PositionOpener).
        wave_processor: address of the WaveProcessor, or None when no ``waves`` were given.
        entries: the entry gate (operator pause; :meth:`set_entries_paused`).
        reconciler: address of the Reconciler, or None when no ``reconcile`` was given.
        startup_reconcile: the report of the start-up pass (None without a Reconciler).
    """

    port: ExchangePort
    journal: PositionJournal
    clock: Clock
    market: MarketRouter
    account_router: AccountRouter
    positions: PositionSupervisor
    wave_processor: Address[Any] | None
    _dyn: DynamicSupervisor
    _account_sup: Supervisor | None
    _signals_sup: Supervisor | None
    entries: EntryGate = attrs.Factory(EntryGate)
    reconciler: Address[ReconcileNow] | None = None
    startup_reconcile: ReconcileReport | None = None
    _reconcile_sup: Supervisor | None = None
    _stopped: bool = False

    async def set_entries_paused(
        self, paused: bool, *, source: str, reason: str = "", timeout_s: float = 10.0
    ) -> bool:
        """Turn new entries off/on (``tradebot pause|resume``); open positions are still
        managed. Through the WaveProcessor when there is one (it journals
        ``bot.paused``/``bot.resumed``), else on the gate directly. True when it changed.

        Raises:
            ActorStopped / AskTimeout: the WaveProcessor is stopping or did not answer.
        """
        msg = SetEntriesPaused(paused, source, reason)
        if self.wave_processor is not None:
            return bool(await self.wave_processor.ask(msg, timeout_s))
        return self.entries.set(msg, self.journal, self.clock)

    async def reconcile_now(
        self, trigger: str = "operator", timeout_s: float = 120.0
    ) -> ReconcileReport:
        """Run one reconciliation pass now and return its report.

        Raises:
            RuntimeError: the account runs without a Reconciler.
            ActorStopped / AskTimeout: the Reconciler is stopping or did not answer.
        """
        if self.reconciler is None:
            raise RuntimeError("this account runs without a Reconciler")
        report: ReconcileReport = await self.reconciler.ask(ReconcileNow(trigger), timeout_s)
        return report

    async def stop_signals(self, grace_s: float = DEFAULT_STOP_GRACE_S) -> None:
        """Stop taking signals (the SignalFeed); idempotent."""
        if self._signals_sup is not None:
            await self._signals_sup.stop(grace_s)
            self._signals_sup = None

    async def stop(self, grace_s: float = DEFAULT_STOP_GRACE_S) -> None:
        """Ordered graceful stop: signals → wave processor → positions. Idempotent.

        Each step gets ``grace_s`` seconds (trio clock) before its children are cancelled.
        Exchange-side stops stay in place.
        """
        if self._stopped:
            return
        self._stopped = True
        await self.stop_signals(grace_s)
        if self._account_sup is not None:
            await self._account_sup.stop(grace_s)
        if self._reconcile_sup is not None:
            await self._reconcile_sup.stop(grace_s)
        await self._dyn.stop(grace_s)


@asynccontextmanager
async def open_account(
    *,
    port: ExchangePort,
    journal: PositionJournal,
    clock: Clock,
    instruments: Mapping[str, Instrument],
    settings: PositionSettings | None = None,
    waves: WaveSettings | None = None,
    signal_source: SignalSourceFactory | None = None,
    reader: JournalReader | None = None,
    leverage: Mapping[str, int] | None = None,
    market_symbols: Sequence[str] | None = None,
    policy: RestartPolicy | None = None,
    position_policy: RestartPolicy | None = None,
    sink: SupervisionSink | None = None,
    on_decision: Callable[[PositionActor, MarkPrice, TrailingDecision], None] | None = None,
    stop_grace_s: float = DEFAULT_STOP_GRACE_S,
    market: MarketRouter | None = None,
    account_router: AccountRouter | None = None,
    reconcile: ReconcileSettings | None = None,
    account_name: str = "default",
    tracked: OpenPositionsReader | None = None,
) -> AsyncIterator[Account]:
    """Start the actor tree of one account; stop it in order when the block ends.

    Args:
        port: the exchange (paper venue, venue adapter).
        journal: journal port and reader (``PositionJournal``).
        clock: the time port (``TrioClock`` in replay, the wall clock live).
        instruments: tradable instruments by symbol.
        settings: position policy settings (default: ``PositionSettings()``).
        waves: wave settings; when given, a WaveProcessor runs under supervisor "account".
        signal_source: ``(journal, clock) -> SignalSource``; when given (needs ``waves``), a
            SignalFeed runs under supervisor "signals" and delivers to the WaveProcessor.
        reader: journal reader for the WaveProcessor (default: ``journal``).
        leverage: when given, ``port.setup_account(leverage)`` runs first (hedge mode,
            leverage per symbol); an error there propagates before any actor starts.
        market_symbols: when given, ``port.run_market_stream(market_symbols, ...)`` feeds the
            MarketRouter (live); otherwise the caller sets marks (replay driver).
        policy: restart policy of the account and signals supervisors (default
            ``RestartPolicy()``).
        position_policy: restart policy of the PositionActors (default: ``policy``).
        sink: supervision sink (default: :func:`actors.runtime.journal_sink`).
        on_decision: observer of trailing decisions (benchmarks, metrics).
        stop_grace_s: deadline of each ordered-stop step, seconds.
        market: an existing MarketRouter to use (default: a new one). The caller feeds it.
        account_router: an existing AccountRouter to use; the caller then runs
            ``port.run_account_stream`` into it (default: a new router and the stream run
            here). Test worlds that also run bare actors on the same routers pass both.
        reconcile: when given, a Reconciler runs under supervisor "reconcile" (every
            ``interval_s`` and after private-stream gaps) and its start-up pass — journaled
            intents resolved, tracked positions resumed from their snapshots, untracked
            ones adopted or alerted, zombie orders cancelled — completes before the wave
            processor and the signal feed start. None (``tradebot paper``): no Reconciler.
        account_name: ``bot.account`` (the Reconciler's journal filter and adopted ids).
        tracked: the journal's open positions for the Reconciler (default: ``journal``,
            which must then implement :class:`tradebot.events.OpenPositionsReader`).

    Yields:
        the running :class:`Account`.

    Raises:
        ValueError: ``signal_source`` without ``waves``; ``reconcile`` without an
            :class:`~tradebot.events.OpenPositionsReader`.
        ReconcileFailed: the start-up reconciliation could not read the venue or the
            journal (no signal is taken then).
        whatever ``port.setup_account`` raises (``tradebot.errors`` tree).
    """
    if signal_source is not None and waves is None:
        raise ValueError("open_account: a signal_source needs waves (WaveSettings)")
    tracked_reader: Any = tracked if tracked is not None else journal
    if reconcile is not None and not callable(getattr(tracked_reader, "open_positions", None)):
        raise ValueError("open_account: reconcile needs a journal with open_positions()")
    policy = policy or RestartPolicy()
    sink = sink or journal_sink(journal, clock)
    if leverage is not None:
        await port.setup_account(leverage)
    own_stream = account_router is None
    if account_router is None:
        account_router = AccountRouter(journal, clock)
    if market is None:
        market = MarketRouter(on_gap=account_router, journal=journal, clock=clock)
    async with trio.open_nursery() as nursery:
        if own_stream:
            nursery.start_soon(port.run_account_stream, account_router.emit)
        if market_symbols is not None:
            nursery.start_soon(port.run_market_stream, list(market_symbols), market.emit)
        async with open_dynamic_supervisor(
            position_policy or policy, sink, name="positions"
        ) as dyn:
            positions = PositionSupervisor(
                supervisor=dyn,
                port=port,
                journal=journal,
                clock=clock,
                market=market,
                account=account_router,
                instruments=instruments,
                settings=settings,
                on_decision=on_decision,
                account_name=account_name,
            )
            reconcile_sup: Supervisor | None = None
            reconciler: Address[ReconcileNow] | None = None
            startup: ReconcileReport | None = None
            if reconcile is not None:
                rsettings = reconcile
                router = account_router
                zombies = ZombieCanceller(port)

                def make_reconciler() -> Reconciler:
                    r = Reconciler(
                        venue=port,
                        zombies=zombies,
                        tracked=tracked_reader,
                        positions=positions,
                        journal=journal,
                        clock=clock,
                        instruments=instruments,
                        settings=rsettings,
                        account=account_name,
                    )
                    router.on_gap(r.on_stream_gap)
                    return r

                reconcile_sup = await nursery.start(
                    supervise,
                    [ChildSpec("reconciler", make_reconciler)],
                    policy,
                    sink,
                )
                reconciler = reconcile_sup.address("reconciler")
                startup = await reconciler.ask(ReconcileNow("startup"), STARTUP_RECONCILE_TIMEOUT_S)
                if not startup.ok:
                    raise ReconcileFailed(f"start-up reconciliation failed: {startup.error}")
            account_sup: Supervisor | None = None
            wave_addr: Address[Any] | None = None
            gate = EntryGate()
            if waves is not None:
                wave_settings = waves
                wave_reader = reader if reader is not None else journal
                account_sup = await nursery.start(
                    supervise,
                    [
                        ChildSpec(
                            "wave_processor",
                            lambda: WaveProcessor(
                                settings=wave_settings,
                                journal=journal,
                                reader=wave_reader,
                                clock=clock,
                                opener=positions,
                                instruments=instruments,
                                price_of=market.latest,
                                gate=gate,
                            ),
                        )
                    ],
                    policy,
                    sink,
                )
                wave_addr = account_sup.address("wave_processor")
            signals_sup: Supervisor | None = None
            if signal_source is not None:
                make_source = signal_source
                assert wave_addr is not None  # checked above: a signal source needs waves
                feed_addr = wave_addr
                signals_sup = await nursery.start(
                    supervise,
                    [
                        ChildSpec(
                            "signal_feed",
                            lambda: SignalFeed(make_source(journal, clock), feed_addr),
                        )
                    ],
                    policy,
                    sink,
                )
            account = Account(
                port=port,
                journal=journal,
                clock=clock,
                market=market,
                account_router=account_router,
                positions=positions,
                wave_processor=wave_addr,
                dyn=dyn,
                account_sup=account_sup,
                signals_sup=signals_sup,
                entries=gate,
                reconciler=reconciler,
                startup_reconcile=startup,
                reconcile_sup=reconcile_sup,
            )
            yield account
            # normal exit only: on an error or a cancel the nursery tears the tree down
            await account.stop(stop_grace_s)
        nursery.cancel_scope.cancel()
