"""PositionActor: the one owner of one position and its stop — the message loop.

Consumes: :data:`PositionMessage` (see ``_messages.py``): dispatched with ``match`` and
checked exhaustive by ``typing.assert_never``; anything else that reaches the mailbox is
journaled as ``position.unknown_message`` (type name, ``repr``) and ignored.
Emits: ``actor.restarted`` when it resumes from a snapshot; everything else through its
parts (open, manage, exits, recovery, stop keeper).
Owns: the position (symbol, position side), its stop (through the stop keeper alone),
trailing state, take-profit levels done, the aged exit order — one
:class:`PositionRecord`, persisted in ``position.snapshot`` events.

The open protocol runs in ``on_start`` before any message is handled, so nothing can race
it; its result is handed to the opener through an :class:`OpenTicket`. A restarted actor
(same ticket or ``recover=True``) rebuilds its state from ``JournalReader.latest_snapshot``
plus the exchange before accepting messages.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import assert_never

import trio

from actors.runtime import LatestValue
from tradebot.domain import Instrument, PositionSide
from tradebot.events import EventType, Severity
from tradebot.policies import PositionSettings, TrailingDecision
from tradebot.ports import Clock, ExchangePort, MarkPrice

from ._base import PositionJournal
from ._lifecycle import Lifecycle
from ._messages import (
    MESSAGE_TYPES,
    AccountEventMsg,
    AgeTick,
    Close,
    MarkChanged,
    OpenTicket,
    PositionMessage,
    Query,
    VerifyProtection,
    _ManageTick,
)
from ._recovery import PositionRecovery
from ._state import load_snapshot

__all__ = ["PositionActor"]


class PositionActor(PositionRecovery):
    """Owns exactly one position (symbol, position side) and its stop.

    Args:
        position_id: the position's id (16 hex chars, :func:`tradebot.ids.position_id_for`).
        symbol: instrument symbol.
        position_side: LONG or SHORT.
        instrument: tick size / qty step / minimums of ``symbol``.
        port: the exchange. The actor hands its stop methods to its stop keeper alone and
            keeps only the narrow :class:`tradebot.ports.PositionVenuePort` view.
        journal: journal port + reader (:class:`tradebot.events.MemoryJournal` in tests).
        clock: "now" (``TrioClock`` in replay/tests, ``WallClock`` live).
        marks: the symbol's mark-price cell (from :class:`actors.routers.MarketRouter`).
        settings: policy and execution settings.
        ticket: open this position (None = recover an existing one).
        adopted: the position exists on the exchange without our intent (reconciler); the
            actor protects it with the emergency stop.
        on_decision: optional observer ``(actor, mark, decision)`` called with each
            trailing decision (metrics, benchmarks); must not block. An exception from it
            crashes the actor (its supervisor restarts it).
        on_closed: optional callback when the actor reaches a final state (used by the
            supervisor to forget the key).
        on_attach: optional callback at the start of ``on_start`` (``self.address`` is
            valid): the supervisor registers the address with the AccountRouter there, so
            account events reach the actor while it opens.
        account: ``bot.account`` (journaled with the entry intent / adoption; the
            Reconciler's journal filter).
    """

    def __init__(
        self,
        *,
        position_id: str,
        symbol: str,
        position_side: PositionSide,
        instrument: Instrument,
        port: ExchangePort,
        journal: PositionJournal,
        clock: Clock,
        marks: LatestValue[MarkPrice],
        settings: PositionSettings | None = None,
        ticket: OpenTicket | None = None,
        adopted: bool = False,
        on_decision: Callable[[PositionActor, MarkPrice, TrailingDecision], None] | None = None,
        on_closed: Callable[[PositionActor], None] | None = None,
        on_attach: Callable[[PositionActor], None] | None = None,
        account: str = "",
    ) -> None:
        super().__init__(
            position_id=position_id,
            symbol=symbol,
            position_side=position_side,
            instrument=instrument,
            port=port,
            journal=journal,
            clock=clock,
            marks=marks,
            settings=settings,
            ticket=ticket,
            adopted=adopted,
            on_decision=on_decision,
            on_closed=on_closed,
            on_attach=on_attach,
            account=account,
        )

    # --- runtime hooks ---------------------------------------------------------------

    async def on_start(self) -> None:
        if self._on_attach is not None:
            self._on_attach(self)
        snap = await self._journal.latest_snapshot(self.position_id)
        if snap is not None:
            load_snapshot(self._r, snap)
            self._ev(
                EventType.ACTOR_RESTARTED,
                lifecycle=self.lifecycle.value,
                water_mark=self._r.trailing.water_mark,
            )
            await self._recover()
        elif self._ticket is not None:
            await self._open(self._ticket.request)
        else:
            await self._adopt()
        if self.lifecycle in (Lifecycle.ACTIVE, Lifecycle.FAILED):
            self._start_management()
        else:
            self._finish()

    async def handle(self, message: PositionMessage) -> object:
        if not isinstance(message, MESSAGE_TYPES):
            # the mailbox is typed, but an Address[object] can still deliver anything
            self._ev(
                EventType.POSITION_UNKNOWN_MESSAGE,
                Severity.WARNING,
                message_type=type(message).__name__,
                detail=repr(message),
                message=f"ignored a message of unknown type {type(message).__name__}",
            )
            return None
        try:
            return await self._dispatch(message)
        finally:
            self._quiet = self._quiet_band_now()

    async def _dispatch(self, message: PositionMessage) -> object:
        match message:
            case MarkChanged():
                self._mark_pending = False
                await self._on_mark()
                return None
            case AccountEventMsg(event=event):
                await self._on_account_event(event)
                return None
            case VerifyProtection(reason=reason):
                await self._verify(reason)
                return None
            case AgeTick():
                await self._on_age_tick()
                return None
            case _ManageTick():
                await self._verify("periodic")
                age_s = self._s.execution.age_tick_s
                now = trio.current_time()
                if now >= self._age_start + self._age_n * age_s:
                    self._age_n = math.floor((now - self._age_start) / age_s) + 1
                    await self._on_age_tick()
                return None
            case Close(reason=reason, fraction=fraction):
                if fraction is None or fraction == 1:
                    await self._close(reason)
                else:
                    await self._close_part(fraction, reason)
                return self.status()
            case Query():
                return self.status()
            case _:
                assert_never(message)

    async def on_stop(self) -> None:
        self.timers.cancel_all()
