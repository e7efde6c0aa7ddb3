"""The Alerter actor: de-duplicated, rate-limited alerts to Telegram, and the Telegram
commands of allowlisted chats (docs/ARCHITECTURE.md §3, §10).

Consumes:
    :class:`RaiseAlert` (from :meth:`Alerter.observe`, the journal-tap observer, and from
    the periodic :class:`CheckNow`), :class:`TelegramCommand` (from the poller task).
Sources of alerts (key — cause):
    ``<reason>`` — an ``alert.raised`` of another component (flatten failed, close failed,
    stop repair failed, ...; already journaled, only sent here); ``emergency_stop`` —
    ``stop.emergency``; ``safe_mode`` — ``bot.safe_mode``; ``reconcile:<kind>`` — reconcile
    findings (untracked, phantom, zombie); ``reconnects:<stream>`` — ``alerts.reconnects_alert``
    drops of one stream within the window; ``unprotected:<symbol>:<side>`` — an open position
    without a verified stop for ``alerts.unprotected_after_s``; ``db_down`` — the database
    down for ``alerts.db_down_after_s``; ``aged_loss:<position>`` — an aged position entered
    its loss phase (STEPPING); ``daily_summary:<date>`` — once a day at
    ``alerts.daily_summary_hour_utc``.
Rules:
    the same key is sent at most once per ``alerts.dedup_window_s``; at most
    ``alerts.max_per_hour`` alerts are sent per rolling hour. A suppressed alert is journaled
    ``alert.suppressed`` with the count so far, and the next alert of that key carries
    ``suppressed_count``. Alerts raised here are journaled ``alert.raised`` (→ the
    ``alerts`` table) when they pass the limits.
Telegram:
    sends go through a bounded outbox drained by one sender task (a full outbox drops the
    message and counts it), so Telegram being slow or down never blocks the loop, the
    journal tap or trading. The poller long-polls ``getUpdates``; commands (``/status``,
    ``/positions``, ``/close SYMBOL SIDE [FRACTION]``, ``/pause``, ``/resume``) are obeyed
    only from the allowlisted chat ids; any other message is ignored and journaled
    (``operator.command`` with ``accepted: false``).
Owns: the dedup and rate-limit state, the outbox, the poll offset.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from datetime import date
from typing import Any, Protocol

import attrs
import trio

from actors.ops._control import CommandError, Operator, parse_close_args
from actors.ops._state import OpsState
from actors.runtime import Actor
from tradebot.config import AlertsConfig
from tradebot.errors import ActorStopped, MailboxFull
from tradebot.events import (
    AlertRaised,
    AlertSuppressed,
    Event,
    EventType,
    OperatorCommand,
    Severity,
)

__all__ = ["Alerter", "ChatPort", "CheckNow", "RaiseAlert", "TelegramCommand"]

E = EventType
_log = logging.getLogger("tradebot.alerts")
_FINDING_KINDS = {
    E.RECONCILE_UNTRACKED: "untracked",
    E.RECONCILE_PHANTOM: "phantom",
    E.ZOMBIE_ORDER: "zombie",
}


class ChatPort(Protocol):
    """What the Alerter needs of a chat service (``adapters.telegram.TelegramBot``)."""

    async def send_message(self, chat_id: str, text: str) -> None: ...

    async def get_updates(self, offset: int, timeout_s: int) -> Sequence[Mapping[str, Any]]: ...


@attrs.frozen
class RaiseAlert:
    """Raise an alert. ``journal``: False for an ``alert.raised`` already journaled by its
    emitter (it is only sent)."""

    key: str
    message: str
    severity: Severity = Severity.WARNING
    reason: str = ""
    position_id: str | None = None
    symbol: str | None = None
    journal: bool = True


@attrs.frozen
class CheckNow:
    """Periodic check (from the health loop): unprotected positions, database outage,
    aged loss phase, daily summary."""


@attrs.frozen
class TelegramCommand:
    """A message from Telegram (``chat_id`` as text, the message ``text``)."""

    chat_id: str
    text: str


@attrs.frozen
class _Reply:
    chat_id: str
    text: str


AlerterMessage = RaiseAlert | CheckNow | TelegramCommand | _Reply


class Alerter(Actor[AlerterMessage]):
    """See the module docstring.

    Args:
        settings: ``[alerts]``.
        state: the account's OpsState (positions, health; its journal and clock).
        operator: runs the Telegram commands.
        chat: the chat port, or None (alerts are then journaled only).
        chat_id: the alert chat (also allowlisted for commands).
        allowed_chat_ids: further allowlisted chats.
        poll_timeout_s: ``getUpdates`` long-poll timeout, seconds.
        outbox_size: messages waiting for the sender at most.
        redact: applied to every outgoing text (secrets never reach the chat).
    """

    mailbox_size = 1000

    def __init__(
        self,
        *,
        settings: AlertsConfig,
        state: OpsState,
        operator: Operator,
        chat: ChatPort | None,
        chat_id: str = "",
        allowed_chat_ids: frozenset[str] = frozenset(),
        poll_timeout_s: int = 25,
        outbox_size: int = 100,
        redact: Callable[[str], str] | None = None,
    ) -> None:
        self.redact: Callable[[str], str] = redact or (lambda text: text)
        self.settings = settings
        self.state = state
        self.operator = operator
        self.chat = chat
        self.chat_id = chat_id
        self.allowed = frozenset({chat_id, *allowed_chat_ids} - {""})
        self.poll_timeout_s = poll_timeout_s
        self._last_sent: dict[str, float] = {}
        self._sent_times: deque[float] = deque()
        self._suppressed: dict[str, int] = {}
        self._own: set[Any] = set()
        self._reconnects: dict[str, deque[float]] = {}
        self._aged_seen: set[str] = set()
        self._summary_day: date | None = None
        self.sent = 0
        self.send_failures = 0
        self.dropped = 0
        self._out_send, self._out_recv = trio.open_memory_channel[tuple[str, str]](outbox_size)

    # --- runtime -----------------------------------------------------------------------

    async def on_start(self) -> None:
        if self.chat is not None:
            self.nursery.start_soon(self._sender)
            self.nursery.start_soon(self._poller)

    def observe(self, ev: Event) -> None:
        """Journal-tap observer: turns alert-worthy events into :class:`RaiseAlert`."""
        msg = self._alert_for(ev)
        if msg is None:
            return
        try:
            self.address.send_nowait(msg)
        except (MailboxFull, ActorStopped, AttributeError):
            self.dropped += 1

    def _alert_for(self, ev: Event) -> RaiseAlert | None:
        t, d = ev.type, ev.data
        if t is E.ALERT_RAISED:
            if ev.event_id in self._own:
                self._own.discard(ev.event_id)
                return None
            return RaiseAlert(
                key=str(d.get("key") or d.get("reason") or "alert"),
                message=str(d.get("message", "")),
                severity=ev.severity,
                reason=str(d.get("reason", "")),
                position_id=ev.position_id,
                symbol=ev.symbol,
                journal=False,
            )
        if t is E.EMERGENCY_STOP_PLACED:
            placed = d.get("stop_price")
            where = f"at {placed}" if placed else "could NOT be placed"
            return RaiseAlert(
                f"emergency_stop:{ev.position_id}",
                f"{ev.symbol} {d.get('position_side', '')}: emergency stop {where}",
                Severity.CRITICAL,
                "emergency_stop",
                ev.position_id,
                ev.symbol,
            )
        if t is E.SAFE_MODE_ENTERED:
            return RaiseAlert(
                "safe_mode",
                f"SAFE MODE: {d.get('reason', '')} — no new entries; stops stay on the exchange",
                Severity.CRITICAL,
                "safe_mode",
            )
        if t in _FINDING_KINDS:
            kind = _FINDING_KINDS[t]
            return RaiseAlert(
                f"reconcile:{kind}:{ev.symbol or ''}",
                f"reconcile found a {kind} {'order' if kind == 'zombie' else 'position'}: "
                f"{ev.symbol or ''} {d.get('position_side', '')}".strip(),
                Severity.ERROR,
                f"reconcile_{kind}",
                ev.position_id,
                ev.symbol,
            )
        if t is E.STREAM_DISCONNECTED and not d.get("planned"):
            name = str(d.get("stream", ""))
            now = trio.current_time()
            window = max(self.settings.dedup_window_s, 600.0)
            q = self._reconnects.setdefault(name, deque())
            q.append(now)
            while q and now - q[0] > window:
                q.popleft()
            if len(q) >= self.settings.reconnects_alert:
                return RaiseAlert(
                    f"reconnects:{name}",
                    f"{name} stream dropped {len(q)} times in {window / 60:.0f} min "
                    f"(last: {d.get('reason', '')})",
                    Severity.WARNING,
                    "stream_reconnects",
                )
        return None

    async def handle(self, message: AlerterMessage) -> object:
        match message:
            case RaiseAlert():
                self._raise(message)
            case CheckNow():
                self._check()
            case TelegramCommand():
                self.nursery.start_soon(self._command, message)
            case _Reply(chat_id=chat_id, text=text):
                self._enqueue(chat_id, text)
        return None

    # --- limits ------------------------------------------------------------------------

    def _raise(self, a: RaiseAlert) -> None:
        now = trio.current_time()
        s = self.settings
        last = self._last_sent.get(a.key)
        while self._sent_times and now - self._sent_times[0] >= 3600:
            self._sent_times.popleft()
        why = ""
        if last is not None and now - last < s.dedup_window_s:
            why = "duplicate"
        elif len(self._sent_times) >= s.max_per_hour:
            why = "rate_limited"
        acct = self.state.account
        if why:
            n = self._suppressed[a.key] = self._suppressed.get(a.key, 0) + 1
            acct.journal.emit(
                Event.of(
                    AlertSuppressed(
                        key=a.key, message=f"{why}: {a.message}"[:500], suppressed_count=n
                    ),
                    acct.clock.now(),
                    severity=Severity.DEBUG,
                    position_id=a.position_id,
                    symbol=a.symbol,
                )
            )
            return
        self._last_sent[a.key] = now
        self._sent_times.append(now)
        suppressed = self._suppressed.pop(a.key, 0)
        if a.journal:
            ev = Event.of(
                AlertRaised(
                    message=a.message,
                    key=a.key,
                    reason=a.reason or a.key.split(":", 1)[0],
                    suppressed_count=suppressed,
                ),
                acct.clock.now(),
                severity=a.severity,
                position_id=a.position_id,
                symbol=a.symbol,
            )
            self._own.add(ev.event_id)
            acct.journal.emit(ev)
        self.state.m_alerts.inc()
        prefix = {"critical": "🚨", "error": "❗", "warning": "⚠️"}.get(a.severity.value, "ℹ️")
        more = f" (+{suppressed} suppressed)" if suppressed else ""
        name = self.state.account_name
        self._enqueue(self.chat_id, f"{prefix} [{name}] {a.message}{more}")

    def _enqueue(self, chat_id: str, text: str) -> None:
        if self.chat is None or not chat_id:
            return
        text = self.redact(text)
        try:
            self._out_send.send_nowait((chat_id, text))
        except trio.WouldBlock:
            self.dropped += 1

    # --- periodic ----------------------------------------------------------------------

    def _check(self) -> None:
        st = self.state
        s = self.settings
        for p in st.positions:
            if p.lifecycle != "ACTIVE":
                continue
            age = p.stop_age_s
            since_start = (st.clock.now() - st.started_at).total_seconds()
            unverified = age if age is not None else since_start
            if p.stop_price is None or unverified > s.unprotected_after_s:
                self._raise(
                    RaiseAlert(
                        f"unprotected:{p.symbol}:{p.side}",
                        f"{p.symbol} {p.side}: no verified stop for {unverified:.0f}s",
                        Severity.CRITICAL,
                        "unprotected",
                        p.position_id,
                        p.symbol,
                    )
                )
            if p.aged_phase == "STEPPING" and p.position_id not in self._aged_seen:
                self._aged_seen.add(p.position_id)
                self._raise(
                    RaiseAlert(
                        f"aged_loss:{p.position_id}",
                        f"{p.symbol} {p.side}: aged position entered its loss phase "
                        f"(exit target {p.aged_target})",
                        Severity.WARNING,
                        "aged_loss",
                        p.position_id,
                        p.symbol,
                    )
                )
        if st.db_down_since is not None:
            down = (st.clock.now() - st.db_down_since).total_seconds()
            if down >= s.db_down_after_s:
                self._raise(
                    RaiseAlert(
                        "db_down",
                        f"journal database down for {down:.0f}s (events spooling to disk)",
                        Severity.ERROR,
                        "db_down",
                    )
                )
        now = st.clock.now()
        if now.hour == s.daily_summary_hour_utc and self._summary_day != now.date():
            self._summary_day = now.date()
            self._raise(
                RaiseAlert(
                    f"daily_summary:{now.date().isoformat()}",
                    f"daily summary: {len(st.positions)} open positions; health "
                    f"{'ok' if st.report.ok else 'UNHEALTHY: ' + '; '.join(st.report.reasons)}"
                    f"; entries {'paused' if st.account.entries.paused else 'on'}",
                    Severity.INFO,
                    "daily_summary",
                )
            )

    # --- Telegram ------------------------------------------------------------------------

    async def _sender(self) -> None:
        assert self.chat is not None
        async for chat_id, text in self._out_recv:
            for attempt in range(3):
                try:
                    with trio.fail_after(15):
                        await self.chat.send_message(chat_id, text)
                    self.sent += 1
                    break
                except (Exception, trio.TooSlowError) as exc:  # Telegram down: never fatal
                    self.send_failures += 1
                    _log.warning("telegram send failed (attempt %d): %s", attempt + 1, exc)
                    await trio.sleep(min(30.0, 2.0**attempt))

    async def _poller(self) -> None:
        assert self.chat is not None
        offset = 0
        failures = 0
        while True:
            try:
                with trio.fail_after(self.poll_timeout_s + 30):
                    updates = await self.chat.get_updates(offset, self.poll_timeout_s)
                failures = 0
            except (Exception, trio.TooSlowError) as exc:
                failures += 1
                _log.warning("telegram getUpdates failed: %s", exc)
                await trio.sleep(min(60.0, 0.5 * math.pow(2, min(failures, 7))))
                continue
            for u in updates:
                uid = u.get("update_id")
                if isinstance(uid, int):
                    offset = max(offset, uid + 1)
                msg = u.get("message")
                if not isinstance(msg, Mapping):
                    continue
                chat = msg.get("chat")
                chat_id = str(chat.get("id", "")) if isinstance(chat, Mapping) else ""
                text = msg.get("text")
                await self.post(TelegramCommand(chat_id, text if isinstance(text, str) else ""))

    async def _command(self, cmd: TelegramCommand) -> None:
        acct = self.state.account
        words = cmd.text.strip().split()
        name = words[0].split("@", 1)[0].lower() if words else ""
        if cmd.chat_id not in self.allowed:
            acct.journal.emit(
                Event.of(
                    OperatorCommand(
                        command=name[:40] or "(message)",
                        args={
                            "chat_id": cmd.chat_id,
                            "accepted": False,
                            "reason": "chat not allowlisted",
                        },
                        source="telegram",
                    ),
                    acct.clock.now(),
                    severity=Severity.WARNING,
                )
            )
            return
        reply = await self._run(name, words[1:])
        await self.post(_Reply(cmd.chat_id, reply))

    async def _run(self, name: str, args: list[str]) -> str:
        op = self.operator
        try:
            if name == "/status":
                s = await op.status()
                h = s["health"]
                return (
                    f"[{s['account']}] {s['mode']}: health {h['status']}"
                    + (f" ({'; '.join(h['reasons'])})" if h["reasons"] else "")
                    + f"; {s['open_positions']} open; entries "
                    + ("PAUSED" if s["entries_paused"] else "on")
                )
            if name == "/positions":
                ps = await op.positions()
                if not ps:
                    return "no open positions"
                return "\n".join(
                    f"{p['symbol']} {p['side']} qty {p['qty']} entry {p['entry_price']} "
                    f"mark {p['mark_price']} stop {p['stop_price']} ({p['distance_pct']}%)"
                    for p in ps
                )
            if name == "/close":
                if len(args) not in (2, 3):
                    return "usage: /close SYMBOL LONG|SHORT [FRACTION]"
                symbol, side, frac = parse_close_args(
                    args[0], args[1], args[2] if len(args) == 3 else None
                )
                r = await op.close(symbol, side, frac, "telegram")
                return ("closed: " if r["ok"] else "not closed: ") + str(r["detail"])
            if name in ("/pause", "/resume"):
                r = await op.set_paused(name == "/pause", "telegram")
                return "entries paused" if r["entries_paused"] else "entries resumed"
        except CommandError as exc:
            return f"error: {exc}"
        return "commands: /status /positions /close SYMBOL SIDE [FRACTION] /pause /resume"
