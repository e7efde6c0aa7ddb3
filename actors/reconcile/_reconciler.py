"""Reconciler: the journal ↔ exchange audit of one account (docs/ARCHITECTURE.md §3, §7).

Runs a pass at start-up (before the signal feed starts: :func:`actors.account.open_account`
asks for it and refuses to go on when it fails), every ``reconcile.interval_s`` and after a
private-stream gap (debounced by ``reconcile.gap_debounce_s``). A pass compares three
lists — the journal's open positions (:class:`tradebot.events.OpenPositionsReader`), the
venue's positions and the venue's open orders (conditional/stop orders included) — and
turns each difference into a *message to the owner* or, where nobody owns the thing, one
narrow action of its own:

================================  ===========================================================
finding                           what happens
================================  ===========================================================
tracked, no running actor         the PositionSupervisor starts its actor (``resume``): it
                                  resumes from its snapshot (trailing phase and water mark,
                                  stop intent, take-profit levels, aged clock), resolves an
                                  entry intent by client id, verifies its stop — or, flat on
                                  the venue, records the exit from the venue's executions and
                                  closes in the journal (``position.exit_recorded``)
entry intent without snapshot     the entry was never sent (the snapshot is durable before
                                  the entry request): rolled back in the journal
untracked position                ``reconcile.untracked = "adopt"``: a PositionActor adopts it
                                  (emergency stop when it has none, then trailing and aged
                                  rules); ``"alert"``: journaled and a critical alert, left
                                  alone
quantity changed                  ``VerifyProtection("reconcile_qty_changed")`` to the owner
                                  (it re-reads the venue and re-sizes/repairs its stop)
zombie order (our prefix,         cancelled through :class:`ZombieCanceller` and journaled
no live owner)                    (a stop order only once its side is flat on the venue: a
                                  stop that still protects a position is never swept)
foreign order (no prefix)         never touched; reported once
================================  ===========================================================

The Reconciler never places or moves a stop; it holds no StopPort (only the venue's read
methods and the :class:`ZombieCanceller`).

Consumes: :class:`ReconcileNow` messages (its own timer and gap listener send them too).
Emits: ``reconcile.started`` / ``completed`` (``findings``), ``reconcile.resumed``,
``reconcile.intent_rolled_back`` + ``position.rolled_back``, ``reconcile.untracked``,
``reconcile.qty_changed``, ``reconcile.zombie_order`` / ``zombie_cancelled``,
``reconcile.foreign_order``, ``alert.raised`` (untracked left alone, unknown symbol),
``exchange.error`` (a failed read: the pass ends early and says so).
Owns: the set of foreign orders already reported.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Protocol

import attrs
import trio

from actors.position import VerifyProtection
from actors.runtime import Actor
from tradebot.domain import Instrument, OrderType, PositionSide
from tradebot.errors import ActorStopped, JournalError, MailboxFull, UnknownOrder, VenueError
from tradebot.events import (
    AlertRaised,
    Event,
    ExchangeError,
    JournalPort,
    OpenPositionsReader,
    Payload,
    PositionRolledBack,
    ReconcileCompleted,
    ReconcileForeignOrder,
    ReconcileIntentRolledBack,
    ReconcileQtyChanged,
    ReconcileResumed,
    ReconcileStarted,
    ReconcileUntracked,
    Severity,
    TrackedPosition,
    ZombieCancelled,
    ZombieOrderFound,
)
from tradebot.ids import parse_client_order_id, position_id_for
from tradebot.policies import ReconcileSettings
from tradebot.ports import Clock, OrderState, PositionState, StreamGap, VenueReadPort

from ._zombie import ZombieCanceller

__all__ = ["PositionsView", "ReconcileNow", "ReconcileReport", "Reconciler"]


@attrs.frozen
class ReconcileNow:
    """Run one pass now; the reply is a :class:`ReconcileReport`. ``trigger``: ``startup``,
    ``periodic``, ``stream_gap`` or an operator's word."""

    trigger: str


@attrs.frozen
class ReconcileReport:
    """The outcome of one pass (reply to :class:`ReconcileNow`).

    Attributes:
        trigger: what started it.
        ok: every read succeeded (False: ``error`` says which failed; the pass stopped).
        findings: count by kind (``resumed``, ``rolled_back``, ``untracked``, ``adopted``,
            ``qty_changed``, ``zombie``, ``foreign``).
        error: the failed read, "" when ok.
    """

    trigger: str
    ok: bool
    findings: Mapping[str, int] = attrs.field(factory=dict)
    error: str = ""

    @property
    def total(self) -> int:
        return sum(self.findings.values())


