"""Payloads of the process itself: bot lifecycle, supervision, streams, journal, alerts,
operator commands."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

import attrs

from tradebot.events._base import Payload, PositionScoped, payload
from tradebot.events._catalog import EventType as E

__all__ = [
    "ChildCrashed",
    "ChildGaveUp",
    "ChildRestarted",
    "ChildStarted",
    "ChildStopped",
    "AlertRaised",
    "AlertSuppressed",
    "BotPaused",
    "BotResumed",
    "BotStarted",
    "BotStopped",
    "BotStopping",
    "ConfigLoaded",
    "DbRecovered",
    "DbServerRestart",
    "DbUnavailable",
    "EventSchemaErrorRecorded",
    "MarkRejected",
    "OperatorCommand",
    "SafeModeEntered",
    "SpoolKeptAside",
    "SpoolReplayed",
    "StartupStep",
    "StreamConnected",
    "StreamDisconnected",
    "StreamGapped",
    "StreamSilent",
    "Supervision",
]

# -- bot lifecycle -------------------------------------------------------------------------


@payload(E.BOT_STARTED)
@attrs.frozen(kw_only=True)
class BotStarted(Payload):
    """The bot (or a paper/replay run) started.

    Attributes:
        mode: ``"paper"`` (replay in virtual time), ``"dry-run"`` or ``"live"``.
        venue_profile: the venue the run behaves like (``"bybit"``, ``"binance"``).
        account: config ``bot.account``, when known.
        window_start / window_end: the replayed time window (paper), aware UTC.
        symbols: the instruments traded.
        wallet_usdt: starting wallet balance of a paper run, USDT.
        instrument_sources: symbol → where its instrument rules came from (``bundled``,
            ``data-dir``, ``derived``; paper).
        signals: the signal source (a file path, ``generate`` or a ``ws://`` URL).
        symbols_left_out: symbol → why it is not replayed (no candle in the window; paper).
    """

    mode: str
    venue_profile: str = ""
    account: str = ""
    window_start: datetime | None = None
    window_end: datetime | None = None
    symbols: tuple[str, ...] = ()
    wallet_usdt: Decimal | None = None
    instrument_sources: Mapping[str, str] = attrs.field(factory=dict)
    signals: str = ""
    symbols_left_out: Mapping[str, str] = attrs.field(factory=dict)


@payload(E.BOT_STOPPING)
@attrs.frozen(kw_only=True)
class BotStopping(Payload):
    """Graceful stop begun: no new entries; ``open_positions`` keep their exchange stops."""

    reason: str
    open_positions: int | None = None


@payload(E.BOT_STOPPED)
@attrs.frozen(kw_only=True)
class BotStopped(Payload):
    """The bot stopped (the journal drains after this event).

    Attributes:
        reason: why (``replay finished``, ``error``, ``interrupted``, ...).
        error: the error that stopped it (``Type: message``), "" when it ended normally.
        open_positions: positions still open when it stopped (they keep their stops), when
            known.
    """

    reason: str
    error: str = ""
    open_positions: int | None = None


@payload(E.SAFE_MODE_ENTERED)
@attrs.frozen(kw_only=True)
class SafeModeEntered(Payload):
    """Safe mode (docs/ARCHITECTURE.md §3, §10): restart intensity exceeded, repeated
    authentication failures or the journal beyond its spool limit → no new entries, alert,
    every stop verified, exit non-zero (3) so systemd restarts the process.

    Attributes:
        reason: ``restart_intensity``, ``authentication`` or ``journal_unreachable``.
        supervisor / child: who gave up (restart intensity), "" otherwise.
        error: the error that caused it (``Type: message``).
        positions: open positions found on the venue when the stops were verified (None:
            the venue could not be asked).
        protected: of those, how many have a stop on the venue.
        unprotected: ``SYMBOL:SIDE`` of the positions without a stop (an alert each).
    """

    reason: str
    supervisor: str = ""
    child: str = ""
    error: str = ""
    positions: int | None = None
    protected: int | None = None
    unprotected: tuple[str, ...] = ()


@payload(E.BOT_STARTUP_STEP)
@attrs.frozen(kw_only=True)
class StartupStep(Payload):
    """One step of the ``tradebot run`` start-up sequence (docs/ARCHITECTURE.md §10), in
    order: ``config``, ``lock``, ``schema``, ``venue_clock``, ``authentication``,
    ``instruments``, ``account_setup``, ``reconciliation``, ``signals``.

    Steps before the journal could open (config, lock, schema) are journaled once it is
    open, with the time they happened.

    Attributes:
        step: the step's name (above).
        status: ``ok``, ``skipped`` (not part of this mode, e.g. authentication in dry-run)
            or ``failed`` (the process exits after it).
        detail: what was found or done, for a human (no secrets).
        elapsed_ms: how long the step took, milliseconds (>= 0).
        exit_code: with ``failed``: the process exit code (1 venue/database, 2 config or
            credentials).
    """

    step: str
    status: Literal["ok", "skipped", "failed"]
    detail: str = ""
    elapsed_ms: float | None = None
    exit_code: int | None = None


@payload(E.BOT_PAUSED)
@attrs.frozen(kw_only=True)
class BotPaused(Payload):
    """New entries are off (``tradebot pause``, ``/pause``): waves are still collected and
    their signals journaled ``signal.filtered`` with reason ``entries_paused``; open
    positions are managed as before (stops, trailing, exits).

    Attributes:
        source: who asked (``http``, ``cli``, ``telegram``, ...).
        reason: free text from the operator, "" when none.
    """

    source: str = ""
    reason: str = ""


@payload(E.BOT_RESUMED)
@attrs.frozen(kw_only=True)
class BotResumed(Payload):
    """New entries are on again (``tradebot resume``, ``/resume``); ``source``/``reason``
    as in :class:`BotPaused`."""

    source: str = ""
    reason: str = ""


@payload(E.CONFIG_LOADED)
@attrs.frozen(kw_only=True)
class ConfigLoaded(Payload):
    """A configuration was loaded (secrets never included).

    Attributes:
        account: config ``bot.account``.
        path: the TOML file, "" for built-in defaults.
        mode: config ``bot.mode``.
        venue: config ``exchange.venue``.
    """

    account: str
    path: str = ""
    mode: str = ""
    venue: str = ""


# -- supervision (actors.runtime) ----------------------------------------------------------


@attrs.frozen(kw_only=True)
class Supervision(Payload):
    """What happened to a supervised child (``actors.runtime.SupervisionEvent``).

    Attributes:
        kind: ``started``, ``crashed``, ``restarted``, ``gave_up``, ``stopped`` or
            ``cancelled_on_stop``.
        supervisor / child: names.
        attempt: restart number within the restart window (restarted / gave_up).
        delay_s: backoff waited before this start, seconds (restarted).
        error: ``repr`` of the exception (crashed / gave_up).
        traceback: the formatted traceback (crashed).
        leftover_messages: queued messages dropped unhandled (stopped).
        in_flight_cancelled: a message was being handled and was cancelled on stop.
        reason: human-readable detail.
    """

    kind: Literal["started", "crashed", "restarted", "gave_up", "stopped", "cancelled_on_stop"]
    supervisor: str
    child: str
    attempt: int = 0
    delay_s: float = 0.0
    error: str = ""
    traceback: str = ""
    leftover_messages: int = 0
    in_flight_cancelled: bool = False
    reason: str = ""


@payload(E.ACTOR_STARTED)
@attrs.frozen(kw_only=True)
class ChildStarted(Supervision):
    """A child's ``on_start`` returned; it handles messages now."""


@payload(E.ACTOR_CRASHED)
@attrs.frozen(kw_only=True)
class ChildCrashed(Supervision):
    """A child raised; ``error`` and ``traceback`` say what."""


@payload(E.ACTOR_GAVE_UP)
@attrs.frozen(kw_only=True)
class ChildGaveUp(Supervision):
    """Restart intensity exceeded: the supervisor escalates."""


@payload(E.ACTOR_STOPPED)
@attrs.frozen(kw_only=True)
class ChildStopped(Supervision):
    """A child ended for good (``kind`` ``stopped`` or ``cancelled_on_stop``)."""


@payload(E.ACTOR_RESTARTED)
@attrs.frozen(kw_only=True)
class ChildRestarted(PositionScoped):
    """A child is being started again.

    Two emitters: the supervisor (the :class:`Supervision` fields, ``kind`` = restarted)
    and a PositionActor that recovered from its snapshot (``lifecycle``, ``water_mark``).

    Attributes:
        lifecycle: the recovered PositionActor's lifecycle state (``ACTIVE`` ...).
        water_mark: its recovered trailing high/low-water mark, USDT.
    """

    kind: str = ""
    supervisor: str = ""
    child: str = ""
    attempt: int = 0
    delay_s: float = 0.0
    error: str = ""
    traceback: str = ""
    leftover_messages: int = 0
    in_flight_cancelled: bool = False
    reason: str = ""
    lifecycle: str = ""
    water_mark: Decimal | None = None


# -- streams ---------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class _Stream(Payload):
    """Attributes: stream: the stream's name (``public``, ``private``, ``signals``,
    ``market``, ``user``); url: its WebSocket URL; venue: ``bybit`` / ``binance`` ("" for the
    signal service)."""

    stream: str
    url: str = ""
    venue: str = ""


@payload(E.STREAM_CONNECTED)
@attrs.frozen(kw_only=True)
class StreamConnected(_Stream):
    """A WebSocket stream connected; ``connects`` counts connections so far (1 = first)."""

    connects: int


@payload(E.STREAM_DISCONNECTED)
@attrs.frozen(kw_only=True)
class StreamDisconnected(_Stream):
    """A stream dropped; reconnect ``attempt`` follows after ``retry_in_s`` seconds.

    Attributes:
        planned: a reconnect we chose (24 h limit, new listenKey); attempt is then 0.
        phase: ``prepare`` when preparing the connection failed (listenKey request).
        renew: the venue expired the listenKey; a new one is created.
    """

    reason: str
    attempt: int = 0
    retry_in_s: float | None = None
    planned: bool = False
    phase: str = ""
    renew: bool = False


@payload(E.STREAM_GAP)
@attrs.frozen(kw_only=True)
class StreamGapped(_Stream):
    """A stream reconnected and may have lost events: positions re-verify."""

    reason: str


@payload(E.MARK_REJECTED)
@attrs.frozen(kw_only=True)
class MarkRejected(Payload):
    """A mark price from the venue failed the sanity check and was dropped, never acted on
    (``tradebot.price_checks.price_problem``).

    Attributes:
        mark_price: the value as received, as text (it may not even be a number).
        reason: why it was refused (``not finite (NaN)``, ``not positive (0)``, ...).
        mark_ts: the mark's own timestamp (aware UTC).
    """

    mark_price: str
    reason: str
    mark_ts: datetime | None = None


@payload(E.STREAM_SILENT)
@attrs.frozen(kw_only=True)
class StreamSilent(_Stream):
    """The silence watchdog (or a missing pong) dropped the connection.

    Attributes:
        reason: ``silence`` or ``pong_timeout``.
        silence_timeout_s / pong_timeout_s: the limit that expired, seconds.
    """

    reason: Literal["silence", "pong_timeout"]
    silence_timeout_s: float | None = None
    pong_timeout_s: float | None = None


# -- database / journal -------------------------------------------------------------------


@payload(E.DB_UNAVAILABLE)
@attrs.frozen(kw_only=True)
class DbUnavailable(Payload):
    """The journal database is unreachable; events spool to ``spool_path``."""

    reason: str
    spool_path: str


@payload(E.DB_RECOVERED)
@attrs.frozen(kw_only=True)
class DbRecovered(Payload):
    """The journal database is back after ``down_for_s`` seconds (None: down at open);
    ``spooled`` events were written to the spool meanwhile."""

    down_for_s: float | None
    spooled: int


@payload(E.SPOOL_REPLAYED)
@attrs.frozen(kw_only=True)
class SpoolReplayed(Payload):
    """``events`` spooled events were replayed into the database (idempotently)."""

    events: int
    spool_path: str


@payload(E.DB_SERVER_RESTART)
@attrs.frozen(kw_only=True)
class DbServerRestart(Payload):
    """One attempt to restart the embedded PostgreSQL server after it died.

    Attributes:
        attempt / max_attempts: this attempt's number in the current outage, and the bound.
        ok: the server was started again; ``error`` says why not.
        gave_up: the last attempt failed: the events stay in ``spool_path`` (load them
            later with ``tradebot db replay-spool``).
    """

    attempt: int
    max_attempts: int
    ok: bool
    error: str | None = None
    gave_up: bool = False
    spool_path: str = ""


@payload(E.SPOOL_KEPT_ASIDE)
@attrs.frozen(kw_only=True)
class SpoolKeptAside(Payload):
    """A stale journal spool was moved to ``path`` (not replayed here, never discarded)."""

    path: str
    events: int
    reason: str


@payload(E.EVENT_SCHEMA_ERROR)
@attrs.frozen(kw_only=True)
class EventSchemaErrorRecorded(Payload):
    """An event whose data does not match its payload class was journaled anyway (the
    PostgreSQL journal never drops it). Journaled once per event type per journal.

    Attributes:
        event_type: the offending event's type value.
        event_id: the first offending event's id.
        error: what did not match (key paths).
    """

    event_type: str
    event_id: str
    error: str


# -- alerts and operator ----------------------------------------------------------------------


@payload(E.ALERT_RAISED)
@attrs.frozen(kw_only=True)
class AlertRaised(PositionScoped):
    """Something needs a human. Projected into ``alerts`` (severity = the event's).

    Attributes:
        message: what happened, for a human (the ``alerts.message``).
        key: de-duplication key; "" = ``reason``.
        reason: machine-readable cause (``flatten_failed``, ``close_failed``,
            ``repair_failed``, ``repair_move_failed``, ``entry_outcome_unresolved``).
        detail: further detail (e.g. the close reason that failed).
        error: the error that caused it.
        suppressed_count: alerts of the same key suppressed since the last one.
        qty: the position's quantity left, base units.
        stop_price: the stop the actor wanted, USDT.
        emergency_stop: the emergency stop in place, USDT (None: none could be placed).
    """

    message: str
    key: str = ""
    reason: str = ""
    detail: str = ""
    error: str = ""
    suppressed_count: int = 0
    qty: Decimal | None = None
    stop_price: Decimal | None = None
    emergency_stop: Decimal | None = None


@payload(E.ALERT_SUPPRESSED)
@attrs.frozen(kw_only=True)
class AlertSuppressed(Payload):
    """An alert was suppressed by de-duplication/rate limit (``suppressed_count`` so far)."""

    key: str
    message: str = ""
    suppressed_count: int = 1


@payload(E.OPERATOR_COMMAND)
@attrs.frozen(kw_only=True)
class OperatorCommand(Payload):
    """An operator command (``tradebot close|pause|resume``...).

    Attributes:
        command: the command name.
        args: its arguments (open-ended: each command has its own).
        source: where it came from (``cli``, ``http``).
    """

    command: str
    args: Mapping[str, Any] = attrs.field(factory=dict)
    source: str = ""
