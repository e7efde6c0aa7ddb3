"""WaveProcessor: groups signals into waves, filters, ranks, sizes and asks to open.

docs/ARCHITECTURE.md §3 and §5 ("Waves").

Consumes:
    :class:`Deliver` (a :data:`tradebot.signals.FeedItem` from the SignalFeed),
    :class:`UpdateInstruments`, :class:`GetWaveStatus` (ask → :class:`WaveStatus`),
    and its own timer / task messages.
Emits (journal):
    ``SIGNAL_TAKEN`` / ``SIGNAL_FILTERED`` for every signal of a processed wave (data keys
    ``signal_id, symbol, venue, action, score_week, score_month, wave_id, decision,
    reason`` plus ``rank``/``qty``/``position_id`` where they apply), ``SIGNAL_LATE``,
    ``WAVE_STARTED``, ``WAVE_COMPLETED`` (``wave_id, wave_ts, received, taken, filtered,
    rejected, opened`` plus detail counts), ``WAVE_DUPLICATE``.
    ``BOT_PAUSED`` / ``BOT_RESUMED`` when :class:`SetEntriesPaused` flips the entry gate.
Calls:
    :meth:`tradebot.ports.PositionOpener.open_position` (the PositionSupervisor).

Entry gate (operator pause/resume): an :class:`EntryGate` shared across restarts of the
processor. While it is paused, waves are still collected, processed once and completed,
but no candidate is opened: each is journaled ``SIGNAL_FILTERED`` with reason
``entries_paused`` (checked right before every open, so a pause also stops the rest of a
wave being opened). Open positions are not affected.
Owns:
    the waves being collected, and which waves this incarnation has processed.

Wave timing: the signals of wave ``T`` (15-minute boundary) are collected until
``T + delay_min`` (default 5 min → processing at minutes 5, 20, 35, 50), then the wave is
processed exactly once. A signal that arrives after its wave was processed, or after the
wave's processing time passed, is journaled ``SIGNAL_LATE`` and not traded. Before a wave
is started and again right before it is processed, ``JournalReader.is_wave_processed`` is
consulted; a wave already completed (e.g. re-delivered after a restart) is journaled
``WAVE_DUPLICATE`` and never processed again. Within a wave, signals are de-duplicated by
signal id, so a wave delivered twice across a reconnect is processed once and complete.

Reused signal ids: signal ids are unique across waves (docs/ARCHITECTURE.md §9). A signal
whose id was already seen in an *earlier* wave (another wave id) is refused when it
arrives: journaled ``SIGNAL_REJECTED`` (WARNING) with reason
``duplicate_signal_id:first seen in wave-…`` and counted in its wave's ``rejected``; it
never reaches the filters, so it is never opened twice. The memory is bounded: ids of the
waves of the last :data:`SIGNAL_ID_MEMORY` (24 h) behind the newest wave seen. On start
(and every restart) it is seeded from the journal
(:meth:`~tradebot.events.JournalReader.signal_waves_since`: taken, filtered, late and
rejected signals of the last 24 h); if the journal cannot answer, the processor starts
with an empty memory (logged) and still refuses reuse among the waves it sees.

Opening: :func:`tradebot.signals.plan_wave` gives a ranked reserve list of
``max_trades_per_wave * 1.5`` (7) sized candidates; they are opened one at a time, in rank
order, until ``max_trades_per_wave`` (5) are open — when an open fails the next candidate
is tried. Right before each open the live limits are re-checked (existing position, max
open positions, max exposure). Openings run in the actor's nursery (the loop keeps
accepting signals) and are serialized across waves, so two waves never race for the last
slot under a limit. Position ids are :func:`tradebot.ids.position_id_for` of (account,
symbol, side, wave time): if the process dies mid-wave before ``WAVE_COMPLETED`` and the
wave is processed again, the PositionSupervisor sees the same ids (and ``has_position``),
so no position is opened twice.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from decimal import Decimal

import attrs
import trio

from actors.runtime import Actor
from tradebot.domain import Instrument
from tradebot.errors import JournalError
from tradebot.events import (
    BotPaused,
    BotResumed,
    Event,
    EventType,
    JournalPort,
    JournalReader,
    Severity,
    SignalRejected,
    WaveCompleted,
    WaveDuplicate,
    WaveStarted,
)
from tradebot.ids import position_id_for
from tradebot.ports import Clock, OpenOutcome, OpenRequest, PositionOpener
from tradebot.signals import (
    WAVE_INTERVAL,
    Candidate,
    FeedItem,
    Rejection,
    Signal,
    Wave,
    WaveSettings,
    limit_reason,
    plan_wave,
    signal_event,
    wave_id_for,
)

__all__ = [
    "SIGNAL_ID_MEMORY",
    "Deliver",
    "EntryGate",
    "SetEntriesPaused",
    "GetWaveStatus",
    "UpdateInstruments",
    "WaveMessage",
    "WaveProcessor",
    "WaveStatus",
    "WaveSummary",
]

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


class WaveProcessor(Actor[WaveMessage]):
    """The wave actor (see the module docstring).

    Args:
        settings: wave, filter and risk settings (``WaveSettings``; config ``[waves]``,
            ``[risk]``).
        journal: the journal port (decisions, summaries).
        reader: the journal reader (``is_wave_processed``), usually the same object.
        clock: the time port (wave timing; virtual in replay and tests).
        opener: the PositionSupervisor (``PositionOpener``).
        instruments: tradable instruments by symbol (refresh with
            :class:`UpdateInstruments`).
        price_of: latest mark price of a symbol, or None (the bot passes its mark-price
            cells' current values).
        gate: the entry gate (operator pause); default: a new open gate.
    """

    mailbox_size = 1000

    def __init__(
        self,
        *,
        settings: WaveSettings,
        journal: JournalPort,
        reader: JournalReader,
        clock: Clock,
        opener: PositionOpener,
        instruments: Mapping[str, Instrument],
        price_of: Callable[[str], Decimal | None],
        gate: EntryGate | None = None,
    ) -> None:
        self._gate = gate if gate is not None else EntryGate()
        self._settings = settings
        self._journal = journal
        self._reader = reader
        self._clock = clock
        self._opener = opener
        self._instruments: Mapping[str, Instrument] = dict(instruments)
        self._price_of = price_of
        self._collecting: dict[datetime, _Collecting] = {}
        self._closed: dict[datetime, _Closed] = {}
        self._completed: list[WaveSummary] = []
        self._open_lock = trio.Lock()
        self._delay = timedelta(minutes=settings.delay_min)
        self._duplicates = 0
        self._late = 0
        self._signal_ids = _SignalIds()

    async def on_start(self) -> None:
        """Seed the memory of used signal ids from the journal (see the module docstring)."""
        since = self._clock.now() - SIGNAL_ID_MEMORY
        try:
            seen = await self._reader.signal_waves_since(since)
        except JournalError as exc:
            log.warning("signal ids of the last 24 h not read from the journal: %s", exc)
            return
        for signal_id, wave_ts in sorted(seen.items(), key=lambda kv: kv[1]):
            self._signal_ids.remember(signal_id, wave_ts)

    # --- message loop --------------------------------------------------------------------

    async def handle(self, message: WaveMessage) -> object:
        if isinstance(message, Deliver):
            await self._deliver(message.item)
        elif isinstance(message, _ProcessDue):
            await self._process(message.wave_ts)
        elif isinstance(message, _WaveDone):
            self._wave_done(message.summary)
        elif isinstance(message, UpdateInstruments):
            self._instruments = dict(message.instruments)
        elif isinstance(message, GetWaveStatus):
            return self._status()
        elif isinstance(message, SetEntriesPaused):
            return self._gate.set(message, self._journal, self._clock)
        return None

    def _status(self) -> WaveStatus:
        return WaveStatus(
            collecting={wave_id_for(ts): len(c.signals) for ts, c in self._collecting.items()},
            completed=tuple(self._completed),
            opening=tuple(
                wave_id_for(ts) for ts, c in self._closed.items() if c.status == "opening"
            ),
            duplicate_deliveries=self._duplicates,
            late_signals=self._late,
        )

    # --- intake --------------------------------------------------------------------------

    async def _deliver(self, item: FeedItem) -> None:
        if isinstance(item, Wave):
            await self._accept(item.wave_ts, item.signals, rejected=len(item.rejections))
        elif isinstance(item, Signal):
            await self._accept(item.wave_ts, (item,), rejected=0)
        elif (
            isinstance(item, Rejection)
            and item.wave_ts is not None
            and item.wave_ts in self._collecting
        ):
            self._collecting[item.wave_ts].rejected += 1

    async def _accept(
        self, wave_ts: datetime, signals: tuple[Signal, ...], *, rejected: int
    ) -> None:
        now = self._clock.now()
        wave_id = wave_id_for(wave_ts)
        collecting = self._collecting.get(wave_ts)
        if collecting is not None:
            signals, reused = self._refuse_reused(wave_ts, signals, now)
            self._add(collecting, signals, rejected + reused)
            return
        closed = self._closed.get(wave_ts)
        if closed is None:
            if wave_ts - now > WAVE_INTERVAL:
                for s in signals:
                    self._emit(
                        signal_event(
                            EventType.SIGNAL_LATE,
                            s,
                            now,
                            "late",
                            f"wave_in_future: wave {wave_id} is more than 15 min ahead of {now.isoformat()}",
                            severity=Severity.WARNING,
                        )
                    )
                return
            if await self._is_processed(wave_id):
                closed = self._close(wave_ts, "already_processed")
            elif now >= wave_ts + self._delay:
                closed = self._close(wave_ts, "missed")
            else:
                signals, reused = self._refuse_reused(wave_ts, signals, now)
                collecting = _Collecting(wave_ts)
                self._collecting[wave_ts] = collecting
                self._add(collecting, signals, rejected + reused)
                due_s = (wave_ts + self._delay - now).total_seconds()
                self.timers.once(("wave", wave_ts), max(0.0, due_s), _ProcessDue(wave_ts))
                return
        # The wave is closed for this incarnation: a duplicate delivery or late signals.
        new = [s for s in signals if s.signal_id not in closed.seen]
        if len(new) < len(signals) or (closed.status == "already_processed" and signals):
            self._emit(
                Event.of(
                    WaveDuplicate(
                        wave_id=wave_id,
                        wave_ts=wave_ts,
                        status=closed.status,
                        signals=len(signals),
                        new_signals=len(new),
                    ),
                    now,
                    severity=Severity.WARNING,
                    correlation_id=wave_id,
                )
            )
        if closed.status == "already_processed":
            closed.seen.update(s.signal_id for s in signals)
            return  # the journal already holds this wave's decisions
        for s in new:
            closed.seen.add(s.signal_id)
            self._signal_ids.remember(s.signal_id, wave_ts)
            reason = (
                f"arrived after wave {wave_id} was processed"
                if closed.status != "missed"
                else f"arrived after the wave's processing time "
                f"{(wave_ts + self._delay).isoformat()}"
            )
            self._emit(
                signal_event(
                    EventType.SIGNAL_LATE, s, now, "late", reason, severity=Severity.WARNING
                )
            )

    def _refuse_reused(
        self, wave_ts: datetime, signals: tuple[Signal, ...], now: datetime
    ) -> tuple[tuple[Signal, ...], int]:
        """Drop (and journal) the signals whose id was first seen in another wave; remember
        the ids of the rest. Returns (the rest, how many were refused)."""
        kept: list[Signal] = []
        for s in signals:
            first = self._signal_ids.first_wave(s.signal_id, wave_ts)
            if first is None or first == wave_ts:
                self._signal_ids.remember(s.signal_id, wave_ts)
                kept.append(s)
                continue
            self._emit(
                Event.of(
                    SignalRejected(
                        reason=f"duplicate_signal_id:first seen in {wave_id_for(first)}",
                        excerpt=f"{s.signal_id} {s.symbol} {s.action} in {s.wave_id}"[:200],
                        source="wave_processor",
                        signal_id=s.signal_id,
                        wave_id=s.wave_id,
                        wave_ts=wave_ts,
                        symbol=s.symbol,
                        venue=s.venue,
                        action=s.action,
                        score_week=s.score_week,
                        score_month=s.score_month,
                    ),
                    now,
                    severity=Severity.WARNING,
                    symbol=s.symbol,
                    correlation_id=s.wave_id,
                )
            )
        return tuple(kept), len(signals) - len(kept)

    def _add(self, collecting: _Collecting, signals: tuple[Signal, ...], rejected: int) -> None:
        collecting.rejected += rejected
        for s in signals:
            if s.signal_id in collecting.signals:
                collecting.duplicates += 1
            else:
                collecting.signals[s.signal_id] = s

    def _close(self, wave_ts: datetime, status: str) -> _Closed:
        closed = _Closed(status)
        self._closed[wave_ts] = closed
        while len(self._closed) > _KEEP_CLOSED:
            oldest = min(self._closed)
            if self._closed[oldest].status == "opening":
                break
            del self._closed[oldest]
        return closed

    # --- processing ----------------------------------------------------------------------

    async def _process(self, wave_ts: datetime) -> None:
        collecting = self._collecting.pop(wave_ts, None)
        if collecting is None:
            return
        wave_id = wave_id_for(wave_ts)
        now = self._clock.now()
        signals = tuple(collecting.signals.values())
        processed = await self._is_processed(wave_id)
        if processed is None:
            # Cannot tell whether this wave was processed before (journal unreachable):
            # never risk trading it twice. Every signal is filtered with the reason and the
            # wave is completed with nothing opened.
            closed = self._close(wave_ts, "opening")
            closed.seen.update(collecting.signals)
            for s in signals:
                self._emit(
                    signal_event(
                        EventType.SIGNAL_FILTERED,
                        s,
                        now,
                        "filtered",
                        "journal_unavailable",
                        severity=Severity.ERROR,
                    )
                )
            self.nursery.start_soon(
                self._open_wave,
                wave_ts,
                (),
                len(signals),
                len(signals),
                collecting.rejected,
                collecting.duplicates,
            )
            return
        if processed:
            closed = self._close(wave_ts, "already_processed")
            closed.seen.update(collecting.signals)
            self._emit(
                Event.of(
                    WaveDuplicate(
                        wave_id=wave_id,
                        wave_ts=wave_ts,
                        status="already_processed",
                        signals=len(signals),
                        new_signals=0,
                    ),
                    now,
                    severity=Severity.WARNING,
                    correlation_id=wave_id,
                )
            )
            return
        closed = self._close(wave_ts, "opening")
        closed.seen.update(collecting.signals)
        await self._journal.emit_durable(
            Event.of(
                WaveStarted(
                    wave_id=wave_id,
                    wave_ts=wave_ts,
                    received=len(signals),
                    rejected=collecting.rejected,
                    duplicates=collecting.duplicates,
                ),
                now,
                correlation_id=wave_id,
            )
        )
        plan = plan_wave(
            signals,
            settings=self._settings,
            instruments=self._instruments,
            price_of=self._price_of,
            has_position=self._opener.has_position,
        )
        for f in plan.filtered:
            self._emit(signal_event(EventType.SIGNAL_FILTERED, f.signal, now, "filtered", f.reason))
        self.nursery.start_soon(
            self._open_wave,
            wave_ts,
            plan.reserve,
            len(signals),
            len(plan.filtered),
            collecting.rejected,
            collecting.duplicates,
        )

    async def _open_wave(
        self,
        wave_ts: datetime,
        reserve: tuple[Candidate, ...],
        received: int,
        filtered: int,
        rejected: int,
        duplicates: int,
    ) -> None:
        """Open the reserve list in rank order (runs in the actor's nursery)."""
        settings = self._settings
        opener = self._opener
        wave_id = wave_id_for(wave_ts)
        opened: list[str] = []
        failed = 0
        async with self._open_lock:
            for cand in reserve:
                s = cand.signal
                reason: str | None = None
                if self._gate.paused:
                    reason = "entries_paused"
                elif len(opened) >= settings.max_trades_per_wave:
                    reason = "max_trades_per_wave"
                elif opener.has_position(s.symbol, s.position_side):
                    reason = "existing_position"
                else:
                    reason = limit_reason(
                        cand,
                        settings=settings,
                        open_count=opener.open_count(),
                        exposure_usdt=opener.exposure_usdt(),
                    )
                if reason is not None:
                    filtered += 1
                    self._emit(
                        signal_event(
                            EventType.SIGNAL_FILTERED,
                            s,
                            self._clock.now(),
                            "filtered",
                            reason,
                            candidate=cand,
                        )
                    )
                    continue
                position_id = position_id_for(settings.account, s.symbol, s.position_side, wave_ts)
                request = OpenRequest(
                    position_id=position_id,
                    symbol=s.symbol,
                    position_side=s.position_side,
                    qty=cand.qty,
                    reference_price=cand.reference_price,
                    signal_id=s.signal_id,
                    wave_ts=wave_ts,
                    score_week=s.score_week,
                    score_month=s.score_month,
                )
                outcome = await self._open(request)
                if outcome.opened:
                    opened.append(position_id)
                    self._emit(
                        signal_event(
                            EventType.SIGNAL_TAKEN,
                            s,
                            self._clock.now(),
                            "taken",
                            "opened",
                            position_id=position_id,
                            candidate=cand,
                        )
                    )
                else:
                    failed += 1
                    filtered += 1
                    self._emit(
                        signal_event(
                            EventType.SIGNAL_FILTERED,
                            s,
                            self._clock.now(),
                            "filtered",
                            f"open_failed:{outcome.reason}"[:500],
                            position_id=position_id,
                            severity=Severity.WARNING,
                            candidate=cand,
                        )
                    )
            summary = WaveSummary(
                wave_id=wave_id,
                wave_ts=wave_ts,
                received=received,
                taken=len(opened),
                filtered=filtered,
                rejected=rejected,
                opened=len(opened),
                open_failed=failed,
                duplicates=duplicates,
                position_ids=tuple(opened),
            )
            await self._journal.emit_durable(
                Event.of(summary.payload(), self._clock.now(), correlation_id=wave_id)
            )
        await self.post(_WaveDone(summary))

    def _emit(self, event: Event) -> None:
        if event.type is EventType.WAVE_DUPLICATE:
            self._duplicates += 1
        elif event.type is EventType.SIGNAL_LATE:
            self._late += 1
        self._journal.emit(event)

    async def _is_processed(self, wave_id: str) -> bool | None:
        """``JournalReader.is_wave_processed``; None when the journal cannot answer."""
        try:
            return await self._reader.is_wave_processed(wave_id)
        except JournalError:
            return None

    async def _open(self, request: OpenRequest) -> OpenOutcome:
        try:
            return await self._opener.open_position(request)
        except Exception as exc:  # the opener should not raise; never lose the wave if it does
            return OpenOutcome(request.position_id, False, f"error:{type(exc).__name__}: {exc}")

    def _wave_done(self, summary: WaveSummary) -> None:
        closed = self._closed.get(summary.wave_ts)
        if closed is not None:
            closed.status = "completed"
        self._completed.append(summary)
        del self._completed[:-_KEEP_CLOSED]
