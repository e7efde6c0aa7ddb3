"""Projections: journal events → relational rows, in the journal's own transaction.

Every event is stored in ``events`` as is. Some event types are *also* projected into the
relational tables (``positions``, ``orders``, ``fills``, ``signals``, ``waves``,
``tp_levels``, ``alerts``) inside the same group-commit transaction, so the tables never
disagree with the journal. A projection runs only when its event was newly inserted
(``ON CONFLICT DO NOTHING ... RETURNING``), so spool replay never projects twice.

Projections are tolerant: a missing or malformed key (or a row the constraints refuse, e.g.
an order for an unknown position) skips that event's projection, counts a warning
(``JournalStats.projection_skipped`` / ``projection_skip_reasons``) and never fails the
batch — the event itself is stored regardless.

Data keys (THE contract for emitters). Decimal values as strings or Decimal (``jsonable``
turns Decimal into a string) — never float. ``E:`` marks a field of
:class:`tradebot.events.Event` itself, not of ``data``. ``a|b`` means "a, or else b".
Required keys missing → projection skipped (and counted); "(none)" → nothing is skipped.

ENTRY_INTENT → ``positions`` row (OPENING) + entry ``orders`` row (INTENT, MARKET)
    required: E:position_id, E:symbol, position_side (LONG/SHORT), qty,
              stop_price|intended_stop (the intended initial stop)
    optional: entry_client_order_id|E:client_order_id, venue, account, wave_id, signal_id,
              price|reference_price
ENTRY_FILLED / ENTRY_PARTIAL_FILL → ``positions.entry_price``, ``positions.qty``
    required: E:position_id, price|avg_fill_price|entry_price, qty|filled_qty
POSITION_OPENING / _ACTIVE / _CLOSING / _CLOSED / _ROLLED_BACK / _FAILED → ``positions.status``
    required: E:position_id (the row must exist: ENTRY_INTENT first)
    optional: entry_price, qty, stop_price, exit_price, realized_pnl_usdt, fees_usdt, reason
              (terminal ones also set closed_at = E:ts and close_reason = reason)
ORDER_INTENT → ``orders`` row (INTENT)
    required: E:position_id, E:client_order_id, role (OrderRole name or letter)
    optional: side (default: the position's entry side for ENTRY, exit side otherwise),
              order_type (default LIMIT when price is given, else MARKET), qty, price,
              trigger_price, reduce_only (default: role != ENTRY), close_position, E:symbol
STOP_INTENT → ``orders`` row (STOP_MARKET, INTENT, reduce-only, side = position's exit side)
    required: E:position_id, stop_price
    optional: E:client_order_id (absent: a position-level stop, no order row → no-op),
              qty (absent → close_position), side
STOP_PLACED / STOP_CONFIRMED / STOP_MOVED / EMERGENCY_STOP_PLACED → ``positions.stop_price``
    and, with E:client_order_id, the stop order (status NEW, trigger_price, venue ids;
    created if no STOP_INTENT row exists)
    required: E:position_id, stop_price (unless ``placed`` is false: a failed attempt, no-op)
    optional: E:client_order_id, venue_order_id, venue_algo_id, placed
ENTRY_SUBMITTED / ORDER_SUBMITTED → order SUBMITTED; ENTRY_ACKED → NEW (or data status);
ORDER_UPDATE → data status (required, an OrderStatus value); ORDER_CANCELLED /
STOP_CANCELLED → CANCELED; ORDER_REJECTED / ENTRY_REJECTED / STOP_REJECTED → REJECTED
(reject_reason = reason|error|code); STOP_TRIGGERED → TRIGGERED
    required: (none) — without E:client_order_id the event concerns no order row (no-op)
    optional: E:client_order_id, status, venue_order_id, venue_algo_id
FILL → ``fills`` row (+ order filled_qty / avg_fill_price / status; position fees_usdt and
    exit_price = average price of the exit-side fills; realized_pnl_usdt = their PnL against
    the entry price, before fees — fees accumulate in fees_usdt)
    required: qty, price
    optional: E:client_order_id, trade_id (default: the event id — one FILL event = one
              execution), side, fee_usdt, is_maker, E:position_id, reason, position_side.
              A missing order row is created (role from the client order id) when
              E:position_id and side are given; a fill WITHOUT a client order id (an order
              the venue generated: triggered position-level stop, liquidation) is recorded
              under ``venue:<event_id>`` with its role from ``reason`` ("stop" → STOP ...)
TP_PLACED → ``tp_levels`` (PLACED, or SKIPPED when ``skipped`` is a non-empty reason)
    required: E:position_id, level (int >= 0)
    optional: price (absent for a market take-profit), qty, profit_pct, fraction, skipped,
              E:client_order_id
TP_FILLED → ``tp_levels`` (FILLED)
    required: E:position_id, level;  optional: price, qty
SIGNAL_TAKEN / SIGNAL_FILTERED / SIGNAL_REJECTED → ``signals`` (decision taken/filtered/rejected)
    required: (none)
    optional: signal_id, wave_id, wave_ts, symbol|E:symbol, exchange, action, score_week,
              score_month, reason
WAVE_STARTED → ``waves`` (started_at)
    required: wave_id;  optional: wave_ts
WAVE_COMPLETED → ``waves`` (completed_at)
    required: wave_id;  optional: wave_ts, signals_received, signals_taken, signals_filtered
ALERT_RAISED → ``alerts``
    required: message;  optional: key, suppressed_count (severity = E:severity)

The same table is :data:`PROJECTED_KEYS` (machine-readable).
"""

