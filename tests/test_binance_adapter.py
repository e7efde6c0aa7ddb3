"""BinanceVenue against the Binance sandbox over real loopback sockets (REST)."""

from __future__ import annotations

import json

import pytest
import trio
from _binance_support import KEY, SECRET, D, binance_env, urls_of

from adapters.binance import (
    BINANCE_CAPABILITIES,
    BinanceVenue,
    ServerClock,
    binance_urls,
    venue_from_config,
)
from adapters.bybit.http import _wall_ms
from adapters.paper import binance_like
from tradebot.config import ExchangeConfig
from tradebot.domain import OrderStatus, OrderType, PositionSide
from tradebot.errors import (
    ConfigError,
    DuplicateClientOrderId,
    FatalVenueError,
    OrderValidationError,
    OutcomeUnknown,
    RateLimited,
    ReduceOnlyRejected,
    RejectedError,
    TransientError,
    UnknownOrder,
    WouldTriggerImmediately,
)
from tradebot.events import EventType, MemoryJournal
from tradebot.ports import EntryRequest, ExchangePort, ReduceRequest, StopRequest, StopState

LONG, SHORT = PositionSide.LONG, PositionSide.SHORT


def entry(
    cid: str, side: PositionSide = LONG, qty: str = "0.010", symbol: str = "BTCUSDT"
) -> EntryRequest:
    return EntryRequest(symbol, side, D(qty), cid)


def stop(cid: str, price: str, side: PositionSide = LONG, symbol: str = "BTCUSDT") -> StopRequest:
    return StopRequest(symbol, side, D(price), cid)


async def test_port_shape_capabilities_and_urls() -> None:
    with trio.fail_after(5):
        async with binance_env() as (_, venue):
            assert isinstance(venue, ExchangePort)
            assert venue.capabilities == BINANCE_CAPABILITIES
            caps = venue.capabilities
            assert not caps.attached_stop and not caps.amend_stop and caps.stop_has_client_id
    # the paper profile imitates the same venue: same protocol choices
    paper = binance_like().capabilities
    assert (paper.attached_stop, paper.amend_stop, paper.stop_has_client_id) == (False, False, True)
    assert paper.max_conditional_per_symbol == caps.max_conditional_per_symbol
    assert binance_urls("mainnet").rest_url == "https://fapi.binance.com"
    assert binance_urls("mainnet").market_ws_url == "wss://fstream.binance.com/market"
    assert binance_urls("mainnet").private_ws_url == "wss://fstream.binance.com/private"
    assert binance_urls("demo").rest_url == "https://demo-fapi.binance.com"
    assert binance_urls("testnet", rest_url="http://127.0.0.1:1/").rest_url == "http://127.0.0.1:1"
    with pytest.raises(ConfigError) as info:
        binance_urls("moon")
    assert info.value.problems[0][0] == "exchange.environment"


async def test_setup_account_switches_and_verifies_hedge_mode_margin_and_leverage() -> None:
    with trio.fail_after(10):
        async with binance_env(hedge=False) as (sb, venue):
            # one-way account: a hedge-mode order is refused until the mode is switched
            with pytest.raises(RejectedError) as info:
                await venue.place_entry(entry("tb-a1-E0"))
            assert info.value.code == "-4061"
            await venue.setup_account({"BTCUSDT": 5, "ETHUSDT": 3})
            await venue.setup_account({"BTCUSDT": 5, "ETHUSDT": 3})  # -4059 / -4046 = ok
            assert sb.dual_side and sb.engine.leverage("BTCUSDT") == 5
            assert sb.engine.leverage("ETHUSDT") == 3
            codes = [r.code for r in sb.request_log if r.code is not None]
            assert codes.count(-4059) == 1 and -4046 in codes
            assert sb.requests_to("/fapi/v1/positionSide/dual", "GET")  # verified, not assumed
            assert sb.requests_to("/fapi/v1/symbolConfig", "GET")
            await venue.place_entry(entry("tb-a1-E1"))
            # with a position open, switching the mode is refused (-4068): a real refusal
            sb.dual_side = False
            with pytest.raises(RejectedError) as info:
                await venue.setup_account({})
            assert info.value.code == "-4068"
            sb.dual_side = True
            with pytest.raises(ValueError):
                await venue.setup_account({"BTCUSDT": 0})


async def test_setup_account_fails_when_the_venue_does_not_show_the_setting() -> None:
    with trio.fail_after(10):
        async with binance_env(hedge=False) as (sb, venue):
            # the GET answers false although the POST said success: never assume
            sb.inject(
                "/fapi/v1/positionSide/dual",
                method="POST",
                code=200,
                msg="success",
                http_status=200,
            )
            with pytest.raises(RejectedError) as info:
                await venue.setup_account({"BTCUSDT": 5})
            assert info.value.code == "hedge_mode_unverified"


