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

from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from types import TracebackType
from typing import Any

import attrs
import httpx
import trio

from adapters.bybit.budget import EndpointBudgets, Priority
from adapters.bybit.errors import is_position_mode_mismatch
from adapters.bybit.fills import ExecutionTracker
from adapters.bybit.http import BybitHttp, ServerClock
from adapters.bybit.parse import (
    HEDGE,
    ONE_WAY,
    POSITION_TPSL_TYPES,
    ClosedPnl,
    ParseError,
    execution_position_side,
    opt_dec,
    order_from_executions,
    parse_closed_pnl,
    parse_execution,
    parse_instrument,
    parse_order,
    parse_position_row,
    parse_wallet_usdt,
    position_mode_of,
)
from adapters.bybit.urls import BybitUrls
from adapters.bybit.ws import StreamSettings, TickerCache, run_private_stream, run_public_stream
from tradebot.domain import (
    Instrument,
    InstrumentStatus,
    OrderRole,
    OrderStatus,
    OrderType,
    PositionSide,
    Side,
)
from tradebot.errors import (
    OutcomeUnknown,
    RejectedError,
    SymbolNotTradable,
    VenueError,
    WouldTriggerImmediately,
)
from tradebot.events import Event, EventType, JournalPort, Severity
from tradebot.ports import (
    AccountEvent,
    Balance,
    Capabilities,
    Clock,
    EntryRequest,
    Fill,
    MarketEvent,
    OrderState,
    PositionState,
    ReduceRequest,
    StopRequest,
    StopState,
)

__all__ = ["BYBIT_CAPABILITIES", "BybitVenue"]

BYBIT_CAPABILITIES = Capabilities(
    venue="bybit",
    attached_stop=True,
    amend_stop=True,
    stop_has_client_id=False,
    max_conditional_per_symbol=10,
)

_CATEGORY = "linear"
_POSITION_TPSL_TYPES = POSITION_TPSL_TYPES
_MODE_BLOCKED_CODES = ("110024", "110028")  # switch-mode refused: open position / orders
_EXEC_SPAN_MS = 7 * 24 * 3600 * 1000  # /v5/execution/list: endTime - startTime <= 7 days
_MAX_SUBMITTED = 10_000


@attrs.frozen
class _Submitted:
    """An order this venue object sent (for resolving its outcome by client id)."""

    symbol: str
    position_side: PositionSide
    reduce_only: bool
    sent_at: float  # trio.current_time() of the latest submission


def _s(value: Decimal) -> str:
    """Decimal → venue string (no exponent)."""
    return format(value, "f")


