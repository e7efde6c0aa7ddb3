"""Writes a legacy import plan into tradebot's database (``tradebot import legacy``).

One transaction per run (under a transaction advisory lock, so two imports cannot
interleave): ``positions`` rows with ``origin = 'legacy'``, ``signals`` rows, the journal
events (``legacy.*`` and the open positions' ``position.snapshot``; inserted with
``ON CONFLICT (event_id, ts) DO NOTHING`` — their ids are deterministic), one
``legacy_import_map`` row per source row (the idempotency key: source table + id), the
``legacy_import_runs`` row with the final report and a ``legacy.import_completed`` event.
Either all of it is committed or nothing.

The events are written here, not through :class:`~adapters.postgres.journal.PostgresJournal`:
the import is one offline batch that must be atomic with its rows. Run it while no bot
runs on the database (the CLI holds the account's instance lock while it writes): a
running journal caches snapshots and would not see the imported ones.

For the Reconciler: :func:`is_legacy_origin` / :func:`legacy_origin_ids`.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from adapters.postgres.connection import connect
from tradebot.errors import TradebotError
from tradebot.events import Event, LegacyImportCompleted
from tradebot.legacy import ORIGIN_LEGACY, ImportPlan, TargetState, finish_report

__all__ = [
    "LegacyImportConflict",
    "is_legacy_origin",
    "legacy_origin_ids",
    "load_target_state",
    "write_plan",
]

POSITIONS_TABLE = "monitoring.positions"
_LOCK = "SELECT pg_advisory_xact_lock(hashtext('tradebot.legacy_import'))"


class LegacyImportConflict(TradebotError):
    """Another import wrote some of the same rows since this run read the database."""


def _strip_nul(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, Mapping):
        return {str(k).replace("\x00", "\ufffd"): _strip_nul(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_strip_nul(v) for v in value]
    return value


def _money(cur: psycopg.Cursor[Any]) -> dict[str, tuple[Decimal | None, Decimal]]:
    cur.execute(
        """SELECT m.source_id, p.realized_pnl_usdt, p.fees_usdt
           FROM legacy_import_map m JOIN positions p ON p.position_id = m.target_id
           WHERE m.source_table = %s AND m.target_kind = 'position'""",
        (POSITIONS_TABLE,),
    )
    return {str(sid): (pnl, fees) for sid, pnl, fees in cur.fetchall()}


def _target_state(cur: psycopg.Cursor[Any]) -> TargetState:
    cur.execute("SELECT source_table, source_id FROM legacy_import_map")
    keys = frozenset((str(t), str(i)) for t, i in cur.fetchall())
    cur.execute(
        """SELECT account, symbol, position_side::text FROM positions
           WHERE status IN ('OPENING', 'ACTIVE', 'CLOSING')"""
    )
    live = frozenset((str(a), str(s), str(side)) for a, s, side in cur.fetchall())
    return TargetState(imported_keys=keys, live_keys=live, legacy_money=_money(cur))


def load_target_state(dsn: str) -> TargetState:
    """What tradebot's database holds for the planner.

    Raises:
        psycopg.Error: unreachable, or the schema lacks 0004_legacy_import (not migrated).
    """
    with connect(dsn, application_name="tradebot-legacy-import") as conn, conn.cursor() as cur:
        return _target_state(cur)


def _insert_event(cur: psycopg.Cursor[Any], ev: Event) -> None:
    cur.execute(
        """INSERT INTO events (event_id, ts, type, severity, position_id, client_order_id,
                               symbol, correlation_id, data)
           VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)
           ON CONFLICT (event_id, ts) DO NOTHING""",
        (
            ev.event_id,
            ev.ts,
            ev.type.value,
            ev.severity.value,
            ev.position_id,
            ev.client_order_id,
            ev.symbol,
            ev.correlation_id,
            Jsonb(_strip_nul(dict(ev.data))),
        ),
    )


def write_plan(dsn: str, plan: ImportPlan, *, now: datetime, started_at: datetime) -> None:
    """Write ``plan`` in one transaction and fill its report's tradebot-side sums from what
    the database then holds (read inside the same transaction).

    Raises:
        LegacyImportConflict: some row was imported by another run in the meantime
            (nothing written; run the import again).
        psycopg.Error: the database refused (nothing written).
    """
    with (
        connect(dsn, application_name="tradebot-legacy-import") as conn,
        conn.transaction(),
        conn.cursor() as cur,
    ):
        cur.execute(_LOCK)
        done = _target_state(cur).imported_keys
        clash = [(it.source_table, it.source_id) for it in plan.items if (it.source_table, it.source_id) in done]  # fmt: skip
        if clash:
            raise LegacyImportConflict(
                f"{len(clash)} rows were imported by another run meanwhile (first: "
                f"{clash[0][0]} id {clash[0][1]}); nothing written: run the import again"
            )
        for it in plan.items:
            first_event = it.events[0].event_id if it.events else None
            if it.position is not None:
                p = it.position
                cur.execute(
                    """INSERT INTO positions (position_id, account, venue, symbol,
                           position_side, status, qty, entry_price, intended_stop_price,
                           stop_price, exit_price, realized_pnl_usdt, fees_usdt, signal_id,
                           opened_at, closed_at, close_reason, origin)
                       VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s,
                               %s, %s, %s, %s)
                       ON CONFLICT (position_id) DO NOTHING""",
                    (
                        p.position_id,
                        p.account,
                        p.venue,
                        p.symbol,
                        p.position_side.value,
                        p.status,
                        p.qty,
                        p.entry_price,
                        p.stop_price,
                        p.stop_price,
                        p.exit_price,
                        p.realized_pnl_usdt,
                        p.fees_usdt,
                        p.signal_id,
                        p.opened_at,
                        p.closed_at,
                        p.close_reason,
                        ORIGIN_LEGACY,
                    ),
                )
            for ev in it.events:
                _insert_event(cur, ev)
            if it.signal is not None:
                s = it.signal
                cur.execute(
                    """INSERT INTO signals (event_id, signal_id, wave_id, wave_ts, symbol,
                           venue, action, score_week, score_month, decision, reason, ts)
                       VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
                       ON CONFLICT (event_id) DO NOTHING""",
                    (
                        s.event_id,
                        s.signal_id,
                        s.wave_id,
                        s.wave_ts,
                        s.symbol,
                        s.venue or None,
                        s.action or None,
                        s.score_week,
                        s.score_month,
                        s.decision,
                        s.reason,
                        s.ts,
                    ),
                )
            cur.execute(
                """INSERT INTO legacy_import_map (source_table, source_id, target_kind,
                       target_id, event_id, run_id)
                   VALUES (%s, %s, %s, %s, %s, %s)""",
                (it.source_table, it.source_id, it.kind, it.target_id, first_event, plan.run_id),
            )  # fmt: skip
        finish_report(plan, _money(cur))
        rep = plan.report
        imported = {k: t.imported for k, t in rep.tables.items() if t.imported}
        skipped = {k: t.skipped_total for k, t in rep.tables.items() if t.skipped_total}
        opened = sum(1 for it in plan.items if it.position and it.position.status == "ACTIVE")
        _insert_event(
            cur,
            Event.of(
                LegacyImportCompleted(
                    run_id=str(plan.run_id),
                    source=rep.source,
                    imported=imported,
                    skipped=skipped,
                    open_positions=opened,
                ),
                now,
            ),
        )
        cur.execute(
            """INSERT INTO legacy_import_runs (run_id, started_at, finished_at, source, report)
               VALUES (%s, %s, %s, %s, %s)""",
            (plan.run_id, started_at, now, rep.source, Jsonb(json.loads(rep.to_json_text()))),
        )


def is_legacy_origin(dsn_or_conn: str | psycopg.Connection[Any], position_id: str) -> bool:
    """True when ``position_id`` is a position imported from the legacy bot
    (``positions.origin = 'legacy'``); False for ours and for unknown ids.

    Raises:
        psycopg.Error: the database is unreachable.
    """
    return position_id in legacy_origin_ids(dsn_or_conn, [position_id])


def legacy_origin_ids(
    dsn_or_conn: str | psycopg.Connection[Any], position_ids: Iterable[str] | None = None
) -> set[str]:
    """The legacy-origin ids among ``position_ids`` (None: every legacy-origin position).

    Raises:
        psycopg.Error: the database is unreachable.
    """
    query = "SELECT position_id FROM positions WHERE origin = %s"
    params: list[Any] = [ORIGIN_LEGACY]
    if position_ids is not None:
        query += " AND position_id = ANY(%s)"
        params.append(list(position_ids))
    if isinstance(dsn_or_conn, str):
        with connect(dsn_or_conn, autocommit=True) as conn:
            rows = conn.execute(query, params).fetchall()
    else:
        rows = dsn_or_conn.execute(query, params).fetchall()
    return {str(r[0]) for r in rows}


def import_runs(dsn: str) -> list[dict[str, Any]]:
    """Runs recorded in ``legacy_import_runs`` (oldest first): run_id, times, source."""
    with connect(dsn, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT run_id, started_at, finished_at, source FROM legacy_import_runs "
            "ORDER BY started_at"
        ).fetchall()
    return [
        {"run_id": uuid.UUID(str(r[0])), "started_at": r[1], "finished_at": r[2], "source": r[3]}
        for r in rows
    ]
