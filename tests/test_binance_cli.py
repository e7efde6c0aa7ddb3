"""``tradebot sandbox --venue binance``, ``tradebot instruments`` and ``tradebot watch``
with ``venue = "binance"``, as a user runs them: separate processes over loopback."""

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


async def test_binance_sandbox_instruments_and_watch_commands(tmp_path: Path) -> None:
    with trio.fail_after(60):
        proc = await trio.lowlevel.open_process(
            [
                PY,
                "-m",
                "tradebot",
                "sandbox",
                "--venue",
                "binance",
                "--json",
                "--step-s",
                "0.05",
                "--duration",
                "40",
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
            assert info["venue"] == "binance"
            assert info["rest_url"].startswith("http://127.0.0.1:")
            assert info["public_ws_url"].startswith("ws://127.0.0.1:")
            assert info["public_ws_url"].endswith("/market")
            assert info["private_ws_url"].endswith("/private")
            assert (info["api_key"], info["api_secret"]) == ("cli-key", "cli-secret")
            rest = info["rest_url"]

            res = await _cli("instruments", "--venue", "binance", "--json", "--rest-url", rest)
            assert res.returncode == 0, res.stderr
            rows = json.loads(res.stdout)
            assert len(rows) == 16
            assert next(r for r in rows if r["symbol"] == "BTCUSDT") == {
                "symbol": "BTCUSDT",
                "tick_size": "0.1",
                "qty_step": "0.001",
                "min_qty": "0.001",
                "min_notional": "100",
                "status": "TRADING",
            }
            res = await _cli(
                "instruments", "--venue", "binance", "--symbol", "NOPEUSDT", "--rest-url", rest
            )
            assert res.returncode == 1 and b"NOPEUSDT" in res.stderr
            # venue and endpoints from config.toml's [exchange]
            cfg = tmp_path / "config.toml"
            cfg.write_text(
                '[exchange]\nvenue = "binance"\nenvironment = "mainnet"\n'
                f'rest_url = "{rest}"\nws_public_url = "{info["public_ws_url"]}"\n'
            )
            res = await _cli("instruments", "--json", "--symbol", "ETHUSDT", "--config", str(cfg))
            assert res.returncode == 0, res.stderr
            assert [r["symbol"] for r in json.loads(res.stdout)] == ["ETHUSDT"]

            res = await _cli(
                "watch",
                "--symbols",
                "BTCUSDT,ETHUSDT",
                "--json",
                "--duration",
                "3",
                "--config",
                str(cfg),
            )
            assert res.returncode == 0, res.stderr
            lines = [json.loads(x) for x in res.stdout.decode().splitlines()]
            assert {tuple(sorted(x)) for x in lines} == {("mark_price", "symbol", "ts")}
            assert {x["symbol"] for x in lines} == {"BTCUSDT", "ETHUSDT"}
            btc = [Decimal(x["mark_price"]) for x in lines if x["symbol"] == "BTCUSDT"]
            assert len(set(btc)) >= 2  # the sandbox plays the data: the mark moves
            res = await _cli(
                "watch",
                "--venue",
                "binance",
                "--symbols",
                "BTCUSDT,FOOUSDT",
                "--duration",
                "1",
                "--rest-url",
                rest,
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


async def test_binance_sandbox_text_output_and_bad_venue(tmp_path: Path) -> None:
    with trio.fail_after(30):
        res = await _cli("sandbox", "--venue", "binance", "--duration", "0.5", "--step-s", "0.05")
        assert res.returncode == 0, res.stderr
        out = res.stdout.decode()
        assert "Binance USD-M futures sandbox" in out and "rest_url" in out
        assert 'venue = "binance"' in out
        cfg = tmp_path / "config.toml"
        cfg.write_text('[exchange]\nvenue = "kraken"\n')
        res = await _cli("instruments", "--config", str(cfg))
        assert res.returncode == 2 and b"exchange.venue" in res.stderr
        res = await _cli("instruments", "--venue", "binance", "--rest-url", "http://127.0.0.1:9")
        assert res.returncode == 1 and b"TransientError" in res.stderr
