"""The embedded PostgreSQL is the bot's own child (issue 17 item 5).

* The server is killed (SIGKILL, postmaster and backends) mid-stream: the journal spools,
  restarts the server (journaled ``db.server_restart``), replays the spool and carries on;
  every event is stored exactly once.
* The server cannot come back (its cluster is broken): the restart attempts are bounded
  and journaled, the events stay in the spool (with a ``.meta.json`` naming the database),
  and ``tradebot db replay-spool`` loads them later, exactly once.
"""

from __future__ import annotations

import json
import shutil
import signal
import tempfile
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import psutil
import psycopg
import pytest
import trio

from adapters.postgres.embedded import (
    _embedded_postgres,
    embedded_pgdata,
    ensure_embedded_server,
    restart_embedded_server,
)
from adapters.postgres.journal import (
    SPOOL_FILE_NAME,
    SPOOL_META_NAME,
    open_postgres_journal,
    read_spool_meta,
)
from adapters.postgres.migrations import migrate
from tradebot.cli import main
from tradebot.events import Event, EventType, TrailingUpdated

T0 = datetime(2026, 11, 21, 6, 0, tzinfo=UTC)


class _OwnServer:
    """A private embedded server under its own home (the bot's path: no DSN configured)."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="tradebot-test-pg-outage-"))
        self.root.chmod(0o755)
        self.home = self.root / "home"
        self.dsn = ensure_embedded_server(self.home, database="tradebot_outage")
        migrate(self.dsn)
        self.pgdata = embedded_pgdata(self.home).resolve()

    def kill(self) -> None:
        """SIGKILL the postmaster and every backend (a crash, not a shutdown)."""
        pid = int((self.pgdata / "postmaster.pid").read_text().split()[0])
        master = psutil.Process(pid)
        procs = [master, *master.children(recursive=True)]
        for p in procs:
            try:
                p.send_signal(signal.SIGKILL)
            except psutil.NoSuchProcess:
                pass
        psutil.wait_procs(procs, timeout=30)

    def break_cluster(self) -> None:
        (self.pgdata / "PG_VERSION").rename(self.pgdata / "PG_VERSION.hidden")

    def repair_cluster(self) -> None:
        (self.pgdata / "PG_VERSION.hidden").rename(self.pgdata / "PG_VERSION")

    def close(self) -> None:
        ep = _embedded_postgres()
        server = ep.PostgresServer._instances.pop(self.pgdata, None)
        try:
            ep._commands.pg_ctl(
                ["-m", "immediate", "-w", "stop"],
                pgdata=self.pgdata,
                user=getattr(server, "system_user", None) or "embedded_postgres",
            )
        except Exception:
            pass
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture
def own_server() -> Iterator[_OwnServer]:
    srv = _OwnServer()
    try:
        yield srv
    finally:
        srv.close()


def _stored(dsn: str) -> dict[str, int]:
    with psycopg.connect(dsn) as conn:
        return {t: n for t, n in conn.execute("SELECT type, count(*) FROM events GROUP BY type")}


def _ids(dsn: str, etype: EventType) -> list[uuid.UUID]:
    with psycopg.connect(dsn) as conn:
        return [
            r[0]
            for r in conn.execute("SELECT event_id FROM events WHERE type = %s", (etype.value,))
        ]


async def _produce(journal: Any, n: int, gate_at: int, gate: trio.Event) -> list[uuid.UUID]:
    ids = []
    for i in range(n):
        if i == gate_at:
            await gate.wait()
        ev = Event.of(
            TrailingUpdated(
                mark_price=Decimal("100.55"), stop_price=Decimal("100.05"), update_count=i
            ),
            T0 + timedelta(microseconds=i),
        )
        ids.append(ev.event_id)
        journal.emit(ev)
        if i % 50 == 0:
            await trio.sleep(0.001)
    return ids


async def _until(predicate: Any) -> None:
    while not predicate():  # noqa: ASYNC110 - polling the journal's plain counters
        await trio.sleep(0.01)


async def test_killed_embedded_server_is_restarted_and_nothing_is_lost(
    own_server: _OwnServer, tmp_path: Path
) -> None:
    gate = trio.Event()

    async def crash() -> None:
        await _until(lambda: journal.stats.committed >= 1000)
        await trio.to_thread.run_sync(own_server.kill)
        gate.set()  # the rest of the stream is emitted while the server is dead

    with trio.fail_after(120):
        async with open_postgres_journal(
            own_server.dsn,
            spool_dir=tmp_path,
            retry_interval_s=0.05,
            max_retry_interval_s=0.2,
            server_restarter=lambda: restart_embedded_server(own_server.home),
        ) as journal:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(crash)
                emitted = await _produce(journal, 4000, 1500, gate)
            await _until(lambda: journal.is_up and journal.stats.replayed > 0)
            await journal.flush()
    assert journal.stats.server_restarts >= 1 and journal.stats.spooled > 0
    stored = _ids(own_server.dsn, EventType.TRAILING_UPDATE)
    assert len(stored) == 4000 == len(set(stored)) and set(stored) == set(emitted)
    counts = _stored(own_server.dsn)
    assert counts[EventType.DB_UNAVAILABLE.value] >= 1
    assert counts[EventType.DB_SERVER_RESTART.value] >= 1
    assert counts[EventType.SPOOL_REPLAYED.value] >= 1
    with psycopg.connect(own_server.dsn) as conn:
        oks = [
            r[0]
            for r in conn.execute(
                "SELECT data->>'ok' FROM events WHERE type = %s", ("db.server_restart",)
            )
        ]
    assert "true" in oks
    assert (tmp_path / SPOOL_FILE_NAME).stat().st_size == 0
    assert not (tmp_path / SPOOL_META_NAME).exists()


async def test_server_that_cannot_come_back_keeps_the_spool_for_replay_spool(
    own_server: _OwnServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    gate = trio.Event()

    async def crash_for_good() -> None:
        await _until(lambda: journal.stats.committed >= 1000)
        own_server.break_cluster()  # first: no restart can win a race against it
        await trio.to_thread.run_sync(own_server.kill)
        gate.set()

    with trio.fail_after(120):
        async with open_postgres_journal(
            own_server.dsn,
            spool_dir=tmp_path,
            retry_interval_s=0.05,
            max_retry_interval_s=0.1,
            server_restarter=lambda: restart_embedded_server(own_server.home),
            max_server_restarts=2,
        ) as journal:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(crash_for_good)
                emitted = await _produce(journal, 3000, 1500, gate)
            await _until(lambda: journal.stats.server_restarts >= 2)
            await trio.sleep(0.3)  # more failed probes: no third restart attempt
    assert journal.stats.server_restarts == 2  # bounded
    spool = tmp_path / SPOOL_FILE_NAME
    lines = [json.loads(x) for x in spool.read_text().splitlines()]
    restarts = [x for x in lines if x["type"] == EventType.DB_SERVER_RESTART.value]
    assert [r["data"]["attempt"] for r in restarts] == [1, 2]
    assert [r["data"]["ok"] for r in restarts] == [False, False]
    assert restarts[-1]["data"]["gave_up"] is True
    assert "PG_VERSION missing" in restarts[0]["data"]["error"]
    assert read_spool_meta(spool)["database"] == "tradebot_outage"
    assert "password" not in read_spool_meta(spool)["dsn"]

    own_server.repair_cluster()
    restart_embedded_server(own_server.home)
    wrong = own_server.dsn.replace("tradebot_outage", "postgres")
    assert main(["db", "replay-spool", "--spool", str(spool), "--dsn", wrong]) == 2
    assert "belongs to database 'tradebot_outage'" in capsys.readouterr().err
    assert main(["db", "replay-spool", "--spool", str(spool), "--dsn", own_server.dsn]) == 0
    assert f"replayed {len(lines)} events" in capsys.readouterr().out
    stored = _ids(own_server.dsn, EventType.TRAILING_UPDATE)
    assert len(stored) == 3000 == len(set(stored)) and set(stored) == set(emitted)
    assert spool.stat().st_size == 0 and not (tmp_path / SPOOL_META_NAME).exists()
    # again: nothing to do, nothing duplicated
    assert main(["db", "replay-spool", "--spool", str(spool), "--dsn", own_server.dsn]) == 0
    assert "nothing to replay" in capsys.readouterr().out
