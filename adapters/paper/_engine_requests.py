"""The paper engine's request methods in the port's shapes (entry, stop, reduce, amend,
cancel) and the venue-native ones the sandboxes use (``submit_order``,
``set_trading_stop``, algo cancels). Each request is one engine step; a refusal changes
nothing."""

from __future__ import annotations

from decimal import Decimal

import attrs

from tradebot.domain import (
    OrderStatus,
    OrderType,
    PositionSide,
    Side,
)
from tradebot.errors import UnknownOrder
from tradebot.money import ZERO
from tradebot.ports import (
    EntryRequest,
    OrderState,
    OrderUpdate,
    ReduceRequest,
    StopRequest,
    StopState,
)

from ._engine_entry import _EngineEntry
from ._engine_model import (
    TriggerDirection,
)

__all__ = ["_EngineRequests"]


class _EngineRequests(_EngineEntry):
    """Request methods (public through :class:`adapters.paper._engine.PaperEngine`)."""

    def place_entry(
        self,
        request: EntryRequest,
        *,
        fill_ratio: Decimal | None = None,
        remainder: str = "next_mark",
    ) -> OrderState:
        """A market entry (opening order on ``request.position_side``).

        Args:
            request: the entry. ``stop_price`` only on attached-stop venues: it becomes the
                position-level stop atomically with the fill (Bybit ``stopLoss``,
                ``tpslMode=Full``); refused on other venues (``not_supported``).
            fill_ratio: test hook for partial fills: fraction (0..1] of ``qty`` filled now
                (floored to the step); None = all.
            remainder: what happens to the unfilled rest: ``"next_mark"`` fills it at the
                next mark of the symbol; ``"expire"`` ends the order EXPIRED (IOC-like).

        Returns:
            The order after the step (FILLED, or PARTIALLY_FILLED / EXPIRED).

        Raises:
            RejectedError subclasses: symbol, qty/notional, balance, duplicate id, would-
            trigger (attached stop on the wrong side of the mark), no mark price.
        """
        with self._request("place_entry", request.symbol):
            if request.stop_price is not None and not self.profile.capabilities.attached_stop:
                raise self.profile.error(
                    "not_supported",
                    "this venue has no stop attached to the entry; place the stop after the fill",
                )
            return self._submit(
                symbol=request.symbol,
                side=request.position_side.entry_side,
                position_side=request.position_side,
                order_type=OrderType.MARKET,
                qty=request.qty,
                client_order_id=request.client_order_id,
                attached_stop=request.stop_price,
                fill_ratio=fill_ratio,
                remainder=remainder,
            )

    def place_stop(self, request: StopRequest) -> StopState:
        """Place the protective stop of a position side.

        Position-level venues (Bybit) with ``qty`` None: set the position's ``stopLoss``
        (trading-stop, ``tpslMode=Full``) — replaces any previous one. Flat side →
        ``ZeroPosition`` (10001); trigger at/through the mark → ``WouldTriggerImmediately``
        (10001, "base_price" message). With ``qty``: a reduce-only conditional order.

        Algo venues (Binance): an algo ``STOP_MARKET`` on the exit side, mark-price
        triggered, ``closePosition=true`` when ``qty`` is None, else with that quantity.
        Trigger at/through the mark → -2021; duplicate ``clientAlgoId`` among open algo
        orders → -4116.
        """
        with self._request("place_stop", request.symbol):
            inst = self._instrument(request.symbol)
            self._check_tick(inst, request.trigger_price)
            ps = request.position_side
            mark = self._require_mark(request.symbol)
            pos = self._positions.get((request.symbol, ps))
            flat = pos is None or pos.qty == 0
            if self.profile.position_level_stop and request.qty is None:
                if flat:
                    raise self.profile.error("zero_position_stop")
                assert pos is not None
                if self._through(ps, request.trigger_price, mark):
                    raise self.profile.error(
                        "would_trigger_position_stop",
                        f"stop {request.trigger_price} vs base_price {mark}",
                    )
                pos.stop_price = request.trigger_price
                self._emit_position(pos)
                return StopState(
                    symbol=request.symbol, position_side=ps, trigger_price=request.trigger_price
                )
            if flat and self.profile.stop_requires_position:
                raise self.profile.error("zero_position_stop")
            if request.qty is not None:
                self._check_qty(inst, request.qty)
            o = self._submit(
                symbol=request.symbol,
                side=ps.exit_side,
                position_side=ps,
                order_type=OrderType.STOP_MARKET,
                qty=request.qty,
                client_order_id=request.client_order_id,
                trigger_price=request.trigger_price,
                trigger_direction=(
                    TriggerDirection.FALL if ps is PositionSide.LONG else TriggerDirection.RISE
                ),
                reduce_only=request.qty is not None,
                close_position=request.qty is None,
                algo=self.profile.conditional_orders_are_algo,
            )
            return StopState(
                symbol=o.symbol,
                position_side=ps,
                trigger_price=request.trigger_price,
                client_order_id=o.client_order_id,
                venue_order_id=o.venue_order_id,
                qty=request.qty,
            )

    def amend_stop(self, current: StopState, new_trigger_price: Decimal) -> StopState:
        """Move a stop in place (amend-capable venues only).

        Position-level stop (``current.venue_order_id == ""``): trading-stop semantics —
        flat side → ``ZeroPosition``; the same price → success without change (Bybit 34040
        "not modified"); through the mark → ``WouldTriggerImmediately``. An order stop is
        amended by venue id (Bybit order/amend ``triggerPrice``).

        Raises:
            RejectedError (``not_supported``, Binance -4120-like) on venues without amend.
        """
        with self._request("amend_stop", current.symbol):
            if not self.profile.capabilities.amend_stop:
                raise self.profile.error("not_supported", "stops are cancel-and-replace here")
            inst = self._instrument(current.symbol)
            self._check_tick(inst, new_trigger_price)
            ps = current.position_side
            mark = self._require_mark(current.symbol)
            if not current.venue_order_id:
                pos = self._positions.get((current.symbol, ps))
                if pos is None or pos.qty == 0:
                    raise self.profile.error("zero_position_stop")
                if pos.stop_price == new_trigger_price:
                    return attrs.evolve(current, trigger_price=new_trigger_price)  # 34040
                if self._through(ps, new_trigger_price, mark):
                    raise self.profile.error(
                        "would_trigger_position_stop",
                        f"stop {new_trigger_price} vs base_price {mark}",
                    )
                pos.stop_price = new_trigger_price
                self._emit_position(pos)
                return attrs.evolve(current, trigger_price=new_trigger_price)
            o = self._orders_by_vid.get(current.venue_order_id)
            if o is None or o.symbol != current.symbol or o.status is not OrderStatus.NEW:
                raise self.profile.error("unknown_order", current.venue_order_id)
            if o.trigger_price == new_trigger_price:
                return self._stop_state(o)
            assert o.trigger_direction is not None
            if self._triggered(o.trigger_direction, new_trigger_price, mark):
                raise self.profile.error(
                    "would_trigger_conditional", f"trigger {new_trigger_price} vs mark {mark}"
                )
            o.trigger_price = new_trigger_price
            o.updated_at = self._now
            self._pending.append(OrderUpdate(order=o.state(), ts=self._now))
            return self._stop_state(o)

    def cancel_stop(self, stop: StopState) -> None:
        """Cancel a stop.

        Position-level stop: clears ``stopLoss`` (trading-stop ``stopLoss="0"``); no stop
        on a non-flat side is success (34040); a flat side raises ``UnknownOrder`` (code
        10001 "zero position": the stop is gone). Order stops: by client id (algo:
        ``clientAlgoId``), else by venue id; not live → ``UnknownOrder`` (110001 / -2011).
        """
        with self._request("cancel_stop", stop.symbol):
            self._instrument(stop.symbol)
            if not stop.venue_order_id and not stop.client_order_id:
                pos = self._positions.get((stop.symbol, stop.position_side))
                if pos is None or pos.qty == 0:
                    spec = self.profile.errors["zero_position_stop"]
                    raise UnknownOrder(
                        f"[{spec.code}] {spec.message}", code=spec.code, venue_message=spec.message
                    )
                if pos.stop_price is not None:
                    pos.stop_price = None
                    self._emit_position(pos)
                return
            o = None
            if stop.client_order_id:
                space = (
                    self._algo_by_cid
                    if self.profile.conditional_orders_are_algo
                    else self._orders_by_cid
                )
                o = space.get(stop.client_order_id)
            if o is None and stop.venue_order_id:
                o = self._orders_by_vid.get(stop.venue_order_id)
            if o is None or o.symbol != stop.symbol or not o.status.is_live:
                raise self.profile.error(
                    "unknown_order", stop.client_order_id or stop.venue_order_id
                )
            self._cancel(o)

    def place_reduce(self, request: ReduceRequest) -> OrderState:
        """A reduce-only order on the exit side: market (``price`` None) or limit.

        Flat side → ``ReduceOnlyRejected`` (110017 / -2022); qty above the position →
        trimmed (Bybit) or ``ReduceOnlyRejected`` (-2022). Exempt from min notional.
        """
        with self._request("place_reduce", request.symbol):
            ps = request.position_side
            return self._submit(
                symbol=request.symbol,
                side=ps.exit_side,
                position_side=ps,
                order_type=OrderType.MARKET if request.price is None else OrderType.LIMIT,
                qty=request.qty,
                client_order_id=request.client_order_id,
                price=request.price,
                reduce_only=True,
            )

    def cancel_order(
        self, symbol: str, client_order_id: str = "", venue_order_id: str = ""
    ) -> OrderState:
        """Cancel a live regular order by client id (or venue id).

        Raises:
            UnknownOrder (110001 / -2011): not found or no longer live (also for algo
            orders, which the regular endpoint does not see on Binance).
        """
        with self._request("cancel_order", symbol):
            o = self._orders_by_cid.get(client_order_id) if client_order_id else None
            if o is None and venue_order_id:
                o = self._orders_by_vid.get(venue_order_id)
                if o is not None and o.is_algo:
                    o = None
            if o is None or o.symbol != symbol or not o.status.is_live:
                raise self.profile.error("unknown_order", client_order_id or venue_order_id)
            self._cancel(o)
            return o.state()

    def amend_order(
        self,
        symbol: str,
        client_order_id: str = "",
        venue_order_id: str = "",
        *,
        qty: Decimal | None = None,
        price: Decimal | None = None,
        trigger_price: Decimal | None = None,
    ) -> OrderState:
        """Amend a live *regular* order in place (Bybit ``/v5/order/amend``; Binance
        ``PUT /fapi/v1/order`` is LIMIT-only — on algo venues conditional orders refuse with
        ``not_supported``). Unchanged fields keep their value; a new qty must stay above the
        filled qty. A limit moved through the mark fills at once (taker, at the mark).

        Raises:
            UnknownOrder: not found / not live. OrderValidationError: tick/step.
            WouldTriggerImmediately: a trigger moved through the mark.
        """
        with self._request("amend_order", symbol):
            o = self._orders_by_cid.get(client_order_id) if client_order_id else None
            if o is None and venue_order_id:
                o = self._orders_by_vid.get(venue_order_id)
            if o is None or o.symbol != symbol or not o.status.is_live or o.is_algo:
                raise self.profile.error("unknown_order", client_order_id or venue_order_id)
            if o.remainder_pending or o.order_type is OrderType.MARKET:
                raise self.profile.error("unknown_order", "market orders cannot be amended")
            if o.trigger_price is not None and not self.profile.capabilities.amend_stop:
                raise self.profile.error("not_supported", "conditional orders cannot be amended")
            inst = self._instrument(symbol)
            mark = self._require_mark(symbol)
            if qty is not None:
                self._check_qty(inst, qty)
                if qty <= o.filled_qty:
                    raise self.profile.error("qty_invalid", "qty must exceed the filled qty")
            if price is not None:
                if o.order_type is not OrderType.LIMIT:
                    raise self.profile.error("price_invalid", "only limit orders have a price")
                self._check_tick(inst, price)
            if trigger_price is not None:
                if o.trigger_price is None or o.trigger_direction is None:
                    raise self.profile.error("price_invalid", "not a conditional order")
                self._check_tick(inst, trigger_price)
                if self._triggered(o.trigger_direction, trigger_price, mark):
                    raise self.profile.error(
                        "would_trigger_conditional", f"trigger {trigger_price} vs mark {mark}"
                    )
            if qty is not None:
                o.qty = qty
            if price is not None:
                o.price = price
            if trigger_price is not None:
                o.trigger_price = trigger_price
            opening = o.side is o.position_side.entry_side
            if o.order_type is OrderType.LIMIT and opening and o.price is not None:
                o.reserved_margin_usdt = o.remaining_qty * o.price / self.leverage(symbol)
            o.updated_at = self._now
            self._pending.append(OrderUpdate(order=o.state(), ts=self._now))
            if o.order_type is OrderType.LIMIT and o.price is not None:
                marketable = (o.side is Side.BUY and mark <= o.price) or (
                    o.side is Side.SELL and mark >= o.price
                )
                if marketable:
                    px = self._market_price(inst, o.side, mark)
                    px = min(px, o.price) if o.side is Side.BUY else max(px, o.price)
                    self._fill_resting_limit(o, px, False)
            return o.state()

    def cancel_all(self, symbol: str, *, algo: bool | None = None) -> list[OrderState]:
        """Cancel every live order of ``symbol`` (``algo`` None = both spaces, True = algo
        only, False = regular only). Returns the cancelled orders; none is not an error."""
        with self._request("cancel_all", symbol):
            self._instrument(symbol)
            out = []
            for o in list(self._live.get(symbol, ())):
                if o.status.is_live and (algo is None or o.is_algo is algo):
                    self._cancel(o)
                    out.append(o.state())
            return out

    def cancel_algo_order(
        self, symbol: str, client_algo_id: str = "", algo_id: str = ""
    ) -> OrderState:
        """Cancel a live algo (conditional) order by ``clientAlgoId`` or ``algoId``."""
        with self._request("cancel_algo_order", symbol):
            o = self._algo_by_cid.get(client_algo_id) if client_algo_id else None
            if o is None and algo_id:
                o = self._orders_by_vid.get(algo_id)
                if o is not None and not o.is_algo:
                    o = None
            if o is None or o.symbol != symbol or not o.status.is_live:
                raise self.profile.error("unknown_order", client_algo_id or algo_id)
            self._cancel(o)
            return o.state()

    def set_trading_stop(
        self, symbol: str, position_side: PositionSide, stop_price: Decimal
    ) -> None:
        """Bybit ``/v5/position/trading-stop`` (``tpslMode=Full``): ``stop_price`` 0 cancels.

        Same semantics as :meth:`place_stop` / :meth:`cancel_stop` for position-level
        stops (10001 zero position / wrong side; same value is success).
        """
        if stop_price == 0:
            self.cancel_stop(
                StopState(symbol=symbol, position_side=position_side, trigger_price=ZERO)
            )
            return
        if not self.profile.position_level_stop:
            with self._request("set_trading_stop", symbol):
                raise self.profile.error("not_supported", "no position-level stops")
        pos = self._positions.get((symbol, position_side))
        if pos is not None and pos.stop_price == stop_price and pos.qty > 0:
            with self._request("set_trading_stop", symbol):
                return  # 34040 not modified: success
        self.place_stop(
            StopRequest(
                symbol=symbol,
                position_side=position_side,
                trigger_price=stop_price,
                client_order_id="",
            )
        )

    def submit_order(
        self,
        *,
        symbol: str,
        side: Side,
        position_side: PositionSide,
        order_type: OrderType,
        qty: Decimal | None,
        client_order_id: str,
        price: Decimal | None = None,
        trigger_price: Decimal | None = None,
        trigger_direction: TriggerDirection | None = None,
        reduce_only: bool = False,
        close_position: bool = False,
        algo: bool = False,
        attached_stop: Decimal | None = None,
    ) -> OrderState:
        """The general order entry point (for the wire-protocol sandboxes).

        ``side`` must be the entry side of ``position_side`` (opening) or its exit side
        (closing; hedge mode). An exit-side order is treated as reduce-only (hedge mode
        never flips a side). Conditional orders need ``trigger_price`` and
        ``trigger_direction``; on algo venues they must be placed with ``algo=True``
        (else ``conditional_on_regular_endpoint``, Binance -4120).
        """
        with self._request("submit_order", symbol):
            if side is not position_side.entry_side:
                reduce_only = reduce_only or not close_position
            return self._submit(
                symbol=symbol,
                side=side,
                position_side=position_side,
                order_type=order_type,
                qty=qty,
                client_order_id=client_order_id,
                price=price,
                trigger_price=trigger_price,
                trigger_direction=trigger_direction,
                reduce_only=reduce_only,
                close_position=close_position,
                algo=algo,
                attached_stop=attached_stop,
            )
