"""A Binance-USDⓈ-M-shaped sandbox over the paper matching engine (REST + WebSocket).

Same paths, parameters, field names, types, error codes and signature checks as Binance
USDⓈ-M Futures (after the 2025-12-09 Algo Order migration) for everything the adapter and
the official SDK's calls in our tests touch, so the same client code runs here and against
the venue by changing URLs. Binds to 127.0.0.1 only.

REST (``http://127.0.0.1:PORT``)::

    GET  /fapi/v1/ping, /fapi/v1/time, /fapi/v1/exchangeInfo, /fapi/v1/premiumIndex
    POST|GET /fapi/v1/positionSide/dual      POST /fapi/v1/leverage, /fapi/v1/marginType
    GET  /fapi/v1/symbolConfig, /fapi/v3/balance, /fapi/v3/positionRisk, /fapi/v1/userTrades
    POST|GET|DELETE /fapi/v1/order           GET /fapi/v1/openOrders   DELETE /fapi/v1/allOpenOrders
    POST|GET|DELETE /fapi/v1/algoOrder       GET /fapi/v1/openAlgoOrders, /fapi/v1/allAlgoOrders
    DELETE /fapi/v1/algoOpenOrders           POST|PUT|DELETE /fapi/v1/listenKey

Conditional order types sent to ``/fapi/v1/order`` are refused with
``-4120 STOP_ORDER_SWITCH_ALGO``; algo orders go NEW → TRIGGERING → TRIGGERED → FINISHED
(or CANCELED / EXPIRED), the triggered order gets its own ``orderId`` (``actualOrderId``)
and is reported under the stop's ``clientAlgoId``.

WebSocket (``ws://127.0.0.1:WSPORT``): ``/market/stream`` (``<symbol>@markPrice[@1s]``,
``!markPrice@arr[@1s]``, pushed on every mark change and every ``mark_push_interval_s``)
and ``/private/stream`` (``SUBSCRIBE [listenKey]``; ``ORDER_TRADE_UPDATE``,
``ALGO_UPDATE``, ``ACCOUNT_UPDATE``, ``TRADE_LITE``, ``listenKeyExpired``); ``?streams=a/b``
subscribes at connect. Messages are combined: ``{"stream": name, "data": event}``.

Checks (USDⓈ-M "General Info"): ``X-MBX-APIKEY`` (-2015), ``timestamp`` /
``recvWindow`` (-1021: ``timestamp < serverTime + 1000`` and ``serverTime - timestamp <=
recvWindow``, recvWindow <= 60000), ``signature`` = HMAC-SHA256 over query string +
body (-1022). Request weight per minute and order counts per 10 s / 1 min with the
``X-MBX-USED-WEIGHT-1M`` / ``X-MBX-ORDER-COUNT-*`` headers; over a limit → 429 -1003
(``Retry-After``); ``ban_after_429s`` more → 418 IP ban.

The account starts in one-way mode (``dualSidePosition=false``) like a fresh account; the
paper engine models hedge mode only, so orders need ``positionSide/dual`` true first.

Test hooks: :meth:`BinanceSandbox.inject`, :meth:`BinanceSandbox.ban_for`,
:meth:`BinanceSandbox.set_mark`, :meth:`BinanceSandbox.expire_listen_key`,
:meth:`BinanceSandbox.drop_stream_connections`, :attr:`BinanceSandbox.request_log`.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import math
import re
import secrets
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import parse_qsl

import attrs
import trio
import trio_websocket

from adapters.binance.budget import endpoint_cost
from adapters.binance_sandbox._wire import (
    AlgoMeta,
    OrderMeta,
    algo_row,
    algo_update,
    fmt,
    order_row,
    order_update,
    position_row,
    symbol_row,
    ws_position,
)
from adapters.bybit_sandbox._http11 import DROP, HttpReply, HttpRequest, serve_http
from adapters.paper import PaperEngine, TriggerDirection
from tradebot.domain import Instrument, OrderStatus, OrderType, PositionSide, Side
from tradebot.errors import RejectedError, VenueError
from tradebot.ports import AccountEvent, Fill, OrderState, OrderUpdate, PositionUpdate

__all__ = ["BinanceSandbox", "Fault", "LoggedRequest", "open_binance_sandbox"]

_CID_RE = re.compile(r"^[\.A-Z\:/a-z0-9_-]{1,36}$")
_CONDITIONAL_TYPES = frozenset(
    {"STOP", "STOP_MARKET", "TAKE_PROFIT", "TAKE_PROFIT_MARKET", "TRAILING_STOP_MARKET"}
)
_ACTUAL_ID_BASE = 8_000_000_000


def _wall_ms() -> int:
    return time.time_ns() // 1_000_000


class _ApiError(Exception):
    def __init__(self, code: int, msg: str, status: int = 400) -> None:
        super().__init__(msg)
        self.code = code
        self.msg = msg
        self.status = status


def _mandatory(name: str) -> _ApiError:
    return _ApiError(
        -1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed."
    )


@attrs.define
class Fault:
    """An injected behaviour for the next ``times`` requests to ``path`` (any method unless
    ``method`` is set).

    ``drop="before"``: close the connection without processing; ``"after"``: process the
    request (state changes!) and close without replying; ``code``: answer ``http_status``
    (default 400) with ``{"code", "msg"}`` without processing; ``http_status`` alone: answer
    that status (418/429 with ``Retry-After: retry_after_s``; a 418 also bans the IP for
    that long); ``delay_s``: hold the reply (after processing).
    """

    path: str
    method: str | None = None
    code: int | None = None
    msg: str = ""
    drop: str = ""
    times: int = 1
    http_status: int | None = None
    retry_after_s: float = 1.0
    delay_s: float = 0.0


@attrs.define
class LoggedRequest:
    """A request the sandbox received, in arrival order, with how it was answered."""

    seq: int
    method: str
    path: str
    params: dict[str, str]
    t: float  # trio.current_time() at arrival
    status: int = 0
    code: int | None = None
    t_reply: float = 0.0


class _WsConn:
    def __init__(self, ws: trio_websocket.WebSocketConnection, private: bool) -> None:
        self.ws = ws
        self.private = private
        self.streams: set[str] = set()
        self.send, self.recv = trio.open_memory_channel[str](2000)

    def push(self, stream: str, data: Any) -> None:
        try:
            self.send.send_nowait(json.dumps({"stream": stream, "data": data}))
        except (trio.WouldBlock, trio.ClosedResourceError, trio.BrokenResourceError):
            self.send.close()  # slow consumer: drop the connection (writer ends)

    def reply(self, msg: Mapping[str, Any]) -> None:
        try:
            self.send.send_nowait(json.dumps(msg))
        except (trio.WouldBlock, trio.ClosedResourceError, trio.BrokenResourceError):
            self.send.close()


@attrs.define
class _Route:
    handler: Callable[[BinanceSandbox, dict[str, str]], Any]
    security: str  # NONE | USER_STREAM | SIGNED


class BinanceSandbox:
    """The sandbox's state and handlers. Start it with :func:`open_binance_sandbox`.

    Args:
        engine: a paper engine with a ``binance_like`` profile and the instruments to serve.
        api_key / api_secret: the only credentials accepted.
        hedge_mode: start with ``dualSidePosition=true`` (default False, like a new account).
        weight_limit_1m / order_limit_10s / order_limit_1m: rate limits (None: unlimited).
        ban_after_429s: consecutive 429 answers after which the IP is banned (418).
        ban_s: length of such a ban.
        listen_key_ttl_s: listenKey validity after creation / keepalive (Binance: 60 min).
        mark_push_interval_s: period of the markPrice pushes (Binance: 1 s for ``@1s``).
    """

    def __init__(
        self,
        engine: PaperEngine,
        *,
        api_key: str = "sandbox-key",
        api_secret: str = "sandbox-secret",
        hedge_mode: bool = False,
        weight_limit_1m: int | None = 2400,
        order_limit_10s: int | None = 300,
        order_limit_1m: int | None = 1200,
        ban_after_429s: int = 3,
        ban_s: float = 120.0,
        listen_key_ttl_s: float = 3600.0,
        mark_push_interval_s: float = 1.0,
    ) -> None:
        self.engine = engine
        self.api_key = api_key
        self.api_secret = api_secret
        self.dual_side = hedge_mode
        self.weight_limit_1m = weight_limit_1m
        self.order_limit_10s = order_limit_10s
        self.order_limit_1m = order_limit_1m
        self.ban_after_429s = ban_after_429s
        self.ban_s = ban_s
        self.listen_key_ttl_s = listen_key_ttl_s
        self.mark_push_interval_s = mark_push_interval_s
        self.faults: list[Fault] = []
        self.request_log: list[LoggedRequest] = []
        self.rest_url = ""
        self.market_ws_url = ""
        self.private_ws_url = ""
        self.ws_accepts: list[tuple[float, str]] = []  # (trio time, path) of accepted WS
        self.banned_until = -1.0  # trio time
        self._log_seq = itertools.count(1)
        self._margin_type: dict[str, str] = {}
        self._weight: tuple[int, int] = (0, 0)  # (minute window, used)
        self._orders_10s: tuple[int, int] = (0, 0)
        self._orders_1m: tuple[int, int] = (0, 0)
        self._consecutive_429 = 0
        self._orders: dict[str, OrderState] = {}  # regular + algo, by venue id
        self._order_meta: dict[str, OrderMeta] = {}
        self._algo_meta: dict[str, AlgoMeta] = {}
        self._order_vid_by_cid: dict[str, str] = {}
        self._algo_vid_by_cid: dict[str, str] = {}
        self._children: dict[str, str] = {}  # actual orderId → algo vid
        self._actual_ids = itertools.count(_ACTUAL_ID_BASE + 1)
        self._trades: list[tuple[Fill, str]] = []  # (fill, wire orderId)
        self._listen_key: str | None = None
        self._listen_key_expires = 0.0  # trio time
        self._conns: set[_WsConn] = set()
        self._pending_algo: AlgoMeta | None = None
        self._pending_order: OrderMeta | None = None
        self.lose_listen_key_before_subscribe = 0
        """Test hook: the next N listenKey subscriptions find the key gone (it expired
        between its creation and the SUBSCRIBE) and are refused."""
        engine.subscribe(self._on_engine_event)

    # --- test hooks ---------------------------------------------------------------------

    def inject(
        self,
        path: str,
        *,
        method: str | None = None,
        code: int | None = None,
        msg: str = "",
        drop: str = "",
        times: int = 1,
        http_status: int | None = None,
        retry_after_s: float = 1.0,
        delay_s: float = 0.0,
    ) -> None:
        """Add a :class:`Fault` for the next ``times`` requests to ``path``."""
        if drop not in ("", "before", "after"):
            raise ValueError("drop must be '', 'before' or 'after'")
        self.faults.append(
            Fault(path, method, code, msg, drop, times, http_status, retry_after_s, delay_s)
        )

    def ban_for(self, seconds: float) -> None:
        """Ban the client's IP: every request gets 418 -1003 for ``seconds``."""
        self.banned_until = trio.current_time() + seconds

    def requests_to(self, path: str, method: str | None = None) -> list[LoggedRequest]:
        return [
            r for r in self.request_log if r.path == path and (method is None or r.method == method)
        ]

    def replied_codes(self) -> list[int]:
        """Every venue error code answered so far (e.g. to prove no -4120 happened)."""
        return [r.code for r in self.request_log if r.code is not None]

    def set_mark(self, symbol: str, mark_price: Decimal) -> None:
        """Move ``symbol``'s mark price: triggers stops, pushes a markPriceUpdate."""
        self.engine.set_mark(symbol, mark_price, datetime.now(UTC))
        self._push_mark(symbol)

    def expire_listen_key(self, *, notify: bool = True) -> str | None:
        """Expire the active listenKey now: its subscribers get ``listenKeyExpired`` (unless
        ``notify`` is False: a silent expiry) and no further events; keepalives answer
        -1125. Returns the key expired."""
        key = self._listen_key
        self._listen_key = None
        if key is None:
            return None
        for c in list(self._conns):
            if c.private and key in c.streams:
                if notify:
                    c.push(key, {"e": "listenKeyExpired", "E": _wall_ms(), "listenKey": key})
                c.streams.discard(key)
        return key

    @property
    def listen_key(self) -> str | None:
        self._check_listen_key()
        return self._listen_key

    async def drop_stream_connections(self, which: str = "market") -> int:
        """Close every ``market``/``private`` stream connection; returns how many."""
        victims = [c for c in self._conns if c.private == (which == "private")]
        for c in victims:
            with trio.move_on_after(1):
                await c.ws.aclose(code=1001, reason="sandbox drop")
        return len(victims)

    def stream_connections(self, which: str = "market") -> int:
        return sum(1 for c in self._conns if c.private == (which == "private"))

    def subscriptions(self, which: str = "market") -> list[set[str]]:
        return [set(c.streams) for c in self._conns if c.private == (which == "private")]

    # --- engine events → user-data stream -----------------------------------------------

    def _user_event(self, event: dict[str, Any]) -> None:
        self._check_listen_key()
        key = self._listen_key
        if key is None:
            return
        for c in list(self._conns):
            if c.private and key in c.streams:
                c.push(key, event)

    def _on_engine_event(self, ev: AccountEvent) -> None:
        now = _wall_ms()
        if isinstance(ev, OrderUpdate):
            o = ev.order
            if o.order_type is OrderType.STOP_MARKET:
                self._on_algo_update(o, now)
            else:
                self._on_order_update(o, now)
        elif isinstance(ev, Fill):
            self._on_fill(ev, now)
        elif isinstance(ev, PositionUpdate):
            p = ev.position
            w = self.engine.wallet()
            self._user_event(
                {
                    "e": "ACCOUNT_UPDATE",
                    "E": now,
                    "T": now,
                    "a": {
                        "m": "ORDER",
                        "B": [
                            {
                                "a": "USDT",
                                "wb": fmt(w.wallet_usdt),
                                "cw": fmt(w.wallet_usdt),
                                "bc": "0",
                            }
                        ],
                        "P": [ws_position(p, margin_type=self._margin(p.symbol))],
                    },
                }
            )

    def _on_order_update(self, o: OrderState, now: int) -> None:
        vid = o.venue_order_id
        if vid not in self._order_meta:
            self._order_meta[vid] = self._pending_order or OrderMeta(created_ms=now, updated_ms=now)
            self._pending_order = None
        meta = self._order_meta[vid]
        meta.updated_ms = now
        self._orders[vid] = o
        if o.client_order_id:
            self._order_vid_by_cid[o.client_order_id] = vid
        execution = {
            OrderStatus.NEW: "NEW",
            OrderStatus.CANCELED: "CANCELED",
            OrderStatus.EXPIRED: "EXPIRED",
        }.get(o.status)
        if execution is None:
            return  # fills are reported by their TRADE execution; rejections never rest
        self._user_event(
            {
                "e": "ORDER_TRADE_UPDATE",
                "E": now,
                "T": now,
                "o": order_update(
                    o, meta, order_id=int(vid), execution=execution, status=execution, now_ms=now
                ),
            }
        )

    def _on_algo_update(self, o: OrderState, now: int) -> None:
        vid = o.venue_order_id
        if vid not in self._algo_meta:
            self._algo_meta[vid] = self._pending_algo or AlgoMeta(created_ms=now, updated_ms=now)
            self._pending_algo = None
        meta = self._algo_meta[vid]
        meta.updated_ms = now
        self._orders[vid] = o
        if o.client_order_id:
            self._algo_vid_by_cid[o.client_order_id] = vid

        def report(status: str) -> None:
            meta.status = status
            self._user_event(
                {"e": "ALGO_UPDATE", "E": now, "T": now, "o": algo_update(o, meta, status)}
            )

        if o.status is OrderStatus.NEW:
            report("NEW")
        elif o.status is OrderStatus.TRIGGERED:
            # the algo service fires: TRIGGERING, then the order it placed (own orderId,
            # reported under the stop's clientAlgoId), then TRIGGERED with ``ai``
            meta.trigger_ms = now
            report("TRIGGERING")
            actual = str(next(self._actual_ids))
            meta.actual_order_id = actual
            self._children[actual] = vid
            self._order_meta[actual] = OrderMeta(
                created_ms=now, updated_ms=now, orig_type="STOP_MARKET", algo_vid=vid
            )
            self._user_event(
                {
                    "e": "ORDER_TRADE_UPDATE",
                    "E": now,
                    "T": now,
                    "o": order_update(
                        o,
                        self._order_meta[actual],
                        order_id=int(actual),
                        execution="NEW",
                        status="NEW",
                        now_ms=now,
                    ),
                }
            )
            report("TRIGGERED")
        elif o.status is OrderStatus.FILLED:
            report("FINISHED")
        elif o.status is OrderStatus.EXPIRED:
            report("EXPIRED")
        elif o.status is OrderStatus.REJECTED:
            report("REJECTED")
        elif o.status is OrderStatus.CANCELED:
            report("CANCELED")

    def _on_fill(self, f: Fill, now: int) -> None:
        if f.reason == "funding" or not f.venue_order_id:
            return
        vid = f.venue_order_id
        o = self.engine.get_order_by_venue_id(f.symbol, vid) or self._orders.get(vid)
        if o is None:
            return
        if o.order_type is OrderType.STOP_MARKET:
            wire_id = self._algo_meta[vid].actual_order_id
            meta = self._order_meta[wire_id]
        else:
            wire_id = vid
            meta = self._order_meta.setdefault(vid, OrderMeta(created_ms=now, updated_ms=now))
        meta.cum_qty += f.qty
        meta.cum_quote += f.qty * f.price
        meta.updated_ms = now
        done = o.close_position or meta.cum_qty >= o.qty
        status = "FILLED" if done else "PARTIALLY_FILLED"
        self._trades.append((f, wire_id))
        self._user_event(
            {
                "e": "ORDER_TRADE_UPDATE",
                "E": now,
                "T": now,
                "o": order_update(
                    o,
                    meta,
                    order_id=int(wire_id),
                    execution="TRADE",
                    status=status,
                    now_ms=now,
                    fill=f,
                ),
            }
        )
        self._user_event(
            {
                "e": "TRADE_LITE",
                "E": now,
                "T": now,
                "s": f.symbol,
                "q": fmt(o.qty),
                "p": "0",
                "m": f.is_maker,
                "c": o.client_order_id,
                "S": f.side.value,
                "L": fmt(f.price),
                "l": fmt(f.qty),
                "t": int(f.trade_id.lstrip("TF") or 0),
                "i": int(wire_id),
            }
        )

    # --- marks → market stream ----------------------------------------------------------

    def _mark_event(self, symbol: str, now: int) -> dict[str, Any] | None:
        mark = self.engine.mark_price(symbol)
        if mark is None:
            return None
        next_funding = (now // 28_800_000 + 1) * 28_800_000
        return {
            "e": "markPriceUpdate",
            "E": now,
            "s": symbol,
            "p": fmt(mark),
            "i": fmt(mark),
            "P": fmt(mark),
            "r": "0.00010000",
            "T": next_funding,
        }

    def _push_mark(self, symbol: str) -> None:
        now = _wall_ms()
        ev = self._mark_event(symbol, now)
        if ev is None:
            return
        low = symbol.lower()
        for c in list(self._conns):
            if c.private:
                continue
            for name in (f"{low}@markPrice@1s", f"{low}@markPrice"):
                if name in c.streams:
                    c.push(name, ev)
            for name in ("!markPrice@arr@1s", "!markPrice@arr"):
                if name in c.streams:
                    c.push(name, [ev])

    async def _mark_pusher(self) -> None:
        while True:
            await trio.sleep(self.mark_push_interval_s)
            for symbol in sorted(self.engine.instruments()):
                self._push_mark(symbol)

    # --- REST: plumbing -----------------------------------------------------------------

    def _reply(
        self,
        status: int,
        body: Any,
        headers: Sequence[tuple[str, str]] = (),
    ) -> HttpReply:
        data = json.dumps(body, separators=(",", ":")).encode()
        return HttpReply(status, [("Content-Type", "application/json"), *headers], data)

    def _take_fault(self, method: str, path: str) -> Fault | None:
        for f in self.faults:
            if f.path == path and f.times > 0 and (f.method is None or f.method == method):
                f.times -= 1
                if f.times == 0:
                    self.faults.remove(f)
                return f
        return None

    def _check_auth(self, req: HttpRequest, security: str, params: dict[str, str]) -> None:
        if security == "NONE":
            return
        key = req.headers.get("x-mbx-apikey", "")
        if key != self.api_key:
            raise _ApiError(-2015, "Invalid API-key, IP, or permissions for action.", 401)
        if security != "SIGNED":
            return
        if "signature" not in params:
            raise _mandatory("signature")
        if "timestamp" not in params:
            raise _mandatory("timestamp")
        try:
            ts = int(params["timestamp"])
            recv = int(params.get("recvWindow", "5000"))
        except ValueError:
            raise _ApiError(-1100, "Illegal characters found in parameter 'timestamp'.") from None
        if not 0 < recv <= 60_000:
            raise _ApiError(-1130, "Data sent for parameter 'recvWindow' is not valid.")
        server = _wall_ms()
        if ts >= server + 1000:
            raise _ApiError(
                -1021, "Timestamp for this request was 1000ms ahead of the server's time."
            )
        if server - ts > recv:
            raise _ApiError(-1021, "Timestamp for this request is outside of the recvWindow.")
        # totalParams = query string + request body, without the signature parameter
        payload = _without_signature(req.query) + _without_signature(req.body.decode("latin-1"))
        expected = hmac.new(self.api_secret.encode(), payload.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, params["signature"].lower()):
            raise _ApiError(-1022, "Signature for this request is not valid.")

    def _rate(self, method: str, path: str, params: dict[str, str]) -> list[tuple[str, str]]:
        """Count the request; raise 429/418 when a limit is broken."""
        now_ms = _wall_ms()
        weight, orders = endpoint_cost(method, path, params)
        minute, ten_s = now_ms // 60_000, now_ms // 10_000

        def bump(state: tuple[int, int], window: int, units: int) -> tuple[int, int]:
            w, used = state
            return (window, (used if w == window else 0) + units)

        self._weight = bump(self._weight, minute, weight)
        headers = [("X-MBX-USED-WEIGHT-1M", str(self._weight[1]))]
        broken = ""
        if self.weight_limit_1m is not None and self._weight[1] > self.weight_limit_1m:
            broken = (
                f"-1003:Too many requests; current limit of IP(127.0.0.1) is "
                f"{self.weight_limit_1m} requests per minute. Please use the websocket for "
                "live updates to avoid polling the API."
            )
            retry = 60 - (now_ms // 1000) % 60
        if orders:
            self._orders_10s = bump(self._orders_10s, ten_s, orders)
            self._orders_1m = bump(self._orders_1m, minute, orders)
            headers += [
                ("X-MBX-ORDER-COUNT-10S", str(self._orders_10s[1])),
                ("X-MBX-ORDER-COUNT-1M", str(self._orders_1m[1])),
            ]
            if (
                not broken
                and self.order_limit_10s is not None
                and self._orders_10s[1] > self.order_limit_10s
            ):
                broken = f"-1015:Too many new orders; current limit is {self.order_limit_10s} orders per TEN_SECONDS."
                retry = 10 - (now_ms // 1000) % 10
            if (
                not broken
                and self.order_limit_1m is not None
                and self._orders_1m[1] > self.order_limit_1m
            ):
                broken = f"-1015:Too many new orders; current limit is {self.order_limit_1m} orders per MINUTE."
                retry = 60 - (now_ms // 1000) % 60
        if not broken:
            self._consecutive_429 = 0
            return headers
        self._consecutive_429 += 1
        if self._consecutive_429 > self.ban_after_429s:
            self.ban_for(self.ban_s)
            raise _RateError(418, -1003, self._ban_message(), int(self.ban_s), headers)
        code, _, msg = broken.partition(":")
        raise _RateError(429, int(code), msg, retry, headers)

    def _ban_message(self) -> str:
        until = _wall_ms() + int(max(self.banned_until - trio.current_time(), 0) * 1000)
        return (
            f"Way too many requests; IP(127.0.0.1) banned until {until}. Please use the "
            "websocket for live updates to avoid bans."
        )

    async def handle(self, req: HttpRequest) -> HttpReply | object:
        route = _ROUTES.get((req.method, req.path))
        params = _params(req)
        entry = LoggedRequest(
            next(self._log_seq), req.method, req.path, params, trio.current_time()
        )
        if len(self.request_log) >= 200_000:  # long CLI runs: keep the newest half
            del self.request_log[:100_000]
        self.request_log.append(entry)
        reply = await self._handle(req, route, params, entry)
        if isinstance(reply, HttpReply):
            entry.status = reply.status
            try:
                body = json.loads(reply.body)
            except ValueError:
                body = None
            if isinstance(body, dict) and isinstance(body.get("code"), int) and body["code"] < 0:
                entry.code = body["code"]
        entry.t_reply = trio.current_time()
        return reply

    async def _handle(
        self, req: HttpRequest, route: _Route | None, params: dict[str, str], entry: LoggedRequest
    ) -> HttpReply | object:
        if route is None:
            return HttpReply(
                404, [("Content-Type", "text/html")], b"<html><body>404 Not Found</body></html>"
            )
        if trio.current_time() < self.banned_until:
            retry = max(math.ceil(self.banned_until - trio.current_time()), 1)
            return self._reply(
                418, {"code": -1003, "msg": self._ban_message()}, [("Retry-After", str(retry))]
            )
        fault = self._take_fault(req.method, req.path)
        if fault is not None and fault.http_status in (418, 429) and fault.code is None:
            if fault.http_status == 418:
                self.ban_for(fault.retry_after_s)
                msg = self._ban_message()
            else:
                msg = "Too many requests; current limit is 2400 request weight per 1 MINUTE."
            return self._reply(
                fault.http_status,
                {"code": -1003, "msg": msg},
                [("Retry-After", str(max(math.ceil(fault.retry_after_s), 1)))],
            )
        try:
            self._check_auth(req, route.security, params)
            headers = self._rate(req.method, req.path, params)
        except _RateError as exc:
            return self._reply(
                exc.status,
                {"code": exc.code, "msg": exc.msg},
                [*exc.headers, ("Retry-After", str(max(exc.retry_s, 1)))],
            )
        except _ApiError as exc:
            return self._reply(exc.status, {"code": exc.code, "msg": exc.msg})
        if fault is not None and fault.drop == "before":
            return DROP
        if fault is not None and fault.code is not None:
            return self._reply(
                fault.http_status or 400,
                {"code": fault.code, "msg": fault.msg or "injected"},
                headers,
            )
        if fault is not None and fault.http_status is not None and fault.http_status >= 500:
            return HttpReply(
                fault.http_status,
                [("Content-Type", "text/plain")],
                (fault.msg or "Service Unavailable.").encode(),
            )
        self.engine.advance_to(datetime.now(UTC))
        status = 200
        try:
            body = route.handler(self, params)
        except _ApiError as exc:
            status, body = exc.status, {"code": exc.code, "msg": exc.msg}
        except RejectedError as exc:
            code = int(exc.code) if exc.code.lstrip("-").isdigit() else -1000
            status, body = 400, {"code": code, "msg": exc.venue_message or str(exc)}
        except VenueError as exc:
            status, body = 400, {"code": -1000, "msg": f"internal: {exc}"}
        if fault is not None and fault.delay_s > 0:
            await trio.sleep(fault.delay_s)
        if fault is not None and fault.drop == "after":
            return DROP
        return self._reply(status, body, headers)

    # --- helpers ------------------------------------------------------------------------

    def _margin(self, symbol: str) -> str:
        return self._margin_type.get(symbol, "CROSSED")

    def _instrument(self, params: Mapping[str, str], *, required: bool = True) -> Instrument | None:
        symbol = params.get("symbol")
        if not symbol:
            if required:
                raise _mandatory("symbol")
            return None
        inst = self.engine.instruments().get(symbol)
        if inst is None:
            raise _ApiError(-1121, "Invalid symbol.")
        return inst

    def _symbol(self, params: Mapping[str, str]) -> Instrument:
        inst = self._instrument(params)
        assert inst is not None
        return inst

    @staticmethod
    def _dec(params: Mapping[str, str], name: str, *, required: bool = True) -> Decimal | None:
        v = params.get(name)
        if v is None or v == "":
            if required:
                raise _mandatory(name)
            return None
        try:
            d = Decimal(v)
        except InvalidOperation:
            raise _ApiError(
                -1100,
                f"Illegal characters found in parameter '{name}'; legal range is '^([0-9]{{1,20}})(\\.[0-9]{{1,20}})?$'.",
            ) from None
        if not d.is_finite() or d < 0:
            raise _ApiError(-1100, f"Illegal characters found in parameter '{name}'.")
        return d

    @staticmethod
    def _bool(params: Mapping[str, str], name: str) -> bool | None:
        v = params.get(name)
        if v is None:
            return None
        if v.lower() not in ("true", "false"):
            raise _ApiError(-1130, f"Data sent for parameter '{name}' is not valid.")
        return v.lower() == "true"

    def _sides(self, params: Mapping[str, str]) -> tuple[Side, PositionSide]:
        side_raw = params.get("side")
        if side_raw not in ("BUY", "SELL"):
            raise _ApiError(-1117, "Invalid side.") if side_raw else _mandatory("side")
        ps_raw = params.get("positionSide", "BOTH")
        if not self.dual_side:
            # one-way mode: LONG/SHORT do not match the account's setting; BOTH is not
            # modelled (the paper engine is hedge-mode only)
            raise _ApiError(
                -4061,
                "Order's position side does not match user's setting. (sandbox: set "
                "dualSidePosition=true first; it trades in hedge mode only)",
            )
        if ps_raw not in ("LONG", "SHORT"):
            raise _ApiError(-4061, "Order's position side does not match user's setting.")
        return Side(side_raw), PositionSide(ps_raw)

    def _check_cid(self, params: Mapping[str, str], name: str) -> str:
        cid = params.get(name, "")
        if cid and not _CID_RE.match(cid):
            raise _ApiError(
                -1100,
                f"Illegal characters found in parameter '{name}'; legal range is "
                "'^[\\.A-Z\\:/a-z0-9_-]{1,36}$'.",
            )
        return cid

    def _regular(self, params: Mapping[str, str], symbol: str) -> tuple[str, OrderState] | None:
        vid = params.get("orderId") or self._order_vid_by_cid.get(
            params.get("origClientOrderId", "")
        )
        if not params.get("orderId") and not params.get("origClientOrderId"):
            raise _ApiError(-1102, "Either orderId or origClientOrderId must be sent.")
        if vid is None:
            return None
        if vid in self._children:
            algo = self._orders.get(self._children[vid])
            return (vid, algo) if algo is not None and algo.symbol == symbol else None
        o = self._orders.get(vid)
        if o is None or o.symbol != symbol or o.order_type is OrderType.STOP_MARKET:
            return None
        return vid, o

    def _order_row(self, vid: str, o: OrderState) -> Any:
        meta = self._order_meta[vid]
        if meta.algo_vid:  # the order an algo stop placed
            status = (
                "FILLED"
                if o.status is OrderStatus.FILLED
                else ("EXPIRED" if o.status is OrderStatus.EXPIRED else "NEW")
            )
            return order_row(o, meta, order_id=vid, status=status)
        return order_row(o, meta, order_id=vid)

    def _algo(self, params: Mapping[str, str]) -> OrderState | None:
        if not params.get("algoId") and not params.get("clientAlgoId"):
            raise _ApiError(-1102, "Either algoId or clientAlgoId must be sent.")
        vid = params.get("algoId") or self._algo_vid_by_cid.get(params.get("clientAlgoId", ""))
        return self._orders.get(vid) if vid else None

    def _check_listen_key(self) -> None:
        if self._listen_key is not None and trio.current_time() >= self._listen_key_expires:
            self.expire_listen_key()

    # --- handlers: market data and account ----------------------------------------------

    def h_ping(self, params: dict[str, str]) -> Any:
        return {}

    def h_time(self, params: dict[str, str]) -> Any:
        return {"serverTime": _wall_ms()}

    def h_exchange_info(self, params: dict[str, str]) -> Any:
        insts = sorted(self.engine.instruments().values(), key=lambda i: i.symbol)
        return {
            "timezone": "UTC",
            "serverTime": _wall_ms(),
            "futuresType": "U_MARGINED",
            "rateLimits": [
                {
                    "rateLimitType": "REQUEST_WEIGHT",
                    "interval": "MINUTE",
                    "intervalNum": 1,
                    "limit": self.weight_limit_1m or 2400,
                },
                {
                    "rateLimitType": "ORDERS",
                    "interval": "MINUTE",
                    "intervalNum": 1,
                    "limit": self.order_limit_1m or 1200,
                },
                {
                    "rateLimitType": "ORDERS",
                    "interval": "SECOND",
                    "intervalNum": 10,
                    "limit": self.order_limit_10s or 300,
                },
            ],
            "exchangeFilters": [],
            "assets": [{"asset": "USDT", "marginAvailable": True, "autoAssetExchange": "-10000"}],
            "symbols": [symbol_row(i) for i in insts],
        }

    def h_premium_index(self, params: dict[str, str]) -> Any:
        inst = self._instrument(params, required=False)
        now = _wall_ms()
        symbols = [inst.symbol] if inst else sorted(self.engine.instruments())
        rows = []
        for s in symbols:
            ev = self._mark_event(s, now)
            if ev is None:
                continue
            rows.append(
                {
                    "symbol": s,
                    "markPrice": ev["p"],
                    "indexPrice": ev["i"],
                    "estimatedSettlePrice": ev["P"],
                    "lastFundingRate": ev["r"],
                    "interestRate": "0.00010000",
                    "nextFundingTime": ev["T"],
                    "time": now,
                }
            )
        if inst is not None:
            if not rows:
                raise _ApiError(-1121, "Invalid symbol.")
            return rows[0]
        return rows

    def h_balance(self, params: dict[str, str]) -> Any:
        w = self.engine.wallet()
        return [
            {
                "accountAlias": "SgsR",
                "asset": "USDT",
                "balance": fmt(w.wallet_usdt),
                "crossWalletBalance": fmt(w.wallet_usdt),
                "crossUnPnl": fmt(w.unrealized_pnl_usdt),
                "availableBalance": fmt(w.available_usdt),
                "maxWithdrawAmount": fmt(w.available_usdt),
                "marginAvailable": True,
                "updateTime": _wall_ms(),
            }
        ]

    def h_dual_get(self, params: dict[str, str]) -> Any:
        return {"dualSidePosition": self.dual_side}

    def h_dual_set(self, params: dict[str, str]) -> Any:
        want = self._bool(params, "dualSidePosition")
        if want is None:
            raise _mandatory("dualSidePosition")
        if want == self.dual_side:
            raise _ApiError(-4059, "No need to change position side.")
        if self.engine.open_orders():
            raise _ApiError(-4067, "Position side cannot be changed if there exists open orders.")
        if self.engine.positions():
            raise _ApiError(-4068, "Position side cannot be changed if there exists position.")
        self.dual_side = want
        return {"code": 200, "msg": "success"}

    def h_leverage(self, params: dict[str, str]) -> Any:
        inst = self._symbol(params)
        raw = params.get("leverage")
        if not raw:
            raise _mandatory("leverage")
        if not raw.isdigit():
            raise _ApiError(-1130, "Data sent for parameter 'leverage' is not valid.")
        self.engine.set_leverage(inst.symbol, int(raw))
        return {"leverage": int(raw), "maxNotionalValue": "1000000", "symbol": inst.symbol}

    def h_margin_type(self, params: dict[str, str]) -> Any:
        inst = self._symbol(params)
        mt = params.get("marginType")
        if mt not in ("ISOLATED", "CROSSED"):
            raise (
                _ApiError(-1130, "Data sent for parameter 'marginType' is not valid.")
                if mt
                else _mandatory("marginType")
            )
        if mt == self._margin(inst.symbol):
            raise _ApiError(-4046, "No need to change margin type.")
        if self.engine.open_orders(inst.symbol):
            raise _ApiError(-4047, "Margin type cannot be changed if there exists open orders.")
        if self.engine.positions(inst.symbol):
            raise _ApiError(-4048, "Margin type cannot be changed if there exists position.")
        self._margin_type[inst.symbol] = mt
        return {"code": 200, "msg": "success"}

    def h_symbol_config(self, params: dict[str, str]) -> Any:
        inst = self._instrument(params, required=False)
        symbols = [inst.symbol] if inst else sorted(self.engine.instruments())
        return [
            {
                "symbol": s,
                "marginType": self._margin(s),
                "isAutoAddMargin": False,
                "leverage": self.engine.leverage(s),
                "maxNotionalValue": "1000000",
            }
            for s in symbols
        ]

    def h_position_risk(self, params: dict[str, str]) -> Any:
        inst = self._instrument(params, required=False)
        now = _wall_ms()
        symbols = [inst.symbol] if inst else sorted(self.engine.instruments())
        rows = []
        for s in symbols:
            # only symbols with a position or open orders are listed (v3)
            if not self.engine.positions(s) and not self.engine.open_orders(s):
                continue
            for ps in (PositionSide.LONG, PositionSide.SHORT):
                rows.append(
                    position_row(
                        self.engine.position(s, ps),
                        leverage=self.engine.leverage(s),
                        margin_type=self._margin(s),
                        now_ms=now,
                    )
                )
        return rows

    def h_user_trades(self, params: dict[str, str]) -> Any:
        inst = self._symbol(params)
        oid = params.get("orderId")
        start = int(params["startTime"]) if params.get("startTime", "").isdigit() else None
        limit = int(params.get("limit") or 500)
        rows = []
        for f, wire_id in self._trades:
            if f.symbol != inst.symbol or (oid and wire_id != oid):
                continue
            t = int(f.ts.timestamp() * 1000)
            if start is not None and t < start:
                continue
            rows.append(
                {
                    "buyer": f.side is Side.BUY,
                    "commission": fmt(f.fee_usdt),
                    "commissionAsset": "USDT",
                    "id": int(f.trade_id.lstrip("TF") or 0),
                    "maker": f.is_maker,
                    "orderId": int(wire_id),
                    "price": fmt(f.price),
                    "qty": fmt(f.qty),
                    "quoteQty": fmt(f.qty * f.price),
                    "realizedPnl": fmt(f.realized_pnl_usdt),
                    "side": f.side.value,
                    "positionSide": f.position_side.value,
                    "symbol": f.symbol,
                    "time": t,
                }
            )
        return rows[-limit:]

    # --- handlers: regular orders -------------------------------------------------------

    def h_order_new(self, params: dict[str, str]) -> Any:
        inst = self._symbol(params)
        order_type = params.get("type")
        if not order_type:
            raise _mandatory("type")
        if order_type in _CONDITIONAL_TYPES:
            raise _ApiError(
                -4120,
                "Order type not supported for this endpoint. Please use the Algo Order API "
                "endpoints instead.",
            )
        if order_type not in ("MARKET", "LIMIT"):
            raise _ApiError(-1116, "Invalid orderType.")
        side, ps = self._sides(params)
        if "reduceOnly" in params:
            raise _ApiError(-1106, "Parameter 'reduceOnly' sent when not required.")
        if "closePosition" in params:
            raise _ApiError(-1106, "Parameter 'closePosition' sent when not required.")
        qty = self._dec(params, "quantity")
        cid = self._check_cid(params, "newClientOrderId") or f"x-sandbox{secrets.token_hex(8)}"
        resp_type = params.get("newOrderRespType", "ACK")
        if resp_type not in ("ACK", "RESULT"):
            raise _ApiError(-1136, "Invalid newOrderRespType.")
        price = None
        tif = "GTC"
        if order_type == "LIMIT":
            price = self._dec(params, "price")
            tif = params.get("timeInForce", "")
            if not tif:
                raise _mandatory("timeInForce")
            if tif != "GTC":
                raise _ApiError(-1115, "Invalid timeInForce. (sandbox: GTC only)")
        now = _wall_ms()
        self._pending_order = OrderMeta(created_ms=now, updated_ms=now, time_in_force=tif)
        try:
            o = self.engine.submit_order(
                symbol=inst.symbol,
                side=side,
                position_side=ps,
                order_type=OrderType.MARKET if order_type == "MARKET" else OrderType.LIMIT,
                qty=qty,
                client_order_id=cid,
                price=price,
            )
        finally:
            self._pending_order = None
        meta = self._order_meta[o.venue_order_id]
        if resp_type == "ACK":
            ack = attrs.evolve(
                o, status=OrderStatus.NEW, filled_qty=Decimal(0), avg_fill_price=None
            )
            return order_row(
                ack, attrs.evolve(meta, cum_quote=Decimal(0)), order_id=o.venue_order_id
            )
        return order_row(o, meta, order_id=o.venue_order_id)

    def h_order_get(self, params: dict[str, str]) -> Any:
        inst = self._symbol(params)
        found = self._regular(params, inst.symbol)
        if found is None:
            raise _ApiError(-2013, "Order does not exist.")
        return self._order_row(*found)

    def h_order_cancel(self, params: dict[str, str]) -> Any:
        inst = self._symbol(params)
        found = self._regular(params, inst.symbol)
        if found is None or found[0] in self._children or not found[1].status.is_live:
            raise _ApiError(-2011, "Unknown order sent.")
        vid, o = found
        cancelled = self.engine.cancel_order(inst.symbol, o.client_order_id, vid)
        return self._order_row(vid, cancelled)

    def h_open_orders(self, params: dict[str, str]) -> Any:
        inst = self._instrument(params, required=False)
        return [
            self._order_row(o.venue_order_id, o)
            for o in self.engine.open_orders(inst.symbol if inst else None)
            if o.order_type is not OrderType.STOP_MARKET
        ]

    def h_cancel_all(self, params: dict[str, str]) -> Any:
        inst = self._symbol(params)
        self.engine.cancel_all(inst.symbol, algo=False)
        return {"code": 200, "msg": "The operation of cancel all open order is done."}

    # --- handlers: algo orders ----------------------------------------------------------

    def h_algo_new(self, params: dict[str, str]) -> Any:
        inst = self._symbol(params)
        if params.get("algoType") != "CONDITIONAL":
            raise (
                _ApiError(-1130, "Data sent for parameter 'algoType' is not valid.")
                if params.get("algoType")
                else _mandatory("algoType")
            )
        order_type = params.get("type")
        if not order_type:
            raise _mandatory("type")
        if order_type != "STOP_MARKET":
            raise _ApiError(-1116, "Invalid orderType. (sandbox: algo STOP_MARKET only)")
        side, ps = self._sides(params)
        if "reduceOnly" in params:
            raise _ApiError(-1106, "Parameter 'reduceOnly' sent when not required.")
        trigger = self._dec(params, "triggerPrice")
        assert trigger is not None
        working = params.get("workingType", "CONTRACT_PRICE")
        if working != "MARK_PRICE":
            raise _ApiError(
                -1130,
                "Data sent for parameter 'workingType' is not valid. (sandbox: triggers on "
                "MARK_PRICE only)",
            )
        close_all = bool(self._bool(params, "closePosition"))
        qty = self._dec(params, "quantity", required=not close_all)
        if close_all and qty is not None:
            raise _ApiError(-4137, "Quantity must be zero with closePosition equals true.")
        if close_all and side is not ps.exit_side:
            raise _ApiError(
                -1128,
                "Combination of optional parameters invalid. (closePosition in hedge mode: "
                "SELL with LONG or BUY with SHORT only)",
            )
        cid = self._check_cid(params, "clientAlgoId") or f"x-sandbox{secrets.token_hex(8)}"
        now = _wall_ms()
        self._pending_algo = AlgoMeta(
            created_ms=now, updated_ms=now, price_protect=bool(self._bool(params, "priceProtect"))
        )
        try:
            o = self.engine.submit_order(
                symbol=inst.symbol,
                side=side,
                position_side=ps,
                order_type=OrderType.STOP_MARKET,
                qty=qty,
                client_order_id=cid,
                trigger_price=trigger,
                # STOP_MARKET: BUY fires when the mark rises to the trigger, SELL when it falls
                trigger_direction=TriggerDirection.RISE
                if side is Side.BUY
                else TriggerDirection.FALL,
                close_position=close_all,
                algo=True,
            )
        finally:
            self._pending_algo = None
        return algo_row(o, self._algo_meta[o.venue_order_id])

    def h_algo_get(self, params: dict[str, str]) -> Any:
        o = self._algo(params)
        if o is None:
            raise _ApiError(-2013, "Order does not exist.")
        return algo_row(o, self._algo_meta[o.venue_order_id])

    def h_algo_cancel(self, params: dict[str, str]) -> Any:
        o = self._algo(params)
        if o is None or o.status is not OrderStatus.NEW:
            raise _ApiError(-2011, "Unknown order sent.")
        self.engine.cancel_algo_order(o.symbol, o.client_order_id, o.venue_order_id)
        return {
            "algoId": int(o.venue_order_id),
            "clientAlgoId": o.client_order_id,
            "code": "200",
            "msg": "success",
        }

    def h_algo_open(self, params: dict[str, str]) -> Any:
        inst = self._instrument(params, required=False)
        if params.get("algoType") not in (None, "CONDITIONAL"):
            raise _ApiError(-1130, "Data sent for parameter 'algoType' is not valid.")
        return [
            algo_row(o, self._algo_meta[o.venue_order_id])
            for o in self.engine.open_orders(inst.symbol if inst else None)
            if o.order_type is OrderType.STOP_MARKET
            and (not params.get("algoId") or params["algoId"] == o.venue_order_id)
        ]

    def h_algo_all(self, params: dict[str, str]) -> Any:
        inst = self._symbol(params)
        return [
            algo_row(o, self._algo_meta[o.venue_order_id])
            for o in self.engine.orders(inst.symbol, algo=True)
        ]

    def h_algo_cancel_all(self, params: dict[str, str]) -> Any:
        inst = self._symbol(params)
        self.engine.cancel_all(inst.symbol, algo=True)
        return {"code": 200, "msg": "The operation of cancel all open order is done."}

    # --- handlers: listenKey ------------------------------------------------------------

    def h_listen_key_new(self, params: dict[str, str]) -> Any:
        self._check_listen_key()
        if self._listen_key is None:
            self._listen_key = secrets.token_hex(32)
        self._listen_key_expires = trio.current_time() + self.listen_key_ttl_s
        return {"listenKey": self._listen_key}

    def h_listen_key_keepalive(self, params: dict[str, str]) -> Any:
        self._check_listen_key()
        if (
            self._listen_key is None
            or params.get("listenKey", self._listen_key) != self._listen_key
        ):
            raise _ApiError(-1125, "This listenKey does not exist.")
        self._listen_key_expires = trio.current_time() + self.listen_key_ttl_s
        return {"listenKey": self._listen_key}

    def h_listen_key_close(self, params: dict[str, str]) -> Any:
        self._listen_key = None
        return {}

    # --- WebSocket ----------------------------------------------------------------------

    async def ws_handler(self, request: trio_websocket.WebSocketRequest) -> None:
        path, _, query = request.path.partition("?")
        if path not in ("/market/stream", "/private/stream", "/public/stream"):
            await request.reject(404)
            return
        ws = await request.accept()
        self.ws_accepts.append((trio.current_time(), path))
        conn = _WsConn(ws, private=path == "/private/stream")
        for k, v in parse_qsl(query):
            if k == "streams":
                self._subscribe(conn, v.split("/"))
        self._conns.add(conn)
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._ws_writer, conn, nursery.cancel_scope)
                try:
                    while True:
                        self._ws_message(conn, await ws.get_message())
                except trio_websocket.ConnectionClosed:
                    nursery.cancel_scope.cancel()
        finally:
            self._conns.discard(conn)
            conn.send.close()

    async def _ws_writer(self, conn: _WsConn, scope: trio.CancelScope) -> None:
        try:
            async for text in conn.recv:
                await conn.ws.send_message(text)
        except trio_websocket.ConnectionClosed:
            pass
        scope.cancel()
        with trio.move_on_after(1) as cs:
            cs.shield = True
            await conn.ws.aclose()

    def _stream_ok(self, conn: _WsConn, name: str) -> bool:
        if conn.private:
            if self.lose_listen_key_before_subscribe > 0:
                self.lose_listen_key_before_subscribe -= 1
                self.expire_listen_key(notify=False)
            self._check_listen_key()
            return name == self._listen_key
        if name in ("!markPrice@arr", "!markPrice@arr@1s"):
            return True
        sym, _, kind = name.partition("@")
        return kind in ("markPrice", "markPrice@1s") and sym.upper() in self.engine.instruments()

    def _subscribe(self, conn: _WsConn, names: list[str]) -> str:
        bad = [n for n in names if not self._stream_ok(conn, n)]
        if bad:
            return f"Invalid request: unknown stream or listenKey {bad[0][:16]!r}"
        conn.streams.update(names)
        return ""

    def _ws_message(self, conn: _WsConn, raw: str | bytes) -> None:
        try:
            msg = json.loads(raw)
        except ValueError:
            conn.reply({"error": {"code": 3, "msg": "Invalid JSON: expected value"}, "id": None})
            return
        if not isinstance(msg, dict):
            conn.reply(
                {
                    "error": {"code": 2, "msg": "Invalid request: request must be an object"},
                    "id": None,
                }
            )
            return
        method, params, req_id = msg.get("method"), msg.get("params", []), msg.get("id")
        if not isinstance(params, list) or not all(isinstance(p, str) for p in params):
            conn.reply(
                {
                    "error": {"code": 2, "msg": "Invalid request: params must be strings"},
                    "id": req_id,
                }
            )
            return
        if method == "SUBSCRIBE":
            why = self._subscribe(conn, params)
            if why:
                conn.reply({"error": {"code": 2, "msg": why}, "id": req_id})
                return
            conn.reply({"result": None, "id": req_id})
            if not conn.private:
                for name in params:
                    sym = name.partition("@")[0].upper()
                    if sym in self.engine.instruments():
                        self._push_mark(sym)
        elif method == "UNSUBSCRIBE":
            conn.streams.difference_update(params)
            conn.reply({"result": None, "id": req_id})
        elif method == "LIST_SUBSCRIPTIONS":
            conn.reply({"result": sorted(conn.streams), "id": req_id})
        else:
            conn.reply({"error": {"code": 1, "msg": f"Invalid method {method!r}"}, "id": req_id})


class _RateError(Exception):
    def __init__(
        self, status: int, code: int, msg: str, retry_s: int, headers: list[tuple[str, str]]
    ) -> None:
        super().__init__(msg)
        self.status = status
        self.code = code
        self.msg = msg
        self.retry_s = retry_s
        self.headers = headers


def _without_signature(raw: str) -> str:
    """``raw`` (query string or form body) without its ``signature=...`` parameter."""
    parts = [p for p in raw.split("&") if p and not p.startswith("signature=")]
    return "&".join(parts)


def _params(req: HttpRequest) -> dict[str, str]:
    """Query and form-body parameters (body wins), percent-decoded."""
    out = dict(parse_qsl(req.query, keep_blank_values=True))
    if req.body:
        out.update(parse_qsl(req.body.decode("latin-1"), keep_blank_values=True))
    return out


_B = BinanceSandbox
_ROUTES: dict[tuple[str, str], _Route] = {
    ("GET", "/fapi/v1/ping"): _Route(_B.h_ping, "NONE"),
    ("GET", "/fapi/v1/time"): _Route(_B.h_time, "NONE"),
    ("GET", "/fapi/v1/exchangeInfo"): _Route(_B.h_exchange_info, "NONE"),
    ("GET", "/fapi/v1/premiumIndex"): _Route(_B.h_premium_index, "NONE"),
    ("GET", "/fapi/v3/balance"): _Route(_B.h_balance, "SIGNED"),
    ("GET", "/fapi/v1/positionSide/dual"): _Route(_B.h_dual_get, "SIGNED"),
    ("POST", "/fapi/v1/positionSide/dual"): _Route(_B.h_dual_set, "SIGNED"),
    ("POST", "/fapi/v1/leverage"): _Route(_B.h_leverage, "SIGNED"),
    ("POST", "/fapi/v1/marginType"): _Route(_B.h_margin_type, "SIGNED"),
    ("GET", "/fapi/v1/symbolConfig"): _Route(_B.h_symbol_config, "SIGNED"),
    ("GET", "/fapi/v3/positionRisk"): _Route(_B.h_position_risk, "SIGNED"),
    ("GET", "/fapi/v1/userTrades"): _Route(_B.h_user_trades, "SIGNED"),
    ("POST", "/fapi/v1/order"): _Route(_B.h_order_new, "SIGNED"),
    ("GET", "/fapi/v1/order"): _Route(_B.h_order_get, "SIGNED"),
    ("DELETE", "/fapi/v1/order"): _Route(_B.h_order_cancel, "SIGNED"),
    ("GET", "/fapi/v1/openOrders"): _Route(_B.h_open_orders, "SIGNED"),
    ("DELETE", "/fapi/v1/allOpenOrders"): _Route(_B.h_cancel_all, "SIGNED"),
    ("POST", "/fapi/v1/algoOrder"): _Route(_B.h_algo_new, "SIGNED"),
    ("GET", "/fapi/v1/algoOrder"): _Route(_B.h_algo_get, "SIGNED"),
    ("DELETE", "/fapi/v1/algoOrder"): _Route(_B.h_algo_cancel, "SIGNED"),
    ("GET", "/fapi/v1/openAlgoOrders"): _Route(_B.h_algo_open, "SIGNED"),
    ("GET", "/fapi/v1/allAlgoOrders"): _Route(_B.h_algo_all, "SIGNED"),
    ("DELETE", "/fapi/v1/algoOpenOrders"): _Route(_B.h_algo_cancel_all, "SIGNED"),
    ("POST", "/fapi/v1/listenKey"): _Route(_B.h_listen_key_new, "USER_STREAM"),
    ("PUT", "/fapi/v1/listenKey"): _Route(_B.h_listen_key_keepalive, "USER_STREAM"),
    ("DELETE", "/fapi/v1/listenKey"): _Route(_B.h_listen_key_close, "USER_STREAM"),
}


@asynccontextmanager
async def open_binance_sandbox(
    engine: PaperEngine,
    *,
    host: str = "127.0.0.1",
    rest_port: int = 0,
    ws_port: int = 0,
    **kwargs: Any,
) -> AsyncIterator[BinanceSandbox]:
    """Run a :class:`BinanceSandbox` on loopback for the duration of the ``async with``.

    Yields the sandbox with ``rest_url``, ``market_ws_url`` and ``private_ws_url`` set (the
    stream bases: clients connect ``<base>/stream``). Ports 0 pick free ports. Extra
    keyword arguments go to :class:`BinanceSandbox`.
    """
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise ValueError("the sandbox binds to loopback only")
    sandbox = BinanceSandbox(engine, **kwargs)
    async with trio.open_nursery() as nursery:
        port = await nursery.start(serve_http, sandbox.handle, host, rest_port)
        ws_server = await nursery.start(
            trio_websocket.serve_websocket, sandbox.ws_handler, host, ws_port, None
        )
        nursery.start_soon(sandbox._mark_pusher)
        sandbox.rest_url = f"http://{host}:{port}"
        sandbox.market_ws_url = f"ws://{host}:{ws_server.port}/market"
        sandbox.private_ws_url = f"ws://{host}:{ws_server.port}/private"
        try:
            yield sandbox
        finally:
            nursery.cancel_scope.cancel()
