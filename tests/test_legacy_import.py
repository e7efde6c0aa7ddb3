"""``tradebot import legacy`` (issue 14) against a real old-bot database.

The old schema (tests/_legacy_support.py, from ../shared/reference/legacy-bot-schema.md) is
built in a second database of the embedded PostgreSQL with the known defects in its rows;
the command runs in-process (its parser, the read-only reader, the planner, the store),
against a migrated tradebot database. A dry run writes nothing; the first run imports and
its report's every number is checked against the source; the second run imports nothing
and says so. Bad input ends in one line and an exit code (the real console entry point, as
a subprocess).
"""

from __future__ import annotations

import json
import struct
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal as D
from typing import Any

import psycopg
import pytest
from _legacy_support import POSITIONS, seed_legacy, source_float_count

from actors.position import Lifecycle
from actors.position._state import PositionRecord, load_snapshot
from adapters.postgres.legacy_source import open_readonly
from adapters.postgres.legacy_store import is_legacy_origin, legacy_origin_ids
from tradebot.cli import main
from tradebot.domain import PositionSide
from tradebot.legacy import (
    CLOSED_BEFORE_IMPORT,
    close_reason_when_flat,
    legacy_position_id,
    nearest_step,
    normalise_symbol,
    to_aware_utc,
    to_decimal_exact,
)
from tradebot.policies import TrailingPhase

PT = "monitoring.positions"
TABLES = ("positions", "events", "signals", "legacy_import_map", "legacy_import_runs")


def _counts(dsn: str) -> dict[str, int]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        out = {}
        for t in TABLES:
            row = conn.execute(f"SELECT count(*) FROM {t}").fetchone()
            out[t] = int(row[0]) if row else 0
        return out


def _source_digest(dsn: str) -> list[Any]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        return [
            conn.execute(
                f"SELECT md5(coalesce(string_agg(t::text, '|' ORDER BY t.id), '')) FROM {t} t"
            ).fetchone()
            for t in ("monitoring.positions", "fas.signals", "events", "monitoring.risk_events")
        ]


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    rc = main(["import", "legacy", *args])
    out = capsys.readouterr()
    return rc, out.out, out.err


