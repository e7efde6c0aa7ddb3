"""Protection repair decision (docs/ARCHITECTURE.md §5, "Protection").

The PositionActor verifies its stop on the exchange every ``verify_interval_s`` and at once
on stream gaps, missing-order events or reconciler findings. :func:`decide_repair` says what
to do with what the venue shows:

* exactly one live stop, at (or tighter than) the intended level → ``OK``
  (a tighter live stop is kept and becomes the intended one: never loosen);
* no stop, or a looser one → ``PLACE`` the intended stop (for an adopted position without
  intent: an emergency stop ``emergency_pct`` = 3 % from entry);
* more than one → ``DEDUPE``: keep the tightest, cancel the others;
* the mark is already through the level → ``breach_action``: ``"tighten"`` places the stop
  at mark ∓ ``breach_tighten_pct`` (0.5 %), ``"close"`` closes at market.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from decimal import Decimal
from typing import Literal

import attrs

from tradebot.bounds import decimal_field, number_field, setting
from tradebot.domain import Instrument, PositionSide
from tradebot.money import move_by_pct
from tradebot.policies.stops import (
    NoValidStop,
    StopLossSettings,
    emergency_stop_price,
    is_protective,
    is_tighter,
    protective_stop_price,
    tightest,
)

__all__ = ["ProtectionSettings", "RepairAction", "RepairDecision", "decide_repair"]


@attrs.frozen
class ProtectionSettings:
    """Protection parameters (config section ``protection``).

    Attributes:
        verify_interval_s: seconds between stop verifications, in (0, 86400]; default 30.
        emergency_pct: emergency stop distance from entry for adopted positions, percent,
            in (0, 100); default 3 (docs/ARCHITECTURE.md §5).
        breach_action: ``"tighten"`` (stop at mark ∓ ``breach_tighten_pct``) or ``"close"``
            (reduce-only market close) when the mark is already through the stop level.
        breach_tighten_pct: distance from the mark of a breach stop, percent, in (0, 100);
            default 0.5.
        verified_journal_interval_s: a periodic verification that finds the same stop as
            the last journaled one is journaled at most this often (the journaled event
            counts the quiet checks in between); any other verification — a changed stop,
            a repair, a stream gap, a recovery — is journaled at once; in [0, 86400];
            default 600.

    Raises:
        ValueError: a value out of range or an unknown ``breach_action``.
    """

    verify_interval_s: float = number_field(30.0, gt="0", le="86400")
    emergency_pct: Decimal = decimal_field("3", gt="0", lt="100")
    breach_action: Literal["tighten", "close"] = setting(
        "tighten", validator=attrs.validators.in_(("tighten", "close"))
    )
    breach_tighten_pct: Decimal = decimal_field("0.5", gt="0", lt="100")
    verified_journal_interval_s: float = number_field(600.0, ge="0", le="86400")


class RepairAction(enum.Enum):
    OK = "ok"
    PLACE = "place"  # place/move the stop to ``stop_price``
    DEDUPE = "dedupe"  # keep the stop at ``stop_price``, cancel the rest
    CLOSE = "close"  # reduce-only market close


@attrs.frozen
class RepairDecision:
    """What to do. ``stop_price`` is the stop that must be live afterwards (None for CLOSE);
    ``reason`` is journaled (``"verified"``, ``"missing"``, ``"looser_than_intended"``,
    ``"duplicates"``, ``"breach_tighten"``, ``"breach_close"``, ``"adopted_emergency"``,
    ``"live_tighter_kept"``)."""

    action: RepairAction
    stop_price: Decimal | None
    reason: str


def decide_repair(
    *,
    side: PositionSide,
    instrument: Instrument,
    entry_price: Decimal,
    mark_price: Decimal,
    intended_stop: Decimal | None,
    live_stop_prices: Sequence[Decimal],
    settings: ProtectionSettings | None = None,
) -> RepairDecision:
    """Decide how to make the position protected by exactly one correct stop.

    Args:
        side: position side.
        instrument: tick size / minimum price.
        entry_price: average entry price, USDT > 0.
        mark_price: current mark price, USDT > 0.
        intended_stop: the stop we intend (journaled), or None for an adopted position.
        live_stop_prices: trigger prices of the stops the venue shows for this position side.
        settings: protection parameters.

    Returns:
        A :class:`RepairDecision` whose ``stop_price`` obeys the stop invariants
        (protective of ``mark_price``, on tick, never looser than the intended or the
        tightest live stop).
    """
    s = settings or ProtectionSettings()
    reason = "missing"
    target = intended_stop
    if target is None:
        try:
            target = emergency_stop_price(
                entry_price, side, instrument, StopLossSettings(emergency_pct=s.emergency_pct)
            )
        except NoValidStop:
            return RepairDecision(RepairAction.CLOSE, None, "no_valid_stop")
        reason = "adopted_emergency"
    live = list(live_stop_prices)
    if live:
        best_live = live[0]
        for p in live[1:]:
            best_live = tightest(best_live, p, side)
        # never loosen: a tighter live stop wins over the intended one
        target = tightest(target, best_live, side)
    if not is_protective(target, mark_price, side):
        if s.breach_action == "close":
            return RepairDecision(RepairAction.CLOSE, None, "breach_close")
        raw = move_by_pct(mark_price, -side.sign * s.breach_tighten_pct)
        try:
            breach = protective_stop_price(raw, mark_price, side, instrument)
        except NoValidStop:
            return RepairDecision(RepairAction.CLOSE, None, "breach_close")
        return RepairDecision(RepairAction.PLACE, breach, "breach_tighten")
    if not live:
        return RepairDecision(RepairAction.PLACE, target, reason)
    if len(live) > 1:
        return RepairDecision(RepairAction.DEDUPE, target, "duplicates")
    if live[0] == target:
        if intended_stop is not None and is_tighter(live[0], intended_stop, side):
            return RepairDecision(RepairAction.OK, target, "live_tighter_kept")
        return RepairDecision(RepairAction.OK, target, "verified")
    return RepairDecision(RepairAction.PLACE, target, "looser_than_intended")
