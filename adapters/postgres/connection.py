"""psycopg 3 connections (sync API; call from ``trio.to_thread.run_sync`` in async code)."""

from __future__ import annotations

from typing import Any

import psycopg

__all__ = ["CONNECT_TIMEOUT_S", "connect"]

CONNECT_TIMEOUT_S = 5


def connect(
    dsn: str,
    *,
    autocommit: bool = False,
    application_name: str = "tradebot",
    connect_timeout_s: int = CONNECT_TIMEOUT_S,
) -> psycopg.Connection[Any]:
    """Open a sync connection with the session in UTC.

    Args:
        dsn: libpq connection string or URI (PostgreSQL >= 14).
        autocommit: psycopg autocommit mode.
        application_name: shown in ``pg_stat_activity`` (the journal uses its own name so
            operators and tests can find its backend).
        connect_timeout_s: libpq ``connect_timeout`` (seconds, >= 2 recommended).

    Raises:
        psycopg.OperationalError: the server is unreachable or refused the login.
    """
    return psycopg.connect(
        dsn,
        autocommit=autocommit,
        application_name=application_name,
        connect_timeout=connect_timeout_s,
        options="-c TimeZone=UTC",
        keepalives=1,
        keepalives_idle=10,
        keepalives_interval=5,
        keepalives_count=3,
    )
