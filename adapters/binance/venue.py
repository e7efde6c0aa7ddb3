"""``BinanceVenue``: the Binance USDⓈ-M (hedge mode, Algo Order API) ``ExchangePort``.

Protocol choices, each for a documented Binance pitfall (exchanges.md sections 0-3, 9, 10):

* stops are algo orders: ``POST /fapi/v1/algoOrder algoType=CONDITIONAL type=STOP_MARKET
  closePosition=true workingType=MARK_PRICE positionSide=<side>`` with our id as
  ``clientAlgoId``. Conditional types on ``/fapi/v1/order`` get -4120 since 2025-12-09;
  this adapter never sends them there, and never looks stops up, lists or cancels them on
  the regular endpoints (-2011/-2013, empty lists: ccxt #27486);
* an untriggered conditional order cannot be modified: ``capabilities.amend_stop`` is
  False and the PositionActor replaces stops make-before-break (new stop confirmed, then
  the old one cancelled); :meth:`BinanceVenue.amend_stop` refuses;
* no stop can ride on the entry (``attached_stop`` False): the actor places the stop when
  the entry's fill is confirmed — ``newOrderRespType=RESULT`` makes the MARKET entry's reply
  carry the fill, so that window is one stop-placement round trip;
* every order carries ``positionSide`` (hedge mode; missing → -4061) and never
  ``reduceOnly`` (refused in hedge mode): an exit is the exit side of its position side;
  ``closePosition`` only as SELL+LONG / BUY+SHORT;
* both id spaces are kept apart: ``get_order`` of a stop id queries
  ``GET /fapi/v1/algoOrder?clientAlgoId=``, of an entry/exit id ``GET /fapi/v1/order?
  origClientOrderId=``; ``open_orders`` merges ``openOrders`` and ``openAlgoOrders``;
* ``newClientOrderId`` is unique only among *open* orders (exchanges.md section 2): a
  resent filled entry would open a second position, so an unknown outcome is only ever
  resolved by looking the id up (the actor does that; this adapter never resends);
* a failed query raises; ``get_order`` returns None only when the venue said
  -2013 "Order does not exist.";
* requests are budgeted by weight and order count with capacity kept for stops and closes;
  after a 429/418 nothing is sent until the ban ends and protective requests go first.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from types import TracebackType
from typing import Any

import httpx

from adapters.binance.budget import Priority, RequestBudget
from adapters.binance.http import BinanceHttp, Security, ServerClock
from adapters.binance.parse import (
    ParseError,
    algo_stop_state,
    fill_from_trade,
    parse_algo_order,
    parse_balance,
    parse_instrument,
    parse_order,
    parse_position,
)
from adapters.binance.urls import BinanceUrls
from adapters.binance.ws import MarkCache, StreamSettings, run_market_stream, run_user_stream
from tradebot.domain import Instrument, OrderRole, PositionSide
from tradebot.errors import RejectedError, UnknownOrder, WouldTriggerImmediately
from tradebot.events import JournalPort
from tradebot.ids import parse_client_order_id
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

__all__ = ["BINANCE_CAPABILITIES", "BinanceVenue"]

BINANCE_CAPABILITIES = Capabilities(
    venue="binance",
    attached_stop=False,
    amend_stop=False,
    stop_has_client_id=True,
    # MAX_NUM_ALGO_ORDERS in exchangeInfo (10 per symbol on the symbols we know) and 200
    # conditional orders across all symbols since 2025-12-29; we keep one stop per side.
    max_conditional_per_symbol=10,
)

_MARGIN_TYPES = ("CROSSED", "ISOLATED")
_STOP_ROLES = frozenset({OrderRole.STOP, OrderRole.EMERGENCY_STOP})


def _s(value: Decimal) -> str:
    """Decimal → venue string (no exponent)."""
    return format(value, "f")


class BinanceVenue:
    """One Binance USDⓈ-M account (USDT perpetuals, hedge mode) behind ``ExchangePort``.

    Args:
        urls: REST and stream URLs (:func:`adapters.binance.urls.binance_urls`).
        api_key / api_secret: credentials (read from the env vars named in config by the
            caller); never logged or journaled.
        journal: optional; every REST request/reply and stream (re)connect is journaled.
        clock: event timestamps (Clock port).
        recv_window_ms: signing ``recvWindow`` (1..60000).
        budget: weight / order-count budget (default: the venue's documented limits).
        stream_settings: ping / watchdog / backoff / listenKey timing.
        server_clock: venue clock estimate (tests inject a skewed local clock).
        timeout_s: REST timeout.
        transport: optional httpx transport (tests).
        price_protect: ``priceProtect`` of the algo stops (a mark-vs-last sanity check at
            trigger time; config ``exchange.price_protect``, default False: a protective
            stop must fire).
        margin_type: ``CROSSED`` or ``ISOLATED``, set and verified per symbol in
            :meth:`setup_account`.

    Use as ``async with BinanceVenue(...) as venue:`` (closes the HTTP client).
    """

    def __init__(
        self,
        urls: BinanceUrls,
        api_key: str = "",
        api_secret: str = "",
        *,
        journal: JournalPort | None = None,
        clock: Clock | None = None,
        recv_window_ms: int = 5000,
        budget: RequestBudget | None = None,
        stream_settings: StreamSettings | None = None,
        server_clock: ServerClock | None = None,
        timeout_s: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
        price_protect: bool = False,
        margin_type: str = "CROSSED",
    ) -> None:
        if margin_type not in _MARGIN_TYPES:
            raise ValueError(f"margin_type must be one of {_MARGIN_TYPES}, got {margin_type!r}")
        self.urls = urls
        self._api_key = api_key
        self.journal = journal
        self.clock = clock
        self.price_protect = price_protect
        self.margin_type = margin_type
        self.http = BinanceHttp(
            urls.rest_url,
            api_key,
            api_secret,
            recv_window_ms=recv_window_ms,
            journal=journal,
            clock=clock,
            server_clock=server_clock,
            budget=budget,
            timeout_s=timeout_s,
            transport=transport,
        )
        self.stream_settings = stream_settings or StreamSettings()
        self.marks = MarkCache()
        self.mark_max_age_s = 5.0
        self.stream_stats: dict[str, int] = {}
        self._instruments: dict[str, Instrument] = {}

    # --- lifecycle ----------------------------------------------------------------------

    async def __aenter__(self) -> BinanceVenue:
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
        return BINANCE_CAPABILITIES

    async def sync_time(self) -> int:
        """Measure the venue clock offset (ms); call once at start-up."""
        return await self.http.sync_time()

    # --- metadata -----------------------------------------------------------------------

    async def instruments(self) -> Mapping[str, Instrument]:
        """USDT-margined perpetuals by symbol (cached; :meth:`refresh_instruments` reloads)."""
        if not self._instruments:
            await self.refresh_instruments()
        return dict(self._instruments)

    async def refresh_instruments(self) -> Mapping[str, Instrument]:
        """Reload ``GET /fapi/v1/exchangeInfo`` (one page, weight 1); keeps ``PERPETUAL``
        contracts with quote and margin asset USDT (see :func:`parse_instrument`)."""
        info = await self.http.call("GET", "/fapi/v1/exchangeInfo", security=Security.NONE)
        found: dict[str, Instrument] = {}
        for row in info.get("symbols") or []:
            if row.get("contractType") != "PERPETUAL":
                continue
            if row.get("quoteAsset") != "USDT" or row.get("marginAsset", "USDT") != "USDT":
                continue
            inst = parse_instrument(row)
            found[inst.symbol] = inst
        self._instruments = found
        return dict(found)

    async def balance(self) -> Balance:
        """USDT wallet and available balance (``GET /fapi/v3/balance``)."""
        rows = await self.http.call("GET", "/fapi/v3/balance")
        if not isinstance(rows, list):
            raise ParseError(f"binance balance: expected a list, got {rows!r:.100}")
        return parse_balance(rows)

    async def setup_account(self, leverage_by_symbol: Mapping[str, int]) -> None:
        """Hedge mode for the account, margin type and leverage per symbol — and verify.

        ``POST /fapi/v1/positionSide/dual dualSidePosition=true`` (-4059 "No need to change
        position side." is success), then ``GET /fapi/v1/positionSide/dual`` must say
        ``true``; per symbol ``POST /fapi/v1/marginType`` (-4046 is success) and
        ``POST /fapi/v1/leverage``; finally ``GET /fapi/v1/symbolConfig`` must show the
        leverage and margin type asked for.

        Raises:
            RejectedError: hedge mode cannot be switched (-4067 open orders, -4068 open
                positions) or the verification disagrees: the account is not set up as the
                bot needs; do not trade.
            ValueError: leverage < 1.
        """
        await self.http.call(
            "POST", "/fapi/v1/positionSide/dual", {"dualSidePosition": "true"}, mutating=True
        )
        mode = await self.http.call("GET", "/fapi/v1/positionSide/dual")
        if not (isinstance(mode, dict) and mode.get("dualSidePosition") is True):
            raise RejectedError(
                f"binance account is not in hedge mode after switching: {mode!r:.100}",
                code="hedge_mode_unverified",
            )
        for symbol, lev in sorted(leverage_by_symbol.items()):
            if lev < 1:
                raise ValueError(f"{symbol}: leverage must be >= 1, got {lev}")
            await self.http.call(
                "POST",
                "/fapi/v1/marginType",
                {"symbol": symbol, "marginType": self.margin_type},
                mutating=True,
            )
            await self.http.call(
                "POST", "/fapi/v1/leverage", {"symbol": symbol, "leverage": lev}, mutating=True
            )
        if not leverage_by_symbol:
            return
        rows = await self.http.call("GET", "/fapi/v1/symbolConfig")
        config = (
            {r.get("symbol"): r for r in rows if isinstance(r, dict)}
            if isinstance(rows, list)
            else {}
        )
        wrong = []
        for symbol, lev in sorted(leverage_by_symbol.items()):
            row = config.get(symbol)
            if (
                row is None
                or row.get("leverage") != lev
                or row.get("marginType") != self.margin_type
            ):
                wrong.append(f"{symbol}: {row!r:.120}")
        if wrong:
            raise RejectedError(
                "binance symbol config does not match the setup: " + "; ".join(wrong),
                code="symbol_config_unverified",
            )

    # --- orders -------------------------------------------------------------------------

    async def place_entry(self, request: EntryRequest) -> OrderState:
        """MARKET entry on ``positionSide`` with ``newClientOrderId`` and
        ``newOrderRespType=RESULT`` (the reply carries the fill).

        Raises:
            ValueError: qty <= 0 or a ``stop_price`` (Binance cannot attach a stop).
            OutcomeUnknown: the submit may have been accepted (look the id up).
        """
        if request.qty <= 0:
            raise ValueError("entry qty must be > 0")
        if request.stop_price is not None:
            raise ValueError("binance cannot attach a stop to the entry (place it on fill)")
        row = await self.http.call(
            "POST",
            "/fapi/v1/order",
            {
                "symbol": request.symbol,
                "side": request.position_side.entry_side.value,
                "positionSide": request.position_side.value,
                "type": "MARKET",
                "quantity": _s(request.qty),
                "newClientOrderId": request.client_order_id,
                "newOrderRespType": "RESULT",
            },
            mutating=True,
        )
        return parse_order(row)

    def _check_trigger_side(
        self, symbol: str, position_side: PositionSide, trigger: Decimal
    ) -> None:
        # Only a fresh mark may veto a stop: a stale cache (stream down) could refuse a
        # valid stop, and the venue checks it anyway (-2021).
        mark = self.marks.mark_price(symbol, max_age_s=self.mark_max_age_s)
        if mark is None:
            return
        through = trigger >= mark if position_side is PositionSide.LONG else trigger <= mark
        if through:
            raise WouldTriggerImmediately(
                f"{symbol} {position_side.value} stop {trigger} is through the mark {mark}",
                code="local_check",
            )

    async def place_stop(self, request: StopRequest) -> StopState:
        """Algo ``STOP_MARKET`` on the exit side, mark-price triggered: ``closePosition=true``
        when ``qty`` is None, else ``quantity`` (a partial stop; no ``reduceOnly`` in hedge
        mode). ``clientAlgoId`` = ``request.client_order_id``.

        Raises:
            WouldTriggerImmediately: the trigger is through the mark (checked against a
                fresh streamed mark, and by the venue: -2021).
            OutcomeUnknown: the stop may exist: look it up by ``clientAlgoId`` (:meth:`stops`).
        """
        if request.trigger_price <= 0:
            raise ValueError("trigger_price must be > 0")
        self._check_trigger_side(request.symbol, request.position_side, request.trigger_price)
        ps = request.position_side
        params: dict[str, Any] = {
            "algoType": "CONDITIONAL",
            "symbol": request.symbol,
            "side": ps.exit_side.value,
            "positionSide": ps.value,
            "type": "STOP_MARKET",
            "triggerPrice": _s(request.trigger_price),
            "workingType": "MARK_PRICE",
            "priceProtect": self.price_protect,
            "clientAlgoId": request.client_order_id,
        }
        if request.qty is None:
            params["closePosition"] = True
        else:
            params["quantity"] = _s(request.qty)
        row = await self.http.call(
            "POST", "/fapi/v1/algoOrder", params, mutating=True, priority=Priority.PROTECTIVE
        )
        return StopState(
            symbol=request.symbol,
            position_side=ps,
            trigger_price=request.trigger_price,
            client_order_id=str(row.get("clientAlgoId") or request.client_order_id),
            venue_order_id=str(row.get("algoId", "")),
            qty=request.qty,
        )

    async def amend_stop(self, current: StopState, new_trigger_price: Decimal) -> StopState:
        """Refused: an untriggered Binance conditional order cannot be modified (exchanges.md
        section 0; ``PUT /fapi/v1/order`` is LIMIT only). ``capabilities.amend_stop`` is
        False, so the PositionActor replaces stops make-before-break instead."""
        raise RejectedError(
            "binance cannot amend an untriggered conditional order; replace it "
            "(place the new stop, then cancel the old one)",
            code="not_supported",
        )

    async def cancel_stop(self, stop: StopState) -> None:
        """``DELETE /fapi/v1/algoOrder`` by ``clientAlgoId`` (else ``algoId``).

        Raises:
            UnknownOrder: the stop is no longer live (-2011 / -2013).
        """
        params: dict[str, Any] = {}
        if stop.client_order_id:
            params["clientAlgoId"] = stop.client_order_id
        elif stop.venue_order_id:
            params["algoId"] = stop.venue_order_id
        else:
            raise UnknownOrder("binance stop without clientAlgoId or algoId", code="no_id")
        await self.http.call(
            "DELETE", "/fapi/v1/algoOrder", params, mutating=True, priority=Priority.PROTECTIVE
        )

    async def place_reduce(self, request: ReduceRequest) -> OrderState:
        """Exit-side MARKET (``price`` None, ``newOrderRespType=RESULT``) or GTC LIMIT order
        on ``positionSide``; in hedge mode that is reduce-only by construction (``reduceOnly``
        must not be sent; a qty above the position is refused with -2022)."""
        if request.qty <= 0:
            raise ValueError("reduce qty must be > 0")
        ps = request.position_side
        params: dict[str, Any] = {
            "symbol": request.symbol,
            "side": ps.exit_side.value,
            "positionSide": ps.value,
            "type": "MARKET" if request.price is None else "LIMIT",
            "quantity": _s(request.qty),
            "newClientOrderId": request.client_order_id,
        }
        if request.price is None:
            params["newOrderRespType"] = "RESULT"
        else:
            params["price"] = _s(request.price)
            params["timeInForce"] = "GTC"
        protective = request.role in (OrderRole.CLOSE, OrderRole.STOP, OrderRole.EMERGENCY_STOP)
        row = await self.http.call(
            "POST",
            "/fapi/v1/order",
            params,
            mutating=True,
            priority=Priority.PROTECTIVE if protective else Priority.NORMAL,
        )
        return parse_order(row)

    async def cancel_order(self, symbol: str, client_order_id: str) -> None:
        """Cancel a regular order by ``origClientOrderId``. Raises ``UnknownOrder`` (-2011)."""
        await self.http.call(
            "DELETE",
            "/fapi/v1/order",
            {"symbol": symbol, "origClientOrderId": client_order_id},
            mutating=True,
            priority=Priority.PROTECTIVE,
        )

    # --- queries ------------------------------------------------------------------------

    async def _regular_order(self, symbol: str, client_order_id: str) -> OrderState | None:
        try:
            row = await self.http.call(
                "GET",
                "/fapi/v1/order",
                {"symbol": symbol, "origClientOrderId": client_order_id},
                priority=Priority.PROTECTIVE,
            )
        except UnknownOrder:
            return None
        return parse_order(row)

    async def get_algo_order(self, symbol: str, client_algo_id: str) -> OrderState | None:
        """``GET /fapi/v1/algoOrder?clientAlgoId=`` → the algo order (None on -2013)."""
        try:
            row = await self.http.call(
                "GET",
                "/fapi/v1/algoOrder",
                {"clientAlgoId": client_algo_id},
                priority=Priority.PROTECTIVE,
            )
        except UnknownOrder:
            return None
        order = parse_algo_order(row)
        return order if order.symbol == symbol else None

    async def get_order(self, symbol: str, client_order_id: str) -> OrderState | None:
        """Look an order up by client id in the right id space.

        Our stop ids (role S/X) are algo orders (``clientAlgoId``), our other ids regular
        orders (``origClientOrderId``); an id that is not ours is looked up in both. None
        only when every space queried answered -2013 "Order does not exist."; a failed
        lookup raises.
        """
        parsed = parse_client_order_id(client_order_id)
        if parsed is not None:
            if parsed[1] in _STOP_ROLES:
                return await self.get_algo_order(symbol, client_order_id)
            return await self._regular_order(symbol, client_order_id)
        order = await self._regular_order(symbol, client_order_id)
        if order is not None:
            return order
        return await self.get_algo_order(symbol, client_order_id)

    async def _open_algo_rows(self, symbol: str | None) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"algoType": "CONDITIONAL"}
        if symbol:
            params["symbol"] = symbol
        rows = await self.http.call(
            "GET", "/fapi/v1/openAlgoOrders", params, priority=Priority.PROTECTIVE
        )
        if not isinstance(rows, list):
            raise ParseError(f"binance openAlgoOrders: expected a list, got {rows!r:.100}")
        return rows

    async def open_orders(self, symbol: str | None = None) -> Sequence[OrderState]:
        """Open regular orders (``GET /fapi/v1/openOrders``) and untriggered algo orders
        (``GET /fapi/v1/openAlgoOrders``): the regular list never shows stops.

        Orders of types this bot never places (TAKE_PROFIT, TRAILING_STOP_MARKET, ...:
        placed by hand) are left out: they are not ours and :class:`OrderType` cannot
        represent them.
        """
        params: dict[str, Any] = {"symbol": symbol} if symbol else {}
        regular = await self.http.call("GET", "/fapi/v1/openOrders", params)
        if not isinstance(regular, list):
            raise ParseError(f"binance openOrders: expected a list, got {regular!r:.100}")
        out = [parse_order(r) for r in regular if r.get("type") in ("MARKET", "LIMIT")]
        out += [
            parse_algo_order(r)
            for r in await self._open_algo_rows(symbol)
            if r.get("orderType") == "STOP_MARKET"
        ]
        return out

    async def positions(self, symbol: str | None = None) -> Sequence[PositionState]:
        """Non-flat position sides (``GET /fapi/v3/positionRisk``; hedge mode: rows keyed by
        ``positionSide``, ``positionAmt`` signed)."""
        params: dict[str, Any] = {"symbol": symbol} if symbol else {}
        rows = await self.http.call(
            "GET", "/fapi/v3/positionRisk", params, priority=Priority.PROTECTIVE
        )
        if not isinstance(rows, list):
            raise ParseError(f"binance positionRisk: expected a list, got {rows!r:.100}")
        out = []
        for row in rows:
            pos = parse_position(row)
            if pos.qty > 0:
                out.append(pos)
        return out

    async def stops(self, symbol: str, position_side: PositionSide) -> Sequence[StopState]:
        """Live protective stops of one side: open algo ``STOP_MARKET`` orders on its exit
        side (close-position or with a quantity)."""
        found = []
        for row in await self._open_algo_rows(symbol):
            st = algo_stop_state(row, position_side)
            if st is not None:
                found.append(st)
        return found

    async def executions(self, symbol: str, since: datetime) -> Sequence[Fill]:
        """:meth:`tradebot.ports.VenueReadPort.executions`: :meth:`account_trades` from
        ``since`` (at most 1,000 trades, oldest first)."""
        trades = await self.account_trades(
            symbol, start_ms=int(since.timestamp() * 1000), limit=1000
        )
        return sorted(trades, key=lambda f: (f.ts, f.trade_id))

    async def account_trades(
        self,
        symbol: str,
        *,
        order_id: str | None = None,
        start_ms: int | None = None,
        limit: int = 500,
    ) -> list[Fill]:
        """Executions with fee and realized PnL (``GET /fapi/v1/userTrades``, weight 5).

        The trade rows carry the ``orderId`` only; the client id is filled in from that
        order (one ``GET /fapi/v1/order?orderId=`` per order; "" when the venue no longer
        has it). For the order an algo stop placed on trigger that is whatever client id
        the venue gave it (the sandbox: the stop's ``clientAlgoId``; unverified on the venue).
        """
        if not 1 <= limit <= 1000:
            raise ValueError("limit must be in 1..1000")
        params: dict[str, Any] = {"symbol": symbol, "limit": limit}
        if order_id:
            params["orderId"] = order_id
        if start_ms is not None:
            params["startTime"] = start_ms
        rows = await self.http.call("GET", "/fapi/v1/userTrades", params)
        if not isinstance(rows, list):
            raise ParseError(f"binance userTrades: expected a list, got {rows!r:.100}")
        cids: dict[str, str] = {}
        out = []
        for row in rows:
            oid = str(row.get("orderId", ""))
            if oid not in cids:
                try:
                    o = await self.http.call(
                        "GET", "/fapi/v1/order", {"symbol": symbol, "orderId": oid}
                    )
                    cids[oid] = str(o.get("clientOrderId", ""))
                except UnknownOrder:
                    cids[oid] = ""
            out.append(fill_from_trade(row, cids[oid]))
        return out

    # --- streams ------------------------------------------------------------------------

    async def run_market_stream(
        self, symbols: Sequence[str], emit: Callable[[MarketEvent], Awaitable[None]]
    ) -> None:
        """Mark prices from ``<symbol>@markPrice@1s`` (also kept in :attr:`marks`)."""
        await run_market_stream(
            self.urls.market_ws_url,
            symbols,
            emit,
            cache=self.marks,
            settings=self.stream_settings,
            journal=self.journal,
            clock=self.clock,
        )

    async def run_account_stream(self, emit: Callable[[AccountEvent], Awaitable[None]]) -> None:
        """Order / algo / position events of the account (listenKey user-data stream)."""
        if not self._api_key:
            raise RejectedError("user-data stream needs API credentials", code="no_credentials")
        await run_user_stream(
            self.urls.private_ws_url,
            self.http,
            emit,
            settings=self.stream_settings,
            journal=self.journal,
            clock=self.clock,
            stats=self.stream_stats,
        )
