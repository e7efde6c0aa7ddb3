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
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol

import psycopg

from tradebot.domain import OrderRole
from tradebot.events import (
    AlertRaised,
    EmergencyStopPlaced,
    EntryFilled,
    EntryIntent,
    EventSchemaError,
    EventType,
    FillRecorded,
    OrderIntent,
    Payload,
    PositionActivated,
    PositionClosed,
    PositionExitRecorded,
    PositionFailed,
    ReconcileAdopted,
    SignalDecision,
    SignalRejected,
    StopIntent,
    TakeProfitFilled,
    TakeProfitPlaced,
    WaveCompleted,
    WaveStarted,
    decode_data,
)
from tradebot.ids import parse_client_order_id
from tradebot.signals import wave_id_for

__all__ = ["PROJECTIONS", "ProjectableEvent", "ProjectionSkip", "project"]


class ProjectionSkip(Exception):
    """The event cannot be projected (bad data, missing event field, unknown row); it is
    still stored."""


class ProjectableEvent(Protocol):
    """What a projection reads: the stored event with JSON-form ``data``."""

    @property
    def event_id(self) -> Any: ...
    @property
    def ts(self) -> datetime: ...
    @property
    def type(self) -> str: ...
    @property
    def severity(self) -> str: ...
    @property
    def position_id(self) -> str | None: ...
    @property
    def client_order_id(self) -> str | None: ...
    @property
    def symbol(self) -> str | None: ...
    @property
    def jdata(self) -> Mapping[str, Any]: ...


Cursor = psycopg.Cursor[Any]
Projection = Callable[[Cursor, ProjectableEvent, Any], None]


def _field(ev: ProjectableEvent, name: str) -> str:
    value = getattr(ev, name)
    if not value:
        raise ProjectionSkip(f"missing event field {name!r}")
    return str(value)


def _role_of(cid: str | None) -> OrderRole | None:
    parsed = parse_client_order_id(cid) if cid else None
    return parsed[1] if parsed else None


def _stop_role(cid: str | None) -> str:
    return "EMERGENCY_STOP" if _role_of(cid) is OrderRole.EMERGENCY_STOP else "STOP"


def _order_exists(cur: Cursor, cid: str) -> bool:
    cur.execute("SELECT 1 FROM orders WHERE client_order_id = %s", (cid,))
    return cur.fetchone() is not None


# -- signals and waves ----------------------------------------------------------------------


def _signal(decision: str) -> Projection:
    def run(cur: Cursor, ev: ProjectableEvent, p: SignalDecision | SignalRejected) -> None:
        cur.execute(
            """INSERT INTO signals (event_id, signal_id, wave_id, wave_ts, symbol, venue, action,
                                    score_week, score_month, decision, reason, ts)
               VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
               ON CONFLICT (event_id) DO NOTHING""",
            (
                ev.event_id,
                p.signal_id,
                p.wave_id,
                p.wave_ts,
                p.symbol or ev.symbol,
                p.venue,
                p.action,
                p.score_week,
                p.score_month,
                decision,
                p.reason,
                ev.ts,
            ),
        )

    return run


def _wave_started(cur: Cursor, ev: ProjectableEvent, p: WaveStarted) -> None:
    cur.execute(
        """INSERT INTO waves (wave_id, wave_ts, started_at) VALUES (%s, %s, %s)
           ON CONFLICT (wave_id) DO UPDATE SET started_at = COALESCE(waves.started_at, EXCLUDED.started_at),
                                               wave_ts = COALESCE(waves.wave_ts, EXCLUDED.wave_ts)""",
        (p.wave_id, p.wave_ts, ev.ts),
    )


def _wave_completed(cur: Cursor, ev: ProjectableEvent, p: WaveCompleted) -> None:
    cur.execute(
        """INSERT INTO waves (wave_id, wave_ts, completed_at, signals_received, signals_taken,
                              signals_filtered)
           VALUES (%s, %s, %s, %s, %s, %s)
           ON CONFLICT (wave_id) DO UPDATE SET
               wave_ts = COALESCE(EXCLUDED.wave_ts, waves.wave_ts),
               completed_at = EXCLUDED.completed_at,
               signals_received = EXCLUDED.signals_received,
               signals_taken = EXCLUDED.signals_taken,
               signals_filtered = EXCLUDED.signals_filtered""",
        (p.wave_id, p.wave_ts, ev.ts, p.received, p.taken, p.filtered),
    )


