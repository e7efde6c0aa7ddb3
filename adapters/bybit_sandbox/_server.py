"""A Bybit-v5-shaped sandbox over the paper matching engine (REST + public/private WS).

Same paths, field names, types, envelopes, retCodes and signature checks as Bybit v5 for
everything the adapter (and pybit's calls used in our tests) touch, so the same client code
runs here and against testnet by changing URLs. Binds to 127.0.0.1 only.

REST (``http://127.0.0.1:PORT``)::

    GET  /v5/market/time                 GET  /v5/market/instruments-info (cursor paging)
    GET  /v5/market/tickers              GET  /v5/account/wallet-balance
    POST /v5/position/switch-mode        POST /v5/position/set-leverage
    POST /v5/position/trading-stop       GET  /v5/position/list (cursor paging)
    POST /v5/order/create|amend|cancel   GET  /v5/order/realtime|history (cursor paging)
    GET  /v5/execution/list (time window, cursor paging)
    GET  /v5/position/closed-pnl (time window, cursor paging)

WebSocket (``ws://127.0.0.1:WSPORT``): ``/v5/public/linear`` (``tickers.{symbol}``
snapshot then deltas of changed fields) and ``/v5/private`` (``op=auth`` then ``order``,
``execution``, ``position``, ``wallet``). ``{"op":"ping"}`` is answered on both.

Signing checks (docs v5/guide#authentication): ``X-BAPI-API-KEY`` must match (10003),
``X-BAPI-SIGN`` = HMAC-SHA256(secret, ts + key + recvWindow + payload) (10004), and
``server_time - recv_window <= ts < server_time + 1000`` (10002). Per-endpoint rate limits
per second (10006, with ``X-Bapi-Limit-*`` headers).

Position modes are per symbol, like Bybit's. The account starts in one-way mode like a
fresh Bybit account: orders then carry ``positionIdx`` 0 (one row per symbol in the position
list, ``side ""`` when flat; a reduce-only order closes the side it is against; a flip
through zero is not modelled and refused). ``switch-mode`` by coin switches every symbol
that has no position and no open order and answers 0 if any switched, else 110025 — even
when symbols stayed one-way (what Bybit does); by symbol it answers 110024 / 110028 when
blocked. A hedge-mode order on a one-way symbol (or the reverse) gets 10001 "position idx
not match position mode".

Test hooks: :meth:`BybitSandbox.inject` (answer a path with any retCode — 429, 10006,
10016, 110063, ... — or drop the connection before/after processing),
:meth:`BybitSandbox.set_mark`, :meth:`BybitSandbox.push_ticker`,
:meth:`BybitSandbox.drop_stream_connections`, :meth:`BybitSandbox.set_position_mode`,
:attr:`BybitSandbox.request_log`, :attr:`BybitSandbox.history_lag_s` (orders and
executions reach ``/v5/order/history`` and ``/v5/execution/list`` that long after they
happened), :attr:`BybitSandbox.realtime_keeps_closed` (False: closed orders only in
history, as after a venue restart), :attr:`BybitSandbox.other_collateral_usd` (a non-USDT
coin in the wallet, so account-level USD totals differ from the USDT figures),
:attr:`BybitSandbox.ws_auth_error_key` (``"ret_msg"`` or ``"retMsg"`` in a refused auth).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

import trio
import trio_websocket

from adapters.bybit_sandbox._http11 import DROP, HttpReply, HttpRequest, serve_http
from adapters.bybit_sandbox._records import (
    DEFAULT_RATE_LIMITS,
    Fault,
    LoggedRequest,
    _ApiError,
    _param_error,
    _RateError,
    _Success,
)
from adapters.bybit_sandbox._ws import _SandboxWs
from adapters.paper import PaperEngine
from tradebot.errors import RejectedError, VenueError

__all__ = ["DEFAULT_RATE_LIMITS", "BybitSandbox", "Fault", "LoggedRequest", "open_bybit_sandbox"]


class BybitSandbox(_SandboxWs):
    """The sandbox's state and handlers. Start it with :func:`open_bybit_sandbox`.

    Args:
        engine: a paper engine with a ``bybit_like`` profile and the instruments to serve.
        api_key / api_secret: the only credentials accepted.
        hedge_mode: start every symbol in hedge mode (default False: one-way, like a fresh
            account).
        rate_limits: requests per second per endpoint group (None disables limiting).
        recv_window_max_ms: largest recv window accepted (Bybit caps it).
    """

    # --- REST ---------------------------------------------------------------------------------

    async def handle(self, req: HttpRequest) -> HttpReply | object:
        route = _ROUTES.get((req.method, req.path))
        if route is None:
            return HttpReply(404, [("Content-Type", "text/plain")], b"404 page not found")
        handler, signed = route
        payload = req.query if req.method == "GET" else req.body.decode("utf-8", "replace")
        if signed or req.headers.get("x-bapi-api-key") or req.headers.get("x-bapi-sign"):
            self.signed_attempts += 1
        try:
            if signed:
                self._check_auth(req, payload)
            if req.method == "GET":
                params: dict[str, Any] = {}
                for part in payload.split("&") if payload else []:
                    k, _, v = part.partition("=")
                    params[unquote(k)] = unquote(v)
            else:
                try:
                    params = json.loads(payload) if payload else {}
                except ValueError:
                    raise _param_error("request body is not valid JSON") from None
                if not isinstance(params, dict):
                    raise _param_error("request body must be a JSON object")
            headers = self._rate_check(req.path)
        except _RateError as exc:
            return self._envelope(
                10006,
                "Too many visits!",
                {},
                [
                    ("X-Bapi-Limit", str(exc.limit)),
                    ("X-Bapi-Limit-Status", "0"),
                    ("X-Bapi-Limit-Reset-Timestamp", str(exc.reset_ms)),
                ],
            )
        except _ApiError as exc:
            return self._envelope(exc.ret_code, exc.ret_msg, {})
        if len(self.request_log) >= 200_000:  # long CLI runs: keep the newest half
            del self.request_log[:100_000]
        self.request_log.append(
            LoggedRequest(next(self._log_seq), req.method, req.path, params, trio.current_time())
        )
        fault = self._take_fault(req.path)
        if fault is not None and fault.drop == "before":
            if fault.delay_s > 0:  # hold the connection, then drop it: never processed
                await trio.sleep(fault.delay_s)
            return DROP
        if fault is not None and fault.http_status is not None and not fault.after:
            return HttpReply(
                fault.http_status, [("Content-Type", "text/html")], b"<html>502 Bad Gateway</html>"
            )
        if fault is not None and fault.ret_code is not None:
            return self._envelope(fault.ret_code, fault.ret_msg or "injected", {})
        self.engine.advance_to(datetime.now(UTC))
        try:
            ret_code, ret_msg, result = 0, "OK", handler(self, params)
        except _ApiError as exc:
            ret_code, ret_msg, result = exc.ret_code, exc.ret_msg, {}
        except RejectedError as exc:
            ret_code = int(exc.code) if exc.code.isdigit() else 10001
            ret_msg, result = exc.venue_message or str(exc), {}
        except VenueError as exc:
            ret_code, ret_msg, result = 10016, f"internal: {exc}", {}
        if isinstance(result, _Success):
            ret_code, ret_msg, result = result.ret_code, result.ret_msg, {}
        if fault is not None and fault.delay_s > 0:
            await trio.sleep(fault.delay_s)
        if fault is not None and fault.drop == "after":
            return DROP
        if fault is not None and fault.http_status is not None:
            return HttpReply(
                fault.http_status, [("Content-Type", "text/html")], b"<html>502 Bad Gateway</html>"
            )
        return self._envelope(ret_code, ret_msg, result, headers)


_H = Callable[[BybitSandbox, dict[str, Any]], Any]


_ROUTES: dict[tuple[str, str], tuple[_H, bool]] = {
    ("GET", "/v5/market/time"): (BybitSandbox.h_time, False),
    ("GET", "/v5/market/instruments-info"): (BybitSandbox.h_instruments, False),
    ("GET", "/v5/market/tickers"): (BybitSandbox.h_tickers, False),
    ("GET", "/v5/account/wallet-balance"): (BybitSandbox.h_wallet, True),
    ("POST", "/v5/position/switch-mode"): (BybitSandbox.h_switch_mode, True),
    ("POST", "/v5/position/set-leverage"): (BybitSandbox.h_set_leverage, True),
    ("POST", "/v5/position/trading-stop"): (BybitSandbox.h_trading_stop, True),
    ("GET", "/v5/position/list"): (BybitSandbox.h_position_list, True),
    ("POST", "/v5/order/create"): (BybitSandbox.h_order_create, True),
    ("POST", "/v5/order/amend"): (BybitSandbox.h_order_amend, True),
    ("POST", "/v5/order/cancel"): (BybitSandbox.h_order_cancel, True),
    ("GET", "/v5/order/realtime"): (BybitSandbox.h_realtime, True),
    ("GET", "/v5/order/history"): (BybitSandbox.h_history, True),
    ("GET", "/v5/execution/list"): (BybitSandbox.h_executions, True),
    ("GET", "/v5/position/closed-pnl"): (BybitSandbox.h_closed_pnl, True),
}


@asynccontextmanager
async def open_bybit_sandbox(
    engine: PaperEngine,
    *,
    host: str = "127.0.0.1",
    rest_port: int = 0,
    ws_port: int = 0,
    **kwargs: Any,
) -> AsyncIterator[BybitSandbox]:
    """Run a :class:`BybitSandbox` on loopback for the duration of the ``async with``.

    Yields the sandbox with ``rest_url``, ``public_ws_url`` and ``private_ws_url`` set.
    Ports 0 pick free ports. Extra keyword arguments go to :class:`BybitSandbox`.
    """
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise ValueError("the sandbox binds to loopback only")
    sandbox = BybitSandbox(engine, **kwargs)
    async with trio.open_nursery() as nursery:
        port = await nursery.start(serve_http, sandbox.handle, host, rest_port)
        ws_server = await nursery.start(
            trio_websocket.serve_websocket, sandbox.ws_handler, host, ws_port, None
        )
        sandbox.rest_url = f"http://{host}:{port}"
        sandbox.public_ws_url = f"ws://{host}:{ws_server.port}/v5/public/linear"
        sandbox.private_ws_url = f"ws://{host}:{ws_server.port}/v5/private"
        try:
            yield sandbox
        finally:
            nursery.cancel_scope.cancel()
