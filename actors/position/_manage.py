"""Managing an open position: trailing stop, take-profit levels on mark prices, protection
verification and repair, account events (fills, position and order updates, stream gaps).

Consumes: the symbol's mark-price cell (conflated: at most one ``MarkChanged`` pending),
account events routed by the AccountRouter, ``VerifyProtection`` (periodic, stream gaps,
reconciler findings, recovery).
Emits: ``trailing.activated`` / ``breakeven`` / ``update`` / ``skipped``,
``protection.verified`` (quiet periodic checks counted and journaled at most every
``protection.verified_journal_interval_s``) / ``missing`` / ``repaired`` / ``breach``,
``order.update``, ``aged.exit_filled``, ``exchange.error``, ``alert.raised`` (with
``message``), ``position.snapshot`` (every new high/low-water mark once trailing is
engaged, throttled by ``execution.snapshot_interval_s``).
Owns: the trailing state and the management timers (one ``_ManageTick`` timer when the
aged tick is a whole multiple of the verify interval, else ``VerifyProtection`` + ``AgeTick``
timers). Stop changes go through the stop keeper.
"""

from __future__ import annotations

import math
from decimal import Decimal

import trio
import trio.lowlevel

from actors.runtime import runnable_besides_timers
from tradebot.domain import OrderStatus
from tradebot.errors import VenueError, WouldTriggerImmediately
from tradebot.events import EventType, Severity
from tradebot.policies import (
    AgedPhase,
    QuietBand,
    RepairAction,
    TrailingPhase,
    aged_target,
    decide_repair,
    is_protective,
    quiet_band,
    should_replace_exit,
    trailing_step,
)
from tradebot.ports import AccountEvent, Fill, OrderUpdate, PositionUpdate, StreamGap

from ._lifecycle import Lifecycle
from ._messages import AgeTick, MarkChanged, VerifyProtection, _ManageTick
from ._open import PositionOpen
from ._stop_keeper import StopFailed

__all__ = ["PositionManage"]


