"""The Binance sandbox's REST plumbing: replies, scripted faults, signature / timestamp /
recvWindow checks, request-weight and order-count limits with 429 → 418 bans, and the
parameter helpers the handlers share (symbol, decimals, booleans, sides, client ids,
order lookup)."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

import trio

from adapters.binance.budget import endpoint_cost
from adapters.binance_sandbox._core import _SandboxCore
from adapters.binance_sandbox._records import (
    _CID_RE,
    Fault,
    _ApiError,
    _mandatory,
    _RateError,
    _wall_ms,
    _without_signature,
)
from adapters.binance_sandbox._wire import (
    order_row,
)
from adapters.bybit_sandbox._http11 import HttpReply, HttpRequest
from tradebot.domain import Instrument, OrderStatus, OrderType, PositionSide, Side
from tradebot.ports import OrderState

__all__ = ["_SandboxRest"]


class _SandboxRest(_SandboxCore):
    """REST plumbing and parameter helpers."""

    # --- REST: plumbing -----------------------------------------------------------------------

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

    # --- helpers ------------------------------------------------------------------------------

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
