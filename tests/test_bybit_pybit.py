"""The Bybit sandbox checked by a client nobody here wrote: Bybit's official SDK, pybit.

pybit's HTTP client is pointed at the sandbox by setting ``session.endpoint``; its
WebSocket client builds its URL from the module constants ``PRIVATE_WSS`` / ``PUBLIC_WSS``
(``wss://{SUBDOMAIN}.{DOMAIN}.{TLD}/...``), so the test points those at the loopback
``ws://`` URLs. pybit is synchronous (requests + websocket-client threads): it runs in a
worker thread while the sandbox serves from the trio loop.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pybit.unified_trading as ut
import pytest
import trio
from _bybit_support import KEY, SECRET, D
from pybit.exceptions import InvalidRequestError

from adapters.bybit_sandbox import BybitSandbox, open_bybit_sandbox, sandbox_engine


def _code(fn: Any, **kwargs: Any) -> int:
    """retCode of a pybit call: 0 on success, else the code pybit raised with."""
    try:
        reply = fn(**kwargs)
    except InvalidRequestError as exc:
        return int(exc.status_code)
    return int(reply["retCode"])


def _wait(pred: Any, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting in the pybit thread")
        time.sleep(0.01)


def _pybit_session(sb: BybitSandbox) -> dict[str, Any]:
    out: dict[str, Any] = {}
    http = ut.HTTP(testnet=False, api_key=KEY, api_secret=SECRET, max_retries=1, retry_delay=0)
    http.endpoint = sb.rest_url
    lock = threading.Lock()
    private: list[dict[str, Any]] = []
    tickers: list[dict[str, Any]] = []

    def on_private(msg: dict[str, Any]) -> None:
        with lock:
            private.append(msg)

    def on_ticker(msg: dict[str, Any]) -> None:
        with lock:
            tickers.append(msg)

    ws_private = ut.WebSocket(channel_type="private", testnet=False, api_key=KEY, api_secret=SECRET)
    ws_public = ut.WebSocket(channel_type="linear", testnet=False)
    try:
        _wait(lambda: ws_private.auth)
        ws_private.order_stream(on_private)
        ws_private.execution_stream(on_private)
        ws_private.position_stream(on_private)
        ws_public.ticker_stream(symbol="BTCUSDT", callback=on_ticker)
        # the subscriptions are asynchronous: trade only once the venue has them
        _wait(lambda: sb.subscriptions("private") == [{"order", "execution", "position"}])

        out["time"] = http.get_server_time()
        inst = http.get_instruments_info(category="linear", symbol="BTCUSDT")["result"]["list"]
        out["instrument"] = inst[0]
        out["entry_one_way"] = _code(
            http.place_order,
            category="linear",
            symbol="BTCUSDT",
            side="Buy",
            orderType="Market",
            qty="0.01",
            positionIdx=1,
            orderLinkId="py-0",
        )
        # one-way mode: positionIdx 0 opens a one-way ETHUSDT position, which keeps that
        # symbol one-way through the coin-wide switch below
        out["entry_one_way_idx0"] = _code(
            http.place_order,
            category="linear",
            symbol="ETHUSDT",
            side="Buy",
            orderType="Market",
            qty="0.1",
            positionIdx=0,
            orderLinkId="py-ow-1",
        )
        out["switch"] = _code(http.switch_position_mode, category="linear", coin="USDT", mode=3)
        out["switch_again"] = _code(
            http.switch_position_mode, category="linear", coin="USDT", mode=3
        )
        out["switch_eth_busy"] = _code(
            http.switch_position_mode, category="linear", symbol="ETHUSDT", mode=3
        )
        out["eth_one_way"] = http.get_positions(category="linear", symbol="ETHUSDT")["result"][
            "list"
        ]
        out["eth_close"] = _code(
            http.place_order,
            category="linear",
            symbol="ETHUSDT",
            side="Sell",
            orderType="Market",
            qty="0.1",
            positionIdx=0,
            reduceOnly=True,
            orderLinkId="py-ow-2",
        )
        out["eth_flat"] = http.get_positions(category="linear", symbol="ETHUSDT")["result"]["list"]
        out["switch_eth"] = _code(
            http.switch_position_mode, category="linear", symbol="ETHUSDT", mode=3
        )
        out["eth_executions"] = http.get_executions(category="linear", symbol="ETHUSDT")["result"][
            "list"
        ]
        out["eth_closed_pnl"] = http.get_closed_pnl(category="linear", symbol="ETHUSDT")["result"][
            "list"
        ]
        out["leverage"] = _code(
            http.set_leverage,
            category="linear",
            symbol="BTCUSDT",
            buyLeverage="5",
            sellLeverage="5",
        )
        out["leverage_again"] = _code(
            http.set_leverage,
            category="linear",
            symbol="BTCUSDT",
            buyLeverage="5",
            sellLeverage="5",
        )
        out["entry"] = http.place_order(
            category="linear",
            symbol="BTCUSDT",
            side="Buy",
            orderType="Market",
            qty="0.01",
            positionIdx=1,
            orderLinkId="py-1",
            stopLoss="98000",
            slTriggerBy="MarkPrice",
            tpslMode="Full",
        )
        out["duplicate"] = _code(
            http.place_order,
            category="linear",
            symbol="BTCUSDT",
            side="Buy",
            orderType="Market",
            qty="0.01",
            positionIdx=1,
            orderLinkId="py-1",
        )
        out["positions_after_entry"] = http.get_positions(category="linear", symbol="BTCUSDT")[
            "result"
        ]["list"]
        out["move"] = _code(
            http.set_trading_stop,
            category="linear",
            symbol="BTCUSDT",
            tpslMode="Full",
            positionIdx=1,
            stopLoss="99000",
            slTriggerBy="MarkPrice",
        )
        out["move_same"] = _code(
            http.set_trading_stop,
            category="linear",
            symbol="BTCUSDT",
            tpslMode="Full",
            positionIdx=1,
            stopLoss="99000",
            slTriggerBy="MarkPrice",
        )
        out["move_through"] = _code(
            http.set_trading_stop,
            category="linear",
            symbol="BTCUSDT",
            tpslMode="Full",
            positionIdx=1,
            stopLoss="100500",
        )
        out["stop_zero_position"] = _code(
            http.set_trading_stop,
            category="linear",
            symbol="BTCUSDT",
            tpslMode="Full",
            positionIdx=2,
            stopLoss="101000",
        )
        out["cond_flipped"] = _code(
            http.place_order,
            category="linear",
            symbol="BTCUSDT",
            side="Sell",
            orderType="Market",
            qty="0.005",
            positionIdx=1,
            triggerPrice="97000",
            triggerDirection=1,
            triggerBy="MarkPrice",
            reduceOnly=True,
            closeOnTrigger=True,
            orderLinkId="py-2x",
        )
        out["cond"] = _code(
            http.place_order,
            category="linear",
            symbol="BTCUSDT",
            side="Sell",
            orderType="Market",
            qty="0.005",
            positionIdx=1,
            triggerPrice="97000",
            triggerDirection=2,
            triggerBy="MarkPrice",
            reduceOnly=True,
            closeOnTrigger=True,
            orderLinkId="py-2",
        )
        out["stop_orders"] = http.get_open_orders(
            category="linear", symbol="BTCUSDT", orderFilter="StopOrder"
        )["result"]["list"]
        out["entry_order"] = http.get_open_orders(
            category="linear", symbol="BTCUSDT", orderLinkId="py-1"
        )["result"]["list"]
        out["cancel"] = _code(
            http.cancel_order, category="linear", symbol="BTCUSDT", orderLinkId="py-2"
        )
        out["cancel_again"] = _code(
            http.cancel_order, category="linear", symbol="BTCUSDT", orderLinkId="py-2"
        )
        out["history"] = http.get_order_history(
            category="linear", symbol="BTCUSDT", orderLinkId="py-2"
        )["result"]["list"]
        out["positions"] = http.get_positions(category="linear", symbol="BTCUSDT")["result"]["list"]
        out["wallet"] = http.get_wallet_balance(accountType="UNIFIED")["result"]["list"]
        _wait(lambda: {m["topic"] for m in private} >= {"order", "execution", "position"})
        _wait(lambda: len(tickers) >= 1)
        with lock:
            out["private"] = list(private)
            out["tickers"] = list(tickers)
    finally:
        ws_private.exit()
        ws_public.exit()
    bad = ut.HTTP(testnet=False, api_key=KEY, api_secret="wrong", max_retries=1)
    bad.endpoint = sb.rest_url
    out["bad_sign"] = _code(bad.get_positions, category="linear", symbol="BTCUSDT")
    return out


async def test_pybit_trades_against_the_sandbox(monkeypatch: pytest.MonkeyPatch) -> None:
    with trio.fail_after(30):
        async with open_bybit_sandbox(sandbox_engine(), api_key=KEY, api_secret=SECRET) as sb:
            sb.ws_latency_s = 0.02  # pybit registers a subscription after sending it
            sb.set_mark("BTCUSDT", D("100000"))
            sb.set_mark("ETHUSDT", D("2500"))
            monkeypatch.setattr(ut, "PRIVATE_WSS", sb.private_ws_url)
            monkeypatch.setattr(
                ut, "PUBLIC_WSS", sb.public_ws_url.replace("linear", "{CHANNEL_TYPE}")
            )
            out = await trio.to_thread.run_sync(_pybit_session, sb)

    assert out["time"]["retCode"] == 0 and int(out["time"]["result"]["timeSecond"]) > 0
    assert out["instrument"]["lotSizeFilter"]["qtyStep"] == "0.001"
    assert out["instrument"]["priceFilter"]["tickSize"] == "0.1"
    lot = out["instrument"]["lotSizeFilter"]
    assert D(lot["maxMktOrderQty"]) <= D(lot["maxOrderQty"])
    # documented codes: 10001 wrong positionIdx for the mode, 110025 / 110043 not modified,
    # 110072 duplicate orderLinkId, 34040 trading-stop not modified, 10001 stop through the
    # base price / zero position, 110092 trigger direction contradicts the price, 110001
    # unknown order, 10004 bad signature
    assert out["entry_one_way"] == 10001
    assert out["entry_one_way_idx0"] == 0
    # the coin-wide switch answers 0 then 110025 although ETHUSDT (with a position) stayed
    # one-way; by symbol it says 110024 until the symbol is flat
    assert (out["switch"], out["switch_again"]) == (0, 110025)
    assert out["switch_eth_busy"] == 110024
    [eth] = out["eth_one_way"]
    assert (eth["positionIdx"], eth["side"], eth["size"]) == (0, "Buy", "0.1")
    assert out["eth_close"] == 0
    [flat] = out["eth_flat"]
    assert (flat["positionIdx"], flat["side"], flat["size"]) == (0, "", "0")
    assert out["switch_eth"] == 0
    execs = {e["orderLinkId"]: e for e in out["eth_executions"]}
    assert set(execs) == {"py-ow-1", "py-ow-2"}
    assert (execs["py-ow-2"]["closedSize"], execs["py-ow-2"]["execQty"]) == ("0.1", "0.1")
    assert "execPnl" not in execs["py-ow-2"] and "positionIdx" not in execs["py-ow-2"]
    [pnl] = out["eth_closed_pnl"]
    assert (pnl["side"], pnl["closedSize"], pnl["avgEntryPrice"]) == ("Sell", "0.1", "2500")
    fees = sum(D(e["execFee"]) for e in execs.values())
    assert D(pnl["closedPnl"]) == -fees  # flat price: the PnL is the two fees
    assert (out["leverage"], out["leverage_again"]) == (0, 110043)
    assert out["entry"]["retCode"] == 0 and out["entry"]["result"]["orderLinkId"] == "py-1"
    assert out["duplicate"] == 110072
    rows = {r["positionIdx"]: r for r in out["positions_after_entry"]}
    assert set(rows) == {1, 2}
    assert (rows[1]["side"], rows[1]["size"], rows[1]["stopLoss"]) == ("Buy", "0.01", "98000")
    assert (rows[2]["side"], rows[2]["size"]) == ("", "0")
    assert (out["move"], out["move_same"], out["move_through"]) == (0, 34040, 10001)
    assert out["stop_zero_position"] == 10001
    assert (out["cond_flipped"], out["cond"]) == (110092, 0)
    by_type = {o["stopOrderType"]: o for o in out["stop_orders"]}
    assert set(by_type) == {"Stop", "StopLoss"}  # the position's Full SL is listed too
    assert (by_type["StopLoss"]["triggerPrice"], by_type["StopLoss"]["qty"]) == ("99000", "0")
    stop = by_type["Stop"]
    assert (
        stop["orderLinkId"],
        stop["orderStatus"],
        stop["triggerDirection"],
        stop["stopOrderType"],
        stop["reduceOnly"],
    ) == ("py-2", "Untriggered", 2, "Stop", True)
    [entry] = out["entry_order"]
    assert (entry["orderStatus"], entry["cumExecQty"], entry["avgPrice"]) == (
        "Filled",
        "0.01",
        "100000",
    )
    assert (out["cancel"], out["cancel_again"]) == (0, 110001)
    assert out["history"][0]["orderStatus"] == "Deactivated"
    rows = {r["positionIdx"]: r for r in out["positions"]}
    assert rows[1]["stopLoss"] == "99000"
    usdt = out["wallet"][0]["coin"][0]
    assert usdt["coin"] == "USDT" and D(usdt["walletBalance"]) < D(10000)
    assert usdt["availableToWithdraw"] == ""  # deprecated for UNIFIED accounts
    by_topic: dict[str, list[dict[str, Any]]] = {}
    for m in out["private"]:
        by_topic.setdefault(m["topic"], []).extend(m["data"])
    assert any(
        o["orderLinkId"] == "py-1" and o["orderStatus"] == "Filled" for o in by_topic["order"]
    )
    assert any(e["orderLinkId"] == "py-1" and e["execQty"] == "0.01" for e in by_topic["execution"])
    assert any(p["positionIdx"] == 1 and p["stopLoss"] == "99000" for p in by_topic["position"])
    assert out["tickers"][0]["data"]["markPrice"] == "100000"
    assert out["bad_sign"] == 10004