async def test_instruments_from_exchange_info_filters() -> None:
    with trio.fail_after(5):
        async with binance_env() as (sb, venue):
            insts = await venue.instruments()
            assert set(insts) == set(sb.engine.instruments())
            btc, mine = insts["BTCUSDT"], sb.engine.instruments()["BTCUSDT"]
            assert (btc.tick_size, btc.qty_step, btc.min_qty, btc.min_notional) == (
                mine.tick_size,
                mine.qty_step,
                mine.min_qty,
                mine.min_notional,
            )
            assert len(sb.requests_to("/fapi/v1/exchangeInfo")) == 1
            await venue.instruments()  # cached
            assert len(sb.requests_to("/fapi/v1/exchangeInfo")) == 1


async def test_entry_stop_place_query_cancel_and_both_id_spaces() -> None:
    journal = MemoryJournal()
    with trio.fail_after(10):
        async with binance_env(journal=journal) as (sb, venue):
            o = await venue.place_entry(entry("tb-b1-E0"))
            assert (o.status, o.filled_qty, o.avg_fill_price) == (
                OrderStatus.FILLED,
                D("0.010"),
                D("100000"),
            )
            req = sb.requests_to("/fapi/v1/order", "POST")[0].params
            assert req["newOrderRespType"] == "RESULT" and req["positionSide"] == "LONG"
            assert "reduceOnly" not in req
            st = await venue.place_stop(stop("tb-b1-S1", "98000.0"))
            assert st.client_order_id == "tb-b1-S1" and st.venue_order_id and st.qty is None
            algo = sb.requests_to("/fapi/v1/algoOrder", "POST")[0].params
            assert algo["algoType"] == "CONDITIONAL" and algo["type"] == "STOP_MARKET"
            assert algo["closePosition"] == "true" and algo["workingType"] == "MARK_PRICE"
            assert (algo["side"], algo["positionSide"]) == ("SELL", "LONG")
            assert "quantity" not in algo and "reduceOnly" not in algo
            assert await venue.stops("BTCUSDT", LONG) == [st]
            assert await venue.stops("BTCUSDT", SHORT) == []
            # both id spaces: the stop is an algo order, the entry a regular order
            got_stop = await venue.get_order("BTCUSDT", "tb-b1-S1")
            assert got_stop is not None and got_stop.order_type is OrderType.STOP_MARKET
            assert got_stop.venue_order_id == st.venue_order_id and got_stop.close_position
            q = sb.requests_to("/fapi/v1/algoOrder", "GET")[0].params
            assert q["clientAlgoId"] == "tb-b1-S1" and "origClientOrderId" not in q
            got_entry = await venue.get_order("BTCUSDT", "tb-b1-E0")
            assert got_entry is not None and got_entry.venue_order_id == o.venue_order_id
            assert await venue.get_order("BTCUSDT", "tb-b1-E9") is None  # -2013: definitive
            assert await venue.get_order("BTCUSDT", "tb-b1-S9") is None
            assert await venue.get_order("BTCUSDT", "not-ours") is None  # both spaces asked
            opened = await venue.open_orders("BTCUSDT")
            assert [x.client_order_id for x in opened] == ["tb-b1-S1"]
            [pos] = await venue.positions()
            assert (pos.position_side, pos.qty, pos.entry_price) == (LONG, D("0.010"), D("100000"))
            await venue.cancel_stop(st)
            assert await venue.stops("BTCUSDT", LONG) == []
            with pytest.raises(UnknownOrder):
                await venue.cancel_stop(st)  # -2011
            with pytest.raises(UnknownOrder):  # an algo id on the regular endpoint: -2011
                await venue.cancel_order("BTCUSDT", "tb-b1-S1")
            with pytest.raises(RejectedError) as info:
                await venue.amend_stop(st, D("99000"))
            assert info.value.code == "not_supported"
    assert -4120 not in sb.replied_codes()
    # journaled, with the signature redacted and no secret anywhere
    text = json.dumps([e.data for e in journal.events], default=str)
    assert SECRET not in text and KEY not in text
    assert all(
        "signature" not in r.data.get("params", {})
        for r in journal.of_type(EventType.EXCHANGE_REQUEST)
    )


