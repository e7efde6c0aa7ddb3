"""The WaveProcessor's messages and records (docs/ARCHITECTURE.md §3, §5): what it is sent
(``Deliver``, ``UpdateInstruments``, ``GetWaveStatus``, ``SetEntriesPaused``), what it
answers (``WaveSummary``, ``WaveStatus``), the operator's entry gate (``EntryGate``) and
its bounded memory of used signal ids (``_SignalIds``). The actor is in :mod:`actors.wave`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime, timedelta

import attrs

from tradebot.domain import Instrument
from tradebot.events import (
    BotPaused,
    BotResumed,
    Event,
    JournalPort,
    Severity,
    WaveCompleted,
)
from tradebot.ports import Clock
from tradebot.signals import (
    FeedItem,
    Signal,
)

log = logging.getLogger("tradebot.waves")

SIGNAL_ID_MEMORY = timedelta(hours=24)
"""How long a signal id is remembered as used, behind the newest wave seen (96 waves)."""

# --- messages (in) ----------------------------------------------------------------------


@attrs.frozen
class Deliver:
    """A source item: a :class:`Wave`, a single :class:`Signal` or a :class:`Rejection`
    (rejections are journaled by the source; here they only count toward the wave)."""

    item: FeedItem


@attrs.frozen
class UpdateInstruments:
    """Replace the instrument table used for tradability and sizing."""

    instruments: Mapping[str, Instrument]


@attrs.frozen
class GetWaveStatus:
    """Ask: reply :class:`WaveStatus`."""


@attrs.frozen
class SetEntriesPaused:
    """Ask: turn new entries off (``paused=True``) or on; replies True when the gate
    changed (and ``BOT_PAUSED``/``BOT_RESUMED`` was journaled), False when it already was
    so. ``source`` (``http``, ``cli``, ``telegram``) and ``reason`` are journaled."""

    paused: bool
    source: str = ""
    reason: str = ""


@attrs.define
class EntryGate:
    """The pause switch of new entries, shared by every incarnation of the WaveProcessor
    (a restart keeps the operator's pause). ``paused``: no new position is opened."""

    paused: bool = False

    def set(self, msg: SetEntriesPaused, journal: JournalPort, clock: Clock) -> bool:
        """Apply ``msg``; journal the change (durability: ``emit``). True when it changed."""
        if self.paused == msg.paused:
            return False
        self.paused = msg.paused
        payload = (BotPaused if msg.paused else BotResumed)(source=msg.source, reason=msg.reason)
        journal.emit(Event.of(payload, clock.now(), severity=Severity.WARNING))
        return True


@attrs.frozen
class _ProcessDue:
    wave_ts: datetime


@attrs.frozen
class _WaveDone:
    summary: WaveSummary


WaveMessage = (
    Deliver | UpdateInstruments | GetWaveStatus | SetEntriesPaused | _ProcessDue | _WaveDone
)

# --- replies -----------------------------------------------------------------------------


@attrs.frozen
class WaveSummary:
    """What happened to one wave (the ``WAVE_COMPLETED`` data).

    Attributes:
        wave_id / wave_ts: the wave.
        received: distinct valid signals received before processing.
        taken: signals opened as positions (== ``opened``).
        filtered: signals not taken, including failed opens.
        rejected: signals of this wave rejected by validation.
        opened: positions opened.
        open_failed: opens tried that failed (the next candidate was tried).
        duplicates: re-delivered signals ignored (same id within the wave).
    """

    wave_id: str
    wave_ts: datetime
    received: int
    taken: int
    filtered: int
    rejected: int
    opened: int
    open_failed: int = 0
    duplicates: int = 0
    position_ids: tuple[str, ...] = ()

    def payload(self) -> WaveCompleted:
        """The ``WAVE_COMPLETED`` journal payload."""
        return WaveCompleted(
            wave_id=self.wave_id,
            wave_ts=self.wave_ts,
            received=self.received,
            taken=self.taken,
            filtered=self.filtered,
            rejected=self.rejected,
            opened=self.opened,
            open_failed=self.open_failed,
            duplicates=self.duplicates,
            position_ids=self.position_ids,
        )


@attrs.frozen
class WaveStatus:
    """Reply to :class:`GetWaveStatus`.

    Attributes:
        collecting: wave id → distinct signals collected so far, for waves not yet due.
        completed: summaries of waves completed by this incarnation (oldest first, <= 96).
        opening: wave ids being opened right now.
        duplicate_deliveries: ``WAVE_DUPLICATE`` events journaled by this incarnation.
        late_signals: ``SIGNAL_LATE`` events journaled by this incarnation.
    """

    collecting: Mapping[str, int]
    completed: tuple[WaveSummary, ...]
    opening: tuple[str, ...]
    duplicate_deliveries: int = 0
    late_signals: int = 0


# --- state -------------------------------------------------------------------------------


@attrs.define
class _Collecting:
    wave_ts: datetime
    signals: dict[str, Signal] = attrs.field(factory=dict)
    rejected: int = 0
    duplicates: int = 0


@attrs.define
class _Closed:
    """A wave this incarnation will not process (any more): done, opening, late or seen
    as already processed in the journal."""

    status: str  # "opening" | "completed" | "already_processed" | "missed"
    seen: set[str] = attrs.field(factory=set)


_KEEP_CLOSED = 96  # one day of waves


class _SignalIds:
    """Signal id → ``wave_ts`` of the first wave it was seen in, for the waves of the last
    :data:`SIGNAL_ID_MEMORY` behind the newest wave remembered."""

    def __init__(self) -> None:
        self._first: dict[str, datetime] = {}
        self._by_wave: dict[datetime, list[str]] = {}
        self._newest: datetime | None = None

    def first_wave(self, signal_id: str, wave_ts: datetime) -> datetime | None:
        """The first wave ``signal_id`` was seen in, as remembered after a wave ``wave_ts``
        arrived (older than 24 h behind it: forgotten)."""
        self._advance(wave_ts)
        return self._first.get(signal_id)

    def remember(self, signal_id: str, wave_ts: datetime) -> None:
        known = self._first.get(signal_id)
        if known is not None and known <= wave_ts:
            return
        self._first[signal_id] = wave_ts
        self._by_wave.setdefault(wave_ts, []).append(signal_id)
        self._advance(wave_ts)

    def _advance(self, wave_ts: datetime) -> None:
        if self._newest is not None and wave_ts <= self._newest:
            return
        self._newest = wave_ts
        horizon = wave_ts - SIGNAL_ID_MEMORY
        for old in [ts for ts in self._by_wave if ts < horizon]:
            for sid in self._by_wave.pop(old):
                if self._first.get(sid) == old:
                    del self._first[sid]

    def __len__(self) -> int:
        return len(self._first)
