"""The PositionActor trades through the Binance adapter against the Binance sandbox, over
real loopback sockets: open (entry MARKET, then the algo stop on fill), three trailing
moves make-before-break, close. The engine's step listener measures every instant a
position existed without a live stop; the journal holds every request and reply; no -4120.

Faults: an entry reply lost after acceptance (resolved by newClientOrderId: one position),
a 418 IP ban (protective requests wait it out and go first), the listenKey expiring
mid-session (new key, StreamGap, re-verification right after the reconnect).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import attrs
import pytest
import trio
from _binance_support import EXPECTED_OPS, D, binance_env, until

from actors.position import Close
from actors.position_supervisor import PositionSupervisor
from actors.routers import AccountRouter, MarketRouter
from actors.runtime import RestartPolicy, SupervisionEvent, open_dynamic_supervisor
from adapters.binance import BinanceVenue, Priority
from adapters.binance_sandbox import BinanceSandbox
from adapters.paper import EngineStep
from tradebot.clock import WallClock
from tradebot.domain import PositionSide
from tradebot.errors import RateLimited
from tradebot.events import EventType, MemoryJournal
from tradebot.ids import position_id_for
from tradebot.ports import OpenRequest

LONG, SHORT = PositionSide.LONG, PositionSide.SHORT
T0 = datetime(2025, 5, 20, tzinfo=UTC)


@attrs.define
class Env:
    sb: BinanceSandbox
    venue: BinanceVenue
    sup: PositionSupervisor
    journal: MemoryJournal
    market: MarketRouter
    events: list[SupervisionEvent]
    unprotected: list[tuple[int, str, float]]  # (engine step, name, trio time)
    steps: list[tuple[int, str, float]]


@asynccontextmanager
async def actor_env(symbol: str, mark: Decimal, **env_kwargs: Any) -> AsyncIterator[Env]:
    journal = MemoryJournal()
    clock = WallClock()
    async with binance_env(journal=journal, marks={symbol: mark}, **env_kwargs) as (sb, venue):
        unprotected: list[tuple[int, str, float]] = []
        steps: list[tuple[int, str, float]] = []

        def monitor(step: EngineStep) -> None:
            steps.append((step.seq, step.name, trio.current_time()))
            for p in sb.engine.positions():
                if not sb.engine.stops_for(p.symbol, p.position_side):
                    unprotected.append((step.seq, step.name, trio.current_time()))

        sb.engine.add_listener(monitor)
        await venue.sync_time()
        await venue.setup_account({symbol: 5})
        instruments = await venue.instruments()
        account = AccountRouter(journal, clock)
        market = MarketRouter(on_gap=account)
        events: list[SupervisionEvent] = []
        async with trio.open_nursery() as streams:
            streams.start_soon(venue.run_market_stream, [symbol], market.emit)
            streams.start_soon(venue.run_account_stream, account.emit)
            await until(lambda: market.latest(symbol) == mark)
            await until(
                lambda: (
                    sb.listen_key is not None and sb.subscriptions("private") == [{sb.listen_key}]
                )
            )
            policy = RestartPolicy(max_restarts=3, window_s=60, backoff_initial_s=0.1, jitter=0.0)
            async with open_dynamic_supervisor(policy, events.append, name="positions") as dyn:
                sup = PositionSupervisor(
                    supervisor=dyn,
                    port=venue,
                    journal=journal,
                    clock=clock,
                    market=market,
                    account=account,
                    instruments=instruments,
                )
                yield Env(sb, venue, sup, journal, market, events, unprotected, steps)
                await dyn.stop(5.0)
            streams.cancel_scope.cancel()


def open_request(
    symbol: str, side: PositionSide, qty: str, price: Decimal, n: int = 1
) -> OpenRequest:
    return OpenRequest(
        position_id=position_id_for("binance-sandbox", symbol, side, T0, n),
        symbol=symbol,
        position_side=side,
        qty=D(qty),
        reference_price=price,
        signal_id=f"sig-{n}",
        wave_ts=T0,
    )


def live_stops(sb: BinanceSandbox, symbol: str, side: PositionSide) -> list[Decimal]:
    return [s.trigger_price for s in sb.engine.stops_for(symbol, side)]


async def test_position_actor_opens_trails_and_closes_through_the_binance_adapter() -> None:
    with trio.fail_after(60):
        async with actor_env("BTCUSDT", D("100000")) as env:
            sb, journal = env.sb, env.journal
            outcome = await env.sup.open_position(
                open_request("BTCUSDT", LONG, "0.010", D("100000"))
            )
            assert outcome.opened, outcome
            assert sb.engine.position("BTCUSDT", LONG).qty == D("0.010")
            assert live_stops(sb, "BTCUSDT", LONG) == [D("98000.0")]
            # --- the unprotected window at open: the entry's engine step only ------------
            opened_unprotected = list(env.unprotected)
            assert [name for _, name, _ in opened_unprotected] == ["submit_order"]
            entry_req = next(
                r for r in sb.request_log if r.path == "/fapi/v1/order" and r.method == "POST"
            )
            stop_req = sb.requests_to("/fapi/v1/algoOrder", "POST")[0]
            # the stop request is the very next request after the entry: nothing (no query,
            # no poll) sits in the window between the entry's fill and the stop's placement
            assert stop_req.seq == entry_req.seq + 1
            seq_fill = opened_unprotected[0][0]
            t_fill = opened_unprotected[0][2]
            t_protected = next(t for seq, _, t in env.steps if seq == seq_fill + 1)
            window_ms = (t_protected - t_fill) * 1000
            stop_rtt_ms = (stop_req.t_reply - stop_req.t) * 1000
            stop_reply = next(
                e
                for e in journal.of_type(EventType.EXCHANGE_RESPONSE)
                if e.data["path"] == "/fapi/v1/algoOrder"
            )
            print(
                f"\nunprotected window at open: {window_ms:.2f} ms (venue side: entry fill → "
                f"stop accepted); stop round trip seen by the client "
                f"{stop_reply.data['latency_ms']} ms, at the venue {stop_rtt_ms:.2f} ms"
            )
            # --- three trailing moves, make-before-break ----------------------------------
            stops = [D("98000.0")]
            for mark in ("101600", "103000", "105000"):
                target = D(mark) * D("0.995")
                sb.set_mark("BTCUSDT", D(mark))
                await until(lambda t=target: live_stops(sb, "BTCUSDT", LONG) == [t])  # type: ignore[misc]
                stops.append(target)
            assert stops == sorted(stops) and len(set(stops)) == 4
            assert len(env.unprotected) == len(opened_unprotected)  # 0 unprotected time
            # --- close ------------------------------------------------------------------
            addr = env.sup.address("BTCUSDT", LONG)
            assert addr is not None
            await addr.ask(Close("test_done"), 10)
            await until(lambda: sb.engine.position("BTCUSDT", LONG).qty == 0)
            await until(lambda: env.sup.open_count() == 0)
            await until(lambda: not sb.engine.open_orders("BTCUSDT"))  # no zombie stop
    assert len(env.unprotected) == len(opened_unprotected)
    # every stop went to the Algo Order API, every move was place-then-cancel, no -4120
    places = sb.requests_to("/fapi/v1/algoOrder", "POST")
    cancels = sb.requests_to("/fapi/v1/algoOrder", "DELETE")
    assert [D(r.params["triggerPrice"]) for r in places] == stops
    assert all(r.params["closePosition"] == "true" for r in places)
    assert all(r.params["workingType"] == "MARK_PRICE" for r in places)
    assert all(r.params["positionSide"] == "LONG" and r.params["side"] == "SELL" for r in places)
    for new, old in zip(places[1:], cancels, strict=False):
        assert new.seq < old.seq  # the new stop is placed before the old one is cancelled
    assert [r.params["clientAlgoId"] for r in cancels] == [r.params["clientAlgoId"] for r in places]
    assert -4120 not in sb.replied_codes()
    assert venue_ops(sb) == EXPECTED_OPS  # what the paper binance profile does too
    orders = sb.requests_to("/fapi/v1/order", "POST")
    assert [r.params["type"] for r in orders] == ["MARKET", "MARKET"]
    assert orders[0].params["newOrderRespType"] == "RESULT"
    assert "reduceOnly" not in orders[1].params and orders[1].params["side"] == "SELL"
    # every REST request and reply is journaled; the intent precedes the entry request
    reqs = journal.of_type(EventType.EXCHANGE_REQUEST)
    outs = journal.of_type(EventType.EXCHANGE_RESPONSE, EventType.EXCHANGE_ERROR)
    assert len(reqs) == len(sb.request_log) == len(outs)
    kinds = [e.type for e in journal.events]
    first_order = next(
        i
        for i, e in enumerate(journal.events)
        if e.type is EventType.EXCHANGE_REQUEST and e.data["path"] == "/fapi/v1/order"
    )
    assert kinds.index(EventType.ENTRY_INTENT) < first_order
    assert len(journal.of_type(EventType.STOP_MOVED)) == 3
    assert journal.of_type(EventType.POSITION_CLOSED)
    assert not [e for e in env.events if "crash" in str(e).lower()]


async def test_entry_reply_lost_after_acceptance_is_resolved_by_new_client_order_id() -> None:
    """The venue fills the entry but the reply is lost: the actor looks the entry up by
    newClientOrderId (GET /fapi/v1/order?origClientOrderId=), finds it FILLED, protects it,
    and never sends a second entry — which Binance would accept (client ids are unique only
    among open orders) and which would open a second position."""
    with trio.fail_after(60):
        async with actor_env("ETHUSDT", D("2500")) as env:
            sb = env.sb
            sb.inject("/fapi/v1/order", method="POST", drop="after")
            outcome = await env.sup.open_position(
                open_request("ETHUSDT", SHORT, "0.100", D("2500"))
            )
            assert outcome.opened, outcome
            pos = sb.engine.position("ETHUSDT", SHORT)
            assert pos.qty == D("0.100")  # exactly one position's worth
            assert live_stops(sb, "ETHUSDT", SHORT) == [D("2550.00")]
    entries = sb.requests_to("/fapi/v1/order", "POST")
    assert len(entries) == 1  # no blind resend
    lookups = [
        r
        for r in sb.requests_to("/fapi/v1/order", "GET")
        if r.params.get("origClientOrderId") == entries[0].params["newClientOrderId"]
    ]
    assert lookups
    assert env.journal.of_type(EventType.ENTRY_OUTCOME_UNKNOWN)
    assert [e.data["found"] for e in env.journal.of_type(EventType.ENTRY_RESOLVED)][-1] is True


async def test_ip_ban_protective_requests_wait_it_out_and_go_first() -> None:
    """A 418 bans the IP. While banned nothing is sent; a trailing stop move (protective)
    and ordinary reads (a balance, open orders) queue up; when the ban ends the stop request
    is sent first, then the reads. The position stays protected throughout."""
    with trio.fail_after(60):
        async with actor_env("BTCUSDT", D("100000")) as env:
            sb, venue = env.sb, env.venue
            outcome = await env.sup.open_position(
                open_request("BTCUSDT", LONG, "0.010", D("100000"))
            )
            assert outcome.opened, outcome
            ban_s = 1.5
            sb.inject("/fapi/v3/balance", http_status=418, retry_after_s=ban_s)
            with pytest.raises(RateLimited):
                await venue.balance()
            banned_at = trio.current_time()
            assert venue.http.budget.is_blocked()
            seen_before = len(sb.request_log)
            results: list[str] = []

            async def read(name: str) -> None:
                if name == "balance":
                    await venue.balance()
                else:
                    await venue.open_orders("BTCUSDT")
                results.append(name)

            async with trio.open_nursery() as nursery:
                nursery.start_soon(read, "balance")
                nursery.start_soon(read, "open_orders")
                await until(lambda: venue.http.budget.queued == 2)
                sb.set_mark("BTCUSDT", D("103000"))  # the actor trails: a protective stop move
                await until(lambda: venue.http.budget.queued >= 3)
                assert len(sb.request_log) == seen_before  # nothing sent during the ban
            await until(lambda: live_stops(sb, "BTCUSDT", LONG) == [D("103000") * D("0.995")])
            after = sb.request_log[seen_before:]
            assert after[0].t - banned_at >= ban_s - 0.05 or after[0].t >= sb.banned_until
            assert (after[0].method, after[0].path) == ("POST", "/fapi/v1/algoOrder")
            normal_paths = {"/fapi/v3/balance", "/fapi/v1/openOrders"}
            first_normal = next(i for i, r in enumerate(after) if r.path in normal_paths)
            assert (
                all(r.path not in normal_paths for r in after[:first_normal]) and first_normal >= 1
            )
            assert sorted(results) == ["balance", "open_orders"]
            assert not env.unprotected[1:]  # only the entry step at open
            priorities = [p for _, p in venue.http.budget.admitted[-len(after) :]]
            assert priorities[0] is Priority.PROTECTIVE


async def test_listen_key_expiry_mid_session_renews_key_and_reverifies_positions() -> None:
    """The listenKey expires while a position is open: the stream gets ``listenKeyExpired``
    and goes quiet. The adapter creates a new key, reconnects, emits a StreamGap, and the
    actor re-verifies its stop at once (the verification requests follow the reconnect)."""
    with trio.fail_after(60):
        async with actor_env("BTCUSDT", D("100000")) as env:
            sb, journal = env.sb, env.journal
            outcome = await env.sup.open_position(
                open_request("BTCUSDT", LONG, "0.010", D("100000"))
            )
            assert outcome.opened, outcome
            old_key = sb.listen_key
            verified = len(journal.of_type(EventType.PROTECTION_VERIFIED))
            accepts = len(sb.ws_accepts)
            assert sb.expire_listen_key() == old_key
            await until(
                lambda: any(
                    e.data.get("reason") == "stream_gap"
                    for e in journal.of_type(EventType.PROTECTION_VERIFIED)[verified:]
                ),
                timeout_s=10,
            )
            new_key = sb.listen_key
            assert new_key is not None and new_key != old_key
            assert sb.subscriptions("private") == [{new_key}]
            reconnect_t = next(
                t for t, path in sb.ws_accepts[accepts:] if path == "/private/stream"
            )
            gap = [
                e for e in journal.of_type(EventType.STREAM_GAP) if e.data["stream"] == "private"
            ]
            assert gap and "listenKeyExpired" in gap[-1].data["reason"]
            # the re-verification (positions + open algo orders) right after the reconnect
            after = [r for r in sb.request_log if r.t >= reconnect_t]
            paths = [r.path for r in after[:2]]
            assert paths == ["/fapi/v3/positionRisk", "/fapi/v1/openAlgoOrders"]
            delay_ms = (after[1].t_reply - reconnect_t) * 1000
            print(f"\nre-verification done {delay_ms:.1f} ms after the user-stream reconnect")
            assert env.venue.stream_stats["listen_keys"] == 2
            # the new key delivers events again: a trailing move is seen on the stream
            sb.set_mark("BTCUSDT", D("103000"))
            await until(lambda: live_stops(sb, "BTCUSDT", LONG) == [D("103000") * D("0.995")])


def venue_ops(sb: BinanceSandbox) -> list[str]:
    """The sandbox's state-changing requests as port operations."""
    names = {
        ("POST", "/fapi/v1/algoOrder"): "place_stop",
        ("DELETE", "/fapi/v1/algoOrder"): "cancel_stop",
        ("DELETE", "/fapi/v1/order"): "cancel_order",
    }
    out = []
    for r in sb.request_log:
        if (r.method, r.path) == ("POST", "/fapi/v1/order"):
            opening = (r.params["side"] == "BUY") == (r.params["positionSide"] == "LONG")
            out.append("place_entry" if opening else "place_reduce")
        elif (r.method, r.path) in names:
            out.append(names[(r.method, r.path)])
    return out


