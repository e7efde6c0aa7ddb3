"""The PostgreSQL journal against a real server: group commit, exactly-once under connection
kills and server restarts (spool → replay), Decimal round trips, projections, reader cache."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest
import trio
import trio.testing
from hypothesis import given
from hypothesis import strategies as st

from adapters.postgres.embedded import (
    _embedded_postgres,
    embedded_pgdata,
    ensure_embedded_server,
    start_embedded_server_object,
)
from adapters.postgres.journal import SPOOL_FILE_NAME, PostgresJournal, open_postgres_journal
from adapters.postgres.migrations import migrate
from tradebot.domain import OrderRole, OrderStatus, PositionSide, Side
from tradebot.errors import JournalError
from tradebot.events import (
    AlertRaised,
    ConfigLoaded,
    EntryAcked,
    EntryFilled,
    EntryIntent,
    EntrySubmitted,
    Event,
    EventType,
    FillRecorded,
    Funding,
    OrderIntent,
    OrderSubmitted,
    PositionActivated,
    PositionClosed,
    PositionSnapshot,
    ReconcileStarted,
    Severity,
    SignalFiltered,
    SignalRejected,
    SignalTaken,
    StopIntent,
    StopMoved,
    StopPlaced,
    StopTriggered,
    StreamGapped,
    TakeProfitFilled,
    TakeProfitPlaced,
    TrailingSnapshot,
    TrailingUpdated,
    WaveCompleted,
    WaveStarted,
    dumps,
    encode,
)
from tradebot.signals import wave_id_for

T0 = datetime(2026, 11, 21, 6, 0, tzinfo=UTC)

TRICKY = {
    "price": Decimal("0.1") + Decimal("0.2"),
    "qty": Decimal("0.00000001"),
    "trailing_zeros": Decimal("1.10"),
    "big": Decimal("123456789012345678901234567890.123456789"),
    "negative_pnl_usdt": Decimal("-42.4200"),
    "nested": {"levels": [Decimal("1.5"), Decimal("3.0")], "when": T0},
    "side": "LONG",
    "text": 'naïve ☃ "quoted"',
}


def _snapshot(water_mark: Decimal) -> PositionSnapshot:
    """A valid POSITION_SNAPSHOT payload whose trailing water mark tells snapshots apart."""
    return PositionSnapshot(
        lifecycle="ACTIVE",
        symbol="BTCUSDT",
        entry_client_order_id="tb-p-E0",
        requested_qty=Decimal("0.010"),
        filled_qty=Decimal("0.010"),
        qty=Decimal("0.010"),
        trailing=TrailingSnapshot(phase="ACTIVE", water_mark=water_mark),
    )


def _wave_done(wave_id: str) -> WaveCompleted:
    return WaveCompleted(wave_id=wave_id, wave_ts=T0, received=0, taken=0, filtered=0)


def _fill(trade_id: str, qty: str = "0.001", price: str = "100000", fee: str = "0") -> FillRecorded:
    return FillRecorded(
        qty=Decimal(qty),
        price=Decimal(price),
        fee_usdt=Decimal(fee),
        side=Side.BUY,
        position_side=PositionSide.LONG,
        trade_id=trade_id,
    )


def _stop_moved(i: int) -> Event:
    return Event.of(StopMoved(stop_price=Decimal(100 + i)), T0)


async def _wait_until(predicate: Any, poll_s: float = 0.002) -> None:
    """Poll a counter of the journal (its stats are plain ints, not events)."""
    while not predicate():  # noqa: ASYNC110
        await trio.sleep(poll_s)


def _assert_emission_order_per_task(dsn: str) -> None:
    """Within each producer task the database's insertion order (seq) is the emission order."""
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT substr(position_id, 4)::int, (data->>'update_count')::int FROM events "
            "WHERE type = %s ORDER BY seq",
            (EventType.TRAILING_UPDATE.value,),
        ).fetchall()
    last: dict[int, int] = {}
    for task, i in rows:
        assert i > last.get(task, -1), (task, i, last.get(task))
        last[task] = i


def _ids(dsn: str) -> list[uuid.UUID]:
    with psycopg.connect(dsn) as conn:
        return [r[0] for r in conn.execute("SELECT event_id FROM events ORDER BY ts, seq")]


def _count_by_type(dsn: str) -> dict[str, int]:
    with psycopg.connect(dsn) as conn:
        return {r[0]: r[1] for r in conn.execute("SELECT type, count(*) FROM events GROUP BY type")}


