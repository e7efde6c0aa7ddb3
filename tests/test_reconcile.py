"""Reconciliation over real parts: the real Bybit adapter against the in-process Bybit
sandbox on loopback, the PostgreSQL journal (embedded server), ``open_account`` with a
Reconciler (docs/ARCHITECTURE.md §3, §7; issue 11 item 3).

Each scenario creates the situation the way it happens to a user — a position opened by
hand through the venue API, an order left behind, a stop triggered while the bot was
down — and asserts what the venue and the journal's tables show afterwards.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import trio
from _bybit_support import D, bybit_env, until

from actors.account import Account, open_account
from actors.position import Lifecycle
from actors.runtime import RestartPolicy
from adapters.bybit import BybitVenue
from adapters.bybit_sandbox import BybitSandbox
from adapters.postgres.journal import PostgresJournal, open_postgres_journal
from tradebot.clock import WallClock
from tradebot.domain import PositionSide
from tradebot.events import EntryIntent, Event, EventType
from tradebot.ids import position_id_for
from tradebot.policies import (
    PositionSettings,
    ProtectionSettings,
    ReconcileSettings,
    TrailingSettings,
)
from tradebot.ports import EntryRequest, OpenRequest

T0 = datetime(2025, 5, 20, tzinfo=UTC)
LONG, SHORT = PositionSide.LONG, PositionSide.SHORT
SETTINGS = PositionSettings(
    protection=ProtectionSettings(verify_interval_s=1.0),
    trailing=TrailingSettings(
        activation_pct=D("1"), callback_pct=D("0.5"), min_update_interval_s=0.0
    ),
)


def request(symbol: str, side: PositionSide, qty: str, price: str, n: int = 0) -> OpenRequest:
    return OpenRequest(
        position_id=position_id_for("recon-test", symbol, side, T0, attempt=n),
        symbol=symbol,
        position_side=side,
        qty=D(qty),
        reference_price=D(price),
        signal_id=f"sig-{symbol}-{n}",
        wave_ts=T0,
    )


@asynccontextmanager
async def account_on(
    journal: PostgresJournal,
    venue: BybitVenue,
    sb: BybitSandbox,
    reconcile: ReconcileSettings | None,
    symbols: tuple[str, ...] = ("BTCUSDT", "ETHUSDT"),
) -> AsyncIterator[Account]:
    policy = RestartPolicy(max_restarts=3, window_s=60, backoff_initial_s=0.1, jitter=0.0)
    async with open_account(
        port=venue,
        journal=journal,
        clock=WallClock(),
        instruments=await venue.instruments(),
        settings=SETTINGS,
        leverage={s: 5 for s in symbols},
        market_symbols=list(symbols),
        policy=policy,
        reconcile=reconcile,
        account_name="recon-test",
    ) as account:
        await until(lambda: all(account.market.latest(s) for s in symbols))
        yield account


async def limit_by_hand(venue: BybitVenue, symbol: str, price: str, cid: str) -> Any:
    """A resting Buy limit (long side, hedge mode) sent straight through the REST API."""
    await venue.http.call(
        "POST",
        "/v5/order/create",
        {
            "category": "linear",
            "symbol": symbol,
            "side": "Buy",
            "orderType": "Limit",
            "qty": "0.10",
            "price": price,
            "positionIdx": 1,
            "orderLinkId": cid,
            "timeInForce": "GTC",
        },
        mutating=True,
    )
    (order,) = [o for o in await venue.open_orders(symbol) if o.client_order_id == cid]
    return order


def rows(dsn: str, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn) as conn:
        return list(conn.execute(sql, params).fetchall())


async def events_of(journal: PostgresJournal, dsn: str, *types: EventType) -> list[tuple[Any, ...]]:
    await journal.flush()
    return rows(
        dsn,
        "SELECT type, symbol, position_id, client_order_id, data FROM events "
        "WHERE type = ANY(%s) ORDER BY seq",
        [t.value for t in types],
    )


async def test_a_position_opened_by_hand_is_adopted_and_protected_within_one_interval(
    fresh_db_dsn: str, tmp_path: Path
) -> None:
    async with (
        open_postgres_journal(fresh_db_dsn, spool_dir=tmp_path) as journal,
        bybit_env(journal=journal) as (sb, venue),
        account_on(journal, venue, sb, ReconcileSettings(interval_s=1.0)) as account,
    ):
        assert account.startup_reconcile is not None and account.startup_reconcile.ok
        # by hand, through the venue API: a market long with no stop and a foreign id
        await venue.place_entry(EntryRequest("ETHUSDT", LONG, D("0.10"), "manual-eth-1"))
        assert [s for s in await venue.stops("ETHUSDT", LONG)] == []
        with trio.fail_after(5):  # one interval (1 s) plus the adoption
            await until(lambda: account.positions.has_position("ETHUSDT", LONG), timeout_s=5)
            await until(lambda: bool(sb.engine.stops_for("ETHUSDT", LONG)), timeout_s=5)
        stops = await venue.stops("ETHUSDT", LONG)
        # the emergency stop: protection.emergency_pct (3 %) below the entry (2500)
        assert [s.trigger_price for s in stops] == [D("2425.00")]
        found = await events_of(
            journal, fresh_db_dsn, EventType.RECONCILE_UNTRACKED, EventType.RECONCILE_ADOPTED
        )
        assert [(t, s) for t, s, *_ in found] == [
            ("reconcile.untracked", "ETHUSDT"),
            ("reconcile.adopted", "ETHUSDT"),
        ]
        assert found[0][4]["qty"] == "0.10"
        actor = account.positions.actor("ETHUSDT", LONG)
        assert actor is not None and actor.lifecycle is Lifecycle.ACTIVE
        # the BTC side was never touched
        assert await venue.positions("BTCUSDT") == []


async def test_with_untracked_alert_a_hand_position_is_alerted_and_left_alone(
    fresh_db_dsn: str, tmp_path: Path
) -> None:
    async with (
        open_postgres_journal(fresh_db_dsn, spool_dir=tmp_path) as journal,
        bybit_env(journal=journal) as (sb, venue),
    ):
        await venue.place_entry(EntryRequest("BTCUSDT", SHORT, D("0.010"), "manual-btc-1"))
        async with account_on(
            journal, venue, sb, ReconcileSettings(interval_s=60.0, untracked="alert")
        ) as account:
            report = account.startup_reconcile
            assert report is not None and report.ok
            assert report.findings == {"untracked": 1}
            await account.reconcile_now("operator")  # a second pass: alerted again, still alone
            assert not account.positions.has_position("BTCUSDT", SHORT)
            assert await venue.stops("BTCUSDT", SHORT) == []
        await journal.flush()
        alerts = rows(fresh_db_dsn, "SELECT severity::text, alert_key, message FROM alerts")
        assert len(alerts) == 2
        assert {a[:2] for a in alerts} == {("critical", "untracked_position")}
        assert "BTCUSDT SHORT 0.010" in alerts[0][2] and "left alone" in alerts[0][2]
        pos = await venue.positions("BTCUSDT")
        assert [(p.position_side, p.qty) for p in pos] == [(SHORT, D("0.010"))]


async def test_zombie_orders_are_cancelled_and_foreign_orders_untouched_and_reported_once(
    fresh_db_dsn: str, tmp_path: Path
) -> None:
    dead = position_id_for("recon-test", "ETHUSDT", LONG, T0, attempt=7)  # closed long ago
    async with (
        open_postgres_journal(fresh_db_dsn, spool_dir=tmp_path) as journal,
        bybit_env(journal=journal) as (sb, venue),
    ):
        # resting limit orders far from the market: one with our prefix whose position has
        # no owner (an entry left by a crash of an older version), one placed by hand
        zombie = await limit_by_hand(venue, "ETHUSDT", "2000", f"tb-{dead}-E0")
        foreign = await limit_by_hand(venue, "ETHUSDT", "1900", "by-hand-1")
        async with account_on(journal, venue, sb, ReconcileSettings(interval_s=60.0)) as account:
            assert account.startup_reconcile is not None
            assert account.startup_reconcile.findings == {"zombie": 1, "foreign": 1}
            again = await account.reconcile_now("operator")
            assert again.findings == {}  # the foreign order is reported once, not every pass
        left = {o.client_order_id for o in await venue.open_orders("ETHUSDT")}
        assert left == {foreign.client_order_id}
        assert zombie.client_order_id not in left
        found = await events_of(
            journal,
            fresh_db_dsn,
            EventType.ZOMBIE_ORDER,
            EventType.ZOMBIE_CANCELLED,
            EventType.RECONCILE_FOREIGN_ORDER,
        )
        assert sorted((t, cid) for t, _s, _p, cid, _d in found) == [
            ("reconcile.foreign_order", "by-hand-1"),
            ("reconcile.zombie_cancelled", f"tb-{dead}-E0"),
            ("reconcile.zombie_order", f"tb-{dead}-E0"),
        ]


async def test_a_position_stopped_out_while_the_bot_was_down_is_closed_with_its_exit_fill(
    fresh_db_dsn: str, tmp_path: Path
) -> None:
    req = request("ETHUSDT", LONG, "0.10", "2500")
    async with (
        open_postgres_journal(fresh_db_dsn, spool_dir=tmp_path) as journal,
        bybit_env(journal=journal) as (sb, venue),
    ):
        async with account_on(journal, venue, sb, ReconcileSettings(interval_s=60.0)) as account:
            outcome = await account.positions.open_position(req)
            assert outcome.opened
            stop = (await venue.stops("ETHUSDT", LONG))[0].trigger_price
        # the bot is down; the market falls through the stop
        sb.set_mark("ETHUSDT", D("2400"))
        await until(lambda: sb.engine.position("ETHUSDT", LONG).qty == 0)
        async with account_on(journal, venue, sb, ReconcileSettings(interval_s=60.0)) as account:
            report = account.startup_reconcile
            assert report is not None and report.ok and report.findings == {"resumed": 1}
            assert not account.positions.has_position("ETHUSDT", LONG)
        await journal.flush()
        ((status, exit_price, pnl, fees, reason),) = rows(
            fresh_db_dsn,
            "SELECT status::text, exit_price, realized_pnl_usdt, fees_usdt, close_reason "
            "FROM positions WHERE position_id = %s",
            req.position_id,
        )
        assert status == "CLOSED"
        assert reason == "closed_while_down (stop)"
        # the mark gapped from 2500 to 2400 through the stop (2450): filled at the mark
        assert stop == D("2450.00") and exit_price == D("2400.00")
        assert pnl == (exit_price - D("2500")) * D("0.10")
        assert fees > 0  # entry and exit taker fees
        (rec,) = [
            d for *_x, d in await events_of(journal, fresh_db_dsn, EventType.POSITION_EXIT_RECORDED)
        ]
        assert rec["reason"] == "stop" and rec["fills"] == 1 and Decimal(rec["qty"]) == D("0.10")


async def test_a_restarted_position_keeps_its_trailing_high_water_mark_and_its_stop(
    fresh_db_dsn: str, tmp_path: Path
) -> None:
    req = request("BTCUSDT", LONG, "0.010", "100000")
    async with (
        open_postgres_journal(fresh_db_dsn, spool_dir=tmp_path) as journal,
        bybit_env(journal=journal) as (sb, venue),
    ):
        async with account_on(journal, venue, sb, ReconcileSettings(interval_s=60.0)) as account:
            assert (await account.positions.open_position(req)).opened
            sb.set_mark("BTCUSDT", D("103000"))  # +3 %: trailing active, stop trails
            actor = account.positions.actor("BTCUSDT", LONG)
            assert actor is not None
            await until(lambda: actor.status().trailing.water_mark == D("103000"))
            await until(lambda: actor.status().stop_price == D("102485.0"))
            before = actor.status()
        stops_before = await venue.stops("BTCUSDT", LONG)
        async with account_on(journal, venue, sb, ReconcileSettings(interval_s=60.0)) as account:
            report = account.startup_reconcile
            assert report is not None and report.findings == {"resumed": 1}
            actor = account.positions.actor("BTCUSDT", LONG)
            assert actor is not None and actor.lifecycle is Lifecycle.ACTIVE
            after = actor.status()
            assert after.trailing.water_mark == before.trailing.water_mark == D("103000")
            assert after.trailing.phase == before.trailing.phase
            assert after.stop_price == before.stop_price
            assert after.stop_verified_at is not None  # verified on the venue at resume
        assert await venue.stops("BTCUSDT", LONG) == stops_before  # one stop, not looser
        found = await events_of(journal, fresh_db_dsn, EventType.RECONCILE_RESUMED)
        assert [(d["lifecycle"], d["managed"]) for *_x, d in found] == [("ACTIVE", True)]


async def test_an_entry_intent_without_a_snapshot_is_rolled_back_and_nothing_is_sent(
    fresh_db_dsn: str, tmp_path: Path
) -> None:
    req = request("ETHUSDT", SHORT, "0.10", "2500", n=3)
    async with (
        open_postgres_journal(fresh_db_dsn, spool_dir=tmp_path) as journal,
        bybit_env(journal=journal) as (sb, venue),
    ):
        # the process died right after the intent became durable, before its snapshot
        await journal.emit_durable(
            Event.of(
                EntryIntent(
                    position_side=SHORT,
                    qty=req.qty,
                    reference_price=req.reference_price,
                    intended_stop=D("2550.00"),
                    stop_client_order_id=f"tb-{req.position_id}-S1",
                    signal_id="s",
                    wave_ts=T0,
                    attached_stop=True,
                    venue="bybit",
                    account="recon-test",
                ),
                datetime.now(UTC),
                position_id=req.position_id,
                symbol="ETHUSDT",
                client_order_id=f"tb-{req.position_id}-E0",
            )
        )
        await journal.flush()
        requests_before = len(sb.request_log)
        async with account_on(journal, venue, sb, ReconcileSettings(interval_s=60.0)) as account:
            report = account.startup_reconcile
            assert report is not None and report.findings == {"rolled_back": 1}
            assert not account.positions.has_position("ETHUSDT", SHORT)
        created = [r for r in sb.request_log[requests_before:] if r.path == "/v5/order/create"]
        assert created == []  # 0 entries: nothing was ever sent, nothing is sent now
        await journal.flush()
        assert rows(
            fresh_db_dsn,
            "SELECT status::text, close_reason FROM positions WHERE position_id = %s",
            req.position_id,
        ) == [("ROLLED_BACK", "entry_never_sent")]
