"""The actor runtime on trio (docs/ARCHITECTURE.md §3).

Front door; the implementation lives in private modules:

* :class:`Actor`, :func:`run_actor` — one task, one bounded mailbox, one message at a time.
* :class:`Address` — ``send`` (backpressure), ``send_nowait`` (``MailboxFull``), ``ask``
  (reply or ``AskTimeout``/``ActorStopped``).
* :class:`LatestValue` — conflating cell for mark prices; never queues.
* :class:`Timers` — messages an actor schedules to itself.
* Supervision: :class:`RestartPolicy`, :class:`Restart`, :class:`ChildSpec`,
  :func:`supervise` (handle: :class:`Supervisor`), :class:`DynamicSupervisor` via
  :func:`open_dynamic_supervisor` / :func:`run_dynamic_supervisor`,
  :class:`SupervisionEvent` (+ :class:`SupervisionEventKind`), ``SupervisionSink``,
  :func:`journal_sink` (journals them as ``EventType.ACTOR_*``).
* Shutdown: :class:`GracefulStop` of ordered :class:`StopGroup`\\s of :class:`Stoppable`\\s.
* Retries: :func:`retry` with a :class:`Backoff` (jittered exponential, on the trio clock);
  the hook sees each :class:`RetryAttempt`.

Errors come from the one tree in :mod:`tradebot.errors` (``ActorStopped``, ``AskTimeout``,
``MailboxFull``, ``SupervisorEscalation``).
"""

from tradebot.scheduling import sleep_until as sleep_until
from tradebot.scheduling import tasks_runnable as tasks_runnable

from ._actor import Actor as Actor
from ._actor import run_actor as run_actor
from ._cell import LatestValue as LatestValue
from ._mailbox import Address as Address
from ._retry import Backoff as Backoff
from ._retry import RetryAttempt as RetryAttempt
from ._retry import retry as retry
from ._shutdown import GracefulStop as GracefulStop
from ._shutdown import StopGroup as StopGroup
from ._shutdown import Stoppable as Stoppable
from ._supervisor import ChildSpec as ChildSpec
from ._supervisor import DynamicSupervisor as DynamicSupervisor
from ._supervisor import Restart as Restart
from ._supervisor import RestartPolicy as RestartPolicy
from ._supervisor import SupervisionEvent as SupervisionEvent
from ._supervisor import SupervisionEventKind as SupervisionEventKind
from ._supervisor import SupervisionSink as SupervisionSink
from ._supervisor import Supervisor as Supervisor
from ._supervisor import journal_sink as journal_sink
from ._supervisor import open_dynamic_supervisor as open_dynamic_supervisor
from ._supervisor import run_dynamic_supervisor as run_dynamic_supervisor
from ._supervisor import supervise as supervise
from ._timers import Timers as Timers
from ._timers import fire_timers_before as fire_timers_before
from ._timers import runnable_besides_timers as runnable_besides_timers

__all__ = [
    "Actor",
    "Address",
    "Backoff",
    "ChildSpec",
    "DynamicSupervisor",
    "GracefulStop",
    "LatestValue",
    "Restart",
    "RestartPolicy",
    "RetryAttempt",
    "StopGroup",
    "Stoppable",
    "SupervisionEvent",
    "SupervisionEventKind",
    "SupervisionSink",
    "Supervisor",
    "Timers",
    "fire_timers_before",
    "journal_sink",
    "retry",
    "runnable_besides_timers",
    "open_dynamic_supervisor",
    "run_actor",
    "run_dynamic_supervisor",
    "sleep_until",
    "supervise",
    "tasks_runnable",
]
