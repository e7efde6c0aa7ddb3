"""The journal's writer process (``writer_process=True``, what ``tradebot paper`` uses)
against a real server: the same rows as the writer thread, a killed child costs a retry and
no event, and the child never outlives its parent."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest
import trio

from adapters.postgres.journal import open_postgres_journal
from tests.test_journal import T0, _fill, _snapshot, _wait_until
from tests.test_journal_actor_events import (
    LONG,
    SHORT,
    flatten_fails,
    take_profits,
    trail_then_stop,
)
from tradebot.domain import OrderRole, PositionSide
from tradebot.events import (
    AlertRaised,
    EntryFilled,
    EntryIntent,
    Event,
    EventType,
    OrderIntent,
    Severity,
    TrailingUpdated,
)

# created_at / updated_at / recorded_at are the server's now(): they differ between any two
# writes of the same rows
_CLOCK_COLUMNS = {"created_at", "updated_at", "recorded_at"}
_TABLES = ("events", "positions", "orders", "fills", "signals", "waves", "tp_levels", "alerts")


def _sequence() -> list[Event]:
    """Events of real PositionActor runs (both profiles, four kinds of life) plus the cases
    that take the writer's other paths: a duplicate, projection skips, hostile data."""
    events: list[Event] = []
    events += trail_then_stop("bybit", LONG)
    events += trail_then_stop("binance", SHORT)
    events += take_profits("binance")
    events += flatten_fails("binance")
    events.append(events[3])  # the same event again: stored once, projected once
    D = Decimal
    events += [
        # projections that skip: no positions row / no position_id (counted with a reason)
        Event.of(
            EntryFilled(avg_fill_price=D("1"), filled_qty=D("1"), requested_qty=D("1")),
            T0,
            position_id="nobody",
        ),
        Event.of(
            EntryIntent(
                position_side=PositionSide.LONG,
                qty=D("0.001"),
                reference_price=D("95000"),
                intended_stop=D("90000"),
            ),
            T0,
            symbol="BTCUSDT",
        ),
        Event.of(
            OrderIntent(role=OrderRole.CLOSE, qty=D("1")),
            T0,
            position_id="nobody",
            client_order_id="tb-nobody-C0",
            symbol="BTCUSDT",
        ),
        Event.of(_fill("t-orphan"), T0, symbol="BTCUSDT"),
        Event.of(
            AlertRaised(key="k", reason="r", message='naïve ☃ "quoted"\x00 nul'),
            T0 + timedelta(seconds=1),
            severity=Severity.CRITICAL,
        ),
        Event.of(_snapshot(D("101.5")), T0, position_id="p-snap"),
    ]
    return events


def _rows(dsn: str) -> dict[str, list[tuple[Any, ...]]]:
    out: dict[str, list[tuple[Any, ...]]] = {}
    with psycopg.connect(dsn) as conn:
        for table in _TABLES:
            cols = [
                r[0]
                for r in conn.execute(
                    "SELECT column_name FROM information_schema.columns "
                    "WHERE table_schema = 'public' AND table_name = %s ORDER BY ordinal_position",
                    (table,),
                )
                if r[0] not in _CLOCK_COLUMNS
            ]
            listed = ", ".join(f'"{c}"' for c in cols)
            order = ", ".join(str(i + 1) for i in range(len(cols)))
            out[table] = conn.execute(f"SELECT {listed} FROM {table} ORDER BY {order}").fetchall()
    return out


async def _write_all(dsn: str, spool: Path, events: list[Event], *, writer_process: bool) -> Any:
    async with open_postgres_journal(
        dsn, spool_dir=spool, max_batch_events=7, writer_process=writer_process, strict_schema=False
    ) as journal:
        for i, ev in enumerate(events):
            journal.emit(ev)
            if i % 11 == 0:
                await journal.flush()  # many batches of different sizes
        pid = journal.writer_pid
    return journal, pid


