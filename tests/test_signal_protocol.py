"""Signal protocol (docs/ARCHITECTURE.md §9) and wave selection (section 5): pure functions."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tradebot.domain import Instrument, InstrumentStatus, PositionSide
from tradebot.policies.sizing import SizingSettings
from tradebot.signals import (
    Control,
    FeedSettings,
    ProtocolLimits,
    Rejection,
    Signal,
    Wave,
    WaveSettings,
    backoff_delay_s,
    parse_message,
    plan_wave,
    wave_id_for,
)

T0 = datetime(2025, 5, 21, 11, 0, tzinfo=UTC)


def sig(i: int | str, symbol: str = "BTCUSDT", **kw: object) -> dict[str, object]:
    d: dict[str, object] = {
        "id": str(i),
        "symbol": symbol,
        "exchange": "bybit",
        "action": "BUY",
        "score_week": "72.5",
        "score_month": "65.1",
    }
    d.update(kw)
    return d


def wave(*signals: object, ts: object = "2025-05-21T11:00:00Z") -> str:
    return json.dumps({"type": "wave", "timestamp": ts, "signals": list(signals)})


def test_wave_batch_parses_exact_decimals() -> None:
    m = parse_message(wave(sig(1), sig(2, "ETHUSDT", action="sell", score_week=80)))
    assert isinstance(m, Wave)
    assert m.wave_ts == T0 and m.wave_id == "wave-20250521T1100Z" and m.rejections == ()
    a, b = m.signals
    assert a == Signal(
        "1", "BTCUSDT", "bybit", PositionSide.LONG, Decimal("72.5"), Decimal("65.1"), T0
    )
    assert b.position_side is PositionSide.SHORT and b.score_week == Decimal(80)


def test_json_numbers_are_decimal_not_float() -> None:
    m = parse_message(
        '{"type":"wave","timestamp":"2025-05-21T11:00:00Z","signals":['
        '{"id":"a","symbol":"BTCUSDT","exchange":"bybit","action":"BUY",'
        '"score_week":72.1000000000000000001,"score_month":0.1}]}'
    )
    assert isinstance(m, Wave)
    assert m.signals[0].score_week == Decimal("72.1000000000000000001")
    assert m.signals[0].score_month == Decimal("0.1")


def test_legacy_names_and_single_signal_message() -> None:
    raw = json.dumps(
        {
            "type": "signal",
            "timestamp": "2025-05-21T11:15:00+00:00",
            "signal_id": 17,
            "pair_symbol": "solusdt",
            "exchange_name": "BINANCE",
            "recommended_action": "short",
            "score_week": "10",
        }
    )
    m = parse_message(raw)
    assert m == Signal(
        "17",
        "SOLUSDT",
        "binance",
        PositionSide.SHORT,
        Decimal(10),
        None,
        datetime(2025, 5, 21, 11, 15, tzinfo=UTC),
    )
    # bytes (binary frame) and epoch seconds work as well
    m2 = parse_message(
        json.dumps({"type": "signal", "timestamp": int(T0.timestamp()), **sig("x")}).encode()
    )
    assert isinstance(m2, Signal) and m2.wave_ts == T0


def test_control_messages_are_not_rejections() -> None:
    assert parse_message('{"type":"heartbeat"}') == Control("heartbeat")
    assert parse_message('{"type":"subscribed"}') == Control("subscribed")


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (b"\xff\xfe{}", "invalid_utf8"),
        ("not json", "invalid_json"),
        ("[1,2]", "not_an_object"),
        ('"text"', "not_an_object"),
        ('{"type":"nope"}', "unknown_type"),
        ('{"hello":1}', "missing_field"),
        ('{"type":7}', "unknown_type"),
        (wave(sig(1), ts="2025-05-21T11:07:00Z"), "timestamp_not_on_wave_boundary"),
        (wave(sig(1), ts="2025-05-21T11:00:00"), "invalid_timestamp"),
        (wave(sig(1), ts="yesterday"), "invalid_timestamp"),
        (wave(sig(1), ts=1.5), "invalid_timestamp"),
        (wave(sig(1), ts="1900-01-01T00:00:00Z"), "timestamp_out_of_range"),
        ('{"type":"wave","timestamp":"2025-05-21T11:00:00Z","signals":{}}', "invalid_signals"),
        ("[" * 50_000, "invalid_json"),
        (
            '{"type":"wave","timestamp":"2025-05-21T11:00:00Z","n":' + "9" * 5000 + "}",
            "invalid_json",
        ),
        ("x" * 2_000_000, "message_too_large"),
    ],
)
def test_message_rejections(raw: str | bytes, code: str) -> None:
    m = parse_message(raw)
    assert isinstance(m, Rejection), m
    assert m.code == code, m.reason
    assert len(m.excerpt) <= 200


@pytest.mark.parametrize(
    ("signal", "code"),
    [
        (
            '{"id":"a","symbol":"BTCUSDT","exchange":"bybit","action":"BUY","score_week":NaN}',
            "score_not_finite",
        ),
        (
            '{"id":"a","symbol":"BTCUSDT","exchange":"bybit","action":"BUY","score_week":Infinity}',
            "score_not_finite",
        ),
        (
            '{"id":"a","symbol":"BTCUSDT","exchange":"bybit","action":"BUY","score_month":-Infinity}',
            "score_not_finite",
        ),
        (
            '{"id":"a","symbol":"BTCUSDT","exchange":"bybit","action":"BUY","score_week":"NaN"}',
            "score_not_finite",
        ),
        (
            '{"id":"a","symbol":"BTCUSDT","exchange":"bybit","action":"BUY","score_week":1e400}',
            "score_out_of_range",
        ),
        (
            '{"id":"a","symbol":"BTCUSDT","exchange":"bybit","action":"BUY","score_week":-0.5}',
            "negative_score",
        ),
        (
            '{"id":"a","symbol":"BTCUSDT","exchange":"bybit","action":"BUY","score_week":100.01}',
            "score_out_of_range",
        ),
        (
            '{"id":"a","symbol":"BTCUSDT","exchange":"bybit","action":"BUY","score_week":true}',
            "invalid_score",
        ),
        (
            '{"id":"a","symbol":"BTCUSDT","exchange":"bybit","action":"BUY","score_week":[1]}',
            "invalid_score",
        ),
        (
            '{"id":"a","symbol":"BTCUSDT","exchange":"bybit","action":"BUY","score_week":"abc"}',
            "invalid_score",
        ),
        ('{"symbol":"BTCUSDT","exchange":"bybit","action":"BUY"}', "missing_field"),
        ('{"id":"a","exchange":"bybit","action":"BUY"}', "missing_field"),
        ('{"id":"a","symbol":"BTCUSDT","action":"BUY"}', "missing_field"),
        ('{"id":"a","symbol":"BTCUSDT","exchange":"bybit"}', "missing_field"),
        ('{"id":"a","symbol":"BTCUSDT","exchange":"bybit","action":"HOLD"}', "invalid_action"),
        ('{"id":"a","symbol":"BTCUSDT","exchange":"bybit","action":1}', "invalid_action"),
        ('{"id":"a","symbol":"BTC/USDT","exchange":"bybit","action":"BUY"}', "invalid_symbol"),
        ('{"id":"a","symbol":"BTCUSD","exchange":"bybit","action":"BUY"}', "invalid_symbol"),
        ('{"id":"a","symbol":{"x":1},"exchange":"bybit","action":"BUY"}', "invalid_symbol"),
        ('{"id":"a b","symbol":"BTCUSDT","exchange":"bybit","action":"BUY"}', "invalid_id"),
        (
            '{"id":null,"signal_id":[],"symbol":"BTCUSDT","exchange":"b","action":"BUY"}',
            "invalid_id",
        ),
        ('{"id":"a","symbol":"BTCUSDT","exchange":"by bit","action":"BUY"}', "invalid_exchange"),
        (
            '{"id":"a","symbol":"BTCUSDT","exchange":"bybit","action":"BUY",'
            '"timestamp":"2025-05-21T11:15:00Z"}',
            "timestamp_mismatch",
        ),
        ("42", "signal_not_an_object"),
    ],
)
def test_signal_rejections_keep_the_rest_of_the_wave(signal: str, code: str) -> None:
    raw = (
        '{"type":"wave","timestamp":"2025-05-21T11:00:00Z","signals":['
        + signal
        + ',{"id":"ok","symbol":"ETHUSDT","exchange":"bybit","action":"BUY"}]}'
    )
    m = parse_message(raw)
    assert isinstance(m, Wave)
    assert [s.signal_id for s in m.signals] == ["ok"]
    (rej,) = m.rejections
    assert rej.code == code, rej.reason
    assert rej.wave_ts == T0


def test_unknown_symbol_and_size_limits() -> None:
    limits = ProtocolLimits(
        known_symbols=frozenset({"BTCUSDT"}), max_signals_per_wave=3, max_message_bytes=10_000
    )
    m = parse_message(wave(sig(1), sig(2, "DOGEUSDT")), limits)
    assert isinstance(m, Wave) and m.rejections[0].code == "unknown_symbol"
    m = parse_message(wave(*(sig(i) for i in range(4))), limits)
    assert isinstance(m, Rejection) and m.code == "too_many_signals"
    m = parse_message(wave(sig(1, pad="x" * 10_000)), limits)
    assert isinstance(m, Rejection) and m.code == "message_too_large"


def test_duplicate_ids_in_one_wave() -> None:
    m = parse_message(wave(sig(1), sig(1, "ETHUSDT")))
    assert isinstance(m, Wave)
    assert len(m.signals) == 1 and m.rejections[0].code == "duplicate_signal_id"


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.binary(max_size=300),
        st.text(max_size=300),
        st.recursive(
            st.none()
            | st.booleans()
            | st.integers()
            | st.text(max_size=8)
            | st.floats(allow_nan=True),
            lambda c: (
                st.lists(c, max_size=4)
                | st.dictionaries(
                    st.sampled_from(
                        [
                            "type",
                            "signals",
                            "timestamp",
                            "id",
                            "symbol",
                            "exchange",
                            "action",
                            "score_week",
                            "score_month",
                            "pair_symbol",
                        ]
                    ),
                    c,
                    max_size=6,
                )
            ),
            max_leaves=20,
        ).map(json.dumps),
    )
)
def test_parse_never_raises(raw: str | bytes) -> None:
    m = parse_message(raw)
    assert isinstance(m, (Wave, Signal, Control, Rejection))
    if isinstance(m, Rejection):
        assert m.reason


def test_backoff_is_capped_jittered_and_seeded() -> None:
    fs = FeedSettings()
    a = [backoff_delay_s(i, fs, random.Random(7)) for i in range(12)]
    b = [backoff_delay_s(i, fs, random.Random(7)) for i in range(12)]
    assert a == b
    rng = random.Random(3)
    for attempt in range(40):
        d = backoff_delay_s(attempt, fs, rng)
        nominal = min(30.0, 2.0**attempt)
        assert nominal * 0.5 <= d <= nominal <= 30.0
    with pytest.raises(ValueError):
        FeedSettings(reconnect_max_s=60)


# --- selection ------------------------------------------------------------------------

INSTRUMENTS = {
    "BTCUSDT": Instrument(
        "BTCUSDT", Decimal("0.1"), Decimal("0.001"), Decimal("0.001"), Decimal(100)
    ),
    "ETHUSDT": Instrument(
        "ETHUSDT", Decimal("0.01"), Decimal("0.001"), Decimal("0.001"), Decimal(20)
    ),
    "XRPUSDT": Instrument("XRPUSDT", Decimal("0.0001"), Decimal("0.1"), Decimal("0.1"), Decimal(5)),
    "OLDUSDT": Instrument(
        "OLDUSDT",
        Decimal("0.01"),
        Decimal(1),
        Decimal(1),
        Decimal(5),
        status=InstrumentStatus.REDUCE_ONLY,
    ),
}
PRICES = {
    "BTCUSDT": Decimal(100_000),
    "ETHUSDT": Decimal(2500),
    "XRPUSDT": Decimal("2.3456"),
    "OLDUSDT": Decimal(1),
}


def s(
    i: str,
    symbol: str,
    sw: str | None,
    sm: str | None = None,
    side: PositionSide = PositionSide.LONG,
    venue: str = "bybit",
) -> Signal:
    return Signal(
        i, symbol, venue, side, Decimal(sw) if sw else None, Decimal(sm) if sm else None, T0
    )


def test_plan_filters_ranks_sizes_and_cuts() -> None:
    settings_ = WaveSettings(
        venues=frozenset({"bybit"}),
        stoplist=frozenset({"XRPUSDT"}),
        min_score_week=Decimal(50),
        max_trades_per_wave=1,
        risk=SizingSettings(position_size_usdt=Decimal(200)),
    )
    assert settings_.reserve_size == 1
    signals = [
        s("a", "BTCUSDT", "60"),
        s("b", "ETHUSDT", "70", side=PositionSide.SHORT),
        s("c", "ETHUSDT", "90"),
        s("d", "XRPUSDT", "99"),
        s("e", "ETHUSDT", "95", venue="binance"),
        s("f", "ETHUSDT", "40"),
        s("g", "OLDUSDT", "99"),
        s("h", "DOGEUSDT", "99"),
        s("i", "ETHUSDT", "80"),
        s("j", "ETHUSDT", None),
    ]
    plan = plan_wave(
        signals,
        settings=settings_,
        instruments=INSTRUMENTS,
        price_of=PRICES.get,
        has_position=lambda sym, side: sym == "ETHUSDT" and side is PositionSide.SHORT,
    )
    assert [(c.signal.signal_id, c.rank, c.qty, c.notional_usdt) for c in plan.reserve] == [
        ("c", 1, Decimal("0.080"), Decimal("200.000")),
    ]
    reasons = {f.signal.signal_id: f.reason for f in plan.filtered}
    assert reasons == {
        "a": "below_reserve_cutoff",  # BTC 200 USDT ok but only 1 slot
        "b": "existing_position",
        "d": "stoplist",
        "e": "venue_mismatch",
        "f": "min_score_week",
        "g": "not_tradable",
        "h": "unknown_instrument",
        "i": "duplicate_in_wave",
        "j": "min_score_week",
    }


def test_plan_sizing_reasons_and_deterministic_tie_break() -> None:
    ws = WaveSettings(risk=SizingSettings(position_size_usdt=Decimal(50)))
    signals = [
        s("z", "BTCUSDT", "70"),
        s("y", "XRPUSDT", "70", "10"),
        s("x", "ETHUSDT", "70", "10"),
        s("w", "ETHUSDT", "70", "10", side=PositionSide.SHORT),
    ]
    plans = [
        plan_wave(
            order,
            settings=ws,
            instruments=INSTRUMENTS,
            price_of=PRICES.get,
            has_position=lambda *_: False,
        )
        for order in (signals, list(reversed(signals)))
    ]
    for plan in plans:
        # equal scores: symbol, then side, then id decide; missing score_month ranks last
        assert [c.signal.signal_id for c in plan.reserve] == ["x", "w", "y"]
        assert plan.reserve[2].qty == Decimal("21.3")  # floor(50 / 2.3456, step 0.1)
        assert {f.signal.signal_id: f.reason for f in plan.filtered} == {
            "z": "qty_below_min"
        }  # 50 USDT of BTC at 100k is 0.0005 < 0.001
    no_price = plan_wave(
        [s("q", "ETHUSDT", "1")],
        settings=ws,
        instruments=INSTRUMENTS,
        price_of=lambda _: None,
        has_position=lambda *_: False,
    )
    assert no_price.filtered[0].reason == "no_price"


def test_wave_id_format() -> None:
    assert wave_id_for(datetime(2025, 1, 2, 3, 45, tzinfo=UTC)) == "wave-20250102T0345Z"


_sig_strategy = st.builds(
    lambda i, sym, side, sw, sm, venue: Signal(f"id{i}", sym, venue, side, sw, sm, T0),
    st.integers(0, 10_000),
    st.sampled_from([*INSTRUMENTS, "DOGEUSDT"]),
    st.sampled_from(list(PositionSide)),
    st.one_of(st.none(), st.decimals(0, 100, places=1)),
    st.one_of(st.none(), st.decimals(0, 100, places=1)),
    st.sampled_from(["bybit", "binance"]),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(_sig_strategy, max_size=40, unique_by=lambda s: s.signal_id), st.randoms())
def test_plan_is_order_independent_ranked_and_unique(
    signals: list[Signal], rnd: random.Random
) -> None:
    ws = WaveSettings(
        venues=frozenset({"bybit"}), min_score_month=Decimal(10), max_trades_per_wave=3
    )
    kw = {
        "settings": ws,
        "instruments": INSTRUMENTS,
        "price_of": PRICES.get,
        "has_position": lambda sym, side: sym == "ETHUSDT" and side is PositionSide.LONG,
    }
    plan = plan_wave(signals, **kw)  # type: ignore[arg-type]
    shuffled = list(signals)
    rnd.shuffle(shuffled)
    again = plan_wave(shuffled, **kw)  # type: ignore[arg-type]
    assert plan.reserve == again.reserve
    assert {f.signal.signal_id: f.reason for f in plan.filtered} == {
        f.signal.signal_id: f.reason for f in again.filtered
    }
    # every signal decided exactly once
    ids = [c.signal.signal_id for c in plan.reserve] + [f.signal.signal_id for f in plan.filtered]
    assert sorted(ids) == sorted(s.signal_id for s in signals)
    assert len(plan.reserve) <= ws.reserve_size == 4
    keys = [(c.signal.symbol, c.signal.position_side) for c in plan.reserve]
    assert len(set(keys)) == len(keys)
    # best first: higher score_week first, a missing score_week last
    for a, b in zip(plan.reserve, plan.reserve[1:], strict=False):
        wa, wb = a.signal.score_week, b.signal.score_week
        assert wb is None or (wa is not None and wa >= wb)
    assert [c.rank for c in plan.reserve] == list(range(1, len(plan.reserve) + 1))
    for c in plan.reserve:
        inst = INSTRUMENTS[c.signal.symbol]
        assert c.signal.venue == "bybit" and c.qty >= inst.min_qty
        assert c.notional_usdt >= inst.min_notional and c.notional_usdt <= Decimal(200)
        assert inst.floor_qty(c.qty) == c.qty
