"""Property tests (hypothesis) of the stop invariants, docs/ARCHITECTURE.md §1 invariant 3:
a stop never loosens, is on the protective side of the mark, is a tick multiple and never 0."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from tradebot.domain import Instrument, PositionSide
from tradebot.money import Rounding, quantize_to_step
from tradebot.policies import (
    AgedSettings,
    NoValidStop,
    ProtectionSettings,
    RepairAction,
    TakeProfitSettings,
    TrailingSettings,
    TrailingState,
    aged_target,
    decide_repair,
    due_take_profits,
    initial_stop_price,
    quiet_band,
    size_position,
    stop_violations,
    trailing_step,
)

T0 = datetime(2025, 5, 20, tzinfo=UTC)
sides = st.sampled_from([PositionSide.LONG, PositionSide.SHORT])
ticks = st.sampled_from([D("0.1"), D("0.01"), D("0.0001"), D("0.00001"), D("0.5"), D("1")])


@st.composite
def instrument_and_price(draw: st.DrawFn) -> tuple[Instrument, D]:
    tick = draw(ticks)
    units = draw(st.integers(min_value=1, max_value=10_000_000))
    inst = Instrument(
        "PROPUSDT", tick_size=tick, qty_step=D("0.001"), min_qty=D("0.001"), min_notional=D("5")
    )
    return inst, tick * units


def on_tick(p: D, tick: D) -> bool:
    return quantize_to_step(p, tick, Rounding.DOWN) == p


@given(instrument_and_price(), sides)
def test_initial_stop_is_valid_and_protective(ip: tuple[Instrument, D], side: PositionSide) -> None:
    inst, entry = ip
    try:
        stop = initial_stop_price(entry, side, inst)
    except NoValidStop:
        assert side is PositionSide.LONG and entry <= 2 * inst.tick_size
        return
    assert stop_violations(stop, side=side, instrument=inst, mark_price=entry) == []


@settings(max_examples=150)
@given(
    instrument_and_price(),
    sides,
    st.lists(
        st.tuples(
            st.integers(min_value=-300, max_value=300), st.integers(min_value=0, max_value=200)
        ),
        min_size=1,
        max_size=60,
    ),
    st.booleans(),
    st.booleans(),
)
def test_trailing_never_loosens_and_stays_protective(
    ip: tuple[Instrument, D],
    side: PositionSide,
    moves: list[tuple[int, int]],
    breakeven: bool,
    by_time: bool,
) -> None:
    inst, entry = ip
    try:
        stop = initial_stop_price(entry, side, inst)
    except NoValidStop:
        return
    s = TrailingSettings(
        breakeven_trigger_pct=D("0.7") if breakeven else None,
        time_activation_min=5 if by_time else None,
    )
    state = TrailingState()
    mark = entry
    now = T0
    for bp, dt_s in moves:
        mark = inst.round_price(mark * (1 + D(bp) / 10_000), Rounding.DOWN)
        now += timedelta(seconds=dt_s)
        d = trailing_step(
            state,
            settings=s,
            side=side,
            instrument=inst,
            entry_price=entry,
            opened_at=T0,
            mark_price=mark,
            current_stop=stop,
            now=now,
        )
        state = d.state
        if d.new_stop is not None:
            assert (
                stop_violations(
                    d.new_stop, side=side, instrument=inst, mark_price=mark, previous_stop=stop
                )
                == []
            )
            assert d.new_stop != stop
            stop = d.new_stop
            state = state.with_update(now)
        assert TrailingState.from_dict(state.to_dict()) == state


@settings(max_examples=200)
@given(
    instrument_and_price(),
    sides,
    st.lists(
        st.tuples(
            st.integers(min_value=-300, max_value=300),
            st.integers(min_value=0, max_value=200),
            st.booleans(),
        ),
        min_size=1,
        max_size=40,
    ),
    st.lists(st.integers(min_value=0, max_value=1000), min_size=1, max_size=6),
    st.integers(min_value=0, max_value=100_000),
    st.booleans(),
)
def test_quiet_band_marks_change_nothing(
    ip: tuple[Instrument, D],
    side: PositionSide,
    moves: list[tuple[int, int, bool]],
    probes: list[int],
    later_s: int,
    breakeven: bool,
) -> None:
    """Issue 15 item 2: inside ``quiet_band`` every mark, at any later time, is a no-op of
    ``trailing_step`` (same state, no stop, no events) — the PositionActor skips such marks."""
    inst, entry = ip
    try:
        stop = initial_stop_price(entry, side, inst)
    except NoValidStop:
        return
    s = TrailingSettings(breakeven_trigger_pct=D("0.7") if breakeven else None)
    state = TrailingState()
    mark = entry
    now = T0
    for bp, dt_s, venue_accepts in moves:
        mark = inst.round_price(mark * (1 + D(bp) / 10_000), Rounding.DOWN)
        assume(mark > 0)
        now += timedelta(seconds=dt_s)
        kw = {"settings": s, "side": side, "instrument": inst, "entry_price": entry}
        d = trailing_step(state, **kw, opened_at=T0, mark_price=mark, current_stop=stop, now=now)
        state = d.state
        if d.new_stop is not None and venue_accepts:  # a refused move leaves a held-back stop
            stop = d.new_stop
            state = state.with_update(now)
        band = quiet_band(state, **kw, current_stop=stop)
        if band is None:
            continue
        if band.stop is None or band.water_mark is None:
            candidates = [mark, entry, stop]
        else:
            lo, hi = sorted((band.stop, band.water_mark))
            candidates = [band.water_mark] + [lo + (hi - lo) * D(k) / 1000 for k in probes]
        for m in candidates:
            if m <= 0 or not band.contains(m):
                continue
            for t in (now, now + timedelta(seconds=later_s)):
                q = trailing_step(state, **kw, opened_at=T0, mark_price=m, current_stop=stop, now=t)
                assert q.state == state and q.new_stop is None and q.events == (), (m, t, q)
                if not band.rate_limited:
                    assert q.reason not in ("rate_limited", "below_min_improvement")


@given(
    instrument_and_price(),
    sides,
    st.integers(min_value=-900, max_value=900),
    st.lists(st.integers(min_value=-500, max_value=500), max_size=3),
    st.booleans(),
    st.sampled_from(["tighten", "close"]),
)
def test_repair_stop_is_protective_and_never_looser(
    ip: tuple[Instrument, D],
    side: PositionSide,
    mark_bp: int,
    live_bp: list[int],
    adopted: bool,
    breach: str,
) -> None:
    inst, entry = ip
    mark = inst.round_price(entry * (1 + D(mark_bp) / 10_000), Rounding.DOWN)
    try:
        intended = None if adopted else initial_stop_price(entry, side, inst)
    except NoValidStop:
        return
    live = [
        inst.round_price(entry * (1 - side.sign * D(abs(b)) / 10_000), Rounding.DOWN)
        for b in live_bp
    ]
    d = decide_repair(
        side=side,
        instrument=inst,
        entry_price=entry,
        mark_price=mark,
        intended_stop=intended,
        live_stop_prices=live,
        settings=ProtectionSettings(breach_action=breach),
    )
    if d.action is RepairAction.CLOSE:
        return
    assert d.stop_price is not None
    assert stop_violations(d.stop_price, side=side, instrument=inst, mark_price=mark) == []
    for prior in ([intended] if intended is not None else []) + live:
        if d.reason != "breach_tighten":
            assert (
                stop_violations(d.stop_price, side=side, instrument=inst, previous_stop=prior) == []
            )


@given(instrument_and_price(), sides, st.floats(min_value=0, max_value=40))
def test_aged_prices_are_valid_ticks_never_zero(
    ip: tuple[Instrument, D], side: PositionSide, age_h: float
) -> None:
    inst, entry = ip
    t = aged_target(
        opened_at=T0,
        now=T0 + timedelta(hours=age_h),
        entry_price=entry,
        side=side,
        instrument=inst,
        settings=AgedSettings(),
    )
    if t.price is not None:
        assert t.price > 0 and t.price >= inst.price_floor and on_tick(t.price, inst.tick_size)


@given(
    st.integers(min_value=1, max_value=10**6),
    st.integers(min_value=1, max_value=10**7),
    st.sampled_from([D("1"), D("0.1"), D("0.001")]),
)
def test_sizing_floors_to_step_and_respects_minimums(
    notional: int, price_units: int, step: D
) -> None:
    inst = Instrument("S", tick_size=D("0.01"), qty_step=step, min_qty=step, min_notional=D("5"))
    price = D("0.01") * price_units
    r = size_position(D(notional), price, inst)
    if r.ok:
        assert on_tick(r.qty, step) and r.qty >= inst.min_qty
        assert r.qty * price <= D(notional) and r.qty * price >= inst.min_notional


@given(
    st.integers(min_value=1, max_value=100_000),
    st.integers(min_value=0, max_value=100),
    st.sets(st.integers(min_value=0, max_value=2)),
)
def test_take_profit_never_exceeds_remaining(
    filled_units: int, remaining_pct: int, done: set[int]
) -> None:
    inst = Instrument(
        "S", tick_size=D("0.01"), qty_step=D("0.001"), min_qty=D("0.001"), min_notional=D("5")
    )
    filled = D("0.001") * filled_units
    remaining = inst.floor_qty(filled * remaining_pct / 100)
    s = TakeProfitSettings(levels=[("1", "0.25"), ("2", "0.25"), ("3", "0.5")])
    orders = due_take_profits(
        settings=s,
        side=PositionSide.LONG,
        instrument=inst,
        entry_price=D("100"),
        mark_price=D("110"),
        filled_qty=filled,
        remaining_qty=remaining,
        done=done,
    )
    assert sum(o.qty for o in orders) <= remaining
    assert all(on_tick(o.qty, inst.qty_step) for o in orders)
    assert not {o.level_index for o in orders} & done
