"""The PositionActor: the one owner of one position and its stop (docs/ARCHITECTURE.md
§1, §3, §4).

Front door; the implementation lives in private modules, each saying what it Consumes,
Emits and Owns:

* ``_messages`` — the messages (:data:`PositionMessage` is the union of all of them), the
  :class:`PositionStatus` reply, the :class:`OpenTicket`;
* ``_lifecycle`` — :class:`Lifecycle` and its transition table (:data:`TRANSITIONS`);
* ``_state`` — the one state record and its snapshot codec;
* ``_stop_keeper`` — the only object that calls the stop methods of the exchange port;
* ``_base`` / ``_exits`` / ``_open`` / ``_manage`` / ``_recovery`` / ``_actor`` — the parts
  of :class:`PositionActor`, each building on the one before.
"""

from ._actor import PositionActor as PositionActor
from ._base import PositionJournal as PositionJournal
from ._lifecycle import TRANSITIONS as TRANSITIONS
from ._lifecycle import Lifecycle as Lifecycle
from ._messages import AccountEventMsg as AccountEventMsg
from ._messages import AgeTick as AgeTick
from ._messages import Close as Close
from ._messages import MarkChanged as MarkChanged
from ._messages import OpenTicket as OpenTicket
from ._messages import PositionMessage as PositionMessage
from ._messages import PositionStatus as PositionStatus
from ._messages import Query as Query
from ._messages import VerifyProtection as VerifyProtection

__all__ = [
    "TRANSITIONS",
    "AccountEventMsg",
    "AgeTick",
    "Close",
    "Lifecycle",
    "MarkChanged",
    "OpenTicket",
    "PositionActor",
    "PositionJournal",
    "PositionMessage",
    "PositionStatus",
    "Query",
    "VerifyProtection",
]
