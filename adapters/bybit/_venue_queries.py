"""The Bybit venue's queries: an order by client id resolved over realtime, history and
executions within the lookup window, paged list endpoints, open orders, the hedge-mode
position rows and positions, stops (position-level and conditional), closed PnL and the
execution backfill."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

import trio

from adapters.bybit._venue_base import (
    _CATEGORY,
    _EXEC_SPAN_MS,
    _POSITION_TPSL_TYPES,
    _BybitVenueBase,
    _Submitted,
)
from adapters.bybit.budget import Priority
from adapters.bybit.parse import (
    ONE_WAY,
    ClosedPnl,
    ParseError,
    execution_position_side,
    order_from_executions,
    parse_closed_pnl,
    parse_execution,
    parse_order,
    parse_position_row,
    position_mode_of,
)
from tradebot.domain import (
    PositionSide,
)
from tradebot.errors import (
    OutcomeUnknown,
)
from tradebot.events import EventType, Severity
from tradebot.ports import (
    AccountEvent,
    Fill,
    OrderState,
    PositionState,
    StopState,
)

__all__ = ["_BybitQueries"]


class _BybitQueries(_BybitVenueBase):
    """Queries (public through :class:`adapters.bybit.venue.BybitVenue`)."""

    # --- queries ------------------------------------------------------------------------------

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
