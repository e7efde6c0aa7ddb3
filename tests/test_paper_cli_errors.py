"""``tradebot paper``: one error surface and values checked where they come from (issue 17
items 3 and 4). Every test runs the real CLI entry point (``main``) on real data.

* Bad option values are refused when parsed, naming the option (``--latency-ms nan`` used
  to crash, ``inf`` to hang); ``--from`` after ``--to`` names both; a missing
  ``paper.data_dir`` names that key, not ``--data``.
* A bad row in the middle of a file: exit 2, ``--data: <file>:<line>: <reason>``, never an
  ``ExceptionGroup``; a 99 % one-minute drop is refused with its file and line, or, when
  allowed, the stop that filled at the bottom is a ``stop.gap_fill`` incident.
* A run that fails midway: the user's error (unwrapped from trio's exception groups),
  exit 2 for bad input / 1 for a runtime failure, no traceback unless ``--debug``; the
  journal closes with ``bot.stopped`` and the reason; open positions keep their stops and
  are listed.
* A symbol with no candles in the chosen window is left out with a note.
"""

from __future__ import annotations

import gzip
import json
import shutil
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest

from adapters.replay import KlineReplay, ReplayDataError, bundled_data_dir
from tradebot.cli import main
from tradebot.signalgen import bundled_signals_path

WINDOW = ["--from", "2025-05-20T17:00:00Z", "--to", "2025-05-20T19:00:00Z"]
DROP_MS = 1747764000000  # 2025-05-20T18:00Z: a BTCUSDT long of the bundled signals is open


def _paper(*args: str) -> int:
    return main(["paper", "--no-progress", *args])


def _copy_bundled(dst: Path) -> Path:
    shutil.copytree(bundled_data_dir(), dst, ignore=shutil.ignore_patterns("README.md"))
    return dst


def _read_gz(path: Path) -> str:
    with gzip.open(path, "rt") as fh:
        return fh.read()


def _edit_row(path: Path, t_ms: int, edit: Any) -> int:
    lines = _read_gz(path).split("\n")
    for i, line in enumerate(lines):
        if line.startswith(f"{t_ms},"):
            lines[i] = edit(line.split(","))
            with gzip.open(path, "wt") as fh:
                fh.write("\n".join(lines))
            return i + 1
    raise AssertionError(f"no row {t_ms}")


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--latency-ms", "nan", "argument --latency-ms: must be a finite number, got 'nan'"),
        ("--latency-ms", "inf", "argument --latency-ms: must be a finite number, got 'inf'"),
        ("--latency-ms", "-1", "argument --latency-ms: must be in [0, 60000]"),
        ("--latency-ms", "1e9", "argument --latency-ms: must be in [0, 60000]"),
        ("--wallet", "1e400", "argument --wallet: must be in (0, 1000000000000]"),
        ("--wallet", "NaN", "argument --wallet: must be a finite number"),
        ("--wallet", "0", "argument --wallet: must be in (0,"),
        ("--max-move-pct", "-5", "argument --max-move-pct: must be in (0, 10000]"),
        ("--speed", "nanx", "argument --speed: bad speed"),
        ("--speed", "infx", "argument --speed: bad speed"),
        ("--from", "yesterday", "argument --from: not an ISO-8601 UTC time"),
    ],
)
def test_numeric_option_values_are_checked_at_parse_time(
    option: str, value: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        _paper(option, value)
    assert info.value.code == 2
    assert message in capsys.readouterr().err


def test_window_and_path_errors_name_their_option_or_config_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _paper("--from", "2025-05-21T00:00:00Z", "--to", "2025-05-20T00:00:00Z") == 2
    err = capsys.readouterr().err
    assert err.startswith("--from/--to: --from 2025-05-21T00:00:00+00:00 is not before --to")
    assert "--data" not in err
    cfg = tmp_path / "config.toml"
    cfg.write_text(f'[paper]\ndata_dir = "{tmp_path / "nowhere"}"\n')
    assert _paper("--config", str(cfg)) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"paper.data_dir: {tmp_path / 'nowhere'}: not a directory"), err
    cfg.write_text(f'[paper]\nsignals_file = "{tmp_path / "none.jsonl"}"\n')
    assert _paper("--config", str(cfg), *WINDOW) == 2
    assert capsys.readouterr().err.startswith("paper.signals_file: no such file")
    assert _paper("--data", str(tmp_path / "nowhere")) == 2
    assert capsys.readouterr().err.startswith("--data: ")
    assert _paper("--from", "2030-01-01T00:00:00Z", "--to", "2030-01-02T00:00:00Z") == 2
    assert capsys.readouterr().err.startswith("--from/--to: empty replay window")


