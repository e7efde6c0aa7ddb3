"""The events the real PositionActor emits (paper venue, both venue profiles) project into
the relational tables without a single skipped projection: the data-key contract of
adapters/postgres/projections.py matches what the actors write.

Scenarios run in virtual time on a MemoryJournal (as the actor tests do); their events are
then written through the PostgreSQL journal."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from decimal import Decimal as D
from pathlib import Path

import psycopg
import pytest
import trio
import trio.testing

from adapters.paper import Fault, FaultPlan
from adapters.postgres.journal import open_postgres_journal
from tests._position_support import paper_world, supervised
from tradebot.domain import Instrument, OrderRole, PositionSide
from tradebot.events import Event, EventType
from tradebot.policies import PositionSettings, TakeProfitSettings, TrailingSettings

LONG, SHORT = PositionSide.LONG, PositionSide.SHORT


def _run_virtual(main: Callable[[], Awaitable[list[Event]]]) -> list[Event]:
    return trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))


def trail_then_stop(profile: str, side: PositionSide) -> list[Event]:
    """Open, trail three times, then the mark gaps through the stop."""
    up = side is LONG
    marks = ["2540", "2560", "2600"] if up else ["2460", "2440", "2400"]

    async def main() -> list[Event]:
        async with paper_world(profile, marks={"ETHUSDT": "2500"}) as w, supervised(w) as (sup, _):
            assert (await sup.open_position(w.request("ETHUSDT", side, "0.100", "2500"))).opened
            for mark in marks:
                await trio.sleep(61)
                w.push("ETHUSDT", mark)
                await trio.sleep(0.5)
            w.push("ETHUSDT", "2000" if up else "3000")
            await trio.sleep(2)
            assert w.qty("ETHUSDT", side) == 0
            return list(w.journal.events)

    return _run_virtual(main)


def take_profits(profile: str) -> list[Event]:
    settings = PositionSettings(
        trailing=TrailingSettings(activation_pct=D("5")),
        take_profit=TakeProfitSettings(levels=[("1", "0.3"), ("2", "0.3")]),
    )

    async def main() -> list[Event]:
        async with (
            paper_world(profile, marks={"ETHUSDT": "2500"}) as w,
            supervised(w, settings) as (sup, _),
        ):
            assert (await sup.open_position(w.request("ETHUSDT", LONG, "1.000", "2500"))).opened
            for mark in ("2525", "2550", "2502"):
                w.push("ETHUSDT", mark)
                await trio.sleep(2)
            assert w.qty("ETHUSDT", LONG) == 0
            return list(w.journal.events)

    return _run_virtual(main)


def aged_exit(profile: str) -> list[Event]:
    coarse = Instrument(
        "TINYUSDT", tick_size=D("0.0001"), qty_step=D("1"), min_qty=D("1"), min_notional=D("5")
    )

    async def main() -> list[Event]:
        async with (
            paper_world(
                profile, instruments={"TINYUSDT": coarse}, marks={"TINYUSDT": "0.0003"}
            ) as w,
            supervised(w) as (sup, _),
        ):
            w.engine.set_leverage("TINYUSDT", 1)
            assert (await sup.open_position(w.request("TINYUSDT", LONG, "100000", "0.0003"))).opened
            w.push("TINYUSDT", "0.00029")
            # breakeven exit at 3 h, moved after the grace period, market close at the cap
            for hours in (3.025, 9, 15, 1, 1):
                await trio.sleep(hours * 3600)
            assert w.qty("TINYUSDT", LONG) == 0
            return list(w.journal.events)

    return _run_virtual(main)


SCENARIOS: dict[str, Callable[[], list[Event]]] = {
    **{
        f"trail-{p}-{s.value}": (lambda p=p, s=s: trail_then_stop(p, s))
        for p in ("bybit", "binance")
        for s in (LONG, SHORT)
    },
    **{f"tp-{p}": (lambda p=p: take_profits(p)) for p in ("bybit", "binance")},
    **{f"aged-{p}": (lambda p=p: aged_exit(p)) for p in ("bybit", "binance")},
}


@pytest.mark.parametrize("name", list(SCENARIOS))
async def test_position_actor_events_project_cleanly(
    name: str, fresh_db_dsn: str, tmp_path: Path
) -> None:
    with trio.fail_after(120):
        events = await trio.to_thread.run_sync(SCENARIOS[name])
        async with open_postgres_journal(fresh_db_dsn, spool_dir=tmp_path) as journal:
            for ev in events:
                journal.emit(ev)
    assert journal.stats.committed == len(events)
    assert journal.stats.projection_skipped == 0, journal.stats.projection_skip_reasons
    pid = next(e.position_id for e in events if e.position_id)
    with psycopg.connect(fresh_db_dsn) as conn:
        status, qty, entry, stop, exit_price, side, pnl = conn.execute(
            """SELECT status::text, qty, entry_price, stop_price, exit_price, position_side::text,
                      realized_pnl_usdt
               FROM positions WHERE position_id = %s""",
            (pid,),
        ).fetchone()  # type: ignore[misc]
        assert status == "CLOSED" and entry is not None and stop is not None
        roles = {
            r[0]
            for r in conn.execute("SELECT role::text FROM orders WHERE position_id = %s", (pid,))
        }
        fills = conn.execute(
            "SELECT side::text, qty, price FROM fills WHERE position_id = %s ORDER BY ts, fill_id",
            (pid,),
        ).fetchall()
        exit_side = "SELL" if side == "LONG" else "BUY"
        bought = sum(q for s, q, _ in fills if s != exit_side)
        sold = sum(q for s, q, _ in fills if s == exit_side)
        assert bought == qty
        # every execution recorded (the AccountRouter journals each fill): in == out
        assert sold == qty
        exit_notional = sum(q * p for s, q, p in fills if s == exit_side)
        assert exit_price == exit_notional / sold
        assert exit_price.as_tuple().exponent >= -12  # trimmed, not numeric's 20-digit scale
        # realized PnL against the entry, before fees (fees are in fees_usdt)
        expected = exit_notional - entry * sold if side == "LONG" else entry * sold - exit_notional
        assert pnl == expected
        assert "ENTRY" in roles
        if name.startswith("trail"):
            assert "STOP" in roles
        if name.startswith("tp"):
            tps = conn.execute(
                "SELECT level, status::text FROM tp_levels WHERE position_id = %s ORDER BY level",
                (pid,),
            ).fetchall()
            assert tps == [(0, "FILLED"), (1, "FILLED")]
            assert "TAKE_PROFIT" in roles
        if name.startswith("aged"):
            assert {"AGED_EXIT", "CLOSE"} <= roles


def flatten_fails(profile: str) -> list[Event]:
    """The stop cannot be placed and the flatten fails too: emergency stop, FAILED, and a
    critical alert (the PositionActor's alerts carry ``message`` since issue 10)."""
    plan = (
        FaultPlan(seed=3)
        .fail_next("place_stop", Fault.server_error(503), count=4, role=OrderRole.STOP)
        .fail_next("place_reduce", Fault.server_error(503), count=100)
    )

    async def main() -> list[Event]:
        async with paper_world(profile, faults=plan, marks={"ETHUSDT": "2500"}) as w:
            actor = w.actor(w.request("ETHUSDT", LONG, "0.100", "2500"))
            await w.start(actor)
            outcome = await actor._ticket.wait()  # type: ignore[union-attr]
            assert not outcome.opened and "emergency" in outcome.reason
            return list(w.journal.events)

    return _run_virtual(main)


async def test_position_actor_alerts_land_in_alerts_with_their_message(
    fresh_db_dsn: str, tmp_path: Path
) -> None:
    # Binance profile: the stop is placed after the fill (Bybit attaches it to the entry)
    with trio.fail_after(120):
        events = await trio.to_thread.run_sync(flatten_fails, "binance")
        async with open_postgres_journal(fresh_db_dsn, spool_dir=tmp_path) as journal:
            for ev in events:
                journal.emit(ev)
    assert journal.stats.schema_errors == 0
    assert journal.stats.projection_skipped == 0, journal.stats.projection_skip_reasons
    raised = [e for e in events if e.type is EventType.ALERT_RAISED]
    assert raised
    with psycopg.connect(fresh_db_dsn) as conn:
        alerts = conn.execute(
            "SELECT event_id, severity::text, alert_key, message FROM alerts ORDER BY ts, alert_id"
        ).fetchall()
        status = conn.execute("SELECT status::text FROM positions").fetchall()
    assert [a[0] for a in alerts] == [e.event_id for e in raised]  # every alert, once
    assert alerts[-1][1:3] == ("critical", "flatten_failed")
    assert alerts[-1][3].startswith("ETHUSDT LONG: flatten failed")
    assert "emergency stop at 2425.00" in alerts[-1][3]
    assert status == [("FAILED",)]
