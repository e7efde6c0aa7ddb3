"""A loopback signal service that publishes a JSON-lines file wave by wave.

For users to test their setup (``tradebot signal-server --replay FILE``) and for tests.
Lines are sent *verbatim* — a hostile line in the file reaches the client exactly as
written (a line that is not UTF-8 goes out as a binary frame) — grouped into waves:
consecutive lines with the same ``"timestamp"`` (or ``"wave_ts"``) value form one wave, and
a line without one joins the current wave. One wave is published every ``interval_s``.

Protocol of this server (what the bot's client expects of the real service):

* Auth: when a token is configured, the handshake must carry
  ``Authorization: Bearer <token>``; otherwise it is refused with HTTP 401.
* A client receives nothing until it sends ``{"type":"subscribe"}``; the server answers
  ``{"type":"subscribed"}`` followed by the most recently published wave (so a client that
  reconnects mid-wave gets the whole wave again; the bot de-duplicates by signal id and
  wave id), then every wave published afterwards.
* ``restamp``: rewrite every timestamp to the current 15-minute wave boundary at publish
  time, so a live bot treats an old file as fresh signals.

Binds 127.0.0.1 by default; port 0 picks a free port, reported via
``task_status.started(port)``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

import trio
from trio_websocket import (
    ConnectionClosed,
    WebSocketConnection,
    WebSocketRequest,
    serve_websocket,
)

from adapters.signals._file import read_frames
from tradebot.signals import wave_floor

__all__ = ["SignalServer", "load_waves"]

Frame = str | bytes
_TS_RE = re.compile(rb'"(?:timestamp|wave_ts)"\s*:\s*"([^"]{0,64})"')
_TS_SUB_RE = re.compile(r'("(?:timestamp|wave_ts)"\s*:\s*)"[^"]{0,64}"')


def load_waves(path: str | Path, max_line_bytes: int = 64 * 1024 * 1024) -> list[list[Frame]]:
    """Read a JSON-lines file into waves of frames (see the module docstring).

    Lines over ``max_line_bytes`` are skipped. Raises ``OSError`` if unreadable.
    """
    waves: list[list[Frame]] = []
    current_ts: bytes | None = None
    for _number, raw in read_frames(path, max_line_bytes):
        if raw is None:
            continue
        m = _TS_RE.search(raw[:4096])
        ts = m.group(1) if m else None
        frame: Frame
        try:
            frame = raw.decode("utf-8")
        except UnicodeDecodeError:
            frame = raw
        if not waves or (ts is not None and ts != current_ts):
            waves.append([])
            if ts is not None:
                current_ts = ts
        waves[-1].append(frame)
    return waves


class _Client:
    def __init__(self, ws: WebSocketConnection) -> None:
        self.ws = ws
        self.subscribed = False
        self.send, self.recv = trio.open_memory_channel[Frame](100_000)


class SignalServer:
    """Publishes waves of frames to subscribed WebSocket clients.

    Args:
        waves: frames per wave, in publishing order (see :func:`load_waves`).
        interval_s: seconds between two waves (the first goes ``start_delay_s`` after
            start).
        start_delay_s: delay before the first wave.
        token: when set, the handshake must carry ``Authorization: Bearer <token>``.
        restamp: rewrite timestamps to the current wave boundary (wall clock) on publish.
        linger_s: after the last wave, keep serving this long then return; None = forever.
        wait_for_subscriber: start publishing (and the start delay) only once the first
            client has subscribed.

    Attributes:
        published: waves published so far.
        connections: handshakes accepted so far.
        refused: handshakes refused (bad or missing token).
    """

    def __init__(
        self,
        waves: Sequence[Sequence[Frame]],
        *,
        interval_s: float = 1.0,
        start_delay_s: float = 0.0,
        token: str | None = None,
        restamp: bool = False,
        linger_s: float | None = None,
        wait_for_subscriber: bool = False,
    ) -> None:
        self._waves = [list(w) for w in waves]
        self._interval_s = interval_s
        self._start_delay_s = start_delay_s
        self._token = token
        self._restamp = restamp
        self._linger_s = linger_s
        self._clients: set[_Client] = set()
        self._current: list[Frame] = []
        self.published = 0
        self.connections = 0
        self.refused = 0
        self.all_published = trio.Event()
        self.first_subscriber = trio.Event()
        self._wait_for_subscriber = wait_for_subscriber

    async def serve(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Listen on ``host:port``, report the bound port, publish, then linger."""
        async with trio.open_nursery() as nursery:
            server = await nursery.start(
                partial(serve_websocket, self._handle, host, port, ssl_context=None)
            )
            task_status.started(server.port)
            if self._wait_for_subscriber:
                await self.first_subscriber.wait()
            await trio.sleep(self._start_delay_s)
            for index, frames in enumerate(self._waves):
                if index:
                    await trio.sleep(self._interval_s)
                self._publish(frames)
            self.all_published.set()
            if self._linger_s is None:
                await trio.sleep_forever()
            await trio.sleep(self._linger_s)
            nursery.cancel_scope.cancel()

    def _publish(self, frames: list[Frame]) -> None:
        if self._restamp:
            stamp = wave_floor(datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
            frames = [
                _TS_SUB_RE.sub(lambda m: f'{m.group(1)}"{stamp}"', f) if isinstance(f, str) else f
                for f in frames
            ]
        self._current = frames
        self.published += 1
        for client in list(self._clients):
            if client.subscribed:
                self._queue(client, frames)

    def _queue(self, client: _Client, frames: list[Frame]) -> None:
        for frame in frames:
            try:
                client.send.send_nowait(frame)
            except (trio.WouldBlock, trio.ClosedResourceError, trio.BrokenResourceError):
                return  # a client that cannot keep up misses frames (test tool)

    def _authorized(self, request: WebSocketRequest) -> bool:
        if not self._token:
            return True
        expected = b"Bearer " + self._token.encode()
        return any(k.lower() == b"authorization" and v == expected for k, v in request.headers)

    async def _handle(self, request: WebSocketRequest) -> None:
        if not self._authorized(request):
            self.refused += 1
            await request.reject(401, body=b"unauthorized")
            return
        ws = await request.accept()
        self.connections += 1
        client = _Client(ws)
        self._clients.add(client)
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._writer, client, nursery.cancel_scope)
                try:
                    while True:
                        message = await ws.get_message()
                        if isinstance(message, str) and '"subscribe"' in message.replace(" ", ""):
                            self._queue(client, ['{"type":"subscribed"}'])
                            client.subscribed = True
                            self.first_subscriber.set()
                            self._queue(client, self._current)
                except ConnectionClosed:
                    nursery.cancel_scope.cancel()
        finally:
            self._clients.discard(client)

    async def _writer(self, client: _Client, scope: trio.CancelScope) -> None:
        try:
            async for frame in client.recv:
                await client.ws.send_message(frame)
        except ConnectionClosed:
            scope.cancel()
