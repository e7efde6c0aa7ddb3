"""``tradebot run`` as a user runs it: the bot a real subprocess, the Bybit-shaped sandbox
in-process over real loopback sockets (so the test sees its request log and sets marks),
``tradebot signal-server`` a real subprocess, the journal in the embedded PostgreSQL.

The bot's clock is shifted (``TRADEBOT_CLOCK_OFFSET_S``, honoured only for loopback URLs)
so that a wave on the next 15-minute boundary is processed a few seconds after start-up
instead of up to 15 minutes later.
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import trio
from _run_support import (
    GRACE_S,
    MARKS,
    PY,
    D,
    _bot,
    _cli,
    _config,
    _env,
    _rows,
    _sandbox,
    _signal_server,
    _stop_of,
    _wave_file,
    _wave_offset,
    until,
)


async def test_live_session_trails_refuses_a_second_instance_and_stops_on_sigterm(
    tmp_path: Path, fresh_db_dsn: str
) -> None:
    wave_ts, offset = _wave_offset()
    _wave_file(tmp_path / "wave.jsonl", wave_ts, ["BTCUSDT", "ETHUSDT"])
    async with _sandbox() as sb, _signal_server(tmp_path / "wave.jsonl") as url:
        cfg = _config(tmp_path / "live.toml", sb, fresh_db_dsn, url)
        log = tmp_path / "bot.log"
        args = ("--symbols", "BTCUSDT,ETHUSDT")
        async with _bot(cfg, log, _env(offset), *args) as bot:
            # a wave opens both positions, each protected by its stop on the venue
            await until(lambda: len(sb.engine.positions()) == 2 or bot.returncode is not None)
            assert bot.returncode is None, log.read_text()
            await until(lambda: all(_stop_of(sb, s) is not None for s in MARKS))
            entry = {p.symbol: p.entry_price for p in sb.engine.positions()}
            initial = {s: _stop_of(sb, s) for s in MARKS}
            for s in MARKS:
                stop = initial[s]
                assert stop is not None and stop < entry[s]
            # trailing: +3 % activates it (1.5 %) and moves the stop up at once (>= 1 %)
            sb.set_mark("BTCUSDT", D("103000"))
            await until(lambda: (_stop_of(sb, "BTCUSDT") or 0) > entry["BTCUSDT"])
            trailed = _stop_of(sb, "BTCUSDT")
            assert trailed is not None and trailed > (initial["BTCUSDT"] or 0)
            assert any(r.path == "/v5/position/trading-stop" for r in sb.request_log)

            # a second instance for the same account is refused, naming the holder
            before = (len(sb.request_log), [(p.symbol, p.qty) for p in sb.engine.positions()])
            second = await _cli("run", "--config", str(cfg), *args, env=_env(offset))
            assert second.returncode == 1, second.stderr
            text = second.stderr.decode()
            assert "another tradebot run holds account 'acct1'" in text
            assert f"pid {bot.pid}" in text and "refusing" in text
            assert "Traceback" not in text
            assert bot.returncode is None  # the first keeps running undisturbed
            assert [(p.symbol, p.qty) for p in sb.engine.positions()] == before[1]
            # ... and keeps managing: a further move still trails
            sb.set_mark("BTCUSDT", D("106000"))
            await until(lambda: (_stop_of(sb, "BTCUSDT") or 0) > (trailed or 0))

            # the journal has the timeline of a position
            (pid,) = _rows(
                fresh_db_dsn, "SELECT position_id FROM positions WHERE symbol = 'BTCUSDT'"
            )[0]
            shown = await _cli("events", "--config", str(cfg), "--position", pid)
            assert shown.returncode == 0, shown.stderr
            timeline = shown.stdout.decode()
            for kind in ("entry.intent", "entry.filled", "position.active", "trailing."):
                assert kind in timeline, timeline

            # SIGTERM: exit 0 within the grace period, stops stay on the venue
            bot.send_signal(signal.SIGTERM)
            with trio.fail_after(GRACE_S + 30):
                code = await bot.wait()
        out = log.read_text()
        assert code == 0, out
        assert "Traceback" not in out
        assert len(sb.engine.positions()) == 2
        assert all(_stop_of(sb, s) is not None for s in MARKS)
        assert _stop_of(sb, "BTCUSDT") == max(
            s for s in [_stop_of(sb, "BTCUSDT"), trailed] if s is not None
        )
    steps = [
        r[0]
        for r in _rows(
            fresh_db_dsn,
            "SELECT data->>'step' FROM events WHERE type = 'bot.startup_step' ORDER BY ts",
        )
    ]
    assert steps == [
        "config",
        "lock",
        "schema",
        "venue_clock",
        "authentication",
        "instruments",
        "account_setup",
        "reconciliation",
        "signals",
    ]
    stopped = _rows(fresh_db_dsn, "SELECT data->>'reason' FROM events WHERE type = 'bot.stopped'")
    assert stopped == [("signal SIGTERM",)]
    # the signal feed started only after every start-up step
    first_signal = _rows(fresh_db_dsn, "SELECT min(ts) FROM events WHERE type LIKE 'signal.%%'")[0][
        0
    ]
    signals_step = _rows(
        fresh_db_dsn,
        "SELECT ts FROM events WHERE type = 'bot.startup_step' AND data->>'step' = 'signals'",
    )[0][0]
    assert first_signal >= signals_step


async def test_dry_run_trades_on_the_paper_engine_without_a_private_request(
    tmp_path: Path, fresh_db_dsn: str
) -> None:
    wave_ts, offset = _wave_offset()
    _wave_file(tmp_path / "wave.jsonl", wave_ts, ["BTCUSDT"])
    async with _sandbox() as sb, _signal_server(tmp_path / "wave.jsonl") as url:
        cfg = _config(tmp_path / "dry.toml", sb, fresh_db_dsn, url, mode="live")
        log = tmp_path / "dry.log"
        env = _env(offset, keys=False)  # no keys at all
        async with _bot(cfg, log, env, "--dry-run", "--symbols", "BTCUSDT,ETHUSDT") as bot:

            def active() -> bool:
                return bool(
                    _rows(
                        fresh_db_dsn,
                        "SELECT 1 FROM positions WHERE status = 'ACTIVE'",
                    )
                )

            await until(lambda: active() or bot.returncode is not None)
            assert bot.returncode is None, log.read_text()
            # the paper engine follows the venue's live marks: trailing moves the stop
            sb.set_mark("BTCUSDT", D("103000"))

            def trailed() -> bool:
                return bool(
                    _rows(
                        fresh_db_dsn,
                        "SELECT 1 FROM events WHERE type = 'trailing.activated'",
                    )
                )

            await until(trailed)
            bot.send_signal(signal.SIGINT)
            with trio.fail_after(GRACE_S + 30):
                code = await bot.wait()
        assert code == 0, log.read_text()
        assert sb.engine.positions() == []  # nothing reached the venue
        assert sb.signed_attempts == 0
        assert sb.private_connections == 0
        assert all(not r.path.startswith(("/v5/order", "/v5/position")) for r in sb.request_log)
    mode = _rows(fresh_db_dsn, "SELECT data->>'mode' FROM events WHERE type = 'bot.started'")
    assert mode == [("dry-run",)]
    auth = _rows(
        fresh_db_dsn,
        "SELECT data->>'status' FROM events WHERE type = 'bot.startup_step' "
        "AND data->>'step' = 'authentication'",
    )
    assert auth == [("skipped",)]


async def test_bad_keys_are_named(tmp_path: Path, fresh_db_dsn: str) -> None:
    async with _sandbox() as sb:
        cfg = _config(tmp_path / "live.toml", sb, fresh_db_dsn, "ws://127.0.0.1:9/signals")
        env = _env()
        env["TRADEBOT_API_SECRET"] = "not-the-secret"
        res = await _cli("run", "--config", str(cfg), env=env)
    text = res.stderr.decode()
    assert res.returncode == 2, text
    assert "authentication: bybit refused the API key on environment 'testnet'" in text
    assert "wrong, or they belong to another environment" in text
    assert "Traceback" not in text
    failed = _rows(
        fresh_db_dsn,
        "SELECT data->>'step', data->>'status', (data->>'exit_code')::int FROM events "
        "WHERE type = 'bot.startup_step' AND data->>'status' = 'failed'",
    )
    assert failed == [("authentication", "failed", 2)]


async def test_config_failures_exit_2_with_the_key(tmp_path: Path, fresh_db_dsn: str) -> None:
    async with _sandbox() as sb:
        # wrong environment: a testnet URL under environment = "mainnet"
        cfg = _config(tmp_path / "env.toml", sb, fresh_db_dsn, "ws://127.0.0.1:9/signals")
        text = (
            cfg.read_text()
            .replace('environment = "testnet"', 'environment = "mainnet"')
            .replace(sb.rest_url, "https://api-testnet.bybit.com")
        )
        cfg.write_text(text)
        res = await _cli("run", "--config", str(cfg), env=_env())
        err = res.stderr.decode()
        assert res.returncode == 2, err
        assert "exchange.rest_url: wrong environment" in err
        assert "is the bybit testnet URL but exchange.environment is 'mainnet'" in err
        # paper mode is not for `run`
        cfg = _config(
            tmp_path / "paper.toml", sb, fresh_db_dsn, "ws://127.0.0.1:9/signals", mode="paper"
        )
        res = await _cli("run", "--config", str(cfg), env=_env())
        assert res.returncode == 2
        assert 'bot.mode: is "paper"' in res.stderr.decode()
        # live without keys
        cfg = _config(tmp_path / "nokeys.toml", sb, fresh_db_dsn, "ws://127.0.0.1:9/signals")
        res = await _cli("run", "--config", str(cfg), env=_env(keys=False))
        assert res.returncode == 2
        assert "exchange.api_key_env: environment variable TRADEBOT_API_KEY is not set" in (
            res.stderr.decode()
        )
    assert not sb.request_log  # nothing reached the venue


async def test_schema_older_than_the_code_is_refused(tmp_path: Path, empty_db_dsn: str) -> None:
    async with _sandbox() as sb:
        cfg = _config(tmp_path / "live.toml", sb, empty_db_dsn, "ws://127.0.0.1:9/signals")
        res = await _cli("run", "--config", str(cfg), env=_env())
    err = res.stderr.decode()
    assert res.returncode == 1, err
    assert "schema: the database schema (version 0) is older than this code" in err
    assert "tradebot db migrate" in err
    assert not sb.request_log  # refused before the venue is contacted


async def test_two_paper_runs_on_one_journal_and_sigint(tmp_path: Path, fresh_db_dsn: str) -> None:
    """A second ``tradebot paper`` on the same journal (and home) is refused before it
    touches anything (with --reset-db it would have emptied the first run's tables); SIGINT
    ends the first gracefully: exit 0, no traceback, ``bot.stopped``."""
    home = tmp_path / "home"
    env = dict(os.environ, TRADEBOT_HOME=str(home), TRADEBOT_STRICT_EVENTS="1")
    log = tmp_path / "paper.log"
    with open(log, "wb") as fh:  # noqa: ASYNC230 (a local log file)
        first = await trio.lowlevel.open_process(
            [PY, "-m", "tradebot", "paper", "--speed", "20x", "--dsn", fresh_db_dsn],
            stdout=fh,
            stderr=subprocess.STDOUT,
            env=env,
        )
    try:
        await until(lambda: "positions" in log.read_text() or first.returncode is not None, 120)
        assert first.returncode is None, log.read_text()
        events_before = _rows(fresh_db_dsn, "SELECT count(*) FROM events")[0][0]
        second = await _cli("paper", "--no-progress", "--dsn", fresh_db_dsn, "--reset-db", env=env)
        text = second.stderr.decode()
        assert second.returncode == 1, text
        assert "another tradebot paper run is using this --dsn database" in text
        assert f"pid {first.pid}" in text
        assert "Traceback" not in text
        assert first.returncode is None
        assert _rows(fresh_db_dsn, "SELECT count(*) FROM events")[0][0] >= events_before
        first.send_signal(signal.SIGINT)
        with trio.fail_after(120):
            code = await first.wait()
    finally:
        if first.returncode is None:
            first.kill()
            await first.wait()
    out = log.read_text()
    assert code == 0, out
    assert "Traceback" not in out
    assert "stopped by SIGINT" in out
    stopped = _rows(fresh_db_dsn, "SELECT data->>'reason' FROM events WHERE type = 'bot.stopped'")
    assert stopped == [("signal SIGINT",)]
