"""The journal event catalog, the typed payloads and the journal port.

Every state change, decision, exchange request/outcome, reconnect and error becomes an
:class:`Event` (docs/ARCHITECTURE.md §1 invariant 6). ``EventType`` is the catalog; its value
is the string stored in ``events.type``. Each type has exactly one payload class
(:data:`PAYLOADS`, a frozen attrs class: its fields with types and units, money as
Decimal, times as aware UTC datetimes). Emitters build the payload and journal
``Event.of(payload, ts, ...)``; ``Event.data`` is its JSON-safe form (:func:`encode`:
Decimal → string, datetime → ISO-8601, enums → value), exactly what the journals store,
and :attr:`Event.payload` / :func:`decode` give the typed payload back. The journals check
every event's data against its class (:class:`EventSchemaError`).

:func:`jsonable` converts any domain value into JSON-safe primitives; it never raises.
"""

from __future__ import annotations

from tradebot.events import _p_legacy, _p_orders, _p_position, _p_runtime, _p_signals
from tradebot.events._base import PAYLOADS as PAYLOADS
from tradebot.events._base import Payload as Payload
from tradebot.events._base import PositionScoped as PositionScoped
from tradebot.events._base import payload as payload
from tradebot.events._base import payload_class as payload_class
from tradebot.events._catalog import EventType as EventType
from tradebot.events._catalog import Severity as Severity
from tradebot.events._codec import EventSchemaError as EventSchemaError
from tradebot.events._codec import decode as decode
from tradebot.events._codec import decode_data as decode_data
from tradebot.events._codec import encode as encode
from tradebot.events._event import Event as Event
from tradebot.events._event import JournalPort as JournalPort
from tradebot.events._event import JournalReader as JournalReader
from tradebot.events._event import OpenPositionsReader as OpenPositionsReader
from tradebot.events._event import TrackedPosition as TrackedPosition
from tradebot.events._event import tracked_from_snapshot as tracked_from_snapshot
from tradebot.events._json import dumps as dumps
from tradebot.events._json import jsonable as jsonable
from tradebot.events._memory import SIGNAL_EVENT_TYPES as SIGNAL_EVENT_TYPES
from tradebot.events._memory import MemoryJournal as MemoryJournal
from tradebot.events._p_legacy import *  # noqa: F403
from tradebot.events._p_orders import *  # noqa: F403
from tradebot.events._p_position import *  # noqa: F403
from tradebot.events._p_runtime import *  # noqa: F403
from tradebot.events._p_signals import *  # noqa: F403

__all__ = [
    "PAYLOADS",
    "Event",
    "EventSchemaError",
    "EventType",
    "JournalPort",
    "JournalReader",
    "MemoryJournal",
    "OpenPositionsReader",
    "SIGNAL_EVENT_TYPES",
    "Payload",
    "PositionScoped",
    "Severity",
    "TrackedPosition",
    "decode",
    "decode_data",
    "dumps",
    "encode",
    "jsonable",
    "payload",
    "tracked_from_snapshot",
    "payload_class",
    *_p_legacy.__all__,
    *_p_orders.__all__,
    *_p_position.__all__,
    *_p_runtime.__all__,
    *_p_signals.__all__,
]
