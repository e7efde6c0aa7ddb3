"""The paper exchange: a deterministic matching engine and an in-process exchange port.

Front door (import from here):

* :class:`PaperEngine` — pure, synchronous engine (hedge mode, market/limit/conditional
  orders, mark-price triggers, gap-aware stop fills, fees, funding, margin, validation,
  venue-faithful errors). See :mod:`adapters.paper._engine` for the rules.
* :func:`bybit_like` / :func:`binance_like` → :class:`VenueProfile` (``.capabilities``,
  fees, error codes).
* :class:`PaperVenue` — ``tradebot.ports.ExchangePort`` over the engine for trio, with
  latency and a seeded :class:`FaultPlan`.
* :func:`load_instruments` — the bundled instrument rules as ``Instrument`` objects.

Typical wiring (paper trading / replay / scenario tests)::

    from adapters.paper import FaultPlan, Fault, PaperEngine, PaperVenue, bybit_like
    engine = PaperEngine(bybit_like(), load_instruments(), wallet_usdt=Decimal(10_000),
                         start_ts=t0)
    engine.add_listener(monitor)            # called after every engine step
    plan = FaultPlan(seed=7)
    plan.fail_next("place_stop", Fault.server_error(503), count=3)        # scripted
    plan.fail_randomly("*", Fault.timeout_after_accept(10.0), p=0.02)     # seeded random
    plan.delay_events(0.5, p=0.05).drop_events(p=0.01)                    # account stream
    venue = PaperVenue(engine, latency_s=0.05, faults=plan, clock=TrioClock(t0))

Feeding marks (replay driver): in time order, at the virtual time of each tick, call
``venue.push_mark(symbol, mark_price, ts)`` (sync; one engine step: stops/limits matched,
account events queued for ``run_account_stream``, ``MarkPrice`` queued for
``run_market_stream``, step listeners called). At funding timestamps call
``venue.apply_funding(symbol, rate, ts)``. Stops fill at the first mark at or through their
trigger (gap-aware), so feeding only 1-minute closes lets a stop fill at a close beyond its
trigger; to model intra-bar triggers feed ``open, low, high, close`` (or ``open, high, low,
close`` for down bars) as four marks of the bar.
"""

from __future__ import annotations

from ._engine import EPOCH as EPOCH
from ._engine import EngineStep as EngineStep
from ._engine import PaperEngine as PaperEngine
from ._engine import TriggerDirection as TriggerDirection
from ._engine import WalletState as WalletState
from ._faults import EventFault as EventFault
from ._faults import EventFaultKind as EventFaultKind
from ._faults import Fault as Fault
from ._faults import FaultKind as FaultKind
from ._faults import FaultPlan as FaultPlan
from ._faults import InjectedFault as InjectedFault
from ._instruments import load_instruments as load_instruments
from ._profile import ErrorSpec as ErrorSpec
from ._profile import VenueProfile as VenueProfile
from ._profile import binance_like as binance_like
from ._profile import bybit_like as bybit_like
from ._venue import PaperVenue as PaperVenue

__all__ = [
    "EPOCH",
    "EngineStep",
    "ErrorSpec",
    "EventFault",
    "EventFaultKind",
    "Fault",
    "FaultKind",
    "FaultPlan",
    "InjectedFault",
    "PaperEngine",
    "PaperVenue",
    "TriggerDirection",
    "VenueProfile",
    "WalletState",
    "binance_like",
    "bybit_like",
    "load_instruments",
]