from __future__ import annotations

import decimal
from collections.abc import Callable, Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol

import psycopg

from tradebot.domain import OrderRole, OrderStatus, OrderType, PositionSide, Side
from tradebot.events import EventType
from tradebot.ids import parse_client_order_id

__all__ = [
    "PROJECTED_KEYS",
    "PROJECTIONS",
    "ProjectableEvent",
    "ProjectionSkip",
    "project",
]


class ProjectionSkip(Exception):
    """The event cannot be projected (missing/malformed key, unknown row); it is still stored."""


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


# event type → (required event fields, required data keys, optional data keys)
PROJECTED_KEYS: dict[EventType, tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]] = {
    EventType.SIGNAL_TAKEN: (
        (),
        (),
        (
            "signal_id",
            "wave_id",
            "wave_ts",
            "symbol",
            "exchange",
            "action",
            "score_week",
            "score_month",
            "reason",
        ),
    ),
    EventType.SIGNAL_FILTERED: (
        (),
        (),
        (
            "signal_id",
            "wave_id",
            "wave_ts",
            "symbol",
            "exchange",
            "action",
            "score_week",
            "score_month",
            "reason",
        ),
    ),
    EventType.SIGNAL_REJECTED: (
        (),
        (),
        (
            "signal_id",
            "wave_id",
            "wave_ts",
            "symbol",
            "exchange",
            "action",
            "score_week",
            "score_month",
            "reason",
        ),
    ),
    EventType.WAVE_STARTED: ((), ("wave_id",), ("wave_ts",)),
    EventType.WAVE_COMPLETED: (
        (),
        ("wave_id",),
        ("wave_ts", "signals_received", "signals_taken", "signals_filtered"),
    ),
    EventType.ENTRY_INTENT: (
        ("position_id", "symbol"),
        ("position_side", "qty", "stop_price|intended_stop"),
        (
            "venue",
            "account",
            "wave_id",
            "signal_id",
            "entry_client_order_id",
            "price|reference_price",
        ),
    ),
    EventType.ENTRY_FILLED: (
        ("position_id",),
        ("price|avg_fill_price|entry_price", "qty|filled_qty"),
        (),
    ),
    EventType.ENTRY_PARTIAL_FILL: (
        ("position_id",),
        ("price|avg_fill_price|entry_price", "qty|filled_qty"),
        (),
    ),
    EventType.POSITION_OPENING: (
        ("position_id",),
        (),
        (
            "entry_price",
            "qty",
            "stop_price",
            "exit_price",
            "realized_pnl_usdt",
            "fees_usdt",
            "reason",
        ),
    ),
    EventType.POSITION_ACTIVE: (
        ("position_id",),
        (),
        (
            "entry_price",
            "qty",
            "stop_price",
            "exit_price",
            "realized_pnl_usdt",
            "fees_usdt",
            "reason",
        ),
    ),
    EventType.POSITION_CLOSING: (
        ("position_id",),
        (),
        (
            "entry_price",
            "qty",
            "stop_price",
            "exit_price",
            "realized_pnl_usdt",
            "fees_usdt",
            "reason",
        ),
    ),
    EventType.POSITION_CLOSED: (
        ("position_id",),
        (),
        (
            "entry_price",
            "qty",
            "stop_price",
            "exit_price",
            "realized_pnl_usdt",
            "fees_usdt",
            "reason",
        ),
    ),
    EventType.POSITION_ROLLED_BACK: (
        ("position_id",),
        (),
        (
            "entry_price",
            "qty",
            "stop_price",
            "exit_price",
            "realized_pnl_usdt",
            "fees_usdt",
            "reason",
        ),
    ),
    EventType.POSITION_FAILED: (
        ("position_id",),
        (),
        (
            "entry_price",
            "qty",
            "stop_price",
            "exit_price",
            "realized_pnl_usdt",
            "fees_usdt",
            "reason",
        ),
    ),
    EventType.ORDER_INTENT: (
        ("position_id", "client_order_id"),
        ("role",),
        ("side", "order_type", "qty", "price", "trigger_price", "reduce_only", "close_position"),
    ),
    EventType.STOP_INTENT: (("position_id",), ("stop_price",), ("client_order_id", "qty", "side")),
    EventType.STOP_PLACED: (("position_id",), ("stop_price",), ("venue_order_id", "venue_algo_id")),
    EventType.STOP_CONFIRMED: (
        ("position_id",),
        ("stop_price",),
        ("venue_order_id", "venue_algo_id"),
    ),
    EventType.STOP_MOVED: (("position_id",), ("stop_price",), ("venue_order_id", "venue_algo_id")),
    EventType.EMERGENCY_STOP_PLACED: (
        ("position_id",),
        ("stop_price",),
        ("venue_order_id", "venue_algo_id"),
    ),
    EventType.ENTRY_SUBMITTED: (
        (),
        (),
        ("client_order_id", "status", "venue_order_id", "venue_algo_id"),
    ),
    EventType.ORDER_SUBMITTED: (
        (),
        (),
        ("client_order_id", "status", "venue_order_id", "venue_algo_id"),
    ),
    EventType.ENTRY_ACKED: (
        (),
        (),
        ("client_order_id", "status", "venue_order_id", "venue_algo_id"),
    ),
    EventType.ORDER_UPDATE: (
        (),
        ("status",),
        ("client_order_id", "venue_order_id", "venue_algo_id"),
    ),
    EventType.ORDER_CANCELLED: ((), (), ("client_order_id",)),
    EventType.STOP_CANCELLED: ((), (), ("client_order_id",)),
    EventType.ORDER_REJECTED: ((), (), ("client_order_id", "reason", "error", "code")),
    EventType.ENTRY_REJECTED: ((), (), ("client_order_id", "reason", "error", "code")),
    EventType.STOP_REJECTED: ((), (), ("client_order_id", "reason", "error", "code")),
    EventType.STOP_TRIGGERED: ((), (), ("client_order_id",)),
    EventType.FILL: (
        ("client_order_id",),
        ("qty", "price"),
        ("trade_id", "side", "fee_usdt", "is_maker", "position_id"),
    ),
    EventType.TP_PLACED: (
        ("position_id",),
        ("level",),
        ("price", "qty", "profit_pct", "fraction", "skipped"),
    ),
    EventType.TP_FILLED: (("position_id",), ("level",), ("price", "qty")),
    EventType.ALERT_RAISED: ((), ("message",), ("key", "suppressed_count")),
}

