"""Migrations and schema constraints against a real PostgreSQL (issue 2, "Must show")."""

from __future__ import annotations

import subprocess
import sys
import threading
from datetime import UTC, datetime
from decimal import Decimal

import psycopg
import pytest

from adapters.postgres.migrations import (
    load_migrations,
    maintain_partitions,
    migrate,
    migration_status,
)

TABLES = {
    "positions",
    "orders",
    "fills",
    "events",
    "signals",
    "waves",
    "tp_levels",
    "alerts",
    "instances",
    "schema_migrations",
}


def _tables(dsn: str) -> set[str]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
        ).fetchall()
    return {r[0] for r in rows}


def test_migrations_apply_to_empty_db_and_second_run_is_noop(empty_db_dsn: str) -> None:
    assert _tables(empty_db_dsn) == set()
    applied = migrate(empty_db_dsn)
    assert [m.version for m in applied] == [m.version for m in load_migrations()]
    assert _tables(empty_db_dsn) >= TABLES
    with psycopg.connect(empty_db_dsn) as conn:
        before = conn.execute(
            "SELECT version, checksum, applied_at FROM schema_migrations ORDER BY 1"
        ).fetchall()
    assert migrate(empty_db_dsn) == []
    with psycopg.connect(empty_db_dsn) as conn:
        after = conn.execute(
            "SELECT version, checksum, applied_at FROM schema_migrations ORDER BY 1"
        ).fetchall()
    assert before == after
    assert all(s.applied_at is not None and s.checksum_ok for s in migration_status(empty_db_dsn))


def test_concurrent_migrations_do_not_corrupt(empty_db_dsn: str) -> None:
    errors: list[BaseException] = []
    results: list[int] = []
    barrier = threading.Barrier(4)

    def run() -> None:
        try:
            barrier.wait()
            results.append(len(migrate(empty_db_dsn)))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    n = len(load_migrations())
    assert sorted(results) == [0, 0, 0, n] or sum(results) == n
    with psycopg.connect(empty_db_dsn) as conn:
        rows = conn.execute("SELECT version FROM schema_migrations ORDER BY 1").fetchall()
    assert [r[0] for r in rows] == [m.version for m in load_migrations()]


