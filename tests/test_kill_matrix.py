"""Crash recovery: ``tradebot run`` SIGKILLed at five points of a position's life, then
started again (docs/ARCHITECTURE.md §7; issue 11 item 4).

The bot is a real subprocess; the venue is the in-process sandbox over loopback (Bybit for
the cases with attached stops, Binance — no attached stops — for the stop placement); the
journal is the embedded PostgreSQL. Each kill point is made exact with a sandbox fault
that holds one request: the test waits until the venue has the request, then kills the
bot while it waits for the reply.

=====  ====================================  ============================================
case   killed                                the venue held
=====  ====================================  ============================================
a      after the entry intent is durable     the entry request, never processed
b      after the entry is sent, before its   the entry's reply (the entry and its
       reply                                 attached stop are on the venue)
c      after the fill, before the stop is    the stop placement's reply (Binance: the
       confirmed                             algo stop is on the venue)
d      during a trailing move                the trading-stop reply (the move is applied)
e      during an aged-exit replacement       the new exit order's reply (the old one is
                                             cancelled, the new one rests)
=====  ====================================  ============================================

After the restart (the Reconciler's start-up pass, before any signal) every case must
show: 0 positions without a stop, 0 duplicate entries (at most one entry order per
position on the venue), 0 orphan orders (every open order of ours belongs to a live
position, at most one exit order per position), every stop no looser than before the
kill, and the trailing high-water mark kept.
"""

from __future__ import annotations

import re
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import trio
from _run_support import (
    GRACE_S,
    KEY,
    PY,
    SECRET,
    D,
    _bot,
    _config,
    _env,
    _rows,
    _sandbox,
    _signal_server,
    _wave_file,
    _wave_offset,
    until,
)

from adapters.binance_sandbox import BinanceSandbox, open_binance_sandbox, sandbox_engine
from tradebot.domain import OrderRole, PositionSide
from tradebot.ids import parse_client_order_id

LONG = PositionSide.LONG
HOLD_S = 120.0  # longer than any wait of the test: the reply never comes before the kill
DEAD_SIGNALS = "ws://127.0.0.1:9/signals"  # restarted bots take no new wave
assert PY


def _entries_on_venue(engine: Any, symbol: str) -> list[str]:
    """Client ids of the entry orders the venue processed for ``symbol``."""
    out = []
    for o in engine.orders(symbol):
        p = parse_client_order_id(o.client_order_id)
        if p is not None and p[1] is OrderRole.ENTRY:
            out.append(o.client_order_id)
    return out


def _check_invariants(engine: Any, symbol: str, dsn: str) -> dict[str, Any]:
    """The five promises after a restart; returns what it saw (for the table)."""
    positions = [p for p in engine.positions() if p.qty > 0]
    unprotected = [p for p in positions if not engine.stops_for(p.symbol, p.position_side)]
    assert unprotected == [], f"positions without a stop: {unprotected}"
    entries = _entries_on_venue(engine, symbol)
    by_position: dict[str, int] = {}
    for cid in entries:
        pid = cid.split("-")[1]
        by_position[pid] = by_position.get(pid, 0) + 1
    assert all(n == 1 for n in by_position.values()), f"duplicate entries: {entries}"
    live = {
        r[0]
        for r in _rows(
            dsn,
            "SELECT position_id FROM positions WHERE status IN ('OPENING','ACTIVE','CLOSING','FAILED')",
        )
    }
    exits: dict[str, int] = {}
    for o in engine.open_orders(symbol):
        p = parse_client_order_id(o.client_order_id)
        if p is None:
            continue
        assert p[0] in live, f"orphan order {o.client_order_id} (no live position)"
        if p[1] in (OrderRole.AGED_EXIT, OrderRole.CLOSE):
            exits[p[0]] = exits.get(p[0], 0) + 1
    assert all(n == 1 for n in exits.values()), f"more than one exit order: {exits}"
    stops = {
        p.position_side: [s.trigger_price for s in engine.stops_for(p.symbol, p.position_side)]
        for p in positions
    }
    return {"positions": len(positions), "entries": len(entries), "stops": stops}