async def test_every_event_type_round_trips_json_and_db_with_decimals_intact(
    fresh_db_dsn: str, tmp_path: Path
) -> None:
    """Data off every type's contract (the same tricky decimals for all) is still stored
    exactly, counted as a schema error and flagged once per type (non-strict journal)."""
    events = [
        Event(
            t,
            T0 + timedelta(seconds=i),
            dict(TRICKY),
            position_id=f"p{i}",
            symbol="BTCUSDT",
            severity=Severity.WARNING,
            correlation_id="c1",
            client_order_id=f"tb-p{i}-E0",
        )
        for i, t in enumerate(EventType)
    ]
    with trio.fail_after(30):
        async with open_postgres_journal(
            fresh_db_dsn, spool_dir=tmp_path, strict_schema=False
        ) as journal:
            for ev in events:
                journal.emit(ev)
            await journal.flush()
    assert journal.stats.schema_errors == len(EventType)
    assert set(journal.stats.schema_error_types) == {t.value for t in EventType}
    with psycopg.connect(fresh_db_dsn) as conn:
        rows = {
            r[0]: r[1:]
            for r in conn.execute(
                "SELECT event_id, type, data, severity::text, position_id, symbol, ts FROM events"
            )
        }
        flagged = conn.execute(
            "SELECT data->>'event_type' FROM events WHERE type = 'db.schema_error' "
            "AND position_id IS NULL"
        ).fetchall()
    # one EVENT_SCHEMA_ERROR per type (not for the schema-error type itself)
    assert sorted(r[0] for r in flagged) == sorted(
        t.value for t in EventType if t is not EventType.EVENT_SCHEMA_ERROR
    )
    assert len(rows) == 2 * len(EventType) - 1
    for ev in events:
        etype, data, severity, position_id, symbol, ts = rows[ev.event_id]
        assert etype == ev.type.value
        assert (severity, position_id, symbol, ts) == ("warning", ev.position_id, "BTCUSDT", ev.ts)
        # JSON text round trip and DB round trip give the same exact decimal strings
        assert json.loads(dumps(ev.data)) == data
        assert Decimal(data["price"]) == Decimal("0.3") and data["price"] == "0.3"
        assert data["trailing_zeros"] == "1.10"
        assert Decimal(data["qty"]) == Decimal("1E-8")
        assert Decimal(data["big"]) == TRICKY["big"]
        assert Decimal(data["negative_pnl_usdt"]) == Decimal("-42.42")
        assert data["nested"] == {"levels": ["1.5", "3.0"], "when": T0.isoformat()}
        assert data["text"] == TRICKY["text"]


async def _produce(
    journal: PostgresJournal,
    tasks: int,
    per_task: int,
    *,
    durable_every: int = 0,
    during: Any = None,
    gates: dict[int, trio.Event] | None = None,
) -> list[uuid.UUID]:
    """50 producer tasks; with ``gates`` every task waits at index i until ``gates[i]`` is
    set, so a fault can be injected at a known point of the stream on any machine speed."""
    emitted: list[uuid.UUID] = []

    async def producer(k: int) -> None:
        for i in range(per_task):
            if gates and i in gates:
                await gates[i].wait()
            ev = Event.of(
                TrailingUpdated(
                    mark_price=Decimal("100.55"), stop_price=Decimal("100.05"), update_count=i
                ),
                T0 + timedelta(microseconds=k * per_task + i),
                position_id=f"pos{k}",
            )
            emitted.append(ev.event_id)
            if durable_every and i % durable_every == 0:
                await journal.emit_durable(ev)
            else:
                journal.emit(ev)
            if i % 25 == 0:
                await trio.sleep(0.001)

    async with trio.open_nursery() as nursery:
        if during is not None:
            nursery.start_soon(during)
        async with trio.open_nursery() as producers:
            for k in range(tasks):
                producers.start_soon(producer, k)
    await journal.flush()
    return emitted


async def test_50_tasks_20000_events_stored_exactly_once(fresh_db_dsn: str, tmp_path: Path) -> None:
    with trio.fail_after(60):
        async with open_postgres_journal(fresh_db_dsn, spool_dir=tmp_path) as journal:
            emitted = await _produce(journal, 50, 400, durable_every=50)
            assert journal.stats.batches < 20000 / 10  # group commit: many events per batch
    stored = _ids(fresh_db_dsn)
    assert len(stored) == 20000 == len(set(stored))
    assert set(stored) == set(emitted)
    assert journal.stats.committed == 20000 and journal.stats.spooled == 0
    _assert_emission_order_per_task(fresh_db_dsn)