Cursor = psycopg.Cursor[Any]


# -- value parsing (JSON form → typed); every failure is a ProjectionSkip -----------------


def _get(ev: ProjectableEvent, key: str) -> Any:
    if key not in ev.jdata or ev.jdata[key] is None:
        raise ProjectionSkip(f"missing data key {key!r}")
    return ev.jdata[key]


def _field(ev: ProjectableEvent, name: str) -> str:
    value = getattr(ev, name)
    if not value:
        raise ProjectionSkip(f"missing event field {name!r}")
    return str(value)


def _dec(value: Any, key: str) -> Decimal:
    if isinstance(value, (bool, float)):
        raise ProjectionSkip(f"{key}: expected a decimal string, got {type(value).__name__}")
    try:
        d = Decimal(value) if isinstance(value, (int, Decimal)) else Decimal(str(value).strip())
    except (decimal.InvalidOperation, ValueError):
        raise ProjectionSkip(f"{key}: not a decimal: {value!r}") from None
    if not d.is_finite():
        raise ProjectionSkip(f"{key}: not finite: {value!r}")
    return d


def _dec_req(ev: ProjectableEvent, key: str, *aliases: str) -> Decimal:
    for k in (key, *aliases):
        if ev.jdata.get(k) is not None:
            return _dec(ev.jdata[k], k)
    raise ProjectionSkip(f"missing data key {key!r}")


