"""Trailing stop: a pure state machine (docs/ARCHITECTURE.md §5, "Trailing stop").

Phases: ``INACTIVE → (BREAKEVEN) → ACTIVE → TRIGGERED``.

* Activation when profit reaches ``activation_pct`` (+1.5 %), or — when
  ``time_activation_min`` is set — after that many minutes if the position is in profit.
* While ACTIVE the desired stop trails the high-water mark (long) / low-water mark (short)
  by ``callback_pct`` (0.5 %), rounded protectively to the tick.
* Exchange updates are rate-limited: at least ``min_update_interval_s`` (60 s) since the
  last update AND at least ``min_improvement_pct`` (0.1 %) better than the live stop,
  except an improvement of ``immediate_improvement_pct`` (1.0 %) or more goes through at
  once. Phase transitions (breakeven, activation) go through at once.
* Optional breakeven: at ``breakeven_trigger_pct`` profit the stop moves to the entry
  price plus ``breakeven_offset_pct`` (fees).
* TRIGGERED once the mark crosses the live stop (the exchange stop fires); terminal.

The caller (the PositionActor) owns the live stop. :func:`trailing_step` never loosens:
it only proposes a stop strictly tighter than ``current_stop`` and strictly on the
protective side of the mark. After the venue confirms the move the caller records it with
:meth:`TrailingState.with_update`. The state round-trips through a JSON-safe dict
(:meth:`TrailingState.to_dict` / :meth:`TrailingState.from_dict`) for POSITION_SNAPSHOT.
"""

from __future__ import annotations

import enum
from datetime import datetime
from decimal import Decimal
from typing import Any

import attrs

from tradebot.bounds import CrossFieldError, decimal_field, number_field
from tradebot.domain import Instrument, PositionSide
from tradebot.money import move_by_pct, pct_change
from tradebot.policies.stops import NoValidStop, is_protective, is_tighter, protective_stop_price

__all__ = [
    "QuietBand",
    "TrailingDecision",
    "TrailingPhase",
    "TrailingSettings",
    "TrailingState",
    "improvement_pct",
    "quiet_band",
    "trailing_step",
]


@attrs.frozen
class TrailingSettings:
    """Trailing-stop parameters (config section ``trailing``; defaults docs/ARCHITECTURE.md §5).

    Attributes:
        activation_pct: profit (percent of entry) that activates trailing, in (0, 100);
            default 1.5.
        callback_pct: distance of the stop from the high/low-water mark, percent, in
            (0, 100); 0.5.
        min_update_interval_s: minimum seconds between exchange updates, in [0, 86400]; 60.
        min_improvement_pct: minimum improvement (percent of the live stop) of a
            rate-limited update, in [0, 100); 0.1.
        immediate_improvement_pct: an improvement of at least this many percent is sent at
            once, ignoring the interval, in (0, 100) and >= ``min_improvement_pct``; 1.0.
        breakeven_trigger_pct: profit at which the stop moves to breakeven, in (0, 100);
            None = off.
        breakeven_offset_pct: breakeven stop = entry moved this many percent into profit
            (covers fees), in [0, 100); default 0.1.
        time_activation_min: activate after this many minutes if in profit, in
            (0, 525600] (one year); None = off.

    Raises:
        ValueError: a value out of range; :class:`tradebot.bounds.CrossFieldError` when
            ``immediate_improvement_pct < min_improvement_pct``.
    """

    activation_pct: Decimal = decimal_field("1.5", gt="0", lt="100")
    callback_pct: Decimal = decimal_field("0.5", gt="0", lt="100")
    min_update_interval_s: float = number_field(60.0, ge="0", le="86400")
    min_improvement_pct: Decimal = decimal_field("0.1", ge="0", lt="100")
    immediate_improvement_pct: Decimal = decimal_field("1.0", gt="0", lt="100")
    breakeven_trigger_pct: Decimal | None = decimal_field(None, gt="0", lt="100", optional=True)
    breakeven_offset_pct: Decimal = decimal_field("0.1", ge="0", lt="100")
    time_activation_min: float | None = number_field(None, gt="0", le="525600", optional=True)

    def __attrs_post_init__(self) -> None:
        if self.immediate_improvement_pct < self.min_improvement_pct:
            raise CrossFieldError(
                "immediate_improvement_pct",
                f"must be >= {{0}} (got {self.immediate_improvement_pct} < "
                f"{self.min_improvement_pct})",
                ("min_improvement_pct",),
            )


