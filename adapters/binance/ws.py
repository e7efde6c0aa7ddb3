"""Binance USDⓈ-M WebSocket streams on trio-websocket.

* Market: ``<market_ws_url>/stream`` then ``{"method": "SUBSCRIBE", "params":
  ["btcusdt@markPrice@1s", ...], "id": n}`` (``!markPrice@arr@1s`` when more than
  :attr:`StreamSettings.all_market_above` symbols are watched; at most 1024 streams per
  connection). Messages arrive combined: ``{"stream": "...", "data": {...}}``.
* User data: ``POST /fapi/v1/listenKey`` → key; ``<private_ws_url>/stream`` then
  ``SUBSCRIBE [listenKey]`` (as the official SDK does); ``PUT /fapi/v1/listenKey`` every
  ``listen_key_keepalive_s`` (the key lives 60 min; Binance asks for a keepalive every 30-50
  min). A ``listenKeyExpired`` event, or a keepalive answered -1125 "This listenKey does not
  exist.", means the stream went (or is about to go) blind while orders still succeed
  (hummingbot #5713, nautilus_trader #3861): a new key is created and the stream
  reconnected, which emits a ``StreamGap`` so every position is re-verified.
  Events: ``ORDER_TRADE_UPDATE`` (→ :class:`OrderUpdate`, and a :class:`Fill` for
  ``x=TRADE``), ``ALGO_UPDATE`` (→ the algo order's :class:`OrderUpdate`; its ``ai`` maps
  the triggered order back to the stop's ``clientAlgoId``), ``ACCOUNT_UPDATE``
  (→ :class:`PositionUpdate` per changed side), ``TRADE_LITE`` (parsed and counted, not
  emitted: it lacks commission, realized PnL and position side, which the
  ``ORDER_TRADE_UPDATE`` of the same trade carries), ``CONDITIONAL_ORDER_TRIGGER_REJECT``
  (journaled as an error: a stop failed to fire).

Both streams: client pings every ``ping_interval_s`` with a pong deadline (the venue pings
every 3 min and wants a pong within 10; trio-websocket answers while the reader reads), a
silence watchdog on the market stream, reconnect with capped jittered exponential backoff
(never a tight loop), a planned reconnect before the venue's 24 h connection limit
(``max_connection_age_s``), resubscribe on every connection, and a
:class:`~tradebot.ports.StreamGap` after every *re*connect.
"""

from __future__ import annotations

import itertools
import json
import random
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from decimal import Decimal
from typing import Any

import trio
import trio_websocket

from adapters.binance.errors import INVALID_LISTEN_KEY
from adapters.binance.http import BinanceHttp, Security
from adapters.binance.parse import (
    ParseError,
    fill_from_order_update,
    parse_algo_update,
    parse_mark_price,
    parse_order_update,
    positions_from_account_update,
)

# the trio-websocket 0.12 fd-leak workaround (closing the TCP stream after a peer close)
from adapters.bybit.ws import _close_tcp
from tradebot.clock import WallClock
from tradebot.errors import FatalVenueError, RejectedError, VenueError
from tradebot.events import Event, EventType, JournalPort, Severity
from tradebot.ports import (
    AccountEvent,
    Clock,
    MarketEvent,
    OrderUpdate,
    PositionUpdate,
    StreamGap,
)

__all__ = ["MarkCache", "StreamSettings", "run_market_stream", "run_user_stream"]


class _Dropped(Exception):
    """The connection ended (raised outside any nursery so it is never grouped)."""


_DISCONNECTS: tuple[type[BaseException], ...] = (
    _Dropped,
    trio_websocket.ConnectionClosed,
    trio_websocket.HandshakeError,
    trio_websocket.DisconnectionTimeout,
    OSError,
    trio.TooSlowError,
)