def _json_run(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    rc, out, err = _run(capsys, *args, "--json")
    assert rc == 0, err
    return dict(json.loads(out))


def _dec(v: float | None) -> D:
    return D(0) if v is None else D(repr(v))


def _expected_sums() -> tuple[dict[str, Any], dict[str, Any]]:
    """Sums of the source's realized PnL (index 16) and fees (17), as shortest decimals:
    over every row, and over the rows tradebot can hold (quantity > 0)."""
    every = list(POSITIONS)
    kept = [r for r in POSITIONS if r[5] > 0]

    def s(rows: list[tuple[Any, ...]]) -> dict[str, Any]:
        return {
            "realized_pnl_usdt": str(sum((_dec(r[16]) for r in rows), D(0))),
            "fees_usdt": str(sum((_dec(r[17]) for r in rows), D(0))),
            "positions": len(rows),
        }

    return s(every), s(kept)


def _check_tables(rep: dict[str, Any], *, first: bool) -> None:
    t = rep["tables"]
    imp = (lambda n: n) if first else (lambda n: 0)
    earlier = (lambda n: 0) if first else (lambda n: n)
    pos = t[PT]
    assert (pos["read"], pos["imported"], pos["already_imported"], pos["skipped"]) == (
        6,
        imp(5),
        earlier(5),
        1,
    )
    assert pos["skipped_reasons"] == {"quantity missing or not positive": 1}
    assert pos["missing_columns"] == ["mark_price"]
    assert pos["unknown_columns"] == ["notes"]
    sig = t["fas.signals"]
    assert (sig["read"], sig["imported"], sig["already_imported"], sig["skipped"]) == (
        5,
        imp(4),
        earlier(4),
        1,
    )
    assert sig["skipped_reasons"] == {"created_at is NULL": 1}
    assert sig["missing_columns"] == [] and sig["unknown_columns"] == []
    ev = t["public.events"]
    assert (ev["read"], ev["imported"], ev["already_imported"], ev["skipped"]) == (
        3,
        imp(3),
        earlier(3),
        0,
    )
    risk = t["monitoring.risk_events"]
    assert (risk["read"], risk["imported"], risk["already_imported"], risk["skipped"]) == (
        1,
        imp(1),
        earlier(1),
        0,
    )
    trades = t["monitoring.trades"]
    assert (trades["read"], trades["imported"], trades["skipped"]) == (3, 0, 0)
    assert trades["imported_by_tradebot"] is False
    assert "links positions" in trades["note"]
    alerts = t["monitoring.alerts"]
    assert (alerts["read"], alerts["imported"], alerts["skipped"]) == (2, 0, 2)
    assert alerts["skipped_reasons"] == {
        "no tradebot counterpart (system alerts of the old bot)": 2
    }
    metrics = t["public.performance_metrics"]
    assert (metrics["read"], metrics["imported"], metrics["skipped"]) == (1, 0, 1)
    assert set(t) == {
        PT,
        "fas.signals",
        "public.events",
        "monitoring.risk_events",
        "monitoring.trades",
        "monitoring.alerts",
        "public.performance_metrics",
    }


def _check_money_and_opens(rep: dict[str, Any], src: str, *, first: bool = True) -> None:
    m = rep["money"]
    if not first:  # the money section covers what the run imports: nothing
        assert m == {
            "floats_converted": 0, "moved_by_tick_or_step": {}, "moved_total": 0,
            "prices_unknown": [], "naive_timestamps": 0, "symbols_normalised": 0,
        }  # fmt: skip
    else:
        _check_money(m, src)
    every, kept = _expected_sums()
    assert every == {"realized_pnl_usdt": "-4.0379", "fees_usdt": "1.21000000000000004", "positions": 6}  # fmt: skip
    assert rep["sums"] == {
        "source_all_rows": every,
        "source_rows_in_tradebot": kept,
        "tradebot": kept,
        "equal": True,
    }
    opens = {o["source_id"]: o for o in rep["open_positions"]}
    assert set(opens) == {"5", "6"}


def _check_money(m: dict[str, Any], src: str) -> None:
    # FLOATs of the imported rows (position 4 and signal 5 are skipped)
    assert m["floats_converted"] == source_float_count(src, {PT: (4,), "fas.signals": (5,)})
    assert m["floats_converted"] == 8 + 6 + 5 + 7 + 6 + 4 + 3  # per row, by hand
    # 0.30000000000000004 → 0.3000 (XRP tick), 150.123 → 150.12 (SOL tick),
    # 0.30000000000000004 → 0.30 (SOL step)
    assert m["moved_by_tick_or_step"] == {f"{PT}.entry_price": 2, f"{PT}.quantity": 1}
    assert m["moved_total"] == 3
    assert m["prices_unknown"] == [{"table": PT, "id": "2", "column": "exit_price", "value": "0.0"}]
    # positions 1,2,3: opened+closed; 5,6: opened+last_update; signals 1-4; the risk event
    assert m["naive_timestamps"] == 2 * 5 + 4 + 1
    # positions 1 and 5, signal 1, event 1 are ccxt-style
    assert m["symbols_normalised"] == 4


def test_dry_run_then_import_then_nothing_twice(
    make_db_dsn: Callable[..., str], capsys: pytest.CaptureFixture[str]
) -> None:
    src = make_db_dsn(False)
    seed_legacy(src)
    dst = make_db_dsn(True)
    digest = _source_digest(src)
    args = ("--from-dsn", src, "--dsn", dst)

    # -- dry run: the whole report, nothing written
    dry = _json_run(capsys, *args, "--dry-run")
    assert dry["dry_run"] is True
    assert dry["summary"] == "would import 13 rows"
    assert (dry["imported_total"], dry["already_imported_total"]) == (13, 0)
    _check_tables(dry, first=True)
    _check_money_and_opens(dry, src)
    assert _counts(dst) == dict.fromkeys(TABLES, 0)
    assert "password" not in dry["source"]

    # -- the import
    first = _json_run(capsys, *args)
    assert first["dry_run"] is False and first["summary"] == "imported 13 rows"
    _check_tables(first, first=True)
    _check_money_and_opens(first, src)
    assert first["open_positions"] == dry["open_positions"]
    eth = next(o for o in first["open_positions"] if o["source_id"] == "5")
    assert (eth["symbol"], eth["side"], eth["qty"], eth["entry_price"], eth["stop_price"]) == (
        "ETHUSDT",
        "LONG",
        "0.100",
        "2500.00",
        "2587.00",
    )
    assert (eth["trailing_phase"], eth["water_mark"]) == ("ACTIVE", "2600.00")
    assert (eth["legacy_trailing_activation_price"], eth["legacy_trailing_callback_pct"]) == (
        "2537.50",
        "0.5",
    )
    sol = next(o for o in first["open_positions"] if o["source_id"] == "6")
    assert (sol["trailing_phase"], sol["water_mark"], sol["side"]) == ("INACTIVE", None, "SHORT")
    assert CLOSED_BEFORE_IMPORT in sol["description"]
    # events: 4 signal records + 3 events + 1 risk event + 5 position records + 2 snapshots
    # + 1 import_completed
    assert _counts(dst) == {
        "positions": 5,
        "events": 4 + 3 + 1 + 5 + 2 + 1,
        "signals": 4,
        "legacy_import_map": 13,
        "legacy_import_runs": 1,
    }
    _check_imported_rows(dst)

    # -- the second run: nothing twice, and it says so
    again = _json_run(capsys, *args)
    assert again["summary"] == (
        "nothing to import: all 13 importable rows were imported by an earlier run"
    )
    assert (again["imported_total"], again["already_imported_total"]) == (0, 13)
    _check_tables(again, first=False)
    _check_money_and_opens(again, src, first=False)
    assert all(o["adoption"] == "already imported" for o in again["open_positions"])
    rc, text, _ = _run(capsys, *args)
    assert rc == 0 and "nothing to import: all 13 importable rows" in text
    assert "equal" in text and "NOT EQUAL" not in text
    assert _counts(dst)["events"] == 16 and _counts(dst)["legacy_import_runs"] == 1
    assert _source_digest(src) == digest  # the old database was only read


def _check_imported_rows(dst: str) -> None:
    with psycopg.connect(dst, autocommit=True) as conn:
        rows = {
            r[0]: r[1:]
            for r in conn.execute(
                """SELECT position_id, symbol, position_side::text, status::text, qty,
                          entry_price, exit_price, stop_price, realized_pnl_usdt, fees_usdt,
                          opened_at, closed_at, close_reason, origin, signal_id, venue
                   FROM positions"""
            ).fetchall()
        }
        pid = {i: legacy_position_id(PT, str(i)) for i in (1, 2, 3, 5, 6)}
        assert set(rows) == set(pid.values())
        utc = UTC
        assert rows[pid[1]] == (
            "BTCUSDT", "LONG", "CLOSED", D("0.010"), D("65000.1"), D("65650.0"), D("64000.0"),
            D("6.499"), D("0.75"), datetime(2025, 5, 1, 10, tzinfo=utc),
            datetime(2025, 5, 1, 14, tzinfo=utc), "trailing_stop", "legacy", "legacy:1", "bybit",
        )  # fmt: skip
        assert rows[pid[2]] == (
            "XRPUSDT", "SHORT", "CLOSED", D("1000.0"), D("0.3000"), None, D("0.3060"),
            D("-2.5"), D("0.30000000000000004"), datetime(2025, 5, 2, 8, tzinfo=utc),
            datetime(2025, 5, 2, 19, 30, tzinfo=utc), "aged_exit", "legacy", "legacy:2",
            "binance",
        )  # fmt: skip
        assert rows[pid[3]][2:6] == ("CLOSED", D("0.30"), D("150.12"), D("120.00"))
        assert rows[pid[3]][11] == "liquidated" and rows[pid[3]][13] is None
        assert rows[pid[5]][:8] == (
            "ETHUSDT", "LONG", "ACTIVE", D("0.100"), D("2500.00"), None, D("2587.00"), None,
        )  # fmt: skip
        assert rows[pid[5]][10:12] == (None, None) and rows[pid[5]][12] == "legacy"
        assert rows[pid[6]][:4] == ("SOLUSDT", "SHORT", "ACTIVE", D("2.00"))
        decisions = dict(conn.execute("SELECT signal_id, decision::text FROM signals").fetchall())
        assert decisions == {
            "legacy:1": "taken",
            "legacy:2": "taken",
            "legacy:3": "filtered",
            "legacy:4": "unknown",
        }
        by_type = dict(conn.execute("SELECT type, count(*) FROM events GROUP BY type").fetchall())
        assert by_type == {
            "legacy.position_imported": 5,
            "position.snapshot": 2,
            "legacy.signal_imported": 4,
            "legacy.event": 4,
            "legacy.import_completed": 1,
        }
        legacy_events = {
            r[0]["source_id"] + "@" + r[0]["source_table"]: r[1:]
            for r in conn.execute(
                "SELECT data, severity::text, position_id, symbol, ts FROM events "
                "WHERE type = 'legacy.event'"
            ).fetchall()
        }
        assert legacy_events["1@public.events"][:3] == ("info", pid[1], "BTCUSDT")
        assert legacy_events["2@public.events"][:2] == ("error", pid[2])
        assert legacy_events["3@public.events"][:2] == ("info", None)  # position 4 skipped
        assert legacy_events["1@monitoring.risk_events"][:2] == ("error", pid[5])
        (e1,) = conn.execute(
            "SELECT data FROM events WHERE type = 'legacy.event' AND data->>'source_id' = '1' "
            "AND data->>'source_table' = 'public.events'"
        ).fetchone() or (None,)
        assert e1["original_type"] == "position_opened" and e1["original_severity"] == "INFO"
        assert e1["data"] == {"qty": 0.01, "price": 65000.1}  # the JSON as stored
        (src_row,) = conn.execute(
            "SELECT data->'source_row' FROM events WHERE type = 'legacy.position_imported' "
            "AND position_id = %s",
            (pid[2],),
        ).fetchone() or (None,)
        assert src_row["entry_price"] == "0.30000000000000004" and src_row["exit_price"] == "0.0"
        (snap,) = conn.execute(
            "SELECT data FROM events WHERE type = 'position.snapshot' AND position_id = %s",
            (pid[5],),
        ).fetchone() or (None,)
    # the snapshot is read back by the PositionActor's own codec
    rec = PositionRecord.new(pid[5], "ETHUSDT", PositionSide.LONG)
    load_snapshot(rec, snap)
    assert rec.state is Lifecycle.ACTIVE and rec.adopted
    assert (rec.qty, rec.filled_qty, rec.entry_price, rec.stop_price) == (
        D("0.100"), D("0.100"), D("2500.00"), D("2587.00"),
    )  # fmt: skip
    assert rec.trailing.phase is TrailingPhase.ACTIVE
    assert rec.trailing.water_mark == D("2600.00")
    assert rec.opened_at == datetime(2025, 5, 5, 9, tzinfo=UTC)
    assert is_legacy_origin(dst, pid[5]) and not is_legacy_origin(dst, "0" * 16)
    assert legacy_origin_ids(dst) == set(pid.values())


def test_since_and_naive_tz_select_and_shift_rows(
    make_db_dsn: Callable[..., str], capsys: pytest.CaptureFixture[str]
) -> None:
    src = make_db_dsn(False)
    seed_legacy(src)
    dst = make_db_dsn(True)
    rep = _json_run(
        capsys,
        "--from-dsn", src, "--dsn", dst, "--naive-tz", "Europe/Berlin",
        "--since", "2025-05-03T00:00:00", "--dry-run",
    )  # fmt: skip
    # since 2025-05-03 00:00 Berlin: positions 3 (closed 02:00), 4, and the two OPEN ones
    assert rep["since"] == "2025-05-02T22:00:00+00:00" and rep["naive_tz"] == "Europe/Berlin"
    t = rep["tables"]
    assert (t[PT]["read"], t[PT]["imported"]) == (4, 3)
    assert t["fas.signals"]["read"] == 0
    assert t["public.events"]["read"] == 1  # 2025-05-04 (timestamptz compared as such)
    assert t["monitoring.risk_events"]["read"] == 1
    # the run imports position 3 with its naive times read in Berlin (CEST, UTC+2)
    assert _json_run(capsys, "--from-dsn", src, "--dsn", dst, "--naive-tz", "Europe/Berlin",
                     "--since", "2025-05-03T00:00:00")["imported_total"] == 5  # fmt: skip
    with psycopg.connect(dst, autocommit=True) as conn:
        row = conn.execute(
            "SELECT opened_at, closed_at FROM positions WHERE position_id = %s",
            (legacy_position_id(PT, "3"),),
        ).fetchone()
    assert row == (datetime(2025, 5, 2, 23, tzinfo=UTC), datetime(2025, 5, 3, 0, tzinfo=UTC))


def test_missing_tables_and_columns_are_reported_not_a_crash(
    make_db_dsn: Callable[..., str], capsys: pytest.CaptureFixture[str]
) -> None:
    src = make_db_dsn(False)
    with psycopg.connect(src, autocommit=True) as conn:
        conn.execute(
            "CREATE SCHEMA monitoring; CREATE TABLE monitoring.positions (id serial PRIMARY KEY,"
            " symbol text, side text, quantity double precision, extra_col int);"
            "INSERT INTO monitoring.positions (symbol, side, quantity) VALUES ('BTCUSDT', "
            "'long', 0.01), ('ETHUSDT', 'short', 1.5);"
            "CREATE SCHEMA fas; CREATE TABLE fas.signals (id serial PRIMARY KEY, pair_symbol "
            "text, created_at timestamp); INSERT INTO fas.signals (pair_symbol, created_at) "
            "VALUES ('ADA/USDT:USDT', '2025-05-01 00:00:00');"
        )
    dst = make_db_dsn(True)
    rep = _json_run(capsys, "--from-dsn", src, "--dsn", dst)
    pos = rep["tables"][PT]
    assert (pos["read"], pos["imported"], pos["skipped"]) == (2, 0, 2)
    assert pos["skipped_reasons"] == {"required column missing: status": 2}
    assert "status" in pos["missing_columns"] and "entry_price" in pos["missing_columns"]
    assert pos["unknown_columns"] == ["extra_col"]
    for name in ("public.events", "monitoring.risk_events", "monitoring.trades"):
        assert rep["tables"][name]["present"] is False
    sig = rep["tables"]["fas.signals"]
    assert (sig["read"], sig["imported"]) == (1, 1)
    assert sorted(sig["missing_columns"]) == [
        "exchange_name", "is_processed", "recommended_action", "score_month", "score_week",
    ]  # fmt: skip
    assert rep["sums"]["equal"] is True and rep["imported_total"] == 1
    with psycopg.connect(dst, autocommit=True) as conn:
        assert conn.execute("SELECT symbol, decision::text, action FROM signals").fetchall() == [
            ("ADAUSDT", "unknown", None)
        ]


def test_the_source_session_refuses_writes(make_db_dsn: Callable[..., str]) -> None:
    src = make_db_dsn(False)
    seed_legacy(src)
    conn = open_readonly(src)
    try:
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            conn.execute("DELETE FROM monitoring.positions")
    finally:
        conn.close()


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tradebot", "import", "legacy", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_bad_input_is_one_line_and_an_exit_code(make_db_dsn: Callable[..., str]) -> None:
    dst = make_db_dsn(True)
    unreachable = _cli(
        "--from-dsn", "host=127.0.0.1 port=1 dbname=old user=bot password=s3cret "
        "connect_timeout=2", "--dsn", dst,
    )  # fmt: skip
    assert unreachable.returncode == 1
    assert "cannot connect to the legacy database" in unreachable.stderr
    assert "s3cret" not in unreachable.stderr and "Traceback" not in unreachable.stderr
    malformed = _cli("--from-dsn", "this is not a dsn", "--dsn", dst)
    assert malformed.returncode == 2
    assert malformed.stderr.startswith("--from-dsn: not a PostgreSQL DSN")
    assert "Traceback" not in malformed.stderr
    src = make_db_dsn(False)
    bad_since = _cli("--from-dsn", src, "--dsn", dst, "--since", "yesterday")
    assert (bad_since.returncode, bad_since.stderr.strip()) == (
        2,
        "--since: not an ISO-8601 time: 'yesterday'",
    )
    bad_tz = _cli("--from-dsn", src, "--dsn", dst, "--naive-tz", "Mars/Olympus")
    assert bad_tz.returncode == 2 and bad_tz.stderr.startswith("--naive-tz: unknown time zone")
    assert _counts(dst) == dict.fromkeys(TABLES, 0)


# -- conversions ------------------------------------------------------------------------------


def test_float_money_is_the_shortest_round_trip_decimal_then_the_tick() -> None:
    assert to_decimal_exact(0.1 + 0.2) == D("0.30000000000000004")
    assert to_decimal_exact(65000.1) == D("65000.1")
    # a float4 widened by the driver: its own shortest form, not the double's digits
    widened = struct.unpack("<f", struct.pack("<f", 0.3))[0]  # 0.30000001192092896
    assert to_decimal_exact(widened, "real") == D("0.3")
    assert to_decimal_exact(float("nan")) is None and to_decimal_exact(None) is None
    assert to_decimal_exact(D("1.50")) == D("1.50")
    assert nearest_step(D("0.30000000000000004"), D("0.01")) == D("0.30")
    assert str(nearest_step(D("150.125"), D("0.01"))) == "150.12"  # half-even
    assert nearest_step(D("2462.3115"), D("0.01")) == D("2462.31")
    with pytest.raises(ValueError):
        to_decimal_exact("garbage")


def test_symbols_and_times() -> None:
    assert normalise_symbol("BTC/USDT:USDT") == "BTCUSDT"
    assert normalise_symbol("eth/usdt") == "ETHUSDT"
    assert normalise_symbol(" solusdt ") == "SOLUSDT"
    naive = datetime(2025, 5, 1, 10)
    assert to_aware_utc(naive) == (datetime(2025, 5, 1, 10, tzinfo=UTC), True)
    aware = datetime(2025, 5, 1, 12, tzinfo=UTC)
    assert to_aware_utc(aware) == (aware, False)
    assert close_reason_when_flat("legacy", "closed_while_down") == CLOSED_BEFORE_IMPORT
    assert close_reason_when_flat("tradebot", "closed_while_down") == "closed_while_down"


def test_a_dry_run_never_migrates_tradebot_s_database(
    make_db_dsn: Callable[..., str], capsys: pytest.CaptureFixture[str]
) -> None:
    src = make_db_dsn(False)
    seed_legacy(src)
    dst = make_db_dsn(False)  # a database tradebot has never migrated
    rep = _json_run(capsys, "--from-dsn", src, "--dsn", dst, "--dry-run")
    assert rep["imported_total"] == 13 and rep["sums"]["equal"] is True
    assert any("not migrated" in n and "0004_legacy_import" in n for n in rep["notes"])
    with psycopg.connect(dst, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
        ).fetchone()
    assert row == (0,)
