"""The Bybit venue's orders: the entry with its attached stop, the position-level stop
(``/v5/position/trading-stop``) or a conditional reduce-only stop with its trigger
direction checked, stop moves and cancels verified against the position row, reduces and
cancels."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from adapters.bybit._venue_base import (
    _CATEGORY,
    _s,
)
from adapters.bybit._venue_setup import _BybitSetup
from adapters.bybit.budget import Priority
from adapters.bybit.errors import is_position_mode_mismatch
from adapters.bybit.parse import (
    ONE_WAY,
    parse_position_row,
    position_mode_of,
)
from tradebot.domain import (
    OrderRole,
    OrderStatus,
    OrderType,
    PositionSide,
    Side,
)
from tradebot.errors import (
    RejectedError,
    SymbolNotTradable,
    WouldTriggerImmediately,
)
from tradebot.events import EventType, Severity
from tradebot.ports import (
    EntryRequest,
    OrderState,
    ReduceRequest,
    StopRequest,
    StopState,
)

__all__ = ["_BybitOrders"]


class _BybitOrders(_BybitSetup):
    """Orders (public through :class:`adapters.bybit.venue.BybitVenue`)."""

    # --- orders -------------------------------------------------------------------------------

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
