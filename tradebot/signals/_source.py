"""The signal-source port and the journal records of signal intake.

A source (``adapters/signals``: WebSocket client, JSON-lines file) validates every message
with :func:`tradebot.signals.parse_message`, journals each rejection as
``SIGNAL_REJECTED`` (:func:`rejection_event`) at once — so a rejection is recorded even if
the consumer never sees it — and hands :data:`FeedItem` values to ``emit`` through a
bounded buffer whose overflow is journaled ``SIGNAL_BUFFER_OVERFLOW``
(:func:`overflow_event`).

The journal payload of every signal record is :class:`tradebot.events.SignalDecision`
(``SIGNAL_RECEIVED``, ``SIGNAL_LATE``, ``SIGNAL_FILTERED``, ``SIGNAL_TAKEN``) or
:class:`tradebot.events.SignalRejected`; the ``signals`` table is projected from them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from decimal import Decimal
from typing import Protocol

from tradebot.domain import PositionSide
from tradebot.events import (
    Event,
    EventType,
    Severity,
    SignalBufferOverflow,
    SignalDecision,
    SignalFiltered,
    SignalLate,
    SignalReceived,
    SignalRejected,
    SignalTaken,
)
from tradebot.signals._protocol import Rejection, Signal, Wave, wave_id_for
from tradebot.signals._selection import Candidate

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


_DECISIONS: dict[EventType, type[SignalDecision]] = {
    EventType.SIGNAL_RECEIVED: SignalReceived,
    EventType.SIGNAL_LATE: SignalLate,
    EventType.SIGNAL_FILTERED: SignalFiltered,
    EventType.SIGNAL_TAKEN: SignalTaken,
}


def signal_data(
    signal: Signal,
    decision: str,
    reason: str = "",
    *,
    event_type: EventType = EventType.SIGNAL_RECEIVED,
    rank: int | None = None,
    qty: Decimal | None = None,
    reference_price: Decimal | None = None,
    notional_usdt: Decimal | None = None,
) -> SignalDecision:
    """The payload of a decision about ``signal`` (``decision`` = received / late /
    filtered / taken; the candidate's ``rank``, sized ``qty``, ``reference_price`` and
    ``notional_usdt`` when it was ranked and sized).

    Raises:
        KeyError: ``event_type`` is not a signal-decision type.
    """
    return _DECISIONS[event_type](
        signal_id=signal.signal_id,
        symbol=signal.symbol,
        venue=signal.venue,
        action="BUY" if signal.position_side is PositionSide.LONG else "SELL",
        score_week=signal.score_week,
        score_month=signal.score_month,
        wave_id=wave_id_for(signal.wave_ts),
        wave_ts=signal.wave_ts,
        decision=decision,
        reason=reason,
        rank=rank,
        qty=qty,
        reference_price=reference_price,
        notional_usdt=notional_usdt,
    )


def signal_event(
    event_type: EventType,
    signal: Signal,
    ts: datetime,
    decision: str,
    reason: str = "",
    *,
    position_id: str | None = None,
    severity: Severity = Severity.INFO,
    candidate: Candidate | None = None,
) -> Event:
    """An event about one signal (SIGNAL_RECEIVED / _LATE / _FILTERED / _TAKEN), with the
    ranked, sized ``candidate`` it became if any; ``correlation_id`` is the wave id."""
    return Event.of(
        signal_data(
            signal,
            decision,
            reason,
            event_type=event_type,
            rank=candidate.rank if candidate else None,
            qty=candidate.qty if candidate else None,
            reference_price=candidate.reference_price if candidate else None,
            notional_usdt=candidate.notional_usdt if candidate else None,
        ),
        ts,
        severity=severity,
        position_id=position_id,
        symbol=signal.symbol,
        correlation_id=wave_id_for(signal.wave_ts),
    )


def rejection_event(
    rejection: Rejection, ts: datetime, *, source: str = "", line: int | None = None
) -> Event:
    """``SIGNAL_REJECTED`` for a malformed/hostile message or signal (WARNING); ``line``:
    its line number in a signals file."""
    wave_id = wave_id_for(rejection.wave_ts) if rejection.wave_ts is not None else None
    return Event.of(
        SignalRejected(
            reason=rejection.reason,
            excerpt=rejection.excerpt,
            source=source,
            line=line,
            signal_id=rejection.signal_id,
            wave_id=wave_id,
            wave_ts=rejection.wave_ts,
        ),
        ts,
        severity=Severity.WARNING,
        correlation_id=wave_id,
    )


def overflow_event(item: FeedItem, ts: datetime, *, buffer_size: int, source: str = "") -> Event:
    """``SIGNAL_BUFFER_OVERFLOW``: ``item`` could not be buffered and was dropped (ERROR).

    The data names everything that was lost (wave id, signal ids) so it can be
    re-requested or audited.
    """
    p: SignalBufferOverflow
    if isinstance(item, Wave):
        p = SignalBufferOverflow(
            kind="wave",
            buffer_size=buffer_size,
            source=source,
            wave_id=item.wave_id,
            signal_ids=tuple(s.signal_id for s in item.signals),
            signals=len(item.signals),
        )
    elif isinstance(item, Signal):
        p = SignalBufferOverflow(
            kind="signal",
            buffer_size=buffer_size,
            source=source,
            wave_id=item.wave_id,
            signal_ids=(item.signal_id,),
            signals=1,
        )
    else:
        p = SignalBufferOverflow(
            kind="rejection",
            buffer_size=buffer_size,
            source=source,
            wave_id=wave_id_for(item.wave_ts) if item.wave_ts is not None else None,
            reason=item.reason,
        )
    return Event.of(p, ts, severity=Severity.ERROR, correlation_id=p.wave_id)