# -- positions --------------------------------------------------------------------------------


def _entry_intent(cur: Cursor, ev: ProjectableEvent, p: EntryIntent) -> None:
    position_id = _field(ev, "position_id")
    symbol = _field(ev, "symbol")
    if p.position_side is None:
        raise ProjectionSkip("entry intent without position_side")
    side = p.position_side
    cur.execute(
        """INSERT INTO positions (position_id, account, venue, symbol, position_side, status, qty,
                                  intended_stop_price, wave_id, signal_id, opened_at)
           VALUES (%s, %s, %s, %s, %s, 'OPENING', %s, %s, %s, %s, %s)
           ON CONFLICT (position_id) DO NOTHING""",
        (
            position_id,
            p.account or "default",
            p.venue,
            symbol,
            side.name,
            p.qty,
            p.intended_stop,
            wave_id_for(p.wave_ts) if p.wave_ts is not None else None,
            p.signal_id or None,
            ev.ts,
        ),
    )
    if ev.client_order_id:
        cur.execute(
            """INSERT INTO orders (client_order_id, position_id, symbol, side, order_type, role,
                                   status, qty)
               VALUES (%s, %s, %s, %s, 'MARKET', 'ENTRY', 'INTENT', %s)
               ON CONFLICT (client_order_id) DO NOTHING""",
            (ev.client_order_id, position_id, symbol, side.entry_side.name, p.qty),
        )


def _update_position(cur: Cursor, ev: ProjectableEvent, sql: str, params: tuple[Any, ...]) -> None:
    pid = _field(ev, "position_id")
    cur.execute(f"UPDATE positions SET {sql} WHERE position_id = %s", (*params, pid))
    if cur.rowcount == 0:
        raise ProjectionSkip("no positions row for this position_id")


def _entry_filled(cur: Cursor, ev: ProjectableEvent, p: EntryFilled) -> None:
    _update_position(
        cur,
        ev,
        "entry_price = COALESCE(%s, entry_price), qty = %s",
        (p.avg_fill_price, p.filled_qty),
    )


def _status(status: str) -> Projection:
    """A non-terminal status change without position data (OPENING, CLOSING)."""

    def run(cur: Cursor, ev: ProjectableEvent, p: Payload) -> None:
        _update_position(cur, ev, "status = %s", (status,))

    return run


def _position_active(cur: Cursor, ev: ProjectableEvent, p: PositionActivated) -> None:
    _update_position(
        cur,
        ev,
        """status = 'ACTIVE', entry_price = COALESCE(%s, entry_price), qty = %s,
           stop_price = COALESCE(%s, stop_price)""",
        (p.entry_price, p.qty, p.stop_price),
    )


def _terminal(status: str) -> Projection:
    """CLOSED / ROLLED_BACK / FAILED: ``closed_at`` and ``close_reason`` are set."""

    def run(cur: Cursor, ev: ProjectableEvent, p: PositionClosed | PositionFailed) -> None:
        entry_price = p.entry_price if isinstance(p, PositionClosed) else None
        _update_position(
            cur,
            ev,
            """status = %s, entry_price = COALESCE(%s, entry_price),
               closed_at = GREATEST(%s, opened_at), close_reason = COALESCE(%s, close_reason)""",
            (status, entry_price, ev.ts, p.reason or None),
        )

    return run


def _adopted(cur: Cursor, ev: ProjectableEvent, p: ReconcileAdopted) -> None:
    """A position adopted from the exchange: its ``positions`` row (ACTIVE)."""
    position_id = _field(ev, "position_id")
    symbol = _field(ev, "symbol")
    if p.position_side is None:
        raise ProjectionSkip("reconcile.adopted without position_side")
    cur.execute(
        """INSERT INTO positions (position_id, account, venue, symbol, position_side, status, qty,
                                  entry_price, opened_at)
           VALUES (%s, %s, %s, %s, %s, 'ACTIVE', %s, %s, %s)
           ON CONFLICT (position_id) DO NOTHING""",
        (
            position_id,
            p.account or "default",
            p.venue,
            symbol,
            p.position_side.name,
            p.qty,
            p.entry_price if p.entry_price is not None and p.entry_price > 0 else None,
            ev.ts,
        ),
    )