@pytest.mark.parametrize("writer_process", [False, True], ids=["thread", "process"])
async def test_connection_killed_mid_stream_loses_and_duplicates_nothing(
    fresh_db_dsn: str, tmp_path: Path, writer_process: bool
) -> None:
    app = f"tb-journal-{uuid.uuid4().hex[:8]}"
    killed: list[int] = []
    # every task pauses at events 100, 200, 300: the journal's connection is killed at each
    # pause (5,000 / 10,000 / 15,000 events committed), then the stream resumes on it
    gates = {i: trio.Event() for i in (100, 200, 300)}

    def kill() -> int:
        with psycopg.connect(fresh_db_dsn, autocommit=True) as conn:
            rows = conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s",
                (app,),
            ).fetchall()
        return sum(1 for r in rows if r[0])

    async def killer() -> None:
        for n, gate in enumerate(gates.values(), start=1):
            await _wait_until(lambda n=n: journal.stats.committed >= 5000 * n)  # type: ignore[misc]
            while True:  # the writer may be between connections: until a backend was killed
                k = await trio.to_thread.run_sync(kill)
                if k:
                    break
                await trio.sleep(0.01)
            killed.append(k)
            gate.set()

    with trio.fail_after(60):
        async with open_postgres_journal(
            fresh_db_dsn,
            spool_dir=tmp_path,
            application_name=app,
            max_batch_events=500,
            writer_process=writer_process,
        ) as journal:
            emitted = await _produce(journal, 50, 400, durable_every=40, during=killer, gates=gates)
    assert len(killed) == 3 and all(killed), killed
    assert journal.stats.db_failures >= 3  # each kill was noticed by the next write
    _assert_emission_order_per_task(fresh_db_dsn)
    assert journal.stats.db_failures >= 1
    with psycopg.connect(fresh_db_dsn) as conn:
        rows = conn.execute(
            "SELECT event_id FROM events WHERE type = %s", (EventType.TRAILING_UPDATE.value,)
        ).fetchall()
    stored = [r[0] for r in rows]
    assert len(stored) == 20000 == len(set(stored))
    assert set(stored) == set(emitted)


