"""Single-instance guarantee: one running bot per account (docs/ARCHITECTURE.md §7 ``instances``).

The guarantee is a PostgreSQL *session* advisory lock on
``hashtextextended('tradebot.instance:' || instance_name, 0)`` held on a dedicated
connection for the life of the process; the ``instances`` row only says who holds it
(pid, host, version, heartbeat). A crashed process's connection closes and its lock goes
with it, so a stale row never blocks a restart.

If the lock connection is lost (server restart), :meth:`InstanceLock.heartbeat` returns
False: the holder must stop trading (or re-acquire) because another process may now hold it.

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


def acquire_instance_lock(dsn: str, instance_name: str, *, version: str = "") -> InstanceLock:
    """Take the instance lock for ``instance_name`` (the account) or fail at once.

    Raises:
        InstanceAlreadyRunning: another process holds it.
        psycopg.OperationalError: the database is unreachable.
    """
    conn = connect(dsn, autocommit=True, application_name=f"tradebot-instance:{instance_name}"[:63])
    try:
        row = conn.execute(f"SELECT pg_try_advisory_lock({_KEY})", (instance_name,)).fetchone()
        if not (row and row[0]):
            cur = conn.execute(
                "SELECT pid, hostname, version, started_at, heartbeat_at FROM instances "
                "WHERE instance_name = %s",
                (instance_name,),
            )
            r = cur.fetchone()
            names = [d.name for d in cur.description or []]
            conn.close()
            raise InstanceAlreadyRunning(
                instance_name, dict(zip(names, r, strict=True)) if r else {}
            )
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