async def _wait_started(dsn: str, runs: int, bot: trio.Process, log: Path) -> None:
    """Until the ``runs``-th start-up reached its signals step (reconciliation done)."""
    await until(
        lambda: (
            bot.returncode is not None
            or _rows(
                dsn,
                "SELECT count(*) FROM events WHERE type = 'bot.startup_step' "
                "AND data->>'step' = 'signals'",
            )[0][0]
            >= runs
        ),
        timeout_s=90,
    )
    assert bot.returncode is None, log.read_text()  # noqa: ASYNC240 (a local log file)


async def _kill(bot: trio.Process) -> None:
    bot.send_signal(signal.SIGKILL)
    with trio.fail_after(10):
        await bot.wait()


async def _sigterm(bot: trio.Process, log: Path) -> None:
    bot.send_signal(signal.SIGTERM)
    with trio.fail_after(GRACE_S + 30):
        code = await bot.wait()
    assert code == 0, log.read_text()  # noqa: ASYNC240 (a local log file)


def _newest_water_mark(dsn: str) -> Decimal | None:
    rows = _rows(
        dsn,
        "SELECT data->'trailing'->>'water_mark' FROM events WHERE type = 'position.snapshot' "
        "ORDER BY seq DESC LIMIT 1",
    )
    return None if not rows or rows[0][0] is None else Decimal(rows[0][0])


def _env_offset(bot: trio.Process) -> str:
    """The clock shift the test gave ``bot`` (its environment)."""
    return _OFFSETS[bot.pid]


_OFFSETS: dict[int, str] = {}


def _restart_config(cfg: Path) -> Path:
    text = re.sub(r'(?m)^url = ".*"$', f'url = "{DEAD_SIGNALS}"', cfg.read_text(), count=1)
    out = cfg.with_name("restart.toml")
    out.write_text(text)
    return out


@asynccontextmanager
async def _first_run(
    tmp_path: Path, dsn: str, sb: Any, *, extra: str = "", config_fn: Any = None
) -> AsyncIterator[tuple[Path, trio.Process, Path]]:
    wave_ts, offset = _wave_offset()
    symbol = "ETHUSDT"
    _wave_file(tmp_path / "wave.jsonl", wave_ts, [symbol])
    async with _signal_server(tmp_path / "wave.jsonl") as url:
        make = config_fn or _config
        cfg = make(tmp_path / "live.toml", sb, dsn, url, extra=extra)
        log = tmp_path / "bot1.log"
        async with _bot(cfg, log, _env(offset), "--symbols", symbol) as bot:
            _OFFSETS[bot.pid] = f"{offset:.3f}"
            yield cfg, bot, log


@asynccontextmanager
async def _second_run(tmp_path: Path, cfg: Path, dsn: str) -> AsyncIterator[trio.Process]:
    log = tmp_path / "bot2.log"
    async with _bot(_restart_config(cfg), log, _env(), "--symbols", "ETHUSDT") as bot:
        await _wait_started(dsn, 2, bot, log)
        await trio.sleep(1.5)  # let the resumed actor verify once more
        yield bot
        await _sigterm(bot, log)


async def test_a_killed_after_the_entry_intent_is_durable(
    tmp_path: Path, fresh_db_dsn: str
) -> None:
    async with _sandbox() as sb:
        sb.inject("/v5/order/create", drop="before", delay_s=HOLD_S)
        async with _first_run(tmp_path, fresh_db_dsn, sb) as (cfg, bot, log):
            await until(
                lambda: bool(sb.requests_to("/v5/order/create")) or bot.returncode is not None
            )
            assert bot.returncode is None, log.read_text()
            assert (
                _rows(fresh_db_dsn, "SELECT count(*) FROM events WHERE type = 'entry.intent'")[0][0]
                == 1
            )
            await _kill(bot)
        sb.faults.clear()
        async with _second_run(tmp_path, cfg, fresh_db_dsn):
            seen = _check_invariants(sb.engine, "ETHUSDT", fresh_db_dsn)
        assert seen["positions"] == 0 and seen["entries"] == 0
        assert _rows(fresh_db_dsn, "SELECT status::text FROM positions") == [("ROLLED_BACK",)]


