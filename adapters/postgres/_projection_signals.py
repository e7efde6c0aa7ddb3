"""Projections of the signal decisions and the waves: ``signals`` and ``waves`` rows.

Owns SIGNAL_TAKEN / _FILTERED / _REJECTED → one ``signals`` row per event (its decision
and reason, the wave it belongs to), WAVE_STARTED / _COMPLETED → the ``waves`` row (start
and completion times, the counts received / taken / filtered), upserted so the two events
may land in either order.
"""

from __future__ import annotations

from adapters.postgres._projection_common import Cursor, ProjectableEvent, Projection
from tradebot.events import SignalDecision, SignalRejected, WaveCompleted, WaveStarted

__all__: list[str] = []


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
