"""Imported OPEN legacy positions are taken over by the account tree (issue 14, must-show).

The old bot's database (tests/_legacy_support.py) has two OPEN positions: ETHUSDT long
with trailing activated (stop 2587 = water mark 2600 − 0.5 %), still open on the exchange,
and SOLUSDT short, already flat there. ``tradebot import legacy`` imports both as tracked
ACTIVE positions with a ``position.snapshot``. Then the account tree (``open_account``)
runs over the real Bybit adapter against the Bybit sandbox on loopback, with the
PostgreSQL journal on the imported database and the Reconciler (``reconcile`` given). Its
start-up pass resumes both tracked positions (``PositionSupervisor.resume``): ETH restores
qty, entry, stop and the ACTIVE trailing state from the snapshot (no re-activation, the next
high trails from water mark 2600); SOL is flat on the venue and, never seen by tradebot
(snapshot ``imported``), closes with the reason "closed before import".
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from pathlib import Path

import psycopg
import pytest
import trio
from _bybit_support import bybit_env, until
from _legacy_support import seed_legacy

from actors.account import open_account
from actors.runtime import RestartPolicy
from adapters.postgres.journal import open_postgres_journal
from tradebot.cli import main
from tradebot.clock import WallClock
from tradebot.domain import PositionSide
from tradebot.legacy import CLOSED_BEFORE_IMPORT, legacy_position_id
from tradebot.policies import ReconcileSettings, TrailingPhase
from tradebot.ports import EntryRequest

LONG, SHORT = PositionSide.LONG, PositionSide.SHORT
ETH_PID = legacy_position_id("monitoring.positions", "5")
SOL_PID = legacy_position_id("monitoring.positions", "6")


async def test_run_adopts_the_open_one_with_its_trailing_state_and_closes_the_flat_one(
    make_db_dsn: Callable[..., str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = make_db_dsn(False)
    # opened 30 minutes ago: younger than the aged-exit threshold
    seed_legacy(src, open_since=(datetime.now(UTC) - timedelta(minutes=30)).strftime("%Y-%m-%d %H:%M:%S"))  # fmt: skip
    dst = make_db_dsn(True)
    assert main(["import", "legacy", "--from-dsn", src, "--dsn", dst]) == 0
    assert "imported 13 rows" in capsys.readouterr().out

    policy = RestartPolicy(max_restarts=3, window_s=60, backoff_initial_s=0.1, jitter=0.0)
    with trio.fail_after(60):
        async with (
            open_postgres_journal(dst, spool_dir=tmp_path / "spool") as journal,
            bybit_env(journal=journal, marks={"ETHUSDT": D("2601"), "SOLUSDT": D("159")}) as (
                sb,
                venue,
            ),
        ):
            # what the old bot left on the exchange: the ETH long with its stop; SOL is flat
            sb.engine.place_entry(
                EntryRequest("ETHUSDT", LONG, D("0.100"), "oldbot-eth-5", stop_price=D("2587.00"))
            )
            await venue.sync_time()
            async with open_account(
                port=venue,
                journal=journal,
                clock=WallClock(),
                instruments=await venue.instruments(),
                market_symbols=["ETHUSDT", "SOLUSDT"],
                policy=policy,
                reconcile=ReconcileSettings(interval_s=60.0),
                account_name="default",
            ) as acct:
                await until(lambda: acct.market.latest("ETHUSDT") == D("2601"))
                await until(
                    lambda: sb.subscriptions("private") == [{"order", "execution", "position"}]
                )
                # the Reconciler's start-up pass (before any signal) resumed both imported
                # positions: ETH from its snapshot, SOL found flat and closed
                report = acct.startup_reconcile
                assert report is not None and report.ok and report.findings == {"resumed": 2}
                actor = acct.positions.actor("ETHUSDT", LONG)
                assert actor is not None and acct.positions.actor("SOLUSDT", SHORT) is None
                st = actor.status()
                assert (st.qty, st.entry_price, st.stop_price) == (
                    D("0.100"),
                    D("2500.00"),
                    D("2587.00"),
                )
                assert st.trailing.phase is TrailingPhase.ACTIVE
                # mark 2601: water mark 2601, stop 2588.00 would be < 0.1 % better: no move
                # (a fresh, INACTIVE state would activate now and move the stop at once)
                await trio.sleep(0.5)
                assert sb.engine.position("ETHUSDT", LONG).stop_price == D("2587.00")
                # the next high trails at once (≥ 1 % better): 2630 × 0.995
                sb.set_mark("ETHUSDT", D("2630"))
                await until(lambda: sb.engine.position("ETHUSDT", LONG).stop_price == D("2616.85"))
            await journal.flush()

    with psycopg.connect(dst, autocommit=True) as conn:
        rows = dict(
            (r[0], r[1:])
            for r in conn.execute(
                "SELECT position_id, status::text, close_reason, stop_price FROM positions "
                "WHERE position_id = ANY(%s)",
                ([ETH_PID, SOL_PID],),
            ).fetchall()
        )
        restarted = conn.execute(
            "SELECT data FROM events WHERE type = 'actor.restarted' AND position_id = %s",
            (ETH_PID,),
        ).fetchall()
        activated = conn.execute(
            "SELECT count(*) FROM events WHERE type = 'trailing.activated' AND position_id = %s",
            (ETH_PID,),
        ).fetchone()
    assert rows[SOL_PID][:2] == ("CLOSED", CLOSED_BEFORE_IMPORT)
    assert rows[ETH_PID][0] == "ACTIVE" and rows[ETH_PID][2] == D("2616.85")
    # restored from the imported snapshot: lifecycle ACTIVE, water mark 2600.00
    assert [(r[0]["lifecycle"], r[0]["water_mark"]) for r in restarted] == [("ACTIVE", "2600.00")]
    assert activated == (0,)  # trailing resumed, it was never re-activated
