"""Property tests for Decimal precision helpers and instrument rounding."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tradebot.domain import Instrument, PositionSide
from tradebot.money import Rounding, quantize_to_step, to_decimal

steps = st.sampled_from(
    [Decimal(s) for s in ["0.1", "0.01", "0.001", "0.0001", "0.5", "1", "10", "0.00001"]]
)
prices = st.decimals(
    min_value=Decimal("0.000001"),
    max_value=Decimal("1000000"),
    allow_nan=False,
    allow_infinity=False,
    places=8,
)


@given(prices, steps, st.sampled_from(list(Rounding)))
def test_quantize_is_multiple_directional_idempotent(
    value: Decimal, step: Decimal, rounding: Rounding
) -> None:
    q = quantize_to_step(value, step, rounding)
    assert q % step == 0
    if rounding is Rounding.DOWN:
        assert q <= value < q + step
    else:
        assert q - step < value <= q
    assert quantize_to_step(q, step, rounding) == q


@given(prices, steps, st.sampled_from(list(Rounding)))
def test_instrument_round_price_never_zero_or_below_min(
    price: Decimal, tick: Decimal, rounding: Rounding
) -> None:
    inst = Instrument(
        "XUSDT",
        tick_size=tick,
        qty_step=Decimal("1"),
        min_qty=Decimal("1"),
        min_notional=Decimal("5"),
        min_price=tick * 2,
    )
    p = inst.round_price(price, rounding)
    assert p > 0
    assert p >= inst.price_floor
    assert p % tick == 0
    assert inst.round_price(p, rounding) == p


def test_coarse_tick_never_rounds_to_zero() -> None:
    inst = Instrument(
        "PEPEUSDT",
        tick_size=Decimal("0.0001"),
        qty_step=Decimal("1"),
        min_qty=Decimal("1"),
        min_notional=Decimal("5"),
    )
    assert inst.round_price(Decimal("0.00003"), Rounding.DOWN) == Decimal("0.0001")


def test_stop_rounding_is_protective() -> None:
    assert PositionSide.LONG.stop_rounding is Rounding.UP
    assert PositionSide.SHORT.stop_rounding is Rounding.DOWN


@pytest.mark.parametrize("bad", [1.5, float("nan"), True, None, [1]])
def test_to_decimal_rejects_inexact_types(bad: object) -> None:
    with pytest.raises(TypeError):
        to_decimal(bad, field="x")


@pytest.mark.parametrize("bad", ["NaN", "inf", "-Infinity", "abc", ""])
def test_to_decimal_rejects_non_finite(bad: str) -> None:
    with pytest.raises(ValueError):
        to_decimal(bad)


def test_point_one_plus_point_two_is_exact() -> None:
    assert to_decimal("0.1") + to_decimal("0.2") == Decimal("0.3")
