"""The Bybit sandbox's state: the constructor, position modes per symbol, the test hooks
(faults, marks, tickers, dropped streams), engine events turned into private-stream
messages (orders, executions, positions, wallet, closed PnL) and tickers on the public
stream."""

from __future__ import annotations

import itertools
import uuid
from collections import deque
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import trio

from adapters.bybit.schemas import ClosedPnlRow, ExecutionRow
from adapters.bybit_sandbox._records import (
    DEFAULT_RATE_LIMITS,
    Fault,
    LoggedRequest,
    _other,
    _wall_ms,
    _WsConn,
)
from adapters.bybit_sandbox._wire import (
    OrderMeta,
    closed_pnl_row,
    execution_row,
    fmt,
    order_row,
    position_row,
    rest_execution_row,
)
from adapters.paper import PaperEngine
from tradebot.domain import (
    OrderType,
    PositionSide,
)
from tradebot.ports import AccountEvent, Fill, OrderState, OrderUpdate, PositionUpdate

__all__ = ["_SandboxCore"]


class _SandboxCore:
    """State, test hooks and stream pushes of :class:`adapters.bybit_sandbox._server.BybitSandbox`
    (its docstring gives the constructor's arguments)."""

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

    # --- position modes -----------------------------------------------------------------------

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

    # --- test hooks ---------------------------------------------------------------------------

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

    # --- engine events → private stream -------------------------------------------------------

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

    # --- tickers → public stream --------------------------------------------------------------

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
