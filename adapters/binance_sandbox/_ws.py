"""The Binance sandbox's WebSocket side: the market and private (listenKey) stream
endpoints, combined-stream URLs, SUBSCRIBE / UNSUBSCRIBE / LIST_SUBSCRIPTIONS and the
listenKey expiry on the private stream."""

from __future__ import annotations

import json
from urllib.parse import parse_qsl

import trio
import trio_websocket

from adapters.binance_sandbox._orders import _SandboxOrders
from adapters.binance_sandbox._records import (
    _WsConn,
)

__all__ = ["_SandboxWs"]


class _SandboxWs(_SandboxOrders):
    """WebSocket endpoints."""

    # --- WebSocket ----------------------------------------------------------------------------

    async def ws_handler(self, request: trio_websocket.WebSocketRequest) -> None:
        path, _, query = request.path.partition("?")
        if path not in ("/market/stream", "/private/stream", "/public/stream"):
            await request.reject(404)
            return
        ws = await request.accept()
        self.ws_accepts.append((trio.current_time(), path))
        conn = _WsConn(ws, private=path == "/private/stream")
        for k, v in parse_qsl(query):
            if k == "streams":
                self._subscribe(conn, v.split("/"))
        self._conns.add(conn)
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._ws_writer, conn, nursery.cancel_scope)
                try:
                    while True:
                        self._ws_message(conn, await ws.get_message())
                except trio_websocket.ConnectionClosed:
                    nursery.cancel_scope.cancel()
        finally:
            self._conns.discard(conn)
            conn.send.close()

    async def _ws_writer(self, conn: _WsConn, scope: trio.CancelScope) -> None:
        try:
            async for text in conn.recv:
                await conn.ws.send_message(text)
        except trio_websocket.ConnectionClosed:
            pass
        scope.cancel()
        with trio.move_on_after(1) as cs:
            cs.shield = True
            await conn.ws.aclose()

    def _stream_ok(self, conn: _WsConn, name: str) -> bool:
        if conn.private:
            if self.lose_listen_key_before_subscribe > 0:
                self.lose_listen_key_before_subscribe -= 1
                self.expire_listen_key(notify=False)
            self._check_listen_key()
            return name == self._listen_key
        if name in ("!markPrice@arr", "!markPrice@arr@1s"):
            return True
        sym, _, kind = name.partition("@")
        return kind in ("markPrice", "markPrice@1s") and sym.upper() in self.engine.instruments()

    def _subscribe(self, conn: _WsConn, names: list[str]) -> str:
        bad = [n for n in names if not self._stream_ok(conn, n)]
        if bad:
            return f"Invalid request: unknown stream or listenKey {bad[0][:16]!r}"
        conn.streams.update(names)
        return ""

    def _ws_message(self, conn: _WsConn, raw: str | bytes) -> None:
        try:
            msg = json.loads(raw)
        except ValueError:
            conn.reply({"error": {"code": 3, "msg": "Invalid JSON: expected value"}, "id": None})
            return
        if not isinstance(msg, dict):
            conn.reply(
                {
                    "error": {"code": 2, "msg": "Invalid request: request must be an object"},
                    "id": None,
                }
            )
            return
        method, params, req_id = msg.get("method"), msg.get("params", []), msg.get("id")
        if not isinstance(params, list) or not all(isinstance(p, str) for p in params):
            conn.reply(
                {
                    "error": {"code": 2, "msg": "Invalid request: params must be strings"},
                    "id": req_id,
                }
            )
            return
        if method == "SUBSCRIBE":
            why = self._subscribe(conn, params)
            if why:
                conn.reply({"error": {"code": 2, "msg": why}, "id": req_id})
                return
            conn.reply({"result": None, "id": req_id})
            if not conn.private:
                for name in params:
                    sym = name.partition("@")[0].upper()
                    if sym in self.engine.instruments():
                        self._push_mark(sym)
        elif method == "UNSUBSCRIBE":
            conn.streams.difference_update(params)
            conn.reply({"result": None, "id": req_id})
        elif method == "LIST_SUBSCRIPTIONS":
            conn.reply({"result": sorted(conn.streams), "id": req_id})
        else:
            conn.reply({"error": {"code": 1, "msg": f"Invalid method {method!r}"}, "id": req_id})