class PositionManage(PositionOpen):
    """Trailing, protection, account events (see the module docstring)."""

    # --- marks and trailing ------------------------------------------------------------

    def _start_management(self) -> None:
        self.nursery.start_soon(self._watch_marks)
        verify_s = self._s.protection.verify_interval_s
        age_s = self._s.execution.age_tick_s
        ratio = age_s / verify_s
        if ratio >= 1 and ratio == int(ratio):
            # one timer: every verification also runs the aged-exit tick once it is due
            # (due times start + n * age_tick_s, the same as an own "age" timer's)
            self._age_start = trio.current_time()
            self._age_n = 1
            quiet = self._quiet_tick if self._protection_version is not None else None
            self.timers.every("verify", verify_s, _ManageTick(), quiet=quiet)
        else:
            self.timers.every("verify", verify_s, VerifyProtection())
            self.timers.every("age", age_s, AgeTick())
        if self._marks.get() is not None:
            self._post_mark()

    def _post_mark(self) -> None:
        if self._mark_pending:
            return
        quiet = self._quiet
        if quiet is not None and self.parked():
            mp = self._marks.get()
            if mp is not None and quiet.contains(mp.mark_price):
                # Handling MarkChanged now would only record the mark (docs/ARCHITECTURE.md
                # §3, "quiet marks"): the actor is parked, so nothing else can come first.
                self._mark = mp.mark_price
                self.quiet_marks += 1
                return
        self._mark_pending = True
        try:
            self.address.send_nowait(MarkChanged())
        except Exception:
            self._mark_pending = False

    def _quiet_band_now(self) -> QuietBand | None:
        """The marks that :meth:`_on_mark` would only record, given the state now.

        Everything while the position is not ACTIVE (or has no entry, stop or open time
        yet); else the trailing policy's :func:`tradebot.policies.quiet_band`, provided no
        water-mark snapshot is pending, no hold-back is still to be journaled, no
        take-profit levels are configured and no ``on_decision`` observer wants every
        decision. None = every mark is handled.
        """
        r = self._r
        if self.lifecycle is not Lifecycle.ACTIVE or r.entry_price is None:
            return QuietBand(self.position_side, None, None)
        if self._s.take_profit.levels or self._on_decision is not None:
            return None
        if r.stop_price is None or r.opened_at is None:
            return QuietBand(self.position_side, None, None)
        tr = r.trailing
        if tr.phase is not TrailingPhase.INACTIVE and tr.water_mark != self._snapshot_wm:
            return None  # a throttled water-mark snapshot is due with a later mark
        band = quiet_band(
            tr,
            settings=self._s.trailing,
            side=self.position_side,
            instrument=self.instrument,
            entry_price=r.entry_price,
            current_stop=r.stop_price,
        )
        if band is not None and band.rate_limited and not self._skip_journaled:
            return None
        return band

    async def _watch_marks(self) -> None:
        # The cell calls ``_post_mark`` synchronously on every set: at most one MarkChanged
        # is pending in the mailbox at a time (conflated), and no task switch is spent per
        # tick on a watcher. Living in this actor's nursery ties the registration to this
        # incarnation: a crash or stop cancels the nursery and the ``finally`` unregisters.
        remove = self._marks.add_listener(self._post_mark)
        try:
            await trio.sleep_forever()
        finally:
            remove()

    async def _on_mark(self) -> None:
        mp = self._marks.get()
        if mp is None:
            return
        self._mark = mp.mark_price
        if self.lifecycle is not Lifecycle.ACTIVE or self._r.entry_price is None:
            return
        if self._s.take_profit.levels:
            await self._take_profits(mp.mark_price)
            if self.lifecycle is not Lifecycle.ACTIVE:
                return
        if self._r.stop_price is None or self._r.opened_at is None:
            return
        now = self._clock.now()
        d = trailing_step(
            self._r.trailing,
            settings=self._s.trailing,
            side=self.position_side,
            instrument=self.instrument,
            entry_price=self._r.entry_price,
            opened_at=self._r.opened_at,
            mark_price=mp.mark_price,
            current_stop=self._r.stop_price,
            now=now,
        )
        if self._on_decision is not None:
            self._on_decision(self, mp, d)
        phase_changed = d.state.phase is not self._r.trailing.phase
        self._r.trailing = d.state
        for e in d.events:
            if e == "activated":
                self._ev(
                    EventType.TRAILING_ACTIVATED,
                    mark_price=mp.mark_price,
                    water_mark=d.state.water_mark,
                )
            elif e == "breakeven":
                self._ev(EventType.TRAILING_BREAKEVEN, mark_price=mp.mark_price)
        if d.new_stop is not None:
            old = self._r.stop_price
            if await self._keeper.move_stop(d.new_stop, f"trailing:{d.reason}"):
                self._r.trailing = self._r.trailing.with_update(now)
                self._ev(
                    EventType.TRAILING_UPDATE,
                    mark_price=mp.mark_price,
                    water_mark=self._r.trailing.water_mark,
                    old_stop_price=old,
                    stop_price=self._r.stop_price,
                    update_count=self._r.trailing.update_count,
                    reason=d.reason,
                )
                self._skip_journaled = False
                await self._snapshot()
                return
        elif d.reason in ("rate_limited", "below_min_improvement") and not self._skip_journaled:
            # why a better stop was not sent: journaled once per update cycle (not per tick)
            self._skip_journaled = True
            self._ev(
                EventType.TRAILING_SKIPPED,
                Severity.DEBUG,
                mark_price=mp.mark_price,
                water_mark=self._r.trailing.water_mark,
                stop_price=self._r.stop_price,
                reason=d.reason,
            )
        if phase_changed:
            await self._snapshot()
        elif (
            self._r.trailing.phase is not TrailingPhase.INACTIVE
            and self._r.trailing.water_mark != self._snapshot_wm
            and trio.current_time() - self._last_snapshot_s >= self._s.execution.snapshot_interval_s
        ):
            # once trailing is engaged every new high/low-water mark is persisted, so a
            # restarted actor resumes exactly; before that the mark is flushed with the
            # periodic protection check (VerifyProtection)
            await self._snapshot(durable=False)

    async def _on_account_event(self, ev: AccountEvent) -> None:
        if isinstance(ev, StreamGap):
            await self._verify("stream_gap")
            return
        if self.lifecycle not in (Lifecycle.ACTIVE, Lifecycle.FAILED, Lifecycle.CLOSING):
            return
        if isinstance(ev, Fill):
            # the fill itself is journaled once by the AccountRouter (it also sees fills
            # that arrive after this actor ended)
            if ev.client_order_id in self._r.tp_orders:
                await self._tp_filled(ev.client_order_id, ev.qty, ev.price)
                return
            if ev.client_order_id and ev.client_order_id == self._r.aged_cid:
                self._ev(
                    EventType.AGED_EXIT_FILLED, cid=ev.client_order_id, qty=ev.qty, price=ev.price
                )
            if ev.position_side is self.position_side and ev.side is self.position_side.exit_side:
                await self._check_external_close(self._fill_reason(ev))
            return
        if isinstance(ev, PositionUpdate):
            p = ev.position
            if p.position_side is not self.position_side:
                return
            if self._last_position_ts is not None and ev.ts < self._last_position_ts:
                return  # an older update delivered late
            self._last_position_ts = ev.ts
            if p.qty <= 0:
                await self._check_external_close("position_flat")
                return
            # the newest update wins (events queued while opening may be stale partials)
            self._r.qty = p.qty
            if (
                self._r.stop is not None
                and not self._r.stop.venue_order_id
                and not self._r.stop.client_order_id
                and p.stop_price != self._r.stop_price
            ):
                # a position-level stop (Bybit trading-stop) changed behind our back
                await self._verify("position_stop_changed")
            return
        if isinstance(ev, OrderUpdate):
            o = ev.order
            self._ev(
                EventType.ORDER_UPDATE,
                cid=o.client_order_id,
                status=o.status,
                filled_qty=o.filled_qty,
            )
            if o.client_order_id in self._r.tp_orders and o.status is OrderStatus.FILLED:
                await self._tp_filled(o.client_order_id, o.filled_qty, o.avg_fill_price)
            elif (
                self._r.stop is not None
                and o.client_order_id == self._r.stop.client_order_id
                and o.status in (OrderStatus.CANCELED, OrderStatus.EXPIRED, OrderStatus.REJECTED)
            ):
                await self._verify("stop_order_gone")

    def _fill_reason(self, ev: Fill) -> str:
        if ev.reason in ("liquidation", "adl"):
            return ev.reason
        if ev.reason == "stop" or (
            self._r.stop is not None
            and ev.client_order_id
            and ev.client_order_id == self._r.stop.client_order_id
        ):
            return "stop_triggered"
        if ev.client_order_id and ev.client_order_id == self._r.aged_cid:
            return "aged_exit"
        if ev.client_order_id.startswith(f"tb-{self.position_id}-"):
            return "own_order"
        return "external_close"

    def _journal_verified(self, reason: str) -> None:
        """Journal a verification that found the stop in place.

        Every non-periodic verification, and every one that finds a different stop than the
        last journaled one, is journaled at once. Quiet periodic checks (same stop) are
        counted and journaled at most every ``protection.verified_journal_interval_s``, so
        the journal keeps the evidence (``quiet_checks``) without one row per 30 s per
        position.
        """
        now = self._clock.now()
        self._stop_verified_at = now
        last = self._verified_journaled_at
        if (
            reason == "periodic"
            and last is not None
            and self._r.stop_price == self._verified_journaled_price
            and (now - last).total_seconds() < self._s.protection.verified_journal_interval_s
        ):
            self._quiet_verifications += 1
            return
        self._ev(
            EventType.PROTECTION_VERIFIED,
            Severity.DEBUG,
            stop_price=self._r.stop_price,
            reason=reason,
            quiet_checks=self._quiet_verifications,
        )
        self._verified_journaled_at = now
        self._verified_journaled_price = self._r.stop_price
        self._quiet_verifications = 0

    def _quiet_tick(self) -> bool:
        """Apply a periodic ``_ManageTick`` in place when handling it would change nothing
        else (the timer's ``quiet`` hook; docs/ARCHITECTURE.md §3, "quiet checks").

        True only when all of this holds now: the actor is parked and nothing else is
        runnable at this instant; the position is ACTIVE with a mark; the venue's
        :meth:`protection_version` for the symbol is what it was at the last full check that
        found the stop in place (so ``positions``/``stops`` would answer the same);
        :func:`tradebot.policies.decide_repair` on that answer and the newest mark says OK;
        and a due aged-exit tick finds the position not aged, or aged with its exit
        already placed at a price it would keep (no market close due). It then does what
        the handler would have done, in its order: records the same stop, counts the quiet
        check or journals ``PROTECTION_VERIFIED`` when one is due, journals the throttled
        water-mark snapshot when the water mark moved (``emit``, never blocking) and
        advances the aged-exit clock.
        """
        checked = self._checked
        version_of = self._protection_version
        if checked is None or version_of is None or self.lifecycle is not Lifecycle.ACTIVE:
            return False
        if not self.parked() or runnable_besides_timers():
            return False
        version, pos, stops = checked
        r = self._r
        mark = self._mark
        if version_of(self.symbol) != version or mark is None or r.entry_price is None:
            return False
        intended = None if (r.adopted and r.stop_price is None) else r.stop_price
        memo = self._quiet_repair
        if (
            memo is not None
            and memo[0] is checked
            and memo[1] == intended
            and memo[2] == r.entry_price
        ):
            # decide_repair on the same stops, intended stop and entry depends on the mark
            # only through "is the target stop still protective of it"
            if not is_protective(memo[3], mark, self.position_side):
                return False
        else:
            d = decide_repair(
                side=self.position_side,
                instrument=self.instrument,
                entry_price=r.entry_price,
                mark_price=mark,
                intended_stop=intended,
                live_stop_prices=[s.trigger_price for s in stops],
                settings=self._s.protection,
            )
            if d.action is not RepairAction.OK or d.stop_price is None:
                return False
            self._quiet_repair = (checked, intended, r.entry_price, d.stop_price)
        now = self._clock.now()
        age_s = self._s.execution.age_tick_s
        t = trio.current_time()
        age_due = t >= self._age_start + self._age_n * age_s
        if (
            age_due
            and r.opened_at is not None
            # well before max_age_h the phase is NOT_AGED without asking (1 s of margin
            # keeps aged_target's own float arithmetic the judge near the boundary)
            and (now - r.opened_at).total_seconds() >= self._s.aged.max_age_h * 3600.0 - 1.0
        ):
            aged = aged_target(
                opened_at=r.opened_at,
                now=now,
                entry_price=r.entry_price,
                side=self.position_side,
                instrument=self.instrument,
                settings=self._s.aged,
            )
            if aged.phase is not AgedPhase.NOT_AGED and (
                # an aged tick changes nothing once the exit is placed and still right
                not r.aged_started
                or aged.phase is AgedPhase.MARKET_CLOSE
                or should_replace_exit(r.aged_price, aged, self.instrument.tick_size)
            ):
                return False
        # what _verify("periodic") does once the stop is found in place, in its order
        r.qty = pos.qty
        r.stop = stops[0]
        r.stop_price = stops[0].trigger_price
        self._journal_verified("periodic")  # counted, or journaled when one is due
        if r.trailing.water_mark != self._snapshot_wm:
            self._snapshot_now()  # the throttled water-mark snapshot (not durable)
        if age_due:
            self._age_n = math.floor((t - self._age_start) / age_s) + 1
        self.quiet_ticks += 1
        return True

    async def _verify(self, reason: str) -> None:
        self._checked = None
        if (
            self.lifecycle not in (Lifecycle.ACTIVE, Lifecycle.FAILED)
            or self._r.entry_price is None
        ):
            return
        version_of = self._protection_version
        version = version_of(self.symbol) if version_of is not None else None
        try:
            pos = await self._venue_position()
            stops = await self._venue_stops()
        except VenueError as exc:
            self._ev(EventType.EXCHANGE_ERROR, Severity.WARNING, what="verify", error=exc)
            return
        if pos is None:
            self._r.qty = Decimal(0)
            await self._cleanup_orders()
            await self._finish_closed(f"closed_externally ({reason})")
            return
        self._r.qty = pos.qty
        mark = self._mark or pos.mark_price or self._r.entry_price
        intended = None if (self._r.adopted and self._r.stop_price is None) else self._r.stop_price
        d = decide_repair(
            side=self.position_side,
            instrument=self.instrument,
            entry_price=self._r.entry_price,
            mark_price=mark,
            intended_stop=intended,
            live_stop_prices=[s.trigger_price for s in stops],
            settings=self._s.protection,
        )
        if d.action is RepairAction.OK:
            self._r.stop = stops[0]
            self._r.stop_price = stops[0].trigger_price
            if (
                version is not None
                and version_of is not None
                and version_of(self.symbol) == version
            ):
                self._checked = (version, pos, list(stops))
            self._journal_verified(reason)
            if self._r.trailing.water_mark != self._snapshot_wm:
                await self._snapshot(durable=False)
            return
        if d.action is RepairAction.CLOSE:
            self._ev(
                EventType.PROTECTION_BREACH,
                Severity.ERROR,
                mark_price=mark,
                stop_price=self._r.stop_price,
                action="close",
                reason=d.reason,
            )
            await self._close(f"protection_breach: {d.reason}")
            return
        assert d.stop_price is not None
        if d.reason.startswith("breach"):
            self._ev(
                EventType.PROTECTION_BREACH,
                Severity.ERROR,
                mark_price=mark,
                stop_price=self._r.stop_price,
                action="tighten",
                new_stop_price=d.stop_price,
            )
        else:
            self._ev(
                EventType.PROTECTION_MISSING,
                Severity.WARNING,
                live=len(stops),
                reason=d.reason,
                trigger=reason,
            )
        keep = [s for s in stops if s.trigger_price == d.stop_price]
        if d.action is RepairAction.DEDUPE or (keep and d.action is RepairAction.PLACE):
            kept = keep[0]
            for s in stops:
                if s is not kept:
                    await self._keeper.cancel_stop_quietly(s)
            self._r.stop, self._r.stop_price = kept, kept.trigger_price
        elif stops:
            # one looser (or breached) stop: move it to the target
            self._r.stop, self._r.stop_price = stops[0], stops[0].trigger_price
            for s in stops[1:]:
                await self._keeper.cancel_stop_quietly(s)
            if not await self._keeper.move_stop(d.stop_price, f"repair:{d.reason}"):
                await self._handle_repair_failure(d.stop_price)
                return
        else:
            self._r.stop = None
            try:
                await self._keeper.place_new_stop(d.stop_price, f"repair:{d.reason}")
            except WouldTriggerImmediately:
                await self._close("protection_repair_would_trigger")
                return
            except StopFailed as exc:
                self._ev(
                    EventType.ALERT_RAISED,
                    Severity.CRITICAL,
                    reason="repair_failed",
                    error=str(exc),
                    message=(
                        f"{self.symbol} {self.position_side.value}: no stop on the venue and "
                        f"placing one at {d.stop_price} failed ({exc}); flattening"
                    ),
                )
                await self._flatten_or_emergency(f"repair_failed: {exc}")
                return
        self._ev(
            EventType.PROTECTION_REPAIRED,
            stop_price=self._r.stop_price,
            reason=d.reason,
            trigger=reason,
        )
        await self._snapshot()
        # the repaired stop may be behind what trailing wants at this mark: catch up now, so
        # a repair and a trailing move at the same instant end at the better price
        if self.lifecycle is Lifecycle.ACTIVE:
            await self._on_mark()

    async def _handle_repair_failure(self, target: Decimal) -> None:
        self._ev(
            EventType.ALERT_RAISED,
            Severity.ERROR,
            reason="repair_move_failed",
            stop_price=target,
            message=(
                f"{self.symbol} {self.position_side.value}: moving the stop to {target} "
                f"failed; the stop at {self._r.stop_price} stays in force"
            ),
        )
