"""The account's HTTP surface: a small hand-routed ASGI app served by hypercorn's trio worker.

Routes (docs/ARCHITECTURE.md §10):

==========================  ====  =========================================================
``GET /health``             open  200 ``{"status": "ok", ...}`` or 503 with the reasons
                                  (:class:`~actors.ops.HealthReport`)
``GET /metrics``            open  Prometheus text exposition of the account's registry
``GET /``                   open  the status page (server-rendered HTML, phone readable)
``GET /control/status``     auth  ``tradebot status`` (JSON)
``GET /control/positions``  auth  open positions (JSON list, prices as strings)
``POST /control/pause``     auth  new entries off (optional body ``{"reason": ...}``)
``POST /control/resume``    auth  new entries on
``POST /control/close``     auth  body ``{"symbol": "BTCUSDT", "side": "LONG"|"SHORT",
                                  "fraction": "0.5"?}`` → 200 closed / 409 not closed /
                                  404 no such position
==========================  ====  =========================================================

Auth: ``Authorization: Bearer <token>``, the token from the env var named by
``health.control_token_env``: missing header → 401, wrong token → 403 (compared in constant
time); when that variable is unset every control request gets 403. Bodies are JSON of at
most 64 KiB; a malformed one gets 400 with the reason. The server binds
``health.host:health.port`` (loopback by default); hypercorn's access log is off.
"""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import trio
from hypercorn.config import Config as HyperConfig
from hypercorn.trio import serve
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from actors.ops._control import CommandError, Operator, parse_close_args
from actors.ops._page import render_status_page
from actors.ops._state import OpsState

__all__ = ["OpsApp", "serve_ops"]

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
MAX_BODY = 64 * 1024


class _HttpError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class OpsApp:
    """The ASGI application (see the module docstring).

    Args:
        state: the account's OpsState.
        operator: runs the control commands.
        token: the control API bearer token ("" = control API refuses everything).
    """

    def __init__(self, state: OpsState, operator: Operator, token: str) -> None:
        self.state = state
        self.operator = operator
        self._token = token.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                msg = await receive()
                if msg["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif msg["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        method, path = scope["method"], scope["path"]
        try:
            status, ctype, body = await self._route(method, path, scope, receive)
        except _HttpError as exc:
            status, ctype, body = exc.status, "application/json", _json({"error": str(exc)})
        headers = [
            (b"content-type", ctype.encode()),
            (b"cache-control", b"no-store"),
            (b"x-content-type-options", b"nosniff"),
        ]
        if status == 401:
            headers.append((b"www-authenticate", b'Bearer realm="tradebot"'))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _route(
        self, method: str, path: str, scope: Scope, receive: Receive
    ) -> tuple[int, str, bytes]:
        st = self.state
        if path == "/health" and method == "GET":
            report = await st.refresh()
            return (200 if report.ok else 503), "application/json", _json(report.to_json())
        if path == "/metrics" and method == "GET":
            await st.refresh()
            return 200, CONTENT_TYPE_LATEST, generate_latest(st.registry)
        if path == "/" and method == "GET":
            await st.refresh()
            return 200, "text/html; charset=utf-8", render_status_page(st).encode()
        if path.startswith("/control/"):
            self._authorize(scope)
            op = self.operator
            if path == "/control/status" and method == "GET":
                return 200, "application/json", _json(await op.status())
            if path == "/control/positions" and method == "GET":
                return 200, "application/json", _json(await op.positions())
            if path in ("/control/pause", "/control/resume") and method == "POST":
                body = await _read_json(receive, allow_empty=True)
                reason = body.get("reason", "")
                if not isinstance(reason, str):
                    raise _HttpError(400, "reason: expected a string")
                result = await op.set_paused(path.endswith("pause"), "http", reason[:200])
                return 200, "application/json", _json(result)
            if path == "/control/close" and method == "POST":
                body = await _read_json(receive)
                try:
                    symbol, side, frac = parse_close_args(
                        body.get("symbol"), body.get("side"), body.get("fraction")
                    )
                except CommandError as exc:
                    raise _HttpError(400, str(exc)) from None
                result = await op.close(symbol, side, frac, str(body.get("source", "http"))[:20])
                if not result["ok"] and "position" not in result:
                    code = 404 if result["detail"].startswith("no open position") else 504
                    return code, "application/json", _json(result)
                return (200 if result["ok"] else 409), "application/json", _json(result)
            raise _HttpError(404, f"no control endpoint {method} {path}")
        raise _HttpError(404 if method in ("GET", "POST") else 405, f"no route {method} {path}")

    def _authorize(self, scope: Scope) -> None:
        auth = b""
        for k, v in scope.get("headers", []):
            if k.lower() == b"authorization":
                auth = v
        if not auth:
            raise _HttpError(401, "missing Authorization: Bearer token")
        scheme, _, token = auth.partition(b" ")
        if scheme.lower() != b"bearer" or not token.strip():
            raise _HttpError(401, "expected Authorization: Bearer <token>")
        if not self._token:
            raise _HttpError(403, "control API disabled: its token variable is not set")
        if not hmac.compare_digest(token.strip(), self._token):
            raise _HttpError(403, "wrong token")


def _json(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, default=str).encode()


async def _read_json(receive: Receive, allow_empty: bool = False) -> dict[str, Any]:
    chunks: list[bytes] = []
    size = 0
    while True:
        msg = await receive()
        if msg["type"] == "http.disconnect":
            raise _HttpError(400, "client went away")
        chunk = msg.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY:
            raise _HttpError(413, f"body larger than {MAX_BODY} bytes")
        chunks.append(chunk)
        if not msg.get("more_body"):
            break
    raw = b"".join(chunks)
    if not raw.strip():
        if allow_empty:
            return {}
        raise _HttpError(400, "expected a JSON object body")
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise _HttpError(400, f"body is not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise _HttpError(400, "expected a JSON object body")
    return doc


async def serve_ops(
    app: OpsApp,
    host: str,
    port: int,
    shutdown: trio.Event,
    *,
    task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``app`` on ``host:port`` until ``shutdown`` is set; ``task_status`` gets the
    bound base URL (``http://127.0.0.1:PORT``; port 0 picks a free port).

    Raises:
        OSError: the address cannot be bound.
    """
    cfg = HyperConfig()
    cfg.bind = [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"]
    cfg.accesslog = None
    cfg.errorlog = logging.getLogger("hypercorn.error")
    cfg.graceful_timeout = 2.0

    class _Started:
        def started(self, binds: list[str] | None = None) -> None:
            url = (binds or [f"http://{host}:{port}"])[0]
            task_status.started(url)

    await serve(
        app,  # type: ignore[arg-type]
        cfg,
        shutdown_trigger=shutdown.wait,
        task_status=_Started(),  # type: ignore[arg-type]
    )
