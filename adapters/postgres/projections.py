"""Projections: journal events → relational rows, in the journal's own transaction.

Every event is stored in ``events`` as is. Some event types are *also* projected into the
relational tables (``positions``, ``orders``, ``fills``, ``signals``, ``waves``,
``tp_levels``, ``alerts``) inside the same group-commit transaction, so the tables never
disagree with the journal. A projection runs only when its event was newly inserted
(``ON CONFLICT DO NOTHING ... RETURNING``), so spool replay never projects twice.

Each projection reads the event's typed payload (:mod:`tradebot.events`: the payload
class of the type is the contract between emitters and these projections) plus the event's
own fields (``position_id``, ``client_order_id``, ``symbol``, ``ts``, ``severity``).

Projections are tolerant: data that does not decode into its payload class, a missing
event field the projection needs (e.g. ENTRY_INTENT without ``position_id``) or a row the
constraints refuse (an order for an unknown position) skips that event's projection,
counts a warning (``JournalStats.projection_skipped`` / ``projection_skip_reasons``) and
never fails the batch — the event itself is stored regardless.

What lands where (each function's docstring or SQL says the details):
SIGNAL_TAKEN / _FILTERED / _REJECTED → ``signals``; WAVE_STARTED / _COMPLETED → ``waves``;
ENTRY_INTENT → ``positions`` (OPENING; ``wave_id`` from the payload's ``wave_ts``) + the
entry ``orders`` row; ENTRY_FILLED / _PARTIAL_FILL → entry price and filled qty;
POSITION_* → ``positions.status`` (terminal ones set ``closed_at``, ``close_reason``);
ORDER_INTENT / STOP_INTENT → ``orders`` rows (a stop without a client order id is
position-level, Bybit trading-stop: no row); STOP_PLACED / _CONFIRMED / _MOVED /
EMERGENCY_STOP_PLACED → ``positions.stop_price`` and the stop order; the order/stop status
events → ``orders.status`` (no client order id: no row, no-op); FILL → ``fills`` + order
fill state + the position's fees, exit price and realized PnL before fees (a fill without
a client order id, e.g. a liquidation, is recorded under ``venue:<event_id>``); TP_PLACED /
TP_FILLED → ``tp_levels``; ALERT_RAISED → ``alerts``.

This module owns the table (:data:`PROJECTIONS`: event type → projection), the entry
point (:func:`project`) and the alerts projection; the others:
:mod:`adapters.postgres._projection_signals` (signals, waves),
:mod:`adapters.postgres._projection_positions` (positions, tp_levels),
:mod:`adapters.postgres._projection_orders` (orders, stops, fills), on the shared
helpers of :mod:`adapters.postgres._projection_common`.
"""

from __future__ import annotations

from adapters.postgres._projection_common import (
    Cursor,
    ProjectableEvent,
    Projection,
    ProjectionSkip,
)
from adapters.postgres._projection_orders import (
    _fill,
    _order_intent,
    _order_status,
    _stop_intent,
    _stop_live,
)
from adapters.postgres._projection_positions import (
    _adopted,
    _entry_filled,
    _entry_intent,
    _exit_recorded,
    _position_active,
    _status,
    _terminal,
    _tp_filled,
    _tp_placed,
)
from adapters.postgres._projection_signals import _signal, _wave_completed, _wave_started
from tradebot.events import AlertRaised, EventSchemaError, EventType, Payload, decode_data

__all__ = ["PROJECTIONS", "ProjectableEvent", "ProjectionSkip", "project"]


def _alert(cur: Cursor, ev: ProjectableEvent, p: AlertRaised) -> None:
    cur.execute(
        """INSERT INTO alerts (event_id, ts, severity, alert_key, message, suppressed_count)
           VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (event_id) DO NOTHING""",
        (ev.event_id, ev.ts, ev.severity, p.key or p.reason, p.message, p.suppressed_count),
    )


E = EventType

PROJECTIONS: dict[str, Projection] = {
    E.SIGNAL_TAKEN.value: _signal("taken"),
    E.SIGNAL_FILTERED.value: _signal("filtered"),
    E.SIGNAL_REJECTED.value: _signal("rejected"),
    E.WAVE_STARTED.value: _wave_started,
    E.WAVE_COMPLETED.value: _wave_completed,
    E.ENTRY_INTENT.value: _entry_intent,
    E.ENTRY_FILLED.value: _entry_filled,
    E.ENTRY_PARTIAL_FILL.value: _entry_filled,
    E.POSITION_OPENING.value: _status("OPENING"),
    E.POSITION_ACTIVE.value: _position_active,
    E.POSITION_CLOSING.value: _status("CLOSING"),
    E.POSITION_CLOSED.value: _terminal("CLOSED"),
    E.POSITION_ROLLED_BACK.value: _terminal("ROLLED_BACK"),
    E.POSITION_FAILED.value: _terminal("FAILED"),
    E.POSITION_EXIT_RECORDED.value: _exit_recorded,
    E.RECONCILE_ADOPTED.value: _adopted,
    E.ORDER_INTENT.value: _order_intent,
    E.STOP_INTENT.value: _stop_intent,
    E.STOP_PLACED.value: _stop_live,
    E.STOP_CONFIRMED.value: _stop_live,
    E.STOP_MOVED.value: _stop_live,
    E.EMERGENCY_STOP_PLACED.value: _stop_live,
    E.ENTRY_SUBMITTED.value: _order_status("SUBMITTED"),
    E.ORDER_SUBMITTED.value: _order_status("SUBMITTED"),
    E.ENTRY_ACKED.value: _order_status(None),
    E.ORDER_UPDATE.value: _order_status(None),
    E.ORDER_CANCELLED.value: _order_status("CANCELED"),
    E.STOP_CANCELLED.value: _order_status("CANCELED"),
    E.ORDER_REJECTED.value: _order_status("REJECTED"),
    E.ENTRY_REJECTED.value: _order_status("REJECTED"),
    E.STOP_REJECTED.value: _order_status("REJECTED"),
    E.STOP_TRIGGERED.value: _order_status("TRIGGERED"),
    E.FILL.value: _fill,
    E.TP_PLACED.value: _tp_placed,
    E.TP_FILLED.value: _tp_filled,
    E.ALERT_RAISED.value: _alert,
}
"""``events.type`` value → projection ``(cursor, event, payload)``."""


def project(cur: Cursor, ev: ProjectableEvent, payload: Payload | None = None) -> bool:
    """Apply the projection of ``ev`` (if its type has one). Returns True if it has one.

    Args:
        cur: a cursor in the journal's transaction.
        ev: the stored event.
        payload: its decoded payload, when the journal has it already (else ``ev.jdata`` is
            decoded here).

    Raises:
        ProjectionSkip: the event cannot be projected (reason in the message).
        psycopg.Error: the database refused the row (the caller rolls back to a savepoint).
    """
    fn = PROJECTIONS.get(ev.type)
    if fn is None:
        return False
    if payload is None:
        try:
            payload = decode_data(EventType(ev.type), ev.jdata)
        except EventSchemaError as exc:
            raise ProjectionSkip(f"schema: {'; '.join(exc.errors)}"[:500]) from None
    fn(cur, ev, payload)
    return True