class PositionsView(Protocol):
    """What the Reconciler needs of the PositionSupervisor (it starts actors, never
    touches their stops)."""

    def has_position(self, symbol: str, position_side: PositionSide) -> bool: ...

    def owned_position_ids(self) -> set[str]: ...

    def live_qty(self, symbol: str, position_side: PositionSide) -> Any: ...

    def address(self, symbol: str, position_side: PositionSide) -> Any: ...

    async def resume(self, position_id: str, symbol: str, position_side: PositionSide) -> bool: ...

    async def adopt(self, position_id: str, symbol: str, position_side: PositionSide) -> bool: ...


class Reconciler(Actor[ReconcileNow]):
    """See the module docstring.

    Args:
        venue: the venue's read methods (positions, open orders).
        zombies: the narrow zombie-cancel port.
        tracked: the journal's open positions.
        positions: the PositionSupervisor.
        journal: where findings go.
        clock: event time.
        instruments: tradable instruments (an untracked position of another symbol is
            alerted, never adopted).
        settings: ``[reconcile]``.
        account: ``bot.account`` (the journal filter and the adopted positions' ids).
        periodic: run the ``interval_s`` timer (False: passes only on request).
    """

    mailbox_size = 16

    def __init__(
        self,
        *,
        venue: VenueReadPort,
        zombies: ZombieCanceller,
        tracked: OpenPositionsReader,
        positions: PositionsView,
        journal: JournalPort,
        clock: Clock,
        instruments: Mapping[str, Instrument],
        settings: ReconcileSettings,
        account: str = "default",
        periodic: bool = True,
    ) -> None:
        self._venue = venue
        self._zombies = zombies
        self._tracked = tracked
        self._positions = positions
        self._journal = journal
        self._clock = clock
        self._instruments = instruments
        self._settings = settings
        self._account = account
        self._periodic = periodic
        self._foreign_seen: set[str] = set()
        self._last_gap_pass = -math.inf
        self.passes = 0

    # --- runtime hooks ---------------------------------------------------------------

    async def on_start(self) -> None:
        if self._periodic:
            self.nursery.start_soon(self._ticker)

    async def _ticker(self) -> None:
        while True:
            await trio.sleep(self._settings.interval_s)
            await self.post(ReconcileNow("periodic"))

    def on_stream_gap(self, gap: StreamGap) -> None:
        """AccountRouter gap listener: a private-stream gap asks for a pass (debounced;
        never blocks, a full mailbox already holds a pass)."""
        if gap.stream != "private":
            return
        now = trio.current_time()
        if now - self._last_gap_pass < self._settings.gap_debounce_s:
            return
        self._last_gap_pass = now
        try:
            self.address.send_nowait(ReconcileNow("stream_gap"))
        except (MailboxFull, ActorStopped):
            pass

    async def handle(self, message: ReconcileNow) -> ReconcileReport:
        return await self.run_pass(message.trigger)

    # --- one pass --------------------------------------------------------------------

    def _emit(
        self,
        p: Payload,
        severity: Severity = Severity.INFO,
        /,
        **fields: str | None,
    ) -> None:
        self._journal.emit(Event.of(p, self._clock.now(), severity=severity, **fields))

    async def run_pass(self, trigger: str) -> ReconcileReport:
        """One audit (see the module docstring). Never raises for venue or journal
        problems: the report says what failed."""
        self.passes += 1
        self._emit(ReconcileStarted(trigger=trigger))
        found: dict[str, int] = {}
        try:
            tracked = await self._tracked.open_positions(self._account)
            await self._resume_tracked(tracked, found)
            venue_positions = await self._venue.positions()
            await self._check_venue_positions(venue_positions, found)
            orders = await self._venue.open_orders()
            live = {(p.symbol, p.position_side) for p in venue_positions if p.qty > 0}
            await self._sweep_orders(orders, live, found)
        except (VenueError, JournalError) as exc:
            what = "journal" if isinstance(exc, JournalError) else "venue"
            self._emit(
                ExchangeError(
                    what=f"reconcile ({what})", error=type(exc).__name__, message=str(exc)
                ),
                Severity.ERROR,
            )
            self._emit(ReconcileCompleted(trigger=trigger, findings=sum(found.values())))
            return ReconcileReport(trigger, False, found, f"{type(exc).__name__}: {exc}")
        self._emit(ReconcileCompleted(trigger=trigger, findings=sum(found.values())))
        return ReconcileReport(trigger, True, found)

    async def _resume_tracked(
        self, tracked: list[TrackedPosition] | Any, found: dict[str, int]
    ) -> None:
        for t in tracked:
            side = PositionSide(t.position_side)
            if self._positions.has_position(t.symbol, side):
                continue  # managed (or opening) right now
            fields: dict[str, str | None] = {"symbol": t.symbol, "position_id": t.position_id}
            if t.lifecycle == "INTENT":
                self._emit(
                    ReconcileIntentRolledBack(position_side=side), Severity.WARNING, **fields
                )
                await self._journal.emit_durable(
                    Event.of(
                        PositionRolledBack(position_side=side, reason="entry_never_sent"),
                        self._clock.now(),
                        severity=Severity.WARNING,
                        **fields,
                    )
                )
                _count(found, "rolled_back")
                continue
            if t.symbol not in self._instruments:
                self._emit(
                    AlertRaised(
                        position_side=side,
                        reason="tracked_unknown_symbol",
                        message=(
                            f"{t.symbol} {side.value}: the journal tracks position "
                            f"{t.position_id}, but the symbol is not tradable here; "
                            "left alone — check it by hand"
                        ),
                    ),
                    Severity.CRITICAL,
                    **fields,
                )
                _count(found, "unknown_symbol")
                continue
            managed = await self._positions.resume(t.position_id, t.symbol, side)
            self._emit(
                ReconcileResumed(
                    position_side=side, lifecycle=t.lifecycle, managed=managed, origin=t.origin
                ),
                **fields,
            )
            _count(found, "resumed")

    async def _check_venue_positions(
        self, venue_positions: list[PositionState] | Any, found: dict[str, int]
    ) -> None:
        for vp in venue_positions:
            if vp.qty <= 0:
                continue
            side = vp.position_side
            if self._positions.has_position(vp.symbol, side):
                owner_qty = self._positions.live_qty(vp.symbol, side)
                if owner_qty is not None and owner_qty > 0 and owner_qty != vp.qty:
                    self._emit(
                        ReconcileQtyChanged(
                            position_side=side, owner_qty=owner_qty, venue_qty=vp.qty
                        ),
                        Severity.WARNING,
                        symbol=vp.symbol,
                    )
                    addr = self._positions.address(vp.symbol, side)
                    if addr is not None:
                        try:
                            addr.send_nowait(VerifyProtection("reconcile_qty_changed"))
                        except (MailboxFull, ActorStopped):
                            pass  # the owner is busy or ending; the next pass looks again
                    _count(found, "qty_changed")
                continue
            adopt = self._settings.untracked == "adopt" and vp.symbol in self._instruments
            self._emit(
                ReconcileUntracked(position_side=side, qty=vp.qty, entry_price=vp.entry_price),
                Severity.WARNING if adopt else Severity.CRITICAL,
                symbol=vp.symbol,
            )
            _count(found, "untracked")
            if adopt:
                pid = position_id_for(
                    self._account, vp.symbol, side, self._clock.now(), attempt=900
                )
                if await self._positions.adopt(pid, vp.symbol, side):
                    _count(found, "adopted")
                continue
            why = (
                "reconcile.untracked = alert"
                if vp.symbol in self._instruments
                else "its symbol is not tradable here"
            )
            self._emit(
                AlertRaised(
                    position_side=side,
                    reason="untracked_position",
                    message=(
                        f"{vp.symbol} {side.value} {vp.qty} @ {vp.entry_price}: a position the "
                        f"journal does not track; left alone ({why}) — protect it by hand"
                    ),
                    qty=vp.qty,
                ),
                Severity.CRITICAL,
                symbol=vp.symbol,
            )

    async def _sweep_orders(
        self,
        orders: list[OrderState] | Any,
        live: set[tuple[str, PositionSide]],
        found: dict[str, int],
    ) -> None:
        owned = self._positions.owned_position_ids()
        for o in orders:
            parsed = parse_client_order_id(o.client_order_id)
            if parsed is None:
                key = o.venue_order_id or o.client_order_id
                if key in self._foreign_seen:
                    continue
                self._foreign_seen.add(key)
                self._emit(
                    ReconcileForeignOrder(
                        venue_order_id=o.venue_order_id,
                        order_type=o.order_type.value,
                        position_side=o.position_side,
                        qty=o.qty if o.qty > 0 else None,
                        price=o.price,
                        trigger_price=o.trigger_price,
                    ),
                    symbol=o.symbol,
                    client_order_id=o.client_order_id or None,
                )
                _count(found, "foreign")
                continue
            if parsed[0] in owned:
                continue
            fields: dict[str, str | None] = {
                "symbol": o.symbol,
                "client_order_id": o.client_order_id,
            }
            if o.order_type is OrderType.STOP_MARKET and (o.symbol, o.position_side) in live:
                # a stop of ours on a side that is not flat still protects that position
                # (e.g. one the owner of which is being adopted): its owner decides, never
                # the sweep — a stop is only a zombie once its side is flat
                continue
            self._emit(
                ZombieOrderFound(reason="no live owner", venue_order_id=o.venue_order_id),
                Severity.WARNING,
                position_id=parsed[0],
                **fields,
            )
            _count(found, "zombie")
            try:
                await self._zombies.cancel_zombie(o)
            except UnknownOrder:
                continue  # gone in the meantime: nothing left to do
            self._emit(
                ZombieCancelled(venue_order_id=o.venue_order_id), position_id=parsed[0], **fields
            )


def _count(found: dict[str, int], kind: str) -> None:
    found[kind] = found.get(kind, 0) + 1