class _DedicatedServer:
    """A private embedded server this test may stop and start (never the shared one)."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="tradebot-test-pg-restart-"))
        self.home = self.root / "home"
        # the bot's own path: no DSN configured -> embedded server under <home>/pg
        self.dsn = ensure_embedded_server(self.home)
        self.server = start_embedded_server_object(embedded_pgdata(self.home))
        migrate(self.dsn)

    def stop(self) -> None:
        ep = _embedded_postgres()
        ep._commands.pg_ctl(
            ["-m", "fast", "-w", "stop"], pgdata=self.server.pgdata, user=self.server.system_user
        )

    def start(self) -> None:
        self.server.ensure_postgres_running()

    def close(self) -> None:
        ep = _embedded_postgres()
        try:
            ep._commands.pg_ctl(
                ["-m", "immediate", "-w", "stop"],
                pgdata=self.server.pgdata,
                user=self.server.system_user,
            )
        except Exception:
            pass
        ep.PostgresServer._instances.pop(self.server.pgdata, None)
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="module")
def dedicated_server() -> Iterator[_DedicatedServer]:
    srv = _DedicatedServer()
    try:
        yield srv
    finally:
        srv.close()


def test_embedded_server_is_reused_and_dsn_precedence(
    dedicated_server: _DedicatedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    import subprocess
    import sys

    from adapters.postgres.embedded import resolve_dsn

    pid = dedicated_server.server.get_pid()
    env = {k: v for k, v in os.environ.items() if k != "TRADEBOT_DSN"}
    env["TRADEBOT_HOME"] = str(dedicated_server.home)
    proc = subprocess.run(
        [sys.executable, "-m", "tradebot", "db", "dsn"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == dedicated_server.dsn  # another process found the running one
    assert (embedded_pgdata(dedicated_server.home) / "postmaster.pid").read_text().split()[
        0
    ] == str(pid)
    monkeypatch.setenv("TRADEBOT_DSN", "postgresql://env-wins/x")
    assert resolve_dsn("", home=dedicated_server.home) == "postgresql://env-wins/x"
    assert resolve_dsn("postgresql://config-wins/x") == "postgresql://config-wins/x"


@pytest.mark.parametrize("writer_process", [False, True], ids=["thread", "process"])
async def test_server_stopped_and_restarted_spools_then_replays_exactly_once(
    dedicated_server: _DedicatedServer, tmp_path: Path, writer_process: bool
) -> None:
    with psycopg.connect(dedicated_server.dsn, autocommit=True) as conn:
        conn.execute("TRUNCATE events")  # the module's server: start from an empty journal
    phases: list[str] = []
    # tasks pause at event 100 (5,000 committed) while the server stops, and at event 300
    # until it is back: events 100-299 are emitted during the outage, 300-399 after it
    gates = {100: trio.Event(), 300: trio.Event()}

    async def outage() -> None:
        await _wait_until(lambda: journal.stats.committed >= 5000)
        await trio.to_thread.run_sync(dedicated_server.stop)
        phases.append("stopped")
        gates[100].set()
        await _wait_until(lambda: journal.stats.spooled >= 3000)
        # durable emits return while the DB is down (fsynced to the spool)
        with trio.fail_after(10):
            await journal.emit_durable(_stop_moved(1))
        assert not journal.is_up
        await trio.to_thread.run_sync(dedicated_server.start)
        phases.append("started")
        gates[300].set()

    with trio.fail_after(90):
        async with open_postgres_journal(
            dedicated_server.dsn,
            spool_dir=tmp_path,
            retry_interval_s=0.05,
            max_retry_interval_s=0.2,
            writer_process=writer_process,
        ) as journal:
            emitted = await _produce(
                journal, 50, 400, durable_every=100, during=outage, gates=gates
            )
            await _wait_until(lambda: not (journal.stats.replayed == 0 or not journal.is_up))
            await journal.flush()
    assert phases == ["stopped", "started"]
    assert journal.stats.spooled >= 3000 and journal.stats.replayed >= 3000
    with psycopg.connect(dedicated_server.dsn) as conn:
        stored = [
            r[0]
            for r in conn.execute(
                "SELECT event_id FROM events WHERE type = %s", (EventType.TRAILING_UPDATE.value,)
            )
        ]
    assert len(stored) == 20000 == len(set(stored))
    assert set(stored) == set(emitted)
    _assert_emission_order_per_task(dedicated_server.dsn)
    counts = _count_by_type(dedicated_server.dsn)
    assert counts.get(EventType.DB_UNAVAILABLE.value, 0) >= 1
    assert counts.get(EventType.DB_RECOVERED.value, 0) >= 1
    assert counts.get(EventType.SPOOL_REPLAYED.value, 0) >= 1
    assert counts.get(EventType.STOP_MOVED.value) == 1
    assert (tmp_path / SPOOL_FILE_NAME).stat().st_size == 0


async def test_database_down_at_open_then_spool_replayed_by_next_journal(
    fresh_db_dsn: str, tmp_path: Path
) -> None:
    bad_dsn = "postgresql://postgres@127.0.0.1:1/nowhere?connect_timeout=2"
    events = [
        Event.of(OrderSubmitted(venue_order_id=str(i)), T0 + timedelta(seconds=i))
        for i in range(100)
    ]
    with trio.fail_after(30):
        async with open_postgres_journal(
            bad_dsn, spool_dir=tmp_path, retry_interval_s=60
        ) as journal:
            assert not journal.is_up
            for ev in events[:-1]:
                journal.emit(ev)
            await journal.emit_durable(events[-1])  # returns: fsynced to the spool
            journal.emit(Event.of(_snapshot(Decimal("7.5")), T0, position_id="pS"))
            journal.emit(Event.of(_wave_done("wS"), T0))
        assert journal.stats.spooled >= 102
        # a restart while the database is still down: the reader finds them in the spool
        async with open_postgres_journal(
            bad_dsn, spool_dir=tmp_path, retry_interval_s=60
        ) as j_down:
            assert await j_down.latest_snapshot("pS") == encode(_snapshot(Decimal("7.5")))
            assert await j_down.is_wave_processed("wS")
            with pytest.raises(JournalError):
                await j_down.latest_snapshot("unknown")  # neither spool nor database can say
        lines = (tmp_path / SPOOL_FILE_NAME).read_text().splitlines()
        assert len(lines) >= 102
        # the "crashed" process left a torn line behind
        with (tmp_path / SPOOL_FILE_NAME).open("a") as f:
            f.write('{"event_id": "torn')
        async with open_postgres_journal(fresh_db_dsn, spool_dir=tmp_path) as journal2:
            assert journal2.stats.replayed == len(lines)
        # replaying again (e.g. crash before truncate) changes nothing
        (tmp_path / SPOOL_FILE_NAME).write_text("\n".join(lines) + "\n")
        async with open_postgres_journal(fresh_db_dsn, spool_dir=tmp_path) as journal3:
            assert journal3.stats.duplicates >= len(lines) - 1
    stored = _ids(fresh_db_dsn)
    assert len(stored) == len(set(stored))
    assert {e.event_id for e in events} <= set(stored)
    assert (tmp_path / "journal-rejects.jsonl").read_text().startswith('{"event_id": "torn')


async def test_durable_wait_false_never_advances_virtual_time(
    fresh_db_dsn: str, tmp_path: Path, mock_clock: trio.testing.MockClock
) -> None:
    mock_clock.autojump_threshold = 0
    # No trio deadline around the open/close: under autojump any deadline fires at once
    # while a task waits on a worker thread (pytest-timeout guards this test in real time).
    async with open_postgres_journal(
        fresh_db_dsn, spool_dir=tmp_path, durable_wait=False
    ) as journal:
        with trio.fail_after(1):  # virtual: nothing below may wait at all
            t = trio.current_time()
            for i in range(100):
                await journal.emit_durable(_stop_moved(i))
                journal.emit(Event.of(_snapshot(Decimal(i)), T0, position_id="p1"))
                journal.emit(Event.of(_wave_done(f"w{i}"), T0))
                assert await journal.latest_snapshot("p1") == encode(_snapshot(Decimal(i)))
                assert await journal.is_wave_processed(f"w{i}")
                assert not await journal.is_wave_processed("never")
                assert await journal.latest_snapshot("nobody") is None
            assert trio.current_time() == t  # no task waited on the database
    assert _count_by_type(fresh_db_dsn)[EventType.STOP_MOVED.value] == 100


async def test_reader_after_restart_serves_from_database(fresh_db_dsn: str, tmp_path: Path) -> None:
    with trio.fail_after(30):
        async with open_postgres_journal(fresh_db_dsn, spool_dir=tmp_path) as journal:
            for i in range(3):
                journal.emit(
                    Event.of(
                        _snapshot(Decimal("100.5") + i),
                        T0 + timedelta(seconds=i),
                        position_id="pA",
                    )
                )
            journal.emit(Event.of(_wave_done("2026-11-21T06:00Z"), T0))
        async with open_postgres_journal(fresh_db_dsn, spool_dir=tmp_path) as journal2:
            assert await journal2.latest_snapshot("pA") == encode(_snapshot(Decimal("102.5")))
            assert await journal2.is_wave_processed("2026-11-21T06:00Z")
            assert not await journal2.is_wave_processed("2026-11-21T06:15Z")
            assert await journal2.latest_snapshot("pB") is None


async def test_hostile_values_are_stored_never_raise(fresh_db_dsn: str, tmp_path: Path) -> None:
    """Garbage data is stored (sanitized), counted as off its contract, never raised."""

    class Weird:
        def __repr__(self) -> str:
            return "<weird>"

    hostile = [
        {"nul": "a\x00b", "key\x00": 1},
        {"surrogate": "\ud800"},
        {"nan": float("nan"), "inf": float("inf"), "obj": Weird(), "exc": ValueError("boom")},
        {"bytes": b"\x00\xff", "set": {1}},
        {"huge_int": 10**5000},  # json.dumps refuses ints this long
    ]
    with trio.fail_after(30):
        async with open_postgres_journal(
            fresh_db_dsn, spool_dir=tmp_path, strict_schema=False
        ) as journal:
            for data in hostile:
                journal.emit(Event(EventType.SIGNAL_REJECTED, T0, data, symbol="X\x00Y"))
            journal.emit(Event(EventType.BOT_STARTED, datetime(2026, 1, 1), {}))  # naive ts
    assert journal.stats.unstorable == 0
    assert journal.stats.schema_errors == 6
    assert journal.stats.schema_error_types == {"signal.rejected": 5, "bot.started": 1}
    with psycopg.connect(fresh_db_dsn) as conn:
        rows = conn.execute(
            "SELECT data, symbol FROM events WHERE type = 'signal.rejected'"
        ).fetchall()
        flagged = conn.execute(
            "SELECT data->>'event_type', severity::text FROM events WHERE type = 'db.schema_error'"
        ).fetchall()
        naive = conn.execute("SELECT ts FROM events WHERE type = 'bot.started'").fetchone()
    assert sorted(flagged) == [("bot.started", "error"), ("signal.rejected", "error")]
    assert len(rows) == 5
    assert any("_unencodable" in r[0] for r in rows)
    assert {r[1] for r in rows} == {"X\ufffdY"}
    assert any(r[0].get("nul") == "a\ufffdb" for r in rows)
    assert any(r[0].get("obj") == "<weird>" and r[0].get("nan") == "nan" for r in rows)
    assert naive == (datetime(2026, 1, 1, tzinfo=UTC),)


async def test_projections_fill_relational_tables(fresh_db_dsn: str, tmp_path: Path) -> None:
    pid, cid_e, cid_s = "abc123", "tb-abc123-E0", "tb-abc123-S0"
    wid = wave_id_for(T0)
    D = Decimal
    LONG = PositionSide.LONG

    def signal(cls: Any, sid: str, symbol: str, **kw: Any) -> Any:
        return cls(
            signal_id=sid,
            symbol=symbol,
            venue="bybit",
            action="BUY",
            wave_id=wid,
            wave_ts=T0,
            **kw,
        )

    def at(p: Any, ts: datetime = T0, **kw: Any) -> Event:
        return Event.of(p, ts, **kw)

    def fill(
        trade_id: str, qty: str, price: str, fee: str, side: Side, cid: str, **kw: Any
    ) -> Event:
        return at(
            FillRecorded(
                trade_id=trade_id,
                qty=D(qty),
                price=D(price),
                fee_usdt=D(fee),
                side=side,
                position_side=LONG,
            ),
            position_id=pid,
            client_order_id=cid,
            **kw,
        )

    later = T0 + timedelta(hours=1)
    events = [
        at(WaveStarted(wave_id=wid, wave_ts=T0, received=3)),
        at(
            signal(
                SignalTaken,
                "s1",
                "BTCUSDT",
                score_week=D("72.5"),
                score_month=D("65.1"),
                decision="taken",
                reason="",
            ),
            position_id=pid,
        ),
        at(signal(SignalFiltered, "s2", "DOGEUSDT", decision="filtered", reason="stoplist")),
        at(SignalRejected(reason="malformed: no symbol")),
        at(
            EntryIntent(
                position_side=LONG,
                qty=D("0.010"),
                reference_price=D("100000"),
                intended_stop=D("98000.0"),
                venue="bybit",
                signal_id="s1",
                wave_ts=T0,
            ),
            position_id=pid,
            symbol="BTCUSDT",
            client_order_id=cid_e,
        ),
        at(EntrySubmitted(qty=D("0.010")), position_id=pid, client_order_id=cid_e),
        at(
            EntryAcked(status=OrderStatus.NEW, venue_order_id="V1"),
            position_id=pid,
            client_order_id=cid_e,
        ),
        fill("t1", "0.004", "100000.1", "0.22", Side.BUY, cid_e),
        fill("t2", "0.006", "100000.2", "0.33", Side.BUY, cid_e),
        fill("t2", "0.006", "100000.2", "0", Side.BUY, cid_e),  # venue re-sent it
        at(
            EntryFilled(
                filled_qty=D("0.010"), requested_qty=D("0.010"), avg_fill_price=D("100000.16")
            ),
            position_id=pid,
        ),
        at(
            StopIntent(stop_price=D("98000.0"), reason="initial", attempt=1),
            position_id=pid,
            client_order_id=cid_s,
        ),
        at(
            StopPlaced(stop_price=D("98000.0"), venue_algo_id="A9"),
            position_id=pid,
            client_order_id=cid_s,
        ),
        at(
            PositionActivated(entry_price=D("100000.16"), qty=D("0.010"), stop_price=D("98000.0")),
            position_id=pid,
        ),
        at(
            TakeProfitPlaced(
                level=0,
                price=D("101500.0"),
                qty=D("0.005"),
                profit_pct=D("1.5"),
                fraction=D("0.5"),
            ),
            position_id=pid,
            client_order_id="tb-abc123-T0",
        ),
        at(TakeProfitFilled(level=0, qty=D("0.005")), position_id=pid),
        at(StopMoved(stop_price=D("100000.2")), position_id=pid, client_order_id=cid_s),
        at(StopTriggered(stop_price=D("100000.2")), later, position_id=pid, client_order_id=cid_s),
        fill("t9", "0.005", "100000.1", "0", Side.SELL, "tb-abc123-C0"),  # no order row: created
        at(PositionClosed(reason="stop_triggered"), later, position_id=pid),
        at(WaveCompleted(wave_id=wid, wave_ts=T0, received=3, taken=1, filtered=1)),
        at(AlertRaised(message="db down", key="db"), severity=Severity.CRITICAL),
        # tolerant: each of these is stored, its projection skipped and counted
        Event(EventType.ENTRY_INTENT, T0, {"position_side": "LONG"}, position_id="p2", symbol="E"),
        at(
            OrderIntent(role=OrderRole.ENTRY, qty=D("1")),
            position_id="ghost",
            client_order_id="tb-ghost-E0",
            symbol="ETHUSDT",
        ),
        Event(EventType.POSITION_CLOSED, T0, {"reason": "x", "entry_price": 1.5}, position_id=pid),
        Event(EventType.WAVE_COMPLETED, T0, {"no_wave_id": True}),
    ]
    with trio.fail_after(30):
        async with open_postgres_journal(
            fresh_db_dsn, spool_dir=tmp_path, strict_schema=False
        ) as journal:
            for ev in events:
                journal.emit(ev)
    assert journal.stats.schema_errors == 3  # the three raw events above
    assert journal.stats.committed == len(events) + 3  # + one EVENT_SCHEMA_ERROR per type
    assert journal.stats.projection_skipped == 4, journal.stats.projection_skip_reasons
    reasons = " | ".join(journal.stats.projection_skip_reasons)
    assert "required field missing @ data.qty" in reasons
    assert "expected a decimal string, got float @ data.entry_price" in reasons
    assert "required field missing @ data.wave_id" in reasons
    assert "no positions row" in reasons
    with psycopg.connect(fresh_db_dsn) as conn:
        pos = conn.execute(
            """SELECT status::text, qty, entry_price, intended_stop_price, stop_price, exit_price,
                      realized_pnl_usdt, fees_usdt, close_reason, wave_id, venue
               FROM positions WHERE position_id = %s""",
            (pid,),
        ).fetchone()
        assert pos == (
            "CLOSED",
            Decimal("0.010"),
            Decimal("100000.16"),
            Decimal("98000.0"),
            Decimal("100000.2"),
            Decimal("100000.1"),
            Decimal("-0.0003"),  # exit-side fills against the entry price, before fees
            Decimal("0.55"),
            "stop_triggered",
            wid,
            "bybit",
        )
        orders = {
            r[0]: r[1:]
            for r in conn.execute(
                """SELECT client_order_id, role::text, side::text, status::text, filled_qty,
                      avg_fill_price, venue_order_id, venue_algo_id, trigger_price
               FROM orders"""
            )
        }
        assert orders[cid_e] == (
            "ENTRY",
            "BUY",
            "FILLED",
            Decimal("0.010"),
            Decimal("100000.16"),
            "V1",
            None,
            None,
        )
        assert orders[cid_s] == (
            "STOP",
            "SELL",
            "TRIGGERED",
            Decimal("0"),
            None,
            None,
            "A9",
            Decimal("100000.2"),
        )
        assert orders["tb-abc123-C0"][:3] == ("CLOSE", "SELL", "FILLED")
        assert conn.execute("SELECT count(*) FROM fills").fetchone() == (3,)
        signals = conn.execute(
            "SELECT decision::text, symbol, score_week, reason FROM signals"
        ).fetchall()
        assert sorted(signals, key=str) == sorted(
            [
                ("taken", "BTCUSDT", Decimal("72.5"), ""),
                ("filtered", "DOGEUSDT", None, "stoplist"),
                ("rejected", None, None, "malformed: no symbol"),
            ],
            key=str,
        )
        wave = conn.execute(
            "SELECT wave_ts, signals_received, signals_taken, completed_at IS NOT NULL "
            "FROM waves WHERE wave_id = %s",
            (wid,),
        ).fetchone()
        assert wave == (datetime(2026, 11, 21, 6, tzinfo=UTC), 3, 1, True)
        assert conn.execute("SELECT status::text, fraction FROM tp_levels").fetchall() == [
            ("FILLED", Decimal("0.5"))
        ]
        assert conn.execute("SELECT severity::text, alert_key FROM alerts").fetchall() == [
            ("critical", "db")
        ]
        assert conn.execute("SELECT count(*) FROM positions").fetchone() == (1,)
    # replaying the same events projects nothing twice
    spool = tmp_path / SPOOL_FILE_NAME
    from adapters.postgres.journal import _Item

    lines = []
    for i, ev in enumerate(events):
        item = journal._encode(ev)
        item.seq = i
        lines.append(item.spool_line())
    spool.write_text("".join(lines))
    async with open_postgres_journal(fresh_db_dsn, spool_dir=tmp_path) as journal2:
        assert journal2.stats.duplicates == len(events)
    assert _Item.from_spool_line(lines[0]).type == EventType.WAVE_STARTED.value
    with psycopg.connect(fresh_db_dsn) as conn:
        assert conn.execute("SELECT count(*) FROM fills").fetchone() == (3,)
        assert conn.execute("SELECT count(*) FROM signals").fetchone() == (3,)
        assert conn.execute("SELECT fees_usdt FROM positions").fetchone() == (Decimal("0.55"),)


async def test_cancelled_caller_still_drains(fresh_db_dsn: str, tmp_path: Path) -> None:
    with trio.fail_after(30):
        with trio.move_on_after(0.2):
            async with open_postgres_journal(fresh_db_dsn, spool_dir=tmp_path) as journal:
                for i in range(5000):
                    journal.emit(Event.of(StreamGapped(stream="public", reason=f"gap {i}"), T0))
                await trio.sleep_forever()
    assert len(_ids(fresh_db_dsn)) == 5000


async def test_read_helpers(fresh_db_dsn: str, tmp_path: Path) -> None:
    from adapters.postgres.queries import event_counts, events_for_position, recent_events

    pid = "feed01"
    with trio.fail_after(30):
        async with open_postgres_journal(fresh_db_dsn, spool_dir=tmp_path) as journal:
            journal.emit(
                Event.of(
                    EntryIntent(
                        position_side=PositionSide.SHORT,
                        qty=Decimal("2"),
                        reference_price=Decimal("1"),
                        intended_stop=Decimal("1.05"),
                    ),
                    T0,
                    position_id=pid,
                    symbol="XRPUSDT",
                )
            )
            journal.emit(
                Event.of(
                    OrderSubmitted(), T0 + timedelta(seconds=1), client_order_id=f"tb-{pid}-E0"
                )
            )
            journal.emit(
                Event.of(
                    StopMoved(stop_price=Decimal("1.04")),
                    T0 + timedelta(seconds=2),
                    position_id=pid,
                )
            )
            journal.emit(Event.of(StopMoved(stop_price=Decimal("9")), T0, position_id="other"))
    life = events_for_position(fresh_db_dsn, pid)
    assert [e.type for e in life] == ["entry.intent", "order.submitted", "stop.moved"]
    assert life[0].to_event() is not None and life[0].to_event().data["qty"] == "2"  # type: ignore[union-attr]
    assert event_counts(fresh_db_dsn) == {"entry.intent": 1, "order.submitted": 1, "stop.moved": 2}
    last = recent_events(fresh_db_dsn, limit=2, types=[EventType.STOP_MOVED])
    assert [e.position_id for e in last] == ["other", pid]
    from adapters.postgres.queries import open_positions

    assert [p["position_side"] for p in open_positions(fresh_db_dsn)] == ["SHORT"]


async def test_schema_missing_spools_until_migrated(empty_db_dsn: str, tmp_path: Path) -> None:
    with trio.fail_after(60):
        async with open_postgres_journal(
            empty_db_dsn, spool_dir=tmp_path, retry_interval_s=0.05, max_retry_interval_s=0.1
        ) as journal:
            assert not journal.is_up
            ids = []
            for i in range(50):
                ev = Event.of(ReconcileStarted(trigger=f"startup {i}"), T0)
                ids.append(ev.event_id)
                await journal.emit_durable(ev)  # durable in the spool
            assert journal.stats.spooled >= 50
            await trio.to_thread.run_sync(migrate, empty_db_dsn)
            await _wait_until(lambda: journal.is_up and journal.stats.replayed >= 50, 0.01)
            await journal.flush()
    assert set(ids) <= set(_ids(empty_db_dsn))
    assert _count_by_type(empty_db_dsn)[EventType.SPOOL_REPLAYED.value] == 1


async def test_unwritable_spool_holds_events_until_it_works_again(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    bad_dsn = "postgresql://postgres@127.0.0.1:1/nowhere?connect_timeout=2"
    with trio.fail_after(60):
        async with open_postgres_journal(
            bad_dsn, spool_dir=spool, retry_interval_s=0.05, max_retry_interval_s=0.1
        ) as journal:
            await journal.flush()  # DB_UNAVAILABLE is in the spool
            await trio.to_thread.run_sync(shutil.rmtree, spool)
            spool.write_text("not a directory")  # every append now fails
            ev = Event.of(_fill("t1"), T0)
            with trio.move_on_after(0.5) as waited:
                await journal.emit_durable(ev)
            assert waited.cancelled_caught  # not durable: never reported as such
            spool.unlink()
            spool.mkdir()
            await journal.emit_durable(Event.of(_fill("t2"), T0))
    lines = (spool / SPOOL_FILE_NAME).read_text().splitlines()
    assert [json.loads(x)["data"].get("trade_id") for x in lines].count("t1") == 1
    assert journal.stats.lost == 0


async def test_open_journal_from_config(fresh_db_dsn: str, tmp_path: Path) -> None:
    from adapters.postgres.journal import open_journal_from_config
    from tradebot.config import parse_config

    cfg = parse_config(
        f'[database]\ndsn = "{fresh_db_dsn}"\n[journal]\nspool_dir = "{tmp_path / "sp"}"\n'
        '[bot]\naccount = "acct7"\n',
        environ={},
    )
    with trio.fail_after(30):
        async with open_journal_from_config(cfg) as journal:
            assert journal.is_up and journal.spool_dir == tmp_path / "sp"
            assert journal.application_name == "tradebot-journal:acct7"
            await journal.emit_durable(Event.of(ConfigLoaded(account="acct7"), T0))
    assert _count_by_type(fresh_db_dsn) == {EventType.CONFIG_LOADED.value: 1}


@given(st.decimals(allow_nan=False, allow_infinity=False))
def test_encoding_keeps_every_decimal_exact(d: Decimal) -> None:
    from adapters.postgres.journal import _encode_data

    text, j = _encode_data({"x": d, "nested": [{"y": d}]})
    assert json.loads(text) == j
    assert j["x"] == str(d) and Decimal(j["x"]) == d
    assert Decimal(j["nested"][0]["y"]) == d


async def test_random_decimals_survive_the_database_exactly(
    fresh_db_dsn: str, tmp_path: Path
) -> None:
    import random

    rng = random.Random(7)
    values = [
        Decimal(rng.randint(-(10**20), 10**20)).scaleb(-rng.randint(0, 18)) for _ in range(2000)
    ]
    values += [
        Decimal("0E-8"),
        Decimal("-0"),
        Decimal("1E+30"),
        Decimal("1.000000000000000000000001"),
    ]
    events = [Event.of(Funding(amount_usdt=v), T0) for v in values]
    with trio.fail_after(30):
        async with open_postgres_journal(fresh_db_dsn, spool_dir=tmp_path) as journal:
            for ev in events:
                journal.emit(ev)
    with psycopg.connect(fresh_db_dsn) as conn:
        stored = {
            r[0]: r[1] for r in conn.execute("SELECT event_id, data->>'amount_usdt' FROM events")
        }
        # numeric arithmetic in SQL on the stored strings is exact too
        (total,) = conn.execute(
            "SELECT sum((data->>'amount_usdt')::numeric) FROM events"
        ).fetchone()  # type: ignore[misc]
    for ev, v in zip(events, values, strict=True):
        assert stored[ev.event_id] == str(v)
    import decimal

    with decimal.localcontext(decimal.Context(prec=200)):
        assert total == sum(values)  # exact (Python's default 28 digits would round)


async def test_hanging_database_host_never_delays_durable_spooling(tmp_path: Path) -> None:
    import socket

    # A "black hole": the TCP handshake completes (listen backlog) but the server never
    # answers, like a partitioned network; every connect attempt hangs until its timeout.
    hole = socket.socket()
    hole.bind(("127.0.0.1", 0))
    hole.listen(64)
    port = hole.getsockname()[1]
    try:
        with trio.fail_after(60):
            async with open_postgres_journal(
                f"postgresql://postgres@127.0.0.1:{port}/x",
                spool_dir=tmp_path,
                retry_interval_s=0.01,
                max_retry_interval_s=0.01,
                connect_timeout_s=2,
            ) as journal:
                assert not journal.is_up
                for i in range(20):  # the prober is stuck in a 2 s connect the whole time
                    with trio.fail_after(1):
                        await journal.emit_durable(_stop_moved(i))
                assert journal.stats.spooled >= 20
    finally:
        hole.close()
