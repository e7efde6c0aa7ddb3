"""``tradebot paper`` when its embedded PostgreSQL dies (issue 17 item 5).

The fault is injected at a fixed point of the replay (after replay step 200: the server's
postmaster and backends get SIGKILL), so it lands mid-run on any machine speed.

* It comes back (the journal restarts it): the run finishes, the database holds every
  event the run emitted, the report counts a server restart and the trades are the same
  as without the outage.
* It cannot come back (its cluster is broken): the run still ends with a report; the
  report says the database was unreachable, how many events are in the spool and the
  exact ``tradebot db replay-spool`` command; that command loads them, exactly once.
* A stale spool of an earlier paper run is kept aside, never discarded.
"""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
import psycopg
import pytest

from adapters.postgres.embedded import (
    embedded_pgdata,
    ensure_embedded_server,
    restart_embedded_server,
)
from adapters.replay import KlineReplay
from tradebot.cli import main
from tradebot.cli._paper_run import PaperRunOptions, run_paper
from tradebot.report import format_table

START = datetime(2025, 5, 20, 4, 0, tzinfo=UTC)
END = datetime(2025, 5, 20, 16, 0, tzinfo=UTC)
KILL_AT_STEP = 200


def _kill_server(home: Path, *, break_cluster: bool) -> None:
    pgdata = embedded_pgdata(home).resolve()
    if break_cluster:
        (pgdata / "PG_VERSION").rename(pgdata / "PG_VERSION.hidden")
    pid = int((pgdata / "postmaster.pid").read_text().split()[0])
    master = psutil.Process(pid)
    procs = [master, *master.children(recursive=True)]
    for p in procs:
        try:
            p.send_signal(signal.SIGKILL)
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(procs, timeout=30)


def _until_some_events_stored(home: Path) -> None:
    """Mid-run means after the journal's first commit: its writer process may still be
    starting when the replay reaches the kill step (a bound, not a timing claim)."""
    dsn = ensure_embedded_server(home, database="tradebot_paper")
    deadline = time.monotonic() + 60
    with psycopg.connect(dsn, autocommit=True) as conn:
        while time.monotonic() < deadline:
            row = conn.execute("SELECT count(*) FROM events").fetchone()
            if row and row[0]:
                return
            time.sleep(0.01)
    raise AssertionError("the journal stored nothing within 60 s")


