"""Signed Binance USDⓈ-M REST client on httpx (runs on trio through anyio).

Layers, outermost first::

    BinanceHttp.call()        budget slot → journal request → sign → send → map → journal reply
      └─ httpx.AsyncClient    transport (the test seam), timeouts

Signing (exchanges.md section 1; "SIGNED (TRADE and USER_DATA) Endpoint security"): header
``X-MBX-APIKEY``; parameters ``...&recvWindow=<ms>&timestamp=<ms>`` and then
``signature=<HMAC-SHA256(secret, query string) hex>`` last. Every parameter travels in the
query string (the official SDK does the same), so the signed bytes are exactly the bytes
sent. The venue accepts ``timestamp < serverTime + 1000`` and
``serverTime - timestamp <= recvWindow``; our timestamp comes from :class:`ServerClock`
(local clock + offset measured with ``GET /fapi/v1/time``). A -1021 / -5028 answer
re-syncs the offset and retries once with a fresh timestamp and signature (the request was
refused before any processing); -1022 (bad signature) is never retried.

Exceptions (all :class:`tradebot.errors.VenueError`)::

    httpx.ConnectError/ConnectTimeout/PoolTimeout  → TransientError   (never sent)
    other transport errors (read timeout, dropped) → OutcomeUnknown   (mutating requests)
                                                   → TransientError   (reads)
    HTTP 418 / 429                                 → RateLimited, and the budget blocks
    HTTP 4xx with {"code", "msg"}                  → errors.error_for (-4046/-4059 are ok)
    other HTTP errors                              → errors.http_error_for
"""

from __future__ import annotations

import enum
import itertools
from collections.abc import Mapping
from decimal import Decimal
from typing import Any
from urllib.parse import quote

import httpx
import trio

from adapters.binance.budget import Priority, RequestBudget, endpoint_cost
from adapters.binance.errors import CLOCK_CODES, error_for, http_error_for

# venue-neutral: HMAC-SHA256 hex signing and the venue-clock estimate are the same on both
# venues (Binance: ``GET /fapi/v1/time`` ``serverTime`` ms)
from adapters.bybit.http import ServerClock, sign
from tradebot.clock import WallClock
from tradebot.errors import OutcomeUnknown, RateLimited, TransientError, VenueError
from tradebot.events import Event, EventType, JournalPort, Severity
from tradebot.ports import Clock

__all__ = [
    "REDACTED_KEYS",
    "BinanceHttp",
    "Security",
    "ServerClock",
    "query_string",
    "sign",
]

REDACTED_KEYS = frozenset({"signature", "listenKey", "apiKey", "secret"})


