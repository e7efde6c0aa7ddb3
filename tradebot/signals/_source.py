"""The signal-source port and the journal records of signal intake.

A source (``adapters/signals``: WebSocket client, JSON-lines file) validates every message
with :func:`tradebot.signals.parse_message`, journals each rejection as
``SIGNAL_REJECTED`` (:func:`rejection_event`) at once — so a rejection is recorded even if
the consumer never sees it — and hands :data:`FeedItem` values to ``emit`` through a
bounded buffer whose overflow is journaled ``SIGNAL_BUFFER_OVERFLOW``
(:func:`overflow_event`).

Journal data of every signal record (``SIGNAL_REJECTED``, ``SIGNAL_FILTERED``,
``SIGNAL_TAKEN``, ``SIGNAL_LATE``) has the keys ``signal_id, symbol, venue, action,
score_week, score_month, wave_id, decision, reason`` plus ``exchange`` (= venue) and
``wave_ts`` — the names the ``signals`` projection of ``adapters/postgres`` reads; values
that could not be parsed are None.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, Protocol

from tradebot.events import Event, EventType, Severity
from tradebot.signals._protocol import Rejection, Signal, Wave, wave_id_for

__all__ = [
    "Emit",
    "FeedItem",
    "SignalSource",
    "overflow_event",
    "rejection_event",
    "signal_data",
    "signal_event",
]

FeedItem = Wave | Signal | Rejection
"""What a source delivers: a wave batch, a single signal, or a rejected message."""

Emit = Callable[[FeedItem], Awaitable[None]]


class SignalSource(Protocol):
    """Where signals come from (WebSocket service, JSON-lines file)."""

    async def run(self, emit: Emit) -> None:
        """Deliver items to ``emit`` in arrival order.

        A live source runs until cancelled, reconnecting as needed; a file source returns
        at the end of the file. Never raises for bad input: malformed or hostile messages
        are journaled ``SIGNAL_REJECTED`` (and delivered as :class:`Rejection`), transport
        failures are journaled ``STREAM_*`` and retried.
        """
        ...


def signal_data(signal: Signal, decision: str, reason: str = "", **extra: Any) -> dict[str, Any]:
    """Journal data of a signal decision (``decision`` = taken / filtered / late / ...)."""
    data: dict[str, Any] = {
        "signal_id": signal.signal_id,
        "symbol": signal.symbol,
        "venue": signal.venue,
        "exchange": signal.venue,  # the name the signals-table projection reads
        "action": signal.action,
        "score_week": signal.score_week,
        "score_month": signal.score_month,
        "wave_id": wave_id_for(signal.wave_ts),
        "wave_ts": signal.wave_ts,
        "decision": decision,
        "reason": reason,
    }
    data.update(extra)
    return data


def signal_event(
    event_type: EventType,
    signal: Signal,
    ts: datetime,
    decision: str,
    reason: str = "",
    *,
    position_id: str | None = None,
    severity: Severity = Severity.INFO,
    **extra: Any,
) -> Event:
    """An event about one signal; ``correlation_id`` is the wave id."""
    return Event(
        type=event_type,
        ts=ts,
        data=signal_data(signal, decision, reason, **extra),
        severity=severity,
        position_id=position_id,
        symbol=signal.symbol,
        correlation_id=wave_id_for(signal.wave_ts),
    )


def rejection_event(rejection: Rejection, ts: datetime, *, source: str = "", **extra: Any) -> Event:
    """``SIGNAL_REJECTED`` for a malformed/hostile message or signal (WARNING)."""
    wave_id = wave_id_for(rejection.wave_ts) if rejection.wave_ts is not None else None
    return Event(
        type=EventType.SIGNAL_REJECTED,
        ts=ts,
        data={
            "signal_id": rejection.signal_id,
            "symbol": None,
            "venue": None,
            "exchange": None,
            "action": None,
            "score_week": None,
            "score_month": None,
            "wave_id": wave_id,
            "wave_ts": rejection.wave_ts,
            "decision": "rejected",
            "reason": rejection.reason,
            "excerpt": rejection.excerpt,
            "source": source,
            **extra,
        },
        severity=Severity.WARNING,
        correlation_id=wave_id,
    )


def overflow_event(item: FeedItem, ts: datetime, *, buffer_size: int, source: str = "") -> Event:
    """``SIGNAL_BUFFER_OVERFLOW``: ``item`` could not be buffered and was dropped (ERROR).

    The data names everything that was lost (wave id, signal ids) so it can be
    re-requested or audited.
    """
    data: dict[str, Any] = {"buffer_size": buffer_size, "source": source}
    if isinstance(item, Wave):
        data.update(
            kind="wave",
            wave_id=item.wave_id,
            signal_ids=[s.signal_id for s in item.signals],
            signals=len(item.signals),
        )
        wave_id: str | None = item.wave_id
    elif isinstance(item, Signal):
        data.update(kind="signal", wave_id=item.wave_id, signal_ids=[item.signal_id], signals=1)
        wave_id = item.wave_id
    else:
        wave_id = wave_id_for(item.wave_ts) if item.wave_ts is not None else None
        data.update(kind="rejection", wave_id=wave_id, reason=item.reason, signals=0)
    return Event(
        type=EventType.SIGNAL_BUFFER_OVERFLOW,
        ts=ts,
        data=data,
        severity=Severity.ERROR,
        correlation_id=wave_id,
    )
