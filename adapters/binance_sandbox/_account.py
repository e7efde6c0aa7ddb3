"""The Binance sandbox's market-data and account handlers: ping, time, exchangeInfo,
premiumIndex, balance, position mode, leverage, margin type, symbol config, position risk
and user trades."""

from __future__ import annotations

from typing import Any

from adapters.binance_sandbox._records import (
    _ApiError,
    _mandatory,
    _wall_ms,
)
from adapters.binance_sandbox._rest import _SandboxRest
from adapters.binance_sandbox._wire import (
    fmt,
    position_row,
    symbol_row,
)
from tradebot.domain import PositionSide, Side

__all__ = ["_SandboxAccount"]


class _SandboxAccount(_SandboxRest):
    """Market-data and account handlers."""

    # --- handlers: market data and account ----------------------------------------------------

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