def test_cli_migrate_in_two_processes_at_once(empty_db_dsn: str) -> None:
    cmd = [sys.executable, "-m", "tradebot", "db", "migrate", "--dsn", empty_db_dsn]
    procs = [
        subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    joined = "".join(o[0] for o in outs)
    for m in load_migrations():
        assert joined.count(f"applied {m.version:04d}_{m.name}") == 1
    status = subprocess.run(
        [sys.executable, "-m", "tradebot", "db", "status", "--dsn", empty_db_dsn],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert status.returncode == 0
    assert "pending" not in status.stdout


def test_edited_migration_is_reported_not_reapplied(fresh_db_dsn: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from adapters.postgres.migrations import MigrationError

    for m in load_migrations():
        (tmp_path / m.path.name).write_text(m.sql + ("\n-- edited\n" if m.version == 1 else ""))
    with pytest.raises(MigrationError, match="checksum"):
        migrate(fresh_db_dsn, tmp_path)
    assert not next(
        s for s in migration_status(fresh_db_dsn, tmp_path) if s.version == 1
    ).checksum_ok


def test_no_float_columns_anywhere(fresh_db_dsn: str) -> None:
    with psycopg.connect(fresh_db_dsn) as conn:
        floats = conn.execute(
            """SELECT table_name, column_name, data_type FROM information_schema.columns
               WHERE table_schema = 'public'
                 AND data_type IN ('real', 'double precision', 'float', 'money')"""
        ).fetchall()
        money_cols = conn.execute(
            """SELECT table_name, column_name, data_type FROM information_schema.columns
               WHERE table_schema = 'public'
                 AND (column_name LIKE '%%price%%' OR column_name LIKE '%%qty%%'
                      OR column_name LIKE '%%usdt%%' OR column_name LIKE '%%pct%%'
                      OR column_name IN ('fraction', 'score_week', 'score_month'))"""
        ).fetchall()
    assert floats == []
    assert money_cols, "expected money columns"
    assert {r[2] for r in money_cols} == {"numeric"}, money_cols


def _position(
    conn: psycopg.Connection, pid: str = "p1", qty: str = "1.5", side: str = "LONG"
) -> None:  # type: ignore[type-arg]
    conn.execute(
        """INSERT INTO positions (position_id, symbol, position_side, qty, opened_at)
           VALUES (%s, 'BTCUSDT', %s, %s, now())""",
        (pid, side, Decimal(qty)),
    )


@pytest.mark.parametrize("qty", ["0", "-1", "-0.0001"])
def test_constraints_reject_non_positive_qty(fresh_db_dsn: str, qty: str) -> None:
    with psycopg.connect(fresh_db_dsn) as conn:
        with pytest.raises(psycopg.errors.CheckViolation):
            _position(conn, qty=qty)
        conn.rollback()
        _position(conn)
        with pytest.raises(psycopg.errors.CheckViolation):
            conn.execute(
                """INSERT INTO orders (client_order_id, position_id, symbol, side, order_type, role, qty)
                   VALUES ('tb-p1-E0', 'p1', 'BTCUSDT', 'BUY', 'MARKET', 'ENTRY', %s)""",
                (Decimal(qty),),
            )


def test_constraints_reject_unknown_side(fresh_db_dsn: str) -> None:
    with psycopg.connect(fresh_db_dsn) as conn:
        with pytest.raises(psycopg.errors.InvalidTextRepresentation):
            _position(conn, side="UP")
        conn.rollback()
        _position(conn)
        with pytest.raises(psycopg.errors.InvalidTextRepresentation):
            conn.execute(
                """INSERT INTO orders (client_order_id, position_id, symbol, side, order_type, role, qty)
                   VALUES ('tb-p1-E0', 'p1', 'BTCUSDT', 'HOLD', 'MARKET', 'ENTRY', 1)"""
            )


def test_constraints_reject_order_without_position(fresh_db_dsn: str) -> None:
    with psycopg.connect(fresh_db_dsn) as conn:
        with pytest.raises(psycopg.errors.ForeignKeyViolation):
            conn.execute(
                """INSERT INTO orders (client_order_id, position_id, symbol, side, order_type, role, qty)
                   VALUES ('tb-nope-E0', 'nope', 'BTCUSDT', 'BUY', 'MARKET', 'ENTRY', 1)"""
            )
        conn.rollback()
        with pytest.raises(psycopg.errors.NotNullViolation):
            conn.execute(
                """INSERT INTO orders (client_order_id, symbol, side, order_type, role, qty)
                   VALUES ('tb-nope-E0', 'BTCUSDT', 'BUY', 'MARKET', 'ENTRY', 1)"""
            )


def test_one_live_position_per_symbol_side(fresh_db_dsn: str) -> None:
    with psycopg.connect(fresh_db_dsn) as conn:
        _position(conn, "p1")
        with pytest.raises(psycopg.errors.UniqueViolation):
            _position(conn, "p2")
        conn.rollback()
        _position(conn, "p1")
        conn.execute(
            "UPDATE positions SET status = 'CLOSED', closed_at = now() WHERE position_id = 'p1'"
        )
        _position(conn, "p2")  # the closed one no longer blocks
        _position(conn, "p3", side="SHORT")  # hedge mode: the other side is independent


def test_point_one_plus_point_two_round_trips_exactly(fresh_db_dsn: str) -> None:
    with psycopg.connect(fresh_db_dsn) as conn:
        _position(conn, "p1", qty=str(Decimal("0.1") + Decimal("0.2")))
        conn.execute(
            "UPDATE positions SET entry_price = %s + %s WHERE position_id = 'p1'",
            (Decimal("0.1"), Decimal("0.2")),
        )
        qty, entry = conn.execute(
            "SELECT qty, entry_price FROM positions WHERE position_id = 'p1'"
        ).fetchone()  # type: ignore[misc]
        one_more = conn.execute("SELECT 0.1::numeric + 0.2::numeric = 0.3::numeric").fetchone()
    assert qty == Decimal("0.3") and isinstance(qty, Decimal)
    assert entry == Decimal("0.3") and str(entry) == "0.3"
    assert one_more == (True,)


def test_updated_at_is_kept_by_trigger(fresh_db_dsn: str) -> None:
    with psycopg.connect(fresh_db_dsn, autocommit=True) as conn:
        _position(conn)
        (u0,) = conn.execute("SELECT updated_at FROM positions").fetchone()  # type: ignore[misc]
        conn.execute("UPDATE positions SET stop_price = 99 WHERE position_id = 'p1'")
        (u1,) = conn.execute("SELECT updated_at FROM positions").fetchone()  # type: ignore[misc]
    assert u1 > u0


def test_partitions_created_rows_moved_and_retention_drops(fresh_db_dsn: str) -> None:
    old = datetime(2025, 5, 21, 11, 0, tzinfo=UTC)
    with psycopg.connect(fresh_db_dsn, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO events (event_id, ts, type) VALUES (gen_random_uuid(), %s, 'x.y')", (old,)
        )
        (part,) = conn.execute("SELECT tableoid::regclass::text FROM events").fetchone()  # type: ignore[misc]
        assert part == "events_default"
    actions = maintain_partitions(fresh_db_dsn, retention_days=None)
    assert "created events_y2025m05" in actions
    with psycopg.connect(fresh_db_dsn, autocommit=True) as conn:
        (part,) = conn.execute("SELECT tableoid::regclass::text FROM events").fetchone()  # type: ignore[misc]
        assert part == "events_y2025m05"
    assert maintain_partitions(fresh_db_dsn, retention_days=None) == []
    actions = maintain_partitions(fresh_db_dsn, retention_days=30)
    assert "dropped events_y2025m05" in actions
    now_month = datetime.now(UTC).strftime("events_y%Ym%m")
    assert not any(now_month in a for a in actions)
    with psycopg.connect(fresh_db_dsn) as conn:
        assert conn.execute("SELECT count(*) FROM events").fetchone() == (0,)
        # an insert at any time still lands somewhere (the default partition)
        conn.execute(
            "INSERT INTO events (event_id, ts, type) VALUES (gen_random_uuid(), '1999-01-01Z', 'x.y')"
        )


def test_cli_partitions_and_status(fresh_db_dsn: str) -> None:
    run = [sys.executable, "-m", "tradebot", "db"]
    p = subprocess.run(
        [*run, "partitions", "--dsn", fresh_db_dsn, "--months-ahead", "4", "--retention-days", "0"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert p.returncode == 0, p.stderr
    assert "created events_y" in p.stdout
    p = subprocess.run(
        [*run, "partitions", "--dsn", fresh_db_dsn, "--months-ahead", "4"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert p.returncode == 0 and "up to date" in p.stdout
    p = subprocess.run(
        [*run, "status", "--dsn", "postgresql://postgres@127.0.0.1:1/x?connect_timeout=2"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert p.returncode == 1 and p.stderr.startswith("error: ")
