"""WebSocket client of the signal service (trio-websocket), implementing ``SignalSource``.

Connection life (docs/ARCHITECTURE.md §9)::

    connect (Authorization: Bearer <token> header when a token is set)
      └─ send subscribe message ──► read loop ──► parse ──► bounded buffer (100) ──► emit
            ├─ heartbeat: ping every 20 s; no pong within pong_timeout_s → reconnect
            └─ silence watchdog: no message for silence_timeout_s → reconnect
    on any failure: journal STREAM_DISCONNECTED (reason, retry_in_s), sleep the capped
    jittered exponential backoff (<= 30 s), reconnect and resubscribe.

Auth: the token travels in the HTTP ``Authorization: Bearer <token>`` header of the
WebSocket handshake (not in the URL — URLs get logged — and not in a first message, so an
unauthenticated client never gets a socket that reads data). A server that refuses the
handshake (401/403) is treated like any failed connect: journaled and retried with backoff.

One reader task per connection drains trio-websocket's queue immediately and parses each
message right there (parsing is ~4 µs/signal), so pong replies never stall behind a slow
consumer (a trio-websocket lesson, STYLE.md). Parsed items go into a bounded buffer; when
it is full the item is *dropped and journaled* ``SIGNAL_BUFFER_OVERFLOW`` naming the wave
and signal ids — loss is visible, never silent.

Frames larger than ``limits.max_message_bytes`` make trio-websocket close the connection
with 1009 (Message Too Big); a text frame with invalid UTF-8 closes it with 1007. Both are
journaled ``SIGNAL_REJECTED`` with the reason and the connection is re-established.

The backoff attempt counter resets after a connection that delivered at least one valid
message, so a server that accepts and immediately drops is retried ever more slowly.
"""

from __future__ import annotations

import random
import ssl
import urllib.parse
from collections.abc import Iterator
from datetime import datetime

import trio
from trio_websocket import (
    ConnectionClosed,
    ConnectionRejected,
    HandshakeError,
    WebSocketConnection,
    wrap_client_stream,
)

from tradebot.events import (
    Event,
    JournalPort,
    Payload,
    Severity,
    StreamConnected,
    StreamDisconnected,
    StreamSilent,
)
from tradebot.ports import Clock
from tradebot.redact import Redactor
from tradebot.signals import (
    Control,
    Emit,
    FeedItem,
    FeedSettings,
    Rejection,
    Wave,
    backoff_delay_s,
    overflow_event,
    parse_message,
    rejection_event,
)

__all__ = ["WebSocketSignalSource"]

_SOURCE = "websocket"