def _exit_recorded(cur: Cursor, ev: ProjectableEvent, p: PositionExitRecorded) -> None:
    """An exit found in the venue's executions (closed while the bot was down): exit price,
    PnL and the closing fees, unless the fills were already projected (exit_price set)."""
    _update_position(
        cur,
        ev,
        """fees_usdt = fees_usdt + CASE WHEN exit_price IS NULL THEN %s ELSE 0 END,
           realized_pnl_usdt = CASE WHEN exit_price IS NULL THEN %s
                                    ELSE realized_pnl_usdt END,
           exit_price = COALESCE(exit_price, %s)""",
        (p.fees_usdt, p.realized_pnl_usdt, p.exit_price),
    )


# -- orders -----------------------------------------------------------------------------------


def _order_intent(cur: Cursor, ev: ProjectableEvent, p: OrderIntent) -> None:
    cid = _field(ev, "client_order_id")
    role = p.role.name
    cur.execute(
        """INSERT INTO orders (client_order_id, position_id, symbol, side, order_type, role, status,
                               qty, price, reduce_only)
           SELECT %s, p.position_id, COALESCE(%s, p.symbol),
                  CASE WHEN (%s = 'ENTRY') = (p.position_side = 'LONG')
                       THEN 'BUY' ELSE 'SELL' END::order_side,
                  %s, %s, 'INTENT', %s, %s, %s
           FROM positions p WHERE p.position_id = %s
           ON CONFLICT (client_order_id) DO NOTHING""",
        (
            cid,
            ev.symbol,
            role,
            "LIMIT" if p.price is not None else "MARKET",
            role,
            p.qty,
            p.price,
            p.role is not OrderRole.ENTRY,
            _field(ev, "position_id"),
        ),
    )
    if cur.rowcount == 0 and not _order_exists(cur, cid):
        raise ProjectionSkip("no positions row for this position_id")


def _stop_intent(cur: Cursor, ev: ProjectableEvent, p: StopIntent) -> None:
    if not ev.client_order_id:
        return  # a position-level stop (Bybit trading-stop) has no order of its own
    cur.execute(
        """INSERT INTO orders (client_order_id, position_id, symbol, side, order_type, role, status,
                               trigger_price, reduce_only, close_position)
           SELECT %s, p.position_id, p.symbol,
                  CASE p.position_side WHEN 'LONG' THEN 'SELL' ELSE 'BUY' END::order_side,
                  'STOP_MARKET', %s, 'INTENT', %s, true, true
           FROM positions p WHERE p.position_id = %s
           ON CONFLICT (client_order_id) DO NOTHING""",
        (
            ev.client_order_id,
            _stop_role(ev.client_order_id),
            p.stop_price,
            _field(ev, "position_id"),
        ),
    )
    if cur.rowcount == 0 and not _order_exists(cur, ev.client_order_id):
        raise ProjectionSkip("no positions row for this position_id")


