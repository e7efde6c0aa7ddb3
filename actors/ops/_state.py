"""OpsState: what the operations surface knows about a running account — health and the
Prometheus series.

Fed two ways:

* :meth:`OpsState.on_event`, an observer of the :class:`~actors.ops.JournalTap` (stream
  connects/drops/gaps, stop verifications, safe mode, database outages, signals, waves,
  orders, trailing, restarts, reconcile findings) — synchronous and O(1) per event;
* :meth:`OpsState.refresh`, called by the health loop every ``tick_s``: asks the
  PositionSupervisor for each position's status and recomputes the health report and the
  gauges.

Health (``GET /health``; :class:`HealthReport`) is OK when all of these hold, else each
failing check adds a reason:

* ``journal``: the journal database is up, or it is down (events spool to disk) for less
  than ``alerts.db_down_after_s``;
* ``market_stream``: every market stream (``public`` / Binance ``market``) is connected and
  a mark price arrived within ``health.market_stale_s``;
* ``private_stream``: every private stream (``private`` / Binance ``user``) is connected,
  and after its last reconnect (a gap) every open position re-verified its stop;
* ``stops``: every open position's stop was verified on the exchange within
  ``2 × protection.verify_interval_s`` and no position is FAILED;
* ``safe_mode``: the account is not in safe mode.

Times: the account's clock (aware UTC datetimes).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import attrs
import trio
from prometheus_client import CollectorRegistry, Counter, Gauge

from actors.account import Account
from actors.position import PositionStatus
from tradebot.config import AlertsConfig, HealthConfig
from tradebot.domain import PositionSide
from tradebot.events import Event, EventType
from tradebot.policies import PositionSettings, aged_target
from tradebot.ports import Clock

__all__ = ["HealthReport", "OpsState", "PositionView", "stop_distance_pct"]

E = EventType
MARKET_STREAMS = frozenset({"public", "market"})
PRIVATE_STREAMS = frozenset({"private", "user"})
_VERIFY_EVENTS = frozenset(
    {E.PROTECTION_VERIFIED, E.PROTECTION_REPAIRED, E.STOP_CONFIRMED, E.STOP_MOVED}
)
_ORDER_RESULTS: Mapping[EventType, str] = {
    E.ENTRY_ACKED: "accepted",
    E.ENTRY_FILLED: "filled",
    E.ENTRY_REJECTED: "rejected",
    E.ENTRY_OUTCOME_UNKNOWN: "unknown",
    E.ORDER_REJECTED: "rejected",
    E.STOP_REJECTED: "rejected",
    E.ORDER_CANCELLED: "cancelled",
}
_FINDINGS: Mapping[EventType, str] = {
    E.RECONCILE_PHANTOM: "phantom",
    E.RECONCILE_UNTRACKED: "untracked",
    E.ZOMBIE_ORDER: "zombie",
    E.RECONCILE_ADOPTED: "adopted",
}


def stop_distance_pct(mark: Decimal, stop: Decimal) -> Decimal:
    """Distance from the mark to the stop, percent of the mark (positive while the stop is
    on the protective side for either direction is not implied: ``|mark - stop| / mark``)."""
    if mark <= 0:
        return Decimal(0)
    return (abs(mark - stop) / mark * 100).quantize(Decimal("0.0001"))


@attrs.frozen
class PositionView:
    """One open position as the status page, ``/control/positions`` and the CLI show it.

    Prices USDT (strings in JSON), ``distance_pct`` percent of the mark, ``stop_age_s``
    seconds since its stop was last verified (None: not since this process started).
    """

    position_id: str
    symbol: str
    side: str
    lifecycle: str
    qty: Decimal
    entry_price: Decimal | None
    mark_price: Decimal | None
    stop_price: Decimal | None
    distance_pct: Decimal | None
    trailing: str
    aged_phase: str
    aged_target: Decimal | None
    opened_at: datetime | None
    stop_age_s: float | None

    def to_json(self) -> dict[str, Any]:
        def s(v: object) -> Any:
            if v is None:
                return None
            if isinstance(v, datetime):
                return v.isoformat()
            if isinstance(v, Decimal):
                return str(v)
            return v

        return {k: s(v) for k, v in attrs.asdict(self).items()}


@attrs.frozen
class HealthReport:
    """``ok`` and, per check, ``"ok"`` or the reason it fails (``checks``); ``reasons`` lists
    the failing ones as ``"check: reason"``."""

    ok: bool
    checks: Mapping[str, str]
    at: datetime

    @property
    def reasons(self) -> list[str]:
        return [f"{k}: {v}" for k, v in self.checks.items() if v != "ok"]

    def to_json(self) -> dict[str, Any]:
        return {
            "status": "ok" if self.ok else "unhealthy",
            "checks": dict(self.checks),
            "reasons": self.reasons,
            "at": self.at.isoformat(),
        }


@attrs.define
class _Stream:
    connected: bool = False
    since: datetime | None = None
    last_message: datetime | None = None
    gap_at: datetime | None = None
    connects: int = 0


class OpsState:
    """See the module docstring.

    Args:
        account: the running account.
        clock: the account's clock.
        settings: the position settings (``protection.verify_interval_s``, aged schedule).
        health: ``[health]`` settings.
        alerts: ``[alerts]`` settings (``db_down_after_s``).
        account_name: config ``bot.account`` (labels, the status page).
        mode: ``live`` / ``dry-run`` / ``paper`` (the status page).
    """

    def __init__(
        self,
        *,
        account: Account,
        clock: Clock,
        settings: PositionSettings,
        health: HealthConfig,
        alerts: AlertsConfig,
        account_name: str = "",
        mode: str = "",
    ) -> None:
        self.account = account
        self.clock = clock
        self.settings = settings
        self.health_cfg = health
        self.alerts_cfg = alerts
        self.account_name = account_name
        self.mode = mode
        self.started_at = clock.now()
        self.streams: dict[str, _Stream] = {}
        self.verified_at: dict[str, datetime] = {}
        self.safe_mode = ""
        self.db_down_since: datetime | None = None
        self.last_events: list[Event] = []
        self.positions: list[PositionView] = []
        self.report = HealthReport(False, {"startup": "not checked yet"}, self.started_at)
        self._mark_updates = -1
        self._mark_at: datetime | None = None
        self._last_refresh: datetime | None = None
        self._lock = trio.Lock()
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.m_open = Gauge("tradebot_open_positions", "Open positions", registry=r)
        self.m_unprotected = Counter(
            "tradebot_unprotected_seconds",
            "Seconds an open position had no stop verified within 2 x verify interval",
            ["symbol"],
            registry=r,
        )
        self.m_distance = Gauge(
            "tradebot_stop_distance_pct",
            "Distance from mark to stop, percent of mark",
            ["symbol", "side"],
            registry=r,
        )
        self.m_trailing = Counter(
            "tradebot_trailing_activations", "Trailing activations", ["symbol"], registry=r
        )
        self.m_stop_moves = Counter("tradebot_stop_moves", "Stop moves", ["symbol"], registry=r)
        self.m_aged = Gauge(
            "tradebot_aged_positions", "Positions by aged phase", ["phase"], registry=r
        )
        self.m_restarts = Counter(
            "tradebot_actor_restarts", "Actor restarts", ["supervisor"], registry=r
        )
        self.m_reconnects = Counter(
            "tradebot_stream_reconnects", "Stream reconnects", ["stream"], registry=r
        )
        self.m_connected = Gauge(
            "tradebot_stream_connected", "Stream connected (1/0)", ["stream"], registry=r
        )
        self.m_msg_age = Gauge(
            "tradebot_stream_last_message_age_seconds",
            "Seconds since the stream's last message",
            ["stream"],
            registry=r,
        )
        self.m_headroom = Gauge(
            "tradebot_rate_limit_headroom",
            "Rate-limit tokens available now, per budget group",
            ["group"],
            registry=r,
        )
        self.m_rate_limited = Counter(
            "tradebot_rate_limited", "Requests the venue rate-limited", registry=r
        )
        self.m_backlog = Gauge(
            "tradebot_journal_backlog_events", "Events not yet committed", registry=r
        )
        self.m_spool = Gauge("tradebot_journal_spool_bytes", "Spool file size, bytes", registry=r)
        self.m_db_up = Gauge("tradebot_journal_db_up", "Journal database up (1/0)", registry=r)
        self.m_signals = Counter("tradebot_signals_received", "Signals received", registry=r)
        self.m_rejected = Counter(
            "tradebot_signals_rejected", "Signals rejected/filtered", ["reason"], registry=r
        )
        self.m_waves = Counter("tradebot_waves_processed", "Waves processed", registry=r)
        self.m_orders = Counter("tradebot_orders", "Orders by result", ["result"], registry=r)
        self.m_findings = Counter(
            "tradebot_reconcile_findings", "Reconcile findings", ["kind"], registry=r
        )
        self.m_health = Gauge("tradebot_health_ok", "Health check passes (1/0)", registry=r)
        self.m_safe = Gauge("tradebot_safe_mode", "Safe mode (1/0)", registry=r)
        self.m_paused = Gauge("tradebot_entries_paused", "New entries paused (1/0)", registry=r)
        self.m_alerts = Counter("tradebot_alerts_sent", "Alerts sent", registry=r)
        self.m_suppressed = Counter("tradebot_alerts_suppressed", "Alerts suppressed", registry=r)
        for s in ("public", "private"):
            self.m_reconnects.labels(s)
        self.m_orders.labels("filled")
        self.m_findings.labels("untracked")

    # --- events --------------------------------------------------------------------------

    def _stream(self, name: str) -> _Stream:
        st = self.streams.get(name)
        if st is None:
            st = self.streams[name] = _Stream()
        return st

    def on_event(self, ev: Event) -> None:
        """Journal-tap observer (never blocks, never raises for a valid event)."""
        t = ev.type
        d = ev.data
        now = ev.ts
        if ev.severity.value in ("warning", "error", "critical") or t in (
            E.POSITION_ACTIVE,
            E.POSITION_CLOSED,
            E.BOT_PAUSED,
            E.BOT_RESUMED,
        ):
            self.last_events.append(ev)
            del self.last_events[:-20]
        if t is E.STREAM_CONNECTED:
            st = self._stream(str(d.get("stream", "")))
            st.connected, st.since, st.last_message = True, now, now
            st.connects += 1
        elif t in (E.STREAM_DISCONNECTED, E.STREAM_SILENT):
            name = str(d.get("stream", ""))
            st = self._stream(name)
            if st.connected:
                self.m_reconnects.labels(name).inc()
            st.connected, st.since = False, now
        elif t is E.STREAM_GAP:
            self._stream(str(d.get("stream", ""))).gap_at = now
        elif t in (E.ORDER_UPDATE, E.FILL):
            for name in PRIVATE_STREAMS & self.streams.keys():
                self.streams[name].last_message = now
            if t is E.FILL:
                self.m_orders.labels("filled").inc()
        elif t in _VERIFY_EVENTS and ev.position_id:
            self.verified_at[ev.position_id] = now
            if t is E.STOP_MOVED and ev.symbol:
                self.m_stop_moves.labels(ev.symbol).inc()
        elif t in (E.POSITION_CLOSED, E.POSITION_ROLLED_BACK) and ev.position_id:
            self.verified_at.pop(ev.position_id, None)
        elif t is E.SAFE_MODE_ENTERED:
            self.safe_mode = str(d.get("reason", "safe mode"))
        elif t is E.DB_UNAVAILABLE:
            self.db_down_since = self.db_down_since or now
        elif t is E.DB_RECOVERED:
            self.db_down_since = None
        elif t is E.SIGNAL_RECEIVED:
            self.m_signals.inc()
        elif t in (E.SIGNAL_REJECTED, E.SIGNAL_FILTERED):
            self.m_rejected.labels(str(d.get("reason", "")).split(":", 1)[0][:60]).inc()
        elif t is E.WAVE_COMPLETED:
            self.m_waves.inc()
        elif t is E.TRAILING_ACTIVATED and ev.symbol:
            self.m_trailing.labels(ev.symbol).inc()
        elif t is E.ACTOR_RESTARTED:
            self.m_restarts.labels(str(d.get("supervisor", "") or "position")).inc()
        elif t is E.RATE_LIMITED:
            self.m_rate_limited.inc()
        elif t is E.ALERT_SUPPRESSED:
            self.m_suppressed.inc()
        if t in _ORDER_RESULTS:
            self.m_orders.labels(_ORDER_RESULTS[t]).inc()
        if t in _FINDINGS:
            self.m_findings.labels(_FINDINGS[t]).inc()

    # --- periodic ------------------------------------------------------------------------

    async def refresh(self) -> HealthReport:
        """Ask the positions for their status, recompute gauges and the health report
        (one refresh at a time; a caller arriving meanwhile gets the fresh result)."""
        async with self._lock:
            return await self._refresh()

    async def _refresh(self) -> HealthReport:
        now = self.clock.now()
        dt = (now - self._last_refresh).total_seconds() if self._last_refresh else 0.0
        self._last_refresh = now
        acct = self.account
        statuses = await acct.positions.statuses()
        self.positions = [self._view(s, now) for s in statuses]
        open_ = [p for p in self.positions if p.lifecycle not in ("CLOSED", "ROLLED_BACK")]
        self.m_open.set(len(open_))
        limit = 2 * self.settings.protection.verify_interval_s
        self.m_distance.clear()
        phases: dict[str, int] = {"NOT_AGED": 0, "BREAKEVEN": 0, "STEPPING": 0, "MARKET_CLOSE": 0}
        stale_stops: list[str] = []
        for p in open_:
            phases[p.aged_phase] = phases.get(p.aged_phase, 0) + 1
            if p.distance_pct is not None:
                self.m_distance.labels(p.symbol, p.side).set(float(p.distance_pct))
            if p.lifecycle == "FAILED":
                stale_stops.append(f"{p.symbol} {p.side} FAILED")
            elif p.lifecycle == "ACTIVE" and (
                p.stop_price is None or p.stop_age_s is None or p.stop_age_s > limit
            ):
                stale_stops.append(
                    f"{p.symbol} {p.side} stop not verified for "
                    + ("ever" if p.stop_age_s is None else f"{p.stop_age_s:.0f}s")
                    + f" (limit {limit:g}s)"
                )
                if dt > 0:
                    self.m_unprotected.labels(p.symbol).inc(dt)
        for ph, n in phases.items():
            self.m_aged.labels(ph).set(n)
        # market freshness from the router's delivery counter
        updates = acct.market.updates
        if updates != self._mark_updates:
            self._mark_updates, self._mark_at = updates, now
        for name, st in self.streams.items():
            self.m_connected.labels(name).set(1 if st.connected else 0)
            last = self._mark_at if name in MARKET_STREAMS else st.last_message
            if last is not None:
                self.m_msg_age.labels(name).set(max(0.0, (now - last).total_seconds()))
        self._journal_gauges()
        for group, tokens in rate_headroom(acct.port).items():
            self.m_headroom.labels(group).set(tokens)
        self.m_paused.set(1 if acct.entries.paused else 0)
        self.m_safe.set(1 if self.safe_mode else 0)
        checks = {
            "journal": self._journal_check(now),
            "market_stream": self._market_check(now),
            "private_stream": self._private_check(open_, now),
            "stops": "ok" if not stale_stops else "; ".join(stale_stops),
            "safe_mode": "ok" if not self.safe_mode else f"in safe mode: {self.safe_mode}",
        }
        self.report = HealthReport(all(v == "ok" for v in checks.values()), checks, now)
        self.m_health.set(1 if self.report.ok else 0)
        return self.report

    def _view(self, s: PositionStatus, now: datetime) -> PositionView:
        phase, target = "NOT_AGED", None
        actor = self.account.positions.actor(s.symbol, s.position_side)
        if s.opened_at is not None and s.entry_price is not None and actor is not None:
            try:
                t = aged_target(
                    opened_at=s.opened_at,
                    now=now,
                    entry_price=s.entry_price,
                    side=s.position_side,
                    instrument=actor.instrument,
                    settings=self.settings.aged,
                )
                phase, target = t.phase.value, t.price
            except ValueError:
                pass
        verified = max(
            (t for t in (self.verified_at.get(s.position_id), s.stop_verified_at) if t),
            default=None,
        )
        return PositionView(
            position_id=s.position_id,
            symbol=s.symbol,
            side=s.position_side.value,
            lifecycle=s.lifecycle.value,
            qty=s.qty,
            entry_price=s.entry_price,
            mark_price=s.mark_price,
            stop_price=s.stop_price,
            distance_pct=(
                stop_distance_pct(s.mark_price, s.stop_price)
                if s.mark_price is not None and s.stop_price is not None
                else None
            ),
            trailing=s.trailing.phase.value,
            aged_phase=phase,
            aged_target=target,
            opened_at=s.opened_at,
            stop_age_s=None if verified is None else (now - verified).total_seconds(),
        )

    def _journal_gauges(self) -> None:
        j: Any = self.account.journal
        is_up = getattr(j, "is_up", None)
        self.m_db_up.set(1 if (is_up if isinstance(is_up, bool) else True) else 0)
        backlog = getattr(j, "backlog", None)
        if isinstance(backlog, int):
            self.m_backlog.set(backlog)
        spool = getattr(j, "spool_path", None)
        try:
            self.m_spool.set(spool.stat().st_size if spool is not None else 0)
        except (OSError, AttributeError):
            self.m_spool.set(0)

    def _journal_check(self, now: datetime) -> str:
        if self.db_down_since is None:
            return "ok"
        down = (now - self.db_down_since).total_seconds()
        if down < self.alerts_cfg.db_down_after_s:
            return "ok"
        return f"database down for {down:.0f}s (events spooling to disk)"

    def _market_check(self, now: datetime) -> str:
        names = [n for n in self.streams if n in MARKET_STREAMS]
        if not names:
            return "ok" if self.mode == "paper" else "market stream not connected yet"
        bad = [n for n in names if not self.streams[n].connected]
        if bad:
            return f"{', '.join(bad)} stream disconnected"
        stale = timedelta(seconds=self.health_cfg.market_stale_s)
        last = self._mark_at
        if last is None or now - last > stale:
            return f"no mark price for more than {self.health_cfg.market_stale_s:g}s"
        return "ok"

    def _private_check(self, open_: Sequence[PositionView], now: datetime) -> str:
        names = [n for n in self.streams if n in PRIVATE_STREAMS]
        if not names:
            return "ok" if self.mode == "paper" else "private stream not connected yet"
        bad = [n for n in names if not self.streams[n].connected]
        if bad:
            return f"{', '.join(bad)} stream disconnected"
        for n in names:
            gap = self.streams[n].gap_at
            if gap is None:
                continue
            waiting = [
                f"{p.symbol} {p.side}"
                for p in open_
                if p.lifecycle == "ACTIVE"
                and (p.stop_age_s is None or now - timedelta(seconds=p.stop_age_s) < gap)
            ]
            if waiting:
                return f"{n} stream reconnected; stops not re-verified yet: {', '.join(waiting)}"
        return "ok"

    def summary(self) -> dict[str, Any]:
        """Everything ``tradebot status`` shows (JSON-safe)."""
        return {
            "account": self.account_name,
            "mode": self.mode,
            "started_at": self.started_at.isoformat(),
            "health": self.report.to_json(),
            "entries_paused": self.account.entries.paused,
            "safe_mode": self.safe_mode,
            "open_positions": len(self.positions),
            "streams": {
                n: {"connected": s.connected, "connects": s.connects}
                for n, s in sorted(self.streams.items())
            },
        }

    def find(self, symbol: str, side: PositionSide) -> PositionView | None:
        for p in self.positions:
            if p.symbol == symbol and p.side == side.value:
                return p
        return None


def rate_headroom(port: object) -> dict[str, float]:
    """Rate-limit tokens available per budget group of a venue adapter, when it exposes
    them (``port.rate_headroom()``, or the Bybit/Binance ``port.http.budgets``); {} else."""
    fn = getattr(port, "rate_headroom", None)
    if callable(fn):
        return dict(fn())
    budgets = getattr(getattr(getattr(port, "http", None), "budgets", None), "budgets", None)
    out: dict[str, float] = {}
    if isinstance(budgets, Mapping):
        for group, b in budgets.items():
            avail = getattr(b, "available", None)
            if callable(avail):
                out[str(group)] = float(avail())
    return out