class StreamSettings:
    """Timing knobs of the streams (seconds).

    Attributes:
        ping_interval_s / pong_timeout_s: client ping period and how long a pong may take
            before the connection counts as dead.
        silence_timeout_s: market stream: reconnect when no frame arrives for this long
            (``markPrice@1s`` pushes every second). The user stream may be silent for hours:
            it relies on pings.
        backoff_initial_s / backoff_max_s: reconnect delay grows x2 per failed attempt up to
            the cap (30 s), with full jitter in [delay/2, delay].
        connect_timeout_s: handshake and subscribe-reply timeout.
        stable_after_s: a connection that lived this long resets the backoff.
        max_connection_age_s: planned reconnect before Binance's 24 h connection limit.
        listen_key_keepalive_s: ``PUT /fapi/v1/listenKey`` period (Binance: 30-50 min).
        all_market_above: subscribe ``!markPrice@arr@1s`` instead of per-symbol streams
            when more symbols than this are watched (<= 1024 streams per connection).
    """

    def __init__(
        self,
        *,
        ping_interval_s: float = 60.0,
        pong_timeout_s: float = 10.0,
        silence_timeout_s: float = 30.0,
        backoff_initial_s: float = 0.5,
        backoff_max_s: float = 30.0,
        connect_timeout_s: float = 10.0,
        stable_after_s: float = 30.0,
        max_connection_age_s: float = 23.5 * 3600,
        listen_key_keepalive_s: float = 30 * 60,
        all_market_above: int = 200,
    ) -> None:
        self.ping_interval_s = ping_interval_s
        self.pong_timeout_s = pong_timeout_s
        self.silence_timeout_s = silence_timeout_s
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.connect_timeout_s = connect_timeout_s
        self.stable_after_s = stable_after_s
        self.max_connection_age_s = max_connection_age_s
        self.listen_key_keepalive_s = listen_key_keepalive_s
        self.all_market_above = all_market_above

    def backoff_s(self, attempt: int) -> float:
        delay = min(self.backoff_max_s, self.backoff_initial_s * (2 ** max(attempt - 1, 0)))
        return random.uniform(delay / 2, delay)


class MarkCache:
    """Latest mark price per symbol from the market stream (for local trigger checks)."""

    def __init__(self) -> None:
        self._marks: dict[str, tuple[Decimal, float]] = {}

    def update(self, symbol: str, mark: Decimal) -> None:
        self._marks[symbol] = (mark, time.monotonic())

    def mark_price(self, symbol: str, *, max_age_s: float | None = None) -> Decimal | None:
        """The last mark of ``symbol``; None when unknown or older than ``max_age_s``."""
        got = self._marks.get(symbol)
        if got is None:
            return None
        mark, at = got
        if max_age_s is not None and time.monotonic() - at > max_age_s:
            return None
        return mark


