"""The Alerter against a loopback stand-in for the Telegram Bot API (a small ASGI server on
127.0.0.1 speaking ``sendMessage`` / ``getUpdates``), inside a live-like account (real
Bybit adapter ↔ sandbox, PostgreSQL journal).

Shows: while the Bot API hangs, the account still opens a position and trails its stop, and
the alert queued meanwhile arrives once the API is back; alerts are de-duplicated within
``dedup_window_s`` and capped at ``max_per_hour`` (the rest journaled ``alert.suppressed``);
raised alerts land in the ``alerts`` table; commands from allowlisted chats work
(``/status``, ``/positions``, ``/close``), a command from another chat is ignored and
journaled; no secret reaches a message, the journal or the alerts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import attrs
import psycopg
import trio
from _bybit_support import D, until
from _ops_support import TELEGRAM_TOKEN, ops_session, request_for, secrets_in

from actors.ops import RaiseAlert
from actors.ops._http import serve_ops
from adapters.telegram import TelegramBot
from tradebot.config import AlertsConfig
from tradebot.domain import PositionSide
from tradebot.events import Event, SafeModeEntered, Severity

LONG = PositionSide.LONG


@attrs.define
class FakeBotApi:
    """ASGI stand-in of the Bot API for one token."""

    token: str
    sent: list[dict[str, Any]] = attrs.Factory(list)
    updates: list[dict[str, Any]] = attrs.Factory(list)
    hang: bool = False
    bad_token_calls: int = 0
    _next_id: int = 1

    def say(self, chat_id: int, text: str) -> None:
        self.updates.append(
            {"update_id": self._next_id, "message": {"chat": {"id": chat_id}, "text": text}}
        )
        self._next_id += 1

    def texts(self, chat_id: str) -> list[str]:
        return [m["text"] for m in self.sent if str(m["chat_id"]) == chat_id]

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            if scope["type"] == "lifespan":
                while True:
                    m = await receive()
                    await send({"type": m["type"] + ".complete"})
                    if m["type"] == "lifespan.shutdown":
                        return
            return
        body = b""
        while True:
            m = await receive()
            body += m.get("body", b"")
            if not m.get("more_body"):
                break
        prefix = f"/bot{self.token}/"
        path = scope["path"]
        if not path.startswith(prefix):
            self.bad_token_calls += 1
            return await _reply(send, 401, {"ok": False, "description": "Unauthorized"})
        method = path[len(prefix) :]
        doc = json.loads(body or b"{}")
        while self.hang:  # noqa: ASYNC110 (a test switch, polled)
            await trio.sleep(0.05)
        if method == "sendMessage":
            self.sent.append(doc)
            return await _reply(send, 200, {"ok": True, "result": {"message_id": len(self.sent)}})
        if method == "getUpdates":
            with trio.move_on_after(min(float(doc.get("timeout", 0)), 0.3)):
                while not [u for u in self.updates if u["update_id"] >= doc.get("offset", 0)]:  # noqa: ASYNC110
                    await trio.sleep(0.02)
            out = [u for u in self.updates if u["update_id"] >= doc.get("offset", 0)]
            return await _reply(send, 200, {"ok": True, "result": out})
        return await _reply(send, 404, {"ok": False, "description": "Not Found"})


async def _reply(send: Any, status: int, doc: Any) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": json.dumps(doc).encode()})


async def test_alerts_dedup_rate_limit_commands_and_telegram_down(
    fresh_db_dsn: str, tmp_path: Path
) -> None:
    api = FakeBotApi(TELEGRAM_TOKEN)
    alerts = AlertsConfig(
        enabled=True,
        telegram_api_url="http://127.0.0.1:1",  # the client below is pointed at the stand-in
        dedup_window_s=300,
        max_per_hour=4,
        command_chat_ids="1002",
    )
    with trio.fail_after(120):
        async with trio.open_nursery() as nursery:
            stop_api = trio.Event()
            api_url = await nursery.start(serve_ops, api, "127.0.0.1", 0, stop_api)  # type: ignore[arg-type]
            bot = TelegramBot(api_url, TELEGRAM_TOKEN, timeout_s=1.0)
            try:
                async with ops_session(
                    fresh_db_dsn, tmp_path / "spool", chat=bot, chat_id="1001", alerts=alerts
                ) as s:
                    await _scenario(s, api)
            finally:
                await bot.aclose()
                stop_api.set()
    # journal and alerts table
    with psycopg.connect(fresh_db_dsn) as conn:
        rows = conn.execute("SELECT type, data, data::text FROM events").fetchall()
        table = conn.execute("SELECT alert_key, message, suppressed_count FROM alerts").fetchall()
    assert [r for r in rows if secrets_in(r[2])] == []
    assert [t for t in table if secrets_in(t[1])] == []
    keys = sorted(k for k, _, _ in table)
    assert keys == ["k0", "k1", "k2", "safe_mode"]
    suppressed = [d for t, d, _ in rows if t == "alert.suppressed"]
    assert sorted(d["key"] for d in suppressed) == ["k1", "k1", "k3"]
    assert [d["message"].split(":")[0] for d in suppressed if d["key"] == "k3"] == ["rate_limited"]
    ignored = [
        d
        for t, d, _ in rows
        if t == "operator.command"
        and d["source"] == "telegram"
        and d["args"].get("accepted") is False
    ]
    assert len(ignored) == 1 and ignored[0]["args"]["chat_id"] == "999"
    assert ignored[0]["command"] == "/pause"
    for m in api.sent:
        assert secrets_in(m["text"]) == []
    assert api.bad_token_calls == 0


async def _scenario(s: Any, api: FakeBotApi) -> None:
    sb, account, ops = s.sb, s.account, s.ops
    alerter = ops.alerter
    # 1. the Bot API hangs: trading goes on, the alert waits
    api.hang = True
    await alerter.send(RaiseAlert("k0", "first alert while telegram hangs"))
    outcome = await account.positions.open_position(request_for("BTCUSDT", LONG, "0.010", "100000"))
    assert outcome.opened, outcome
    sb.set_mark("BTCUSDT", D("101600"))
    await until(lambda: sb.engine.position("BTCUSDT", LONG).stop_price == D("101092.000"))
    assert api.sent == []
    api.hang = False
    await until(lambda: any("first alert" in t for t in api.texts("1001")), timeout_s=20)

    # 2. de-duplication and the hourly cap (4, k0 counted): safe_mode, k1 (x3 → 1), k2 sent;
    # k3 capped
    account.journal.emit(
        Event.of(
            SafeModeEntered(reason="test: restart intensity exceeded"),
            account.clock.now(),
            severity=Severity.CRITICAL,
        )
    )
    await until(lambda: any("SAFE MODE" in t for t in api.texts("1001")))
    for _ in range(3):
        await alerter.send(RaiseAlert("k1", "duplicate me"))
    await alerter.send(RaiseAlert("k2", "second key"))
    await alerter.send(RaiseAlert("k3", "over the hourly cap"))
    await until(lambda: any("second key" in t for t in api.texts("1001")))
    # 3. commands: allowlisted chats 1001 (alert chat) and 1002; 999 is a stranger
    api.say(999, "/pause")
    api.say(1001, "/status")
    api.say(1002, "/positions")
    await until(
        lambda: len(api.texts("1002")) == 1 and any(" health " in t for t in api.texts("1001")),
        20,
    )
    assert len(api.texts("1001")) == 5, api.texts("1001")  # 4 alerts + the /status reply
    assert "BTCUSDT LONG" in api.texts("1002")[0]
    assert not account.entries.paused  # the stranger's /pause was ignored
    api.say(1002, "/close BTCUSDT LONG")
    await until(lambda: len(api.texts("1002")) == 2, 20)
    assert api.texts("1002")[1].startswith("closed")
    assert sb.engine.position("BTCUSDT", LONG).qty == 0
    texts = api.texts("1001")
    assert sum("duplicate me" in t for t in texts) == 1
    assert not any("over the hourly cap" in t for t in texts)
    assert api.texts("999") == []
    await s.tap.flush()
