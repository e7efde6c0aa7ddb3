"""More property tests (hypothesis) for tradebot.money and tradebot.domain.Instrument
(issue 2 item 3), beyond tests/test_money.py: quantity flooring, non-decimal steps, the
percent helpers' inverse relations, protective stop rounding and order checks."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from tradebot.domain import Instrument, InstrumentStatus, PositionSide
from tradebot.money import Rounding, move_by_pct, pct_change, pct_of, quantize_to_step, to_decimal

# steps as exchanges publish them, including non-powers of ten (0.5, 0.25, 5, 0.0025)
steps = st.sampled_from(
    [
        Decimal(s)
        for s in [
            "0.1",
            "0.01",
            "0.001",
            "0.0001",
            "0.00001",
            "0.0000001",
            "0.5",
            "0.25",
            "0.0025",
            "1",
            "5",
            "10",
            "100",
        ]
    ]
)
values = st.decimals(
    min_value=Decimal("0.00000001"),
    max_value=Decimal("10000000"),
    allow_nan=False,
    allow_infinity=False,
    places=8,
)
signed_values = st.decimals(
    min_value=Decimal("-1000000"),
    max_value=Decimal("1000000"),
    allow_nan=False,
    allow_infinity=False,
    places=6,
)
pcts = st.decimals(
    min_value=Decimal("-99"),
    max_value=Decimal("1000"),
    allow_nan=False,
    allow_infinity=False,
    places=4,
)
roundings = st.sampled_from(list(Rounding))


@st.composite
def instruments(draw: st.DrawFn) -> Instrument:
    tick = draw(steps)
    step = draw(steps)
    min_qty = step * draw(st.integers(1, 100))
    min_notional = draw(st.sampled_from([Decimal(0), Decimal(5), Decimal(100)]))
    min_price = draw(st.none() | st.just(tick * draw(st.integers(1, 10))))
    return Instrument(
        "XUSDT",
        tick_size=tick,
        qty_step=step,
        min_qty=min_qty,
        min_notional=min_notional,
        min_price=min_price,
    )


@given(signed_values, steps, roundings)
def test_quantize_signed_values_directional_and_idempotent(
    value: Decimal, step: Decimal, r: Rounding
) -> None:
    q = quantize_to_step(value, step, r)
    assert q % step == 0
    assert (q <= value < q + step) if r is Rounding.DOWN else (q - step < value <= q)
    assert quantize_to_step(q, step, r) == q
    # the other direction differs by exactly one step unless already on the grid
    other = quantize_to_step(value, step, Rounding.UP if r is Rounding.DOWN else Rounding.DOWN)
    assert abs(other - q) == (0 if value % step == 0 else step)


@given(values, steps)
def test_quantize_presents_with_the_steps_exponent(value: Decimal, step: Decimal) -> None:
    q = quantize_to_step(value, step, Rounding.DOWN)
    step_exp = step.normalize().as_tuple().exponent
    assert isinstance(step_exp, int)
    if step_exp < 0:
        assert q.as_tuple().exponent == step_exp  # "0.010" for step 0.001: what venues expect


@given(instruments(), values)
def test_floor_qty_is_on_step_never_above_and_idempotent(inst: Instrument, qty: Decimal) -> None:
    q = inst.floor_qty(qty)
    assert q % inst.qty_step == 0
    assert 0 <= q <= qty < q + inst.qty_step
    assert inst.floor_qty(q) == q


@given(instruments(), values, roundings)
def test_round_price_on_tick_never_zero_or_below_min_in_direction(
    inst: Instrument, price: Decimal, r: Rounding
) -> None:
    p = inst.round_price(price, r)
    assert p > 0 and p % inst.tick_size == 0
    assert p >= inst.price_floor
    assert inst.round_price(p, r) == p
    if price >= inst.price_floor:  # not clamped: rounded in the requested direction
        assert (p <= price) if r is Rounding.DOWN else (p >= price)
        assert abs(p - price) < inst.tick_size


@given(instruments(), values, st.sampled_from(list(PositionSide)))
def test_stop_rounding_is_protective_for_both_sides(
    inst: Instrument, stop: Decimal, side: PositionSide
) -> None:
    p = inst.round_price(stop, side.stop_rounding)
    if side is PositionSide.LONG:
        assert p >= stop  # tighter (higher) for a long, also when clamped to the floor
    else:
        assume(stop >= inst.price_floor)
        assert p <= stop  # tighter (lower) for a short


@given(instruments(), values, values)
def test_check_order_agrees_with_the_rules(inst: Instrument, price: Decimal, qty: Decimal) -> None:
    p = inst.round_price(price, Rounding.DOWN)
    q = inst.floor_qty(qty)
    reason = inst.check_order(p, q)
    if q < inst.min_qty:
        assert reason == "qty_below_min"
    elif p * q < inst.min_notional:
        assert reason == "below_min_notional"
        assert inst.check_order(p, q, reduce_only=True) is None  # closing dust is allowed
    else:
        assert reason is None
    if q >= inst.min_qty:
        off_step = q + inst.qty_step / 2
        assert inst.check_order(p, off_step) == "qty_not_on_step"
        assert inst.check_order(p + inst.tick_size / 2, q) == "price_not_on_tick"


@given(values, pcts)
def test_move_by_pct_and_pct_change_are_inverse(price: Decimal, pct: Decimal) -> None:
    moved = move_by_pct(price, pct)
    assert pct_change(price, moved) == pct
    assert moved - price == pct_of(price, pct)
    assert (moved > price) == (pct > 0)


@given(
    st.decimals(
        allow_nan=False,
        allow_infinity=False,
        places=12,
        min_value=Decimal("-1e12"),
        max_value=Decimal("1e12"),
    )
)
def test_to_decimal_is_exact_for_strings_and_decimals(d: Decimal) -> None:
    assert to_decimal(str(d)) == d
    assert to_decimal(d) is d or to_decimal(d) == d
    assert to_decimal(f"  {d}  ") == d


def test_point_one_plus_point_two_through_quantize() -> None:
    total = to_decimal("0.1") + to_decimal("0.2")
    assert quantize_to_step(total, Decimal("0.1"), Rounding.DOWN) == Decimal("0.3")
    assert quantize_to_step(total, Decimal("0.1"), Rounding.UP) == Decimal("0.3")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"tick_size": Decimal(0)},
        {"tick_size": Decimal("-0.1")},
        {"qty_step": Decimal(0)},
        {"min_qty": Decimal(0)},
        {"min_notional": Decimal(-1)},
    ],
)
def test_instrument_rejects_invalid_rules(kwargs: dict[str, Decimal]) -> None:
    base = {
        "tick_size": Decimal("0.1"),
        "qty_step": Decimal("0.001"),
        "min_qty": Decimal("0.001"),
        "min_notional": Decimal(5),
    }
    with pytest.raises(ValueError):
        Instrument("XUSDT", **{**base, **kwargs})  # type: ignore[arg-type]


def test_reduce_only_symbol_status_is_kept() -> None:
    inst = Instrument(
        "XUSDT",
        Decimal("0.1"),
        Decimal("1"),
        Decimal("1"),
        Decimal(5),
        status=InstrumentStatus.REDUCE_ONLY,
    )
    assert inst.status is InstrumentStatus.REDUCE_ONLY