class _Stream:
    """Shared connect / subscribe / read / ping / watchdog / reconnect loop.

    Tasks ask for a reconnect with :meth:`restart` (a reason and a cancel); the loop then
    reconnects without backoff when the reason is planned (age limit, listenKey renewal).
    """

    def __init__(
        self, name: str, settings: StreamSettings, journal: JournalPort | None, clock: Clock
    ) -> None:
        self.name = name
        self.settings = settings
        self.journal = journal
        self.clock = clock
        self._ids = itertools.count(1)
        self.connections = 0
        self.url = ""
        self._restart_reason = ""
        self._scope: trio.CancelScope | None = None
        self.on_refused: Callable[[], None] | None = None

    def emit_event(
        self, type_: EventType, data: dict[str, Any], severity: Severity = Severity.INFO
    ) -> None:
        if self.journal is not None:
            self.journal.emit(
                Event(
                    type=type_,
                    ts=self.clock.now(),
                    data={"stream": self.name, "venue": "binance", "url": self.url, **data},
                    severity=severity,
                )
            )

    def restart(self, reason: str) -> None:
        """Close the current connection and reconnect at once (planned)."""
        self._restart_reason = reason
        if self._scope is not None:
            self._scope.cancel()

    async def run(
        self,
        prepare: Callable[[], Awaitable[tuple[str, list[str]]]],
        on_data: Callable[[str, Any], Awaitable[None]],
        on_gap: Callable[[StreamGap], Awaitable[None]],
        silence_timeout_s: float | None = None,
    ) -> None:
        attempt = 0
        reason = ""
        while True:
            self._connected_at: float | None = None
            planned = False
            try:
                url, streams = await prepare()
                self.url = url.split("?", 1)[0]
                async with trio_websocket.open_websocket_url(
                    url, connect_timeout=self.settings.connect_timeout_s, disconnect_timeout=1.0
                ) as ws:
                    try:
                        reason = await self._serve(
                            ws, streams, on_data, on_gap, reason, silence_timeout_s
                        )
                    finally:
                        await _close_tcp(ws)
                planned = reason.startswith("planned")
                attempt = 0
                self.emit_event(
                    EventType.STREAM_DISCONNECTED,
                    {"reason": reason, "planned": planned},
                    Severity.INFO if planned else Severity.WARNING,
                )
            except _DISCONNECTS as exc:
                reason = f"{type(exc).__name__}: {exc}"
                lived = (
                    trio.current_time() - self._connected_at
                    if self._connected_at is not None
                    else 0.0
                )
                if lived >= self.settings.stable_after_s:
                    attempt = 0
                self.emit_event(
                    EventType.STREAM_DISCONNECTED,
                    {"reason": reason, "attempt": attempt},
                    Severity.WARNING,
                )
            except VenueError as exc:
                if isinstance(exc, FatalVenueError):
                    raise
                # preparing the connection failed (listenKey request): back off and retry
                reason = f"{type(exc).__name__}: {exc}"
                self.emit_event(
                    EventType.STREAM_DISCONNECTED,
                    {"reason": reason, "attempt": attempt, "phase": "prepare"},
                    Severity.WARNING,
                )
            if planned:
                continue
            attempt += 1
            await trio.sleep(self.settings.backoff_s(attempt))

    async def _subscribe(self, ws: trio_websocket.WebSocketConnection, streams: list[str]) -> None:
        req_id = next(self._ids)
        await ws.send_message(json.dumps({"method": "SUBSCRIBE", "params": streams, "id": req_id}))
        with trio.fail_after(self.settings.connect_timeout_s):
            while True:
                reply = json.loads(await ws.get_message())
                if isinstance(reply, dict) and reply.get("id") == req_id:
                    break
        if reply.get("error") is not None:
            err = reply["error"]
            self.emit_event(
                EventType.EXCHANGE_ERROR,
                {"error": "subscribe refused", "reply": reply},
                Severity.ERROR,
            )
            if self.on_refused is not None:
                # the user stream: the listenKey went between creation and subscription;
                # renew it and reconnect (with backoff) instead of giving up
                self.on_refused()
                raise _Dropped(f"subscribe refused: {err}")
            raise FatalVenueError(
                f"binance {self.name} stream: subscribe refused: {err}",
                code="ws_subscribe",
                venue_message=str(err),
            )

    async def _serve(
        self,
        ws: trio_websocket.WebSocketConnection,
        streams: list[str],
        on_data: Callable[[str, Any], Awaitable[None]],
        on_gap: Callable[[StreamGap], Awaitable[None]],
        last_reason: str,
        silence_timeout_s: float | None,
    ) -> str:
        """Serve one connection; returns why it ended (raises on a drop)."""
        self._restart_reason = ""
        await self._subscribe(ws, streams)
        self._connected_at = trio.current_time()
        self.connections += 1
        self.emit_event(EventType.STREAM_CONNECTED, {"connects": self.connections})
        if self.connections > 1:
            gap = StreamGap(
                stream=self.name,
                reason=f"reconnected ({last_reason or 'dropped'})",
                ts=self.clock.now(),
            )
            self.emit_event(EventType.STREAM_GAP, {"reason": gap.reason}, Severity.WARNING)
            await on_gap(gap)
        dropped = ""
        fatal: FatalVenueError | None = None
        silent = False
        async with trio.open_nursery() as nursery:
            self._scope = nursery.cancel_scope
            nursery.start_soon(self._pinger, ws)
            nursery.start_soon(self._age_limit)
            while True:
                with trio.move_on_after(silence_timeout_s or float("inf")) as cs:
                    try:
                        raw = await ws.get_message()
                    except trio_websocket.ConnectionClosed as exc:
                        dropped = f"closed: {exc.reason}"
                        nursery.cancel_scope.cancel()
                        break
                if cs.cancelled_caught:
                    silent = True
                    nursery.cancel_scope.cancel()
                    break
                try:
                    msg = json.loads(raw)
                except ValueError:
                    self.emit_event(
                        EventType.EXCHANGE_ERROR,
                        {"error": "malformed frame", "frame": str(raw)[:200]},
                        Severity.WARNING,
                    )
                    continue
                if not isinstance(msg, dict) or "data" not in msg:
                    continue  # replies to requests we did not make / unknown frames
                try:
                    await on_data(str(msg.get("stream", "")), msg["data"])
                except FatalVenueError as exc:
                    fatal = exc  # re-raised outside the nursery: never grouped
                    nursery.cancel_scope.cancel()
                    break
        self._scope = None
        if fatal is not None:
            raise fatal
        if silent:
            self.emit_event(
                EventType.STREAM_SILENT,
                {"reason": "silence", "silence_timeout_s": silence_timeout_s},
                Severity.WARNING,
            )
            return "silent"
        if self._restart_reason:
            return self._restart_reason
        if dropped:
            raise _Dropped(dropped)
        return "ended"

    async def _pinger(self, ws: trio_websocket.WebSocketConnection) -> None:
        while True:
            await trio.sleep(self.settings.ping_interval_s)
            try:
                with trio.fail_after(self.settings.pong_timeout_s):
                    await ws.ping()
            except trio.TooSlowError:
                self.emit_event(
                    EventType.STREAM_SILENT,
                    {"reason": "pong_timeout", "pong_timeout_s": self.settings.pong_timeout_s},
                    Severity.WARNING,
                )
                self.restart("pong timeout")
                return
            except trio_websocket.ConnectionClosed:
                return  # the reader sees the close and reports it

    async def _age_limit(self) -> None:
        await trio.sleep(self.settings.max_connection_age_s)
        self.restart("planned: connection age limit (24 h)")


