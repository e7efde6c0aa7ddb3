"""Single-instance guarantee: one running bot per account (docs/ARCHITECTURE.md §7 ``instances``).

The guarantee is a PostgreSQL *session* advisory lock on
``hashtextextended('tradebot.instance:' || instance_name, 0)`` held on a dedicated
connection for the life of the process; the ``instances`` row only says who holds it
(pid, host, version, heartbeat). A crashed process's connection closes and its lock goes
with it, so a stale row never blocks a restart.

If the lock connection is lost (server restart), :meth:`InstanceLock.heartbeat` returns
False: the holder must stop trading (or re-acquire) because another process may now hold it.

Who holds it is also written into the lock connection's ``application_name``
(``tradebot-instance:NAME pid=PID host=HOST``, in ``pg_stat_activity``), so a refused second
process can name the holder even in a database without the ``instances`` table (a schema
that is not migrated yet, or the embedded server's admin database that ``tradebot paper``
locks before it recreates its own database). Advisory locks are per database: every
process that competes for one lock must connect to the same database.

Sync API (psycopg 3); from trio call it via ``trio.to_thread.run_sync``.
"""

from __future__ import annotations

import os
import socket
from types import TracebackType
from typing import Any

import psycopg

from adapters.postgres.connection import connect
from tradebot.errors import JournalError

__all__ = ["InstanceAlreadyRunning", "InstanceLock", "acquire_instance_lock"]

_KEY = "hashtextextended('tradebot.instance:' || %s, 0)"


class InstanceAlreadyRunning(JournalError):
    """Another process holds the instance lock. ``holder`` is its ``instances`` row (or {})."""

    def __init__(self, instance_name: str, holder: dict[str, Any]) -> None:
        self.instance_name = instance_name
        self.holder = holder
        who = (
            (
                f"pid {holder.get('pid')} on {holder.get('hostname') or '?'} since "
                f"{holder.get('started_at')}"
            )
            if holder
            else "another process"
        )
        super().__init__(f"instance {instance_name!r} is already running ({who})")


class InstanceLock:
    """A held instance lock; release it with :meth:`release` or ``with``."""

    def __init__(self, conn: psycopg.Connection[Any], instance_name: str) -> None:
        self._conn = conn
        self.instance_name = instance_name

    @property
    def held(self) -> bool:
        return not self._conn.closed

    def heartbeat(self) -> bool:
        """Refresh ``instances.heartbeat_at``; False when the lock connection is gone."""
        if self._conn.closed:
            return False
        try:
            row = self._conn.execute(
                f"""SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory'
                        AND pid = pg_backend_pid() AND granted
                        AND ((classid::bigint << 32) | objid::bigint) = {_KEY})""",
                (self.instance_name,),
            ).fetchone()
            if _has_instances_table(self._conn):
                self._conn.execute(
                    "UPDATE instances SET heartbeat_at = now() WHERE instance_name = %s",
                    (self.instance_name,),
                )
            return bool(row and row[0])
        except psycopg.OperationalError:
            self._conn.close()
            return False

    def release(self) -> None:
        """Unlock and close (idempotent)."""
        if self._conn.closed:
            return
        try:
            self._conn.execute(f"SELECT pg_advisory_unlock({_KEY})", (self.instance_name,))
        except psycopg.Error:
            pass
        finally:
            self._conn.close()

    def __enter__(self) -> InstanceLock:
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()


def _has_instances_table(conn: psycopg.Connection[Any]) -> bool:
    row = conn.execute("SELECT to_regclass('instances') IS NOT NULL").fetchone()
    return bool(row and row[0])


def _holder(conn: psycopg.Connection[Any], instance_name: str) -> dict[str, Any]:
    """Who holds the lock: its ``instances`` row, else the holding backend's
    ``application_name`` (``tradebot-instance:NAME pid=.. host=..``) and start time."""
    if _has_instances_table(conn):
        cur = conn.execute(
            "SELECT pid, hostname, version, started_at, heartbeat_at FROM instances "
            "WHERE instance_name = %s",
            (instance_name,),
        )
        r = cur.fetchone()
        if r is not None:
            names = [d.name for d in cur.description or []]
            return dict(zip(names, r, strict=True))
    row = conn.execute(
        f"""SELECT a.application_name, a.backend_start FROM pg_locks l
              JOIN pg_stat_activity a ON a.pid = l.pid
             WHERE l.locktype = 'advisory' AND l.granted AND l.database = (
                   SELECT oid FROM pg_database WHERE datname = current_database())
               AND ((l.classid::bigint << 32) | l.objid::bigint) = {_KEY}
             LIMIT 1""",
        (instance_name,),
    ).fetchone()
    if row is None:
        return {}
    info: dict[str, Any] = {"started_at": row[1]}
    for part in str(row[0] or "").split():
        key, sep, value = part.partition("=")
        if sep and key == "pid" and value.isdigit():
            info["pid"] = int(value)
        elif sep and key == "host":
            info["hostname"] = value
    return info


def acquire_instance_lock(dsn: str, instance_name: str, *, version: str = "") -> InstanceLock:
    """Take the instance lock for ``instance_name`` (the account) or fail at once.

    Args:
        dsn: the database every competing process locks in (advisory locks are per
            database).
        instance_name: the lock's name (``bot.account`` for ``tradebot run``).
        version: the holder's version, written into ``instances`` when the table exists.

    Raises:
        InstanceAlreadyRunning: another process holds it (``holder`` names its pid and
            host when known).
        psycopg.OperationalError: the database is unreachable.
    """
    app = f"tradebot-instance:{instance_name} pid={os.getpid()} host={socket.gethostname()}"[:63]
    conn = connect(dsn, autocommit=True, application_name=app)
    try:
        row = conn.execute(f"SELECT pg_try_advisory_lock({_KEY})", (instance_name,)).fetchone()
        if not (row and row[0]):
            holder = _holder(conn, instance_name)
            conn.close()
            raise InstanceAlreadyRunning(instance_name, holder)
        if not _has_instances_table(conn):
            return InstanceLock(conn, instance_name)
        conn.execute(
            """INSERT INTO instances (instance_name, pid, hostname, version, started_at, heartbeat_at)
               VALUES (%s, %s, %s, %s, now(), now())
               ON CONFLICT (instance_name) DO UPDATE SET pid = EXCLUDED.pid,
                   hostname = EXCLUDED.hostname, version = EXCLUDED.version,
                   started_at = now(), heartbeat_at = now()""",
            (instance_name, os.getpid(), socket.gethostname(), version),
        )
        return InstanceLock(conn, instance_name)
    except BaseException:
        if not conn.closed:
            conn.close()
        raise