def _dec_opt(ev: ProjectableEvent, key: str, *aliases: str) -> Decimal | None:
    for k in (key, *aliases):
        v = ev.jdata.get(k)
        if v is not None and v != "":
            return _dec(v, k)
    return None


def _str_opt(ev: ProjectableEvent, key: str) -> str | None:
    v = ev.jdata.get(key)
    return None if v is None else str(v)


def _int_opt(ev: ProjectableEvent, key: str) -> int | None:
    v = ev.jdata.get(key)
    if v is None:
        return None
    if isinstance(v, (bool, float)):
        raise ProjectionSkip(f"{key}: expected an integer, got {type(v).__name__}")
    try:
        return int(v)
    except (TypeError, ValueError):
        raise ProjectionSkip(f"{key}: not an integer: {v!r}") from None


def _bool_opt(ev: ProjectableEvent, key: str) -> bool | None:
    v = ev.jdata.get(key)
    if v is None:
        return None
    if isinstance(v, bool):
        return v
    if isinstance(v, str) and v.lower() in ("true", "false"):
        return v.lower() == "true"
    raise ProjectionSkip(f"{key}: expected a boolean, got {v!r}")


def _ts_opt(ev: ProjectableEvent, key: str) -> datetime | None:
    v = ev.jdata.get(key)
    if v is None:
        return None
    if isinstance(v, datetime):
        return v
    try:
        ts = datetime.fromisoformat(str(v).replace("Z", "+00:00"))
    except ValueError:
        raise ProjectionSkip(f"{key}: not an ISO-8601 time: {v!r}") from None
    if ts.tzinfo is None:
        raise ProjectionSkip(f"{key}: time without a UTC offset: {v!r}")
    return ts


def _enum_name(value: Any, enum_cls: Any, key: str) -> str:
    text = str(value).strip()
    for member in enum_cls:
        if text.upper() in (member.name, str(member.value).upper()):
            return str(member.name)
    raise ProjectionSkip(f"{key}: unknown {enum_cls.__name__} {value!r}")


# -- projections -------------------------------------------------------------------------


def _signal(decision: str) -> Callable[[Cursor, ProjectableEvent], None]:
    def run(cur: Cursor, ev: ProjectableEvent) -> None:
        symbol = _str_opt(ev, "symbol") or ev.symbol
        cur.execute(
            """INSERT INTO signals (event_id, signal_id, wave_id, wave_ts, symbol, venue, action,
                                    score_week, score_month, decision, reason, ts)
               VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
               ON CONFLICT (event_id) DO NOTHING""",
            (
                ev.event_id,
                _str_opt(ev, "signal_id"),
                _str_opt(ev, "wave_id"),
                _ts_opt(ev, "wave_ts"),
                symbol,
                _str_opt(ev, "exchange"),
                _str_opt(ev, "action"),
                _dec_opt(ev, "score_week"),
                _dec_opt(ev, "score_month"),
                decision,
                _str_opt(ev, "reason") or "",
                ev.ts,
            ),
        )

    return run


def _wave_started(cur: Cursor, ev: ProjectableEvent) -> None:
    cur.execute(
        """INSERT INTO waves (wave_id, wave_ts, started_at) VALUES (%s, %s, %s)
           ON CONFLICT (wave_id) DO UPDATE SET started_at = COALESCE(waves.started_at, EXCLUDED.started_at),
                                               wave_ts = COALESCE(waves.wave_ts, EXCLUDED.wave_ts)""",
        (str(_get(ev, "wave_id")), _ts_opt(ev, "wave_ts"), ev.ts),
    )


def _wave_completed(cur: Cursor, ev: ProjectableEvent) -> None:
    cur.execute(
        """INSERT INTO waves (wave_id, wave_ts, completed_at, signals_received, signals_taken,
                              signals_filtered)
           VALUES (%s, %s, %s, %s, %s, %s)
           ON CONFLICT (wave_id) DO UPDATE SET
               wave_ts = COALESCE(EXCLUDED.wave_ts, waves.wave_ts),
               completed_at = EXCLUDED.completed_at,
               signals_received = COALESCE(EXCLUDED.signals_received, waves.signals_received),
               signals_taken = COALESCE(EXCLUDED.signals_taken, waves.signals_taken),
               signals_filtered = COALESCE(EXCLUDED.signals_filtered, waves.signals_filtered)""",
        (
            str(_get(ev, "wave_id")),
            _ts_opt(ev, "wave_ts"),
            ev.ts,
            _int_opt(ev, "signals_received"),
            _int_opt(ev, "signals_taken"),
            _int_opt(ev, "signals_filtered"),
        ),
    )


