"""Fuzzing the Bybit v5 parse functions and the Bybit sandbox's request handling.

Documented contracts:

* ``adapters.bybit.parse``: a venue row either parses into the domain value or raises
  ``ParseError`` (a ``VenueError``: "a shape we do not understand is a venue change") —
  never ``ValueError``/``KeyError``/``OverflowError``. A valid row loses nothing: every
  decimal field comes back as exactly the Decimal of its text.
* ``BybitSandbox.handle`` (the sandbox's request parser): any request — any route, any
  query string or body, signed or not — gets a Bybit envelope (HTTP 200, JSON with an int
  ``retCode`` and a ``retMsg``) or a 404 for an unknown route; it never raises.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import quote

import trio
from hypothesis import given
from hypothesis import strategies as st

from adapters.bybit.parse import (
    ParseError,
    parse_execution,
    parse_instrument,
    parse_order,
    parse_position,
)
from adapters.bybit_sandbox._http11 import HttpReply, HttpRequest
from adapters.bybit_sandbox._server import _ROUTES, BybitSandbox
from adapters.paper import PaperEngine, bybit_like, load_instruments
from tests._fuzz_support import fuzz
from tradebot.domain import PositionSide

junk = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**25), max_value=10**25),
    st.floats(),
    st.text(max_size=12),
    st.sampled_from(["", "0", "-1", "NaN", "Infinity", "1e400", "abc", "99999999999999999999"]),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=4), st.integers(), max_size=2),
)
dec_text = st.decimals(min_value=Decimal("0.00000001"), max_value=10**7, places=8).map(str)

VALID_ORDER = {
    "symbol": "BTCUSDT",
    "orderLinkId": "tb-p1-E0",
    "orderId": "1000000001",
    "side": "Buy",
    "positionIdx": 1,
    "orderType": "Limit",
    "orderStatus": "New",
    "qty": "0.01",
    "cumExecQty": "0",
    "avgPrice": "",
    "price": "100000.5",
    "triggerPrice": "0",
    "reduceOnly": False,
    "updatedTime": "1747699200000",
}
VALID_POSITION = {
    "symbol": "BTCUSDT",
    "positionIdx": 2,
    "side": "Sell",
    "size": "0.02",
    "avgPrice": "101000.5",
    "markPrice": "100999.9",
    "liqPrice": "120000",
    "unrealisedPnl": "0.01",
    "stopLoss": "103000",
}
VALID_EXECUTION = {
    "symbol": "BTCUSDT",
    "orderLinkId": "",
    "orderId": "1000000002",
    "execId": "e-1",
    "side": "Sell",
    "execQty": "0.02",
    "execPrice": "100990.1",
    "execFee": "1.1",
    "isMaker": False,
    "execTime": "1747699260000",
    "execPnl": "-0.2",
    "execType": "Trade",
    "stopOrderType": "StopLoss",
}
VALID_INSTRUMENT = {
    "symbol": "BTCUSDT",
    "status": "Trading",
    "priceFilter": {"tickSize": "0.10", "minPrice": "0.10"},
    "lotSizeFilter": {
        "qtyStep": "0.001",
        "minOrderQty": "0.001",
        "maxOrderQty": "100",
        "minNotionalValue": "5",
    },
}


def mutated(row: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    keys = sorted(row)

    @st.composite
    def build(draw: Any) -> dict[str, Any]:
        out = dict(row)
        for key in draw(st.lists(st.sampled_from(keys), max_size=4, unique=True)):
            if draw(st.booleans()):
                out[key] = draw(junk)
            else:
                del out[key]
        if draw(st.booleans()):
            out[draw(st.text(max_size=6))] = draw(junk)
        return out

    return build()


def _parse_or_parse_error(fn: Any, row: Any, *args: Any) -> Any:
    try:
        return fn(row, *args)
    except ParseError:  # the only exception allowed
        return None


@fuzz
@given(mutated(VALID_ORDER))
def test_order_rows(row: dict[str, Any]) -> None:
    _parse_or_parse_error(parse_order, row)


@fuzz
@given(mutated(VALID_POSITION))
def test_position_rows(row: dict[str, Any]) -> None:
    _parse_or_parse_error(parse_position, row)


@fuzz
@given(mutated(VALID_EXECUTION))
def test_execution_rows(row: dict[str, Any]) -> None:
    _parse_or_parse_error(parse_execution, row, PositionSide.SHORT)


@fuzz
@given(
    mutated(VALID_INSTRUMENT),
    mutated(VALID_INSTRUMENT["priceFilter"]) | junk,  # type: ignore[arg-type]
    mutated(VALID_INSTRUMENT["lotSizeFilter"]) | junk,  # type: ignore[arg-type]
)
def test_instrument_rows(row: dict[str, Any], pf: Any, lf: Any) -> None:
    _parse_or_parse_error(parse_instrument, {**row, "priceFilter": pf, "lotSizeFilter": lf})


@fuzz
@given(dec_text, dec_text, dec_text, st.integers(min_value=0, max_value=2**41))
def test_valid_rows_lose_nothing(qty: str, price: str, fee: str, ms: int) -> None:
    order = parse_order({**VALID_ORDER, "qty": qty, "price": price, "updatedTime": str(ms)})
    assert (order.qty, order.price) == (Decimal(qty), Decimal(price))
    assert order.updated_at == datetime.fromtimestamp(ms / 1000, UTC)
    fill = parse_execution(
        {**VALID_EXECUTION, "execQty": qty, "execPrice": price, "execFee": fee},
        PositionSide.SHORT,
    )
    assert (fill.qty, fill.price, fill.fee_usdt) == (Decimal(qty), Decimal(price), Decimal(fee))
    pos = parse_position({**VALID_POSITION, "size": qty, "avgPrice": price})
    assert (pos.qty, pos.entry_price) == (Decimal(qty), Decimal(price))


# --- the sandbox's request handling ---------------------------------------------------------

ROUTES = sorted(_ROUTES)
PARAM_KEYS = [
    "category", "symbol", "side", "orderType", "qty", "price", "triggerPrice", "positionIdx",
    "orderLinkId", "orderId", "stopLoss", "tpslMode", "slTriggerBy", "reduceOnly", "mode",
    "buyLeverage", "sellLeverage", "limit", "cursor", "timeInForce", "triggerDirection",
    "closeOnTrigger", "coin", "accountType", "settleCoin", "triggerBy", "openOnly",
]  # fmt: skip
param_value = st.one_of(
    junk,
    st.sampled_from(["linear", "BTCUSDT", "ETHUSDT", "Buy", "Sell", "Market", "Limit", "1", "2",
                     "0", "0.001", "0.01", "100000", "50000", "200000", "3", "10", "GTC", "IOC",
                     "USDT", "UNIFIED", "tb-x-E0", "MarkPrice", "Full"]),
)  # fmt: skip
params = st.dictionaries(st.sampled_from(PARAM_KEYS) | st.text(max_size=6), param_value, max_size=8)

KEY, SECRET = "fuzz-key", "fuzz-secret"


def _sandbox() -> BybitSandbox:
    now = datetime.now(UTC)
    engine = PaperEngine(bybit_like(), load_instruments(), wallet_usdt=Decimal(10000), start_ts=now)
    for sym, px in (("BTCUSDT", "100000"), ("ETHUSDT", "2500")):
        engine.set_mark(sym, Decimal(px), now)
    return BybitSandbox(engine, api_key=KEY, api_secret=SECRET, hedge_mode=True, rate_limits=None)


SANDBOX = _sandbox()


def _request(
    route: tuple[str, str], p: dict[str, Any], signed: bool, raw: str | None
) -> HttpRequest:
    method, path = route
    if raw is not None:
        payload = raw
    elif method == "GET":
        payload = "&".join(f"{quote(str(k))}={quote(str(v))}" for k, v in p.items())
    else:
        try:
            payload = json.dumps(p)
        except ValueError:
            payload = "{}"
    headers = {"content-type": "application/json"}
    if signed:
        ts = str(int(time.time() * 1000))
        sign = hmac.new(SECRET.encode(), (ts + KEY + "5000" + payload).encode(), hashlib.sha256)
        headers |= {
            "x-bapi-api-key": KEY,
            "x-bapi-timestamp": ts,
            "x-bapi-recv-window": "5000",
            "x-bapi-sign": sign.hexdigest(),
        }
    target = path + ("?" + payload if method == "GET" and payload else "")
    body = b"" if method == "GET" else payload.encode("utf-8", "surrogatepass")
    return HttpRequest(method=method, target=target, headers=headers, body=body)


@fuzz
@given(
    st.sampled_from(ROUTES) | st.tuples(st.sampled_from(["GET", "POST"]), st.text(max_size=20)),
    params,
    st.booleans(),
    st.none() | st.text(max_size=80),
)
def test_sandbox_answers_every_request_with_an_envelope(
    route: tuple[str, str], p: dict[str, Any], signed: bool, raw: str | None
) -> None:
    req = _request(route, p, signed, raw)
    reply = trio.run(SANDBOX.handle, req)
    assert isinstance(reply, HttpReply)
    if route not in _ROUTES:
        assert reply.status == 404
        return
    assert reply.status == 200
    doc = json.loads(reply.body)
    assert isinstance(doc["retCode"], int) and isinstance(doc["retMsg"], str)
    if route[1] == "/v5/order/create" and doc["retCode"] == 0:
        # accepted: the order exists on the engine under the id the sandbox answered
        vid = doc["result"]["orderId"]
        assert any(o.venue_order_id == vid for o in SANDBOX.engine.open_orders()) or any(
            f.venue_order_id == vid for f in SANDBOX.engine.trade_log
        )
