"""``BybitVenue``: the Bybit v5 (linear, hedge mode) implementation of ``ExchangePort``.

Protocol choices, each for a documented Bybit pitfall (exchanges.md sections 2, 3, 9, 10):

* every order carries ``positionIdx`` (1 long, 2 short): without it hedge mode answers 10001;
* the entry carries the stop (``stopLoss``, ``slTriggerBy=MarkPrice``, ``tpslMode=Full``,
  ``slOrderType=Market``), so the position never exists without a stop; a separate SL right
  after the entry could meet "zero position";
* the stop is moved in place with ``/v5/position/trading-stop`` (34040 "not modified" is
  success); it has no client id, so ``Capabilities.stop_has_client_id`` is False;
* conditional reduce-only orders always send ``triggerDirection`` (1 rises to, 2 falls to)
  and we check the side ourselves against the cached mark: a flipped direction is accepted
  by the venue and never protects (ccxt #19000);
* the position list has two rows per symbol in hedge mode: rows are keyed by
  ``positionIdx``, never ``list[0]``;
* a failed query raises; ``get_order`` returns None only after both ``realtime`` and
  ``history`` answered with no such order;
* writes are rate-budgeted per endpoint with capacity kept for stops and closes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from types import TracebackType
from typing import Any

import httpx

from adapters.bybit.budget import EndpointBudgets, Priority
from adapters.bybit.http import BybitHttp, ServerClock
from adapters.bybit.parse import (
    ParseError,
    opt_dec,
    parse_instrument,
    parse_order,
    parse_position,
    position_side_of,
)
from adapters.bybit.urls import BybitUrls
from adapters.bybit.ws import StreamSettings, TickerCache, run_private_stream, run_public_stream
from tradebot.domain import Instrument, OrderRole, OrderStatus, OrderType, PositionSide, Side
from tradebot.errors import RejectedError, WouldTriggerImmediately
from tradebot.events import JournalPort
from tradebot.ports import (
    AccountEvent,
    Balance,
    Capabilities,
    Clock,
    EntryRequest,
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
# Position-level TP/SL show up in the order lists with these stopOrderType values; they are
# the position's stop (read from the position row), not separate stop orders.
_POSITION_TPSL_TYPES = frozenset(
    {"StopLoss", "TakeProfit", "TrailingStop", "PartialStopLoss", "PartialTakeProfit"}
)


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
    ) -> None:
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
        self._instruments: dict[str, Instrument] = {}

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

    # --- metadata -----------------------------------------------------------------------

    async def instruments(self) -> Mapping[str, Instrument]:
        """All linear USDT perpetuals by symbol (cached; :meth:`refresh_instruments` reloads)."""
        if not self._instruments:
            await self.refresh_instruments()
        return dict(self._instruments)

    async def refresh_instruments(self) -> Mapping[str, Instrument]:
        """Reload ``/v5/market/instruments-info`` following ``nextPageCursor`` to the end.

        Only USDT-settled ``LinearPerpetual`` contracts are kept.
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
        return dict(found)

    async def balance(self) -> Balance:
        """USDT wallet of the unified account (``/v5/account/wallet-balance``)."""
        _, result = await self.http.call(
            "GET", "/v5/account/wallet-balance", {"accountType": "UNIFIED", "coin": "USDT"}
        )
        accounts = result.get("list") or []
        if not accounts:
            raise ParseError("wallet-balance returned no account")
        acct = accounts[0]  # one account per accountType: list has exactly one element
        for coin in acct.get("coin", []):
            if coin.get("coin") == "USDT":
                wallet = opt_dec(coin, "walletBalance") or Decimal(0)
                avail = opt_dec(acct, "totalAvailableBalance")
                return Balance(
                    wallet_usdt=wallet, available_usdt=avail if avail is not None else wallet
                )
        raise ParseError("wallet-balance has no USDT coin row")

    async def setup_account(self, leverage_by_symbol: Mapping[str, int]) -> None:
        """Hedge mode for all USDT contracts (``mode=3``) and leverage per symbol.

        110025 (mode not modified) and 110043 (leverage not modified) are success.
        Raises ``RejectedError`` when the mode cannot change (110024 open positions,
        110028 open orders) — then the account is *not* in hedge mode; do not trade.
        """
        await self.http.call(
            "POST",
            "/v5/position/switch-mode",
            {"category": _CATEGORY, "coin": "USDT", "mode": 3},
            mutating=True,
        )
        for symbol, lev in sorted(leverage_by_symbol.items()):
            if lev < 1:
                raise ValueError(f"{symbol}: leverage must be >= 1, got {lev}")
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
        :meth:`get_order`. Raises ``OutcomeUnknown`` on a dropped/timed-out submit.
        """
        if request.qty <= 0:
            raise ValueError("entry qty must be > 0")
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
        _, result = await self.http.call("POST", "/v5/order/create", body, mutating=True)
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
            "positionIdx": request.position_side.bybit_position_idx,
            "triggerPrice": _s(request.trigger_price),
            # long stop: price falls to the trigger (2); short stop: rises to it (1)
            "triggerDirection": 2 if request.position_side is PositionSide.LONG else 1,
            "triggerBy": "MarkPrice",
            "reduceOnly": True,
            "closeOnTrigger": True,
            "orderLinkId": request.client_order_id,
        }
        _, result = await self.http.call(
            "POST", "/v5/order/create", body, mutating=True, priority=Priority.PROTECTIVE
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
        code, _ = await self.http.call(
            "POST",
            "/v5/position/trading-stop",
            {
                "category": _CATEGORY,
                "symbol": symbol,
                "tpslMode": "Full",
                "positionIdx": position_side.bybit_position_idx,
                "stopLoss": _s(stop_loss),
                "slTriggerBy": "MarkPrice",
                "slOrderType": "Market",
            },
            mutating=True,
            priority=Priority.PROTECTIVE,
        )
        return code

    async def amend_stop(self, current: StopState, new_trigger_price: Decimal) -> StopState:
        """Move a stop in place: trading-stop for the position stop (34040 = unchanged =
        success), ``/v5/order/amend`` of ``triggerPrice`` for a conditional order."""
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
                "POST", "/v5/order/amend", body, mutating=True, priority=Priority.PROTECTIVE
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
        order via cancel. Raises ``UnknownOrder`` when the order is gone."""
        if not stop.venue_order_id and not stop.client_order_id:
            await self.http.call(
                "POST",
                "/v5/position/trading-stop",
                {
                    "category": _CATEGORY,
                    "symbol": stop.symbol,
                    "tpslMode": "Full",
                    "positionIdx": stop.position_side.bybit_position_idx,
                    "stopLoss": "0",
                },
                mutating=True,
                priority=Priority.PROTECTIVE,
            )
            return
        # orderFilter is "Spot trading only" on /v5/order/cancel: linear conditional orders
        # are cancelled by id like any other order (docs v5/order/cancel-order).
        body: dict[str, Any] = {"category": _CATEGORY, "symbol": stop.symbol}
        if stop.client_order_id:
            body["orderLinkId"] = stop.client_order_id
        else:
            body["orderId"] = stop.venue_order_id
        await self.http.call(
            "POST", "/v5/order/cancel", body, mutating=True, priority=Priority.PROTECTIVE
        )

    async def place_reduce(self, request: ReduceRequest) -> OrderState:
        """Reduce-only market (``price is None``) or GTC limit order on the exit side."""
        if request.qty <= 0:
            raise ValueError("reduce qty must be > 0")
        exit_side = request.position_side.exit_side
        body: dict[str, Any] = {
            "category": _CATEGORY,
            "symbol": request.symbol,
            "side": "Buy" if exit_side is Side.BUY else "Sell",
            "orderType": "Market" if request.price is None else "Limit",
            "qty": _s(request.qty),
            "positionIdx": request.position_side.bybit_position_idx,
            "reduceOnly": True,
            "orderLinkId": request.client_order_id,
        }
        if request.price is not None:
            body["price"] = _s(request.price)
            body["timeInForce"] = "GTC"
        # Closes and stop-like exits jump the entry queue; a resting TP/aged exit does not.
        protective = request.role in (OrderRole.CLOSE, OrderRole.STOP, OrderRole.EMERGENCY_STOP)
        _, result = await self.http.call(
            "POST",
            "/v5/order/create",
            body,
            mutating=True,
            priority=Priority.PROTECTIVE if protective else Priority.NORMAL,
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
        """Cancel by ``orderLinkId``. Raises ``UnknownOrder`` (110001) when gone."""
        await self.http.call(
            "POST",
            "/v5/order/cancel",
            {"category": _CATEGORY, "symbol": symbol, "orderLinkId": client_order_id},
            mutating=True,
            priority=Priority.PROTECTIVE,
        )

    # --- queries ------------------------------------------------------------------------

    async def get_order(self, symbol: str, client_order_id: str) -> OrderState | None:
        """Look an order up by ``orderLinkId``: ``/v5/order/realtime`` (open + recent
        closed), then ``/v5/order/history``. None only when both answered "no such order";
        any failed request raises."""
        for path in ("/v5/order/realtime", "/v5/order/history"):
            _, result = await self.http.call(
                "GET",
                path,
                {"category": _CATEGORY, "symbol": symbol, "orderLinkId": client_order_id},
                priority=Priority.PROTECTIVE,
            )
            rows = [r for r in result.get("list", []) if r.get("orderLinkId") == client_order_id]
            if rows:
                return parse_order(rows[0])
        return None

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

    async def _position_rows(self, symbol: str | None) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"category": _CATEGORY, "limit": 200}
        if symbol:
            params["symbol"] = symbol
        else:
            params["settleCoin"] = "USDT"
        return await self._paged("/v5/position/list", params)

    async def positions(self, symbol: str | None = None) -> Sequence[PositionState]:
        """Non-flat position sides. Hedge mode has two rows per symbol (``positionIdx``
        1 and 2, the empty one with ``side=""``): each row is mapped by its own index."""
        out = []
        for row in await self._position_rows(symbol):
            pos = parse_position(row)
            if pos.qty > 0:
                out.append(pos)
        return out

    async def stops(self, symbol: str, position_side: PositionSide) -> Sequence[StopState]:
        """The position-level stop (``stopLoss`` of the position row) plus open conditional
        reduce-only orders of that side."""
        found: list[StopState] = []
        for row in await self._position_rows(symbol):
            if position_side_of(row) is not position_side:
                continue
            sl = opt_dec(row, "stopLoss", zero_is_none=True)
            if sl is not None:
                found.append(
                    StopState(symbol=symbol, position_side=position_side, trigger_price=sl)
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

    async def run_account_stream(self, emit: Callable[[AccountEvent], Awaitable[None]]) -> None:
        """Order / execution / position events of the account."""
        if not self._api_key:
            raise RejectedError("private stream needs API credentials", code="no_credentials")
        await run_private_stream(
            self.urls.private_ws_url,
            self._api_key,
            self._api_secret,
            emit,
            server_clock=self.http.server_clock,
            settings=self.stream_settings,
            journal=self.journal,
            clock=self.clock,
        )
