"""Signed Bybit v5 REST client on httpx (runs on trio through anyio).

Layers, outermost first::

    BybitHttp.call()          rate budget → journal request → send → envelope → journal reply
      └─ httpx.AsyncClient    transport (the test seam), timeouts
           └─ BybitAuth       HMAC-SHA256 over ``timestamp + apiKey + recvWindow + payload``

Signing (exchanges.md section 1, docs v5/guide#authentication): headers ``X-BAPI-API-KEY``,
``X-BAPI-TIMESTAMP`` (ms), ``X-BAPI-RECV-WINDOW``, ``X-BAPI-SIGN`` (lowercase hex);
payload = the query string *as sent* for GET, the raw JSON body for POST. The venue accepts
``server_time - recv_window <= timestamp < server_time + 1000``; our timestamp comes from
:class:`ServerClock` (local clock + offset measured with ``GET /v5/market/time``). A 10002
answer re-syncs the offset and retries once with a fresh signature.

Exceptions (all :class:`tradebot.errors.VenueError`)::

    httpx.ConnectError/ConnectTimeout/PoolTimeout  → TransientError   (never sent)
    other transport errors (read timeout, dropped) → OutcomeUnknown   (mutating requests)
                                                   → TransientError   (reads)
    HTTP != 200                                    → errors.http_error_for
    HTTP 200 and retCode != 0                      → errors.error_for (34040/110025/110043 are
                                                     returned: the caller verifies 34040/110025)

Rate limits: every reply's ``X-Bapi-Limit`` / ``X-Bapi-Limit-Status`` /
``X-Bapi-Limit-Reset-Timestamp`` headers are fed to the endpoint's budget
(:meth:`adapters.bybit.budget.EndpointBudgets.observe`), so our bucket follows the venue's
count (docs v5/rate-limit).

Retries: a RESYNC code (10002, -1) re-syncs the clock and retries once. A call with
``retry_budget_s`` (the venue passes it for protective calls: stop moves, closes) also
retries RETRY_LATER answers (429, 10006, 10018, 110079, 110063, network errors before
sending, 5xx on reads) after the venue's reset time or a doubling back-off, on the trio
clock, until the budget is spent; with ``idempotent=True`` (trading-stop sets a value) an
outcome-unknown answer (timeout, 10016, 5xx) is retried too.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import time
from collections.abc import Callable, Generator, Mapping
from typing import Any

import httpx
import trio

from adapters.bybit.budget import EndpointBudgets, Priority
from adapters.bybit.errors import RESYNC_CODES, error_for, http_error_for
from tradebot.clock import WallClock
from tradebot.errors import OutcomeUnknown, RateLimited, TransientError, VenueError
from tradebot.events import (
    ClockResynced,
    Event,
    ExchangeError,
    ExchangeRequest,
    ExchangeResponse,
    JournalPort,
    Payload,
    RateLimitHit,
    Severity,
)
from tradebot.ports import Clock

__all__ = ["REDACTED_KEYS", "BybitAuth", "BybitHttp", "ServerClock", "sign"]

REDACTED_KEYS = frozenset({"apiKey", "api_key", "sign", "signature", "secret", "api_secret"})


def _wall_ms() -> int:
    return time.time_ns() // 1_000_000


def sign(secret: str, payload: str) -> str:
    """HMAC-SHA256 of ``payload`` with ``secret``, lowercase hex (Bybit HMAC mode)."""
    return hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()


class ServerClock:
    """Our estimate of the venue's clock: ``local_ms() + offset_ms``.

    Args:
        local_ms: local Unix-ms source (injectable so tests can skew it).
    """

    def __init__(self, local_ms: Callable[[], int] = _wall_ms) -> None:
        self.local_ms = local_ms
        self.offset_ms = 0
        self.synced = False

    def now_ms(self) -> int:
        return self.local_ms() + self.offset_ms

    def update(self, server_ms: int, sent_local_ms: int, received_local_ms: int) -> int:
        """Set the offset from one round trip (server time taken at the midpoint).

        Returns:
            The new offset in ms.
        """
        midpoint = (sent_local_ms + received_local_ms) // 2
        self.offset_ms = server_ms - midpoint
        self.synced = True
        return self.offset_ms


class BybitAuth(httpx.Auth):
    """httpx auth that signs a request with the account's API key (HMAC-SHA256)."""

    def __init__(
        self, api_key: str, api_secret: str, clock: ServerClock, recv_window_ms: int
    ) -> None:
        self._api_key = api_key
        self._api_secret = api_secret
        self._clock = clock
        self._recv_window_ms = recv_window_ms

    def __repr__(self) -> str:  # never show the secret
        return f"BybitAuth(api_key={self._api_key[:4]}…)"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        ts = str(self._clock.now_ms())
        recv = str(self._recv_window_ms)
        if request.method == "GET":
            payload = request.url.query.decode()
        else:
            payload = request.content.decode()
        request.headers["X-BAPI-API-KEY"] = self._api_key
        request.headers["X-BAPI-TIMESTAMP"] = ts
        request.headers["X-BAPI-RECV-WINDOW"] = recv
        request.headers["X-BAPI-SIGN"] = sign(self._api_secret, ts + self._api_key + recv + payload)
        request.headers["X-BAPI-SIGN-TYPE"] = "2"
        yield request


