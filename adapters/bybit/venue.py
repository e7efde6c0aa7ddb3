"""``BybitVenue``: the Bybit v5 (linear, hedge mode) implementation of ``ExchangePort``.

Protocol choices, each for a documented Bybit pitfall (exchanges.md sections 2, 3, 9, 10):

* every order carries ``positionIdx`` (1 long, 2 short): without it hedge mode answers 10001;
  a switch of the whole coin to hedge mode is not proof (110025 comes back while symbols
  with positions or orders stay one-way), so every traded symbol's mode is verified from
  the position list; a symbol still one-way is switched by symbol once flat, else entries
  on it are refused (journaled, with an alert) — never traded blind. Protective calls on a
  one-way symbol (an adopted position) use ``positionIdx`` 0;
* the entry carries the stop (``stopLoss``, ``slTriggerBy=MarkPrice``, ``tpslMode=Full``,
  ``slOrderType=Market``), so the position never exists without a stop; a separate SL right
  after the entry could meet "zero position";
* the stop is moved in place with ``/v5/position/trading-stop``; 34040 "not modified" is
  success only when the position row then shows the requested stop (the code also means
  "a required parameter is missing"); it has no client id, so
  ``Capabilities.stop_has_client_id`` is False; protective calls retry retryable answers
  (429, 10006, 10016 for the idempotent trading-stop, ...) within ``protective_retry_s``;
* conditional reduce-only orders always send ``triggerDirection`` (1 rises to, 2 falls to)
  and we check the side ourselves against the cached mark: a flipped direction is accepted
  by the venue and never protects (ccxt #19000);
* the position list has two rows per symbol in hedge mode: rows are keyed by
  ``positionIdx``, never ``list[0]``; one-way rows (``positionIdx`` 0, ``side ""`` when
  flat) parse too, and one bad row never hides the others;
* a failed query raises; ``get_order`` resolves a client id over ``/v5/order/realtime``,
  ``/v5/order/history`` and ``/v5/execution/list`` within ``order_lookup_window_s`` from
  the submission (order history may lag; after a venue restart closed orders are only in
  history) and returns None only after a confirmed absence — never while an entry's
  position side shows a position;
* after every private-stream (re)connect, executions since the last one seen are
  backfilled from ``/v5/execution/list`` and emitted exactly once (by ``execId``);
* writes are rate-budgeted per endpoint with capacity kept for stops and closes, and the
  budgets follow the venue's ``X-Bapi-Limit*`` headers.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from types import TracebackType

import trio

from adapters.bybit._venue_base import (
    BYBIT_CAPABILITIES,
)
from adapters.bybit._venue_orders import _BybitOrders
from adapters.bybit.ws import run_private_stream, run_public_stream
from tradebot.errors import (
    RejectedError,
    VenueError,
)
from tradebot.events import EventType, Severity
from tradebot.ports import (
    AccountEvent,
    MarketEvent,
)

__all__ = ["BYBIT_CAPABILITIES", "BybitVenue"]


class BybitVenue(_BybitOrders):
    """One Bybit account (USDT linear perpetuals, hedge mode) behind :class:`ExchangePort`.

    Args:
        urls: REST and stream URLs (:func:`adapters.bybit.urls.bybit_urls`).
        api_key / api_secret: credentials (read from the env vars named in config by the
            caller); never logged or journaled.
        journal: optional; every REST request/reply and stream (re)connect is journaled.
        clock: event timestamps (Clock port).
        recv_window_ms: signing recv window.
        budgets: per-endpoint rate budgets (default: Bybit's per-UID limits).
        stream_settings: ping / watchdog / backoff timing.
        server_clock: venue clock estimate (tests inject a skewed local clock).
        transport: optional httpx transport (tests).
        order_lookup_window_s: how long (s, >= 0) after an order's submission a lookup by
            client id keeps looking before it calls the order absent (config
            ``exchange.order_lookup_window_s``, default 10). Bybit's order history may lag
            the matching engine; the lookup retries with a doubling back-off from
            ``order_lookup_backoff_s`` (capped at 2 s) on the trio clock.
        order_lookup_backoff_s: first back-off of that lookup (s, > 0; default 0.25).
        protective_retry_s: the retry budget (s, >= 0) of protective calls (stop place /
            move / cancel, closes) on retryable answers (config
            ``exchange.protective_retry_s``, default 10).
        startup_backfill_s: at the first private-stream connection without a known last
            execution, backfill executions this far back (s, default 3600).
        backfill_overlap_s: later backfills start this much before the newest execution
            seen (s, default 5; duplicates are dropped by ``execId``).

    Use as ``async with BybitVenue(...) as venue:`` (closes the HTTP client).
    """

    # --- lifecycle ----------------------------------------------------------------------------

    async def __aenter__(self) -> BybitVenue:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self.http.aclose()

    # --- streams ------------------------------------------------------------------------------

    async def run_market_stream(
        self, symbols: Sequence[str], emit: Callable[[MarketEvent], Awaitable[None]]
    ) -> None:
        """Mark prices from ``tickers.{symbol}`` (merged into :attr:`tickers`)."""
        await run_public_stream(
            self.urls.public_ws_url,
            symbols,
            emit,
            cache=self.tickers,
            settings=self.stream_settings,
            journal=self.journal,
            clock=self.clock,
        )

    async def run_account_stream(
        self,
        emit: Callable[[AccountEvent], Awaitable[None]],
        *,
        since: datetime | None = None,
    ) -> None:
        """Order / execution / position events of the account, with no fill missed.

        After every successful (re)connect (start-up and each gap) the executions since the
        newest one seen are backfilled from ``/v5/execution/list`` (see
        :meth:`backfill_executions`; at start-up from ``since`` — e.g. the newest fill in
        the journal — else ``startup_backfill_s`` ago) and emitted once each, interleaved
        with the live stream by ``execId``. A failed backfill is journaled and retried with
        a capped back-off while the connection lives.
        """
        if not self._api_key:
            raise RejectedError("private stream needs API credentials", code="no_credentials")
        since_ms = int(since.timestamp() * 1000) if since is not None else None

        async def backfill() -> None:
            delay = 0.5
            while True:
                try:
                    await self.backfill_executions(emit, since_ms=since_ms)
                    return
                except VenueError as exc:
                    self._journal(
                        EventType.EXCHANGE_ERROR,
                        {
                            "venue": "bybit",
                            "what": "execution_backfill",
                            "error": type(exc).__name__,
                            "message": str(exc),
                            "retry_in_s": delay,
                        },
                        Severity.ERROR,
                    )
                await trio.sleep(delay)
                delay = min(delay * 2, 30.0)

        await run_private_stream(
            self.urls.private_ws_url,
            self._api_key,
            self._api_secret,
            emit,
            server_clock=self.http.server_clock,
            settings=self.stream_settings,
            journal=self.journal,
            clock=self.clock,
            tracker=self.fills,
            after_open=backfill,
        )