@pytest.fixture
def kill_mid_run(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """Arm with ``plan["home"]`` and ``plan["break"]``; the replay's steps kill the server
    once, right after step ``KILL_AT_STEP``."""
    plan: dict[str, Any] = {"home": None, "break": False, "done": False}
    original = KlineReplay.steps

    def steps(self: KlineReplay) -> Iterator[Any]:
        for i, step in enumerate(original(self)):
            yield step
            if i == KILL_AT_STEP and plan["home"] is not None and not plan["done"]:
                plan["done"] = True
                _until_some_events_stored(plan["home"])
                _kill_server(plan["home"], break_cluster=plan["break"])

    monkeypatch.setattr(KlineReplay, "steps", steps)
    yield plan


def _paper_events(home: Path) -> dict[str, int]:
    dsn = ensure_embedded_server(home, database="tradebot_paper")
    with psycopg.connect(dsn) as conn:
        return {t: n for t, n in conn.execute("SELECT type, count(*) FROM events GROUP BY type")}


def _opts(home: Path) -> PaperRunOptions:
    return PaperRunOptions(start=START, end=END, home=home, progress=False)


@pytest.mark.slow
def test_server_killed_mid_run_is_restarted_and_the_run_loses_nothing(
    _private_home: Path, kill_mid_run: dict[str, Any]
) -> None:
    home = _private_home
    clean = run_paper(_opts(home)).report
    kill_mid_run["home"] = home
    result = run_paper(_opts(home))
    r = result.report
    assert kill_mid_run["done"]
    assert r.trades_sha256 == clean.trades_sha256  # the outage changes no trading decision
    assert r.details["incidents"]["db_server_restarts"] >= 1
    assert r.details["incidents"]["db_unavailable"] >= 1
    assert r.details["journal"]["database"] == "reachable"
    assert "events_in_spool" not in r.details["journal"]
    db = _paper_events(home)
    assert r.events_by_type == db
    assert r.events_journaled == sum(db.values()) == r.details["journal_emitted"]
    assert db["db.spool_replayed"] >= 1 and db["bot.stopped"] == 1


@pytest.mark.slow
def test_server_that_cannot_come_back_ends_with_a_report_and_the_replay_command(
    _private_home: Path, kill_mid_run: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    home = _private_home
    kill_mid_run.update(home=home, **{"break": True})
    result = run_paper(_opts(home))
    r = result.report
    j = r.details["journal"]
    assert j["database"] == "unreachable at the end of the run"
    spool = Path(j["spool"])
    assert spool == home / "paper-spool" / "journal-spool.jsonl"
    assert j["events_in_spool"] > 0
    assert j["replay_command"] == f"tradebot db replay-spool --paper --spool {spool}"
    assert r.events_journaled == r.details["journal_emitted"] > j["events_in_spool"]
    assert r.positions_opened > 0  # counts from the journal's own counters
    table = format_table(r)
    assert "unreachable at the end of the run" in table
    assert f"load them into the database later: {j['replay_command']}" in table
    restarts = [
        json.loads(x)
        for x in spool.read_text().splitlines()
        if '"type":"db.server_restart"' in x.replace(" ", "")
    ]
    assert len(restarts) == 3 and all(not x["data"]["ok"] for x in restarts)

    # the operator repairs the cluster and runs the printed command
    pgdata = embedded_pgdata(home).resolve()
    (pgdata / "PG_VERSION.hidden").rename(pgdata / "PG_VERSION")
    restart_embedded_server(home)
    capsys.readouterr()
    assert main(j["replay_command"].split()[1:]) == 0
    assert f"replayed {j['events_in_spool']} events" in capsys.readouterr().out
    db = _paper_events(home)
    assert sum(db.values()) == r.details["journal_emitted"]  # every event, exactly once
    assert db["bot.stopped"] == 1


def test_stale_paper_spool_is_kept_aside_not_discarded(
    _private_home: Path, fresh_db_dsn: str, capsys: pytest.CaptureFixture[str]
) -> None:
    spool_dir = _private_home / "paper-spool"
    spool_dir.mkdir()
    stale = spool_dir / "journal-spool.jsonl"
    lines = [
        json.dumps(
            {
                "event_id": f"00000000-0000-4000-8000-00000000000{i}",
                "ts": "2025-05-20T04:00:00+00:00",
                "type": "stop.moved",
                "severity": "info",
                "position_id": None,
                "client_order_id": None,
                "symbol": None,
                "correlation_id": None,
                "data": {"i": i},
            }
        )
        + "\n"
        for i in range(3)
    ]
    stale.write_text("".join(lines))
    rc = main(
        [
            "paper",
            "--from",
            "2025-05-20T04:00:00Z",
            "--to",
            "2025-05-20T04:30:00Z",
            "--dsn",
            fresh_db_dsn,
            "--no-progress",
        ]
    )
    err = capsys.readouterr().err
    assert rc == 0, err
    (kept,) = (spool_dir / "kept").glob("journal-spool-*-previous-paper-run.jsonl")
    assert kept.read_text() == "".join(lines)  # kept, byte for byte
    assert "kept a stale paper-run journal spool aside (3 events" in err and str(kept) in err
    assert "tradebot db replay-spool --spool" in err
    with psycopg.connect(fresh_db_dsn) as conn:
        row = conn.execute(
            "SELECT data->>'path', (data->>'events')::int FROM events WHERE type = %s",
            ("db.spool_kept_aside",),
        ).fetchone()
        moved = conn.execute(
            "SELECT count(*) FROM events WHERE type = 'stop.moved' AND data ? 'i'"
        ).fetchone()
    assert row == (str(kept), 3)
    assert moved == (0,)  # not replayed into this run's database