async def test_stop_refusals_would_trigger_duplicate_and_partial() -> None:
    with trio.fail_after(10):
        async with binance_env() as (sb, venue):
            await venue.place_entry(entry("tb-c1-E0", SHORT, "0.100", "ETHUSDT"))
            # through the mark: refused by the venue (-2021) when no streamed mark is known
            with pytest.raises(WouldTriggerImmediately) as info:
                await venue.place_stop(stop("tb-c1-S1", "2400", SHORT, "ETHUSDT"))
            assert info.value.code == "-2021"
            # a fresh streamed mark lets the adapter refuse it without a request
            venue.marks.update("ETHUSDT", D("2500"))
            n = len(sb.request_log)
            with pytest.raises(WouldTriggerImmediately) as info:
                await venue.place_stop(stop("tb-c1-S2", "2490", SHORT, "ETHUSDT"))
            assert info.value.code == "local_check" and len(sb.request_log) == n
            st = await venue.place_stop(stop("tb-c1-S3", "2550", SHORT, "ETHUSDT"))
            with pytest.raises(DuplicateClientOrderId):  # -4116 among open algo orders
                await venue.place_stop(stop("tb-c1-S3", "2560", SHORT, "ETHUSDT"))
            partial = await venue.place_stop(
                StopRequest("ETHUSDT", SHORT, D("2600"), "tb-c1-S4", qty=D("0.050"))
            )
            assert partial.qty == D("0.050")
            params = sb.requests_to("/fapi/v1/algoOrder", "POST")[-1].params
            assert params["quantity"] == "0.050" and "closePosition" not in params
            assert {s.client_order_id for s in await venue.stops("ETHUSDT", SHORT)} == {
                st.client_order_id,
                "tb-c1-S4",
            }


async def test_reduce_orders_in_hedge_mode() -> None:
    with trio.fail_after(10):
        async with binance_env() as (sb, venue):
            await venue.place_entry(entry("tb-d1-E0", LONG, "0.020"))
            with pytest.raises(ReduceOnlyRejected):  # more than the position: -2022
                await venue.place_reduce(ReduceRequest("BTCUSDT", LONG, D("0.030"), "tb-d1-C1"))
            with pytest.raises(ReduceOnlyRejected):  # nothing to reduce on SHORT
                await venue.place_reduce(ReduceRequest("BTCUSDT", SHORT, D("0.010"), "tb-d1-C2"))
            lim = await venue.place_reduce(
                ReduceRequest("BTCUSDT", LONG, D("0.010"), "tb-d1-T1", price=D("105000"))
            )
            assert lim.status is OrderStatus.NEW and lim.order_type is OrderType.LIMIT
            p = sb.requests_to("/fapi/v1/order", "POST")[-1].params
            assert (p["side"], p["positionSide"], p["timeInForce"]) == ("SELL", "LONG", "GTC")
            assert "reduceOnly" not in p
            assert [o.client_order_id for o in await venue.open_orders()] == ["tb-d1-T1"]
            await venue.cancel_order("BTCUSDT", "tb-d1-T1")
            with pytest.raises(UnknownOrder):
                await venue.cancel_order("BTCUSDT", "tb-d1-T1")
            m = await venue.place_reduce(ReduceRequest("BTCUSDT", LONG, D("0.020"), "tb-d1-C3"))
            assert m.status is OrderStatus.FILLED and await venue.positions() == []
            fills = await venue.account_trades("BTCUSDT")
            assert [f.client_order_id for f in fills] == ["tb-d1-E0", "tb-d1-C3"]
            assert fills[1].realized_pnl_usdt == D("0") and fills[1].fee_usdt > 0
            with pytest.raises(OrderValidationError):  # below min notional: -4164
                await venue.place_entry(entry("tb-d1-E1", LONG, "0.005", "ETHUSDT"))


async def test_clock_skew_resyncs_and_retries_once() -> None:
    journal = MemoryJournal()
    with trio.fail_after(10):
        skewed = ServerClock(local_ms=lambda: _wall_ms() - 30_000)  # our clock 30 s slow
        async with binance_env(journal=journal, server_clock=skewed) as (sb, venue):
            bal = await venue.balance()  # -1021 → re-sync → one retry → ok
            assert bal.wallet_usdt == D("10000")
            assert [r.code for r in sb.requests_to("/fapi/v3/balance")] == [-1021, None]
            assert journal.of_type(EventType.CLOCK_RESYNC)
            assert abs(skewed.offset_ms - 30_000) < 2_000


async def test_bad_signature_is_fatal_and_never_retried() -> None:
    with trio.fail_after(10):
        async with binance_env() as (sb, _):
            bad = BinanceVenue(urls_of(sb), KEY, "wrong-secret")
            async with bad:
                with pytest.raises(FatalVenueError) as info:
                    await bad.balance()
            assert info.value.code == "-1022"
            assert [r.code for r in sb.requests_to("/fapi/v3/balance")] == [-1022]
            wrong_key = BinanceVenue(urls_of(sb), "wrong", SECRET)
            async with wrong_key:
                with pytest.raises(FatalVenueError) as info:
                    await wrong_key.positions()
            assert info.value.code == "-2015"


