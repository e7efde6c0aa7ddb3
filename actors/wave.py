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

import trio

from actors._wave_records import (
    _KEEP_CLOSED,
    _Closed,
    _Collecting,
    _ProcessDue,
    _SignalIds,
    _WaveDone,
)
from actors._wave_records import (
    SIGNAL_ID_MEMORY as SIGNAL_ID_MEMORY,
)
from actors._wave_records import (
    Deliver as Deliver,
)
from actors._wave_records import (
    EntryGate as EntryGate,
)
from actors._wave_records import (
    GetWaveStatus as GetWaveStatus,
)
from actors._wave_records import (
    SetEntriesPaused as SetEntriesPaused,
)
from actors._wave_records import (
    UpdateInstruments as UpdateInstruments,
)
from actors._wave_records import (
    WaveMessage as WaveMessage,
)
from actors._wave_records import (
    WaveStatus as WaveStatus,
)
from actors._wave_records import (
    WaveSummary as WaveSummary,
)
from actors.runtime import Actor
from tradebot.domain import Instrument
from tradebot.errors import JournalError
from tradebot.events import (
    Event,
    EventType,
    JournalPort,
    JournalReader,
    Severity,
    SignalRejected,
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