async def run_market_stream(
    url: str,
    symbols: Sequence[str],
    emit: Callable[[MarketEvent], Awaitable[None]],
    *,
    cache: MarkCache | None = None,
    settings: StreamSettings | None = None,
    journal: JournalPort | None = None,
    clock: Clock | None = None,
) -> None:
    """Stream mark prices of ``symbols`` until cancelled.

    Emits :class:`~tradebot.ports.MarkPrice` per update and :class:`StreamGap`
    (``stream="public"``) after every reconnect.
    """
    st = settings or StreamSettings()
    cache = cache if cache is not None else MarkCache()
    stream = _Stream("public", st, journal, clock or WallClock())
    wanted = {s.upper() for s in symbols}
    if len(wanted) > st.all_market_above:
        names = ["!markPrice@arr@1s"]
    else:
        names = [f"{s.lower()}@markPrice@1s" for s in sorted(wanted)]

    async def prepare() -> tuple[str, list[str]]:
        return f"{url}/stream", names

    async def on_item(item: Any) -> None:
        if not isinstance(item, Mapping) or item.get("e") != "markPriceUpdate":
            return
        try:
            mark = parse_mark_price(item)
        except ParseError as exc:
            stream.emit_event(EventType.EXCHANGE_ERROR, {"error": str(exc)}, Severity.WARNING)
            return
        if mark.symbol not in wanted:
            return
        cache.update(mark.symbol, mark.mark_price)
        await emit(mark)

    async def on_data(_name: str, data: Any) -> None:
        if isinstance(data, list):
            for item in data:
                await on_item(item)
        else:
            await on_item(data)

    await stream.run(prepare, on_data, emit, silence_timeout_s=st.silence_timeout_s)


class _ListenKey:
    """The user stream's listenKey: create, keep alive, renew (all through the signed REST
    client, so every call is journaled and budgeted)."""

    def __init__(self, http: BinanceHttp) -> None:
        self.http = http
        self.key: str | None = None
        self.created = 0

    async def create(self) -> str:
        reply = await self.http.call("POST", "/fapi/v1/listenKey", security=Security.USER_STREAM)
        key = reply.get("listenKey") if isinstance(reply, dict) else None
        if not isinstance(key, str) or not key:
            raise RejectedError(f"binance listenKey: bad reply {reply!r:.100}", code="listen_key")
        self.key = key
        self.created += 1
        return key

    async def keepalive(self) -> None:
        await self.http.call("PUT", "/fapi/v1/listenKey", security=Security.USER_STREAM)

    async def close(self) -> None:
        if self.key is None:
            return
        self.key = None
        with trio.move_on_after(2) as cs:
            cs.shield = True
            try:
                await self.http.call("DELETE", "/fapi/v1/listenKey", security=Security.USER_STREAM)
            except VenueError:
                pass