def _entry_intent(cur: Cursor, ev: ProjectableEvent) -> None:
    position_id = _field(ev, "position_id")
    symbol = _field(ev, "symbol")
    side = PositionSide[_enum_name(_get(ev, "position_side"), PositionSide, "position_side")]
    qty = _dec_req(ev, "qty")
    stop_price = _dec_req(ev, "stop_price", "intended_stop")
    cur.execute(
        """INSERT INTO positions (position_id, account, venue, symbol, position_side, status, qty,
                                  intended_stop_price, wave_id, signal_id, opened_at)
           VALUES (%s, COALESCE(%s, 'default'), COALESCE(%s, ''), %s, %s, 'OPENING', %s, %s, %s, %s, %s)
           ON CONFLICT (position_id) DO NOTHING""",
        (
            position_id,
            _str_opt(ev, "account"),
            _str_opt(ev, "venue"),
            symbol,
            side.name,
            qty,
            stop_price,
            _str_opt(ev, "wave_id"),
            _str_opt(ev, "signal_id"),
            ev.ts,
        ),
    )
    cid = _str_opt(ev, "entry_client_order_id") or ev.client_order_id
    if cid:
        cur.execute(
            """INSERT INTO orders (client_order_id, position_id, symbol, side, order_type, role,
                                   status, qty)
               VALUES (%s, %s, %s, %s, 'MARKET', 'ENTRY', 'INTENT', %s)
               ON CONFLICT (client_order_id) DO NOTHING""",
            (cid, position_id, symbol, side.entry_side.name, qty),
        )


_TERMINAL = {EventType.POSITION_CLOSED, EventType.POSITION_ROLLED_BACK, EventType.POSITION_FAILED}


def _position_status(status: str, terminal: bool) -> Callable[[Cursor, ProjectableEvent], None]:
    def run(cur: Cursor, ev: ProjectableEvent) -> None:
        cur.execute(
            """UPDATE positions SET status = %s,
                   entry_price = COALESCE(%s, entry_price),
                   qty = COALESCE(%s, qty),
                   stop_price = COALESCE(%s, stop_price),
                   exit_price = COALESCE(%s, exit_price),
                   realized_pnl_usdt = COALESCE(%s, realized_pnl_usdt),
                   fees_usdt = COALESCE(%s, fees_usdt),
                   closed_at = CASE WHEN %s THEN GREATEST(%s, opened_at) ELSE closed_at END,
                   close_reason = CASE WHEN %s THEN COALESCE(%s, close_reason) ELSE close_reason END
               WHERE position_id = %s""",
            (
                status,
                _dec_opt(ev, "entry_price"),
                _dec_opt(ev, "qty"),
                _dec_opt(ev, "stop_price"),
                _dec_opt(ev, "exit_price"),
                _dec_opt(ev, "realized_pnl_usdt"),
                _dec_opt(ev, "fees_usdt"),
                terminal,
                ev.ts,
                terminal,
                _str_opt(ev, "reason"),
                _field(ev, "position_id"),
            ),
        )
        if cur.rowcount == 0:
            raise ProjectionSkip("no positions row for this position_id")

    return run


def _entry_filled(cur: Cursor, ev: ProjectableEvent) -> None:
    cur.execute(
        "UPDATE positions SET entry_price = %s, qty = %s WHERE position_id = %s",
        (
            _dec_req(ev, "price", "avg_fill_price", "entry_price"),
            _dec_req(ev, "qty", "filled_qty"),
            _field(ev, "position_id"),
        ),
    )
    if cur.rowcount == 0:
        raise ProjectionSkip("no positions row for this position_id")


