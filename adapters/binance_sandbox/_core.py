"""The Binance sandbox's state: the constructor, the test hooks (faults, bans, marks,
listenKey expiry, dropped streams), engine events turned into user-data-stream events
(``ORDER_TRADE_UPDATE``, ``ALGO_UPDATE``, ``ACCOUNT_UPDATE``) and the markPrice pushes."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import trio

from adapters.binance_sandbox._records import (
    _ACTUAL_ID_BASE,
    Fault,
    LoggedRequest,
    _wall_ms,
    _WsConn,
)
from adapters.binance_sandbox._wire import (
    AlgoMeta,
    OrderMeta,
    algo_update,
    fmt,
    order_update,
    ws_position,
)
from adapters.paper import PaperEngine
from tradebot.domain import OrderStatus, OrderType
from tradebot.ports import AccountEvent, Fill, OrderState, OrderUpdate, PositionUpdate

__all__ = ["_SandboxCore"]


class _SandboxCore:
    """State, test hooks and stream pushes of
    :class:`adapters.binance_sandbox._server.BinanceSandbox` (its docstring gives the
    constructor's arguments)."""

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

    # --- test hooks ---------------------------------------------------------------------------

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

    def _check_listen_key(self) -> None:
        if self._listen_key is not None and trio.current_time() >= self._listen_key_expires:
            self.expire_listen_key()

    # --- engine events → user-data stream -----------------------------------------------------

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

    def _margin(self, symbol: str) -> str:
        return self._margin_type.get(symbol, "CROSSED")

    # --- marks → market stream ----------------------------------------------------------------

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
