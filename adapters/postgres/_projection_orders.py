"""Projections of orders, stops and fills: ``orders`` and ``fills`` rows.

Owns ORDER_INTENT / STOP_INTENT → ``orders`` rows (a stop without a client order id is
position-level, Bybit trading-stop: no row); STOP_PLACED / _CONFIRMED / _MOVED /
EMERGENCY_STOP_PLACED → ``positions.stop_price`` and the stop order (recorded even when
no STOP_INTENT was projected); the order/stop status events → ``orders.status`` (no client
order id: no row, no-op); FILL → ``fills`` + the order's fill state + the position's fees,
exit price and realized PnL before fees (a fill without a client order id, e.g. a
liquidation, is recorded under ``venue:<event_id>`` with the role its reason implies).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from adapters.postgres._projection_common import (
    Cursor,
    ProjectableEvent,
    Projection,
    ProjectionSkip,
    _field,
    _order_exists,
    _role_of,
    _stop_role,
    _update_position,
)
from tradebot.domain import OrderRole
from tradebot.events import EmergencyStopPlaced, FillRecorded, OrderIntent, StopIntent

__all__: list[str] = []

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
