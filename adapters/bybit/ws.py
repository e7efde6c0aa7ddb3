"""Bybit v5 WebSocket streams on trio-websocket.

* Public ``tickers.{symbol}`` (docs v5/websocket/public/ticker): the first message per topic
  is a ``snapshot``, later ones are ``delta`` messages carrying only changed fields. The
  :class:`TickerCache` merges deltas into the cached snapshot, so a delta without
  ``markPrice`` keeps the last mark (a missing field means "unchanged", not "gone").
* Private ``order`` / ``execution`` / ``position`` (docs v5/websocket/private/*) after
  ``{"op":"auth","args":[apiKey, expires, sign("GET/realtime" + expires)]}``. Executions
  pass an :class:`~adapters.bybit.fills.ExecutionTracker` (exactly once by ``execId``, shared
  with the REST backfill that runs after every (re)connect: ``after_open``). One-way rows
  (``positionIdx`` 0) are parsed like hedge rows; a flat one-way position row (``side ""``)
  belongs to no side and is skipped.

Both streams: ``{"op":"ping"}`` every ``ping_interval_s`` (Bybit asks for 20 s), a silence
watchdog (no frame for ``silence_timeout_s`` → reconnect), reconnect with capped jittered
exponential backoff (never a tight loop), resubscribe on every connection, and a
:class:`~tradebot.ports.StreamGap` after every *re*connect so the bot re-verifies positions.
One reader task per connection drains frames as they arrive (trio-websocket answers pings
only while someone reads).
"""

from __future__ import annotations

import itertools
import json
import random
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import trio
import trio_websocket

from adapters.bybit.fills import ExecutionTracker
from adapters.bybit.http import ServerClock, sign
from adapters.bybit.parse import (
    ParseError,
    execution_position_side,
    ms_to_dt,
    opt_dec,
    parse_execution,
    parse_order,
    parse_position_row,
)
from tradebot.clock import WallClock
from tradebot.errors import FatalVenueError
from tradebot.events import (
    Event,
    ExchangeError,
    JournalPort,
    Payload,
    Severity,
    StreamConnected,
    StreamDisconnected,
    StreamGapped,
    StreamSilent,
)
from tradebot.ports import (
    AccountEvent,
    Clock,
    MarketEvent,
    MarkPrice,
    OrderUpdate,
    PositionUpdate,
    StreamGap,
)

__all__ = ["StreamSettings", "TickerCache", "run_private_stream", "run_public_stream"]


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


async def _close_tcp(ws: trio_websocket.WebSocketConnection) -> None:
    """Close the TCP stream under ``ws``.

    Workaround for trio-websocket 0.12: when the *peer* closes, the client waits for the
    server's TCP close in its reader task, but leaving ``open_websocket_url`` cancels that
    task first, so the socket is never closed (ResourceWarning, fd leak on every
    reconnect). Closing an already closed stream is a no-op.
    """
    closer = getattr(ws, "_close_stream", None)
    if closer is not None:
        with trio.CancelScope(shield=True):
            await closer()


class StreamSettings:
    """Timing knobs of a stream (seconds).

    Attributes:
        ping_interval_s: app-level ``{"op":"ping"}`` period (Bybit: 20).
        silence_timeout_s: reconnect when no frame arrives for this long (> ping interval).
        backoff_initial_s / backoff_max_s: reconnect delay grows x2 per failed attempt up to
            the cap (30 s, docs/ARCHITECTURE.md §9), with full jitter in [delay/2, delay].
        connect_timeout_s: handshake timeout.
        stable_after_s: a connection that lived this long resets the backoff; one that
            drops sooner keeps growing it (a server that accepts and closes at once never
            gets a tight reconnect loop).
    """

    def __init__(
        self,
        *,
        ping_interval_s: float = 20.0,
        silence_timeout_s: float = 30.0,
        backoff_initial_s: float = 0.5,
        backoff_max_s: float = 30.0,
        connect_timeout_s: float = 10.0,
        stable_after_s: float = 30.0,
    ) -> None:
        self.ping_interval_s = ping_interval_s
        self.silence_timeout_s = silence_timeout_s
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.connect_timeout_s = connect_timeout_s
        self.stable_after_s = stable_after_s

    def backoff_s(self, attempt: int) -> float:
        delay = min(self.backoff_max_s, self.backoff_initial_s * (2 ** max(attempt - 1, 0)))
        return random.uniform(delay / 2, delay)


