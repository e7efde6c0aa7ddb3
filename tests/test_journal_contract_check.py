"""The journal's contract check with ``writer_process=True`` and ``strict_schema=False``
(what ``tradebot paper`` runs): done by the writer child instead of ``emit``, counted by the
parent exactly as ``emit`` counts it, and done exactly once for events that never reach the
child (spooled while the database is down, left over at close, emitted after close)."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest
import trio

from adapters.postgres.journal import SPOOL_FILE_NAME, PostgresJournal, open_postgres_journal
from tests.test_journal import T0, _wait_until
from tests.test_journal_process import _TABLES, _rows, _sequence
from tradebot.events import (
    AlertRaised,
    Event,
    EventType,
    StopMoved,
    TrailingUpdated,
)

_SCHEMA_ERROR = EventType.EVENT_SCHEMA_ERROR.value
_BAD_DSN = "postgresql://postgres@127.0.0.1:1/nowhere?connect_timeout=2"


def _bad_events() -> list[Event]:
    """Events off their contract, of five types (one projectable), two of one type."""
    return [
        Event(EventType.ALERT_RAISED, T0, {"reason": "close_failed"}),  # no message
        Event(EventType.SIGNAL_REJECTED, T0, {"nul": "a\x00b"}, symbol="X"),
        Event(EventType.ENTRY_FILLED, T0, {"avg_fill_price": "x"}, position_id="p-bad"),
        Event(EventType.ALERT_RAISED, T0, {"message": 5}),
        Event(EventType.BOT_STARTED, datetime(2026, 1, 1), {}),  # naive ts too
        Event(EventType.STOP_MOVED, T0, {"huge_int": 10**5000}),  # unencodable data
    ]


_BAD_TYPES = {
    "alert.raised": 2,
    "signal.rejected": 1,
    "entry.filled": 1,
    "bot.started": 1,
    "stop.moved": 1,
}


def _bad_events_of(events: list[Event]) -> list[Event]:
    return [e for e in events if e.type in _BAD_EVENT_TYPES and not _conforms(e)]


def _conforms(ev: Event) -> bool:
    from tradebot.events import EventSchemaError, decode_data

    try:
        decode_data(ev.type, ev.data)
    except (EventSchemaError, Exception):
        return False
    return True


_BAD_EVENT_TYPES = {e.type for e in _bad_events()}


def _mixed() -> list[Event]:
    good = _sequence()
    out: list[Event] = []
    bad = iter(_bad_events())
    for i, ev in enumerate(good):
        out.append(ev)
        if i % 9 == 4:
            out.extend(itertools.islice(bad, 1))
    out.extend(bad)
    return out


async def _write(
    dsn: str, spool: Path, events: list[Event], *, writer_process: bool
) -> tuple[PostgresJournal, list[int]]:
    """Write ``events`` (batches of at most 7, many flushes); returns the journal and
    how much each emit itself added to ``stats.schema_errors``."""
    seen: list[int] = []
    async with open_postgres_journal(
        dsn, spool_dir=spool, max_batch_events=7, writer_process=writer_process, strict_schema=False
    ) as journal:
        for i, ev in enumerate(events):
            before = journal.stats.schema_errors
            journal.emit(ev)
            seen.append(journal.stats.schema_errors - before)
            if i % 11 == 0:
                await journal.flush()
        await journal.flush()
    return journal, seen


def _events(dsn: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(
            "SELECT event_id, ts, type, severity::text, position_id, client_order_id, symbol, "
            "correlation_id, data FROM events WHERE type <> %s ORDER BY event_id",
            (_SCHEMA_ERROR,),
        ).fetchall()


def _flagged(dsn: str) -> list[tuple[Any, ...]]:
    """Each EVENT_SCHEMA_ERROR: severity, payload, and whether it was stored after the
    event it names."""
    with psycopg.connect(dsn) as conn:
        return conn.execute(
            "SELECT f.severity::text, f.data, f.seq > e.seq FROM events f "
            "JOIN events e ON e.event_id = (f.data->>'event_id')::uuid "
            "WHERE f.type = %s ORDER BY f.data->>'event_type'",
            (_SCHEMA_ERROR,),
        ).fetchall()


async def test_child_checks_and_parent_counts_as_emit_does(
    make_db_dsn: Callable[..., str], tmp_path: Path
) -> None:
    with trio.fail_after(180):
        events = await trio.to_thread.run_sync(_mixed)
        by_thread, by_process = make_db_dsn(True), make_db_dsn(True)
        thread, t_seen = await _write(by_thread, tmp_path / "a", events, writer_process=False)
        proc, p_seen = await _write(by_process, tmp_path / "b", events, writer_process=True)
    n_bad = len(_bad_events())
    assert thread.stats.schema_errors == proc.stats.schema_errors == n_bad
    assert thread.stats.schema_error_types == proc.stats.schema_error_types == _BAD_TYPES
    # the thread journal counts in emit; the process journal once the child's batch is
    # committed, so never right after the emit of a bad event
    bad_at = [i for i, e in enumerate(events) if any(e is b for b in _bad_events_of(events))]
    assert len(bad_at) == n_bad
    assert [i for i, d in enumerate(t_seen) if d] == bad_at and set(t_seen) == {0, 1}
    assert set(p_seen) == {0}
    assert proc.stats.projection_skip_reasons == thread.stats.projection_skip_reasons
    assert any(k.startswith("entry.filled: schema") for k in proc.stats.projection_skip_reasons)
    for field in ("committed", "duplicates", "unstorable", "spooled", "emitted"):
        assert getattr(proc.stats, field) == getattr(thread.stats, field), field
    assert proc.stats.by_type == thread.stats.by_type
    assert proc.stats.by_type[_SCHEMA_ERROR] == len(_BAD_TYPES)
    # every event stored, the same rows
    assert _events(by_thread) == _events(by_process)
    assert len(_events(by_process)) == len(events) - 1  # the sequence's duplicate
    a, b = _rows(by_thread), _rows(by_process)
    for table in _TABLES:
        if table != "events":  # events.seq differs: the flags come later with the child
            assert a[table] == b[table], table
    flagged = _flagged(by_process)
    assert flagged == _flagged(by_thread)
    assert len(flagged) == len(_BAD_TYPES)
    assert {f[1]["event_type"] for f in flagged} == set(_BAD_TYPES)
    first_alert = next(e for e in events if e.type is EventType.ALERT_RAISED and "reason" in e.data)
    (alert_flag,) = [f for f in flagged if f[1]["event_type"] == "alert.raised"]
    assert alert_flag[1]["event_id"] == str(first_alert.event_id)
    assert "required field missing @ data.message" in alert_flag[1]["error"]
    assert all(sev == "error" and after for sev, _data, after in flagged)


async def test_strict_process_journal_still_raises_in_emit(
    fresh_db_dsn: str, tmp_path: Path
) -> None:
    from tradebot.events import EventSchemaError

    with trio.fail_after(60):
        async with open_postgres_journal(
            fresh_db_dsn, spool_dir=tmp_path, writer_process=True, strict_schema=True
        ) as journal:
            with pytest.raises(EventSchemaError, match=r"data\.message"):
                journal.emit(Event(EventType.ALERT_RAISED, T0, {"reason": "close_failed"}))
            journal.emit(Event.of(AlertRaised(message="ok"), T0))
            await journal.flush()
    assert journal.stats.committed == 1 and journal.stats.schema_errors == 0


@pytest.mark.parametrize("writer_process", [False, True], ids=["thread", "process"])
async def test_spooled_events_are_checked_once_and_not_again_on_replay(
    fresh_db_dsn: str, tmp_path: Path, writer_process: bool
) -> None:
    """Database down at open: every event goes to the spool, never to the child. They are
    counted once (when spooled); the journal that replays the spool counts nothing; an
    event emitted after close (spooled by ``emit``) is counted once too."""
    bad = _bad_events()
    good = [Event.of(StopMoved(stop_price=Decimal(i)), T0, position_id="p1") for i in range(1, 20)]
    late = Event(EventType.WAVE_COMPLETED, T0, {"wave": 1})  # after close: a new type
    with trio.fail_after(60):
        async with open_postgres_journal(
            _BAD_DSN,
            spool_dir=tmp_path,
            retry_interval_s=60,
            max_batch_events=3,
            writer_process=writer_process,
            strict_schema=False,
        ) as journal:
            assert not journal.is_up
            for i, ev in enumerate(good):
                journal.emit(ev)
                if i < len(bad):
                    journal.emit(bad[i])
                if i % 4 == 0:
                    await journal.flush()
        journal.emit(late)
        assert journal.stats.schema_errors == len(bad) + 1
        assert journal.stats.schema_error_types == {**_BAD_TYPES, "wave.completed": 1}
        assert journal.stats.spooled == journal.stats.emitted + 2  # + late and its flag
        assert journal.stats.committed == 0
        spooled = (tmp_path / SPOOL_FILE_NAME).read_text().splitlines()
        assert sum(f'"type": "{_SCHEMA_ERROR}"' in line for line in spooled) == len(_BAD_TYPES) + 1
        async with open_postgres_journal(
            fresh_db_dsn,
            spool_dir=tmp_path,
            writer_process=writer_process,
            strict_schema=False,
        ) as replayer:
            await replayer.flush()
    assert replayer.stats.replayed == len(spooled)
    assert replayer.stats.schema_errors == 0 and replayer.stats.schema_error_types == {}
    with psycopg.connect(fresh_db_dsn) as conn:
        counts = dict(conn.execute("SELECT type, count(*) FROM events GROUP BY type").fetchall())
        flagged = sorted(
            r[0]
            for r in conn.execute(
                "SELECT data->>'event_type' FROM events WHERE type = %s", (_SCHEMA_ERROR,)
            )
        )
    assert flagged == sorted([*_BAD_TYPES, "wave.completed"])
    assert counts["alert.raised"] == 2 and counts["wave.completed"] == 1
    assert counts["stop.moved"] == len(good) + 1


async def test_batch_stuck_in_the_child_at_close_is_checked_once(
    fresh_db_dsn: str, tmp_path: Path
) -> None:
    """The child's batch waits on a lock past the drain timeout: ``aclose`` spools it with
    the events still buffered and checks them there; the child's late reply (its commit
    once the lock goes) is not counted again."""
    app = f"tb-journal-{uuid.uuid4().hex[:8]}"

    trail = [
        Event.of(
            TrailingUpdated(mark_price=Decimal("100.5"), stop_price=Decimal("100"), update_count=i),
            T0,
            position_id="p1",
        )
        for i in range(2)
    ]

    def child_waits_on_lock() -> bool:
        with psycopg.connect(fresh_db_dsn, autocommit=True) as conn:
            row = conn.execute(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE application_name = %s AND wait_event_type = 'Lock'",
                (app,),
            ).fetchone()
        return bool(row and row[0])

    alert_a, alert_b, signal_c, bot_d = (
        Event(EventType.ALERT_RAISED, T0, {"reason": "a"}),
        Event(EventType.ALERT_RAISED, T0, {"reason": "b"}),
        Event(EventType.SIGNAL_REJECTED, T0, {"x": 1}),
        Event(EventType.BOT_STARTED, T0, {}),
    )
    locker = await trio.to_thread.run_sync(psycopg.connect, fresh_db_dsn)

    async def release_once_spooled() -> None:
        await _wait_until(lambda: journal.stats.spooled > 0)
        await trio.to_thread.run_sync(locker.rollback)

    try:
        with trio.fail_after(90):
            async with (
                trio.open_nursery() as nursery,
                open_postgres_journal(
                    fresh_db_dsn,
                    spool_dir=tmp_path,
                    application_name=app,
                    writer_process=True,
                    strict_schema=False,
                    drain_timeout_s=1.0,
                ) as journal,
            ):
                journal.emit(trail[0])
                journal.emit(alert_a)
                await journal.flush()  # committed by the child, counted on reply
                await _wait_until(lambda: journal.stats.schema_errors == 1)
                await journal.flush()  # the flag of alert.raised is committed too
                await trio.to_thread.run_sync(
                    locker.execute, "LOCK TABLE events IN SHARE ROW EXCLUSIVE MODE"
                )
                for e in (trail[1], alert_b, signal_c):
                    journal.emit(e)
                while not await trio.to_thread.run_sync(child_waits_on_lock):  # noqa: ASYNC110
                    await trio.sleep(0.01)
                journal.emit(bot_d)  # buffered behind the stuck batch
                nursery.start_soon(release_once_spooled)
    finally:
        await trio.to_thread.run_sync(locker.close)
    stats = journal.stats
    assert stats.schema_errors == 4
    assert stats.schema_error_types == {"alert.raised": 2, "signal.rejected": 1, "bot.started": 1}
    spooled = (tmp_path / SPOOL_FILE_NAME).read_text().splitlines()
    ids = [str(e.event_id) for e in (trail[1], alert_b, signal_c, bot_d)]
    assert all(any(i in line for line in spooled) for i in ids)  # stuck batch + buffered
    flags = [line for line in spooled if f'"type": "{_SCHEMA_ERROR}"' in line]
    assert len(flags) == 2  # signal.rejected, bot.started (alert.raised was flagged before)
    async with open_postgres_journal(
        fresh_db_dsn, spool_dir=tmp_path, strict_schema=False
    ) as replayer:
        await replayer.flush()
    assert replayer.stats.schema_errors == 0
    with psycopg.connect(fresh_db_dsn) as conn:
        flagged = sorted(
            r[0]
            for r in conn.execute(
                "SELECT data->>'event_type' FROM events WHERE type = %s", (_SCHEMA_ERROR,)
            )
        )
        n_alerts = conn.execute(
            "SELECT count(*) FROM events WHERE type = 'alert.raised'"
        ).fetchone()
    assert flagged == ["alert.raised", "bot.started", "signal.rejected"]
    assert n_alerts == (2,)