def _order_intent(cur: Cursor, ev: ProjectableEvent) -> None:
    close_position = bool(_bool_opt(ev, "close_position"))
    role = _enum_name(_get(ev, "role"), OrderRole, "role")
    side = _str_opt(ev, "side")
    price = _dec_opt(ev, "price")
    order_type = _str_opt(ev, "order_type") or ("LIMIT" if price is not None else "MARKET")
    cur.execute(
        """INSERT INTO orders (client_order_id, position_id, symbol, side, order_type, role, status,
                               qty, price, trigger_price, reduce_only, close_position)
           SELECT %s, p.position_id, COALESCE(%s, p.symbol),
                  COALESCE(%s::order_side,
                           CASE WHEN (%s = 'ENTRY') = (p.position_side = 'LONG')
                                THEN 'BUY' ELSE 'SELL' END::order_side),
                  %s, %s, 'INTENT', %s, %s, %s, %s, %s
           FROM positions p WHERE p.position_id = %s
           ON CONFLICT (client_order_id) DO NOTHING""",
        (
            _field(ev, "client_order_id"),
            ev.symbol,
            _enum_name(side, Side, "side") if side else None,
            role,
            _enum_name(order_type, OrderType, "order_type"),
            role,
            _dec_opt(ev, "qty"),
            price,
            _dec_opt(ev, "trigger_price"),
            _bool_opt(ev, "reduce_only")
            if _bool_opt(ev, "reduce_only") is not None
            else role != "ENTRY",
            close_position,
            _field(ev, "position_id"),
        ),
    )
    if cur.rowcount == 0 and not _order_exists(cur, _field(ev, "client_order_id")):
        raise ProjectionSkip("no positions row for this position_id")


def _stop_intent(cur: Cursor, ev: ProjectableEvent) -> None:
    if not ev.client_order_id:
        return  # a position-level stop (Bybit trading-stop) has no order of its own
    position_id = _field(ev, "position_id")
    qty = _dec_opt(ev, "qty")
    side = _str_opt(ev, "side")
    cur.execute(
        """INSERT INTO orders (client_order_id, position_id, symbol, side, order_type, role, status,
                               qty, trigger_price, reduce_only, close_position)
           SELECT %s, p.position_id, p.symbol,
                  COALESCE(%s::order_side,
                           CASE p.position_side WHEN 'LONG' THEN 'SELL' ELSE 'BUY' END::order_side),
                  'STOP_MARKET', %s, 'INTENT', %s, %s, true, %s
           FROM positions p WHERE p.position_id = %s
           ON CONFLICT (client_order_id) DO NOTHING""",
        (
            _field(ev, "client_order_id"),
            _enum_name(side, Side, "side") if side else None,
            "EMERGENCY_STOP"
            if _role_of(ev.client_order_id) is OrderRole.EMERGENCY_STOP
            else "STOP",
            qty,
            _dec_req(ev, "stop_price"),
            qty is None,
            position_id,
        ),
    )
    if cur.rowcount == 0 and not _order_exists(cur, _field(ev, "client_order_id")):
        raise ProjectionSkip("no positions row for this position_id")


def _role_of(cid: str | None) -> OrderRole | None:
    parsed = parse_client_order_id(cid) if cid else None
    return parsed[1] if parsed else None


def _order_exists(cur: Cursor, cid: str) -> bool:
    cur.execute("SELECT 1 FROM orders WHERE client_order_id = %s", (cid,))
    return cur.fetchone() is not None


def _stop_live(cur: Cursor, ev: ProjectableEvent) -> None:
    if ev.jdata.get("placed") is False:
        return  # the attempt failed (EMERGENCY_STOP_PLACED placed=false): no stop to record
    stop_price = _dec_req(ev, "stop_price")
    cur.execute(
        "UPDATE positions SET stop_price = %s WHERE position_id = %s",
        (stop_price, _field(ev, "position_id")),
    )
    if cur.rowcount == 0:
        raise ProjectionSkip("no positions row for this position_id")
    if ev.client_order_id:
        cur.execute(
            """UPDATE orders SET status = CASE WHEN status IN ('INTENT', 'SUBMITTED', 'UNKNOWN')
                                              THEN 'NEW' ELSE status END,
                   trigger_price = %s,
                   venue_order_id = COALESCE(%s, venue_order_id),
                   venue_algo_id = COALESCE(%s, venue_algo_id)
               WHERE client_order_id = %s""",
            (
                stop_price,
                _str_opt(ev, "venue_order_id"),
                _str_opt(ev, "venue_algo_id"),
                ev.client_order_id,
            ),
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
                    "EMERGENCY_STOP"
                    if _role_of(ev.client_order_id) is OrderRole.EMERGENCY_STOP
                    else "STOP",
                    stop_price,
                    _str_opt(ev, "venue_order_id"),
                    _str_opt(ev, "venue_algo_id"),
                    ev.position_id,
                ),
            )