@pytest.mark.parametrize(
    ("edit", "reason"),
    [
        (lambda f: ",".join([f[0], "abc", *f[2:]]), "open 'abc' is not a decimal number"),
        (lambda f: ",".join([f[0], f[1], f[2], "0", *f[4:]]), "low price not positive (0)"),
        (lambda f: ",".join([f[0], "NaN", *f[2:]]), "open price not finite (NaN)"),
        (lambda f: ",".join([f[0], f[1], "1e400", *f[3:]]), "high price above"),
        (lambda f: ",".join([str(DROP_MS - 60_000), *f[1:]]), "duplicate minute"),
        (lambda f: ",".join([f[0], f[1], f[3], f[2], *f[4:]]), "inconsistent candle"),
    ],
)
def test_a_bad_row_in_the_middle_is_exit_2_with_file_line_and_reason(
    tmp_path: Path, edit: Any, reason: str, capsys: pytest.CaptureFixture[str]
) -> None:
    data = _copy_bundled(tmp_path / "data")
    line = _edit_row(data / "BTCUSDT.csv.gz", DROP_MS, edit)
    assert _paper("--data", str(data), *WINDOW) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"--data: {data / 'BTCUSDT.csv.gz'}:{line}: "), err
    assert reason in err
    assert "ExceptionGroup" not in err and "Traceback" not in err


def _drop_99(fields: list[str]) -> str:
    low = (Decimal(fields[1]) / 100).quantize(Decimal("0.1"))
    return ",".join([fields[0], fields[1], fields[2], str(low), *fields[4:]])


@pytest.mark.slow
def test_a_99_pct_one_minute_drop_is_refused_or_reported_as_a_gap_fill_incident(
    tmp_path: Path, fresh_db_dsn: str, capsys: pytest.CaptureFixture[str]
) -> None:
    data = _copy_bundled(tmp_path / "data")
    line = _edit_row(data / "BTCUSDT.csv.gz", DROP_MS, _drop_99)
    signals = str(bundled_signals_path())
    assert _paper("--data", str(data), "--signals", signals, *WINDOW) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"--data: {data / 'BTCUSDT.csv.gz'}:{line}: price moves -99.00 %")
    assert "pass --allow-price-jumps" in err
    # allowed: the run goes on; the long's stop fills at the bottom and the report says so
    report = tmp_path / "report.json"
    rc = _paper(
        "--data", str(data), "--signals", signals, *WINDOW, "--allow-price-jumps",
        "--dsn", fresh_db_dsn, "--report-json", str(report),
    )  # fmt: skip
    out = capsys.readouterr().out
    assert rc == 0, out
    doc = json.loads(report.read_text())
    assert doc["details"]["incidents"]["stop_gap_fills"] == 1
    (gap,) = doc["details"]["stop_fills"]["gap_fills"]
    assert gap["symbol"] == "BTCUSDT" and gap["position_side"] == "LONG"
    assert Decimal(gap["fill_price"]) < Decimal(gap["trigger_price"]) / 50
    assert "incidents                   stop gap fills 1" in out
    assert "stop gap fills (filled worse than the trigger by more than 1 %):" in out
    assert main(["report", "--dsn", fresh_db_dsn]) == 0
    out = capsys.readouterr().out
    assert "stop gap fills 1" in out and f"filled {gap['fill_price']}" in out