def _wire(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return format(value, "f")
    return str(value)


def query_string(params: Mapping[str, Any]) -> str:
    """``k=v&...`` in the given order, values percent-encoded (client ids may contain
    ``.:/``, exchanges.md section 2); ``None`` values are left out. This exact string is
    what is signed and sent."""
    return "&".join(
        f"{quote(k, safe='')}={quote(_wire(v), safe='')}"
        for k, v in params.items()
        if v is not None
    )


class Security(enum.Enum):
    """Endpoint security types (USDⓈ-M "Endpoint Security Type")."""

    NONE = "NONE"  # public market data
    USER_STREAM = "USER_STREAM"  # API key header only (listenKey)
    SIGNED = "SIGNED"  # TRADE / USER_DATA: key header + timestamp + signature


def _redact(params: Mapping[str, Any]) -> dict[str, Any]:
    return {k: ("***" if k in REDACTED_KEYS else v) for k, v in params.items()}


def _journal_result(path: str, result: Any) -> Any:
    """The reply as journaled: in full, except ``exchangeInfo`` (hundreds of symbols) and
    the listenKey (a credential for the user stream), which are summarized / redacted."""
    if path == "/fapi/v1/exchangeInfo" and isinstance(result, dict):
        rows = result.get("symbols") or []
        return {
            "rows": len(rows),
            "symbols": [r.get("symbol") for r in rows[:50] if isinstance(r, dict)],
            "rateLimits": result.get("rateLimits"),
        }
    if path == "/fapi/v1/listenKey" and isinstance(result, dict) and "listenKey" in result:
        return {**result, "listenKey": "***"}
    return result


class BinanceHttp:
    """The signed REST client of one Binance USDⓈ-M account.

    Args:
        rest_url: base URL, e.g. ``https://fapi.binance.com`` or the sandbox's
            ``http://127.0.0.1:PORT`` (config ``exchange.rest_url``).
        api_key / api_secret: credentials (from the env vars named in config); never logged.
        recv_window_ms: ``recvWindow`` (default 5000, venue maximum 60000).
        journal: optional; every request and reply is journaled, secrets redacted.
        clock: event timestamps (the Clock port); wall clock by default.
        server_clock: venue-clock estimate; injectable so tests can skew the local clock.
        budget: request-weight / order-count budget.
        timeout_s: per-request timeout.
        transport: optional httpx transport (tests).
    """

    def __init__(
        self,
        rest_url: str,
        api_key: str = "",
        api_secret: str = "",
        *,
        recv_window_ms: int = 5000,
        journal: JournalPort | None = None,
        clock: Clock | None = None,
        server_clock: ServerClock | None = None,
        budget: RequestBudget | None = None,
        timeout_s: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if not 0 < recv_window_ms <= 60_000:
            raise ValueError("recv_window_ms must be in 1..60000 (Binance maximum)")
        self.rest_url = rest_url.rstrip("/")
        self._api_key = api_key
        self._api_secret = api_secret
        self.recv_window_ms = recv_window_ms
        self.server_clock = server_clock or ServerClock()
        self.journal = journal
        self.clock: Clock = clock or WallClock()
        self.budget = budget or RequestBudget()
        self._client = httpx.AsyncClient(
            base_url=self.rest_url, timeout=timeout_s, transport=transport
        )
        self._req_ids = itertools.count(1)

    def __repr__(self) -> str:  # never show the secret
        return f"BinanceHttp({self.rest_url!r}, api_key={self._api_key[:4]}…)"

    async def aclose(self) -> None:
        await self._client.aclose()

    # --- journaling ---------------------------------------------------------------------

    def _emit(
        self,
        type_: EventType,
        data: dict[str, Any],
        severity: Severity = Severity.INFO,
        symbol: Any = None,
        client_order_id: Any = None,
    ) -> None:
        if self.journal is None:
            return
        self.journal.emit(
            Event(
                type=type_,
                ts=self.clock.now(),
                data=data,
                severity=severity,
                symbol=symbol,
                client_order_id=client_order_id,
                correlation_id=data.get("request_id"),
            )
        )

    # --- clock --------------------------------------------------------------------------

    async def sync_time(self) -> int:
        """Measure the venue clock with ``GET /fapi/v1/time``; returns the offset in ms.

        Raises:
            VenueError: when the time cannot be read.
        """
        sent = self.server_clock.local_ms()
        result = await self._once(
            "GET",
            "/fapi/v1/time",
            {},
            security=Security.NONE,
            mutating=False,
            priority=Priority.PROTECTIVE,
        )
        received = self.server_clock.local_ms()
        old = self.server_clock.offset_ms
        try:
            server_ms = int(result["serverTime"])
        except (KeyError, TypeError, ValueError):
            raise TransientError(f"binance /fapi/v1/time: bad reply {result!r:.200}") from None
        new = self.server_clock.update(server_ms, sent, received)
        self._emit(
            EventType.CLOCK_RESYNC,
            {"venue": "binance", "old_offset_ms": old, "offset_ms": new, "rtt_ms": received - sent},
        )
        return new

    # --- requests -----------------------------------------------------------------------

    async def call(
        self,
        method: str,
        path: str,
        params: Mapping[str, Any] | None = None,
        *,
        security: Security = Security.SIGNED,
        mutating: bool = False,
        priority: Priority = Priority.NORMAL,
    ) -> Any:
        """Send one request and map the answer.

        Args:
            method: ``GET``, ``POST``, ``PUT`` or ``DELETE``.
            path: ``/fapi/...``.
            params: request parameters in the order they are sent; values are venue strings
                (Decimal and bool are converted: ``format(d, "f")``, ``true``/``false``).
            security: endpoint security type.
            mutating: the request can change venue state (decides OutcomeUnknown vs retry).
            priority: budget priority (PROTECTIVE for stops and closes).

        Returns:
            The decoded JSON body (``{"code": 200, ...}`` / "no need to change" answers
            included: they are success).

        Raises:
            VenueError subclasses as mapped in :mod:`adapters.binance.errors`.
        """
        p = dict(params or {})
        try:
            return await self._once(
                method, path, p, security=security, mutating=mutating, priority=priority
            )
        except TransientError as exc:
            if not exc.code.lstrip("-").isdigit() or int(exc.code) not in CLOCK_CODES:
                raise
            # -1021 / -5028: our timestamp is outside the recvWindow. Re-sync and retry once
            # with a fresh timestamp/signature; the venue refused it before any processing.
            await self.sync_time()
            return await self._once(
                method, path, p, security=security, mutating=mutating, priority=priority
            )

    def _target(
        self, path: str, params: dict[str, Any], security: Security
    ) -> tuple[str, dict[str, str]]:
        headers: dict[str, str] = {}
        send = dict(params)
        if security is not Security.NONE:
            headers["X-MBX-APIKEY"] = self._api_key
        if security is Security.SIGNED:
            send["recvWindow"] = self.recv_window_ms
            send["timestamp"] = self.server_clock.now_ms()
            qs = query_string(send)
            qs = f"{qs}&signature={sign(self._api_secret, qs)}"
        else:
            qs = query_string(send)
        return (f"{path}?{qs}" if qs else path), headers

    async def _once(
        self,
        method: str,
        path: str,
        params: dict[str, Any],
        *,
        security: Security,
        mutating: bool,
        priority: Priority,
    ) -> Any:
        weight, orders = endpoint_cost(method, path, params)
        async with self.budget.slot(weight, orders, priority):
            return await self._send(
                method, path, params, security=security, mutating=mutating, priority=priority
            )

    async def _send(
        self,
        method: str,
        path: str,
        params: dict[str, Any],
        *,
        security: Security,
        mutating: bool,
        priority: Priority,
    ) -> Any:
        request_id = f"binance-{next(self._req_ids)}"
        symbol = params.get("symbol")
        cid = (
            params.get("newClientOrderId")
            or params.get("clientAlgoId")
            or params.get("origClientOrderId")
        )
        self._emit(
            EventType.EXCHANGE_REQUEST,
            {
                "request_id": request_id,
                "venue": "binance",
                "method": method,
                "path": path,
                "params": _redact(params),
                "priority": priority.name,
            },
            symbol=symbol,
            client_order_id=cid,
        )
        started = trio.current_time()
        url, headers = self._target(path, params, security)
        try:
            resp = await self._client.request(method, url, headers=headers)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            err: VenueError = TransientError(f"binance {path}: not sent: {exc!r}", code="network")
            self._error(request_id, path, err, symbol, cid)
            raise err from exc
        except httpx.TransportError as exc:
            cls: type[VenueError] = OutcomeUnknown if mutating else TransientError
            err = cls(f"binance {path}: no reply: {exc!r}", code="network")
            self._error(request_id, path, err, symbol, cid)
            raise err from exc
        latency_ms = round((trio.current_time() - started) * 1000, 3)
        self.budget.observe(resp.headers)
        used = resp.headers.get("x-mbx-used-weight-1m")
        body: Any = None
        try:
            body = resp.json()
        except ValueError:
            body = None
        mapped: VenueError | None = None
        retry_after = _retry_after(resp.headers.get("retry-after"))
        if resp.status_code in (418, 429) or resp.status_code >= 500:
            mapped = http_error_for(
                resp.status_code,
                resp.text,
                mutating=mutating,
                retry_after_s=retry_after,
                now_ms=self.server_clock.now_ms(),
            )
        elif isinstance(body, dict) and isinstance(body.get("code"), int) and "msg" in body:
            mapped = error_for(
                int(body["code"]),
                str(body["msg"]),
                mutating=mutating,
                retry_after_s=retry_after,
                now_ms=self.server_clock.now_ms(),
            )
        elif resp.status_code != 200:
            mapped = http_error_for(resp.status_code, resp.text, mutating=mutating)
        elif body is None:
            cls = OutcomeUnknown if mutating else TransientError
            mapped = cls(f"binance {path}: not JSON: {resp.text[:200]!r}", code="envelope")
        if mapped is not None:
            if isinstance(mapped, RateLimited):
                self.budget.block(mapped.retry_after_s, f"HTTP {resp.status_code} {mapped.code}")
                self._emit(
                    EventType.RATE_LIMITED,
                    {
                        "request_id": request_id,
                        "venue": "binance",
                        "path": path,
                        "status": resp.status_code,
                        "retry_after_s": mapped.retry_after_s,
                        "used_weight_1m": used,
                    },
                    Severity.WARNING,
                    symbol,
                )
            self._error(
                request_id,
                path,
                mapped,
                symbol,
                cid,
                latency_ms=latency_ms,
                status=resp.status_code,
            )
            raise mapped
        self._emit(
            EventType.EXCHANGE_RESPONSE,
            {
                "request_id": request_id,
                "venue": "binance",
                "path": path,
                "status": resp.status_code,
                "result": _journal_result(path, body),
                "latency_ms": latency_ms,
                "used_weight_1m": used,
                "order_count_10s": resp.headers.get("x-mbx-order-count-10s"),
            },
            symbol=symbol,
            client_order_id=cid,
        )
        return body

    def _error(
        self,
        request_id: str,
        path: str,
        err: VenueError,
        symbol: Any,
        cid: Any,
        *,
        latency_ms: float | None = None,
        status: int | None = None,
    ) -> None:
        self._emit(
            EventType.EXCHANGE_ERROR,
            {
                "request_id": request_id,
                "venue": "binance",
                "path": path,
                "error": type(err).__name__,
                "code": err.code,
                "venue_message": err.venue_message,
                "message": str(err),
                "status": status,
                "latency_ms": latency_ms,
            },
            Severity.WARNING,
            symbol,
            cid,
        )


def _retry_after(raw: str | None) -> float | None:
    if raw is None:
        return None
    try:
        return max(float(raw), 0.0)
    except ValueError:
        return None
