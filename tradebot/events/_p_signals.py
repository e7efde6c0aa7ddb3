"""Payloads of signal intake and waves (docs/ARCHITECTURE.md §5 waves, §9 signal protocol).

The ``signals`` table is projected from SIGNAL_TAKEN / SIGNAL_FILTERED / SIGNAL_REJECTED;
``waves`` from WAVE_STARTED / WAVE_COMPLETED.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Literal

import attrs

from tradebot.events._base import Payload, payload
from tradebot.events._catalog import EventType as E

__all__ = [
    "SignalBufferOverflow",
    "SignalDecision",
    "SignalFiltered",
    "SignalLate",
    "SignalReceived",
    "SignalRejected",
    "SignalTaken",
    "WaveCompleted",
    "WaveDuplicate",
    "WaveStarted",
]


@attrs.frozen(kw_only=True)
class SignalDecision(Payload):
    """A decision about one valid signal (the shared fields of the signal records).

    Attributes:
        signal_id: the service's id.
        symbol: e.g. ``"BTCUSDT"``.
        venue: lower-case exchange name as sent (``"bybit"``).
        action: ``"BUY"`` (long) or ``"SELL"`` (short).
        score_week / score_month: the signal's scores (None when absent).
        wave_id / wave_ts: the wave it belongs to (aware UTC, 15-minute boundary).
        decision: ``received``, ``late``, ``filtered`` or ``taken``.
        reason: why (filter reason, ``opened``, ``open_failed:...``), "" when none.
        rank: rank of the candidate in its wave (1 = best), when it was ranked.
        qty: the candidate's sized quantity, base units.
        reference_price: the mark price used for sizing, USDT.
        notional_usdt: qty × reference price, USDT.
    """

    signal_id: str
    symbol: str
    venue: str
    action: Literal["BUY", "SELL"]
    score_week: Decimal | None = None
    score_month: Decimal | None = None
    wave_id: str
    wave_ts: datetime
    decision: str
    reason: str = ""
    rank: int | None = None
    qty: Decimal | None = None
    reference_price: Decimal | None = None
    notional_usdt: Decimal | None = None


@payload(E.SIGNAL_RECEIVED)
@attrs.frozen(kw_only=True)
class SignalReceived(SignalDecision):
    """A valid signal arrived (``decision`` = ``received``)."""


@payload(E.SIGNAL_LATE)
@attrs.frozen(kw_only=True)
class SignalLate(SignalDecision):
    """A signal arrived after its wave was processed, or too far ahead (``late``)."""


@payload(E.SIGNAL_FILTERED)
@attrs.frozen(kw_only=True)
class SignalFiltered(SignalDecision):
    """A signal was not taken; ``reason`` is the filter (stoplist, limits, open failed...)."""


@payload(E.SIGNAL_TAKEN)
@attrs.frozen(kw_only=True)
class SignalTaken(SignalDecision):
    """A signal opened a position (the event's ``position_id``)."""


@payload(E.SIGNAL_REJECTED)
@attrs.frozen(kw_only=True)
class SignalRejected(Payload):
    """A malformed/hostile message or signal (``tradebot.signals.parse_message``), or a
    valid signal the WaveProcessor refused because its id was already used in an earlier
    wave (reason ``duplicate_signal_id:first seen in wave-…``, ``actors/wave.py``).

    Attributes:
        reason: ``code`` or ``code:detail``.
        excerpt: at most 200 printable characters of the input.
        source: ``websocket`` or ``file`` (the parser), ``wave_processor``.
        line: the line number in a signals file.
        signal_id / wave_id / wave_ts: what could be parsed, else None.
        symbol / venue / action / score_week / score_month: None when the signal did not
            validate; the signal's values for ``duplicate_signal_id``. Present so that every
            signal record has the same keys.
        decision: ``rejected``.
    """

    reason: str
    excerpt: str = ""
    source: str = ""
    line: int | None = None
    signal_id: str | None = None
    wave_id: str | None = None
    wave_ts: datetime | None = None
    symbol: str | None = None
    venue: str | None = None
    action: str | None = None
    score_week: Decimal | None = None
    score_month: Decimal | None = None
    decision: Literal["rejected"] = "rejected"


@payload(E.SIGNAL_BUFFER_OVERFLOW)
@attrs.frozen(kw_only=True)
class SignalBufferOverflow(Payload):
    """An item could not be buffered and was dropped (ERROR); names what was lost.

    Attributes:
        kind: what was dropped.
        buffer_size: the bounded buffer's capacity (config ``signals.buffer_size``).
        source: ``websocket`` or ``file``.
        wave_id: the wave of the dropped item, when known.
        signal_ids: the dropped signals' ids.
        signals: how many signals were dropped.
        reason: a dropped rejection's reason.
    """

    kind: Literal["wave", "signal", "rejection"]
    buffer_size: int
    source: str = ""
    wave_id: str | None = None
    signal_ids: tuple[str, ...] = ()
    signals: int = 0
    reason: str = ""


@payload(E.WAVE_STARTED)
@attrs.frozen(kw_only=True)
class WaveStarted(Payload):
    """A wave is processed now (durable before any open).

    Attributes:
        wave_id / wave_ts: the wave.
        received: distinct valid signals collected; rejected: signals rejected by
            validation; duplicates: re-delivered signals ignored.
    """

    wave_id: str
    wave_ts: datetime
    received: int
    rejected: int = 0
    duplicates: int = 0


@payload(E.WAVE_COMPLETED)
@attrs.frozen(kw_only=True)
class WaveCompleted(Payload):
    """What happened to one wave (``actors.wave.WaveSummary``); its ``wave_id`` marks the
    wave processed for good (``JournalReader.is_wave_processed``).

    Attributes:
        received: distinct valid signals; taken: opened as positions; filtered: not taken,
            including failed opens; rejected: rejected by validation; opened: positions
            opened; open_failed: opens tried that failed; duplicates: re-deliveries ignored.
        position_ids: the positions opened.
    """

    wave_id: str
    wave_ts: datetime
    received: int
    taken: int
    filtered: int
    rejected: int = 0
    opened: int = 0
    open_failed: int = 0
    duplicates: int = 0
    position_ids: tuple[str, ...] = ()


@payload(E.WAVE_DUPLICATE)
@attrs.frozen(kw_only=True)
class WaveDuplicate(Payload):
    """Signals of a wave that was already processed (or is being opened) arrived again.

    Attributes:
        status: ``already_processed``, ``opening`` or ``missed``.
        signals: signals delivered; new_signals: those not seen before.
    """

    wave_id: str
    wave_ts: datetime
    status: str
    signals: int
    new_signals: int
