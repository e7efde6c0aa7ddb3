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
:attr:`BybitSandbox.request_log`, :attr:`BybitSandbox.signed_attempts` and
:attr:`BybitSandbox.private_connections` (what a keyless client must never send),
:attr:`BybitSandbox.history_lag_s` (orders and
executions reach ``/v5/order/history`` and ``/v5/execution/list`` that long after they
happened), :attr:`BybitSandbox.realtime_keeps_closed` (False: closed orders only in
history, as after a venue restart), :attr:`BybitSandbox.other_collateral_usd` (a non-USDT
coin in the wallet, so account-level USD totals differ from the USDT figures),
:attr:`BybitSandbox.ws_auth_error_key` (``"ret_msg"`` or ``"retMsg"`` in a refused auth).
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import re
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import unquote

import attrs
import trio
import trio_websocket

from adapters.bybit.schemas import ClosedPnlRow, ExecutionRow, InstrumentRow, OrderRow
from adapters.bybit_sandbox._http11 import DROP, HttpReply, HttpRequest, serve_http
from adapters.bybit_sandbox._wire import (
    OrderMeta,
    closed_pnl_row,
    execution_row,
    fmt,
    order_row,
    position_row,
    rest_execution_row,
)
from adapters.paper import PaperEngine, TriggerDirection
from tradebot.domain import (
    Instrument,
    InstrumentStatus,
    OrderType,
    PositionSide,
    Side,
)
from tradebot.errors import RejectedError, VenueError
from tradebot.ports import AccountEvent, Fill, OrderState, OrderUpdate, PositionUpdate, StopState

__all__ = ["DEFAULT_RATE_LIMITS", "BybitSandbox", "Fault", "LoggedRequest", "open_bybit_sandbox"]

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

    ``drop="before"``: close the connection without processing; ``"after"``: process the
    request (state changes!) and close without replying; ``ret_code``: answer HTTP 200 with
    that retCode and ``ret_msg`` without processing.
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


