"""Wave selection: filters, ranking, reserve list and sizing — pure functions.

docs/ARCHITECTURE.md §5 "Waves": filters (stoplist, venue, min scores, instrument tradable,
existing position on that symbol/side, limits); candidates ranked by score;
``max_trades_per_wave`` opened from a ranked list with a +50 % reserve.

Ranking key (deterministic; ties never depend on arrival order): ``score_week``
descending, then ``score_month`` descending (a missing score ranks below any score), then
``symbol``, position side and ``signal_id`` ascending. When one wave holds several signals
for the same symbol and side, the best-ranked one is kept and the others are filtered
``duplicate_in_wave``.

The limits that change while a wave is being opened (max open positions, max exposure)
are checked again right before each open with :func:`limit_reason`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal

import attrs

from tradebot.domain import Instrument, InstrumentStatus, PositionSide
from tradebot.policies.sizing import check_limits, size_position
from tradebot.signals._protocol import Signal
from tradebot.signals._settings import WaveSettings

__all__ = ["Candidate", "Filtered", "WavePlan", "limit_reason", "plan_wave", "rank_key"]

# Filter reasons (stable strings, stored in signals.reason).
STOPLIST = "stoplist"
VENUE_MISMATCH = "venue_mismatch"
MIN_SCORE_WEEK = "min_score_week"
MIN_SCORE_MONTH = "min_score_month"
UNKNOWN_INSTRUMENT = "unknown_instrument"
NOT_TRADABLE = "not_tradable"
EXISTING_POSITION = "existing_position"
NO_PRICE = "no_price"
DUPLICATE_IN_WAVE = "duplicate_in_wave"
BELOW_RESERVE = "below_reserve_cutoff"


@attrs.frozen(slots=True)
class Candidate:
    """A signal that passed the filters, sized.

    Attributes:
        signal: the signal.
        rank: 1-based rank in the wave.
        reference_price: mark price used for sizing, USDT.
        qty: base quantity, floored to the qty step, >= min qty.
        notional_usdt: ``qty * reference_price`` (>= min notional).
    """

    signal: Signal
    rank: int
    reference_price: Decimal
    qty: Decimal
    notional_usdt: Decimal


@attrs.frozen(slots=True)
class Filtered:
    """A signal that was not selected, with the reason (see module constants)."""

    signal: Signal
    reason: str


@attrs.frozen
class WavePlan:
    """Result of :func:`plan_wave`.

    Attributes:
        reserve: ranked candidates, at most ``WaveSettings.reserve_size``; open them in
            order until ``max_trades_per_wave`` are open.
        filtered: every other signal with its reason (input order).
    """

    reserve: tuple[Candidate, ...]
    filtered: tuple[Filtered, ...]


def rank_key(signal: Signal) -> tuple[bool, Decimal, bool, Decimal, str, str, str]:
    """Sort key: best first (see the module docstring)."""
    sw = signal.score_week
    sm = signal.score_month
    return (
        sw is None,
        -sw if sw is not None else Decimal(0),
        sm is None,
        -sm if sm is not None else Decimal(0),
        signal.symbol,
        signal.position_side.value,
        signal.signal_id,
    )


def plan_wave(
    signals: Iterable[Signal],
    *,
    settings: WaveSettings,
    instruments: Mapping[str, Instrument],
    price_of: Callable[[str], Decimal | None],
    has_position: Callable[[str, PositionSide], bool],
) -> WavePlan:
    """Filter, rank, de-duplicate, size and cut a wave's signals to the reserve list.

    Args:
        signals: the wave's valid signals (any order).
        settings: wave settings (filters, reserve size, ``risk.position_size_usdt``).
        instruments: tradable instruments by symbol (qty step, min qty, min notional).
        price_of: latest mark price of a symbol, or None when unknown.
        has_position: whether a position is open on (symbol, position side).

    Returns:
        The :class:`WavePlan`. Pure apart from calling ``price_of``/``has_position``.
    """
    filtered: list[Filtered] = []
    passed: list[Signal] = []
    venues = settings.venues
    stoplist = settings.stoplist
    min_w = settings.min_score_week
    min_m = settings.min_score_month
    for s in signals:
        if s.symbol in stoplist:
            filtered.append(Filtered(s, STOPLIST))
        elif venues and s.venue not in venues:
            filtered.append(Filtered(s, VENUE_MISMATCH))
        elif min_w is not None and (s.score_week is None or s.score_week < min_w):
            filtered.append(Filtered(s, MIN_SCORE_WEEK))
        elif min_m is not None and (s.score_month is None or s.score_month < min_m):
            filtered.append(Filtered(s, MIN_SCORE_MONTH))
        else:
            passed.append(s)
    passed.sort(key=rank_key)

    reserve: list[Candidate] = []
    seen: set[tuple[str, PositionSide]] = set()
    size_usdt = settings.risk.position_size_usdt
    limit = settings.reserve_size
    for s in passed:
        key = (s.symbol, s.position_side)
        if key in seen:
            filtered.append(Filtered(s, DUPLICATE_IN_WAVE))
            continue
        seen.add(key)
        instrument = instruments.get(s.symbol)
        if instrument is None:
            filtered.append(Filtered(s, UNKNOWN_INSTRUMENT))
            continue
        if instrument.status is not InstrumentStatus.TRADING:
            filtered.append(Filtered(s, NOT_TRADABLE))
            continue
        if has_position(s.symbol, s.position_side):
            filtered.append(Filtered(s, EXISTING_POSITION))
            continue
        if len(reserve) >= limit:
            filtered.append(Filtered(s, BELOW_RESERVE))
            continue
        price = price_of(s.symbol)
        if price is None or price <= 0:
            filtered.append(Filtered(s, NO_PRICE))
            continue
        sized = size_position(size_usdt, price, instrument)
        if not sized.ok:
            filtered.append(Filtered(s, sized.reason))
            continue
        reserve.append(Candidate(s, len(reserve) + 1, price, sized.qty, sized.notional_usdt))
    return WavePlan(tuple(reserve), tuple(filtered))


def limit_reason(
    candidate: Candidate, *, settings: WaveSettings, open_count: int, exposure_usdt: Decimal
) -> str | None:
    """Re-check the account limits right before opening ``candidate``.

    Returns:
        None when it fits, else ``"max_open_positions"`` or ``"max_exposure"``
        (``risk.max_open_positions``, ``risk.max_exposure_usdt``).
    """
    return check_limits(
        open_count=open_count,
        exposure_usdt=exposure_usdt,
        new_notional_usdt=candidate.notional_usdt,
        settings=settings.risk,
    )
