"""``tradebot import legacy``: bring the history and open positions of the bot tradebot
replaces into tradebot's database (issue 14; tradebot/legacy/, docs/ARCHITECTURE.md §7).

``tradebot import legacy --from-dsn DSN [--dry-run] [--since ISO] [--json]
[--naive-tz ZONE] [--account NAME] [--dsn DSN] [--config FILE]``

* ``--from-dsn``: the old bot's PostgreSQL, read in one REPEATABLE READ, READ ONLY
  transaction (the old bot may keep running).
* ``--dry-run``: write nothing (not even tradebot's migrations); print what a run would do.
* ``--since``: only rows at or after this ISO-8601 time (naive = ``--naive-tz``); OPEN
  positions are always read.
* ``--naive-tz``: the zone of the old bot's ``timestamp without time zone`` columns
  (default UTC, the old bot's convention).
* ``--json``: the validation report as JSON on stdout instead of text.
* ``--dsn`` / ``--config``: tradebot's database (as ``tradebot db``).

Exit codes: 0 imported (or nothing to import), 1 the source or tradebot's database failed,
or the money sums do not match, 2 bad arguments (a malformed DSN, ``--since``,
``--naive-tz``). Errors are one line, never a traceback (``tradebot --debug`` shows it).
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Any


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "import", help="import data from another system (legacy: the bot tradebot replaces)"
    )
    sub = parser.add_subparsers(dest="import_command", metavar="SOURCE")
    p = sub.add_parser(
        "legacy",
        help="import the old bot's positions (history and open ones), signals and events",
    )
    p.add_argument("--from-dsn", required=True, help="PostgreSQL DSN of the old bot's database")
    p.add_argument("--dry-run", action="store_true", help="write nothing; print what it would do")
    p.add_argument("--since", default=None, help="only rows at/after this ISO-8601 time")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument(
        "--naive-tz",
        default="UTC",
        help="time zone of timestamps without time zone in the old database (default UTC)",
    )
    p.add_argument("--account", default="default", help="tradebot account (default: default)")
    p.add_argument(
        "--dsn", default=None, help="tradebot's DSN (default: config, $TRADEBOT_DSN, embedded)"
    )
    p.add_argument("--config", type=Path, default=None, help="config.toml to read database.* from")
    p.set_defaults(func=_guarded)
    parser.set_defaults(func=lambda args: (parser.print_help(), 2)[1])


def _zone(name: str) -> tzinfo:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    from tradebot.errors import ConfigError

    if name.strip().upper() == "UTC":
        return UTC
    try:
        return ZoneInfo(name.strip())
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError([("--naive-tz", f"unknown time zone {name!r} (e.g. UTC, Europe/Berlin)")]) from None  # fmt: skip


def _since(text: str | None, zone: tzinfo) -> datetime | None:
    from tradebot.errors import ConfigError

    if text is None:
        return None
    try:
        ts = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError([("--since", f"not an ISO-8601 time: {text!r}")]) from None
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=zone)
    return ts.astimezone(UTC)


def _guarded(args: argparse.Namespace) -> int:
    import psycopg

    from tradebot.errors import ConfigError, TradebotError

    try:
        return _run(args)
    except ConfigError as exc:
        for key, reason in exc.problems:
            print(f"{key}: {reason}", file=sys.stderr)
        return 2
    except TradebotError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except psycopg.Error as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        print(f"error: tradebot's database: {type(exc).__name__}: {first}", file=sys.stderr)
        return 1


def _instruments() -> tuple[dict[str, Any], str]:
    from adapters.paper import load_instruments

    table = load_instruments()
    return table, (
        f"bundled tradebot/data/market/instruments.json ({len(table)} symbols; "
        "tradebot's journal holds no instrument table)"
    )


def _target_state(dsn: str, dry_run: bool) -> tuple[Any, list[str]]:
    """What tradebot holds; a real run migrates first, a dry run never writes."""
    from adapters.postgres.legacy_store import load_target_state
    from adapters.postgres.migrations import migrate, migration_status
    from tradebot.legacy import TargetState

    notes: list[str] = []
    if dry_run:
        pending = [s for s in migration_status(dsn) if s.applied_at is None]
        if pending:
            names = ", ".join(f"{s.version:04d}_{s.name}" for s in pending)
            notes.append(f"tradebot's database is not migrated ({names}): a run migrates it")
            if any(s.version <= 4 for s in pending):
                return TargetState(), notes
    else:
        for m in migrate(dsn):
            print(f"applied {m.version:04d}_{m.name}", file=sys.stderr)
    return load_target_state(dsn), notes


def _run(args: argparse.Namespace) -> int:
    from adapters.postgres.instance import InstanceAlreadyRunning, acquire_instance_lock
    from adapters.postgres.legacy_source import read_legacy
    from adapters.postgres.legacy_store import write_plan
    from tradebot.cli._legacy_snapshot import legacy_snapshot
    from tradebot.cli.cmd_db import resolve_cli_dsn
    from tradebot.errors import TradebotError
    from tradebot.legacy import plan_import

    if args.import_command != "legacy":  # pragma: no cover - argparse has one choice
        return 2
    zone = _zone(args.naive_tz)
    since = _since(args.since, zone)
    started = datetime.now(UTC)
    source = read_legacy(args.from_dsn, since=since, naive_tz=zone)
    dsn = resolve_cli_dsn(args)
    target, notes = _target_state(dsn, args.dry_run)
    instruments, label = _instruments()
    plan = plan_import(
        source,
        target,
        instruments=instruments,
        instruments_source=label,
        snapshot_for=legacy_snapshot,
        account=args.account,
        naive_tz=zone,
        naive_tz_name=args.naive_tz,
        since=since,
        now=started,
        dry_run=args.dry_run,
    )
    plan.report.notes.extend(notes)
    if not args.dry_run and plan.items:
        try:
            lock = acquire_instance_lock(dsn, args.account)
        except InstanceAlreadyRunning as exc:
            raise TradebotError(
                f"{exc}: stop it before importing (a running bot would not see the imported "
                "positions' snapshots)"
            ) from None
        try:
            write_plan(dsn, plan, now=datetime.now(UTC), started_at=started)
        finally:
            lock.release()
    report = plan.report
    if args.json:
        print(report.to_json_text())
    else:
        print(report.render_text())
    if not report.sums_equal:
        print(
            "error: realized PnL / fee sums differ between the source and tradebot",
            file=sys.stderr,
        )
        return 1
    return 0
