"""``tradebot events --position ID [--json]``: the life of one position from the journal.

Prints the ``positions`` row (when the projection has it), then every journaled event of
the position in order — signal, entry intent, fill, stop, every trailing move, take-profit,
aged exit, close — one line each. ``--json`` prints ``{"position": …, "events": […]}``.
Without ``--position``: examples of position ids by how they ended (trailed out by the
stop, aged exit, take-profit), to pick one. The journal is chosen as described in
:mod:`tradebot.cli._journal_read` (``--paper`` for the last ``tradebot paper`` run).

Exit codes: 0 found, 1 unknown position or database failure, 2 bad arguments/config.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from tradebot.cli._journal_read import (
    add_dsn_arguments,
    format_event_line,
    position_row,
    position_timeline,
    positions_by_exit,
    resolve_read_dsn,
)
from tradebot.events import jsonable


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("events", help="journal timeline of one position")
    parser.add_argument("--position", default=None, metavar="ID", help="position id")
    parser.add_argument("--json", action="store_true", help="JSON instead of text")
    parser.add_argument(
        "--all",
        action="store_true",
        help="also list routine events (periodic protection checks, snapshots)",
    )
    add_dsn_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tradebot.errors import ConfigError

    try:
        dsn = resolve_read_dsn(args)
        if not args.position:
            examples = positions_by_exit(dsn)
            if args.json:
                print(json.dumps(examples, indent=2))
            else:
                print("pass --position ID; examples from this journal:")
                for kind, ids in examples.items():
                    print(f"  {kind:<12} {' '.join(ids) or '-'}")
            return 0
        pos = position_row(dsn, args.position)
        events = position_timeline(dsn, args.position)
    except ConfigError as exc:
        for key, reason in exc.problems:
            print(f"{key}: {reason}", file=sys.stderr)
        return 2
    except Exception as exc:  # database unreachable / not migrated: one clear line
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    if not events and pos is None:
        print(f"no journal events for position {args.position!r}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps({"position": jsonable(pos), "events": jsonable(events)}, indent=2))
        return 0
    if pos is not None:
        print(
            f"position {pos['position_id']}  {pos['symbol']} {pos['position_side']}  "
            f"status {pos['status']}  qty {pos['qty']}  entry {pos['entry_price']}  "
            f"exit {pos['exit_price']}  pnl {pos['realized_pnl_usdt']} USDT  "
            f"fees {pos['fees_usdt']} USDT"
        )
        print(
            f"  opened {pos['opened_at']}  closed {pos['closed_at']}  "
            f"reason {pos['close_reason'] or '-'}"
        )
    else:
        first = events[0]
        print(f"position {args.position}  {first.get('symbol') or ''}")
    for ev in events:
        if ev["type"] == "signal.taken":
            d = ev.get("data") or {}
            print(
                f"  from signal {d.get('signal_id')} {d.get('action')} {d.get('symbol')}"
                f" (wave {d.get('wave_ts')}, score_week {d.get('score_week')},"
                f" score_month {d.get('score_month')}, rank {d.get('rank')};"
                f" decision journaled when the open completed)"
            )
    shown = [e for e in events if args.all or e["type"] not in ROUTINE]
    hidden = len(events) - len(shown)
    note = f" ({hidden} routine protection checks / snapshots hidden; --all lists them)"
    print(f"{len(events)} events" + (note if hidden else "") + ":")
    for ev in shown:
        print("  " + format_event_line(ev))
    summary = fills_summary(events)
    if summary:
        print(summary)
    return 0


ROUTINE = frozenset({"protection.verified", "position.snapshot"})


def fills_summary(events: list[dict[str, Any]]) -> str:
    """``fills: …; realized PnL … USDT, fees … USDT`` from the position's ``order.fill``
    events (average-cost; Decimal). Empty when there is no fill."""
    from decimal import Decimal, InvalidOperation

    qty = avg = realized = fees = funding = Decimal(0)
    parts: list[str] = []
    for ev in events:
        if ev["type"] != "order.fill":
            continue
        d = ev.get("data") or {}
        if d.get("reason") == "funding":
            try:
                funding += Decimal(str(d.get("fee_usdt", "0")))
            except InvalidOperation:
                pass
            continue
        try:
            q, p = Decimal(str(d["qty"])), Decimal(str(d["price"]))
            fee = Decimal(str(d.get("fee_usdt", "0")))
            side, pside = str(d["side"]), str(d["position_side"])
        except (KeyError, InvalidOperation):
            continue
        opening = (side == "BUY") == (pside == "LONG")
        fees += fee
        if opening:
            avg = (qty * avg + q * p) / (qty + q)
            qty += q
            parts.append(f"entry {q} @ {p}")
        else:
            closed = min(q, qty)
            realized += (p - avg) * closed * (1 if pside == "LONG" else -1)
            qty -= closed
            reason = d.get("reason") or ""
            parts.append(f"exit {q} @ {p}" + (f" ({reason})" if reason else ""))
    if not parts:
        return ""
    return (
        f"fills: {', '.join(parts)}; realized PnL {realized.quantize(Decimal('0.0001'))} "
        f"USDT, fees {fees.quantize(Decimal('0.0001'))} USDT"
        + (f", funding paid {funding.quantize(Decimal('0.0001'))} USDT" if funding else "")
        + (
            f", still open {qty} (or closed by a fill not journaled as order.fill)"
            if qty > 0
            else ""
        )
    )
