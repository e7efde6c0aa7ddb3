"""Shared helpers for the tests that run ``tradebot run`` as a real subprocess: the
Bybit-shaped sandbox in-process over loopback, ``tradebot signal-server`` as a subprocess,
config files, the environment (keys, the loopback-only clock shift), polling, SQL."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import trio

from adapters.bybit_sandbox import BybitSandbox, open_bybit_sandbox, sandbox_engine
from tradebot.domain import PositionSide

PY = sys.executable
KEY = "live-key-1"
SECRET = "live-secret-1"
D = Decimal
MARKS = {"BTCUSDT": D("100000"), "ETHUSDT": D("2500")}
GRACE_S = 10.0


def _floor15(ts: datetime) -> datetime:
    return ts.replace(minute=ts.minute - ts.minute % 15, second=0, microsecond=0)


def _wave_file(path: Path, wave_ts: datetime, symbols: list[str]) -> None:
    msg = {
        "type": "wave",
        "timestamp": wave_ts.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "signals": [
            {
                "id": f"sig-{s}",
                "symbol": s,
                "exchange": "bybit",
                "action": "BUY",
                "score_week": "80",
                "score_month": "70",
            }
            for s in symbols
        ],
    }
    path.write_text(json.dumps(msg) + "\n", encoding="utf-8")


def _config(
    path: Path,
    sb: BybitSandbox,
    dsn: str,
    signals_url: str,
    *,
    mode: str = "live",
    account: str = "acct1",
    extra: str = "",
) -> Path:
    path.write_text(
        f"""
[bot]
account = "{account}"
mode = "{mode}"
shutdown_grace_s = {GRACE_S}

[exchange]
venue = "bybit"
environment = "testnet"
rest_url = "{sb.rest_url}"
ws_public_url = "{sb.public_ws_url}"
ws_private_url = "{sb.private_ws_url}"

[database]
dsn = "{dsn}"

[journal]
spool_dir = "{path.parent / "spool"}"

[signals]
url = "{signals_url}"

[waves]
delay_min = 0

[health]
port = 0
{extra}
""",
        encoding="utf-8",
    )
    return path


def _env(offset_s: float | None = None, *, keys: bool = True) -> dict[str, str]:
    env = dict(os.environ)
    env["TRADEBOT_STRICT_EVENTS"] = "1"
    env.pop("TRADEBOT_API_KEY", None)
    env.pop("TRADEBOT_API_SECRET", None)
    if keys:
        env["TRADEBOT_API_KEY"] = KEY
        env["TRADEBOT_API_SECRET"] = SECRET
    if offset_s is not None:
        env["TRADEBOT_CLOCK_OFFSET_S"] = f"{offset_s:.3f}"
    return env


async def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[bytes]:
    return await trio.run_process(
        [PY, "-m", "tradebot", *args],
        capture_stdout=True,
        capture_stderr=True,
        check=False,
        env=env,
    )


async def until(pred: Callable[[], object], timeout_s: float = 60.0) -> None:
    with trio.fail_after(timeout_s):
        while not pred():  # noqa: ASYNC110 (polls venue / journal state)
            await trio.sleep(0.1)


def _rows(dsn: str, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn) as conn:
        return list(conn.execute(sql, params).fetchall())


@asynccontextmanager
async def _sandbox() -> AsyncIterator[BybitSandbox]:
    async with open_bybit_sandbox(
        sandbox_engine(wallet_usdt=D(10000)), api_key=KEY, api_secret=SECRET, hedge_mode=True
    ) as sb:
        for symbol, price in MARKS.items():
            sb.set_mark(symbol, price)
        yield sb


@asynccontextmanager
async def _signal_server(wave_file: Path) -> AsyncIterator[str]:
    proc = await trio.lowlevel.open_process(
        [PY, "-m", "tradebot", "signal-server", "--replay", str(wave_file), "--interval", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert proc.stdout is not None
        buf = b""
        with trio.fail_after(30):
            while b"\n" not in buf:
                chunk = await proc.stdout.receive_some(4096)
                assert chunk, "signal-server exited before printing its URL"
                buf += chunk
        yield buf.split(b"\n", 1)[0].decode().strip()
    finally:
        proc.kill()
        await proc.wait()


def _wave_offset() -> tuple[datetime, float]:
    """(wave time T, clock offset) so the bot's 'now' is T - 12 s at start-up."""
    now = datetime.now(UTC)
    wave_ts = _floor15(now) + timedelta(minutes=15)
    return wave_ts, (wave_ts - now).total_seconds() - 12.0


@asynccontextmanager
async def _bot(
    config: Path, log: Path, env: dict[str, str], *extra: str
) -> AsyncIterator[trio.Process]:
    with open(log, "wb") as fh:  # noqa: ASYNC230 (a local log file)
        proc = await trio.lowlevel.open_process(
            [PY, "-m", "tradebot", "run", "--config", str(config), *extra],
            stdout=fh,
            stderr=subprocess.STDOUT,
            env=env,
        )
    try:
        yield proc
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


def _stop_of(sb: BybitSandbox, symbol: str) -> Decimal | None:
    stops = sb.engine.stops_for(symbol, PositionSide.LONG)
    return stops[0].trigger_price if stops else None