async def test_lost_reply_and_server_errors() -> None:
    with trio.fail_after(10):
        async with binance_env() as (sb, venue):
            sb.inject("/fapi/v1/order", method="POST", drop="after")
            with pytest.raises(OutcomeUnknown):
                await venue.place_entry(entry("tb-e1-E0"))
            found = await venue.get_order("BTCUSDT", "tb-e1-E0")
            assert found is not None and found.status is OrderStatus.FILLED  # it was accepted
            sb.inject(
                "/fapi/v1/algoOrder",
                http_status=503,
                msg="Unknown error, please check your request or try again later.",
            )
            with pytest.raises(OutcomeUnknown):
                await venue.place_stop(stop("tb-e1-S1", "98000"))
            sb.inject("/fapi/v3/positionRisk", http_status=503, msg="Service Unavailable.")
            with pytest.raises(TransientError):
                await venue.positions()
            sb.inject(
                "/fapi/v1/algoOrder",
                method="POST",
                code=-1007,
                msg="Timeout waiting for response from backend server. Send status unknown; execution status unknown.",
            )
            with pytest.raises(OutcomeUnknown):
                await venue.place_stop(stop("tb-e1-S2", "98000"))
            sb.inject("/fapi/v1/openAlgoOrders", code=-1007, msg="Timeout")
            with pytest.raises(TransientError):  # a read: never "no stops"
                await venue.stops("BTCUSDT", LONG)


async def test_venue_from_config() -> None:
    env = {"BK": "k", "BS": "s"}
    cfg = ExchangeConfig(
        venue="binance",
        environment="mainnet",
        rest_url="http://127.0.0.1:9",
        ws_public_url="ws://127.0.0.1:9/market",
        api_key_env="BK",
        api_secret_env="BS",
        recv_window_ms=7000,
    )
    v = venue_from_config(cfg, environ=env)
    assert v.urls.rest_url == "http://127.0.0.1:9"
    assert v.urls.market_ws_url == "ws://127.0.0.1:9/market"
    assert v.urls.private_ws_url == "wss://fstream.binance.com/private"
    assert v.http.recv_window_ms == 7000 and "s" not in repr(v.http).split("api_key")[1]
    await v.aclose()
    with pytest.raises(ConfigError) as info:
        venue_from_config(cfg, environ={})
    assert {k for k, _ in info.value.problems} == {
        "exchange.api_key_env",
        "exchange.api_secret_env",
    }
    with pytest.raises(ConfigError):
        venue_from_config({"venue": "bybit"}, environ=env)
    with pytest.raises(ConfigError) as info:
        venue_from_config({"venue": "binance", "recv_window_ms": 90_000}, environ=env)
    assert info.value.problems[0][0] == "exchange.recv_window_ms"
    with pytest.raises(ConfigError) as info:
        venue_from_config({"venue": "binance", "margin_type": "CROSS"}, environ=env)
    assert info.value.problems[0][0] == "exchange.margin_type"


async def test_stop_state_without_ids_cannot_be_cancelled() -> None:
    with trio.fail_after(5):
        async with binance_env() as (_, venue):
            with pytest.raises(UnknownOrder):
                await venue.cancel_stop(StopState("BTCUSDT", LONG, D("1")))


async def test_weight_headers_and_a_429_block_the_budget() -> None:
    """The venue's ``X-MBX-USED-WEIGHT-1M`` is adopted; over the limit the sandbox answers
    429 -1003 with ``Retry-After`` and the adapter sends nothing until it has passed."""
    with trio.fail_after(20):
        async with binance_env(sandbox_kwargs={"weight_limit_1m": 12}) as (sb, venue):
            await venue.positions()  # weight 5
            assert venue.http.budget.weight.used == 5
            await venue.positions()
            with pytest.raises(RateLimited) as info:
                await venue.positions()  # 15 > 12
            assert info.value.code == "http_429" and "-1003" in info.value.venue_message
            assert 0 < info.value.retry_after_s <= 60
            assert venue.http.budget.is_blocked()
            n = len(sb.request_log)
            with trio.move_on_after(0.3):
                await venue.balance()  # waits for the block: nothing is sent
            assert len(sb.request_log) == n
            assert sb.requests_to("/fapi/v3/positionRisk")[-1].status == 429


async def test_sandbox_bans_a_client_that_ignores_429() -> None:
    """A client that keeps sending after 429s is banned (418); the ban message says until
    when, and every request meanwhile gets 418."""
    with trio.fail_after(20):
        async with binance_env(
            sandbox_kwargs={"weight_limit_1m": 4, "ban_after_429s": 2, "ban_s": 60}
        ) as (sb, venue):
            for _ in range(4):
                venue.http.budget.blocked_until = float("-inf")  # ignore the back-off
                with pytest.raises(RateLimited):
                    await venue.http.call("GET", "/fapi/v3/positionRisk")
            statuses = [r.status for r in sb.requests_to("/fapi/v3/positionRisk")]
            assert statuses == [429, 429, 418, 418]
            assert venue.http.budget.blocked_until - trio.current_time() > 50  # "banned until"
