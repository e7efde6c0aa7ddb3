"""A small HTTP/1.1 server on trio streams, using h11 for the protocol.

Just enough for a REST sandbox: keep-alive, Content-Length bodies, one handler coroutine
per request. The handler returns ``(status, headers, body)`` or :data:`DROP` to close the
connection without answering (fault injection: "the request was processed, the reply was
lost").
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Final

import attrs
import h11
import trio

__all__ = ["DROP", "Handler", "HttpReply", "HttpRequest", "serve_http"]

MAX_BODY: Final = 1 << 20


@attrs.frozen
class HttpRequest:
    """One request: ``target`` is the raw request target (path + ``?`` + raw query)."""

    method: str
    target: str
    headers: dict[str, str]
    body: bytes

    @property
    def path(self) -> str:
        return self.target.split("?", 1)[0]

    @property
    def query(self) -> str:
        parts = self.target.split("?", 1)
        return parts[1] if len(parts) == 2 else ""


@attrs.frozen
class HttpReply:
    status: int
    headers: list[tuple[str, str]]
    body: bytes


class _Drop:
    pass


DROP: Final = _Drop()

Handler = Callable[[HttpRequest], Awaitable[HttpReply | _Drop]]


async def _read_event(conn: h11.Connection, stream: trio.abc.Stream) -> object:
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            data = await stream.receive_some(65536)
            conn.receive_data(bytes(data))
            continue
        return event


async def _serve_connection(stream: trio.abc.Stream, handler: Handler) -> None:
    conn = h11.Connection(h11.SERVER)
    try:
        while True:
            event = await _read_event(conn, stream)
            if isinstance(event, h11.ConnectionClosed) or event is h11.PAUSED:
                return
            if not isinstance(event, h11.Request):
                return
            body = bytearray()
            while True:
                ev = await _read_event(conn, stream)
                if isinstance(ev, h11.Data):
                    body += ev.data
                    if len(body) > MAX_BODY:
                        return
                elif isinstance(ev, h11.EndOfMessage):
                    break
                else:
                    return
            request = HttpRequest(
                method=event.method.decode(),
                target=event.target.decode("latin-1"),
                headers={k.decode().lower(): v.decode("latin-1") for k, v in event.headers},
                body=bytes(body),
            )
            reply = await handler(request)
            if isinstance(reply, _Drop):
                return
            headers = [*reply.headers, ("Content-Length", str(len(reply.body)))]
            for data in (
                conn.send(h11.Response(status_code=reply.status, headers=headers)),
                conn.send(h11.Data(data=reply.body)),
                conn.send(h11.EndOfMessage()),
            ):
                if data:
                    await stream.send_all(data)
            if conn.our_state is h11.MUST_CLOSE or conn.their_state is h11.MUST_CLOSE:
                return
            conn.start_next_cycle()
    except (
        h11.RemoteProtocolError,
        h11.LocalProtocolError,
        trio.BrokenResourceError,
        trio.ClosedResourceError,
    ):
        return
    finally:
        with trio.CancelScope(shield=True):
            await stream.aclose()


async def serve_http(
    handler: Handler,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve until cancelled; reports the bound port through ``task_status``."""
    listeners = await trio.open_tcp_listeners(port, host=host)
    bound = listeners[0].socket.getsockname()[1]
    async with trio.open_nursery() as nursery:

        async def accept() -> None:
            async def on_connection(stream: trio.SocketStream) -> None:
                await _serve_connection(stream, handler)

            await trio.serve_listeners(on_connection, listeners)

        nursery.start_soon(accept)
        task_status.started(int(bound))
