"""The Bybit sandbox's WebSocket side: the public and private stream endpoints, ping/pong,
subscriptions with topic checks and the private stream's auth."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import trio
import trio_websocket

from adapters.bybit_sandbox._records import (
    _wall_ms,
    _WsConn,
)
from adapters.bybit_sandbox._trading import _SandboxTrading

__all__ = ["_SandboxWs"]


class _SandboxWs(_SandboxTrading):
    """WebSocket endpoints."""

    # --- WebSocket ----------------------------------------------------------------------------

    async def ws_handler(self, request: trio_websocket.WebSocketRequest) -> None:
        path = request.path.split("?", 1)[0]
        if path not in ("/v5/public/linear", "/v5/private"):
            await request.reject(404)
            return
        ws = await request.accept()
        self.ws_accepts.append(trio.current_time())
        if self.ws_close_on_accept:
            await ws.aclose(code=1001, reason="sandbox: going away")
            return
        conn = _WsConn(ws, private=path == "/v5/private")
        if conn.private:
            self.private_connections += 1
        self._conns.add(conn)
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._ws_writer, conn, nursery.cancel_scope)
                try:
                    while True:
                        raw = await ws.get_message()
                        if self.ws_latency_s > 0:
                            await trio.sleep(self.ws_latency_s)
                        self._ws_message(conn, raw)
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

    def _ws_message(self, conn: _WsConn, raw: str | bytes) -> None:
        try:
            msg = json.loads(raw)
        except ValueError:
            conn.push(
                {"success": False, "ret_msg": "error:invalid op", "conn_id": conn.conn_id, "op": ""}
            )
            return
        if not isinstance(msg, dict):
            return
        op = msg.get("op")
        req_id = msg.get("req_id", "")
        if op == "ping":
            if conn.private:
                conn.push(
                    {
                        "req_id": req_id,
                        "op": "pong",
                        "args": [str(_wall_ms())],
                        "conn_id": conn.conn_id,
                    }
                )
            else:
                conn.push(
                    {
                        "success": True,
                        "ret_msg": "pong",
                        "conn_id": conn.conn_id,
                        "req_id": req_id,
                        "op": "ping",
                    }
                )
            return
        if op == "auth":
            ok, why = self._ws_auth(msg.get("args"))
            conn.authed = conn.authed or ok
            conn.push(
                {
                    "req_id": req_id,
                    "success": ok,
                    (self.ws_auth_error_key if not ok else "ret_msg"): why,
                    "op": "auth",
                    "conn_id": conn.conn_id,
                }
            )
            return
        if op in ("subscribe", "unsubscribe"):
            args = msg.get("args")
            if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
                conn.push(
                    {
                        "success": False,
                        "ret_msg": "error:args invalid",
                        "op": op,
                        "req_id": req_id,
                        "conn_id": conn.conn_id,
                    }
                )
                return
            bad = [a for a in args if not self._topic_ok(conn, a)]
            if conn.private and not conn.authed:
                conn.push(
                    {
                        "success": False,
                        "ret_msg": "Request not authorized",
                        "op": op,
                        "req_id": req_id,
                        "conn_id": conn.conn_id,
                    }
                )
                return
            if bad:
                conn.push(
                    {
                        "success": False,
                        "ret_msg": f"error:handler not found,topic:{bad[0]}",
                        "op": op,
                        "req_id": req_id,
                        "conn_id": conn.conn_id,
                    }
                )
                return
            reply: dict[str, Any] = {
                "success": True,
                "ret_msg": "",
                "conn_id": conn.conn_id,
                "req_id": req_id,
                "op": op,
            }
            conn.push(reply)
            for a in args:
                if op == "unsubscribe":
                    conn.topics.discard(a)
                    continue
                conn.topics.add(a)
                if not conn.private:
                    sym = a.removeprefix("tickers.")
                    if self.engine.mark_price(sym) is not None:
                        snap = self._tickers.setdefault(sym, self._ticker_snapshot(sym))
                        conn.push(
                            {
                                "topic": a,
                                "type": "snapshot",
                                "data": dict(snap),
                                "cs": next(self._cs),
                                "ts": _wall_ms(),
                            }
                        )
            return
        conn.push(
            {
                "success": False,
                "ret_msg": f"error:unknown op {op!r}",
                "conn_id": conn.conn_id,
                "op": str(op),
            }
        )

    def _topic_ok(self, conn: _WsConn, topic: str) -> bool:
        if topic in self.refused_topics:
            return False
        if conn.private:
            return topic in (
                "order",
                "execution",
                "position",
                "wallet",
                "order.linear",
                "execution.linear",
                "position.linear",
            )
        return (
            topic.startswith("tickers.")
            and topic.removeprefix("tickers.") in self.engine.instruments()
        )

    def _ws_auth(self, args: object) -> tuple[bool, str]:
        if not isinstance(args, list) or len(args) != 3:
            return False, "Params Error"
        key, expires, signature = args
        if key != self.api_key:
            return False, "Invalid apikey"
        try:
            exp = int(expires)
        except (TypeError, ValueError):
            return False, "Params Error"
        if exp <= _wall_ms():
            return False, "Request expired"
        expected = hmac.new(
            self.api_secret.encode(), f"GET/realtime{exp}".encode(), hashlib.sha256
        ).hexdigest()
        if not isinstance(signature, str) or not hmac.compare_digest(expected, signature):
            return False, "Invalid sign"
        return True, ""