async def run_user_stream(
    url: str,
    http: BinanceHttp,
    emit: Callable[[AccountEvent], Awaitable[None]],
    *,
    settings: StreamSettings | None = None,
    journal: JournalPort | None = None,
    clock: Clock | None = None,
    stats: dict[str, int] | None = None,
) -> None:
    """Stream the account's order / algo / position events until cancelled.

    ``stats`` (optional) counts ``listen_keys`` created, ``trade_lite`` events seen and
    ``duplicate_fills`` dropped.

    Raises:
        FatalVenueError: the venue refused the API key (listenKey creation: -2015 etc.).
            A refused subscription renews the listenKey and reconnects.
    """
    st = settings or StreamSettings()
    counts = stats if stats is not None else {}
    stream = _Stream("private", st, journal, clock or WallClock())
    lk = _ListenKey(http)

    def forget_key() -> None:
        lk.key = None

    stream.on_refused = forget_key
    algo_of_order: OrderedDict[str, str] = OrderedDict()  # actual orderId → clientAlgoId
    fills_seen: OrderedDict[tuple[str, str], None] = OrderedDict()

    def remember(table: OrderedDict[Any, Any], key: Any, value: Any) -> None:
        table[key] = value
        table.move_to_end(key)
        while len(table) > 10_000:
            table.popitem(last=False)

    async def prepare() -> tuple[str, list[str]]:
        if lk.key is None:
            await lk.create()
            counts["listen_keys"] = lk.created
        assert lk.key is not None
        return f"{url}/stream", [lk.key]

    async def keepalive_loop() -> None:
        while True:
            await trio.sleep(st.listen_key_keepalive_s)
            if lk.key is None:
                continue  # a new key is being created with the next connection
            try:
                await lk.keepalive()
            except VenueError as exc:
                if exc.code == str(INVALID_LISTEN_KEY):
                    # the key is gone: the stream is (or will go) blind; renew and reconnect
                    lk.key = None
                    stream.restart("planned: listenKey gone (-1125), new key")
                    continue
                stream.emit_event(
                    EventType.EXCHANGE_ERROR,
                    {"what": "listenKey keepalive", "error": str(exc)},
                    Severity.WARNING,
                )

    async def on_order_update(ev: Mapping[str, Any]) -> None:
        o = ev.get("o")
        if not isinstance(o, Mapping):
            return
        oid = str(o.get("i", ""))
        caid = algo_of_order.get(oid)
        fill = fill_from_order_update(o, client_order_id=caid, from_algo=caid is not None)
        if fill is not None:
            key = (fill.symbol, fill.trade_id)
            if key not in fills_seen:
                remember(fills_seen, key, None)
                await emit(fill)
            else:
                counts["duplicate_fills"] = counts.get("duplicate_fills", 0) + 1
        try:
            order = parse_order_update(o, client_order_id=caid)
        except ParseError:
            return  # e.g. a LIQUIDATION order type: its fill (above) is what matters
        await emit(OrderUpdate(order=order, ts=order.updated_at or stream.clock.now()))

    async def on_data(_name: str, ev: Any) -> None:
        if not isinstance(ev, Mapping):
            return
        kind = ev.get("e")
        try:
            if kind == "ORDER_TRADE_UPDATE":
                await on_order_update(ev)
            elif kind == "ALGO_UPDATE":
                o = ev.get("o") or {}
                if o.get("ai"):
                    remember(algo_of_order, str(o["ai"]), str(o.get("caid", "")))
                order = parse_algo_update(o)
                await emit(OrderUpdate(order=order, ts=stream.clock.now()))
            elif kind == "ACCOUNT_UPDATE":
                for p in positions_from_account_update(ev):
                    await emit(PositionUpdate(position=p, ts=stream.clock.now()))
            elif kind == "TRADE_LITE":
                counts["trade_lite"] = counts.get("trade_lite", 0) + 1
            elif kind == "listenKeyExpired":
                stream.emit_event(
                    EventType.STREAM_DISCONNECTED,
                    {"reason": "listenKeyExpired event", "renew": True},
                    Severity.WARNING,
                )
                lk.key = None
                stream.restart("planned: listenKeyExpired, new key")
            elif kind == "CONDITIONAL_ORDER_TRIGGER_REJECT":
                stream.emit_event(
                    EventType.EXCHANGE_ERROR,
                    {"error": "conditional order trigger rejected", "reply": dict(ev)},
                    Severity.ERROR,
                )
        except (ParseError, ValueError, TypeError, KeyError) as exc:
            stream.emit_event(
                EventType.EXCHANGE_ERROR,
                {"error": f"unparsable {kind} event: {exc}"},
                Severity.WARNING,
            )

    failure: list[FatalVenueError] = []
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(keepalive_loop)
            try:
                await stream.run(prepare, on_data, emit)
            except FatalVenueError as exc:
                failure.append(exc)  # re-raised outside the nursery: never grouped
            nursery.cancel_scope.cancel()
    finally:
        await lk.close()
    if failure:
        raise failure[0]