class TickerCache:
    """Merged ``tickers.{symbol}`` state per symbol (snapshot + deltas)."""

    def __init__(self) -> None:
        self.state: dict[str, dict[str, Any]] = {}
        self.updated_at: dict[str, float] = {}  # time.monotonic() of the last message

    def apply(self, message: Mapping[str, Any]) -> tuple[str, bool] | None:
        """Merge one ticker message.

        Returns:
            ``(symbol, mark_changed)`` or None for a message that is not a ticker.
        """
        topic = str(message.get("topic", ""))
        data = message.get("data")
        if not topic.startswith("tickers.") or not isinstance(data, Mapping):
            return None
        symbol = str(data.get("symbol") or topic.removeprefix("tickers."))
        self.updated_at[symbol] = time.monotonic()
        if message.get("type") == "snapshot" or symbol not in self.state:
            self.state[symbol] = dict(data)
            return symbol, "markPrice" in data
        before = self.state[symbol].get("markPrice")
        self.state[symbol].update(data)  # omitted fields keep their cached value
        return symbol, self.state[symbol].get("markPrice") != before

    def mark_price(self, symbol: str, *, max_age_s: float | None = None) -> Decimal | None:
        """The merged mark of ``symbol``; None when unknown or (with ``max_age_s``) when no
        ticker message arrived for that long (Bybit pushes tickers every 100 ms)."""
        row = self.state.get(symbol)
        if row is None:
            return None
        if (
            max_age_s is not None
            and time.monotonic() - self.updated_at.get(symbol, -1e18) > max_age_s
        ):
            return None
        return opt_dec(row, "markPrice", zero_is_none=True)