async def test_b_killed_after_the_entry_is_sent_before_its_reply(
    tmp_path: Path, fresh_db_dsn: str
) -> None:
    async with _sandbox() as sb:
        sb.inject("/v5/order/create", drop="after", delay_s=HOLD_S)
        async with _first_run(tmp_path, fresh_db_dsn, sb) as (cfg, bot, log):
            await until(lambda: bool(sb.engine.positions()) or bot.returncode is not None)
            assert bot.returncode is None, log.read_text()
            await _kill(bot)
        sb.faults.clear()
        before = [s.trigger_price for s in sb.engine.stops_for("ETHUSDT", LONG)]
        async with _second_run(tmp_path, cfg, fresh_db_dsn):
            seen = _check_invariants(sb.engine, "ETHUSDT", fresh_db_dsn)
            assert seen["positions"] == 1 and seen["entries"] == 1
            assert seen["stops"][LONG] == before  # the attached stop kept, no second one
        assert _rows(fresh_db_dsn, "SELECT status::text FROM positions") == [("ACTIVE",)]


def _binance_config(path: Path, sb: BinanceSandbox, dsn: str, url: str, *, extra: str = "") -> Path:
    path.write_text(
        f"""
[bot]
account = "acct1"
mode = "live"
shutdown_grace_s = {GRACE_S}

[exchange]
venue = "binance"
environment = "testnet"
rest_url = "{sb.rest_url}"
ws_public_url = "{sb.market_ws_url}"
ws_private_url = "{sb.private_ws_url}"

[database]
dsn = "{dsn}"

[journal]
spool_dir = "{path.parent / "spool"}"

[signals]
url = "{url}"

[waves]
delay_min = 0
venues = []

[health]
port = 0
{extra}
""",
        encoding="utf-8",
    )
    return path


async def test_c_killed_after_the_fill_before_the_stop_is_confirmed(
    tmp_path: Path, fresh_db_dsn: str
) -> None:
    engine = sandbox_engine(wallet_usdt=D(10000))
    async with open_binance_sandbox(engine, api_key=KEY, api_secret=SECRET, hedge_mode=True) as sb:
        sb.set_mark("ETHUSDT", D("2500"))
        sb.set_mark("BTCUSDT", D("100000"))
        sb.inject("/fapi/v1/algoOrder", method="POST", delay_s=HOLD_S)
        async with _first_run(tmp_path, fresh_db_dsn, sb, config_fn=_binance_config) as (
            cfg,
            bot,
            log,
        ):
            await until(
                lambda: (
                    bool(sb.requests_to("/fapi/v1/algoOrder", "POST")) or bot.returncode is not None
                )
            )
            assert bot.returncode is None, log.read_text()
            await until(lambda: bool(engine.stops_for("ETHUSDT", LONG)))
            await _kill(bot)
        sb.faults.clear()
        before = [s.trigger_price for s in engine.stops_for("ETHUSDT", LONG)]
        assert len(before) == 1  # placed, never confirmed to the bot
        async with _second_run(tmp_path, cfg, fresh_db_dsn):
            seen = _check_invariants(engine, "ETHUSDT", fresh_db_dsn)
            assert seen["positions"] == 1 and seen["entries"] == 1
            assert seen["stops"][LONG] == before  # adopted, not a second stop
        assert _rows(fresh_db_dsn, "SELECT status::text FROM positions") == [("ACTIVE",)]