async def test_stop_that_would_trigger_immediately_closes_the_position() -> None:
    """The mark ran through the intended stop between the fill and the stop (-2021 "Order
    would immediately trigger."): the documented close path — a market exit at once, the
    position is not opened, nothing is left behind."""
    with trio.fail_after(60):
        async with actor_env("ETHUSDT", D("2500")) as env:
            sb = env.sb
            sb.inject(
                "/fapi/v1/algoOrder",
                method="POST",
                code=-2021,
                msg="Order would immediately trigger.",
            )
            outcome = await env.sup.open_position(open_request("ETHUSDT", LONG, "0.100", D("2500")))
            assert not outcome.opened and "would_trigger" in outcome.reason
            await until(lambda: sb.engine.position("ETHUSDT", LONG).qty == 0)
            assert not sb.engine.open_orders("ETHUSDT")
    rejected = env.journal.of_type(EventType.STOP_REJECTED)
    assert rejected and rejected[0].data["code"] == "-2021"
    assert venue_ops(sb)[:3] == ["place_entry", "place_stop", "place_reduce"]


async def test_stop_trigger_ends_the_position_and_leaves_nothing_behind() -> None:
    """The mark falls through the algo stop: the venue fires it (TRIGGERING → TRIGGERED →
    FINISHED), the fill arrives under the stop's clientAlgoId, the actor confirms the side
    is flat and ends with reason stop_triggered."""
    with trio.fail_after(60):
        async with actor_env("BTCUSDT", D("100000")) as env:
            sb = env.sb
            outcome = await env.sup.open_position(
                open_request("BTCUSDT", LONG, "0.010", D("100000"))
            )
            assert outcome.opened, outcome
            sb.set_mark("BTCUSDT", D("97500"))
            await until(lambda: env.sup.open_count() == 0)
            assert sb.engine.position("BTCUSDT", LONG).qty == 0
            assert not sb.engine.open_orders("BTCUSDT")
    closed = env.journal.of_type(EventType.POSITION_CLOSED)
    assert closed and closed[-1].data["reason"] == "stop_triggered"
    assert env.journal.of_type(EventType.STOP_TRIGGERED)
    fills = env.journal.of_type(EventType.FILL)
    assert [f.data["reason"] for f in fills] == ["", "stop"]
    assert (
        fills[1].client_order_id
        == sb.requests_to("/fapi/v1/algoOrder", "POST")[0].params["clientAlgoId"]
    )
