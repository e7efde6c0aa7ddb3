"""``tradebot db migrate|status|partitions|dsn|replay-spool``: the PostgreSQL schema and
journal store.

``tradebot db replay-spool [--spool FILE] [--paper] [--dsn DSN] [--force]`` loads a journal
spool (events written to disk while the database was unreachable) into the database,
idempotently (events already stored are skipped), then empties it. Default spool:
``<home>/spool/journal-spool.jsonl`` (``journal.spool_dir`` of ``--config``), with
``--paper`` ``<home>/paper-spool/journal-spool.jsonl`` and the paper database. A spool
whose ``.meta.json`` names another database than the target is refused unless ``--force``.

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
    p = sub.add_parser(
        "replay-spool",
        help="load a journal spool (events kept on disk while the database was down)",
    )
    common(p)
    p.add_argument("--spool", type=Path, default=None, help="spool file (default: see above)")
    p.add_argument(
        "--paper",
        action="store_true",
        help="the paper-run spool and database (embedded tradebot_paper)",
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="replay even if the spool says it belongs to another database",
    )
    p.set_defaults(func=_replay_spool)
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


@_guard
def _replay_spool(args: argparse.Namespace) -> int:
    from adapters.postgres.journal import (
        SPOOL_FILE_NAME,
        read_spool_meta,
        replay_spool_file,
        spool_event_count,
    )
    from adapters.postgres.migrations import migrate
    from tradebot.errors import ConfigError

    cfg = _config(args)
    if args.paper:
        from adapters.postgres.embedded import default_home, ensure_embedded_server
        from tradebot.cli._journal_read import PAPER_DATABASE

        home = cfg.home_path() if cfg is not None else default_home()
        spool = args.spool or home / "paper-spool" / SPOOL_FILE_NAME
        dsn = args.dsn or ensure_embedded_server(home, database=PAPER_DATABASE)
    else:
        from adapters.postgres.embedded import default_home

        spool_dir = cfg.spool_path() if cfg is not None else default_home() / "spool"
        spool = args.spool or spool_dir / SPOOL_FILE_NAME
        dsn = resolve_cli_dsn(args)
    spool = Path(spool).expanduser()
    if spool.exists() and not spool.is_file():
        raise ConfigError([("--spool", f"{spool}: not a file")])
    n = spool_event_count(spool)
    if n == 0:
        print(f"nothing to replay: {spool} is empty or missing")
        return 0
    from psycopg import conninfo

    target = str(conninfo.conninfo_to_dict(dsn).get("dbname") or "")
    meta = read_spool_meta(spool)
    belongs = str(meta.get("database") or "")
    if belongs and target and belongs != target and not args.force:
        raise ConfigError(
            [
                (
                    "--dsn",
                    f"the spool {spool} belongs to database {belongs!r}, not {target!r}; "
                    "pass --force to load it there anyway",
                )
            ]
        )
    migrate(dsn)
    replayed = replay_spool_file(dsn, spool)
    print(
        f"replayed {replayed} events from {spool} into database {target or dsn!r} "
        "(events already stored were skipped); the spool is now empty"
    )
    return 0