def _stop_live(cur: Cursor, ev: ProjectableEvent, p: Any) -> None:
    """STOP_PLACED / STOP_CONFIRMED / STOP_MOVED / EMERGENCY_STOP_PLACED."""
    if isinstance(p, EmergencyStopPlaced) and not p.placed:
        return  # the attempt failed: no stop to record
    stop_price: Decimal | None = p.stop_price
    if stop_price is None:
        return  # nothing is known about the stop's price: keep what the row says
    _update_position(cur, ev, "stop_price = %s", (stop_price,))
    if not ev.client_order_id:
        return
    venue_order_id = getattr(p, "venue_order_id", "") or None
    venue_algo_id = getattr(p, "venue_algo_id", "") or None
    cur.execute(
        """UPDATE orders SET status = CASE WHEN status IN ('INTENT', 'SUBMITTED', 'UNKNOWN')
                                          THEN 'NEW' ELSE status END,
               trigger_price = %s,
               venue_order_id = COALESCE(%s, venue_order_id),
               venue_algo_id = COALESCE(%s, venue_algo_id)
           WHERE client_order_id = %s""",
        (stop_price, venue_order_id, venue_algo_id, ev.client_order_id),
    )
    if cur.rowcount == 0:  # no STOP_INTENT was projected: record the live stop anyway
        cur.execute(
            """INSERT INTO orders (client_order_id, position_id, symbol, side, order_type, role,
                                   status, trigger_price, reduce_only, close_position,
                                   venue_order_id, venue_algo_id)
               SELECT %s, p.position_id, p.symbol,
                      CASE p.position_side WHEN 'LONG' THEN 'SELL' ELSE 'BUY' END::order_side,
                      'STOP_MARKET', %s, 'NEW', %s, true, true, %s, %s
               FROM positions p WHERE p.position_id = %s
               ON CONFLICT (client_order_id) DO NOTHING""",
            (
                ev.client_order_id,
                _stop_role(ev.client_order_id),
                stop_price,
                venue_order_id,
                venue_algo_id,
                ev.position_id,
            ),
        )


def _order_status(status: str | None) -> Projection:
    """Set the order's status (None: the payload's ``status``, e.g. ENTRY_ACKED of a filled
    market order, ORDER_UPDATE). No client order id, or no status: no order row, no-op."""

    def run(cur: Cursor, ev: ProjectableEvent, p: Any) -> None:
        if not ev.client_order_id:
            return
        new_status = status
        if new_status is None:
            given = p.status
            if given is None:
                return  # an update that names no status (unrouted account event)
            new_status = given.name
        reject_reason = None
        if new_status == "REJECTED":
            reject_reason = (
                getattr(p, "reason", "") or getattr(p, "error", "") or getattr(p, "code", "")
            ) or None
        cur.execute(
            """UPDATE orders SET status = %s,
                   venue_order_id = COALESCE(%s, venue_order_id),
                   venue_algo_id = COALESCE(%s, venue_algo_id),
                   reject_reason = COALESCE(%s, reject_reason)
               WHERE client_order_id = %s""",
            (
                new_status,
                getattr(p, "venue_order_id", "") or None,
                getattr(p, "venue_algo_id", "") or None,
                reject_reason,
                ev.client_order_id,
            ),
        )
        if cur.rowcount == 0:
            raise ProjectionSkip("no orders row for this client_order_id")

    return run


# -- fills ------------------------------------------------------------------------------------


def _venue_role(p: FillRecorded) -> OrderRole:
    """Role of a venue-generated order (no client order id of ours), from the fill's reason."""
    reason = p.reason.lower()
    if "stop" in reason:
        return OrderRole.STOP
    if "tp" in reason or "take_profit" in reason:
        return OrderRole.TAKE_PROFIT
    if "aged" in reason:
        return OrderRole.AGED_EXIT
    return OrderRole.ENTRY if p.side is p.position_side.entry_side else OrderRole.CLOSE


