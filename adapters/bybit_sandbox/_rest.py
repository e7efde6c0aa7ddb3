"""The Bybit sandbox's REST plumbing: the response envelope, scripted faults, signature and
recv-window checks, rate limits with their headers, and the parameter helpers the handlers
share (category, symbol, ``positionIdx``, decimals, order lookup, paging)."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections import deque
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

import trio

from adapters.bybit_sandbox._core import _SandboxCore
from adapters.bybit_sandbox._http11 import HttpReply, HttpRequest
from adapters.bybit_sandbox._records import (
    Fault,
    _ApiError,
    _group,
    _other,
    _param_error,
    _RateError,
    _wall_ms,
)
from tradebot.domain import (
    Instrument,
    PositionSide,
    Side,
)
from tradebot.ports import OrderState

__all__ = ["_SandboxRest"]


class _SandboxRest(_SandboxCore):
    """REST plumbing and parameter helpers."""

    # --- REST ---------------------------------------------------------------------------------

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

    # --- helpers ------------------------------------------------------------------------------

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
