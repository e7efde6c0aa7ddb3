"""Projections of a position's life: the ``positions`` row and its ``tp_levels``.

Owns ENTRY_INTENT → the ``positions`` row (OPENING; ``wave_id`` from the payload's
``wave_ts``) and the entry ``orders`` row; ENTRY_FILLED / _PARTIAL_FILL → entry price and
filled qty; POSITION_* → ``positions.status`` (the terminal CLOSED / ROLLED_BACK / FAILED
set ``closed_at`` and ``close_reason``); RECONCILE_ADOPTED → the row of a position
adopted from the exchange (ACTIVE); POSITION_EXIT_RECORDED → exit price, PnL and fees of
an exit found in the venue's executions; TP_PLACED / TP_FILLED → ``tp_levels``.
"""

from __future__ import annotations

from adapters.postgres._projection_common import (
    Cursor,
    ProjectableEvent,
    Projection,
    ProjectionSkip,
    _field,
    _update_position,
)
from tradebot.events import (
    EntryFilled,
    EntryIntent,
    Payload,
    PositionActivated,
    PositionClosed,
    PositionExitRecorded,
    PositionFailed,
    ReconcileAdopted,
    TakeProfitFilled,
    TakeProfitPlaced,
)
from tradebot.signals import wave_id_for

__all__: list[str] = []


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