class WebSocketSignalSource:
    """The signal service client. Implements :class:`tradebot.signals.SignalSource`.

    Args:
        settings: URL, token, heartbeat, backoff, buffer and protocol limits.
        journal: where STREAM_* / SIGNAL_REJECTED / SIGNAL_BUFFER_OVERFLOW events go.
        clock: the time port (event timestamps).
        rng: random source of the backoff jitter; pass ``random.Random(seed)`` for a
            reproducible schedule.

    Attributes (read-only counters, for status and tests):
        connects: successful handshakes so far.
        reconnect_delays: every backoff delay slept, seconds, in order.
        overflowed: items dropped because the buffer was full (each journaled).
        rejected: messages or signals rejected (each journaled).
    """

    def __init__(
        self,
        settings: FeedSettings,
        *,
        journal: JournalPort,
        clock: Clock,
        rng: random.Random | None = None,
    ) -> None:
        self._settings = settings
        self._journal = journal
        self._clock = clock
        self._rng = rng if rng is not None else random.Random()
        self.connects = 0
        self.reconnect_delays: list[float] = []
        self.overflowed = 0
        self.rejected = 0
        self._valid_in_session = 0
        self._send: trio.MemorySendChannel[FeedItem] | None = None

    @property
    def settings(self) -> FeedSettings:
        return self._settings

    async def run(self, emit: Emit) -> None:
        """Connect, read and deliver until cancelled. Never raises for network or input
        errors (they are journaled and retried)."""
        send, recv = trio.open_memory_channel[FeedItem](self._settings.buffer_size)
        self._send = send
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._pump, recv, emit)
            async with send:
                await self._connect_loop(send)

    async def _pump(self, recv: trio.MemoryReceiveChannel[FeedItem], emit: Emit) -> None:
        async with recv:
            async for item in recv:
                await emit(item)

    def _emit_event(self, payload: Payload, severity: Severity = Severity.INFO) -> None:
        self._journal.emit(Event.of(payload, self._clock.now(), severity=severity))

    async def _connect_loop(self, send: trio.MemorySendChannel[FeedItem]) -> None:
        attempt = 0
        while True:
            self._valid_in_session = 0
            reason = await self._session(send)
            if self._valid_in_session > 0:
                attempt = 0
            delay = backoff_delay_s(attempt, self._settings, self._rng)
            attempt += 1
            self.reconnect_delays.append(delay)
            self._emit_event(
                StreamDisconnected(
                    stream="signals",
                    url=_safe_url(self._settings.url),
                    reason=reason,
                    attempt=attempt,
                    retry_in_s=round(delay, 6),
                ),
                Severity.WARNING,
            )
            await trio.sleep(delay)

    async def _session(self, send: trio.MemorySendChannel[FeedItem]) -> str:
        """One connection, from handshake to its end. Returns why it ended.

        We open (and always close) the TCP/TLS stream ourselves and hand it to
        ``wrap_client_stream``: trio-websocket's own connect helpers leave the socket of a
        refused handshake (401/503) unclosed.
        """
        settings = self._settings
        try:
            host, port, resource, use_tls = _split_url(settings.url)
        except ValueError as exc:
            return f"bad_url:{exc}"
        headers: list[tuple[bytes, bytes]] = []
        if settings.token:
            headers.append((b"Authorization", b"Bearer " + settings.token.encode()))
        # ``ended`` keeps the first reason: closing the socket afterwards may fail too
        # (a peer that stopped reading) and must not mask it.
        ended: str | None = None
        stream: trio.abc.Stream | None = None
        try:
            async with trio.open_nursery() as conn_nursery:
                try:
                    with trio.fail_after(settings.connect_timeout_s):
                        if use_tls:
                            stream = await trio.open_ssl_over_tcp_stream(
                                host,
                                port,
                                ssl_context=ssl.create_default_context(),
                                https_compatible=True,
                            )
                        else:
                            stream = await trio.open_tcp_stream(host, port)
                        ws = await wrap_client_stream(
                            conn_nursery,
                            stream,  # type: ignore[arg-type]
                            host if port in (80, 443) else f"{host}:{port}",
                            resource,
                            extra_headers=headers,
                            max_message_size=settings.limits.max_message_bytes,
                        )
                except trio.TooSlowError:
                    ended = "connect_failed:timeout"
                    conn_nursery.cancel_scope.cancel()
                    return ended
                self.connects += 1
                self._emit_event(
                    StreamConnected(
                        stream="signals", url=_safe_url(settings.url), connects=self.connects
                    )
                )
                try:
                    if settings.subscribe_message is not None:
                        await ws.send_message(settings.subscribe_message)
                    ended = await self._serve_connection(ws, send)
                except ConnectionClosed as exc:
                    ended = self._closed_reason(exc)
                with trio.move_on_after(settings.disconnect_timeout_s):
                    await ws.aclose()
                conn_nursery.cancel_scope.cancel()
        except BaseExceptionGroup as group:
            if any(not isinstance(e, Exception) for e in _leaves(group)):
                raise  # cancellation or KeyboardInterrupt: not ours to swallow
            if ended is None:
                ended = self._failure_reason(group)
        except Exception as exc:
            if ended is None:
                ended = self._failure_reason(exc)
        finally:
            if stream is not None:
                await trio.aclose_forcefully(stream)
        return ended if ended is not None else "closed"

    def _failure_reason(self, exc: BaseException) -> str:
        """Classify a connection failure (possibly an exception group from the reader)."""
        leaves: list[BaseException] = [e for e in _leaves(exc) if isinstance(e, Exception)]
        first = leaves[0] if leaves else exc
        if isinstance(first, ConnectionRejected):
            return f"connect_failed:rejected with HTTP {first.status_code}"
        if isinstance(first, HandshakeError):
            return f"connect_failed:{type(first).__name__}"
        if isinstance(first, ConnectionClosed):
            return self._closed_reason(first)
        if isinstance(first, OSError):
            return f"connect_failed:{type(first).__name__}:{str(first)[:120]}"
        if isinstance(first, (trio.BrokenResourceError, trio.ClosedResourceError)):
            return f"connection_error:{type(first).__name__}"
        return f"unexpected:{type(first).__name__}:{str(first)[:120]}"

    def _closed_reason(self, exc: ConnectionClosed) -> str:
        reason = exc.reason
        code = getattr(reason, "code", None)
        text = getattr(reason, "reason", None) or ""
        if code == 1009:
            self._reject(
                Rejection(
                    f"message_too_large:connection closed 1009 ({text})",
                    "<frame over the size limit>",
                )
            )
        elif code == 1007:
            self._reject(
                Rejection(
                    f"invalid_utf8:text frame, connection closed 1007 ({text})",
                    "<invalid text frame>",
                )
            )
        return f"closed:{code}:{text[:120]}"

    async def _serve_connection(
        self, ws: WebSocketConnection, send: trio.MemorySendChannel[FeedItem]
    ) -> str:
        outcome: list[str] = []
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._heartbeat, ws, nursery.cancel_scope, outcome)
            try:
                reason = await self._read_loop(ws, send)
            except ConnectionClosed as exc:
                reason = self._closed_reason(exc)
            outcome.append(reason)
            nursery.cancel_scope.cancel()
        return outcome[0]

    async def _heartbeat(
        self, ws: WebSocketConnection, scope: trio.CancelScope, outcome: list[str]
    ) -> None:
        settings = self._settings
        seq = 0
        while True:
            await trio.sleep(settings.ping_interval_s)
            seq += 1
            with trio.move_on_after(settings.pong_timeout_s) as deadline:
                try:
                    await ws.ping(seq.to_bytes(8, "big"))
                except ConnectionClosed:
                    return  # the reader sees the close and reports it
            if deadline.cancelled_caught:
                self._emit_event(
                    StreamSilent(
                        stream="signals",
                        url=_safe_url(settings.url),
                        reason="pong_timeout",
                        pong_timeout_s=settings.pong_timeout_s,
                    ),
                    Severity.WARNING,
                )
                outcome.append("pong_timeout")
                scope.cancel()
                return

    async def _read_loop(
        self, ws: WebSocketConnection, send: trio.MemorySendChannel[FeedItem]
    ) -> str:
        settings = self._settings
        while True:
            with trio.move_on_after(settings.silence_timeout_s) as watchdog:
                raw = await ws.get_message()
            if watchdog.cancelled_caught:
                self._emit_event(
                    StreamSilent(
                        stream="signals",
                        url=_safe_url(settings.url),
                        reason="silence",
                        silence_timeout_s=settings.silence_timeout_s,
                    ),
                    Severity.WARNING,
                )
                return "silence"
            self.handle_raw(raw, send)

    def handle_raw(self, raw: str | bytes, send: trio.MemorySendChannel[FeedItem]) -> None:
        """Parse one received message, journal rejections, buffer the result."""
        parsed = parse_message(raw, self._settings.limits)
        if isinstance(parsed, Control):
            self._valid_in_session += 1
            return
        if isinstance(parsed, Rejection):
            self._reject(parsed, deliver=False)
        else:
            self._valid_in_session += 1
            if isinstance(parsed, Wave):
                for rejection in parsed.rejections:
                    self._reject(rejection, deliver=False)
        self._offer(parsed, send)

    def _offer(self, item: FeedItem, send: trio.MemorySendChannel[FeedItem] | None) -> None:
        if send is None:
            return
        try:
            send.send_nowait(item)
        except trio.WouldBlock:
            self.overflowed += 1
            self._journal.emit(
                overflow_event(
                    item, self._now(), buffer_size=self._settings.buffer_size, source=_SOURCE
                )
            )
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            pass  # shutting down: the consumer is gone

    def _reject(self, rejection: Rejection, *, deliver: bool = True) -> None:
        """Journal a rejection now; ``deliver`` also hands it to the consumer."""
        self.rejected += 1
        self._journal.emit(rejection_event(rejection, self._now(), source=_SOURCE))
        if deliver:
            self._offer(rejection, self._send)

    def _now(self) -> datetime:
        return self._clock.now()


def _leaves(exc: BaseException) -> Iterator[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        for sub in exc.exceptions:
            yield from _leaves(sub)
    else:
        yield exc


def _split_url(url: str) -> tuple[str, int, str, bool]:
    """``ws[s]://host[:port]/path?query`` → (host, port, resource, tls).

    Raises:
        ValueError: not a ws/wss URL or no host.
    """
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("ws", "wss"):
        raise ValueError("scheme must be ws or wss")
    if not parts.hostname:
        raise ValueError("no host")
    tls = parts.scheme == "wss"
    port = parts.port or (443 if tls else 80)
    resource = parts.path or "/"
    if parts.query:
        resource += "?" + parts.query
    return parts.hostname, port, resource, tls


_SHAPES = Redactor()


def _safe_url(url: str) -> str:
    """The URL as journaled: a token in its query (``?token=``) or userinfo masked."""
    return _SHAPES.text(url)
