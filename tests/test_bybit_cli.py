"""``tradebot sandbox``, ``tradebot instruments`` and ``tradebot watch`` as a user runs them:
separate processes talking over loopback."""

from __future__ import annotations

import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import trio

PY = sys.executable


async def _cli(*args: str) -> subprocess.CompletedProcess[bytes]:
    return await trio.run_process(
        [PY, "-m", "tradebot", *args], capture_stdout=True, capture_stderr=True, check=False
    )


async def test_sandbox_instruments_and_watch_commands(tmp_path: Path) -> None:
    with trio.fail_after(45):
        proc = await trio.lowlevel.open_process(
            [
                PY,
                "-m",
                "tradebot",
                "sandbox",
                "--venue",
                "bybit",
                "--json",
                "--step-s",
                "0.05",
                "--duration",
                "30",
                "--api-key",
                "cli-key",
                "--api-secret",
                "cli-secret",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        try:
            assert proc.stdout is not None
            buf = b""
            while b"\n" not in buf:
                chunk = await proc.stdout.receive_some(65536)
                assert chunk, "sandbox exited before printing its endpoints"
                buf += chunk
            info = json.loads(buf.split(b"\n", 1)[0])
            assert info["rest_url"].startswith("http://127.0.0.1:")
            assert info["public_ws_url"].startswith("ws://127.0.0.1:")
            assert (info["api_key"], info["api_secret"]) == ("cli-key", "cli-secret")

            res = await _cli("instruments", "--json", "--rest-url", info["rest_url"])
            assert res.returncode == 0, res.stderr
            rows = json.loads(res.stdout)
            assert len(rows) == 16
            btc = next(r for r in rows if r["symbol"] == "BTCUSDT")
            assert btc == {
                "symbol": "BTCUSDT",
                "tick_size": "0.1",
                "qty_step": "0.001",
                "min_qty": "0.001",
                "min_notional": "100",
                "status": "TRADING",
            }
            res = await _cli("instruments", "--symbol", "ethusdt", "--rest-url", info["rest_url"])
            assert res.returncode == 0 and b"ETHUSDT" in res.stdout and b"0.01" in res.stdout
            res = await _cli("instruments", "--symbol", "NOPEUSDT", "--rest-url", info["rest_url"])
            assert res.returncode == 1 and b"NOPEUSDT" in res.stderr
            # the same through config.toml's [exchange] endpoint keys
            cfg = tmp_path / "config.toml"
            cfg.write_text(
                '[exchange]\nvenue = "bybit"\nenvironment = "mainnet"\n'
                f'rest_url = "{info["rest_url"]}"\nws_public_url = "{info["public_ws_url"]}"\n'
            )
            res = await _cli("instruments", "--json", "--symbol", "BTCUSDT", "--config", str(cfg))
            assert res.returncode == 0, res.stderr
            assert [r["symbol"] for r in json.loads(res.stdout)] == ["BTCUSDT"]

            res = await _cli(
                "watch",
                "--symbols",
                "BTCUSDT,ETHUSDT",
                "--json",
                "--duration",
                "2",
                "--public-ws-url",
                info["public_ws_url"],
                "--rest-url",
                info["rest_url"],
            )
            assert res.returncode == 0, res.stderr
            lines = [json.loads(x) for x in res.stdout.decode().splitlines()]
            assert {tuple(sorted(x)) for x in lines} == {("mark_price", "symbol", "ts")}
            btc_marks = [Decimal(x["mark_price"]) for x in lines if x["symbol"] == "BTCUSDT"]
            assert len(set(btc_marks)) >= 2  # the sandbox plays the data: the mark moves
            assert {x["symbol"] for x in lines} == {"BTCUSDT", "ETHUSDT"}
            res = await _cli(
                "watch",
                "--symbols",
                "BTCUSDT,FOOUSDT",
                "--duration",
                "1",
                "--rest-url",
                info["rest_url"],
                "--public-ws-url",
                info["public_ws_url"],
            )
            assert res.returncode == 1 and b"FOOUSDT" in res.stderr
        finally:
            proc.kill()
            await proc.wait()
            if proc.stdout is not None:
                await proc.stdout.aclose()
            if proc.stderr is not None:
                await proc.stderr.aclose()


async def test_bad_endpoint_and_config(tmp_path: Path) -> None:
    cfg = tmp_path / "config.toml"
    cfg.write_text('[exchange]\nvenue = "kraken"\n')
    with trio.fail_after(20):
        res = await _cli("instruments", "--config", str(cfg))
        assert res.returncode == 2 and b"exchange.venue" in res.stderr
        res = await _cli(
            "instruments", "--environment", "mainnet", "--rest-url", "http://127.0.0.1:9"
        )  # nothing listens on the discard port
        assert res.returncode == 1 and b"TransientError" in res.stderr
        res = await _cli("watch", "--symbols", ",", "--rest-url", "http://127.0.0.1:9")
        assert res.returncode == 2


async def test_sandbox_serves_and_plays_a_given_data_dir(tmp_path: Path) -> None:
    import shutil

    from adapters.replay import bundled_data_dir

    src = bundled_data_dir()
    for name in ("ETHUSDT.csv.gz", "instruments.json"):
        shutil.copy(src / name, tmp_path / name)
    with trio.fail_after(30):
        res = await _cli(
            "sandbox", "--data", str(tmp_path), "--json", "--duration", "1", "--step-s", "0.05"
        )
        assert res.returncode == 0, res.stderr
        info = json.loads(res.stdout.decode().splitlines()[0])
        assert info["symbols"] == ["ETHUSDT"]
        res = await _cli("sandbox", "--data", str(tmp_path / "missing"), "--duration", "1")
        assert res.returncode == 1 and b"instruments.json" in res.stderr