class TrailingPhase(enum.Enum):
    INACTIVE = "INACTIVE"
    BREAKEVEN = "BREAKEVEN"
    ACTIVE = "ACTIVE"
    TRIGGERED = "TRIGGERED"


@attrs.frozen
class TrailingState:
    """Persistent trailing state of one position.

    Attributes:
        phase: current phase.
        water_mark: high-water mark (long) / low-water mark (short) of the mark price since
            the position opened, USDT; None before the first price.
        update_count: exchange stop updates made by trailing (incl. breakeven).
        last_update_at: time of the last confirmed update (aware UTC) or None.
        activated_at: when trailing became ACTIVE, or None.
    """

    phase: TrailingPhase = TrailingPhase.INACTIVE
    water_mark: Decimal | None = None
    update_count: int = 0
    last_update_at: datetime | None = None
    activated_at: datetime | None = None

    def with_update(self, now: datetime) -> TrailingState:
        """The state after the venue confirmed a trailing stop move at ``now``."""
        return attrs.evolve(self, update_count=self.update_count + 1, last_update_at=now)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict (Decimal → str, datetime → ISO-8601)."""
        return {
            "phase": self.phase.value,
            "water_mark": None if self.water_mark is None else str(self.water_mark),
            "update_count": self.update_count,
            "last_update_at": None
            if self.last_update_at is None
            else self.last_update_at.isoformat(),
            "activated_at": None if self.activated_at is None else self.activated_at.isoformat(),
        }

    @classmethod
    def from_dict(cls, data: Any) -> TrailingState:
        """Inverse of :meth:`to_dict`.

        Raises:
            ValueError: for a malformed dict (unknown phase, bad number or time).
        """
        try:
            wm = data.get("water_mark")
            lu = data.get("last_update_at")
            aa = data.get("activated_at")
            return cls(
                phase=TrailingPhase(data.get("phase", "INACTIVE")),
                water_mark=None if wm is None else Decimal(str(wm)),
                update_count=int(data.get("update_count", 0)),
                last_update_at=None if lu is None else datetime.fromisoformat(lu),
                activated_at=None if aa is None else datetime.fromisoformat(aa),
            )
        except (ArithmeticError, TypeError, AttributeError, KeyError) as exc:
            raise ValueError(f"malformed trailing state: {data!r}: {exc}") from exc


@attrs.frozen
class TrailingDecision:
    """Result of one :func:`trailing_step`.

    Attributes:
        state: the new state (water mark / phase updated; ``update_count`` and
            ``last_update_at`` change only through :meth:`TrailingState.with_update`).
        new_stop: the stop to send now (strictly tighter than the live stop, protective of
            the mark, on tick), or None.
        reason: why: ``"activated"``, ``"breakeven"``, ``"trail"``, ``"trail_immediate"``,
            or for no move ``"inactive"``, ``"not_tighter"``, ``"rate_limited"``,
            ``"below_min_improvement"``, ``"through_mark"``, ``"triggered"``.
        events: phase transitions that happened in this step (``"activated"``,
            ``"breakeven"``, ``"triggered"``).
    """

    state: TrailingState
    new_stop: Decimal | None
    reason: str
    events: tuple[str, ...] = ()


def improvement_pct(current_stop: Decimal, new_stop: Decimal, side: PositionSide) -> Decimal:
    """How much tighter ``new_stop`` is than ``current_stop``, percent of ``current_stop``
    (positive = tighter)."""
    return side.sign * pct_change(current_stop, new_stop)


def _profit_pct(entry: Decimal, mark: Decimal, side: PositionSide) -> Decimal:
    return side.sign * pct_change(entry, mark)


def trailing_step(
    state: TrailingState,
    *,
    settings: TrailingSettings,
    side: PositionSide,
    instrument: Instrument,
    entry_price: Decimal,
    opened_at: datetime,
    mark_price: Decimal,
    current_stop: Decimal,
    now: datetime,
) -> TrailingDecision:
    """Advance the trailing state machine by one mark price.

    Args:
        state: current state.
        settings: trailing parameters.
        side: position side.
        instrument: tick size / minimum price.
        entry_price: average entry price, USDT > 0.
        opened_at: when the position became ACTIVE (aware UTC).
        mark_price: the new mark price, USDT > 0.
        current_stop: the live stop on the venue, USDT > 0.
        now: current time (aware UTC).

    Returns:
        A :class:`TrailingDecision`; ``new_stop`` is None unless a move is due now.
    """
    if state.phase is TrailingPhase.TRIGGERED:
        return TrailingDecision(state, None, "triggered")
    # 1. the water mark
    wm = state.water_mark
    if wm is None:
        wm = (
            max(entry_price, mark_price)
            if side is PositionSide.LONG
            else min(entry_price, mark_price)
        )
    elif (side is PositionSide.LONG and mark_price > wm) or (
        side is PositionSide.SHORT and mark_price < wm
    ):
        wm = mark_price
    st = state if wm == state.water_mark else attrs.evolve(state, water_mark=wm)
    # 2. the live stop crossed: the venue stop fires
    if not is_protective(current_stop, mark_price, side):
        return TrailingDecision(
            attrs.evolve(st, phase=TrailingPhase.TRIGGERED), None, "triggered", ("triggered",)
        )
    profit = _profit_pct(entry_price, mark_price, side)
    events: list[str] = []
    # 3. phase transitions
    transition = ""
    if st.phase in (TrailingPhase.INACTIVE, TrailingPhase.BREAKEVEN):
        age_min = (now - opened_at).total_seconds() / 60.0
        by_profit = profit >= settings.activation_pct
        by_time = (
            settings.time_activation_min is not None
            and age_min >= settings.time_activation_min
            and profit > 0
        )
        if by_profit or by_time:
            st = attrs.evolve(st, phase=TrailingPhase.ACTIVE, activated_at=now)
            events.append("activated")
            transition = "activated"
        elif (
            st.phase is TrailingPhase.INACTIVE
            and settings.breakeven_trigger_pct is not None
            and profit >= settings.breakeven_trigger_pct
        ):
            st = attrs.evolve(st, phase=TrailingPhase.BREAKEVEN)
            events.append("breakeven")
            transition = "breakeven"
    # 4. the desired stop
    if st.phase is TrailingPhase.INACTIVE:
        return TrailingDecision(st, None, "inactive", tuple(events))
    if st.phase is TrailingPhase.BREAKEVEN:
        raw = move_by_pct(entry_price, side.sign * settings.breakeven_offset_pct)
    else:
        raw = move_by_pct(wm, -side.sign * settings.callback_pct)
    try:
        desired = instrument.round_price(raw, side.stop_rounding)
        if not is_protective(desired, mark_price, side):
            return TrailingDecision(st, None, "through_mark", tuple(events))
        desired = protective_stop_price(raw, mark_price, side, instrument)
    except NoValidStop:
        return TrailingDecision(st, None, "through_mark", tuple(events))
    if not is_tighter(desired, current_stop, side):
        return TrailingDecision(st, None, "not_tighter", tuple(events))
    if transition:
        return TrailingDecision(st, desired, transition, tuple(events))
    # 5. rate limit
    imp = improvement_pct(current_stop, desired, side)
    if imp >= settings.immediate_improvement_pct:
        return TrailingDecision(st, desired, "trail_immediate", tuple(events))
    if st.last_update_at is not None and (
        (now - st.last_update_at).total_seconds() < settings.min_update_interval_s
    ):
        return TrailingDecision(st, None, "rate_limited", tuple(events))
    if imp < settings.min_improvement_pct:
        return TrailingDecision(st, None, "below_min_improvement", tuple(events))
    return TrailingDecision(st, desired, "trail", tuple(events))


@attrs.frozen(slots=True)
class QuietBand:
    """Mark prices at which :func:`trailing_step` cannot change anything (see :func:`quiet_band`).

    Long: ``stop < mark <= water_mark``; short: ``water_mark <= mark < stop`` (the live stop
    exclusive: a mark on it triggers; the water mark inclusive: only a new extreme moves it).
    ``stop`` and ``water_mark`` both None: every mark is quiet (the TRIGGERED phase).

    Attributes:
        side: the position side the bounds are for.
        stop: the live stop, USDT (exclusive bound).
        water_mark: the high-water (long) / low-water (short) mark, USDT (inclusive bound).
        rate_limited: the decisions inside may be ``"rate_limited"`` or
            ``"below_min_improvement"`` (a better stop exists but is held back); a caller
            that reports such a hold-back once per update cycle must not skip marks before
            it has reported it.
    """

    side: PositionSide
    stop: Decimal | None
    water_mark: Decimal | None
    rate_limited: bool = False

    def contains(self, mark_price: Decimal) -> bool:
        """True when ``mark_price`` (USDT) is inside the band."""
        stop, wm = self.stop, self.water_mark
        if stop is None or wm is None:
            return True
        if self.side is PositionSide.LONG:
            return stop < mark_price <= wm
        return wm <= mark_price < stop


def quiet_band(
    state: TrailingState,
    *,
    settings: TrailingSettings,
    side: PositionSide,
    instrument: Instrument,
    entry_price: Decimal,
    current_stop: Decimal,
) -> QuietBand | None:
    """The band of mark prices inside which :func:`trailing_step` is a no-op at any time.

    For every mark ``m`` with ``band.contains(m)`` and every ``now``,
    ``trailing_step(state, ..., mark_price=m, current_stop=current_stop, now=now)`` returns
    ``state`` unchanged (same phase and water mark), ``new_stop`` None and no events. The
    PositionActor uses it to skip such marks without a task switch (issue 15 item 2); the
    property test ``tests/test_policies_properties.py`` checks the promise against
    :func:`trailing_step` itself.

    Args: as :func:`trailing_step` (``entry_price``, ``current_stop`` USDT > 0).

    Returns:
        The band, or None when no mark can be promised quiet: no water mark yet, the
        BREAKEVEN phase, time activation configured while not yet ACTIVE, a held-back
        move that the passing of time alone can release (an improvement between
        ``min_improvement_pct`` and ``immediate_improvement_pct``) or one that goes out
        at once (>= ``immediate_improvement_pct``).
    """
    phase = state.phase
    if phase is TrailingPhase.TRIGGERED:
        return QuietBand(side, None, None)
    wm = state.water_mark
    if wm is None or phase is TrailingPhase.BREAKEVEN:
        return None
    if phase is TrailingPhase.INACTIVE:
        if settings.time_activation_min is not None:
            return None
        # profit is monotone in the mark, and every mark in the band is no better than wm
        profit = _profit_pct(entry_price, wm, side)
        if profit >= settings.activation_pct or (
            settings.breakeven_trigger_pct is not None and profit >= settings.breakeven_trigger_pct
        ):
            return None
        return QuietBand(side, current_stop, wm)
    # ACTIVE: the desired stop depends on the water mark alone while the mark stays inside
    raw = move_by_pct(wm, -side.sign * settings.callback_pct)
    desired = instrument.round_price(raw, side.stop_rounding)
    if not is_tighter(desired, current_stop, side):
        return QuietBand(side, current_stop, wm)  # "not_tighter" or "through_mark"
    imp = improvement_pct(current_stop, desired, side)
    if imp < settings.min_improvement_pct:
        # "through_mark", "rate_limited" or "below_min_improvement" whatever the time
        return QuietBand(side, current_stop, wm, rate_limited=True)
    return None