def _order_status(status: str | None) -> Callable[[Cursor, ProjectableEvent], None]:
    """``status`` None: read ``data["status"]`` (required). Otherwise ``data["status"]``
    overrides ``status`` when it is a valid order status (e.g. ENTRY_ACKED of a filled
    market order). An event without a client order id concerns no order row: no-op."""

    def run(cur: Cursor, ev: ProjectableEvent) -> None:
        if not ev.client_order_id:
            return
        new_status = status
        given = ev.jdata.get("status")
        if status is None:
            new_status = _enum_name(_get(ev, "status"), OrderStatus, "status")
        elif given is not None and status not in ("CANCELED", "REJECTED", "TRIGGERED"):
            try:
                new_status = _enum_name(given, OrderStatus, "status")
            except ProjectionSkip:
                pass
        cur.execute(
            """UPDATE orders SET status = %s,
                   venue_order_id = COALESCE(%s, venue_order_id),
                   venue_algo_id = COALESCE(%s, venue_algo_id),
                   reject_reason = COALESCE(%s, reject_reason)
               WHERE client_order_id = %s""",
            (
                new_status,
                _str_opt(ev, "venue_order_id"),
                _str_opt(ev, "venue_algo_id"),
                (_str_opt(ev, "reason") or _str_opt(ev, "error") or _str_opt(ev, "code"))
                if new_status == "REJECTED"
                else None,
                ev.client_order_id,
            ),
        )
        if cur.rowcount == 0:
            raise ProjectionSkip("no orders row for this client_order_id")

    return run


def _venue_role(ev: ProjectableEvent, side_name: str | None) -> OrderRole:
    """Role of a venue-generated order (no client order id of ours), from the fill's reason."""
    reason = str(ev.jdata.get("reason") or "").lower()
    if "stop" in reason:
        return OrderRole.STOP
    if "tp" in reason or "take_profit" in reason:
        return OrderRole.TAKE_PROFIT
    if "aged" in reason:
        return OrderRole.AGED_EXIT
    position_side = str(ev.jdata.get("position_side") or "").upper()
    if side_name and position_side in ("LONG", "SHORT"):
        entry = PositionSide[position_side].entry_side.name
        return OrderRole.ENTRY if side_name == entry else OrderRole.CLOSE
    return OrderRole.CLOSE


def _fill(cur: Cursor, ev: ProjectableEvent) -> None:
    qty = _dec_req(ev, "qty")
    price = _dec_req(ev, "price")
    if qty <= 0 or price <= 0:
        raise ProjectionSkip("fill qty and price must be > 0")
    side = _str_opt(ev, "side")
    side_name = _enum_name(side, Side, "side") if side else None
    cid = ev.client_order_id
    role = _role_of(cid)
    if not cid:
        # An order the venue generated (a triggered position-level stop, a liquidation):
        # record it under a synthetic id, one per fill event.
        if not ev.position_id:
            raise ProjectionSkip("fill without client_order_id and position_id")
        role = _venue_role(ev, side_name)
        cid = f"venue:{ev.event_id}"
    if not _order_exists(cur, cid):
        if role is None or not ev.position_id or side_name is None:
            raise ProjectionSkip(
                "no orders row for this client_order_id (and not enough to create one)"
            )
        cur.execute(
            """INSERT INTO orders (client_order_id, position_id, symbol, side, order_type, role,
                                   status, qty, reduce_only)
               SELECT %s, p.position_id, p.symbol, %s, 'MARKET', %s, 'NEW', %s, %s
               FROM positions p WHERE p.position_id = %s""",
            (cid, side_name, role.name, qty, role is not OrderRole.ENTRY, ev.position_id),
        )
        if cur.rowcount == 0:
            raise ProjectionSkip("no positions row for the fill's position_id")
    cur.execute(
        """INSERT INTO fills (client_order_id, position_id, trade_id, side, qty, price, fee_usdt,
                              is_maker, ts)
           SELECT o.client_order_id, o.position_id, %s, COALESCE(%s::order_side, o.side), %s, %s,
                  %s, %s, %s
           FROM orders o WHERE o.client_order_id = %s
           ON CONFLICT (client_order_id, trade_id) DO NOTHING""",
        (
            str(ev.jdata.get("trade_id") or ev.jdata.get("exec_id") or ev.event_id),
            side_name,
            qty,
            price,
            _dec_opt(ev, "fee_usdt") or Decimal(0),
            _bool_opt(ev, "is_maker"),
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
        (_dec_opt(ev, "fee_usdt") or Decimal(0), cid),
    )


def _tp_placed(cur: Cursor, ev: ProjectableEvent) -> None:
    level = _int_opt(ev, "level")
    if level is None:
        raise ProjectionSkip("missing data key 'level'")
    status = "SKIPPED" if ev.jdata.get("skipped") else "PLACED"
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
            level,
            _dec_opt(ev, "profit_pct"),
            _dec_opt(ev, "fraction"),
            _dec_opt(ev, "price"),
            _dec_opt(ev, "qty"),
            ev.client_order_id,
            status,
        ),
    )


