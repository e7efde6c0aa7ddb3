"""The actor runtime on trio (DESIGN.md section 3).

Front door; the implementation lives in private modules:

* :class:`Actor`, :func:`run_actor` — one task, one bounded mailbox, one message at a time.
* :class:`Address` — ``send`` (backpressure), ``send_nowait`` (``MailboxFull``), ``ask``
  (reply or ``AskTimeout``/``ActorStopped``).
* :class:`LatestValue` — conflating cell for mark prices; never queues.
* :class:`Timers` — messages an actor schedules to itself.
* Supervision: :class:`RestartPolicy`, :class:`Restart`, :class:`ChildSpec`,
  :func:`supervise`, :class:`DynamicSupervisor` / :func:`open_dynamic_supervisor`,
  :class:`SupervisionEvent`, ``SupervisionSink``, :class:`GracefulStop`.

Errors come from the one tree in :mod:`tradebot.errors` (``ActorStopped``, ``AskTimeout``,
``MailboxFull``, ``SupervisorEscalation``).
"""

from ._actor import Actor as Actor
from ._actor import run_actor as run_actor
from ._cell import LatestValue as LatestValue
from ._mailbox import Address as Address
from ._timers import Timers as Timers

__all__ = ["Actor", "Address", "LatestValue", "Timers", "run_actor"]
