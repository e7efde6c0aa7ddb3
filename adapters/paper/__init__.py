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
