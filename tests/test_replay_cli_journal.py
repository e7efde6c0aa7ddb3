"""``tradebot events`` and ``tradebot report`` against a real (embedded) PostgreSQL journal."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from tradebot.cli import main

T0 = datetime(2025, 5, 20, 4, 20, tzinfo=UTC)
PID = "0123456789abcdef"


def insert(
    conn: psycopg.Connection,
    sec: int,
    type_: str,
    data: dict[str, object],
    position_id: str | None = PID,
    cid: str | None = None,
) -> None:
    conn.execute(
        "INSERT INTO events (event_id, ts, type, position_id, client_order_id, symbol, data) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s::jsonb)",
        (
            uuid.uuid4(),
            T0 + timedelta(seconds=sec),
            type_,
            position_id,
            cid,
            "BTCUSDT",
            json.dumps(data),
        ),
    )


@pytest.fixture
def journal(fresh_db_dsn: str) -> str:
    with psycopg.connect(fresh_db_dsn, autocommit=True) as conn:
        insert(
            conn,
            0,
            "signal.taken",
            {"signal_id": "gen-1", "position_id": PID, "score_week": "72.5"},
            position_id=None,
        )
        insert(
            conn, 0, "entry.intent", {"qty": "0.002", "stop_price": "98000.0"}, cid=f"tb-{PID}-E0"
        )
        insert(conn, 0, "entry.filled", {"price": "100000.0", "qty": "0.002"}, cid=f"tb-{PID}-E0")
        insert(conn, 0, "stop.confirmed", {"trigger_price": "98000.0"}, cid=f"tb-{PID}-S0")
        insert(conn, 0, "position.active", {})
        insert(conn, 900, "trailing.activated", {"high_water": "101500.0"})
        insert(conn, 900, "stop.moved", {"from": "98000.0", "to": "100992.5"})
        insert(conn, 1800, "stop.moved", {"from": "100992.5", "to": "101500.0"})
        insert(conn, 2400, "stop.triggered", {"trigger_price": "101500.0"})
        insert(conn, 2400, "position.closed", {"reason": "stop", "pnl_usdt": "2.9"})
        # another position, an event of another position must not leak in
        insert(conn, 50, "position.active", {}, position_id="fedcba9876543210")
        insert(conn, 60, "aged.exit_filled", {}, position_id="fedcba9876543210")
        insert(conn, 60, "position.closed", {"reason": "aged_exit"}, position_id="fedcba9876543210")
    return fresh_db_dsn


def test_events_timeline_text_and_json(journal: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["events", "--dsn", journal, "--position", PID]) == 0
    out = capsys.readouterr().out
    lines = [ln.strip() for ln in out.splitlines() if ln.startswith("  2025")]
    types = [ln.split()[2] for ln in lines]
    assert types == [
        "signal.taken",
        "entry.intent",
        "entry.filled",
        "stop.confirmed",
        "position.active",
        "trailing.activated",
        "stop.moved",
        "stop.moved",
        "stop.triggered",
        "position.closed",
    ]
    assert "to=101500.0" in lines[7] and f"order=tb-{PID}-E0" in lines[1]
    assert "10 events" in out
    assert main(["events", "--dsn", journal, "--position", PID, "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [e["type"] for e in doc["events"]][-1] == "position.closed"
    assert doc["events"][6]["data"] == {"from": "98000.0", "to": "100992.5"}


def test_events_unknown_and_examples(journal: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["events", "--dsn", journal, "--position", "nope"]) == 1
    assert "no journal events" in capsys.readouterr().err
    assert main(["events", "--dsn", journal, "--json"]) == 0
    ex = json.loads(capsys.readouterr().out)
    assert ex["trailed"] == [PID] and ex["aged"] == ["fedcba9876543210"]


def test_report_counts_equal_journal(journal: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", "--dsn", journal, "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["events_journaled"] == 13
    assert doc["positions_closed_by_reason"] == {"aged_exit": 1, "stop": 1}
    assert (
        doc["positions_opened"],
        doc["positions_closed"],
        doc["stop_moves"],
        doc["trailing_activations"],
        doc["aged_exits"],
    ) == (2, 2, 2, 1, 1)
    assert main(["report", "--dsn", journal]) == 0
    assert "stop.moved" in capsys.readouterr().out


def test_unreachable_database_is_one_clear_line(capsys: pytest.CaptureFixture[str]) -> None:
    dsn = "postgresql://nobody@127.0.0.1:1/none?connect_timeout=2"
    assert main(["report", "--dsn", dsn]) == 1
    assert capsys.readouterr().err.startswith("error: OperationalError")
