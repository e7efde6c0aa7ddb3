"""``tradebot db migrate|status|partitions|dsn``: the PostgreSQL schema and journal store.

DSN resolution (first that applies): ``--dsn``; ``database.dsn`` of ``--config``;
``$TRADEBOT_DSN``; the embedded server under ``database.home``/``$TRADEBOT_HOME``
(default ``~/.local/share/tradebot``), started if it is not running.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("db", help="database schema: migrate, status, partitions")
    sub = parser.add_subparsers(dest="db_command", metavar="DB_COMMAND")

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--dsn", default=None, help="PostgreSQL DSN (default: config, $TRADEBOT_DSN, embedded)"
        )
        p.add_argument(
            "--config", type=Path, default=None, help="config.toml to read database.* from"
        )

    p = sub.add_parser("migrate", help="apply pending sql/NNNN_*.sql migrations")
    common(p)
    p.set_defaults(func=_migrate)
    p = sub.add_parser("status", help="list migrations and whether they are applied")
    common(p)
    p.set_defaults(func=_status)
    p = sub.add_parser("partitions", help="create upcoming monthly event partitions, drop old ones")
    common(p)
    p.add_argument(
        "--retention-days",
        type=int,
        default=None,
        help="drop partitions older than this (default: journal.retention_days)",
    )
    p.add_argument("--months-ahead", type=int, default=2)
    p.set_defaults(func=_partitions)
    p = sub.add_parser("dsn", help="print the DSN in use (starts the embedded server if needed)")
    common(p)
    p.set_defaults(func=_dsn)
    parser.set_defaults(func=lambda args: (parser.print_help(), 2)[1])


def _config(args: argparse.Namespace) -> Any | None:
    if args.config is None:
        return None
    from tradebot.config import load_config

    return load_config(args.config, require_secrets=False)  # the database needs no API key


def resolve_cli_dsn(args: argparse.Namespace) -> str:
    """DSN for a CLI command (see module docstring). Raises ConfigError on a bad config."""
    from adapters.postgres.embedded import resolve_dsn

    if args.dsn:
        return str(args.dsn)
    cfg = _config(args)
    configured = None
    home = None
    if cfg is not None:
        configured = cfg.database.dsn or None
        home = Path(cfg.database.home).expanduser() if cfg.database.home else None
    return resolve_dsn(configured, home=home)


def _guard(fn: Any) -> Any:
    def run(args: argparse.Namespace) -> int:
        from tradebot.errors import ConfigError, TradebotError

        try:
            return int(fn(args))
        except ConfigError as exc:
            for key, reason in exc.problems:
                print(f"{key}: {reason}", file=sys.stderr)
            return 2
        except TradebotError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        except Exception as exc:  # psycopg / server start failures: one clear line
            print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
            return 1

    return run


@_guard
def _migrate(args: argparse.Namespace) -> int:
    from adapters.postgres.migrations import migrate

    dsn = resolve_cli_dsn(args)
    applied = migrate(dsn)
    for m in applied:
        print(f"applied {m.version:04d}_{m.name}")
    if not applied:
        print("database is up to date")
    return 0


@_guard
def _status(args: argparse.Namespace) -> int:
    from adapters.postgres.migrations import migration_status

    dsn = resolve_cli_dsn(args)
    rc = 0
    for st in migration_status(dsn):
        when = st.applied_at.isoformat() if st.applied_at else "pending"
        flag = ""
        if not st.file_present:
            flag, rc = "  (applied, file missing)", 1
        elif not st.checksum_ok:
            flag, rc = "  (CHECKSUM MISMATCH: file edited after it was applied)", 1
        print(f"{st.version:04d}_{st.name:<24} {when}{flag}")
    return rc


@_guard
def _partitions(args: argparse.Namespace) -> int:
    from adapters.postgres.migrations import maintain_partitions

    retention = args.retention_days
    if retention is None:
        cfg = _config(args)
        if cfg is not None:
            retention = cfg.journal.retention_days
    dsn = resolve_cli_dsn(args)
    actions = maintain_partitions(dsn, retention_days=retention, months_ahead=args.months_ahead)
    for a in actions:
        print(a)
    if not actions:
        print("partitions are up to date")
    return 0


@_guard
def _dsn(args: argparse.Namespace) -> int:
    print(resolve_cli_dsn(args))
    return 0