class BybitSandbox:
    """The sandbox's state and handlers. Start it with :func:`open_bybit_sandbox`.

    Args:
        engine: a paper engine with a ``bybit_like`` profile and the instruments to serve.
        api_key / api_secret: the only credentials accepted.
        hedge_mode: start every symbol in hedge mode (default False: one-way, like a fresh
            account).
        rate_limits: requests per second per endpoint group (None disables limiting).
        recv_window_max_ms: largest recv window accepted (Bybit caps it).
    """

    def __init__(
        self,
        engine: PaperEngine,
        *,
        api_key: str = "sandbox-key",
        api_secret: str = "sandbox-secret",
        hedge_mode: bool = False,
        rate_limits: Mapping[str, int] | None = DEFAULT_RATE_LIMITS,
    ) -> None:
        self.engine = engine
        self.api_key = api_key
        self.api_secret = api_secret
        self._default_mode = 3 if hedge_mode else 0  # of symbols added later
        self._modes: dict[str, int] = {s: self._default_mode for s in engine.instruments()}
        self.history_lag_s = 0.0
        self.realtime_keeps_closed = True
        self.other_collateral_usd = Decimal(0)
        self.ws_auth_error_key = "ret_msg"
        self._executions: list[tuple[float, ExecutionRow]] = []  # (trio time, REST row)
        self._closed_pnl: dict[str, ClosedPnlRow] = {}  # closing orderId → row
        self._open_fees: dict[tuple[str, PositionSide], tuple[Decimal, Decimal]] = {}
        self.rate_limits = dict(rate_limits) if rate_limits is not None else None
        self.faults: list[Fault] = []
        self.ws_latency_s = 0.0
        self.refused_topics: set[str] = set()  # test hook: subscriptions answered success=false
        self.ws_close_on_accept = False  # test hook: accept, then close at once
        self.ws_accepts: list[float] = []  # trio.current_time() of every accepted WS
        """Delay before the sandbox handles each WS request (simulated network latency;
        some clients, pybit among them, register a subscription only after sending it)."""
        self.request_log: list[LoggedRequest] = []
        self.signed_attempts = 0
        """Requests to a private (signed) route or carrying auth headers, refused ones
        included (a dry run must send none)."""
        self.private_connections = 0
        """Connections to the private stream (``/v5/private``)."""
        self.rest_url = ""
        self.public_ws_url = ""
        self.private_ws_url = ""
        self._log_seq = itertools.count(1)
        self._hits: dict[str, deque[float]] = {}
        self._orders: dict[str, OrderState] = {}  # venue id → latest state
        self._order_seq: list[str] = []  # venue ids in creation order
        self._vid_by_cid: dict[str, str] = {}
        self._meta: dict[str, OrderMeta] = {}
        self._pending_meta: OrderMeta | None = None
        self._conns: set[_WsConn] = set()
        self._tickers: dict[str, dict[str, str]] = {}
        self._cs = itertools.count(1)
        self._seq = itertools.count(1)
        self._ws_nursery: trio.Nursery | None = None
        engine.subscribe(self._on_engine_event)

    # --- position modes ----------------------------------------------------------------

    @property
    def position_mode(self) -> int:
        """3 when every symbol is in hedge mode, else 0. Setting it sets every symbol."""
        return 3 if all(m == 3 for m in self._modes.values()) else 0

    @position_mode.setter
    def position_mode(self, mode: int) -> None:
        self._default_mode = mode
        for symbol in self._modes:
            self._modes[symbol] = mode

    def mode_of(self, symbol: str) -> int:
        """3 (hedge) or 0 (one-way) for ``symbol``."""
        return self._modes.setdefault(symbol, self._default_mode)

    def set_position_mode(self, symbol: str, mode: int) -> None:
        """Test hook: put one symbol in hedge (3) or one-way (0) mode, no checks."""
        if mode not in (0, 3):
            raise ValueError("mode must be 0 or 3")
        self._modes[symbol] = mode

    def _symbol_busy(self, symbol: str) -> int | None:
        """110024 with a position, 110028 with open orders, None when switchable."""
        if self.engine.positions(symbol):
            return 110024
        if self.engine.open_orders(symbol):
            return 110028
        return None

    # --- test hooks ---------------------------------------------------------------------

    def inject(
        self,
        path: str,
        *,
        ret_code: int | None = None,
        ret_msg: str = "",
        drop: str = "",
        times: int = 1,
        http_status: int | None = None,
        after: bool = False,
        delay_s: float = 0.0,
    ) -> None:
        """Add a :class:`Fault` for the next ``times`` requests to ``path``.

        ``http_status`` answers with that HTTP status and a plain-text body (a gateway
        error); with ``after=True`` the request is processed first (state changes).
        ``delay_s`` holds the reply (after processing) that long: a client timeout after
        acceptance.
        """
        if drop not in ("", "before", "after"):
            raise ValueError("drop must be '', 'before' or 'after'")
        self.faults.append(Fault(path, ret_code, ret_msg, drop, times, http_status, after, delay_s))

    def requests_to(self, path: str) -> list[LoggedRequest]:
        return [r for r in self.request_log if r.path == path]

    def set_mark(
        self, symbol: str, mark_price: Decimal, *, last_price: Decimal | None = None
    ) -> None:
        """Move ``symbol``'s mark (and last) price: triggers stops, pushes a ticker delta."""
        self.engine.set_mark(symbol, mark_price, datetime.now(UTC))
        self._ticker_update(
            symbol,
            {
                "markPrice": fmt(mark_price),
                "lastPrice": fmt(last_price or mark_price),
                "indexPrice": fmt(mark_price),
            },
        )

    def push_ticker(self, symbol: str, fields: Mapping[str, str]) -> None:
        """Send a raw ticker delta with exactly ``fields`` (plus ``symbol``)."""
        state = self._tickers.setdefault(symbol, self._ticker_snapshot(symbol))
        state.update(fields)
        self._broadcast_public(symbol, {"symbol": symbol, **fields}, "delta")

    async def drop_stream_connections(self, which: str = "public") -> int:
        """Close every ``public``/``private`` stream connection; returns how many."""
        victims = [c for c in self._conns if c.private == (which == "private")]
        for c in victims:
            with trio.move_on_after(1):
                await c.ws.aclose(code=1001, reason="sandbox drop")
        return len(victims)

    def stream_connections(self, which: str = "public") -> int:
        return sum(1 for c in self._conns if c.private == (which == "private"))

    def subscriptions(self, which: str = "public") -> list[set[str]]:
        return [set(c.topics) for c in self._conns if c.private == (which == "private")]

    # --- engine events → private stream -------------------------------------------------

    def _on_engine_event(self, ev: AccountEvent) -> None:
        now = _wall_ms()
        if isinstance(ev, OrderUpdate):
            o = ev.order
            if o.venue_order_id not in self._orders:
                self._order_seq.append(o.venue_order_id)
                meta = self._pending_meta or OrderMeta(
                    order_type="Limit" if o.order_type is OrderType.LIMIT else "Market",
                    created_ms=now,
                    updated_ms=now,
                    trigger_direction=(2 if o.position_side is PositionSide.LONG else 1)
                    if o.trigger_price is not None
                    else 0,
                    trigger_by="MarkPrice" if o.trigger_price is not None else "",
                    time_in_force="IOC" if o.order_type is not OrderType.LIMIT else "GTC",
                )
                self._pending_meta = None
                if meta.position_idx is None:
                    meta.position_idx = (
                        0 if self.mode_of(o.symbol) == 0 else o.position_side.bybit_position_idx
                    )
                meta.created_t = trio.current_time()
                self._meta[o.venue_order_id] = meta
            self._orders[o.venue_order_id] = o
            if o.client_order_id:
                self._vid_by_cid[o.client_order_id] = o.venue_order_id
            meta = self._meta[o.venue_order_id]
            meta.updated_ms = now
            self._broadcast_private("order", [order_row(o, meta)])
        elif isinstance(ev, Fill):
            if ev.reason == "funding" or not ev.venue_order_id:
                return
            meta_f = self._meta.get(ev.venue_order_id)
            if meta_f is not None:
                meta_f.cum_fee += ev.fee_usdt
                meta_f.cum_value += ev.qty * ev.price
            fee_rate = (
                self.engine.profile.maker_fee_rate
                if ev.is_maker
                else self.engine.profile.taker_fee_rate
            )
            exec_row = execution_row(
                ev,
                order=self._orders.get(ev.venue_order_id),
                meta=meta_f,
                mark=self.engine.mark_price(ev.symbol),
                fee_rate=fee_rate,
                seq=next(self._seq),
            )
            self._executions.append((trio.current_time(), rest_execution_row(exec_row)))
            self._record_closed_pnl(ev, now)
            self._broadcast_private("execution", [exec_row])
        elif isinstance(ev, PositionUpdate):
            p = ev.position
            if p.qty == 0 and self.mode_of(p.symbol) == 0:
                other = self.engine.position(p.symbol, _other(p.position_side))
                if other.qty > 0:
                    return  # one-way: the symbol's one row is the other side's
            pos_row = position_row(
                p,
                leverage=self.engine.leverage(p.symbol),
                now_ms=now,
                seq=next(self._seq),
                ws=True,
                one_way=self.mode_of(p.symbol) == 0,
            )
            self._broadcast_private("position", [pos_row])
            self._broadcast_private("wallet", [self._wallet_row()])

    def _record_closed_pnl(self, ev: Fill, now_ms: int) -> None:
        """Keep ``/v5/position/closed-pnl`` rows: one per closing order, PnL after the fees
        of the closing fills and the opening fees of the closed quantity."""
        key = (ev.symbol, ev.position_side)
        fees, qty = self._open_fees.get(key, (Decimal(0), Decimal(0)))
        if ev.side is ev.position_side.entry_side:
            self._open_fees[key] = (fees + ev.fee_usdt, qty + ev.qty)
            return
        share = fees * ev.qty / qty if qty > 0 else Decimal(0)
        self._open_fees[key] = (fees - share, max(qty - ev.qty, Decimal(0)))
        gross = ev.realized_pnl_usdt or Decimal(0)
        order = self._orders.get(ev.venue_order_id)
        meta = self._meta.get(ev.venue_order_id)
        prev = self._closed_pnl.get(ev.venue_order_id)
        closed = ev.qty + (Decimal(prev["closedSize"]) if prev else Decimal(0))
        exit_value = ev.qty * ev.price + (Decimal(prev["cumExitValue"]) if prev else Decimal(0))
        pnl = gross - ev.fee_usdt - share + (Decimal(prev["closedPnl"]) if prev else Decimal(0))
        # entry price of the closed qty: exit price minus gross PnL per unit, signed by side
        entry_value = exit_value - ev.position_side.sign * (
            gross + (self._gross_of(prev, ev.position_side) if prev else Decimal(0))
        )
        self._closed_pnl[ev.venue_order_id or f"x-{ev.trade_id}"] = closed_pnl_row(
            symbol=ev.symbol,
            order_id=ev.venue_order_id,
            closing_side=ev.side,
            order_qty=order.qty if order is not None else closed,
            order_type=meta.order_type if meta is not None else "Market",
            closed_qty=closed,
            entry_price=entry_value / closed if closed > 0 else Decimal(0),
            exit_value=exit_value,
            closed_pnl=pnl,
            fill_count=(int(prev["fillCount"]) if prev else 0) + 1,
            leverage=self.engine.leverage(ev.symbol),
            created_ms=int(prev["createdTime"]) if prev else now_ms,
            updated_ms=now_ms,
        )

    @staticmethod
    def _gross_of(row: ClosedPnlRow, side: PositionSide) -> Decimal:
        """Gross PnL of an existing closed-pnl row (exit value - entry value, signed)."""
        return side.sign * (Decimal(row["cumExitValue"]) - Decimal(row["cumEntryValue"]))

    def _broadcast_private(self, topic: str, data: Sequence[Mapping[str, Any]]) -> None:
        msg = {"id": str(uuid.uuid4()), "topic": topic, "creationTime": _wall_ms(), "data": data}
        for c in list(self._conns):
            if c.private and c.authed and topic in c.topics:
                c.push(msg)

    # --- tickers → public stream --------------------------------------------------------

    def _ticker_snapshot(self, symbol: str) -> dict[str, str]:
        mark = self.engine.mark_price(symbol)
        m = fmt(mark, zero="0")
        return {
            "symbol": symbol,
            "tickDirection": "ZeroPlusTick",
            "price24hPcnt": "0",
            "lastPrice": m,
            "prevPrice24h": m,
            "highPrice24h": m,
            "lowPrice24h": m,
            "prevPrice1h": m,
            "markPrice": m,
            "indexPrice": m,
            "openInterest": "0",
            "openInterestValue": "0",
            "turnover24h": "0",
            "volume24h": "0",
            "nextFundingTime": "0",
            "fundingRate": "0.0001",
            "bid1Price": m,
            "bid1Size": "1",
            "ask1Price": m,
            "ask1Size": "1",
        }

    def _ticker_update(self, symbol: str, fields: Mapping[str, str]) -> None:
        state = self._tickers.get(symbol)
        if state is None:
            self._tickers[symbol] = self._ticker_snapshot(symbol)
            self._broadcast_public(symbol, self._tickers[symbol], "snapshot")
            return
        changed = {k: v for k, v in fields.items() if state.get(k) != v}
        if not changed:
            return
        state.update(changed)
        self._broadcast_public(symbol, {"symbol": symbol, **changed}, "delta")

    def _broadcast_public(self, symbol: str, data: Mapping[str, str], kind: str) -> None:
        topic = f"tickers.{symbol}"
        msg = {
            "topic": topic,
            "type": kind,
            "data": dict(data),
            "cs": next(self._cs),
            "ts": _wall_ms(),
        }
        for c in list(self._conns):
            if not c.private and topic in c.topics:
                c.push(msg)

    # --- REST ---------------------------------------------------------------------------

    def _envelope(
        self, ret_code: int, ret_msg: str, result: Any, headers: list[tuple[str, str]] | None = None
    ) -> HttpReply:
        body = json.dumps(
            {
                "retCode": ret_code,
                "retMsg": ret_msg,
                "result": result if result is not None else {},
                "retExtInfo": {},
                "time": _wall_ms(),
            },
            separators=(",", ":"),
        )
        return HttpReply(
            200, [("Content-Type", "application/json"), *(headers or [])], body.encode()
        )

    def _take_fault(self, path: str) -> Fault | None:
        for f in self.faults:
            if f.path == path and f.times > 0:
                f.times -= 1
                if f.times == 0:
                    self.faults.remove(f)
                return f
        return None

    def _check_auth(self, req: HttpRequest, payload: str) -> None:
        key = req.headers.get("x-bapi-api-key")
        ts = req.headers.get("x-bapi-timestamp")
        signature = req.headers.get("x-bapi-sign")
        recv = req.headers.get("x-bapi-recv-window", "5000")
        if not key or not ts or not signature:
            raise _ApiError(10003, "API key is invalid.")  # Bybit: missing auth headers
        if key != self.api_key:
            raise _ApiError(10003, "API key is invalid.")
        if not ts.isdigit() or not recv.isdigit():
            raise _param_error("invalid timestamp or recv_window")
        server = _wall_ms()
        ts_ms, recv_ms = int(ts), int(recv)
        if not (server - recv_ms <= ts_ms < server + 1000):
            raise _ApiError(
                10002,
                "invalid request, please check your server timestamp or "
                f"recv_window param. req_timestamp[{ts_ms}],"
                f"server_timestamp[{server}],recv_window[{recv_ms}]",
            )
        expected = hmac.new(
            self.api_secret.encode(), (ts + key + recv + payload).encode(), hashlib.sha256
        ).hexdigest()
        if not hmac.compare_digest(expected, signature.lower()):
            raise _ApiError(10004, f"error sign! origin_string[{ts + key + recv + payload}]")

    def _rate_check(self, path: str) -> list[tuple[str, str]]:
        if self.rate_limits is None:
            return []
        group = _group(path)
        limit = self.rate_limits.get(group)
        if limit is None:
            return []
        now = trio.current_time()
        hits = self._hits.setdefault(group, deque())
        while hits and hits[0] <= now - 1.0:
            hits.popleft()
        reset_ms = _wall_ms() + int(((hits[0] + 1.0 - now) if hits else 1.0) * 1000)
        if len(hits) >= limit:
            raise _RateError(limit, reset_ms)
        hits.append(now)
        return [
            ("X-Bapi-Limit", str(limit)),
            ("X-Bapi-Limit-Status", str(limit - len(hits))),
            ("X-Bapi-Limit-Reset-Timestamp", str(reset_ms)),
        ]

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

    # --- helpers ------------------------------------------------------------------------

    def _instrument(self, params: Mapping[str, Any]) -> Instrument:
        symbol = params.get("symbol")
        inst = self.engine.instruments().get(str(symbol)) if symbol else None
        if inst is None:
            raise _param_error(f"params error: symbol invalid ({symbol!r})")
        return inst

    def _category(self, params: Mapping[str, Any]) -> None:
        if params.get("category") != "linear":
            raise _param_error("params error: category only supports linear in this sandbox")

    @staticmethod
    def _idx_param(params: Mapping[str, Any]) -> int:
        raw = params.get("positionIdx", 0)
        try:
            return int(raw)
        except (TypeError, ValueError):
            raise _param_error("params error: positionIdx invalid") from None

    def _position_side(self, params: Mapping[str, Any]) -> PositionSide:
        """The hedge-mode side of a position-level request (trading-stop); in one-way mode
        (``positionIdx`` 0) the side that holds the symbol's position."""
        idx = self._idx_param(params)
        symbol = str(params.get("symbol", ""))
        if self.mode_of(symbol) == 0:
            if idx != 0:
                raise _param_error("position idx not match position mode")
            if self.engine.position(symbol, PositionSide.SHORT).qty > 0:
                return PositionSide.SHORT
            return PositionSide.LONG
        if idx not in (1, 2):
            raise _param_error("position idx not match position mode")
        return PositionSide.LONG if idx == 1 else PositionSide.SHORT

    def _order_side(
        self, params: Mapping[str, Any], side: Side, qty: Decimal, reduce_only: bool
    ) -> tuple[PositionSide, bool]:
        """``(position side, reduce_only)`` of a new order. One-way mode: a reduce-only
        order closes the side it is against; an order against an open position reduces it
        (a flip through zero is not modelled: refused)."""
        idx = self._idx_param(params)
        symbol = str(params.get("symbol", ""))
        if self.mode_of(symbol) != 0:
            if idx not in (1, 2):
                raise _param_error("position idx not match position mode")
            return (PositionSide.LONG if idx == 1 else PositionSide.SHORT), reduce_only
        if idx != 0:
            raise _param_error("position idx not match position mode")
        against = PositionSide.LONG if side is Side.SELL else PositionSide.SHORT
        if reduce_only:
            return against, True
        held = self.engine.position(symbol, against).qty
        if held > 0:
            if qty > held:
                raise _param_error(
                    "params error: this sandbox does not model one-way position flips"
                )
            return against, True
        return _other(against), False

    @staticmethod
    def _dec(params: Mapping[str, Any], name: str, *, required: bool = True) -> Decimal | None:
        v = params.get(name)
        if v is None or v == "":
            if required:
                raise _param_error(f"params error: {name} is required")
            return None
        if not isinstance(v, str):
            raise _param_error(f"params error: {name} must be a string")
        try:
            d = Decimal(v)
        except InvalidOperation:
            raise _param_error(f"params error: {name} invalid") from None
        if not d.is_finite() or d < 0:
            raise _param_error(f"params error: {name} invalid")
        return d

    def _find_order(self, params: Mapping[str, Any]) -> OrderState:
        vid = params.get("orderId") or self._vid_by_cid.get(str(params.get("orderLinkId", "")))
        if not params.get("orderId") and not params.get("orderLinkId"):
            raise _param_error("params error: orderId or orderLinkId is required")
        o = self._orders.get(str(vid)) if vid else None
        if o is None or o.symbol != params.get("symbol") or not o.status.is_live:
            raise _ApiError(110001, "order not exists or too late to cancel")
        return o

    def _wallet_row(self) -> dict[str, Any]:
        """A UNIFIED account (docs v5/account/wallet-balance): account-level ``total*`` in
        USD across coins (``other_collateral_usd`` adds a BTC row), per-coin figures in the
        coin; ``availableToWithdraw`` is ``""`` (deprecated for UNIFIED)."""
        w = self.engine.wallet()
        other = self.other_collateral_usd
        eq = fmt(w.equity_usdt)
        usdt_im = w.used_margin_usdt + w.reserved_margin_usdt
        coins: list[dict[str, Any]] = [
            {
                "coin": "USDT",
                "equity": eq,
                "usdValue": eq,
                "walletBalance": fmt(w.wallet_usdt),
                "locked": "0",
                "borrowAmount": "0",
                "availableToWithdraw": "",
                "accruedInterest": "0",
                "totalOrderIM": fmt(w.reserved_margin_usdt),
                "totalPositionIM": fmt(w.used_margin_usdt),
                "totalPositionMM": "0",
                "unrealisedPnl": fmt(w.unrealized_pnl_usdt),
                "cumRealisedPnl": fmt(w.realized_pnl_usdt),
                "bonus": "0",
                "collateralSwitch": True,
                "marginCollateral": True,
            }
        ]
        if other > 0:
            btc = other / Decimal(100000)  # a nominal price: only the USD value matters
            coins.append(
                {
                    "coin": "BTC",
                    "equity": fmt(btc),
                    "usdValue": fmt(other),
                    "walletBalance": fmt(btc),
                    "locked": "0",
                    "borrowAmount": "0",
                    "availableToWithdraw": "",
                    "accruedInterest": "0",
                    "totalOrderIM": "0",
                    "totalPositionIM": "0",
                    "totalPositionMM": "0",
                    "unrealisedPnl": "0",
                    "cumRealisedPnl": "0",
                    "bonus": "0",
                    "collateralSwitch": True,
                    "marginCollateral": True,
                }
            )
        return {
            "accountType": "UNIFIED",
            "accountIMRate": "0",
            "accountMMRate": "0",
            "totalEquity": fmt(w.equity_usdt + other),
            "totalWalletBalance": fmt(w.wallet_usdt + other),
            "totalMarginBalance": fmt(w.equity_usdt + other),
            "totalAvailableBalance": fmt(w.equity_usdt + other - usdt_im),
            "totalPerpUPL": fmt(w.unrealized_pnl_usdt),
            "totalInitialMargin": fmt(usdt_im),
            "totalMaintenanceMargin": "0",
            "accountLTV": "0",
            "coin": coins,
        }

    @staticmethod
    def _page(
        rows: list[Any], params: Mapping[str, Any], default: int, maximum: int
    ) -> tuple[list[Any], str]:
        # Bybit cursors are opaque, percent-encoded strings ("page_args%3D...%26symbol%3D6%26");
        # clients must send them back verbatim. The GET parser has already unquoted once.
        raw_cursor = str(params.get("cursor") or "")
        m = re.fullmatch(r"page_args=(\d+)&", raw_cursor)
        try:
            limit = int(params.get("limit") or default)
        except ValueError:
            raise _param_error("params error: limit invalid") from None
        if raw_cursor and m is None:
            raise _param_error("params error: cursor invalid")
        offset = int(m.group(1)) if m else 0
        limit = max(1, min(limit, maximum))
        chunk = rows[offset : offset + limit]
        nxt = f"page_args%3D{offset + limit}%26" if offset + limit < len(rows) else ""
        return chunk, nxt

    # --- handlers -----------------------------------------------------------------------

    def h_time(self, params: dict[str, Any]) -> Any:
        ns = time.time_ns()
        return {"timeSecond": str(ns // 1_000_000_000), "timeNano": str(ns)}

    def h_instruments(self, params: dict[str, Any]) -> Any:
        self._category(params)
        insts = sorted(self.engine.instruments().values(), key=lambda i: i.symbol)
        if params.get("symbol"):
            insts = [i for i in insts if i.symbol == params["symbol"]]
        rows = [_instrument_row(i) for i in insts]
        chunk, nxt = self._page(rows, params, 500, 1000)
        return {"category": "linear", "list": chunk, "nextPageCursor": nxt}

    def h_tickers(self, params: dict[str, Any]) -> Any:
        self._category(params)
        syms = [params["symbol"]] if params.get("symbol") else sorted(self.engine.instruments())
        out = []
        for s in syms:
            if s not in self.engine.instruments():
                raise _param_error(f"params error: symbol invalid ({s!r})")
            out.append(dict(self._tickers.get(s) or self._ticker_snapshot(s)))
        return {"category": "linear", "list": out}

    def h_wallet(self, params: dict[str, Any]) -> Any:
        if params.get("accountType") != "UNIFIED":
            raise _param_error("accountType only support UNIFIED")
        return {"list": [self._wallet_row()]}

    def h_switch_mode(self, params: dict[str, Any]) -> Any:
        """``POST /v5/position/switch-mode`` (docs v5/position/position-mode): by ``symbol``
        or by ``coin`` (USDT: every symbol). By coin, symbols with a position or open orders
        stay as they are and the answer is still 0 / 110025 (110025 when nothing changed)."""
        self._category(params)
        if not params.get("symbol") and not params.get("coin"):
            raise _param_error("params error: symbol or coin is required")
        mode = params.get("mode")
        if mode not in (0, 3):
            raise _param_error("params error: mode must be 0 or 3")
        if params.get("symbol"):
            inst = self._instrument(params)
            if self.mode_of(inst.symbol) == mode:
                return _Success(110025, "Position mode is not modified")
            busy = self._symbol_busy(inst.symbol)
            if busy == 110024:
                raise _ApiError(
                    110024, "You have an existing position, so position mode cannot be switched"
                )
            if busy == 110028:
                raise _ApiError(
                    110028, "You have existing open orders, so position mode cannot be switched"
                )
            self._modes[inst.symbol] = int(mode)
            return {}
        if params.get("coin") != "USDT":
            raise _param_error("params error: coin only supports USDT in this sandbox")
        changed = 0
        for symbol in sorted(set(self._modes) | set(self.engine.instruments())):
            self.mode_of(symbol)
            if self._modes[symbol] != mode and self._symbol_busy(symbol) is None:
                self._modes[symbol] = int(mode)
                changed += 1
        if not changed:
            return _Success(110025, "Position mode is not modified")
        return {}

    def h_set_leverage(self, params: dict[str, Any]) -> Any:
        self._category(params)
        inst = self._instrument(params)
        buy = self._dec(params, "buyLeverage")
        sell = self._dec(params, "sellLeverage")
        if buy != sell or buy is None or buy != buy.to_integral_value():
            raise _param_error(
                "params error: buyLeverage must equal sellLeverage (integer in this sandbox)"
            )
        lev = int(buy)
        if lev == self.engine.leverage(inst.symbol):
            return _Success(110043, "leverage not modified")
        self.engine.set_leverage(inst.symbol, lev)
        return {}

    def h_order_create(self, params: dict[str, Any]) -> Any:
        self._category(params)
        inst = self._instrument(params)
        side_raw = params.get("side")
        if side_raw not in ("Buy", "Sell"):
            raise _param_error("params error: side invalid")
        side = Side.BUY if side_raw == "Buy" else Side.SELL
        order_type = params.get("orderType")
        if order_type not in ("Market", "Limit"):
            raise _param_error("params error: orderType invalid")
        qty = self._dec(params, "qty")
        assert qty is not None
        cid = params.get("orderLinkId", "")
        if not isinstance(cid, str) or (cid and not _CID_RE.match(cid)):
            raise _param_error("params error: orderLinkId invalid")
        reduce_only = params.get("reduceOnly", False)
        close_on_trigger = params.get("closeOnTrigger", False)
        if not isinstance(reduce_only, bool) or not isinstance(close_on_trigger, bool):
            raise _param_error("params error: reduceOnly/closeOnTrigger must be booleans")
        ps, reduce_only = self._order_side(params, side, qty, reduce_only)
        cap = inst.max_market_qty if inst.max_market_qty is not None else inst.max_qty
        if order_type == "Market" and cap is not None and qty > cap:
            # maxMktOrderQty (docs v5/market/instrument, lotSizeFilter)
            raise _param_error("The number of contracts exceeds maximum limit allowed: too large")
        price = self._dec(params, "price", required=order_type == "Limit")
        trigger = self._dec(params, "triggerPrice", required=False)
        stop_loss = self._dec(params, "stopLoss", required=False)
        if stop_loss is not None and stop_loss == 0:
            stop_loss = None
        now = _wall_ms()
        meta = OrderMeta(
            order_type=str(order_type),
            created_ms=now,
            updated_ms=now,
            time_in_force=str(
                params.get("timeInForce") or ("IOC" if order_type == "Market" else "GTC")
            ),
            position_idx=self._idx_param(params),
        )
        mark = self.engine.mark_price(inst.symbol)
        direction: TriggerDirection | None = None
        if trigger is not None and trigger > 0:
            if order_type != "Market":
                raise _param_error(
                    "params error: conditional limit orders are not supported by this sandbox"
                )
            tdir = params.get("triggerDirection")
            if tdir not in (1, 2):
                raise _param_error("params error: triggerDirection must be 1 or 2")
            if mark is not None and tdir == 1 and trigger <= mark:
                raise _ApiError(
                    110092,
                    f"expect Rising, but trigger_price[{trigger}] <= current[{mark}]??MarkPrice",
                )
            if mark is not None and tdir == 2 and trigger >= mark:
                raise _ApiError(
                    110093,
                    f"expect Falling, but trigger_price[{trigger}] >= current[{mark}]??MarkPrice",
                )
            direction = TriggerDirection(tdir)
            meta.trigger_direction = int(tdir)
            meta.trigger_by = str(params.get("triggerBy") or "LastPrice")
        else:
            trigger = None
        if stop_loss is not None:
            if reduce_only:
                raise _param_error("params error: TP/SL is not allowed on reduceOnly orders")
            mode = params.get("tpslMode", "Full")
            if mode != "Full":
                raise _param_error("params error: only tpslMode=Full is supported by this sandbox")
            if mark is not None:
                self._check_sl_side(ps, stop_loss, mark)
            meta.stop_loss = fmt(stop_loss)
            meta.sl_trigger_by = str(params.get("slTriggerBy") or "LastPrice")
            meta.tpsl_mode = "Full"
        self._pending_meta = meta
        try:
            o = self.engine.submit_order(
                symbol=inst.symbol,
                side=side,
                position_side=ps,
                order_type=OrderType.STOP_MARKET
                if trigger is not None
                else (OrderType.MARKET if order_type == "Market" else OrderType.LIMIT),
                qty=qty,
                client_order_id=cid,
                price=price if order_type == "Limit" else None,
                trigger_price=trigger,
                trigger_direction=direction,
                reduce_only=reduce_only,
                attached_stop=stop_loss,
            )
        finally:
            self._pending_meta = None
        return {"orderId": o.venue_order_id, "orderLinkId": o.client_order_id}

    @staticmethod
    def _check_sl_side(ps: PositionSide, stop_loss: Decimal, base: Decimal) -> None:
        if ps is PositionSide.LONG and stop_loss >= base:
            raise _param_error(
                f"StopLoss:{stop_loss} set for Buy position should lower than "
                f"base_price:{base}??MarkPrice"
            )
        if ps is PositionSide.SHORT and stop_loss <= base:
            raise _param_error(
                f"StopLoss:{stop_loss} set for Sell position should higher than "
                f"base_price:{base}??MarkPrice"
            )

    def h_order_amend(self, params: dict[str, Any]) -> Any:
        self._category(params)
        self._instrument(params)
        o = self._find_order(params)
        trigger = self._dec(params, "triggerPrice", required=False)
        if params.get("qty") or params.get("price") or trigger is None:
            raise _param_error("params error: this sandbox amends triggerPrice only")
        if o.trigger_price is None:
            raise _param_error(
                "params error: triggerPrice can only be amended on conditional orders"
            )
        meta = self._meta[o.venue_order_id]
        mark = self.engine.mark_price(o.symbol)
        if mark is not None and meta.trigger_direction == 1 and trigger <= mark:
            raise _ApiError(
                110092, f"expect Rising, but trigger_price[{trigger}] <= current[{mark}]??MarkPrice"
            )
        if mark is not None and meta.trigger_direction == 2 and trigger >= mark:
            raise _ApiError(
                110093,
                f"expect Falling, but trigger_price[{trigger}] >= current[{mark}]??MarkPrice",
            )
        self.engine.amend_stop(
            StopState(
                symbol=o.symbol,
                position_side=o.position_side,
                trigger_price=o.trigger_price,
                client_order_id=o.client_order_id,
                venue_order_id=o.venue_order_id,
                qty=o.qty,
            ),
            trigger,
        )
        return {"orderId": o.venue_order_id, "orderLinkId": o.client_order_id}

    def h_order_cancel(self, params: dict[str, Any]) -> Any:
        self._category(params)
        self._instrument(params)
        o = self._find_order(params)
        if o.trigger_price is not None:
            self.engine.cancel_stop(
                StopState(
                    symbol=o.symbol,
                    position_side=o.position_side,
                    trigger_price=o.trigger_price,
                    client_order_id=o.client_order_id,
                    venue_order_id=o.venue_order_id,
                    qty=o.qty,
                )
            )
        else:
            self.engine.cancel_order(o.symbol, o.client_order_id, o.venue_order_id)
        return {"orderId": o.venue_order_id, "orderLinkId": o.client_order_id}

    def _order_rows(self, params: Mapping[str, Any], *, history: bool) -> Any:
        self._category(params)
        symbol = params.get("symbol")
        if (
            not symbol
            and not params.get("settleCoin")
            and not params.get("baseCoin")
            and not history
        ):
            raise _param_error("params error: symbol, baseCoin or settleCoin is required")
        if symbol:
            self._instrument(params)
        vids = list(reversed(self._order_seq))  # newest first, as Bybit lists them
        if params.get("orderId"):
            vids = [v for v in vids if v == params["orderId"]]
        elif params.get("orderLinkId"):
            v = self._vid_by_cid.get(str(params["orderLinkId"]))
            vids = [v] if v is not None else []
        else:
            live = [v for v in vids if self._orders[v].status.is_live]
            vids = [v for v in vids if not self._orders[v].status.is_live] if history else live
        order_filter = params.get("orderFilter")
        rows: list[OrderRow] = []
        now = trio.current_time()
        for v in vids:
            o = self._orders[v]
            if symbol and o.symbol != symbol:
                continue
            if history and self._meta[v].created_t + self.history_lag_s > now:
                continue  # order history lags the matching engine
            if not history and not self.realtime_keeps_closed and o.status.is_terminal:
                continue  # after a venue restart closed orders are only in history
            if order_filter == "Order" and o.trigger_price is not None:
                continue
            if order_filter == "StopOrder" and o.trigger_price is None:
                continue
            rows.append(order_row(o, self._meta[v]))
        if (
            not history
            and not params.get("orderId")
            and not params.get("orderLinkId")
            and order_filter in (None, "StopOrder")
        ):
            rows.extend(self._position_sl_rows(symbol))
        chunk, nxt = self._page(rows, params, 20, 50)
        return {"category": "linear", "list": chunk, "nextPageCursor": nxt}

    def _position_sl_rows(self, symbol: str | None) -> list[OrderRow]:
        """Bybit lists a position's Full-mode stop loss as an untriggered conditional order
        with ``stopOrderType="StopLoss"``, ``qty="0"`` (whole position) and no
        orderLinkId (docs v5/order/open-order, exchanges.md section 9)."""
        rows: list[OrderRow] = []
        now = str(_wall_ms())
        for p in self.engine.positions(symbol):
            if p.stop_price is None:
                continue
            long = p.position_side is PositionSide.LONG
            idx = 0 if self.mode_of(p.symbol) == 0 else p.position_side.bybit_position_idx
            rows.append(
                {
                    "category": "linear",
                    "orderId": f"sl-{p.symbol}-{idx}",
                    "orderLinkId": "",
                    "blockTradeId": "",
                    "symbol": p.symbol,
                    "price": "0",
                    "qty": "0",
                    "side": "Sell" if long else "Buy",
                    "isLeverage": "",
                    "positionIdx": idx,
                    "orderStatus": "Untriggered",
                    "cancelType": "UNKNOWN",
                    "rejectReason": "EC_NoError",
                    "avgPrice": "0",
                    "leavesQty": "0",
                    "leavesValue": "0",
                    "cumExecQty": "0",
                    "cumExecValue": "0",
                    "cumExecFee": "0",
                    "timeInForce": "IOC",
                    "orderType": "Market",
                    "stopOrderType": "StopLoss",
                    "orderIv": "",
                    "triggerPrice": fmt(p.stop_price),
                    "takeProfit": "0",
                    "stopLoss": "0",
                    "tpTriggerBy": "",
                    "slTriggerBy": "",
                    "triggerDirection": 2 if long else 1,
                    "triggerBy": "MarkPrice",
                    "lastPriceOnCreated": "",
                    "reduceOnly": True,
                    "closeOnTrigger": True,
                    "smpType": "None",
                    "smpGroup": 0,
                    "smpOrderId": "",
                    "tpslMode": "Full",
                    "tpLimitPrice": "0",
                    "slLimitPrice": "0",
                    "placeType": "",
                    "createdTime": now,
                    "updatedTime": now,
                }
            )
        return rows

    def h_realtime(self, params: dict[str, Any]) -> Any:
        return self._order_rows(params, history=False)

    def h_history(self, params: dict[str, Any]) -> Any:
        return self._order_rows(params, history=True)

    def h_position_list(self, params: dict[str, Any]) -> Any:
        """``GET /v5/position/list`` (docs v5/position): with ``symbol`` every row of the
        symbol (hedge: ``positionIdx`` 1 and 2; one-way: one row, ``positionIdx`` 0, ``side
        ""`` when flat); with ``settleCoin`` the non-flat ones."""
        self._category(params)
        now = _wall_ms()
        if params.get("symbol"):
            inst = self._instrument(params)
            long = self.engine.position(inst.symbol, PositionSide.LONG)
            short = self.engine.position(inst.symbol, PositionSide.SHORT)
            if self.mode_of(inst.symbol) == 0:
                states = [short if short.qty > 0 else long]
            else:
                states = [long, short]
        elif params.get("settleCoin") == "USDT":
            states = self.engine.positions()
        else:
            raise _param_error("params error: symbol or settleCoin is required")
        rows = [
            position_row(
                p,
                leverage=self.engine.leverage(p.symbol),
                now_ms=now,
                seq=next(self._seq),
                one_way=self.mode_of(p.symbol) == 0,
            )
            for p in states
        ]
        chunk, nxt = self._page(rows, params, 20, 200)
        return {"category": "linear", "list": chunk, "nextPageCursor": nxt}

    @staticmethod
    def _time_window(params: Mapping[str, Any], now_ms: int) -> tuple[int, int]:
        """``startTime`` / ``endTime`` (ms) with the v5 rule: at most 7 days apart; one
        bound alone spans 7 days from it; none: the last 7 days."""
        week = 7 * 24 * 3600 * 1000
        try:
            start = int(params["startTime"]) if params.get("startTime") else None
            end = int(params["endTime"]) if params.get("endTime") else None
        except ValueError:
            raise _param_error("params error: startTime/endTime invalid") from None
        if start is None and end is None:
            return now_ms - week, now_ms
        if start is None:
            assert end is not None
            return end - week, end
        if end is None:
            return start, start + week
        if end < start or end - start > week:
            raise _param_error("params error: endTime - startTime must be within 7 days")
        return start, end

    def h_executions(self, params: dict[str, Any]) -> Any:
        """``GET /v5/execution/list`` (docs v5/order/execution): newest first, filtered by
        symbol / orderId / orderLinkId / execType and the time window, ``limit`` <= 100.
        An execution shows up ``history_lag_s`` after it happened."""
        self._category(params)
        if params.get("symbol"):
            self._instrument(params)
        start, end = self._time_window(params, _wall_ms())
        visible_before = trio.current_time() - self.history_lag_s
        rows: list[ExecutionRow] = []
        for t, row in reversed(self._executions):
            if t > visible_before:
                continue
            if not start <= int(row["execTime"]) <= end:
                continue
            if any(
                params.get(k) and row.get(k) != params[k]
                for k in ("symbol", "orderId", "orderLinkId", "execType")
            ):
                continue
            rows.append(row)
        chunk, nxt = self._page(rows, params, 50, 100)
        return {"category": "linear", "list": chunk, "nextPageCursor": nxt}

    def h_closed_pnl(self, params: dict[str, Any]) -> Any:
        """``GET /v5/position/closed-pnl`` (docs v5/position/close-pnl): one row per closing
        order, newest first, in the time window, ``limit`` <= 100."""
        self._category(params)
        if params.get("symbol"):
            self._instrument(params)
        start, end = self._time_window(params, _wall_ms())
        rows = [
            r
            for r in sorted(
                self._closed_pnl.values(), key=lambda r: int(r["updatedTime"]), reverse=True
            )
            if start <= int(r["updatedTime"]) <= end
            and (not params.get("symbol") or r["symbol"] == params["symbol"])
        ]
        chunk, nxt = self._page(rows, params, 50, 100)
        return {"category": "linear", "list": chunk, "nextPageCursor": nxt}

    def h_trading_stop(self, params: dict[str, Any]) -> Any:
        self._category(params)
        inst = self._instrument(params)
        if params.get("tpslMode") not in ("Full", "Partial"):
            raise _param_error("params error: tpslMode is required (Full or Partial)")
        if params.get("tpslMode") != "Full":
            raise _param_error("params error: only tpslMode=Full is supported by this sandbox")
        ps = self._position_side(params)
        for unsupported in ("takeProfit", "trailingStop"):
            v = params.get(unsupported)
            if v not in (None, "", "0"):
                raise _param_error(f"params error: {unsupported} is not supported by this sandbox")
        sl = self._dec(params, "stopLoss")
        assert sl is not None
        pos = self.engine.position(inst.symbol, ps)
        if pos.qty == 0:
            raise _param_error("can not set tp/sl/ts for zero position")
        if sl == 0:
            if pos.stop_price is None:
                return _Success(34040, "not modified")
            self.engine.set_trading_stop(inst.symbol, ps, Decimal(0))
            return {}
        if pos.stop_price == sl:
            return _Success(34040, "not modified")
        mark = self.engine.mark_price(inst.symbol)
        if mark is not None:
            self._check_sl_side(ps, sl, mark)
        self.engine.set_trading_stop(inst.symbol, ps, sl)
        return {}

    # --- WebSocket ----------------------------------------------------------------------

    async def ws_handler(self, request: trio_websocket.WebSocketRequest) -> None:
        path = request.path.split("?", 1)[0]
        if path not in ("/v5/public/linear", "/v5/private"):
            await request.reject(404)
            return
        ws = await request.accept()
        self.ws_accepts.append(trio.current_time())
        if self.ws_close_on_accept:
            await ws.aclose(code=1001, reason="sandbox: going away")
            return
        conn = _WsConn(ws, private=path == "/v5/private")
        if conn.private:
            self.private_connections += 1
        self._conns.add(conn)
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._ws_writer, conn, nursery.cancel_scope)
                try:
                    while True:
                        raw = await ws.get_message()
                        if self.ws_latency_s > 0:
                            await trio.sleep(self.ws_latency_s)
                        self._ws_message(conn, raw)
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

    def _ws_message(self, conn: _WsConn, raw: str | bytes) -> None:
        try:
            msg = json.loads(raw)
        except ValueError:
            conn.push(
                {"success": False, "ret_msg": "error:invalid op", "conn_id": conn.conn_id, "op": ""}
            )
            return
        if not isinstance(msg, dict):
            return
        op = msg.get("op")
        req_id = msg.get("req_id", "")
        if op == "ping":
            if conn.private:
                conn.push(
                    {
                        "req_id": req_id,
                        "op": "pong",
                        "args": [str(_wall_ms())],
                        "conn_id": conn.conn_id,
                    }
                )
            else:
                conn.push(
                    {
                        "success": True,
                        "ret_msg": "pong",
                        "conn_id": conn.conn_id,
                        "req_id": req_id,
                        "op": "ping",
                    }
                )
            return
        if op == "auth":
            ok, why = self._ws_auth(msg.get("args"))
            conn.authed = conn.authed or ok
            conn.push(
                {
                    "req_id": req_id,
                    "success": ok,
                    (self.ws_auth_error_key if not ok else "ret_msg"): why,
                    "op": "auth",
                    "conn_id": conn.conn_id,
                }
            )
            return
        if op in ("subscribe", "unsubscribe"):
            args = msg.get("args")
            if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
                conn.push(
                    {
                        "success": False,
                        "ret_msg": "error:args invalid",
                        "op": op,
                        "req_id": req_id,
                        "conn_id": conn.conn_id,
                    }
                )
                return
            bad = [a for a in args if not self._topic_ok(conn, a)]
            if conn.private and not conn.authed:
                conn.push(
                    {
                        "success": False,
                        "ret_msg": "Request not authorized",
                        "op": op,
                        "req_id": req_id,
                        "conn_id": conn.conn_id,
                    }
                )
                return
            if bad:
                conn.push(
                    {
                        "success": False,
                        "ret_msg": f"error:handler not found,topic:{bad[0]}",
                        "op": op,
                        "req_id": req_id,
                        "conn_id": conn.conn_id,
                    }
                )
                return
            reply: dict[str, Any] = {
                "success": True,
                "ret_msg": "",
                "conn_id": conn.conn_id,
                "req_id": req_id,
                "op": op,
            }
            conn.push(reply)
            for a in args:
                if op == "unsubscribe":
                    conn.topics.discard(a)
                    continue
                conn.topics.add(a)
                if not conn.private:
                    sym = a.removeprefix("tickers.")
                    if self.engine.mark_price(sym) is not None:
                        snap = self._tickers.setdefault(sym, self._ticker_snapshot(sym))
                        conn.push(
                            {
                                "topic": a,
                                "type": "snapshot",
                                "data": dict(snap),
                                "cs": next(self._cs),
                                "ts": _wall_ms(),
                            }
                        )
            return
        conn.push(
            {
                "success": False,
                "ret_msg": f"error:unknown op {op!r}",
                "conn_id": conn.conn_id,
                "op": str(op),
            }
        )

    def _topic_ok(self, conn: _WsConn, topic: str) -> bool:
        if topic in self.refused_topics:
            return False
        if conn.private:
            return topic in (
                "order",
                "execution",
                "position",
                "wallet",
                "order.linear",
                "execution.linear",
                "position.linear",
            )
        return (
            topic.startswith("tickers.")
            and topic.removeprefix("tickers.") in self.engine.instruments()
        )

    def _ws_auth(self, args: object) -> tuple[bool, str]:
        if not isinstance(args, list) or len(args) != 3:
            return False, "Params Error"
        key, expires, signature = args
        if key != self.api_key:
            return False, "Invalid apikey"
        try:
            exp = int(expires)
        except (TypeError, ValueError):
            return False, "Params Error"
        if exp <= _wall_ms():
            return False, "Request expired"
        expected = hmac.new(
            self.api_secret.encode(), f"GET/realtime{exp}".encode(), hashlib.sha256
        ).hexdigest()
        if not isinstance(signature, str) or not hmac.compare_digest(expected, signature):
            return False, "Invalid sign"
        return True, ""


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
