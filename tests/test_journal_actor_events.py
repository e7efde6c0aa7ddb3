"""The events the real PositionActor emits (paper venue, both venue profiles) project into
the relational tables without a single skipped projection: the data-key contract of
adapters/postgres/projections.py matches what the actors write."""

from __future__ import annotations

from decimal import Decimal as D
from pathlib import Path

import psycopg
import pytest
import trio
import trio.testing

from adapters.postgres.journal import open_postgres_journal
from tests._position_support import paper_world, supervised
from tradebot.domain import PositionSide
from tradebot.events import Event


async def _scenario(profile: str, side: PositionSide) -> list[Event]:
    """Open, trail three times, then the mark crosses the stop (virtual time)."""
    up = side is PositionSide.LONG
    marks = ["2540", "2560", "2600", "2586"] if up else ["2460", "2440", "2400", "2413"]
    clock = trio.testing.MockClock(autojump_threshold=0)

    async def main() -> list[Event]:
        async with paper_world(profile, marks={"ETHUSDT": "2500"}) as w, supervised(w) as (sup, _):
            out = await sup.open_position(w.request("ETHUSDT", side, "0.100", "2500"))
            assert out.opened
            for mark in marks[:-1]:
                await trio.sleep(61)
                w.push("ETHUSDT", mark)
                await trio.sleep(0.5)
            w.push("ETHUSDT", "2000" if up else "3000")  # through the stop
            await trio.sleep(2)
            assert w.qty("ETHUSDT", side) == 0
            return list(w.journal.events)

    return await trio.to_thread.run_sync(lambda: trio.run(main, clock=clock))


@pytest.mark.parametrize("profile", ["bybit", "binance"])
@pytest.mark.parametrize("side", [PositionSide.LONG, PositionSide.SHORT])
async def test_position_actor_events_project_cleanly(
    profile: str, side: PositionSide, fresh_db_dsn: str, tmp_path: Path
) -> None:
    with trio.fail_after(120):
        events = await _scenario(profile, side)
        async with open_postgres_journal(fresh_db_dsn, spool_dir=tmp_path) as journal:
            for ev in events:
                journal.emit(ev)
    assert journal.stats.committed == len(events)
    assert journal.stats.projection_skipped == 0, journal.stats.projection_skip_reasons
    pid = events[0].position_id or next(e.position_id for e in events if e.position_id)
    with psycopg.connect(fresh_db_dsn) as conn:
        status, qty, entry, stop, exit_price = conn.execute(
            "SELECT status::text, qty, entry_price, stop_price, exit_price FROM positions WHERE position_id = %s",
            (pid,),
        ).fetchone()  # type: ignore[misc]
        assert status == "CLOSED"
        assert qty == D("0.100") and entry is not None and stop is not None
        assert exit_price == D("2000") if side is PositionSide.LONG else exit_price == D("3000")
        roles = {
            r[0]
            for r in conn.execute("SELECT role::text FROM orders WHERE position_id = %s", (pid,))
        }
        assert {"ENTRY", "STOP"} <= roles
        (n_fills,) = conn.execute(
            "SELECT count(*) FROM fills WHERE position_id = %s", (pid,)
        ).fetchone()  # type: ignore[misc]
        assert n_fills >= 1