async def test_d_killed_during_a_trailing_move(tmp_path: Path, fresh_db_dsn: str) -> None:
    async with _sandbox() as sb:
        async with _first_run(tmp_path, fresh_db_dsn, sb) as (cfg, bot, log):
            await until(
                lambda: bool(sb.engine.stops_for("ETHUSDT", LONG)) or bot.returncode is not None
            )
            assert bot.returncode is None, log.read_text()
            await trio.sleep(1.0)  # the position is ACTIVE and snapshotted
            initial = sb.engine.stops_for("ETHUSDT", LONG)[0].trigger_price
            moves = len(sb.requests_to("/v5/position/trading-stop"))
            sb.inject("/v5/position/trading-stop", drop="after", delay_s=HOLD_S)
            sb.set_mark("ETHUSDT", D("2575"))  # +3 %: trailing activates and moves the stop
            await until(lambda: len(sb.requests_to("/v5/position/trading-stop")) > moves)
            moved = sb.engine.stops_for("ETHUSDT", LONG)[0].trigger_price
            assert moved > initial
            await _kill(bot)
        sb.faults.clear()
        async with _second_run(tmp_path, cfg, fresh_db_dsn):
            seen = _check_invariants(sb.engine, "ETHUSDT", fresh_db_dsn)
            (after,) = seen["stops"][LONG]
            assert after >= moved  # never looser than before the kill
            await until(lambda: _newest_water_mark(fresh_db_dsn) == D("2575"), timeout_s=20)
            # trailing goes on from the kept high-water mark
            sb.set_mark("ETHUSDT", D("2650"))
            await until(
                lambda: sb.engine.stops_for("ETHUSDT", LONG)[0].trigger_price > after,
                timeout_s=20,
            )


AGED = """
[aged]
max_age_h = 0.0008
grace_h = 0.0003

[execution]
age_tick_s = 1.0
"""


async def test_e_killed_during_an_aged_exit_replacement(tmp_path: Path, fresh_db_dsn: str) -> None:
    """The aged exit moves one step per whole hour past its grace period: the first run
    places the breakeven exit; a run one hour later (the bot's clock shifted, loopback
    only) replaces it — and is killed while the venue holds the new order's reply."""

    def aged_orders() -> list[Any]:
        return [
            o
            for o in sb.engine.open_orders("ETHUSDT")
            if (p := parse_client_order_id(o.client_order_id)) and p[1] is OrderRole.AGED_EXIT
        ]

    async with _sandbox() as sb:
        async with _first_run(tmp_path, fresh_db_dsn, sb, extra=AGED) as (cfg, bot, log):
            await until(lambda: bool(aged_orders()) or bot.returncode is not None, timeout_s=60)
            assert bot.returncode is None, log.read_text()
            offset = float(_env_offset(bot))
            await _kill(bot)
        (first,) = aged_orders()
        sb.set_mark("ETHUSDT", D("2470"))  # above the stop (2450), below the next target
        later = _restart_config(cfg)
        log2 = tmp_path / "bot2.log"
        sb.inject("/v5/order/create", drop="after", delay_s=HOLD_S)
        async with _bot(later, log2, _env(offset + 3700), "--symbols", "ETHUSDT") as bot2:
            await until(
                lambda: (
                    (
                        len(aged_orders()) == 1
                        and aged_orders()[0].client_order_id != first.client_order_id
                    )
                    or bot2.returncode is not None
                ),
                timeout_s=90,
            )
            assert bot2.returncode is None, log2.read_text()
            stop_before = sb.engine.stops_for("ETHUSDT", LONG)[0].trigger_price
            await _kill(bot2)
        sb.faults.clear()
        (replacement,) = aged_orders()
        log3 = tmp_path / "bot3.log"
        async with _bot(later, log3, _env(offset + 3700), "--symbols", "ETHUSDT") as bot3:
            await _wait_started(fresh_db_dsn, 3, bot3, log3)
            await trio.sleep(2.5)  # a few aged ticks
            seen = _check_invariants(sb.engine, "ETHUSDT", fresh_db_dsn)
            (after,) = seen["stops"][LONG]
            assert after >= stop_before
            exits = aged_orders()
            assert len(exits) == 1  # the replacement adopted: no second exit left behind
            assert exits[0].price == replacement.price
            await _sigterm(bot3, log3)
