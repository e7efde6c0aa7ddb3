"""The PositionActor trades through the Bybit adapter against the Bybit sandbox, over real
loopback sockets: open with the stop attached, trail several times, close. The engine's
step listener proves the position never existed without a stop (zero unprotected time),
and the journal holds every request and reply."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import trio
from _bybit_support import D, bybit_env

from actors.account import open_account
from actors.position import Close
from actors.runtime import RestartPolicy, SupervisionEvent
from adapters.paper import EngineStep
from tradebot.clock import WallClock
from tradebot.domain import PositionSide
from tradebot.events import EventType, MemoryJournal
from tradebot.ids import position_id_for
from tradebot.ports import OpenRequest

LONG = PositionSide.LONG
T0 = datetime(2025, 5, 20, tzinfo=UTC)


async def _until(pred: object, timeout_s: float = 5.0) -> None:
    with trio.fail_after(timeout_s):
        while not pred():  # type: ignore[operator]  # noqa: ASYNC110 (polls venue state)
            await trio.sleep(0.01)


async def test_position_actor_opens_trails_and_closes_through_the_bybit_adapter() -> None:
    journal = MemoryJournal()
    clock = WallClock()
    with trio.fail_after(40):
        async with bybit_env(journal=journal, hedge=False, marks={"BTCUSDT": D("100000")}) as (
            sb,
            venue,
        ):
            unprotected: list[tuple[int, str]] = []
            steps = {"n": 0}

            def monitor(step: EngineStep) -> None:
                steps["n"] += 1
                for p in sb.engine.positions():
                    if not sb.engine.stops_for(p.symbol, p.position_side):
                        unprotected.append((step.seq, step.name))

            sb.engine.add_listener(monitor)
            await venue.sync_time()
            instruments = await venue.instruments()
            events: list[SupervisionEvent] = []
            policy = RestartPolicy(max_restarts=3, window_s=60, backoff_initial_s=0.1, jitter=0.0)
            async with open_account(
                port=venue,
                journal=journal,
                clock=clock,
                instruments=instruments,
                leverage={"BTCUSDT": 5},
                market_symbols=["BTCUSDT"],
                policy=policy,
                sink=events.append,
            ) as acct:
                market, sup = acct.market, acct.positions
                await _until(lambda: market.latest("BTCUSDT") == D("100000"))
                await _until(
                    lambda: sb.subscriptions("private") == [{"order", "execution", "position"}]
                )
                req = OpenRequest(
                    position_id=position_id_for("bybit-sandbox", "BTCUSDT", LONG, T0),
                    symbol="BTCUSDT",
                    position_side=LONG,
                    qty=D("0.010"),
                    reference_price=D("100000"),
                    signal_id="sig-1",
                    wave_ts=T0,
                )
                outcome = await sup.open_position(req)
                assert outcome.opened, outcome
                pos = sb.engine.position("BTCUSDT", LONG)
                assert (pos.qty, pos.stop_price) == (D("0.010"), D("98000.0"))
                stops = [pos.stop_price]
                # trail: each new high moves the stop by >= 1% (sent at once)
                for mark in ("101600", "103000", "105000"):
                    sb.set_mark("BTCUSDT", D(mark))
                    await _until(
                        lambda m=D(mark): (
                            sb.engine.position(  # type: ignore[misc]
                                "BTCUSDT", LONG
                            ).stop_price
                            == m * D("0.995")
                        )
                    )
                    stops.append(sb.engine.position("BTCUSDT", LONG).stop_price)
                assert stops == sorted(stops) and len(set(stops)) == 4
                # a dropped stream → reconnect → StreamGap → the actor re-verifies its stop
                for which in ("private", "public"):
                    seen = len(journal.of_type(EventType.PROTECTION_VERIFIED))
                    assert await sb.drop_stream_connections(which) == 1
                    await _until(
                        lambda n=seen: len(journal.of_type(EventType.PROTECTION_VERIFIED)) > n
                    )
                    last = journal.of_type(EventType.PROTECTION_VERIFIED)[-1]
                    assert last.data["reason"] == "stream_gap"
                    assert last.data["stop_price"] == stops[-1]
                addr = sup.address("BTCUSDT", LONG)
                assert addr is not None
                await addr.ask(Close("test_done"), 10)
                await _until(lambda: sb.engine.position("BTCUSDT", LONG).qty == 0)
                await _until(lambda: sup.open_count() == 0)

    assert steps["n"] > 5 and unprotected == []  # zero unprotected time
    trading_stop = sb.requests_to("/v5/position/trading-stop")
    assert [r.params["stopLoss"] for r in trading_stop] == [str(s) for s in stops[1:]]
    creates = sb.requests_to("/v5/order/create")
    assert creates[0].params["stopLoss"] == "98000.0"  # attached to the entry
    assert creates[-1].params["reduceOnly"] is True  # the close
    # every REST request and reply is journaled; intent precedes the entry request
    reqs = journal.of_type(EventType.EXCHANGE_REQUEST)
    outs = journal.of_type(EventType.EXCHANGE_RESPONSE, EventType.EXCHANGE_ERROR)
    assert len(reqs) == len(sb.request_log) == len(outs)
    types = [e.type for e in journal.events]
    first_create = next(
        i
        for i, e in enumerate(journal.events)
        if e.type is EventType.EXCHANGE_REQUEST and e.data["path"] == "/v5/order/create"
    )
    assert types.index(EventType.ENTRY_INTENT) < first_create
    assert len(journal.of_type(EventType.STOP_MOVED)) == 3
    assert journal.of_type(EventType.POSITION_CLOSED)
    assert not [e for e in events if "crash" in str(e).lower()]
    assert isinstance(stops[-1], Decimal)


async def test_entry_reply_lost_after_acceptance_is_resolved_by_order_link_id() -> None:
    """The venue accepts the entry (stop attached) but the reply is lost: the actor looks the
    entry up by orderLinkId, finds it filled, and does not send a second entry."""
    journal = MemoryJournal()
    clock = WallClock()
    with trio.fail_after(40):
        async with bybit_env(journal=journal, marks={"ETHUSDT": D("2500")}) as (sb, venue):
            instruments = await venue.instruments()
            policy = RestartPolicy(max_restarts=3, window_s=60, backoff_initial_s=0.1, jitter=0.0)
            async with open_account(
                port=venue,
                journal=journal,
                clock=clock,
                instruments=instruments,
                market_symbols=["ETHUSDT"],
                policy=policy,
                sink=lambda _: None,
            ) as acct:
                market, sup = acct.market, acct.positions
                await _until(lambda: market.latest("ETHUSDT") == D("2500"))
                sb.inject("/v5/order/create", drop="after")
                req = OpenRequest(
                    position_id=position_id_for("bybit-sandbox", "ETHUSDT", PositionSide.SHORT, T0),
                    symbol="ETHUSDT",
                    position_side=PositionSide.SHORT,
                    qty=D("0.100"),
                    reference_price=D("2500"),
                    signal_id="sig-2",
                    wave_ts=T0,
                )
                outcome = await sup.open_position(req)
                assert outcome.opened, outcome
                pos = sb.engine.position("ETHUSDT", PositionSide.SHORT)
                assert (pos.qty, pos.stop_price) == (D("0.100"), D("2550.00"))
    entries = [
        r for r in sb.requests_to("/v5/order/create") if r.params["orderLinkId"].endswith("-E0")
    ]
    assert len(entries) == 1  # no blind resend
    assert journal.of_type(EventType.ENTRY_OUTCOME_UNKNOWN)
    lookups = [
        r
        for r in sb.request_log
        if r.path == "/v5/order/realtime" and r.params.get("orderLinkId", "").endswith("-E0")
    ]
    assert lookups