@pytest.fixture
def fail_mid_run(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """The replay raises ``plan["error"]`` right after step ``plan["at"]`` (a read error
    of the data midway, at a fixed point of the run)."""
    plan: dict[str, Any] = {"at": 300, "error": None}
    original = KlineReplay.steps

    def steps(self: KlineReplay) -> Iterator[Any]:
        for i, step in enumerate(original(self)):
            yield step
            if i == plan["at"] and plan["error"] is not None:
                raise plan["error"]

    monkeypatch.setattr(KlineReplay, "steps", steps)
    yield plan


@pytest.mark.parametrize(
    ("error", "rc", "first_line"),
    [
        (
            ReplayDataError("/data/BTCUSDT.csv.gz:1234: unreadable: CRC check failed"),
            2,
            "--data: /data/BTCUSDT.csv.gz:1234: unreadable: CRC check failed",
        ),
        (OSError(5, "Input/output error"), 1, "error: OSError: [Errno 5] Input/output error"),
    ],
)
def test_a_run_that_fails_midway_reports_the_error_and_leaves_positions_with_stops(
    fail_mid_run: dict[str, Any],
    fresh_db_dsn: str,
    capsys: pytest.CaptureFixture[str],
    error: BaseException,
    rc: int,
    first_line: str,
) -> None:
    fail_mid_run["error"] = error
    assert _paper("--dsn", fresh_db_dsn, *WINDOW) == rc
    err = capsys.readouterr().err
    assert err.splitlines()[0] == first_line, err
    assert "ExceptionGroup" not in err and "Traceback" not in err
    assert "the journal closed with bot.stopped (reason: error)" in err
    assert "position(s) left open, each with its stop on the paper venue:" in err
    listed = [ln for ln in err.splitlines() if ln.startswith("  ") and " stop " in ln]
    assert listed and all("stop NONE" not in ln for ln in listed)
    with psycopg.connect(fresh_db_dsn) as conn:
        stopped = conn.execute(
            "SELECT data->>'reason', data->>'error', (data->>'open_positions')::int "
            "FROM events WHERE type = 'bot.stopped'"
        ).fetchall()
        active = conn.execute("SELECT count(*) FROM positions WHERE status = 'ACTIVE'").fetchone()
    assert len(stopped) == 1 and stopped[0][0] == "error"
    assert type(error).__name__ in stopped[0][1]
    assert stopped[0][2] == len(listed) == active[0]  # left as they are, not flattened


def test_debug_shows_the_traceback(
    fail_mid_run: dict[str, Any], fresh_db_dsn: str, capsys: pytest.CaptureFixture[str]
) -> None:
    fail_mid_run.update(at=10, error=OSError(5, "Input/output error"))
    assert _paper("--dsn", fresh_db_dsn, *WINDOW, "--debug") == 1
    err = capsys.readouterr().err
    assert err.startswith("error: OSError: [Errno 5] Input/output error")
    assert "Traceback" in err


def test_a_symbol_without_candles_in_the_window_is_left_out_with_a_note(
    tmp_path: Path, fresh_db_dsn: str, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    for sym in ("BTCUSDT", "ETHUSDT"):
        shutil.copy(bundled_data_dir() / f"{sym}.csv.gz", data / f"{sym}.csv.gz")
    # DOGEUSDT covers a later period (BTC's prices a month on): no candle in the window
    rows = _read_gz(data / "BTCUSDT.csv.gz").strip().split("\n")
    month = 30 * 86_400_000
    shifted = [rows[0]] + [
        ",".join([str(int(r.split(",")[0]) + month), *r.split(",")[1:]]) for r in rows[1:]
    ]
    with gzip.open(data / "DOGEUSDT.csv.gz", "wt") as fh:
        fh.write("\n".join(shifted) + "\n")
    report = tmp_path / "r.json"
    rc = _paper(
        "--data", str(data), *WINDOW, "--dsn", fresh_db_dsn, "--report-json", str(report)
    )  # fmt: skip
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert "note: DOGEUSDT: no candles in the window (its data covers 2025-06-19" in captured.err
    assert "left out of this run" in captured.err
    doc = json.loads(report.read_text())
    assert doc["details"]["symbols"] == ["BTCUSDT", "ETHUSDT"]
    assert list(doc["details"]["symbols_left_out"]) == ["DOGEUSDT"]
