"""Single-instance lock (instances table + session advisory lock) on a real PostgreSQL."""

from __future__ import annotations

import os

import psycopg
import pytest

from adapters.postgres.instance import InstanceAlreadyRunning, acquire_instance_lock


def test_second_instance_is_refused_until_the_first_releases(fresh_db_dsn: str) -> None:
    first = acquire_instance_lock(fresh_db_dsn, "acct1", version="0.1.0")
    assert first.heartbeat()
    with pytest.raises(InstanceAlreadyRunning) as info:
        acquire_instance_lock(fresh_db_dsn, "acct1")
    assert info.value.holder["pid"] == os.getpid()
    assert "already running" in str(info.value)
    with acquire_instance_lock(fresh_db_dsn, "acct2"):  # another account is independent
        pass
    first.release()
    with acquire_instance_lock(fresh_db_dsn, "acct1") as again:
        assert again.held
    with psycopg.connect(fresh_db_dsn) as conn:
        assert conn.execute(
            "SELECT pid, version FROM instances WHERE instance_name = 'acct1'"
        ).fetchone() == (os.getpid(), "")


def test_killed_holder_frees_the_lock_and_reports_it(fresh_db_dsn: str) -> None:
    lock = acquire_instance_lock(fresh_db_dsn, "acct1")
    with psycopg.connect(fresh_db_dsn, autocommit=True) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE application_name LIKE 'tradebot-instance:acct1 %'"
        )
    assert lock.heartbeat() is False  # the holder learns it lost the lock
    with acquire_instance_lock(fresh_db_dsn, "acct1") as other:
        assert other.heartbeat()
    lock.release()


def test_holder_is_named_without_the_instances_table(empty_db_dsn: str) -> None:
    """A database without the schema (not migrated yet, or the embedded server's admin
    database that ``tradebot paper`` locks): the holder's pid and host still come back,
    from the lock connection's application_name."""
    import socket

    with acquire_instance_lock(empty_db_dsn, "paper-abc") as first:
        assert first.heartbeat()
        with pytest.raises(InstanceAlreadyRunning) as info:
            acquire_instance_lock(empty_db_dsn, "paper-abc")
    assert info.value.holder["pid"] == os.getpid()
    assert info.value.holder["hostname"]
    assert socket.gethostname().startswith(info.value.holder["hostname"])
    assert f"pid {os.getpid()}" in str(info.value)
