"""The Bybit sandbox's read handlers: server time, instruments, tickers, wallet, realtime
and history orders (with the position-level stops as ``StopLoss`` rows), positions,
executions and closed PnL."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import trio

from adapters.bybit.schemas import ExecutionRow, OrderRow
from adapters.bybit_sandbox._records import (
    _instrument_row,
    _param_error,
    _wall_ms,
)
from adapters.bybit_sandbox._rest import _SandboxRest
from adapters.bybit_sandbox._wire import (
    fmt,
    order_row,
    position_row,
)
from tradebot.domain import (
    PositionSide,
)

__all__ = ["_SandboxQueries"]


class _SandboxQueries(_SandboxRest):
    """Read handlers."""

    # --- handlers: market data, wallet, orders and positions read -----------------------------

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
