"""``tradebot report [--json]``: what the journal database holds.

Counts of the report keys that the journal alone determines (positions opened/closed,
trailing activations, stop moves, take-profit fills, aged exits, rollbacks, events by
type), the time span, positions by status, realized PnL and fees of closed positions, fills
and waves. (The full run report of ``tradebot paper`` adds what only the run knows: stop
coverage, invariant violations, ticks, the trade-list hash; it is printed at the end of the
run and written with ``--report-json``.) ``--paper`` reads the last paper run's journal.

Exit codes: 0, 1 database failure, 2 bad arguments/config.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from tradebot.cli._journal_read import add_dsn_arguments, db_summary, resolve_read_dsn


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("report", help="summary of what the journal database holds")
    parser.add_argument("--json", action="store_true", help="JSON instead of a table")
    add_dsn_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tradebot.errors import ConfigError

    try:
        summary = db_summary(resolve_read_dsn(args))
    except ConfigError as exc:
        for key, reason in exc.problems:
            print(f"{key}: {reason}", file=sys.stderr)
        return 2
    except Exception as exc:
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    by_type = summary.pop("events_by_type")
    gap_fills = summary.pop("stop_gap_fills", [])
    incidents = summary.get("incidents") or {}
    summary["incidents"] = (
        ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in incidents.items()) or "none"
    )
    width = max(len(k) for k in summary)
    print("journal summary")
    print("===============")
    for k, v in summary.items():
        print(f"{k:<{width}}  {v}")
    if gap_fills:
        print("\nstop gap fills (filled worse than the trigger beyond the bound):")
        for g in gap_fills:
            print(
                f"  {g['ts']} {g['symbol']} {g['position_side']} trigger {g['trigger_price']} "
                f"filled {g['fill_price']} ({g['slippage_pct']} % worse)"
            )
    if by_type:
        print("\nevents by type:")
        tw = max(len(k) for k in by_type)
        for k, v in sorted(by_type.items(), key=lambda kv: (-kv[1], kv[0])):
            print(f"  {k:<{tw}}  {v:>9,}")
    return 0
