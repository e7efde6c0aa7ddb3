"""Table-driven tests of the pure policies with hand-computed expected values."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

import pytest

from tradebot.domain import Instrument, InstrumentStatus, PositionSide
from tradebot.policies import (
    AgedPhase,
    AgedSettings,
    NoValidStop,
    ProtectionSettings,
    RepairAction,
    SizingSettings,
    TakeProfitSettings,
    TrailingPhase,
    TrailingSettings,
    TrailingState,
    aged_target,
    check_limits,
    decide_repair,
    due_take_profits,
    emergency_stop_price,
    initial_stop_price,
    should_replace_exit,
    size_position,
    stop_violations,
    trailing_step,
)

LONG, SHORT = PositionSide.LONG, PositionSide.SHORT
T0 = datetime(2025, 5, 20, 12, 0, tzinfo=UTC)
INST = Instrument(
    "TESTUSDT", tick_size=D("0.01"), qty_step=D("0.001"), min_qty=D("0.001"), min_notional=D("5")
)
COARSE = Instrument(
    "COARSEUSDT", tick_size=D("0.0001"), qty_step=D("1"), min_qty=D("1"), min_notional=D("5")
)


# --- initial / emergency stop ----------------------------------------------------------


@pytest.mark.parametrize(
    ("entry", "side", "expected"),
    [
        (D("100"), LONG, D("98.00")),
        (D("100"), SHORT, D("102.00")),
        (D("123.457"), LONG, D("120.99")),  # 120.98786 rounded UP (protective)
        (D("123.457"), SHORT, D("125.92")),  # 125.92614 rounded DOWN (protective)
    ],
)
def test_initial_stop_two_pct_rounded_protectively(
    entry: D, side: PositionSide, expected: D
) -> None:
    assert initial_stop_price(entry, side, INST) == expected


def test_initial_stop_on_coarse_tick_is_below_entry_never_zero() -> None:
    # 0.0003 * 0.98 = 0.000294 rounds UP to 0.0003 == entry: one tick further away instead
    assert initial_stop_price(D("0.0003"), LONG, COARSE) == D("0.0002")
    assert initial_stop_price(D("0.0003"), SHORT, COARSE) == D("0.0004")
    with pytest.raises(NoValidStop):
        initial_stop_price(D("0.0001"), LONG, COARSE)


def test_emergency_stop_three_pct() -> None:
    assert emergency_stop_price(D("100"), LONG, INST) == D("97.00")
    assert emergency_stop_price(D("100"), SHORT, INST) == D("103.00")


def test_stop_violations_names_each_rule() -> None:
    assert (
        stop_violations(
            D("98.00"), side=LONG, instrument=INST, mark_price=D("100"), previous_stop=D("97")
        )
        == []
    )
    assert stop_violations(D("0"), side=LONG, instrument=INST) == ["zero_or_negative"]
    assert "not_on_tick" in stop_violations(D("98.005"), side=LONG, instrument=INST)
    assert "not_protective_of_mark" in stop_violations(
        D("101"), side=LONG, instrument=INST, mark_price=D("100")
    )
    assert "loosened" in stop_violations(
        D("103"), side=SHORT, instrument=INST, previous_stop=D("102")
    )


# --- trailing --------------------------------------------------------------------------


def _run_trailing(
    side: PositionSide,
    steps: list[tuple[int, str, str | None, str]],
    settings: TrailingSettings | None = None,
) -> None:
    """steps: (seconds after open, mark, expected new stop or None, expected reason)."""
    s = settings or TrailingSettings()
    entry = D("100")
    stop = initial_stop_price(entry, side, INST)
    state = TrailingState()
    for t_s, mark, expected, reason in steps:
        now = T0 + timedelta(seconds=t_s)
        d = trailing_step(
            state,
            settings=s,
            side=side,
            instrument=INST,
            entry_price=entry,
            opened_at=T0,
            mark_price=D(mark),
            current_stop=stop,
            now=now,
        )
        assert (d.new_stop, d.reason) == ((D(expected) if expected else None), reason), (t_s, mark)
        state = d.state
        if d.new_stop is not None:
            stop = d.new_stop
            state = state.with_update(now)


def test_trailing_long_defaults_table() -> None:
    _run_trailing(
        LONG,
        [
            (0, "100.5", None, "inactive"),  # +0.5 %: not active
            (10, "101.5", "101.00", "activated"),  # +1.5 %: 101.5 * 0.995 = 100.9925 -> 101.00
            (20, "101.7", None, "rate_limited"),  # 101.1915 -> 101.20: +0.198 % but 10 s later
            (80, "101.7", "101.20", "trail"),  # 70 s later, >= 0.1 %
            (150, "101.75", None, "below_min_improvement"),  # 101.24125 -> 101.25: +0.049 %
            (160, "103.0", "102.49", "trail_immediate"),  # 102.485 -> 102.49: +1.27 % at once
            (170, "102.8", None, "not_tighter"),  # high-water stays 103.0
            (180, "102.4", None, "triggered"),  # mark through the live stop 102.49
            (190, "110", None, "triggered"),  # terminal
        ],
    )


def test_trailing_short_mirrors_long() -> None:
    _run_trailing(
        SHORT,
        [
            (0, "99.5", None, "inactive"),
            (10, "98.5", "98.99", "activated"),  # 98.5 * 1.005 = 98.9925 -> DOWN 98.99
            (20, "98.3", None, "rate_limited"),  # 98.7915 -> 98.79: 0.202 % better
            (80, "98.3", "98.79", "trail"),
            (150, "98.25", None, "below_min_improvement"),  # 98.74125 -> 98.74: 0.0506 %
            (160, "97.0", "97.48", "trail_immediate"),  # 97.485 -> 97.48: 1.32 % at once
            (170, "97.2", None, "not_tighter"),
            (180, "97.5", None, "triggered"),
        ],
    )


def test_trailing_breakeven_then_activation() -> None:
    s = TrailingSettings(breakeven_trigger_pct=D("0.8"), breakeven_offset_pct=D("0.1"))
    _run_trailing(
        LONG,
        [
            (0, "100.5", None, "inactive"),
            (5, "100.8", "100.10", "breakeven"),  # entry + 0.1 %
            (6, "100.9", None, "not_tighter"),  # breakeven phase holds the level
            (30, "101.5", "101.00", "activated"),  # phase transitions go at once
        ],
        s,
    )
    _run_trailing(
        SHORT,
        [
            (5, "99.2", "99.90", "breakeven"),
            (30, "98.5", "98.99", "activated"),
        ],
        s,
    )


def test_trailing_time_based_activation_only_in_profit() -> None:
    s = TrailingSettings(time_activation_min=30)
    _run_trailing(
        LONG,
        [
            (29 * 60, "100.3", None, "inactive"),  # not yet 30 min
            (31 * 60, "99.9", None, "inactive"),  # 30 min but in loss
            (32 * 60, "100.3", "99.80", "activated"),  # 100.3 * 0.995 = 99.7985 -> UP 99.80
        ],
        s,
    )


def test_trailing_state_round_trips_through_json_dict() -> None:
    import json

    st = TrailingState(
        phase=TrailingPhase.ACTIVE,
        water_mark=D("101.23456789"),
        update_count=7,
        last_update_at=T0,
        activated_at=T0 - timedelta(minutes=5),
    )
    again = TrailingState.from_dict(json.loads(json.dumps(st.to_dict())))
    assert again == st
    with pytest.raises(ValueError):
        TrailingState.from_dict({"phase": "SIDEWAYS"})


# --- protection ------------------------------------------------------------------------


def test_protection_decisions() -> None:
    kw = {"side": LONG, "instrument": INST, "entry_price": D("100")}
    d = decide_repair(**kw, mark_price=D("100"), intended_stop=D("98"), live_stop_prices=[D("98")])
    assert (d.action, d.stop_price, d.reason) == (RepairAction.OK, D("98"), "verified")
    d = decide_repair(**kw, mark_price=D("100"), intended_stop=D("98"), live_stop_prices=[])
    assert (d.action, d.stop_price, d.reason) == (RepairAction.PLACE, D("98"), "missing")
    d = decide_repair(**kw, mark_price=D("100"), intended_stop=None, live_stop_prices=[])
    assert (d.action, d.stop_price, d.reason) == (
        RepairAction.PLACE,
        D("97.00"),
        "adopted_emergency",
    )
    d = decide_repair(
        **kw, mark_price=D("100"), intended_stop=D("98"), live_stop_prices=[D("97"), D("98.5")]
    )
    assert (d.action, d.stop_price) == (RepairAction.DEDUPE, D("98.5"))  # tightest kept
    d = decide_repair(**kw, mark_price=D("100"), intended_stop=D("98"), live_stop_prices=[D("97")])
    assert (d.action, d.stop_price, d.reason) == (
        RepairAction.PLACE,
        D("98"),
        "looser_than_intended",
    )
    # mark already through: tighten to mark - 0.5 % (97.5 * 0.995 = 97.0125 -> 97.02) or close
    d = decide_repair(**kw, mark_price=D("97.5"), intended_stop=D("98"), live_stop_prices=[])
    assert (d.action, d.stop_price, d.reason) == (RepairAction.PLACE, D("97.02"), "breach_tighten")
    d = decide_repair(
        **kw,
        mark_price=D("97.5"),
        intended_stop=D("98"),
        live_stop_prices=[],
        settings=ProtectionSettings(breach_action="close"),
    )
    assert (d.action, d.stop_price, d.reason) == (RepairAction.CLOSE, None, "breach_close")
    d = decide_repair(
        side=SHORT,
        instrument=INST,
        entry_price=D("100"),
        mark_price=D("102.5"),
        intended_stop=D("102"),
        live_stop_prices=[],
    )
    assert (d.action, d.stop_price) == (RepairAction.PLACE, D("103.01"))  # 103.0125 -> DOWN


def test_protection_rejects_unknown_breach_action() -> None:
    with pytest.raises(ValueError, match="breach_action"):
        ProtectionSettings(breach_action="pray")


# --- take profit ------------------------------------------------------------------------


def test_take_profit_levels_once_each_and_no_dust() -> None:
    s = TakeProfitSettings(levels=[("1", "0.3"), ("2", "0.3"), ("3", "0.4")])
    kw = {
        "settings": s,
        "side": LONG,
        "instrument": INST,
        "entry_price": D("100"),
        "filled_qty": D("1.000"),
    }
    assert due_take_profits(**kw, mark_price=D("100.9"), remaining_qty=D("1"), done=set()) == []
    (o,) = due_take_profits(**kw, mark_price=D("101"), remaining_qty=D("1"), done=set())
    assert (o.level_index, o.qty) == (0, D("0.300"))
    assert due_take_profits(**kw, mark_price=D("101.5"), remaining_qty=D("0.7"), done={0}) == []
    both = due_take_profits(**kw, mark_price=D("3000"), remaining_qty=D("0.7"), done={0})
    assert [(o.level_index, o.qty) for o in both] == [(1, D("0.300")), (2, D("0.400"))]
    # short mirrors
    (o,) = due_take_profits(
        **{**kw, "side": SHORT}, mark_price=D("99"), remaining_qty=D("1"), done=set()
    )
    assert o.qty == D("0.300")


def test_take_profit_settings_validate() -> None:
    with pytest.raises(ValueError):
        TakeProfitSettings(levels=[("2", "0.5"), ("1", "0.5")])
    with pytest.raises(ValueError):
        TakeProfitSettings(levels=[("1", "0.7"), ("2", "0.7")])


# --- aged --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("age_h", "phase", "price"),
    [
        (2.99, AgedPhase.NOT_AGED, None),
        (3, AgedPhase.BREAKEVEN, "100.08"),  # 100 * 1.00055 / 0.9998 = 100.075015 -> UP
        (10.99, AgedPhase.BREAKEVEN, "100.08"),
        (11, AgedPhase.STEPPING, "100.08"),  # grace over, 0 whole hours
        (12, AgedPhase.STEPPING, "99.58"),  # -0.5 %: 99.574640 -> UP
        (13, AgedPhase.STEPPING, "98.88"),  # aged 10 h: 2 h * 0.5 * 1.2 = 1.2 %: 98.874115
        (20, AgedPhase.STEPPING, "94.68"),  # 9 h: 5.4 %: 94.670964
        (27, AgedPhase.STEPPING, "90.47"),  # 16 h: 9.6 %: 90.467814
        (28, AgedPhase.MARKET_CLOSE, None),  # 17 h: 10.2 % >= 10 % cap
    ],
)
def test_aged_schedule_long(age_h: float, phase: AgedPhase, price: str | None) -> None:
    t = aged_target(
        opened_at=T0,
        now=T0 + timedelta(hours=age_h),
        entry_price=D("100"),
        side=LONG,
        instrument=INST,
    )
    assert t.phase is phase
    assert t.price == (D(price) if price else None)


@pytest.mark.parametrize(
    ("age_h", "price"),
    [
        (3, "99.92"),  # 100 * 0.99945 / 1.0002 = 99.925015 -> DOWN
        (12, "100.42"),  # 99.925015 * 1.005 = 100.424640 -> DOWN
        (20, "105.32"),  # * 1.054 = 105.320966
    ],
)
def test_aged_schedule_short(age_h: float, price: str) -> None:
    t = aged_target(
        opened_at=T0,
        now=T0 + timedelta(hours=age_h),
        entry_price=D("100"),
        side=SHORT,
        instrument=INST,
    )
    assert t.price == D(price)


@pytest.mark.parametrize(
    ("side", "entry", "hours", "expected"),
    [
        (LONG, "0.0003", [3, 12, 20, 27], ["0.0004", "0.0003", "0.0003", "0.0003"]),
        (SHORT, "0.0003", [3, 12, 20, 27], ["0.0002", "0.0003", "0.0003", "0.0003"]),
        (SHORT, "0.0001", [3, 12], ["0.0001", "0.0001"]),  # 0.0000999 would round to 0: floor
    ],
)
def test_aged_on_coarse_tick_never_zero(
    side: PositionSide, entry: str, hours: list[int], expected: list[str]
) -> None:
    prices = [
        aged_target(
            opened_at=T0,
            now=T0 + timedelta(hours=h),
            entry_price=D(entry),
            side=side,
            instrument=COARSE,
        ).price
        for h in hours
    ]
    assert prices == [D(e) for e in expected]
    assert all(p is not None and p > 0 for p in prices)


def test_aged_exit_replaced_only_on_a_tick_move() -> None:
    t = aged_target(
        opened_at=T0,
        now=T0 + timedelta(hours=12),
        entry_price=D("0.0003"),
        side=LONG,
        instrument=COARSE,
    )
    assert not should_replace_exit(D("0.0003"), t, COARSE.tick_size)
    assert should_replace_exit(D("0.0004"), t, COARSE.tick_size)
    assert should_replace_exit(None, t, COARSE.tick_size)


def test_aged_settings_validate() -> None:
    with pytest.raises(ValueError):
        AgedSettings(max_loss_pct=D("0"))


# --- sizing ------------------------------------------------------------------------------


def test_sizing() -> None:
    r = size_position(
        D("200"),
        D("67123.4"),
        Instrument(
            "BTCUSDT",
            tick_size=D("0.1"),
            qty_step=D("0.001"),
            min_qty=D("0.001"),
            min_notional=D("100"),
        ),
    )
    assert (r.ok, r.qty) == (True, D("0.002"))  # 0.0029796 floored
    assert r.notional_usdt == D("134.2468")
    btc_big_min = Instrument(
        "BTCUSDT",
        tick_size=D("0.1"),
        qty_step=D("0.001"),
        min_qty=D("0.001"),
        min_notional=D("150"),
    )
    assert size_position(D("200"), D("67123.4"), btc_big_min).reason == "below_min_notional"
    assert size_position(D("5"), D("67123.4"), btc_big_min).reason == "qty_below_min"
    assert size_position(D("200"), D("0"), INST).reason == "bad_price"
    closed = Instrument(
        "X",
        tick_size=D("1"),
        qty_step=D("1"),
        min_qty=D("1"),
        min_notional=D("0"),
        status=InstrumentStatus.CLOSED,
    )
    assert size_position(D("200"), D("10"), closed).reason == "not_tradable"
    s = SizingSettings(
        position_size_usdt=D("200"), max_open_positions=2, max_exposure_usdt=D("500")
    )
    assert (
        check_limits(open_count=1, exposure_usdt=D("200"), new_notional_usdt=D("200"), settings=s)
        is None
    )
    assert (
        check_limits(open_count=2, exposure_usdt=D("0"), new_notional_usdt=D("1"), settings=s)
        == "max_open_positions"
    )
    assert (
        check_limits(open_count=1, exposure_usdt=D("400"), new_notional_usdt=D("200"), settings=s)
        == "max_exposure"
    )


def test_liquidation_distance_is_100_over_leverage_minus_maintenance_margin() -> None:
    from tradebot.policies.liquidation import liquidation_distance_pct

    assert liquidation_distance_pct(5) == D(19)  # 20 % − 1 %
    assert liquidation_distance_pct(10, D("0.5")) == D("9.5")
    assert liquidation_distance_pct(125, D("0.4")) == D("0.4")
    assert liquidation_distance_pct(100) == 0
    for bad in ((0, D(1)), (5, D(-1))):
        with pytest.raises(ValueError):
            liquidation_distance_pct(*bad)


def test_stop_at_or_beyond_liquidation_is_a_problem_naming_both_keys() -> None:
    from tradebot.policies.liquidation import stop_liquidation_problems

    stops = {"stop_loss.initial_pct": D(2), "stop_loss.emergency_pct": D(3)}
    assert stop_liquidation_problems(stops, {"exchange.default_leverage": 5}) == []
    # 100/33 − 1 = 2.0303.. : 2 % is inside, 3 % is beyond
    (only,) = stop_liquidation_problems(stops, {"exchange.default_leverage": 33})
    assert only[0] == "stop_loss.emergency_pct"
    assert "exchange.default_leverage = 33" in only[1] and "2.0303" in only[1]
    # exactly at the liquidation distance is refused too: 100/40 − 0.5 = 2
    at = stop_liquidation_problems(
        {"stop_loss.initial_pct": D(2)}, {"lev": 40}, maintenance_margin_pct=D("0.5")
    )
    assert [k for k, _ in at] == ["stop_loss.initial_pct"]
    many = stop_liquidation_problems(stops, {"a": 5, "b": 50, "c": 100})
    assert [(k, r.split(" at ")[-1].split(" ")[0]) for k, r in many] == [
        ("stop_loss.initial_pct", "b"),
        ("stop_loss.initial_pct", "c"),
        ("stop_loss.emergency_pct", "b"),
        ("stop_loss.emergency_pct", "c"),
    ]