class _Stream:
    """Shared connect / read / ping / watchdog / reconnect loop."""

    def __init__(
        self,
        name: str,
        url: str,
        settings: StreamSettings,
        journal: JournalPort | None,
        clock: Clock,
    ) -> None:
        self.name = name
        self.url = url
        self.settings = settings
        self.journal = journal
        self.clock = clock
        self._req = itertools.count(1)
        self.connections = 0

    def emit_event(self, payload: Payload, severity: Severity = Severity.INFO) -> None:
        """Journal ``payload`` (built with this stream's ``stream``/``url``)."""
        if self.journal is not None:
            self.journal.emit(Event.of(payload, self.clock.now(), severity=severity))

    def error(
        self, error: str, *, frame: str = "", reply: Mapping[str, Any] | None = None
    ) -> ExchangeError:
        """An EXCHANGE_ERROR payload of this stream."""
        return ExchangeError(error=error, stream=self.name, url=self.url, frame=frame, reply=reply)

    def req_id(self) -> str:
        return f"{self.name}-{next(self._req)}"

    async def run(
        self,
        on_open: Callable[[trio_websocket.WebSocketConnection], Awaitable[None]],
        on_message: Callable[[dict[str, Any]], Awaitable[None]],
        on_gap: Callable[[StreamGap], Awaitable[None]],
        after_open: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        attempt = 0
        reason = ""
        while True:
            self._connected_at: float | None = None
            try:
                async with trio_websocket.open_websocket_url(
                    self.url,
                    connect_timeout=self.settings.connect_timeout_s,
                    disconnect_timeout=1.0,
                ) as ws:
                    try:
                        await self._serve(ws, on_open, on_message, on_gap, reason, after_open)
                        reason = "silent"
                    finally:
                        await _close_tcp(ws)
                attempt = 0
            except _DISCONNECTS as exc:
                reason = f"{type(exc).__name__}: {exc}"
                lived = (
                    trio.current_time() - self._connected_at
                    if self._connected_at is not None
                    else 0.0
                )
                if lived >= self.settings.stable_after_s:
                    attempt = 0  # it was a healthy connection: start the backoff afresh
                self.emit_event(
                    StreamDisconnected(
                        stream=self.name,
                        url=self.url,
                        reason=reason,
                        attempt=attempt,
                    ),
                    Severity.WARNING,
                )
            attempt += 1
            await trio.sleep(self.settings.backoff_s(attempt))

    async def _serve(
        self,
        ws: trio_websocket.WebSocketConnection,
        on_open: Callable[[trio_websocket.WebSocketConnection], Awaitable[None]],
        on_message: Callable[[dict[str, Any]], Awaitable[None]],
        on_gap: Callable[[StreamGap], Awaitable[None]],
        reason: str,
        after_open: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        await on_open(ws)
        self._connected_at = trio.current_time()
        self.connections += 1
        self.emit_event(StreamConnected(stream=self.name, url=self.url, connects=self.connections))
        if self.connections > 1:
            gap = StreamGap(
                stream=self.name, reason=f"reconnected ({reason or 'dropped'})", ts=self.clock.now()
            )
            self.emit_event(
                StreamGapped(stream=self.name, url=self.url, reason=gap.reason), Severity.WARNING
            )
            await on_gap(gap)
        dropped = ""
        fatal: FatalVenueError | None = None
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._pinger, ws, nursery.cancel_scope)
            if after_open is not None:
                # e.g. the execution backfill: runs beside the reader (pongs keep flowing)
                # and ends with the connection
                nursery.start_soon(after_open)
            while True:
                with trio.move_on_after(self.settings.silence_timeout_s) as cs:
                    try:
                        raw = await ws.get_message()
                    except trio_websocket.ConnectionClosed as exc:
                        dropped = f"closed: {exc.reason}"
                        nursery.cancel_scope.cancel()
                        break
                if cs.cancelled_caught:
                    self.emit_event(
                        StreamSilent(
                            stream=self.name,
                            url=self.url,
                            reason="silence",
                            silence_timeout_s=self.settings.silence_timeout_s,
                        ),
                        Severity.WARNING,
                    )
                    nursery.cancel_scope.cancel()
                    return
                try:
                    msg = json.loads(raw)
                except ValueError:
                    self.emit_event(
                        self.error("malformed frame", frame=str(raw)[:200]), Severity.WARNING
                    )
                    continue
                if isinstance(msg, dict):
                    try:
                        await on_message(msg)
                    except FatalVenueError as exc:
                        fatal = exc  # re-raised outside the nursery: never grouped
                        nursery.cancel_scope.cancel()
                        break
        if fatal is not None:
            raise fatal
        if dropped:
            raise _Dropped(dropped)

    async def _pinger(
        self, ws: trio_websocket.WebSocketConnection, scope: trio.CancelScope
    ) -> None:
        while True:
            await trio.sleep(self.settings.ping_interval_s)
            try:
                await ws.send_message(json.dumps({"op": "ping", "req_id": self.req_id()}))
            except trio_websocket.ConnectionClosed:
                scope.cancel()  # the reader sees the close and reports it
                return


async def run_public_stream(
    url: str,
    symbols: Sequence[str],
    emit: Callable[[MarketEvent], Awaitable[None]],
    *,
    cache: TickerCache | None = None,
    settings: StreamSettings | None = None,
    journal: JournalPort | None = None,
    clock: Clock | None = None,
) -> None:
    """Stream mark prices of ``symbols`` from ``tickers.{symbol}`` until cancelled.

    Emits :class:`MarkPrice` whenever a symbol's merged mark changes and
    :class:`StreamGap` (``stream="public"``) after every reconnect.
    """
    cache = cache if cache is not None else TickerCache()
    stream = _Stream("public", url, settings or StreamSettings(), journal, clock or WallClock())
    topics = [f"tickers.{s}" for s in symbols]

    async def on_open(ws: trio_websocket.WebSocketConnection) -> None:
        # Bybit allows up to 10 args per subscribe request on public linear streams.
        for i in range(0, len(topics), 10):
            await ws.send_message(
                json.dumps(
                    {"op": "subscribe", "req_id": stream.req_id(), "args": topics[i : i + 10]}
                )
            )

    async def on_message(msg: dict[str, Any]) -> None:
        if msg.get("op") == "subscribe" and msg.get("success") is False:
            stream.emit_event(stream.error("subscribe failed", reply=msg), Severity.ERROR)
            return
        try:
            merged = cache.apply(msg)
        except (TypeError, ValueError) as exc:
            stream.emit_event(stream.error(repr(exc)), Severity.WARNING)
            return
        if merged is None:
            return
        symbol, changed = merged
        if not changed:
            return
        try:
            mark = cache.mark_price(symbol)
        except ParseError as exc:
            stream.emit_event(stream.error(str(exc)), Severity.WARNING)
            return
        if mark is not None:
            ts = ms_to_dt(msg.get("ts")) or datetime.now(UTC)
            await emit(MarkPrice(symbol=symbol, mark_price=mark, ts=ts))

    await stream.run(on_open, on_message, emit)


def _ws_message_of(reply: Mapping[str, Any]) -> str:
    """The venue's message of a WS reply: ``ret_msg`` (v5 private stream replies) or
    ``retMsg`` (the spelling of REST envelopes and some WS errors)."""
    for key in ("ret_msg", "retMsg"):
        v = reply.get(key)
        if v:
            return str(v)
    return ""


async def run_private_stream(
    url: str,
    api_key: str,
    api_secret: str,
    emit: Callable[[AccountEvent], Awaitable[None]],
    *,
    server_clock: ServerClock | None = None,
    settings: StreamSettings | None = None,
    journal: JournalPort | None = None,
    clock: Clock | None = None,
    tracker: ExecutionTracker | None = None,
    after_open: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """Stream ``order`` / ``execution`` / ``position`` events until cancelled.

    Args:
        tracker: execution ids already emitted (shared with the REST backfill); an
            execution seen before is not emitted again.
        after_open: run beside the reader after every successful auth + subscribe (the
            venue's execution backfill); cancelled when the connection ends.

    Raises:
        FatalVenueError: the venue refused the authentication (bad key or signature); the
            error carries the venue's message (``ret_msg`` or ``retMsg``, both spellings
            occur) and code.
    """
    sclock = server_clock or ServerClock()
    stream = _Stream("private", url, settings or StreamSettings(), journal, clock or WallClock())
    fills = tracker if tracker is not None else ExecutionTracker()

    async def on_open(ws: trio_websocket.WebSocketConnection) -> None:
        expires = sclock.now_ms() + 10_000
        await ws.send_message(
            json.dumps(
                {
                    "op": "auth",
                    "req_id": stream.req_id(),
                    "args": [api_key, expires, sign(api_secret, f"GET/realtime{expires}")],
                }
            )
        )
        with trio.fail_after(stream.settings.connect_timeout_s):
            while True:
                reply = json.loads(await ws.get_message())
                if reply.get("op") == "auth":
                    break
        if reply.get("success") is not True:
            why = _ws_message_of(reply)
            code = reply.get("retCode", reply.get("ret_code"))
            raise FatalVenueError(
                f"bybit private stream auth refused: {why or 'no message'}"
                + (f" (retCode {code})" if code not in (None, "", 0) else ""),
                code="ws_auth",
                venue_message=why,
            )
        await ws.send_message(
            json.dumps(
                {
                    "op": "subscribe",
                    "req_id": stream.req_id(),
                    "args": ["order", "execution", "position"],
                }
            )
        )

    async def on_message(msg: dict[str, Any]) -> None:
        if msg.get("op") == "subscribe" and msg.get("success") is False:
            # A private stream that is not subscribed is blind while orders still succeed
            # (the listenKey lesson from Binance): never carry on silently.
            stream.emit_event(stream.error("private subscribe refused", reply=msg), Severity.ERROR)
            raise FatalVenueError(
                f"bybit private subscribe refused: {_ws_message_of(msg)}",
                code="ws_subscribe",
                venue_message=_ws_message_of(msg),
            )
        topic = msg.get("topic")
        rows = msg.get("data")
        if topic not in ("order", "execution", "position") or not isinstance(rows, list):
            return
        ts = ms_to_dt(msg.get("creationTime")) or datetime.now(UTC)
        for row in rows:
            if not isinstance(row, dict) or row.get("category", "linear") != "linear":
                continue
            try:
                event: AccountEvent
                if topic == "order":
                    order = parse_order(row)
                    fills.note_order(order.venue_order_id, int(row.get("positionIdx", 0)))
                    event = OrderUpdate(order=order, ts=ts)
                elif topic == "execution":
                    if not fills.admit(row):
                        continue  # already emitted (by the backfill, or a repeated push)
                    side = execution_position_side(row, fills.idx_of(str(row.get("orderId"))))
                    event = parse_execution(row, side)
                else:
                    position = parse_position_row(row)
                    if position is None:
                        continue  # a flat one-way row: no side to update
                    event = PositionUpdate(position=position, ts=ts)
            except (ParseError, ValueError, TypeError) as exc:
                stream.emit_event(stream.error(f"unparsable {topic} row: {exc}"), Severity.WARNING)
                continue
            await emit(event)

    await stream.run(on_open, on_message, emit, after_open)
