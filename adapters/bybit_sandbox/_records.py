"""The Bybit sandbox's small parts: scripted faults (:class:`Fault`), the request log
(:class:`LoggedRequest`), the default rate limits and their endpoint groups, one WebSocket
connection, the API errors and "not modified" answers, and the instrument row."""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import attrs
import trio
import trio_websocket

from adapters.bybit.schemas import InstrumentRow
from adapters.bybit_sandbox._wire import (
    fmt,
)
from tradebot.domain import (
    Instrument,
    InstrumentStatus,
    PositionSide,
)

__all__ = ["DEFAULT_RATE_LIMITS", "Fault", "LoggedRequest"]


_CID_RE = re.compile(r"^[A-Za-z0-9_-]{1,36}$")


# per UID, per endpoint group, per second (exchanges.md section 5)
DEFAULT_RATE_LIMITS: dict[str, int] = {"order": 10, "trading_stop": 10, "read": 50, "public": 600}


def _wall_ms() -> int:
    return time.time_ns() // 1_000_000


def _other(side: PositionSide) -> PositionSide:
    return PositionSide.SHORT if side is PositionSide.LONG else PositionSide.LONG


class _ApiError(Exception):
    def __init__(self, ret_code: int, ret_msg: str) -> None:
        super().__init__(ret_msg)
        self.ret_code = ret_code
        self.ret_msg = ret_msg


def _param_error(msg: str) -> _ApiError:
    return _ApiError(10001, msg)


@attrs.define
class Fault:
    """An injected behaviour for the next ``times`` requests to ``path``.

    ``drop="before"``: close the connection without processing (after holding it
    ``delay_s``); ``"after"``: process the request (state changes!) and close without
    replying (after ``delay_s``); ``ret_code``: answer HTTP 200 with that retCode and
    ``ret_msg`` without processing; ``delay_s`` alone: hold the reply (after processing).
    """

    path: str
    ret_code: int | None = None
    ret_msg: str = ""
    drop: str = ""
    times: int = 1
    http_status: int | None = None
    after: bool = False
    delay_s: float = 0.0


@attrs.frozen
class LoggedRequest:
    """A request the sandbox received (after auth), in arrival order."""

    seq: int
    method: str
    path: str
    params: dict[str, Any]
    t: float  # trio.current_time()


def _group(path: str) -> str:
    if path.startswith(("/v5/order/create", "/v5/order/amend", "/v5/order/cancel")):
        return "order"
    if path.startswith("/v5/position/trading-stop"):
        return "trading_stop"
    if path.startswith("/v5/market/"):
        return "public"
    return "read"


class _WsConn:
    def __init__(self, ws: trio_websocket.WebSocketConnection, private: bool) -> None:
        self.ws = ws
        self.private = private
        self.conn_id = str(uuid.uuid4())
        self.topics: set[str] = set()
        self.authed = False
        self.send, self.recv = trio.open_memory_channel[str](1000)

    def push(self, msg: Mapping[str, Any]) -> None:
        try:
            self.send.send_nowait(json.dumps(msg))
        except (trio.WouldBlock, trio.ClosedResourceError, trio.BrokenResourceError):
            self.send.close()  # slow consumer: drop the connection (writer ends)


class _RateError(Exception):
    def __init__(self, limit: int, reset_ms: int) -> None:
        super().__init__("rate limited")
        self.limit = limit
        self.reset_ms = reset_ms


@attrs.frozen
class _Success:
    """A "not modified" answer: non-zero retCode that means success."""

    ret_code: int
    ret_msg: str


def _instrument_row(i: Instrument) -> InstrumentRow:
    exp = i.tick_size.normalize().as_tuple().exponent
    scale = str(-exp) if isinstance(exp, int) and exp < 0 else "0"
    max_qty = i.max_qty if i.max_qty is not None else Decimal(1_000_000)
    max_mkt = i.max_market_qty if i.max_market_qty is not None else max_qty
    status = {
        InstrumentStatus.TRADING: "Trading",
        InstrumentStatus.REDUCE_ONLY: "Delivering",
        InstrumentStatus.CLOSED: "Closed",
    }[i.status]
    return {
        "symbol": i.symbol,
        "contractType": "LinearPerpetual",
        "status": status,
        "baseCoin": i.symbol.removesuffix("USDT"),
        "quoteCoin": "USDT",
        "settleCoin": "USDT",
        "launchTime": "1585526400000",
        "deliveryTime": "0",
        "deliveryFeeRate": "",
        "priceScale": scale,
        "leverageFilter": {"minLeverage": "1", "maxLeverage": "100.00", "leverageStep": "0.01"},
        "priceFilter": {
            "minPrice": fmt(i.price_floor),
            "maxPrice": "1999999.8",
            "tickSize": fmt(i.tick_size),
        },
        "lotSizeFilter": {
            "maxOrderQty": fmt(max_qty),
            "minOrderQty": fmt(i.min_qty),
            "qtyStep": fmt(i.qty_step),
            "postOnlyMaxOrderQty": fmt(max_qty),
            "maxMktOrderQty": fmt(max_mkt),
            "minNotionalValue": fmt(i.min_notional),
        },
        "unifiedMarginTrade": True,
        "fundingInterval": 480,
        "copyTrading": "both",
        "upperFundingRate": "0.005",
        "lowerFundingRate": "-0.005",
        "isPreListing": False,
        "preListingInfo": None,
    }
