"""Reading the journal database for ``tradebot events``, ``tradebot report`` and the paper
run's report (sync psycopg; the CLI is not async).

DSN selection for these commands (first that applies): ``--dsn``; ``--paper`` = the
embedded server's ``tradebot_paper`` database (where ``tradebot paper`` journals by default);
``database.dsn`` of ``--config``; ``$TRADEBOT_DSN``; the embedded ``tradebot`` database.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

__all__ = [
    "PAPER_DATABASE",
    "add_dsn_arguments",
    "close_reasons",
    "db_summary",
    "event_counts",
    "format_event_line",
    "journaled_trade_fills",
    "position_row",
    "position_timeline",
    "positions_by_exit",
    "resolve_read_dsn",
]

PAPER_DATABASE = "tradebot_paper"

_POSITION_COLUMNS = (
    "position_id",
    "account",
    "venue",
    "symbol",
    "position_side",
    "status",
    "qty",
    "entry_price",
    "intended_stop_price",
    "stop_price",
    "exit_price",
    "realized_pnl_usdt",
    "fees_usdt",
    "wave_id",
    "signal_id",
    "opened_at",
    "closed_at",
    "close_reason",
)


def add_dsn_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dsn", default=None, help="PostgreSQL DSN (default: config, $TRADEBOT_DSN, embedded)"
    )
    parser.add_argument(
        "--config", type=Path, default=None, help="config.toml to read database.* from"
    )
    parser.add_argument(
        "--paper",
        action="store_true",
        help=f"read the paper-run journal (embedded database {PAPER_DATABASE})",
    )


def resolve_read_dsn(args: argparse.Namespace) -> str:
    """The DSN to read (module docstring). Raises ConfigError on a bad config."""
    if getattr(args, "dsn", None):
        return str(args.dsn)
    home: Path | None = None
    configured: str | None = None
    if getattr(args, "config", None) is not None:
        from tradebot.config import load_config

        cfg = load_config(args.config, require_secrets=False)  # reading needs no API key
        configured = cfg.database.dsn or None
        home = cfg.home_path()
    if getattr(args, "paper", False):
        from adapters.postgres.embedded import ensure_embedded_server

        return ensure_embedded_server(home, database=PAPER_DATABASE)
    from adapters.postgres.embedded import resolve_dsn

    return resolve_dsn(configured, home=home)


def _connect(dsn: str) -> Any:
    from adapters.postgres.connection import connect

    return connect(dsn, autocommit=True, application_name="tradebot-cli")


def event_counts(dsn: str) -> dict[str, int]:
    """``events.type`` → count over the whole journal."""
    from adapters.postgres.queries import event_counts as counts

    return counts(dsn)


def close_reasons(dsn: str) -> dict[str, int]:
    """``position.closed`` events per ``data.reason`` (``""`` when absent)."""
    with _connect(dsn) as conn:
        rows = conn.execute(
            "SELECT coalesce(data->>'reason', ''), count(*) FROM events "
            "WHERE type = 'position.closed' GROUP BY 1"
        ).fetchall()
    return {str(r): int(n) for r, n in rows}


def journaled_trade_fills(dsn: str) -> int:
    """``order.fill`` events that are executions (funding records excluded)."""
    with _connect(dsn) as conn:
        row = conn.execute(
            "SELECT count(*) FROM events WHERE type = 'order.fill' "
            "AND coalesce(data->>'reason', '') <> 'funding'"
        ).fetchone()
    return int(row[0]) if row else 0


def _row_dict(cols: Sequence[str], row: Sequence[Any]) -> dict[str, Any]:
    return dict(zip(cols, row, strict=True))


def position_row(dsn: str, position_id: str) -> dict[str, Any] | None:
    """The ``positions`` row of a position (None when the projection has none)."""
    with _connect(dsn) as conn:
        row = conn.execute(
            f"SELECT {', '.join(_POSITION_COLUMNS)} FROM positions WHERE position_id = %s",
            (position_id,),
        ).fetchone()
    return None if row is None else _row_dict(_POSITION_COLUMNS, row)


def position_timeline(dsn: str, position_id: str) -> list[dict[str, Any]]:
    """Every journal event of one position in order, as dicts (see
    :func:`adapters.postgres.queries.events_for_position` for what belongs to a position)."""
    from adapters.postgres.queries import events_for_position

    return [
        {
            "ts": e.ts,
            "seq": e.seq,
            "type": e.type,
            "severity": e.severity,
            "position_id": e.position_id,
            "client_order_id": e.client_order_id,
            "symbol": e.symbol,
            "correlation_id": e.correlation_id,
            "data": e.data,
        }
        for e in events_for_position(dsn, position_id)
    ]


def positions_by_exit(dsn: str, limit: int = 5) -> dict[str, list[str]]:
    """Example position ids by how they ended: ``trailed`` (trailing activated, then closed
    by its stop), ``aged`` (aged exit filled or market-closed), ``take_profit``."""
    queries = {
        "trailed": (
            "SELECT DISTINCT c.position_id FROM events c JOIN events t "
            "ON t.position_id = c.position_id AND t.type = 'trailing.activated' "
            "WHERE c.type = 'position.closed' ORDER BY 1 LIMIT %s"
        ),
        # positions whose aged-exit fill is journaled first
        "aged": (
            "SELECT position_id FROM events WHERE position_id IS NOT NULL AND "
            "(type IN ('aged.exit_filled', 'aged.market_close') OR "
            "(type = 'position.closed' AND data->>'reason' = 'aged_exit')) "
            "GROUP BY position_id "
            "ORDER BY bool_or(type IN ('aged.exit_filled', 'aged.market_close')) DESC, 1 "
            "LIMIT %s"
        ),
        "take_profit": (
            "SELECT DISTINCT position_id FROM events WHERE type = 'tp.filled' "
            "AND position_id IS NOT NULL ORDER BY 1 LIMIT %s"
        ),
    }
    out: dict[str, list[str]] = {}
    with _connect(dsn) as conn:
        for name, q in queries.items():
            out[name] = [str(r[0]) for r in conn.execute(q, (limit,)).fetchall()]
    return out


def db_summary(dsn: str) -> dict[str, Any]:
    """What the journal database holds: events by type, time span, positions by status,
    fills, fees and realized PnL of closed positions, waves, the incident counts
    (:func:`tradebot.report.incident_counts`, non-zero ones) and the ``stop.gap_fill``
    incidents (first 50: trigger vs fill price)."""
    with _connect(dsn) as conn:
        counts = {
            str(t): int(n)
            for t, n in conn.execute("SELECT type, count(*) FROM events GROUP BY type").fetchall()
        }
        first, last = conn.execute("SELECT min(ts), max(ts) FROM events").fetchone()
        by_status = {
            str(s): int(n)
            for s, n in conn.execute(
                "SELECT status::text, count(*) FROM positions GROUP BY status"
            ).fetchall()
        }
        pnl, fees_pos = conn.execute(
            "SELECT coalesce(sum(realized_pnl_usdt), 0), coalesce(sum(fees_usdt), 0) "
            "FROM positions WHERE status = 'CLOSED'"
        ).fetchone()
        n_fills, fees_fills = conn.execute(
            "SELECT count(*), coalesce(sum(fee_usdt), 0) FROM fills"
        ).fetchone()
        n_waves = conn.execute("SELECT count(*) FROM waves").fetchone()[0]
        gap_rows = conn.execute(
            "SELECT ts, symbol, data FROM events WHERE type = %s ORDER BY ts, seq LIMIT 50",
            ("stop.gap_fill",),
        ).fetchall()
    reasons = close_reasons(dsn)
    from tradebot.report import incident_counts

    gap_fills = [
        {
            "ts": ts.isoformat(),
            "symbol": sym,
            "position_side": d.get("position_side"),
            "trigger_price": d.get("trigger_price"),
            "fill_price": d.get("fill_price"),
            "slippage_pct": d.get("slippage_pct"),
        }
        for ts, sym, d in gap_rows
    ]

    def n(t: str) -> int:
        return counts.get(t, 0)

    return {
        "positions_opened": n("position.active"),
        "positions_closed": n("position.closed"),
        "trailing_activations": n("trailing.activated"),
        "stop_moves": n("stop.moved"),
        "tp_fills": n("tp.filled"),
        "aged_exits": reasons.get("aged_exit", 0),
        "positions_closed_by_reason": dict(sorted(reasons.items())),
        "rollbacks": n("position.rolled_back"),
        "incidents": {k: v for k, v in incident_counts(counts).items() if v},
        "stop_gap_fills": gap_fills,
        "events_journaled": sum(counts.values()),
        "events_by_type": dict(sorted(counts.items())),
        "first_event_ts": first.isoformat() if first else None,
        "last_event_ts": last.isoformat() if last else None,
        "positions_by_status": dict(sorted(by_status.items())),
        "closed_realized_pnl_usdt": str(pnl),
        "closed_fees_usdt": str(fees_pos),
        "fills": int(n_fills),
        "fills_fees_usdt": str(fees_fills),
        "waves": int(n_waves),
    }


def _fmt_value(v: Any) -> str:
    if isinstance(v, Mapping):
        return "{" + ", ".join(f"{k}={_fmt_value(x)}" for k, x in v.items()) + "}"
    if isinstance(v, list):
        return "[" + ", ".join(_fmt_value(x) for x in v) + "]"
    if isinstance(v, (datetime,)):
        return v.isoformat()
    if isinstance(v, Decimal):
        return str(v)
    return str(v)


def format_event_line(ev: Mapping[str, Any], *, width: int = 160) -> str:
    """``2025-05-20 04:20:00.000  entry.intent        client_order_id k=v k=v …``."""
    ts = ev["ts"]
    stamp = ts.strftime("%Y-%m-%d %H:%M:%S.") + f"{ts.microsecond // 1000:03d}"
    data = ev.get("data") or {}
    if isinstance(data, str):
        data = json.loads(data)
    parts = [
        f"{k}={_fmt_value(v)}"
        for k, v in data.items()
        if k not in ("position_id",) and v not in (None, "", [], {})
    ]
    cid = ev.get("client_order_id")
    head = f"{stamp}  {ev['type']:<24}"
    if cid:
        parts.insert(0, f"order={cid}")
    line = head + " " + " ".join(parts)
    return line if len(line) <= width else line[: width - 1] + "…"