class BybitVenue:
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

    def __init__(
        self,
        urls: BybitUrls,
        api_key: str = "",
        api_secret: str = "",
        *,
        journal: JournalPort | None = None,
        clock: Clock | None = None,
        recv_window_ms: int = 5000,
        budgets: EndpointBudgets | None = None,
        stream_settings: StreamSettings | None = None,
        server_clock: ServerClock | None = None,
        timeout_s: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
        order_lookup_window_s: float = 10.0,
        order_lookup_backoff_s: float = 0.25,
        protective_retry_s: float = 10.0,
        startup_backfill_s: float = 3600.0,
        backfill_overlap_s: float = 5.0,
    ) -> None:
        if order_lookup_window_s < 0 or order_lookup_backoff_s <= 0 or protective_retry_s < 0:
            raise ValueError(
                "need order_lookup_window_s >= 0, order_lookup_backoff_s > 0, "
                "protective_retry_s >= 0"
            )
        self.urls = urls
        self._api_key = api_key
        self._api_secret = api_secret
        self.journal = journal
        self.clock = clock
        self.http = BybitHttp(
            urls.rest_url,
            api_key,
            api_secret,
            recv_window_ms=recv_window_ms,
            journal=journal,
            clock=clock,
            server_clock=server_clock,
            budgets=budgets,
            timeout_s=timeout_s,
            transport=transport,
        )
        self.stream_settings = stream_settings or StreamSettings()
        self.tickers = TickerCache()
        self.mark_max_age_s = 5.0
        self.order_lookup_window_s = order_lookup_window_s
        self.order_lookup_backoff_s = order_lookup_backoff_s
        self.protective_retry_s = protective_retry_s
        self.startup_backfill_s = startup_backfill_s
        self.backfill_overlap_s = backfill_overlap_s
        self.fills = ExecutionTracker()
        self._instruments: dict[str, Instrument] = {}
        self._submitted: OrderedDict[str, _Submitted] = OrderedDict()
        self._hedge_ok: set[str] = set()  # symbols verified in hedge mode
        self._one_way: set[str] = set()  # symbols seen in one-way mode (positionIdx 0)
        self._mode_blocked: dict[str, str] = {}  # symbol → why entries are refused
        self._not_tradable: dict[str, str] = {}  # symbol → venue code that refused entries
        self._mode_locks: dict[str, trio.Lock] = {}

    # --- lifecycle ----------------------------------------------------------------------

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

    @property
    def capabilities(self) -> Capabilities:
        return BYBIT_CAPABILITIES

    async def sync_time(self) -> int:
        """Measure the venue clock offset (ms); call once at start-up."""
        return await self.http.sync_time()

    # --- journal / helpers ------------------------------------------------------------

    def _journal(
        self,
        type_: EventType,
        data: dict[str, Any],
        severity: Severity = Severity.INFO,
        symbol: str | None = None,
        client_order_id: str | None = None,
    ) -> None:
        if self.journal is None:
            return
        ts = self.clock.now() if self.clock is not None else datetime.now(UTC)
        self.journal.emit(
            Event(
                type=type_,
                ts=ts,
                data=data,
                severity=severity,
                symbol=symbol,
                client_order_id=client_order_id,
            )
        )

    def _idx(self, symbol: str, position_side: PositionSide) -> int:
        """``positionIdx`` for an order/stop on ``symbol``: 1/2 in hedge mode, 0 for a
        symbol seen in one-way mode (protective calls on an adopted one-way position)."""
        return 0 if symbol in self._one_way else position_side.bybit_position_idx

    def _note_submit(self, cid: str, symbol: str, side: PositionSide, reduce_only: bool) -> None:
        self._submitted[cid] = _Submitted(symbol, side, reduce_only, trio.current_time())
        self._submitted.move_to_end(cid)
        while len(self._submitted) > _MAX_SUBMITTED:
            self._submitted.popitem(last=False)

    # --- metadata -----------------------------------------------------------------------

    async def instruments(self) -> Mapping[str, Instrument]:
        """All linear USDT perpetuals by symbol (cached; :meth:`refresh_instruments` reloads).

        A symbol this account cannot enter (:attr:`blocked_symbols`: left in one-way mode,
        or refused by the venue as not tradable) is reported ``REDUCE_ONLY``, so the
        instrument filter of the wave processor refuses it with that reason.
        """
        if not self._instruments:
            await self.refresh_instruments()
        out = dict(self._instruments)
        for symbol in self.blocked_symbols:
            inst = out.get(symbol)
            if inst is not None and inst.status is InstrumentStatus.TRADING:
                out[symbol] = attrs.evolve(inst, status=InstrumentStatus.REDUCE_ONLY)
        return out

    async def refresh_instruments(self) -> Mapping[str, Instrument]:
        """Reload ``/v5/market/instruments-info`` following ``nextPageCursor`` to the end.

        Only USDT-settled ``LinearPerpetual`` contracts are kept. A symbol blocked because
        the venue refused it as not tradable is unblocked when it is listed ``Trading``.
        """
        found: dict[str, Instrument] = {}
        cursor = ""
        for _ in range(1000):  # defensive bound against a cursor that never ends
            params: dict[str, Any] = {"category": _CATEGORY, "limit": 1000}
            if cursor:
                params["cursor"] = cursor
            _, result = await self.http.call(
                "GET", "/v5/market/instruments-info", params, signed=False
            )
            for row in result.get("list", []):
                if row.get("contractType", "LinearPerpetual") != "LinearPerpetual":
                    continue
                if row.get("settleCoin", "USDT") != "USDT":
                    continue
                inst = parse_instrument(row)
                found[inst.symbol] = inst
            cursor = str(result.get("nextPageCursor") or "")
            if not cursor:
                break
        self._instruments = found
        for symbol in list(self._not_tradable):
            listed = found.get(symbol)
            if listed is not None and listed.status is InstrumentStatus.TRADING:
                del self._not_tradable[symbol]
        return dict(found)

    async def balance(self) -> Balance:
        """USDT of the unified trading account (``/v5/account/wallet-balance``
        ``accountType=UNIFIED``, docs https://bybit-exchange.github.io/docs/v5/account/wallet-balance).

        ``available_usdt`` is the USDT available for new margin (the coin's ``equity`` less
        its position and order initial margin), not the account-level USD
        ``totalAvailableBalance`` (see :func:`adapters.bybit.parse.parse_wallet_usdt`).
        """
        _, result = await self.http.call(
            "GET", "/v5/account/wallet-balance", {"accountType": "UNIFIED", "coin": "USDT"}
        )
        accounts = result.get("list") or []
        if not accounts:
            raise ParseError("wallet-balance returned no account")
        return parse_wallet_usdt(accounts[0])  # one account per accountType

    # --- account setup and position modes -----------------------------------------------

    @property
    def blocked_symbols(self) -> Mapping[str, str]:
        """Symbols entries are refused on, with the reason: left in one-way position mode
        (``"position_mode: ..."``) or refused by the venue as not tradable
        (``"not_tradable: <retCode> ..."``)."""
        return {**self._not_tradable, **self._mode_blocked}

    async def setup_account(self, leverage_by_symbol: Mapping[str, int]) -> None:
        """Hedge mode for all USDT contracts, verified per symbol, and leverage per symbol.

        1. ``POST /v5/position/switch-mode`` ``coin=USDT, mode=3``. Neither 0 nor 110025
           ("not modified") proves every symbol switched: symbols with an open position or
           orders stay one-way (110024 / 110028 are not fatal here either).
        2. Every symbol of ``leverage_by_symbol`` (and any verified before) is checked with
           :meth:`verify_position_modes`: switched by symbol if flat, otherwise entries on
           it are refused (journaled, alert), see :attr:`blocked_symbols`.
        3. ``set-leverage`` per symbol (110043 "not modified" is success).

        Raises:
            ValueError: a leverage < 1.
            VenueError: a request failed (other than the mode answers above).
        """
        for symbol, lev in leverage_by_symbol.items():
            if lev < 1:
                raise ValueError(f"{symbol}: leverage must be >= 1, got {lev}")
        try:
            await self.http.call(
                "POST",
                "/v5/position/switch-mode",
                {"category": _CATEGORY, "coin": "USDT", "mode": 3},
                mutating=True,
            )
        except RejectedError as exc:
            if exc.code not in _MODE_BLOCKED_CODES:
                raise
        symbols = sorted(set(leverage_by_symbol) | self._hedge_ok | set(self._mode_blocked))
        self._hedge_ok.clear()
        await self.verify_position_modes(symbols)
        for symbol, lev in sorted(leverage_by_symbol.items()):
            await self.http.call(
                "POST",
                "/v5/position/set-leverage",
                {
                    "category": _CATEGORY,
                    "symbol": symbol,
                    "buyLeverage": str(lev),
                    "sellLeverage": str(lev),
                },
                mutating=True,
            )

    async def verify_position_modes(self, symbols: Sequence[str]) -> dict[str, str]:
        """Check each symbol's position mode from ``/v5/position/list?symbol=`` (hedge
        mode: rows with ``positionIdx`` 1 and 2; one-way: one row with 0).

        A symbol still in one-way mode is switched by symbol (``switch-mode`` with
        ``symbol``) when it has no position and no open order, then checked again;
        otherwise entries on it are refused with a journaled reason and an ``ALERT_RAISED``
        (critical) until a later check (every entry on it re-checks) finds it switchable.

        Returns:
            ``{symbol: "hedge" | reason}``.

        Raises:
            VenueError: a query failed (the symbol's mode stays unverified).
        """
        out: dict[str, str] = {}
        for symbol in symbols:
            reason = await self._ensure_hedge(symbol)
            out[symbol] = reason or HEDGE
        return out

    async def _ensure_hedge(self, symbol: str) -> str | None:
        """None when ``symbol`` is (now) in hedge mode, else why entries must be refused."""
        lock = self._mode_locks.setdefault(symbol, trio.Lock())
        async with lock:
            if symbol in self._hedge_ok:
                return None
            reason = await self._check_mode(symbol)
            if reason is None:
                self._hedge_ok.add(symbol)
                self._one_way.discard(symbol)
                if self._mode_blocked.pop(symbol, None) is not None:
                    self._journal(
                        EventType.ALERT_RAISED,
                        {
                            "reason": "position_mode_resolved",
                            "message": f"{symbol} is in hedge mode now; entries allowed",
                        },
                        Severity.INFO,
                        symbol,
                    )
                return None
            self._one_way.add(symbol)
            if self._mode_blocked.get(symbol) != reason:
                self._journal(
                    EventType.ALERT_RAISED,
                    {
                        "reason": "position_mode_one_way",
                        "message": f"{symbol}: entries refused: {reason}",
                    },
                    Severity.CRITICAL,
                    symbol,
                )
            self._mode_blocked[symbol] = reason
            return reason

    async def _modes_of(self, symbol: str) -> tuple[set[str], bool]:
        rows = await self._position_rows(symbol)
        modes = {position_mode_of(r) for r in rows}
        has_position = any((opt_dec(r, "size") or Decimal(0)) > 0 for r in rows)
        return modes, has_position

    async def _check_mode(self, symbol: str) -> str | None:
        modes, has_position = await self._modes_of(symbol)
        if modes == {HEDGE}:
            return None
        if not modes:
            return "position_mode: unknown (the position list has no row for the symbol)"
        if has_position:
            return "position_mode: one-way with an open position (switch it when flat)"
        if await self._open_order_rows(symbol):
            return "position_mode: one-way with open orders (switch it when they are gone)"
        try:
            await self.http.call(
                "POST",
                "/v5/position/switch-mode",
                {"category": _CATEGORY, "symbol": symbol, "mode": 3},
                mutating=True,
            )
        except RejectedError as exc:
            if exc.code not in _MODE_BLOCKED_CODES:
                raise
            return f"position_mode: one-way, switch refused ({exc.code} {exc.venue_message})"
        modes, _ = await self._modes_of(symbol)
        if modes == {HEDGE}:
            return None
        return f"position_mode: still {'/'.join(sorted(modes))} after switching by symbol"

    async def _entry_allowed(self, symbol: str) -> None:
        why = self._not_tradable.get(symbol)
        if why is not None:
            raise SymbolNotTradable(
                f"bybit {symbol}: entries refused: {why}", code="not_tradable", venue_message=why
            )
        if symbol in self._hedge_ok:
            return
        reason = await self._ensure_hedge(symbol)
        if reason is not None:
            raise SymbolNotTradable(
                f"bybit {symbol}: entries refused: {reason}",
                code="position_mode",
                venue_message=reason,
            )

    # --- orders -------------------------------------------------------------------------

    def _ack(
        self,
        result: Mapping[str, Any],
        *,
        symbol: str,
        cid: str,
        side: Side,
        position_side: PositionSide,
        order_type: OrderType,
        qty: Decimal,
        price: Decimal | None = None,
        trigger: Decimal | None = None,
        reduce_only: bool = False,
        close_position: bool = False,
    ) -> OrderState:
        return OrderState(
            symbol=symbol,
            client_order_id=str(result.get("orderLinkId") or cid),
            venue_order_id=str(result.get("orderId", "")),
            side=side,
            position_side=position_side,
            order_type=order_type,
            status=OrderStatus.NEW,
            qty=qty,
            filled_qty=Decimal(0),
            avg_fill_price=None,
            price=price,
            trigger_price=trigger,
            reduce_only=reduce_only,
            close_position=close_position,
            updated_at=datetime.now(UTC),
        )

    async def place_entry(self, request: EntryRequest) -> OrderState:
        """Market entry with the stop attached (``tpslMode=Full``, mark-price trigger).

        The reply is an acknowledgement; the fill arrives on the private stream or via
        :meth:`get_order`.

        Raises:
            SymbolNotTradable: entries on the symbol are refused (its position mode is not
                verified hedge — checked, and switched if flat, before the first entry and
                on every entry while blocked — or the venue refused it as not tradable:
                110023/110042/110066/110074/30228/10029).
            OutcomeUnknown: a dropped/timed-out submit (resolve with :meth:`get_order`).
        """
        if request.qty <= 0:
            raise ValueError("entry qty must be > 0")
        await self._entry_allowed(request.symbol)
        side = request.position_side.entry_side
        body: dict[str, Any] = {
            "category": _CATEGORY,
            "symbol": request.symbol,
            "side": "Buy" if side is Side.BUY else "Sell",
            "orderType": "Market",
            "qty": _s(request.qty),
            "positionIdx": request.position_side.bybit_position_idx,
            "orderLinkId": request.client_order_id,
        }
        if request.stop_price is not None:
            if request.stop_price <= 0:
                raise ValueError("stop_price must be > 0")
            body.update(
                {
                    "stopLoss": _s(request.stop_price),
                    "slTriggerBy": "MarkPrice",
                    "tpslMode": "Full",
                    "slOrderType": "Market",
                }
            )
        self._note_submit(
            request.client_order_id, request.symbol, request.position_side, reduce_only=False
        )
        try:
            _, result = await self.http.call("POST", "/v5/order/create", body, mutating=True)
        except SymbolNotTradable as exc:
            self._not_tradable[request.symbol] = f"{exc.code} {exc.venue_message}"
            self._journal(
                EventType.ALERT_RAISED,
                {"reason": "symbol_not_tradable", "message": str(exc), "detail": exc.code},
                Severity.ERROR,
                request.symbol,
            )
            raise
        except RejectedError as exc:
            if not is_position_mode_mismatch(exc):
                raise
            # the symbol is not in the mode we verified (changed behind our back): block it
            # until a check finds it in hedge mode again
            self._hedge_ok.discard(request.symbol)
            reason = await self._ensure_hedge(request.symbol)
            raise SymbolNotTradable(
                f"bybit {request.symbol}: {exc.venue_message}",
                code="position_mode",
                venue_message=reason or exc.venue_message,
            ) from exc
        return self._ack(
            result,
            symbol=request.symbol,
            cid=request.client_order_id,
            side=side,
            position_side=request.position_side,
            order_type=OrderType.MARKET,
            qty=request.qty,
        )

    def _check_trigger_side(
        self, symbol: str, position_side: PositionSide, trigger: Decimal
    ) -> None:
        # Only a fresh mark may veto a stop: a stale cache (stream down) could refuse a
        # valid stop, and the venue checks the side itself anyway (110092/110093, 10001).
        mark = self.tickers.mark_price(symbol, max_age_s=self.mark_max_age_s)
        if mark is None:
            return
        through = trigger >= mark if position_side is PositionSide.LONG else trigger <= mark
        if through:
            raise WouldTriggerImmediately(
                f"{symbol} {position_side.value} stop {trigger} is through the mark {mark}",
                code="local_check",
            )

    async def place_stop(self, request: StopRequest) -> StopState:
        """Whole-position stop via trading-stop (``qty is None``) or a partial conditional
        reduce-only order (``qty`` given) with an explicit ``triggerDirection``.

        Raises:
            WouldTriggerImmediately: the trigger is through the mark (checked locally
                against the cached mark, and by the venue: 10001 base_price, 110092/110093).
            ZeroPosition: no position to protect (10001 "zero position").
        """
        if request.trigger_price <= 0:
            raise ValueError("trigger_price must be > 0")
        self._check_trigger_side(request.symbol, request.position_side, request.trigger_price)
        if request.qty is None:
            await self._trading_stop(request.symbol, request.position_side, request.trigger_price)
            return StopState(
                symbol=request.symbol,
                position_side=request.position_side,
                trigger_price=request.trigger_price,
            )
        exit_side = request.position_side.exit_side
        body: dict[str, Any] = {
            "category": _CATEGORY,
            "symbol": request.symbol,
            "side": "Buy" if exit_side is Side.BUY else "Sell",
            "orderType": "Market",
            "qty": _s(request.qty),
            "positionIdx": self._idx(request.symbol, request.position_side),
            "triggerPrice": _s(request.trigger_price),
            # long stop: price falls to the trigger (2); short stop: rises to it (1)
            "triggerDirection": 2 if request.position_side is PositionSide.LONG else 1,
            "triggerBy": "MarkPrice",
            "reduceOnly": True,
            "closeOnTrigger": True,
            "orderLinkId": request.client_order_id,
        }
        self._note_submit(
            request.client_order_id, request.symbol, request.position_side, reduce_only=True
        )
        _, result = await self.http.call(
            "POST",
            "/v5/order/create",
            body,
            mutating=True,
            priority=Priority.PROTECTIVE,
            retry_budget_s=self.protective_retry_s,
        )
        return StopState(
            symbol=request.symbol,
            position_side=request.position_side,
            trigger_price=request.trigger_price,
            client_order_id=str(result.get("orderLinkId") or request.client_order_id),
            venue_order_id=str(result.get("orderId", "")),
            qty=request.qty,
        )

    async def _trading_stop(
        self, symbol: str, position_side: PositionSide, stop_loss: Decimal
    ) -> int:
        """Set the position's Full-mode stop loss (``"0"`` cancels it).

        Retried within ``protective_retry_s`` on retryable answers, including
        outcome-unknown ones (setting a value twice is setting it once). 34040 "not
        modified" is success only if the position row then shows ``stop_loss`` (the code
        also answers a request that lacked a required parameter).

        Raises:
            RejectedError: code ``"34040"`` when the position does not carry the value.
        """
        body: dict[str, Any] = {
            "category": _CATEGORY,
            "symbol": symbol,
            "tpslMode": "Full",
            "positionIdx": self._idx(symbol, position_side),
            "stopLoss": _s(stop_loss),
        }
        if stop_loss > 0:
            body.update({"slTriggerBy": "MarkPrice", "slOrderType": "Market"})
        code, _ = await self.http.call(
            "POST",
            "/v5/position/trading-stop",
            body,
            mutating=True,
            priority=Priority.PROTECTIVE,
            retry_budget_s=self.protective_retry_s,
            idempotent=True,
        )
        if code == 34040:
            await self._verify_stop_loss(symbol, position_side, stop_loss)
        return code

    async def _verify_stop_loss(
        self, symbol: str, position_side: PositionSide, stop_loss: Decimal
    ) -> None:
        shown: Decimal | None = None
        found = False
        for row in await self._position_rows(symbol, priority=Priority.PROTECTIVE):
            pos = parse_position_row(row)
            if pos is None or pos.position_side is not position_side:
                continue
            if pos.qty == 0 and position_mode_of(row) == ONE_WAY:
                continue
            found = True
            shown = pos.stop_price
            break
        want = stop_loss if stop_loss > 0 else None
        if found and shown == want:
            return
        msg = (
            f"bybit 34040 'not modified' but the {symbol} {position_side.value} position "
            f"shows stopLoss {shown} (requested {stop_loss})"
        )
        self._journal(
            EventType.EXCHANGE_ERROR,
            {
                "error": "RejectedError",
                "code": "34040",
                "venue": "bybit",
                "what": "trading_stop_not_modified",
                "message": msg,
            },
            Severity.ERROR,
            symbol,
        )
        raise RejectedError(msg, code="34040", venue_message=msg)

    async def amend_stop(self, current: StopState, new_trigger_price: Decimal) -> StopState:
        """Move a stop in place: trading-stop for the position stop (34040 = unchanged =
        success once the position shows it), ``/v5/order/amend`` of ``triggerPrice`` for a
        conditional order. Retryable answers are retried within ``protective_retry_s``."""
        if new_trigger_price <= 0:
            raise ValueError("new_trigger_price must be > 0")
        self._check_trigger_side(current.symbol, current.position_side, new_trigger_price)
        if not current.venue_order_id and not current.client_order_id:
            await self._trading_stop(current.symbol, current.position_side, new_trigger_price)
        else:
            body: dict[str, Any] = {
                "category": _CATEGORY,
                "symbol": current.symbol,
                "triggerPrice": _s(new_trigger_price),
            }
            if current.client_order_id:
                body["orderLinkId"] = current.client_order_id
            else:
                body["orderId"] = current.venue_order_id
            await self.http.call(
                "POST",
                "/v5/order/amend",
                body,
                mutating=True,
                priority=Priority.PROTECTIVE,
                retry_budget_s=self.protective_retry_s,
                idempotent=True,
            )
        return StopState(
            symbol=current.symbol,
            position_side=current.position_side,
            trigger_price=new_trigger_price,
            client_order_id=current.client_order_id,
            venue_order_id=current.venue_order_id,
            qty=current.qty,
        )

    async def cancel_stop(self, stop: StopState) -> None:
        """Remove a stop: position stop via trading-stop ``stopLoss="0"``; conditional
        order via cancel. Raises ``UnknownOrder`` (``OrderAlreadyFinal`` for 110008/110010)
        when the order is gone."""
        if not stop.venue_order_id and not stop.client_order_id:
            await self._trading_stop(stop.symbol, stop.position_side, Decimal(0))
            return
        # orderFilter is "Spot trading only" on /v5/order/cancel: linear conditional orders
        # are cancelled by id like any other order (docs v5/order/cancel-order).
        body: dict[str, Any] = {"category": _CATEGORY, "symbol": stop.symbol}
        if stop.client_order_id:
            body["orderLinkId"] = stop.client_order_id
        else:
            body["orderId"] = stop.venue_order_id
        await self.http.call(
            "POST",
            "/v5/order/cancel",
            body,
            mutating=True,
            priority=Priority.PROTECTIVE,
            retry_budget_s=self.protective_retry_s,
            idempotent=True,  # a repeated cancel answers 110001: gone either way
        )

    async def place_reduce(self, request: ReduceRequest) -> OrderState:
        """Reduce-only market (``price is None``) or GTC limit order on the exit side.

        Closes and stop-like exits are protective: higher budget priority and retried
        within ``protective_retry_s`` on retryable answers (never on an unknown outcome:
        that is resolved by client id)."""
        if request.qty <= 0:
            raise ValueError("reduce qty must be > 0")
        exit_side = request.position_side.exit_side
        body: dict[str, Any] = {
            "category": _CATEGORY,
            "symbol": request.symbol,
            "side": "Buy" if exit_side is Side.BUY else "Sell",
            "orderType": "Market" if request.price is None else "Limit",
            "qty": _s(request.qty),
            "positionIdx": self._idx(request.symbol, request.position_side),
            "reduceOnly": True,
            "orderLinkId": request.client_order_id,
        }
        if request.price is not None:
            body["price"] = _s(request.price)
            body["timeInForce"] = "GTC"
        # Closes and stop-like exits jump the entry queue; a resting TP/aged exit does not.
        protective = request.role in (OrderRole.CLOSE, OrderRole.STOP, OrderRole.EMERGENCY_STOP)
        self._note_submit(
            request.client_order_id, request.symbol, request.position_side, reduce_only=True
        )
        _, result = await self.http.call(
            "POST",
            "/v5/order/create",
            body,
            mutating=True,
            priority=Priority.PROTECTIVE if protective else Priority.NORMAL,
            retry_budget_s=self.protective_retry_s if protective else 0.0,
        )
        return self._ack(
            result,
            symbol=request.symbol,
            cid=request.client_order_id,
            side=exit_side,
            position_side=request.position_side,
            order_type=OrderType.MARKET if request.price is None else OrderType.LIMIT,
            qty=request.qty,
            price=request.price,
            reduce_only=True,
        )

    async def cancel_order(self, symbol: str, client_order_id: str) -> None:
        """Cancel by ``orderLinkId``. Raises ``UnknownOrder`` (110001; ``OrderAlreadyFinal``
        for 110008/110010) when gone."""
        await self.http.call(
            "POST",
            "/v5/order/cancel",
            {"category": _CATEGORY, "symbol": symbol, "orderLinkId": client_order_id},
            mutating=True,
            priority=Priority.PROTECTIVE,
            retry_budget_s=self.protective_retry_s,
            idempotent=True,
        )

    # --- queries ------------------------------------------------------------------------

    async def get_order(self, symbol: str, client_order_id: str) -> OrderState | None:
        """Look an order up by ``orderLinkId`` until it is found or confirmed absent.

        Each pass asks ``/v5/order/realtime`` (open + recent closed), ``/v5/order/history``
        and ``/v5/execution/list`` (an order rebuilt from its fills). Bybit's order history
        may lag the engine and after a venue restart closed orders are only in history, so
        an order not found is looked for again with a doubling back-off (from
        ``order_lookup_backoff_s``, capped at 2 s, trio clock) until
        ``order_lookup_window_s`` after its submission by this object (or after this call,
        for an id this object did not submit).

        Returns:
            The order, or None only after a confirmed absence: every source answered "no
            such order" for the whole window and, for an entry this object submitted, its
            position side shows no position.

        Raises:
            VenueError: any failed query (a failed lookup never looks like "no order").
            OutcomeUnknown: code ``"position_without_order"`` — no source shows the entry
                but its position side holds a position (it may be this entry's fill; the
                owner decides, it must not be called "not placed").
        """
        sent = self._submitted.get(client_order_id)
        start = sent.sent_at if sent is not None else trio.current_time()
        deadline = start + self.order_lookup_window_s
        delay = self.order_lookup_backoff_s
        while True:
            found = await self._lookup_once(symbol, client_order_id, sent)
            if found is not None:
                return found
            now = trio.current_time()
            if now >= deadline:
                break
            await trio.sleep(min(delay, deadline - now))
            delay = min(delay * 2, 2.0)
        if sent is not None and not sent.reduce_only:
            for row in await self._position_rows(symbol, priority=Priority.PROTECTIVE):
                pos = parse_position_row(row)
                if pos is not None and pos.position_side is sent.position_side and pos.qty > 0:
                    raise OutcomeUnknown(
                        f"bybit {symbol} {client_order_id}: no order, history or execution "
                        f"shows it after {self.order_lookup_window_s:g} s, but the "
                        f"{pos.position_side.value} side holds {pos.qty}",
                        code="position_without_order",
                    )
        return None

    async def _lookup_once(
        self, symbol: str, cid: str, sent: _Submitted | None
    ) -> OrderState | None:
        params = {"category": _CATEGORY, "symbol": symbol, "orderLinkId": cid}
        for path in ("/v5/order/realtime", "/v5/order/history"):
            _, result = await self.http.call("GET", path, params, priority=Priority.PROTECTIVE)
            rows = [r for r in result.get("list", []) if r.get("orderLinkId") == cid]
            if rows:
                return parse_order(rows[0])
        execs = await self._paged(
            "/v5/execution/list", {**params, "limit": 100}, priority=Priority.PROTECTIVE
        )
        execs = [r for r in execs if r.get("orderLinkId") == cid]
        if not execs:
            return None
        return order_from_executions(
            execs,
            position_side=sent.position_side if sent is not None else None,
            reduce_only=sent.reduce_only if sent is not None else None,
        )

    async def _paged(
        self, path: str, params: Mapping[str, Any], priority: Priority = Priority.NORMAL
    ) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        cursor = ""
        for _ in range(100):
            p = dict(params)
            if cursor:
                p["cursor"] = cursor
            _, result = await self.http.call("GET", path, p, priority=priority)
            rows.extend(result.get("list", []))
            cursor = str(result.get("nextPageCursor") or "")
            if not cursor:
                break
        return rows

    async def _open_order_rows(self, symbol: str | None) -> list[dict[str, Any]]:
        base: dict[str, Any] = {"category": _CATEGORY, "limit": 50}
        if symbol:
            base["symbol"] = symbol
        else:
            base["settleCoin"] = "USDT"
        rows: dict[str, dict[str, Any]] = {}
        for order_filter in ("Order", "StopOrder"):
            for row in await self._paged(
                "/v5/order/realtime", {**base, "orderFilter": order_filter}
            ):
                rows[str(row.get("orderId"))] = row
        return list(rows.values())

    async def open_orders(self, symbol: str | None = None) -> Sequence[OrderState]:
        """Open regular orders and untriggered conditional orders (``orderFilter`` Order and
        StopOrder). Position-level TP/SL rows are excluded (see :meth:`stops`)."""
        return [
            parse_order(r)
            for r in await self._open_order_rows(symbol)
            if r.get("stopOrderType", "") not in _POSITION_TPSL_TYPES
        ]

    async def _position_rows(
        self, symbol: str | None, priority: Priority = Priority.NORMAL
    ) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"category": _CATEGORY, "limit": 200}
        if symbol:
            params["symbol"] = symbol
        else:
            params["settleCoin"] = "USDT"
        rows = await self._paged("/v5/position/list", params, priority=priority)
        for row in rows:  # learn the mode of every symbol the list shows
            try:
                mode = position_mode_of(row)
            except ParseError:
                continue
            sym = str(row.get("symbol", ""))
            if mode == ONE_WAY:
                self._one_way.add(sym)
            elif sym in self._one_way and symbol == sym:
                self._one_way.discard(sym)
        return rows

    async def positions(self, symbol: str | None = None) -> Sequence[PositionState]:
        """Non-flat position sides.

        Hedge mode has two rows per symbol (``positionIdx`` 1 and 2, the empty one with
        ``side=""``); one-way mode one row (``positionIdx`` 0, ``side=""`` when flat, else
        ``Buy`` long / ``Sell`` short). Each row is mapped on its own: a row that cannot be
        parsed is journaled (error) and skipped, so it never hides the other positions.

        Raises:
            ParseError: with ``symbol`` given, when a row of that symbol could not be
                parsed (its state is unknown: it must not look flat).
        """
        out = []
        bad: list[str] = []
        for row in await self._position_rows(symbol):
            try:
                pos = parse_position_row(row)
            except ParseError as exc:
                bad.append(f"{row.get('symbol')}: {exc}")
                continue
            if pos is not None and pos.qty > 0:
                out.append(pos)
        if bad:
            self._journal(
                EventType.EXCHANGE_ERROR,
                {
                    "error": "ParseError",
                    "venue": "bybit",
                    "what": "positions",
                    "message": f"{len(bad)} unparsable position row(s): " + "; ".join(bad[:20]),
                },
                Severity.ERROR,
                symbol,
            )
            if symbol is not None:
                raise ParseError(f"bybit position list for {symbol}: {bad[0]}")
        return out

    async def stops(self, symbol: str, position_side: PositionSide) -> Sequence[StopState]:
        """The position-level stop (``stopLoss`` of the position row) plus open conditional
        reduce-only orders of that side (one-way rows map to the side they close)."""
        found: list[StopState] = []
        for row in await self._position_rows(symbol):
            pos = parse_position_row(row)
            if pos is None or pos.position_side is not position_side:
                continue
            if pos.stop_price is not None:
                found.append(
                    StopState(
                        symbol=symbol, position_side=position_side, trigger_price=pos.stop_price
                    )
                )
        for row in await self._open_order_rows(symbol):
            if row.get("stopOrderType", "") in _POSITION_TPSL_TYPES:
                continue
            order = parse_order(row)
            if order.position_side is not position_side or order.trigger_price is None:
                continue
            if order.side is not position_side.exit_side or not (
                order.reduce_only or order.close_position
            ):
                continue
            found.append(
                StopState(
                    symbol=symbol,
                    position_side=position_side,
                    trigger_price=order.trigger_price,
                    client_order_id=order.client_order_id,
                    venue_order_id=order.venue_order_id,
                    qty=order.qty,
                )
            )
        return found

    async def closed_pnl(
        self,
        symbol: str | None = None,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> list[ClosedPnl]:
        """The venue's realized PnL per closing order, newest first
        (``/v5/position/closed-pnl``, paged by cursor; docs v5/position/close-pnl).

        Args:
            symbol: one symbol, or all linear symbols.
            start / end: aware UTC bounds (the venue allows at most 7 days between them;
                without them it answers the last 7 days).

        Raises:
            VenueError: a failed page (never a partial list).
        """
        params: dict[str, Any] = {"category": _CATEGORY, "limit": 100}
        if symbol:
            params["symbol"] = symbol
        if start is not None:
            params["startTime"] = int(start.timestamp() * 1000)
        if end is not None:
            params["endTime"] = int(end.timestamp() * 1000)
        return [parse_closed_pnl(r) for r in await self._paged("/v5/position/closed-pnl", params)]

    async def execution_rows(self, start_ms: int, end_ms: int) -> list[dict[str, Any]]:
        """Raw ``/v5/execution/list`` rows with ``start_ms <= execTime <= end_ms``, oldest
        first: paged by cursor within windows of at most 7 days (the venue's limit).

        Raises:
            VenueError: a failed page (never a partial list).
        """
        rows: list[dict[str, Any]] = []
        lo = start_ms
        while lo <= end_ms:
            hi = min(lo + _EXEC_SPAN_MS - 1, end_ms)
            rows.extend(
                await self._paged(
                    "/v5/execution/list",
                    {"category": _CATEGORY, "startTime": lo, "endTime": hi, "limit": 100},
                )
            )
            lo = hi + 1
        rows.sort(key=lambda r: (int(str(r.get("execTime") or 0)), str(r.get("execId", ""))))
        return rows

    async def executions(self, symbol: str, since: datetime) -> Sequence[Fill]:
        """:meth:`tradebot.ports.VenueReadPort.executions` from ``/v5/execution/list``
        (oldest first). A row that cannot be parsed is journaled and skipped.

        Raises:
            VenueError: a failed page.
        """
        start_ms = int(since.timestamp() * 1000)
        rows = await self.execution_rows(start_ms, self.http.server_clock.now_ms())
        out: list[Fill] = []
        for row in rows:
            if row.get("symbol") != symbol:
                continue
            try:
                side = execution_position_side(row, self.fills.idx_of(str(row.get("orderId"))))
                out.append(parse_execution(row, side))
            except (ParseError, ValueError) as exc:
                self._journal(
                    EventType.EXCHANGE_ERROR,
                    {
                        "error": "ParseError",
                        "venue": "bybit",
                        "what": "executions",
                        "message": str(exc),
                    },
                    Severity.WARNING,
                )
        return out

    async def backfill_executions(
        self, emit: Callable[[AccountEvent], Awaitable[None]], *, since_ms: int | None = None
    ) -> int:
        """Emit every execution since the newest one seen that was not emitted yet.

        The window starts ``backfill_overlap_s`` before :attr:`fills`' newest execution (or
        at ``since_ms``, or ``startup_backfill_s`` ago) and ends now (venue clock).
        Executions are de-duplicated by ``execId`` with the private stream.

        Returns:
            How many fills were emitted.

        Raises:
            VenueError: a query failed (nothing is marked seen that was not emitted).
        """
        now_ms = self.http.server_clock.now_ms()
        if self.fills.last_exec_ms is not None:
            start_ms = self.fills.last_exec_ms - int(self.backfill_overlap_s * 1000)
        elif since_ms is not None:
            start_ms = since_ms
        else:
            start_ms = now_ms - int(self.startup_backfill_s * 1000)
        rows = await self.execution_rows(start_ms, now_ms)
        emitted = 0
        for row in rows:
            if self.fills.seen(str(row.get("execId") or "")):
                continue
            try:
                side = execution_position_side(row, self.fills.idx_of(str(row.get("orderId"))))
                fill = parse_execution(row, side)
            except (ParseError, ValueError) as exc:
                self._journal(
                    EventType.EXCHANGE_ERROR,
                    {
                        "error": "ParseError",
                        "venue": "bybit",
                        "what": "execution_backfill",
                        "message": str(exc),
                    },
                    Severity.WARNING,
                )
                continue
            self.fills.admit(row)
            await emit(fill)
            emitted += 1
        # a reconciliation of the fills: ``findings`` = executions the stream had missed
        self._journal(
            EventType.RECONCILE_COMPLETED, {"trigger": "execution_backfill", "findings": emitted}
        )
        return emitted

    # --- streams ------------------------------------------------------------------------

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
