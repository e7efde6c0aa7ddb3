"""The Binance sandbox's small parts: scripted faults (:class:`Fault`), the request log
(:class:`LoggedRequest`), one WebSocket connection, the API and rate-limit errors, the
client-id rule and the signed-parameter helpers."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl

import attrs
import trio
import trio_websocket

from adapters.bybit_sandbox._http11 import HttpRequest

__all__ = ["Fault", "LoggedRequest"]


_CID_RE = re.compile(r"^[\.A-Z\:/a-z0-9_-]{1,36}$")


_CONDITIONAL_TYPES = frozenset(
    {"STOP", "STOP_MARKET", "TAKE_PROFIT", "TAKE_PROFIT_MARKET", "TRAILING_STOP_MARKET"}
)


_ACTUAL_ID_BASE = 8_000_000_000


def _wall_ms() -> int:
    return time.time_ns() // 1_000_000


class _ApiError(Exception):
    def __init__(self, code: int, msg: str, status: int = 400) -> None:
        super().__init__(msg)
        self.code = code
        self.msg = msg
        self.status = status


def _mandatory(name: str) -> _ApiError:
    return _ApiError(
        -1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed."
    )


@attrs.define
class Fault:
    """An injected behaviour for the next ``times`` requests to ``path`` (any method unless
    ``method`` is set).

    ``drop="before"``: close the connection without processing; ``"after"``: process the
    request (state changes!) and close without replying; ``code``: answer ``http_status``
    (default 400) with ``{"code", "msg"}`` without processing; ``http_status`` alone: answer
    that status (418/429 with ``Retry-After: retry_after_s``; a 418 also bans the IP for
    that long); ``delay_s``: hold the reply (after processing).
    """

    path: str
    method: str | None = None
    code: int | None = None
    msg: str = ""
    drop: str = ""
    times: int = 1
    http_status: int | None = None
    retry_after_s: float = 1.0
    delay_s: float = 0.0


@attrs.define
class LoggedRequest:
    """A request the sandbox received, in arrival order, with how it was answered."""

    seq: int
    method: str
    path: str
    params: dict[str, str]
    t: float  # trio.current_time() at arrival
    status: int = 0
    code: int | None = None
    t_reply: float = 0.0


class _WsConn:
    def __init__(self, ws: trio_websocket.WebSocketConnection, private: bool) -> None:
        self.ws = ws
        self.private = private
        self.streams: set[str] = set()
        self.send, self.recv = trio.open_memory_channel[str](2000)

    def push(self, stream: str, data: Any) -> None:
        try:
            self.send.send_nowait(json.dumps({"stream": stream, "data": data}))
        except (trio.WouldBlock, trio.ClosedResourceError, trio.BrokenResourceError):
            self.send.close()  # slow consumer: drop the connection (writer ends)

    def reply(self, msg: Mapping[str, Any]) -> None:
        try:
            self.send.send_nowait(json.dumps(msg))
        except (trio.WouldBlock, trio.ClosedResourceError, trio.BrokenResourceError):
            self.send.close()


class _RateError(Exception):
    def __init__(
        self, status: int, code: int, msg: str, retry_s: int, headers: list[tuple[str, str]]
    ) -> None:
        super().__init__(msg)
        self.status = status
        self.code = code
        self.msg = msg
        self.retry_s = retry_s
        self.headers = headers


def _without_signature(raw: str) -> str:
    """``raw`` (query string or form body) without its ``signature=...`` parameter."""
    parts = [p for p in raw.split("&") if p and not p.startswith("signature=")]
    return "&".join(parts)


def _params(req: HttpRequest) -> dict[str, str]:
    """Query and form-body parameters (body wins), percent-decoded."""
    out = dict(parse_qsl(req.query, keep_blank_values=True))
    if req.body:
        out.update(parse_qsl(req.body.decode("latin-1"), keep_blank_values=True))
    return out