def _gone(pid: int) -> bool:
    """The process ended (no such pid, or a zombie nobody reaped yet)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


async def test_process_writer_stores_exactly_the_rows_of_the_thread_writer(
    make_db_dsn: Callable[..., str], tmp_path: Path
) -> None:
    with trio.fail_after(180):
        events = await trio.to_thread.run_sync(_sequence)
        by_thread, by_process = make_db_dsn(True), make_db_dsn(True)
        thread, no_pid = await _write_all(by_thread, tmp_path / "a", events, writer_process=False)
        proc, pid = await _write_all(by_process, tmp_path / "b", events, writer_process=True)
    assert no_pid is None and pid is not None
    assert _gone(pid)  # closing the journal ended its writer
    a, b = _rows(by_thread), _rows(by_process)
    for table in _TABLES:
        assert a[table] == b[table], table
    assert len(a["events"]) == len(events) - 1  # the duplicate is stored once
    assert a["positions"] and a["orders"] and a["fills"] and a["alerts"] and a["tp_levels"]
    for field in ("committed", "duplicates", "projection_skipped", "unstorable", "spooled"):
        assert getattr(proc.stats, field) == getattr(thread.stats, field), field
    assert proc.stats.projection_skip_reasons == thread.stats.projection_skip_reasons
    assert thread.stats.duplicates == 1 and thread.stats.projection_skipped >= 4
    assert proc.stats.batches >= len(events) // 7 and proc.stats.writer_starts == 1
    assert proc.stats.db_failures == 0


async def test_child_killed_mid_transaction_is_retried_and_loses_nothing(
    fresh_db_dsn: str, tmp_path: Path
) -> None:
    app = f"tb-journal-{uuid.uuid4().hex[:8]}"

    def ev(i: int) -> Event:
        return Event.of(
            TrailingUpdated(mark_price=Decimal("100.5"), stop_price=Decimal("100"), update_count=i),
            T0 + timedelta(microseconds=i),
            position_id="p1",
        )

    def child_waits_on_lock() -> bool:
        with psycopg.connect(fresh_db_dsn, autocommit=True) as conn:
            row = conn.execute(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE application_name = %s AND wait_event_type = 'Lock'",
                (app,),
            ).fetchone()
        return bool(row and row[0])

    with trio.fail_after(60):
        async with open_postgres_journal(
            fresh_db_dsn, spool_dir=tmp_path, application_name=app, writer_process=True
        ) as journal:
            first = [ev(i) for i in range(50)]
            for e in first:
                journal.emit(e)
            await journal.flush()
            pid = journal.writer_pid
            assert pid is not None
            # Hold the events table: the child's next INSERT waits inside its transaction.
            locker = await trio.to_thread.run_sync(psycopg.connect, fresh_db_dsn)
            try:
                await trio.to_thread.run_sync(
                    locker.execute, "LOCK TABLE events IN SHARE ROW EXCLUSIVE MODE"
                )
                second = [ev(i) for i in range(50, 100)]
                for e in second:
                    journal.emit(e)
                while not await trio.to_thread.run_sync(child_waits_on_lock):  # noqa: ASYNC110
                    await trio.sleep(0.01)
                os.kill(pid, signal.SIGKILL)  # mid-transaction: nothing of it commits
                await _wait_until(lambda: journal.stats.db_failures >= 1)
            finally:
                await trio.to_thread.run_sync(locker.rollback)
                await trio.to_thread.run_sync(locker.close)
            await journal.flush()
            assert journal.writer_pid not in (None, pid)  # the retry started a new child
    assert journal.stats.writer_starts == 2 and journal.stats.spooled == 0
    assert journal.stats.committed == 100 and journal.stats.duplicates == 0
    with psycopg.connect(fresh_db_dsn) as conn:
        stored = [r[0] for r in conn.execute("SELECT event_id FROM events ORDER BY seq")]
    assert stored == [e.event_id for e in first + second]


def test_child_exits_when_its_parent_is_killed(fresh_db_dsn: str, tmp_path: Path) -> None:
    app = f"tb-journal-{uuid.uuid4().hex[:8]}"
    script = textwrap.dedent(
        """
        import sys, trio
        from datetime import UTC, datetime
        from decimal import Decimal
        from adapters.postgres.journal import open_postgres_journal
        from tradebot.events import Event, StopMoved

        async def main():
            async with open_postgres_journal(
                sys.argv[1], spool_dir=sys.argv[2], application_name=sys.argv[3],
                writer_process=True,
            ) as journal:
                journal.emit(Event.of(StopMoved(stop_price=Decimal(1)), datetime.now(UTC)))
                await journal.flush()
                print(journal.writer_pid, flush=True)
                await trio.sleep_forever()

        trio.run(main)
        """
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", script, fresh_db_dsn, str(tmp_path), app],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert parent.stdout is not None
        line = parent.stdout.readline()
        assert line.strip().isdigit(), line
        child = int(line)
        assert not _gone(child)
        parent.send_signal(signal.SIGKILL)
        parent.wait(30)
        deadline = time.monotonic() + 30  # a bound for a stuck child, not a timing claim
        while not _gone(child) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert _gone(child)
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
        if parent.stdout is not None:
            parent.stdout.close()
    with psycopg.connect(fresh_db_dsn, autocommit=True) as conn:
        deadline = time.monotonic() + 30
        while True:  # the server notices the closed sockets on its own schedule
            row = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", (app,)
            ).fetchone()
            if (row and row[0] == 0) or time.monotonic() > deadline:
                break
            time.sleep(0.02)
        assert row is not None and row[0] == 0
        stored = conn.execute("SELECT count(*) FROM events").fetchone()
    assert stored == (1,)


@pytest.mark.parametrize("kill_before_first_batch", [True, False])
async def test_child_found_dead_is_replaced_before_the_next_batch(
    fresh_db_dsn: str, tmp_path: Path, kill_before_first_batch: bool
) -> None:
    """The child killed while idle (its exit known before the next batch): the next batch
    starts a new child and goes through it; no failed write, no spool, nothing lost."""
    with trio.fail_after(60):
        async with open_postgres_journal(
            fresh_db_dsn, spool_dir=tmp_path, writer_process=True
        ) as journal:
            if not kill_before_first_batch:
                journal.emit(Event.of(_snapshot(Decimal("1")), T0, position_id="p0"))
                await journal.flush()
            pid = journal.writer_pid
            assert pid is not None
            os.kill(pid, signal.SIGKILL)
            while not _gone(pid):  # noqa: ASYNC110 - a process, not a trio event
                await trio.sleep(0.01)
            journal.emit(Event.of(_snapshot(Decimal("2")), T0, position_id="p1"))
            await journal.flush()
    assert journal.stats.db_failures == 0 and journal.stats.writer_starts == 2
    assert journal.stats.spooled == 0
    with psycopg.connect(fresh_db_dsn) as conn:
        types = [r[0] for r in conn.execute("SELECT type FROM events ORDER BY seq")]
    assert types.count(EventType.POSITION_SNAPSHOT.value) == (1 if kill_before_first_batch else 2)
    assert EventType.DB_UNAVAILABLE.value not in types
