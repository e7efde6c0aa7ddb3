"""``tradebot paper --data DIR``: a user's own kline directory with symbols the bundled
instrument table does not know; instruments from ``instruments.json`` beside the data or
derived from the prices (and the run says which), signals generated from the prices."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from adapters.replay import bundled_data_dir
from tradebot.cli import main


@pytest.mark.slow
def test_paper_on_own_data_dir(
    tmp_path: Path, fresh_db_dsn: str, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "klines"
    data.mkdir()
    # real prices under names the bundled table does not have
    shutil.copy(bundled_data_dir() / "SOLUSDT.csv.gz", data / "FOOUSDT.csv.gz")
    shutil.copy(bundled_data_dir() / "ADAUSDT.csv.gz", data / "BARUSDT.csv.gz")
    (data / "instruments.json").write_text(
        json.dumps(
            [
                {
                    "symbol": "BARUSDT",
                    "tick_size": "0.0001",
                    "qty_step": "1",
                    "min_qty": "1",
                    "min_notional": "5",
                }
            ]
        )
    )
    report = tmp_path / "report.json"
    chart = tmp_path / "equity.png"
    rc = main(
        [
            "paper",
            "--data",
            str(data),
            "--from",
            "2025-05-20T04:00:00Z",
            "--to",
            "2025-05-20T10:00:00Z",
            "--dsn",
            fresh_db_dsn,
            "--no-progress",
            "--report-json",
            str(report),
            "--chart",
            str(chart),
        ]
    )
    out = capsys.readouterr().out
    assert rc == 0, out
    lines = {ln.split()[0]: ln for ln in out.splitlines() if ln.startswith("  ") and "tick" in ln}
    # SOL's median price ~170 → tick 10^(2-5) = 0.001, step 10^floor(log10(5/170)) = 0.01
    assert "tick 0.001 " in lines["FOOUSDT"] and "step 0.01 " in lines["FOOUSDT"]
    assert lines["FOOUSDT"].endswith("(derived)")
    assert lines["BARUSDT"].endswith("(data-dir)")
    assert "signals: generated from the replayed prices" in out
    doc = json.loads(report.read_text())
    assert doc["details"]["instrument_sources"] == {"BARUSDT": "data-dir", "FOOUSDT": "derived"}
    assert doc["positions_opened"] >= 1
    assert doc["invariant_violations"] == 0 and doc["stop_coverage_pct"] == "100.00"
    assert chart.read_bytes()[:4] == b"\x89PNG"


def test_bad_data_dir_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["paper", "--data", str(tmp_path / "missing"), "--no-progress"]) == 2
    assert "not a directory" in capsys.readouterr().err
    (tmp_path / "XUSDT.csv.gz").write_bytes(b"garbage")
    assert main(["paper", "--data", str(tmp_path), "--no-progress"]) == 2
    assert "--data" in capsys.readouterr().err