def _redact(params: Mapping[str, Any]) -> dict[str, Any]:
    return {k: ("***" if k in REDACTED_KEYS else v) for k, v in params.items()}


_BULKY_PATHS = ("/v5/market/instruments-info", "/v5/market/tickers")


def _journal_result(path: str, result: Any) -> Any:
    """The reply as journaled: in full, except bulky market-data lists (hundreds of
    instruments per page), which are summarized as row count + symbols + cursor."""
    if path.startswith(_BULKY_PATHS) and isinstance(result, dict):
        rows = result.get("list") or []
        return {
            "rows": len(rows),
            "nextPageCursor": result.get("nextPageCursor", ""),
            "symbols": [r.get("symbol") for r in rows[:50] if isinstance(r, dict)],
        }
    return result


def query_string(params: Mapping[str, Any]) -> str:
    """``k=v&...`` in key order, values already venue strings (no URL-unsafe characters
    occur in the parameters we send; ``orderLinkId`` is ``[A-Za-z0-9_-]``)."""
    return "&".join(f"{k}={v}" for k, v in sorted(params.items()) if v is not None)


class BybitHttp:
    """The signed REST client of one Bybit account.

    Args:
        rest_url: base URL, e.g. ``https://api.bybit.com`` or the sandbox's
            ``http://127.0.0.1:PORT`` (config ``exchange.rest_url``).
        api_key / api_secret: credentials (from the env vars named in config); never logged.
        recv_window_ms: ``X-BAPI-RECV-WINDOW`` (default 5000).
        journal: optional; every request and reply is journaled, secrets redacted.
        clock: event timestamps (the Clock port); wall clock by default.
        server_clock: venue-clock estimate; injectable so tests can skew the local clock.
        budgets: per-endpoint rate budgets.
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
        budgets: EndpointBudgets | None = None,
        timeout_s: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.rest_url = rest_url.rstrip("/")
        self._api_key = api_key
        self.server_clock = server_clock or ServerClock()
        self._auth = BybitAuth(api_key, api_secret, self.server_clock, recv_window_ms)
        self.recv_window_ms = recv_window_ms
        self.journal = journal
        self.clock: Clock = clock or WallClock()
        self.budgets = budgets or EndpointBudgets()
        self._client = httpx.AsyncClient(
            base_url=self.rest_url,
            timeout=timeout_s,
            transport=transport,
            headers={"Content-Type": "application/json"},
        )
        self._req_ids = itertools.count(1)

    async def aclose(self) -> None:
        await self._client.aclose()

    # --- journaling ---------------------------------------------------------------------

    def _emit(
        self,
        payload: Payload,
        severity: Severity = Severity.INFO,
        symbol: str | None = None,
        client_order_id: str | None = None,
    ) -> None:
        if self.journal is None:
            return
        self.journal.emit(
            Event.of(
                payload,
                self.clock.now(),
                severity=severity,
                symbol=symbol,
                client_order_id=client_order_id,
                correlation_id=getattr(payload, "request_id", None),
            )
        )

    # --- clock --------------------------------------------------------------------------

    async def sync_time(self) -> int:
        """Measure the venue clock with ``GET /v5/market/time``; returns the offset in ms.

        Raises:
            VenueError: when the time cannot be read.
        """
        sent = self.server_clock.local_ms()
        _, result, env = await self._once(
            "GET", "/v5/market/time", {}, signed=False, mutating=False, priority=Priority.PROTECTIVE
        )
        received = self.server_clock.local_ms()
        try:
            server_ms = int(result["timeNano"]) // 1_000_000
        except (KeyError, TypeError, ValueError):
            server_ms = int(env.get("time", 0))
        old = self.server_clock.offset_ms
        new = self.server_clock.update(server_ms, sent, received)
        self._emit(ClockResynced(old_offset_ms=old, offset_ms=new, rtt_ms=received - sent))
        return new

    # --- requests -----------------------------------------------------------------------

    async def call(
        self,
        method: str,
        path: str,
        params: Mapping[str, Any] | None = None,
        *,
        signed: bool = True,
        mutating: bool = False,
        priority: Priority = Priority.NORMAL,
        retry_budget_s: float = 0.0,
        idempotent: bool = False,
    ) -> tuple[int, Any]:
        """Send one request and check the envelope.

        Args:
            method: ``"GET"`` or ``"POST"``.
            path: ``/v5/...``.
            params: query parameters (GET) or JSON body (POST); values as venue strings/ints.
            signed: private endpoint.
            mutating: the request can change venue state (decides OutcomeUnknown vs retry).
            priority: budget priority (PROTECTIVE for stops and closes).
            retry_budget_s: seconds (>= 0) within which retryable answers are retried
                (0: no retries beyond the clock re-sync). A retry starts only if its wait
                ends inside the budget.
            idempotent: sending the request twice has the effect of sending it once
                (trading-stop sets a value): outcome-unknown answers are retried too.

        Returns:
            ``(retCode, result)``; retCode is 0 or one of the success codes (34040, 110025,
            110043); the caller checks the state behind 34040 and 110025.

        Raises:
            VenueError subclasses as mapped in :mod:`adapters.bybit.errors`; the last one
            when the retry budget ran out.
        """
        p = dict(params or {})
        deadline = trio.current_time() + max(retry_budget_s, 0.0)
        backoff_s = 0.2
        attempt = 0
        while True:
            attempt += 1
            try:
                return await self._resynced(method, path, p, signed, mutating, priority)
            except (TransientError, OutcomeUnknown) as exc:
                if isinstance(exc, OutcomeUnknown) and not idempotent:
                    raise
                wait_s = max(exc.retry_after_s, 0.05) if isinstance(exc, RateLimited) else backoff_s
                if retry_budget_s <= 0 or trio.current_time() + wait_s > deadline:
                    raise
                self._emit(
                    ExchangeError(
                        venue="bybit",
                        what="retry",
                        path=path,
                        error=type(exc).__name__,
                        code=str(exc.code),
                        attempt=attempt,
                        retry_in_s=wait_s,
                        message=f"retrying within the {retry_budget_s:g} s budget",
                    ),
                    Severity.WARNING,
                    params.get("symbol") if params else None,
                )
                await trio.sleep(wait_s)
                backoff_s = min(backoff_s * 2, 2.0)

    async def _resynced(
        self,
        method: str,
        path: str,
        p: dict[str, Any],
        signed: bool,
        mutating: bool,
        priority: Priority,
    ) -> tuple[int, Any]:
        try:
            code, result, _ = await self._once(
                method, path, p, signed=signed, mutating=mutating, priority=priority
            )
        except TransientError as exc:
            if not exc.code.lstrip("-").isdigit() or int(exc.code) not in RESYNC_CODES:
                raise
            # 10002 / -1: our timestamp is outside the recv window or the request expired.
            # Re-sync and retry once; the request was refused before any processing, so
            # resending is safe.
            await self.sync_time()
            code, result, _ = await self._once(
                method, path, p, signed=signed, mutating=mutating, priority=priority
            )
        return code, result

    def _observe_limits(self, path: str, headers: httpx.Headers) -> float | None:
        """Feed ``X-Bapi-Limit*`` headers to the budget; returns seconds to the reset."""
        status = headers.get("X-Bapi-Limit-Status")
        limit = headers.get("X-Bapi-Limit")
        reset = headers.get("X-Bapi-Limit-Reset-Timestamp")
        if status is None and limit is None and reset is None:
            return None
        reset_in_s = 0.0
        if reset is not None and reset.isdigit():
            reset_in_s = min(max((int(reset) - self.server_clock.now_ms()) / 1000, 0.0), 60.0)
        self.budgets.observe(
            path,
            int(limit) if limit is not None and limit.isdigit() else None,
            int(status) if status is not None and status.isdigit() else None,
            reset_in_s,
        )
        return reset_in_s if reset is not None else None

    async def _once(
        self,
        method: str,
        path: str,
        params: dict[str, Any],
        *,
        signed: bool,
        mutating: bool,
        priority: Priority,
    ) -> tuple[int, Any, dict[str, Any]]:
        await self.budgets.for_path(path).acquire(priority)
        request_id = f"bybit-{next(self._req_ids)}"
        symbol = params.get("symbol")
        cid = params.get("orderLinkId")
        self._emit(
            ExchangeRequest(
                request_id=request_id,
                venue="bybit",
                method=method,
                path=path,
                params=_redact(params),
            ),
            symbol=symbol,
            client_order_id=cid,
        )
        started = trio.current_time()
        auth = self._auth if signed else None
        try:
            if method == "GET":
                qs = query_string(params)
                url = f"{path}?{qs}" if qs else path
                resp = (
                    await self._client.request("GET", url, auth=auth)
                    if auth
                    else await self._client.request("GET", url)
                )
            else:
                body = json.dumps(params, separators=(",", ":"))
                resp = (
                    await self._client.request(method, path, content=body.encode(), auth=auth)
                    if auth
                    else await self._client.request(method, path, content=body.encode())
                )
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            err: VenueError = TransientError(f"bybit {path}: not sent: {exc!r}", code="network")
            self._error(request_id, path, err, symbol, cid)
            raise err from exc
        except httpx.TransportError as exc:
            cls: type[VenueError] = OutcomeUnknown if mutating else TransientError
            err = cls(f"bybit {path}: no reply: {exc!r}", code="network")
            self._error(request_id, path, err, symbol, cid)
            raise err from exc
        latency_ms = round((trio.current_time() - started) * 1000, 3)
        reset_in_s = self._observe_limits(path, resp.headers)
        if resp.status_code != 200:
            err = http_error_for(resp.status_code, resp.text, mutating=mutating)
            if isinstance(err, RateLimited) and resp.status_code == 429 and reset_in_s is not None:
                err.retry_after_s = reset_in_s
            self._error(request_id, path, err, symbol, cid, latency_ms=latency_ms)
            raise err
        try:
            env = resp.json()
            ret_code = int(env["retCode"])
            ret_msg = str(env.get("retMsg", ""))
        except (ValueError, KeyError, TypeError) as exc:
            cls = OutcomeUnknown if mutating else TransientError
            err = cls(f"bybit {path}: malformed envelope: {resp.text[:200]!r}", code="envelope")
            self._error(request_id, path, err, symbol, cid, latency_ms=latency_ms)
            raise err from exc
        result = env.get("result")
        mapped = error_for(ret_code, ret_msg, mutating=mutating)
        if mapped is not None:
            if isinstance(mapped, RateLimited):
                if reset_in_s is not None:
                    mapped.retry_after_s = reset_in_s
                self._emit(
                    RateLimitHit(
                        request_id=request_id, path=path, retry_after_s=mapped.retry_after_s
                    ),
                    Severity.WARNING,
                    symbol,
                )
            self._error(
                request_id, path, mapped, symbol, cid, latency_ms=latency_ms, ret_code=ret_code
            )
            raise mapped
        self._emit(
            ExchangeResponse(
                request_id=request_id,
                venue="bybit",
                path=path,
                ret_code=ret_code,
                ret_msg=ret_msg,
                result=_journal_result(path, result),
                latency_ms=latency_ms,
            ),
            symbol=symbol,
            client_order_id=cid,
        )
        return ret_code, result, env

    def _error(
        self,
        request_id: str,
        path: str,
        err: VenueError,
        symbol: Any,
        cid: Any,
        *,
        latency_ms: float | None = None,
        ret_code: int | None = None,
    ) -> None:
        self._emit(
            ExchangeError(
                request_id=request_id,
                venue="bybit",
                path=path,
                error=type(err).__name__,
                code=err.code,
                venue_message=err.venue_message,
                message=str(err),
                ret_code=ret_code,
                latency_ms=latency_ms,
            ),
            Severity.WARNING,
            symbol,
            cid,
        )