def _tp_filled(cur: Cursor, ev: ProjectableEvent) -> None:
    level = _int_opt(ev, "level")
    if level is None:
        raise ProjectionSkip("missing data key 'level'")
    cur.execute(
        """UPDATE tp_levels SET status = 'FILLED', filled_at = %s,
               price = COALESCE(%s, price), qty = COALESCE(%s, qty)
           WHERE position_id = %s AND level = %s""",
        (ev.ts, _dec_opt(ev, "price"), _dec_opt(ev, "qty"), _field(ev, "position_id"), level),
    )
    if cur.rowcount == 0:
        raise ProjectionSkip("no tp_levels row for this position/level")


def _alert(cur: Cursor, ev: ProjectableEvent) -> None:
    cur.execute(
        """INSERT INTO alerts (event_id, ts, severity, alert_key, message, suppressed_count)
           VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (event_id) DO NOTHING""",
        (
            ev.event_id,
            ev.ts,
            ev.severity,
            _str_opt(ev, "key") or "",
            str(_get(ev, "message")),
            _int_opt(ev, "suppressed_count") or 0,
        ),
    )


PROJECTIONS: dict[str, Callable[[Cursor, ProjectableEvent], None]] = {
    EventType.SIGNAL_TAKEN.value: _signal("taken"),
    EventType.SIGNAL_FILTERED.value: _signal("filtered"),
    EventType.SIGNAL_REJECTED.value: _signal("rejected"),
    EventType.WAVE_STARTED.value: _wave_started,
    EventType.WAVE_COMPLETED.value: _wave_completed,
    EventType.ENTRY_INTENT.value: _entry_intent,
    EventType.ENTRY_FILLED.value: _entry_filled,
    EventType.ENTRY_PARTIAL_FILL.value: _entry_filled,
    EventType.POSITION_OPENING.value: _position_status("OPENING", False),
    EventType.POSITION_ACTIVE.value: _position_status("ACTIVE", False),
    EventType.POSITION_CLOSING.value: _position_status("CLOSING", False),
    EventType.POSITION_CLOSED.value: _position_status("CLOSED", True),
    EventType.POSITION_ROLLED_BACK.value: _position_status("ROLLED_BACK", True),
    EventType.POSITION_FAILED.value: _position_status("FAILED", True),
    EventType.ORDER_INTENT.value: _order_intent,
    EventType.STOP_INTENT.value: _stop_intent,
    EventType.STOP_PLACED.value: _stop_live,
    EventType.STOP_CONFIRMED.value: _stop_live,
    EventType.STOP_MOVED.value: _stop_live,
    EventType.EMERGENCY_STOP_PLACED.value: _stop_live,
    EventType.ENTRY_SUBMITTED.value: _order_status("SUBMITTED"),
    EventType.ORDER_SUBMITTED.value: _order_status("SUBMITTED"),
    EventType.ENTRY_ACKED.value: _order_status("NEW"),
    EventType.ORDER_UPDATE.value: _order_status(None),
    EventType.ORDER_CANCELLED.value: _order_status("CANCELED"),
    EventType.STOP_CANCELLED.value: _order_status("CANCELED"),
    EventType.ORDER_REJECTED.value: _order_status("REJECTED"),
    EventType.ENTRY_REJECTED.value: _order_status("REJECTED"),
    EventType.STOP_REJECTED.value: _order_status("REJECTED"),
    EventType.STOP_TRIGGERED.value: _order_status("TRIGGERED"),
    EventType.FILL.value: _fill,
    EventType.TP_PLACED.value: _tp_placed,
    EventType.TP_FILLED.value: _tp_filled,
    EventType.ALERT_RAISED.value: _alert,
}

assert set(PROJECTIONS) == {t.value for t in PROJECTED_KEYS}


def project(cur: Cursor, ev: ProjectableEvent) -> bool:
    """Apply the projection of ``ev`` (if its type has one). Returns True if it has one.

    Raises:
        ProjectionSkip: the event cannot be projected (reason in the message).
        psycopg.Error: the database refused the row (the caller rolls back to a savepoint).
    """
    fn = PROJECTIONS.get(ev.type)
    if fn is None:
        return False
    fn(cur, ev)
    return True
