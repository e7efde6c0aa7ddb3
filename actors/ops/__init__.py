"""Operating a running account (docs/ARCHITECTURE.md §10): health and Prometheus metrics,
the status page, the control API, the Alerter with Telegram, systemd notify/watchdog.

Front door; the parts live in private modules:

* :class:`JournalTap` — the account's journal with redaction and observers (wrap the
  journal before ``open_account``);
* :func:`open_operations` → :class:`Operations` — starts everything below;
* :class:`OpsState` / :class:`HealthReport` / :class:`PositionView` — health, metrics;
* :class:`OpsApp` — the ASGI app (hypercorn, trio worker);
* :class:`Operator` — status, positions, close, pause, resume (HTTP and Telegram);
* :class:`Alerter` — de-duplicated, rate-limited alerts; Telegram commands;
* :class:`SdNotifier` — ``READY=1``, ``WATCHDOG=1``, ``STATUS=``, ``STOPPING=1``.
"""

from actors.ops._alerter import Alerter as Alerter
from actors.ops._alerter import ChatPort as ChatPort
from actors.ops._alerter import CheckNow as CheckNow
from actors.ops._alerter import RaiseAlert as RaiseAlert
from actors.ops._control import CommandError as CommandError
from actors.ops._control import Operator as Operator
from actors.ops._control import parse_close_args as parse_close_args
from actors.ops._http import OpsApp as OpsApp
from actors.ops._notify import SdNotifier as SdNotifier
from actors.ops._operations import Operations as Operations
from actors.ops._operations import open_operations as open_operations
from actors.ops._state import HealthReport as HealthReport
from actors.ops._state import OpsState as OpsState
from actors.ops._state import PositionView as PositionView
from actors.ops._tap import JournalTap as JournalTap

__all__ = [
    "Alerter",
    "ChatPort",
    "CheckNow",
    "CommandError",
    "HealthReport",
    "JournalTap",
    "Operations",
    "Operator",
    "OpsApp",
    "OpsState",
    "PositionView",
    "RaiseAlert",
    "SdNotifier",
    "open_operations",
    "parse_close_args",
]
