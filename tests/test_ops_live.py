"""The operations surface of a live-like account, over real loopback sockets: the real Bybit
adapter trading against the in-process Bybit sandbox, the PostgreSQL journal behind the
journal tap, the HTTP server of ``open_operations`` on a free port.

Shows: ``/health`` 200 → 503 (private stream cut, with that reason) → 200 after the stops
re-verified; ``/metrics`` parses with the Prometheus text parser and carries the series;
the control API refuses a missing (401) or wrong (403) token; ``tradebot close`` as a
subprocess closes exactly that position through its owner (and ``--fraction`` half of
another); ``tradebot pause``/``resume``; the status page rendered by headless Chromium with
the open position in its DOM and a screenshot in the artifacts; none of the test's
secrets in the subprocess output, the journal or the alerts."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import trio
from _bybit_support import D, until
from _ops_support import CONTROL_TOKEN, OpsSession, ops_session, request_for, secrets_in
from prometheus_client.parser import text_string_to_metric_families

from tradebot.domain import PositionSide
from tradebot.events import EventType

LONG, SHORT = PositionSide.LONG, PositionSide.SHORT
TOKEN_ENV = "TB_TEST_CONTROL_TOKEN"
TRADEBOT = str(Path(sys.executable).with_name("tradebot"))

SERIES = {
    "tradebot_open_positions",
    "tradebot_unprotected_seconds",
    "tradebot_stop_distance_pct",
    "tradebot_trailing_activations",
    "tradebot_stop_moves",
    "tradebot_aged_positions",
    "tradebot_actor_restarts",
    "tradebot_stream_reconnects",
    "tradebot_stream_last_message_age_seconds",
    "tradebot_stream_connected",
    "tradebot_rate_limit_headroom",
    "tradebot_journal_backlog_events",
    "tradebot_journal_spool_bytes",
    "tradebot_signals_received",
    "tradebot_signals_rejected",
    "tradebot_waves_processed",
    "tradebot_orders",
    "tradebot_reconcile_findings",
    "tradebot_health_ok",
}


def artifacts_dir(tmp_path: Path) -> Path:
    root = os.environ.get("TRADEBOT_ARTIFACTS")
    d = Path(root) if root else tmp_path / "artifacts"
    d.mkdir(parents=True, exist_ok=True)
    return d


async def _get(url: str, **kw: Any) -> httpx.Response:
    async with httpx.AsyncClient(timeout=20) as c:
        return await c.get(url, **kw)


async def _health_until(url: str, status: int, timeout_s: float = 20.0) -> dict[str, Any]:
    with trio.fail_after(timeout_s):
        while True:
            r = await _get(url + "/health")
            if r.status_code == status:
                doc: dict[str, Any] = r.json()
                return doc
            await trio.sleep(0.1)


async def _cli(
    args: list[str], cfg: Path, env_extra: dict[str, str]
) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, **env_extra}
    return await trio.run_process(
        [TRADEBOT, *args, "--config", str(cfg)],
        capture_stdout=True,
        capture_stderr=True,
        check=False,
        env=env,
    )


def _config(tmp_path: Path, url: str) -> Path:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    cfg = tmp_path / "account.toml"
    cfg.write_text(
        f'[health]\nhost = "{host}"\nport = {port}\ncontrol_token_env = "{TOKEN_ENV}"\n',
        encoding="utf-8",
    )
    return cfg


async def _chromium(url: str, out_dir: Path, tmp_path: Path) -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed (.ci/run installs it)")
        pytest.skip("chromium not installed (apt-get install chromium)")
    base = [
        exe,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
    ]
    with trio.fail_after(120):
        dom = await trio.run_process(
            [*base, "--dump-dom", url], capture_stdout=True, capture_stderr=True
        )
        shot = out_dir / "status-page.png"
        await trio.run_process(
            [*base, "--window-size=420,900", f"--screenshot={shot}", url],
            capture_stdout=True,
            capture_stderr=True,
        )
    assert shot.exists() and shot.stat().st_size > 1000
    return dom.stdout.decode()


async def test_health_metrics_control_cli_and_status_page(
    fresh_db_dsn: str, tmp_path: Path
) -> None:
    outputs: list[str] = []
    with trio.fail_after(240):
        async with ops_session(fresh_db_dsn, tmp_path / "spool") as s:
            await _scenario(s, tmp_path, outputs)
    # secrets: nowhere in what the CLI printed, the journal or the alerts
    for text in outputs:
        assert secrets_in(text) == [], text
    with psycopg.connect(fresh_db_dsn) as conn:
        events = conn.execute("SELECT type, data::text FROM events").fetchall()
        alerts = conn.execute("SELECT message FROM alerts").fetchall()
    assert len(events) > 50
    assert [e for e in events if secrets_in(e[1])] == []
    assert [a for a in alerts if secrets_in(a[0])] == []
    types = {t for t, _ in events}
    assert {"operator.command", "bot.paused", "bot.resumed"} <= types


async def _scenario(s: OpsSession, tmp_path: Path, outputs: list[str]) -> None:
    url = s.ops.url
    assert url.startswith("http://127.0.0.1:")
    sup = s.account.positions
    for req in (
        request_for("BTCUSDT", LONG, "0.010", "100000"),
        request_for("ETHUSDT", SHORT, "0.200", "2500"),
    ):
        outcome = await sup.open_position(req)
        assert outcome.opened, outcome
    doc = await _health_until(url, 200)
    assert doc["status"] == "ok" and doc["reasons"] == []

    # /metrics parses and carries the series
    r = await _get(url + "/metrics")
    assert r.status_code == 200
    families = {f.name: f for f in text_string_to_metric_families(r.text)}
    assert set(families) >= SERIES, SERIES - set(families)
    open_positions = [smp.value for smp in families["tradebot_open_positions"].samples]
    assert open_positions == [2.0]
    dist = {
        (smp.labels["symbol"], smp.labels["side"]): smp.value
        for smp in families["tradebot_stop_distance_pct"].samples
    }
    assert dist[("BTCUSDT", "LONG")] == pytest.approx(2.0, abs=0.01)
    assert dist[("ETHUSDT", "SHORT")] == pytest.approx(2.0, abs=0.01)

    # the control API refuses a missing or a wrong token
    assert (await _get(url + "/control/positions")).status_code == 401
    wrong = await _get(url + "/control/positions", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 403
    ok = await _get(
        url + "/control/positions", headers={"Authorization": f"Bearer {CONTROL_TOKEN}"}
    )
    assert ok.status_code == 200
    assert sorted((p["symbol"], p["side"]) for p in ok.json()) == [
        ("BTCUSDT", "LONG"),
        ("ETHUSDT", "SHORT"),
    ]

    # cut the private stream (the sandbox refuses reconnects meanwhile): 503, that reason
    s.sb.ws_close_on_accept = True
    assert await s.sb.drop_stream_connections("private") == 1
    doc = await _health_until(url, 503)
    assert "disconnected" in doc["checks"]["private_stream"], doc
    assert doc["checks"]["market_stream"] == "ok"
    # reconnects allowed again: the positions re-verify their stops after the gap → 200
    s.sb.ws_close_on_accept = False
    doc = await _health_until(url, 200, timeout_s=30)
    assert doc["checks"]["private_stream"] == "ok"
    await s.tap.flush()
    gap_checks = [
        e
        for e in _journal_types(s, EventType.PROTECTION_VERIFIED)
        if e.get("reason") == "stream_gap"
    ]
    assert len(gap_checks) >= 2  # both positions re-verified after the reconnect

    # status page in headless Chromium: the open positions are in the DOM
    art = artifacts_dir(tmp_path)
    dom = await _chromium(url + "/", art, tmp_path)
    (art / "status-page.html").write_text(dom, encoding="utf-8")
    assert 'id="positions"' in dom
    assert 'data-symbol="BTCUSDT" data-side="LONG"' in dom
    assert 'data-symbol="ETHUSDT" data-side="SHORT"' in dom
    assert "healthy" in dom

    # operator CLI (a real subprocess) against this process
    cfg = _config(tmp_path, url)
    env = {TOKEN_ENV: CONTROL_TOKEN}
    res = await _cli(["positions", "--json"], cfg, env)
    outputs += [res.stdout.decode(), res.stderr.decode()]
    assert res.returncode == 0, res.stderr
    assert len(json.loads(res.stdout)) == 2
    bad = await _cli(["positions"], cfg, {TOKEN_ENV: "wrong-token-xyz"})
    outputs += [bad.stdout.decode(), bad.stderr.decode()]
    assert bad.returncode == 1 and b"403" in bad.stderr

    eth_before = len(s.sb.requests_to("/v5/order/create"))
    res = await _cli(["close", "ETHUSDT", "SHORT"], cfg, env)
    outputs += [res.stdout.decode(), res.stderr.decode()]
    assert res.returncode == 0, res.stderr
    assert b"closed" in res.stdout
    assert s.sb.engine.position("ETHUSDT", SHORT).qty == 0
    assert s.sb.engine.position("BTCUSDT", LONG).qty == D("0.010")  # untouched
    closes = s.sb.requests_to("/v5/order/create")[eth_before:]
    assert len(closes) == 1 and closes[0].params["reduceOnly"] is True
    assert closes[0].params["symbol"] == "ETHUSDT"
    await until(lambda: sup.actor("ETHUSDT", SHORT) is None)

    # a partial close through the owner: half of BTC, the stop stays in place
    res = await _cli(["close", "BTCUSDT", "LONG", "--fraction", "0.5"], cfg, env)
    outputs += [res.stdout.decode(), res.stderr.decode()]
    assert res.returncode == 0, res.stderr
    pos = s.sb.engine.position("BTCUSDT", LONG)
    assert pos.qty == D("0.005") and pos.stop_price == D("98000.0")
    actor = sup.actor("BTCUSDT", LONG)
    assert actor is not None and actor.status().qty == D("0.005")

    # no such position: exit 1 with the reason
    res = await _cli(["close", "SOLUSDT", "LONG"], cfg, env)
    outputs += [res.stdout.decode(), res.stderr.decode()]
    assert res.returncode == 1 and b"no open position" in res.stdout

    # pause / resume: the entry gate flips, journaled
    res = await _cli(["pause", "--reason", "maintenance"], cfg, env)
    assert res.returncode == 0 and s.account.entries.paused
    res = await _cli(["status"], cfg, env)
    outputs += [res.stdout.decode(), res.stderr.decode()]
    assert b"entries: PAUSED" in res.stdout
    res = await _cli(["resume"], cfg, env)
    assert res.returncode == 0 and not s.account.entries.paused
    await s.tap.flush()


def _journal_types(s: OpsSession, etype: EventType) -> list[dict[str, Any]]:
    with psycopg.connect(s.dsn) as conn:
        rows = conn.execute("SELECT data FROM events WHERE type = %s", (etype.value,)).fetchall()
    return [r[0] for r in rows]
