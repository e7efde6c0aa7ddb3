"""Payloads of a position's management: lifecycle, snapshot, trailing, protection,
take-profit, aged exit, flatten and reconciliation (docs/ARCHITECTURE.md §4, §5).

Emitted by the PositionActor (every one carries ``position_side``, see
:class:`~tradebot.events.PositionScoped`) with the event's ``position_id`` and ``symbol``.
Projected: the POSITION_* lifecycle events → ``positions.status``; TP_* → ``tp_levels``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Literal

import attrs

from tradebot.domain import PositionSide
from tradebot.events._base import Payload, PositionScoped, payload
from tradebot.events._catalog import EventType as E

__all__ = [
    "AgedExitFilled",
    "AgedExitMoved",
    "AgedExitPlaced",
    "AgedMarketClose",
    "AgedStarted",
    "FlattenFailed",
    "FlattenIntent",
    "FlattenVerified",
    "PositionActivated",
    "PositionClosed",
    "PositionClosing",
    "PositionExitRecorded",
    "PositionFailed",
    "PositionIllegalTransition",
    "PositionUnknownMessage",
    "PositionOpening",
    "PositionRolledBack",
    "PositionSnapshot",
    "ProtectionBreach",
    "ProtectionMissing",
    "ProtectionRepaired",
    "ProtectionVerified",
    "ReconcileAdopted",
    "ReconcileCompleted",
    "ReconcileForeignOrder",
    "ReconcileIntentRolledBack",
    "ReconcilePhantom",
    "ReconcileQtyChanged",
    "ReconcileResumed",
    "ReconcileStarted",
    "ReconcileUntracked",
    "TakeProfitFilled",
    "TakeProfitPlaced",
    "TrailingActivated",
    "TrailingBreakeven",
    "TrailingSkipped",
    "TrailingSnapshot",
    "TrailingUpdated",
    "ZombieCancelled",
    "ZombieOrderFound",
]

# -- lifecycle ------------------------------------------------------------------------------


@payload(E.POSITION_OPENING)
@attrs.frozen(kw_only=True)
class PositionOpening(PositionScoped):
    """The open protocol started (after ENTRY_INTENT and the first snapshot)."""


@payload(E.POSITION_ACTIVE)
@attrs.frozen(kw_only=True)
class PositionActivated(PositionScoped):
    """Entry filled and stop confirmed: ``qty`` (base) at ``entry_price`` with the stop at
    ``stop_price`` (USDT)."""

    entry_price: Decimal | None
    qty: Decimal
    stop_price: Decimal | None


@payload(E.POSITION_CLOSING)
@attrs.frozen(kw_only=True)
class PositionClosing(PositionScoped):
    """A close at market (reduce-only) begins for ``qty`` (base units, what remains)."""

    reason: str
    qty: Decimal


@payload(E.POSITION_CLOSED)
@attrs.frozen(kw_only=True)
class PositionClosed(PositionScoped):
    """The position is flat and its leftover orders cancelled.

    Attributes:
        reason: ``stop_triggered``, ``aged_exit``, ``take_profit_complete``, an operator's
            close reason, ``closed_externally (...)`` ...
        filled_qty: the entry's filled quantity, base units.
        entry_price: the average entry price, USDT.
    """

    reason: str
    filled_qty: Decimal | None = None
    entry_price: Decimal | None = None


@payload(E.POSITION_ROLLED_BACK)
@attrs.frozen(kw_only=True)
class PositionRolledBack(PositionClosed):
    """The position was never opened, or was flattened at once because it could not be
    protected (``reason`` says which)."""


@payload(E.POSITION_FAILED)
@attrs.frozen(kw_only=True)
class PositionFailed(PositionScoped):
    """Neither protected normally nor flattened: the position runs on its emergency stop
    (``emergency_stop``, USDT; None = none) or its entry's outcome is unresolved
    (``error``); a critical alert was raised and the actor keeps verifying it."""

    reason: str
    emergency_stop: Decimal | None = None
    error: str = ""


@payload(E.POSITION_ILLEGAL_TRANSITION)
@attrs.frozen(kw_only=True)
class PositionIllegalTransition(PositionScoped):
    """A lifecycle change that is not in the transition table (a bug; CRITICAL): the
    states ``from_state`` → ``to_state`` (``Lifecycle`` values), why it was attempted, and a
    human ``message``. The actor raises ``IllegalTransition`` after journaling it."""

    from_state: str
    to_state: str
    reason: str
    message: str


@payload(E.POSITION_UNKNOWN_MESSAGE)
@attrs.frozen(kw_only=True)
class PositionUnknownMessage(PositionScoped):
    """A message of a type the PositionActor does not handle (ignored; WARNING):
    ``message_type`` (class name), ``detail`` (its repr) and a human ``message``."""

    message_type: str
    detail: str
    message: str


@attrs.frozen(kw_only=True)
class TrailingSnapshot(Payload):
    """Trailing-stop state as persisted (``tradebot.policies.TrailingState.to_dict``).

    Attributes:
        phase: ``INACTIVE``, ``BREAKEVEN``, ``ACTIVE`` or ``TRIGGERED``.
        water_mark: high-water mark (long) / low-water mark (short), USDT.
        update_count: exchange stop updates so far.
        last_update_at / activated_at: aware UTC times.
    """

    phase: Literal["INACTIVE", "BREAKEVEN", "ACTIVE", "TRIGGERED"]
    water_mark: Decimal | None = None
    update_count: int = 0
    last_update_at: datetime | None = None
    activated_at: datetime | None = None


@payload(E.POSITION_SNAPSHOT)
@attrs.frozen(kw_only=True)
class PositionSnapshot(PositionScoped):
    """The PositionActor's persisted state: a restarted actor resumes from the newest one
    (``JournalReader.latest_snapshot``).

    Attributes:
        lifecycle: ``OPENING``, ``ACTIVE``, ``CLOSING``, ``CLOSED``, ``ROLLED_BACK``,
            ``FAILED``.
        symbol: instrument.
        entry_client_order_id: the entry order's client id.
        requested_qty / filled_qty / qty: base units (qty = what is open now).
        entry_price: USDT; opened_at: when it became ACTIVE (aware UTC).
        stop_price: the intended (= live) stop, USDT; stop_client_order_id /
            stop_venue_order_id: the live stop order's ids ("" for a position-level stop).
        seq: per order role letter, the last client order id sequence number used.
        trailing: the trailing-stop state.
        tp_levels_done: take-profit levels done; tp_orders: live take-profit orders
            (client order id → level).
        aged_client_order_id / aged_exit_price (USDT) / aged_started: the aged exit.
        adopted: found on the exchange without our intent (reconciler).
        origin: ``tradebot``, or ``legacy`` for a position imported from the bot tradebot
            replaces (``tradebot import legacy``).
        imported: an imported position that tradebot has not yet seen on the venue (its
            first recovery clears it; found flat then, it closes "closed before import").
        close_reason: why it ended ("" while open).
    """

    lifecycle: Literal["OPENING", "ACTIVE", "CLOSING", "CLOSED", "ROLLED_BACK", "FAILED"]
    symbol: str
    entry_client_order_id: str
    requested_qty: Decimal
    filled_qty: Decimal
    qty: Decimal
    entry_price: Decimal | None = None
    opened_at: datetime | None = None
    stop_price: Decimal | None = None
    stop_client_order_id: str = ""
    stop_venue_order_id: str = ""
    seq: Mapping[str, int] = attrs.field(factory=dict)
    trailing: TrailingSnapshot
    tp_levels_done: tuple[int, ...] = ()
    tp_orders: Mapping[str, int] = attrs.field(factory=dict)
    aged_client_order_id: str = ""
    aged_exit_price: Decimal | None = None
    aged_started: bool = False
    adopted: bool = False
    origin: Literal["tradebot", "legacy"] = "tradebot"
    imported: bool = False
    close_reason: str = ""


@payload(E.FLATTEN_INTENT)
@attrs.frozen(kw_only=True)
class FlattenIntent(PositionScoped):
    """The stop could not be placed: flatten ``qty`` (base units) at market."""

    reason: str
    qty: Decimal


@payload(E.FLATTEN_VERIFIED)
@attrs.frozen(kw_only=True)
class FlattenVerified(PositionScoped):
    """The flatten left the side flat; ``qty`` (base units) was the filled quantity."""

    reason: str
    qty: Decimal


@payload(E.FLATTEN_FAILED)
@attrs.frozen(kw_only=True)
class FlattenFailed(PositionScoped):
    """A flatten (``attempt``) or a close left the side open (``qty`` still open)."""

    reason: str
    attempt: int | None = None
    qty: Decimal | None = None


# -- trailing ---------------------------------------------------------------------------------


@payload(E.TRAILING_ACTIVATED)
@attrs.frozen(kw_only=True)
class TrailingActivated(PositionScoped):
    """Trailing engaged at ``mark_price`` (USDT); ``water_mark`` starts there."""

    mark_price: Decimal
    water_mark: Decimal | None = None


@payload(E.TRAILING_BREAKEVEN)
@attrs.frozen(kw_only=True)
class TrailingBreakeven(PositionScoped):
    """The stop went to breakeven: by trailing at ``mark_price``, or after the first
    take-profit (``reason`` = ``take_profit``, ``stop_price`` the new stop). USDT."""

    mark_price: Decimal | None = None
    stop_price: Decimal | None = None
    reason: str = ""


@payload(E.TRAILING_UPDATE)
@attrs.frozen(kw_only=True)
class TrailingUpdated(PositionScoped):
    """Trailing moved the stop (confirmed by the venue). Prices in USDT.

    Attributes:
        update_count: exchange stop updates so far.
        reason: the trailing decision (``trail``, ``big_improvement`` ...).
    """

    mark_price: Decimal
    water_mark: Decimal | None = None
    old_stop_price: Decimal | None = None
    stop_price: Decimal | None = None
    update_count: int
    reason: str = ""


@payload(E.TRAILING_SKIPPED)
@attrs.frozen(kw_only=True)
class TrailingSkipped(PositionScoped):
    """A better stop was not sent (``reason``: ``rate_limited`` or
    ``below_min_improvement``); journaled once per update cycle. USDT."""

    mark_price: Decimal
    water_mark: Decimal | None = None
    stop_price: Decimal | None = None
    reason: str


# -- protection -------------------------------------------------------------------------------


@payload(E.PROTECTION_VERIFIED)
@attrs.frozen(kw_only=True)
class ProtectionVerified(PositionScoped):
    """The stop is in place at ``stop_price`` (USDT). ``reason``: what asked
    (``periodic``, ``stream_gap``, ``recovered`` ...); ``quiet_checks``: periodic checks
    with the same stop since the last journaled one."""

    stop_price: Decimal | None
    reason: str
    quiet_checks: int = 0


@payload(E.PROTECTION_MISSING)
@attrs.frozen(kw_only=True)
class ProtectionMissing(PositionScoped):
    """The venue shows ``live`` stops where one was expected (``reason`` the finding,
    ``trigger`` what asked for the check)."""

    live: int
    reason: str
    trigger: str = ""


@payload(E.PROTECTION_REPAIRED)
@attrs.frozen(kw_only=True)
class ProtectionRepaired(PositionScoped):
    """The stop was repaired to ``stop_price`` (USDT)."""

    stop_price: Decimal | None
    reason: str
    trigger: str = ""


@payload(E.PROTECTION_BREACH)
@attrs.frozen(kw_only=True)
class ProtectionBreach(PositionScoped):
    """The mark is already through the stop level (config ``protection.breach_action``):
    ``close`` at market, or ``tighten`` to ``new_stop_price`` (mark ± offset). USDT."""

    mark_price: Decimal
    stop_price: Decimal | None = None
    action: Literal["close", "tighten"]
    reason: str = ""
    new_stop_price: Decimal | None = None


# -- take-profit ------------------------------------------------------------------------------


@payload(E.TP_PLACED)
@attrs.frozen(kw_only=True)
class TakeProfitPlaced(PositionScoped):
    """A take-profit level's reduce-only order was placed, or the level was skipped.

    Attributes:
        level: 0-based level index (config ``take_profit.levels``).
        qty: base units (None when skipped); price: the limit price, USDT (None: market).
        profit_pct / fraction: the level's settings (percent from entry, fraction of the
            filled quantity).
        skipped: why the level was skipped (e.g. below the minimum quantity); "" = placed.
    """

    level: int
    qty: Decimal | None = None
    price: Decimal | None = None
    profit_pct: Decimal | None = None
    fraction: Decimal | None = None
    skipped: str = ""


@payload(E.TP_FILLED)
@attrs.frozen(kw_only=True)
class TakeProfitFilled(PositionScoped):
    """A take-profit level filled: ``qty`` (base) at ``price`` (USDT); ``remaining_qty``
    stays open."""

    level: int
    qty: Decimal
    price: Decimal | None = None
    remaining_qty: Decimal | None = None


# -- aged exit --------------------------------------------------------------------------------


@payload(E.AGED_STARTED)
@attrs.frozen(kw_only=True)
class AgedStarted(PositionScoped):
    """The position is aged (config ``aged.max_age_h``): ``age_h`` hours old."""

    age_h: float


@payload(E.AGED_EXIT_PLACED)
@attrs.frozen(kw_only=True)
class AgedExitPlaced(PositionScoped):
    """The aged exit's reduce-only limit order was placed.

    Attributes:
        price: the limit price, USDT (on the tick, never below the venue's minimum).
        phase: ``BREAKEVEN`` or ``STEPPING`` (``tradebot.policies.AgedPhase`` value).
        loss_pct: the target's loss from breakeven, percent.
        hours_past_grace: whole hours past the grace period.
    """

    price: Decimal
    phase: Literal["BREAKEVEN", "STEPPING"]
    loss_pct: Decimal
    hours_past_grace: int


@payload(E.AGED_EXIT_MOVED)
@attrs.frozen(kw_only=True)
class AgedExitMoved(AgedExitPlaced):
    """The aged exit order was replaced at a new target (moved by at least a tick)."""


@payload(E.AGED_EXIT_FILLED)
@attrs.frozen(kw_only=True)
class AgedExitFilled(PositionScoped):
    """The aged exit filled: ``qty`` (base) at ``price`` (USDT)."""

    qty: Decimal
    price: Decimal


@payload(E.AGED_MARKET_CLOSE)
@attrs.frozen(kw_only=True)
class AgedMarketClose(PositionScoped):
    """The aged target reached the loss cap (``loss_pct``, config ``aged.max_loss_pct``):
    close at market."""

    loss_pct: Decimal


# -- reconciliation (docs/ARCHITECTURE.md §1 invariant 7) -------------------------------------
# Emitted by the Reconciler (actors/reconcile) and, for adoption, the PositionActor.


@payload(E.POSITION_EXIT_RECORDED)
@attrs.frozen(kw_only=True)
class PositionExitRecorded(PositionScoped):
    """The position went flat while nobody watched it (bot down, stream gap): its exit as
    the venue's executions show it.

    Attributes:
        qty: closed quantity, base units (> 0), the sum of the closing fills.
        exit_price: quantity-weighted average price of those fills, USDT.
        realized_pnl_usdt: (exit − entry) × qty for a LONG, (entry − exit) × qty for a
            SHORT, before fees; None without a known entry price.
        fees_usdt: fees of the closing fills (> 0 cost, < 0 rebate).
        reason: ``stop``, ``liquidation``, ``adl``, ``take_profit``, ``aged_exit``,
            ``closed_by_hand`` (a fill of an order that is not ours) or ``unknown`` (no
            closing execution found in the venue's history).
        fills: how many executions; trade_ids: their venue ids.
    """

    qty: Decimal | None = None
    exit_price: Decimal | None = None
    realized_pnl_usdt: Decimal | None = None
    fees_usdt: Decimal = Decimal(0)
    reason: str
    fills: int = 0
    trade_ids: tuple[str, ...] = ()


@payload(E.RECONCILE_STARTED)
@attrs.frozen(kw_only=True)
class ReconcileStarted(Payload):
    """An exchange ↔ journal audit begins; ``trigger``: ``startup`` or ``periodic``."""

    trigger: str


@payload(E.RECONCILE_COMPLETED)
@attrs.frozen(kw_only=True)
class ReconcileCompleted(Payload):
    """The audit ended with ``findings`` findings (each its own event)."""

    trigger: str
    findings: int = 0


@payload(E.RECONCILE_PHANTOM)
@attrs.frozen(kw_only=True)
class ReconcilePhantom(Payload):
    """The journal says the position is open, the exchange says flat (``journal_qty``:
    what the journal holds, base units)."""

    position_side: PositionSide
    journal_qty: Decimal | None = None


@payload(E.RECONCILE_UNTRACKED)
@attrs.frozen(kw_only=True)
class ReconcileUntracked(Payload):
    """The exchange has a position we do not track: ``qty`` (base) at ``entry_price``
    (USDT)."""

    position_side: PositionSide
    qty: Decimal
    entry_price: Decimal | None = None


@payload(E.RECONCILE_ADOPTED)
@attrs.frozen(kw_only=True)
class ReconcileAdopted(PositionScoped):
    """A PositionActor adopted an untracked position: ``qty`` (base) at ``entry_price``
    (USDT); it is protected with the emergency stop when it has none. ``account``
    (``bot.account``) and ``venue`` give its ``positions`` row."""

    qty: Decimal
    entry_price: Decimal | None = None
    account: str = ""
    venue: str = ""


@payload(E.ZOMBIE_ORDER)
@attrs.frozen(kw_only=True)
class ZombieOrderFound(Payload):
    """An open order with our client id prefix that no live actor owns (the event's
    ``client_order_id``); ``reason`` why it is a zombie."""

    reason: str
    venue_order_id: str = ""


@payload(E.ZOMBIE_CANCELLED)
@attrs.frozen(kw_only=True)
class ZombieCancelled(Payload):
    """The Reconciler cancelled a zombie order (its own narrow port)."""

    venue_order_id: str = ""


@payload(E.RECONCILE_FOREIGN_ORDER)
@attrs.frozen(kw_only=True)
class ReconcileForeignOrder(Payload):
    """An open order without our client-id prefix (placed by hand or by another tool):
    never touched, reported once per order (the event's ``client_order_id``)."""

    venue_order_id: str = ""
    order_type: str = ""
    position_side: PositionSide | None = None
    qty: Decimal | None = None
    price: Decimal | None = None
    trigger_price: Decimal | None = None


@payload(E.RECONCILE_QTY_CHANGED)
@attrs.frozen(kw_only=True)
class ReconcileQtyChanged(Payload):
    """The venue's quantity of a managed position differs from its owner's (a partial
    close by hand, ADL): the owner is told to re-verify and re-size its stop."""

    position_side: PositionSide
    owner_qty: Decimal
    venue_qty: Decimal


@payload(E.RECONCILE_RESUMED)
@attrs.frozen(kw_only=True)
class ReconcileResumed(Payload):
    """A position the journal tracks had no running actor: its actor was started and
    recovers from its snapshot and the venue. ``lifecycle`` of the snapshot; ``managed``:
    whether it is managed afterwards (False: it was found closed and closed in the
    journal)."""

    position_side: PositionSide
    lifecycle: str
    managed: bool
    origin: str = "tradebot"


@payload(E.RECONCILE_INTENT_ROLLED_BACK)
@attrs.frozen(kw_only=True)
class ReconcileIntentRolledBack(Payload):
    """An entry intent without a snapshot: the process died before the entry was sent
    (the snapshot is durable before the entry request), so there is nothing on the venue
    to resolve; the position is rolled back in the journal."""

    position_side: PositionSide
    reason: str = "entry_never_sent"
