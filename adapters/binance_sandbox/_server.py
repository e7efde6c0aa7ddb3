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

import json
import math
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import attrs
import trio
import trio_websocket

from adapters.binance_sandbox._records import (
    Fault,
    LoggedRequest,
    _ApiError,
    _params,
    _RateError,
)
from adapters.binance_sandbox._ws import _SandboxWs
from adapters.bybit_sandbox._http11 import DROP, HttpReply, HttpRequest, serve_http
from adapters.paper import PaperEngine
from tradebot.errors import RejectedError, VenueError

__all__ = ["BinanceSandbox", "Fault", "LoggedRequest", "open_binance_sandbox"]


@attrs.define
class _Route:
    handler: Callable[[BinanceSandbox, dict[str, str]], Any]
    security: str  # NONE | USER_STREAM | SIGNED


class BinanceSandbox(_SandboxWs):
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

    # --- REST: dispatch -----------------------------------------------------------------------

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