def _fill(cur: Cursor, ev: ProjectableEvent, p: FillRecorded) -> None:
    if p.qty <= 0 or p.price <= 0:
        raise ProjectionSkip("fill qty and price must be > 0")
    cid = ev.client_order_id
    role = _role_of(cid)
    if not cid:
        # An order the venue generated (a triggered position-level stop, a liquidation):
        # record it under a synthetic id, one per fill event.
        if not ev.position_id:
            raise ProjectionSkip("fill without client_order_id and position_id")
        role = _venue_role(p)
        cid = f"venue:{ev.event_id}"
    if not _order_exists(cur, cid):
        if role is None or not ev.position_id:
            raise ProjectionSkip(
                "no orders row for this client_order_id (and not enough to create one)"
            )
        cur.execute(
            """INSERT INTO orders (client_order_id, position_id, symbol, side, order_type, role,
                                   status, qty, reduce_only)
               SELECT %s, p.position_id, p.symbol, %s, 'MARKET', %s, 'NEW', %s, %s
               FROM positions p WHERE p.position_id = %s""",
            (cid, p.side.name, role.name, p.qty, role is not OrderRole.ENTRY, ev.position_id),
        )
        if cur.rowcount == 0:
            raise ProjectionSkip("no positions row for the fill's position_id")
    cur.execute(
        """INSERT INTO fills (client_order_id, position_id, trade_id, side, qty, price, fee_usdt,
                              is_maker, ts)
           SELECT o.client_order_id, o.position_id, %s, %s, %s, %s, %s, %s, %s
           FROM orders o WHERE o.client_order_id = %s
           ON CONFLICT (client_order_id, trade_id) DO NOTHING""",
        (
            p.trade_id or str(ev.event_id),
            p.side.name,
            p.qty,
            p.price,
            p.fee_usdt,
            p.is_maker,
            ev.ts,
            cid,
        ),
    )
    if cur.rowcount == 0:
        return  # the same trade id was already recorded
    cur.execute(
        """WITH agg AS (SELECT sum(qty) AS q, trim_scale(sum(qty * price) / sum(qty)) AS p,
                               sum(fee_usdt) AS f
                        FROM fills WHERE client_order_id = %s)
           UPDATE orders o SET filled_qty = agg.q, avg_fill_price = agg.p,
                  status = CASE WHEN o.qty IS NULL OR agg.q >= o.qty THEN 'FILLED'
                                ELSE 'PARTIALLY_FILLED' END::order_status
           FROM agg WHERE o.client_order_id = %s""",
        (cid, cid),
    )
    cur.execute(
        """UPDATE positions p SET exit_price = x.avg_price,
                  realized_pnl_usdt = CASE WHEN p.entry_price IS NULL THEN p.realized_pnl_usdt
                      WHEN p.position_side = 'LONG' THEN x.notional - p.entry_price * x.qty
                      ELSE p.entry_price * x.qty - x.notional END
           FROM (SELECT f.position_id, trim_scale(sum(f.qty * f.price) / sum(f.qty)) AS avg_price,
                        sum(f.qty * f.price) AS notional, sum(f.qty) AS qty
                 FROM fills f JOIN positions q ON q.position_id = f.position_id
                 WHERE f.position_id = (SELECT position_id FROM orders WHERE client_order_id = %s)
                   AND f.side = CASE q.position_side WHEN 'LONG' THEN 'SELL' ELSE 'BUY' END::order_side
                 GROUP BY f.position_id) x
           WHERE p.position_id = x.position_id""",
        (cid,),
    )
    cur.execute(
        """UPDATE positions SET fees_usdt = fees_usdt + %s
           WHERE position_id = (SELECT position_id FROM orders WHERE client_order_id = %s)""",
        (p.fee_usdt, cid),
    )


# -- take-profit, alerts ------------------------------------------------------------------------


def _tp_placed(cur: Cursor, ev: ProjectableEvent, p: TakeProfitPlaced) -> None:
    cur.execute(
        """INSERT INTO tp_levels (position_id, level, profit_pct, fraction, price, qty,
                                  client_order_id, status)
           VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
           ON CONFLICT (position_id, level) DO UPDATE SET
               price = COALESCE(EXCLUDED.price, tp_levels.price),
               qty = COALESCE(EXCLUDED.qty, tp_levels.qty),
               status = EXCLUDED.status,
               client_order_id = COALESCE(EXCLUDED.client_order_id, tp_levels.client_order_id),
               profit_pct = COALESCE(EXCLUDED.profit_pct, tp_levels.profit_pct),
               fraction = COALESCE(EXCLUDED.fraction, tp_levels.fraction)""",
        (
            _field(ev, "position_id"),
            p.level,
            p.profit_pct,
            p.fraction,
            p.price,
            p.qty,
            ev.client_order_id,
            "SKIPPED" if p.skipped else "PLACED",
        ),
    )


def _tp_filled(cur: Cursor, ev: ProjectableEvent, p: TakeProfitFilled) -> None:
    cur.execute(
        """UPDATE tp_levels SET status = 'FILLED', filled_at = %s,
               price = COALESCE(%s, price), qty = COALESCE(%s, qty)
           WHERE position_id = %s AND level = %s""",
        (ev.ts, p.price, p.qty, _field(ev, "position_id"), p.level),
    )
    if cur.rowcount == 0:
        raise ProjectionSkip("no tp_levels row for this position/level")


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
