"""Fuzzing the signal protocol parser (docs/ARCHITECTURE.md §9, ``tradebot.signals.parse_message``).

Documented contract: ``parse_message`` never raises; it returns a ``Wave``, ``Signal``,
``Control`` or ``Rejection`` whose reason starts with a documented code. And nothing that
is valid is lost: in a wave mixing valid and broken signals, every valid signal (first
occurrence of its id) comes out, in order, and every input item is accounted for.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from tests._fuzz_support import fuzz
from tradebot.signals import Control, Rejection, Signal, Wave, parse_message

CODES = {
    "message_too_large",
    "invalid_utf8",
    "invalid_json",
    "not_an_object",
    "unknown_type",
    "missing_field",
    "invalid_timestamp",
    "timestamp_not_on_wave_boundary",
    "timestamp_out_of_range",
    "invalid_signals",
    "too_many_signals",
    "signal_not_an_object",
    "invalid_id",
    "invalid_symbol",
    "unknown_symbol",
    "invalid_exchange",
    "invalid_action",
    "invalid_score",
    "score_not_finite",
    "negative_score",
    "score_out_of_range",
    "timestamp_mismatch",
    "duplicate_signal_id",
}

json_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40),
)
json_value = st.recursive(
    json_leaf,
    lambda kids: (
        st.lists(kids, max_size=5) | st.dictionaries(st.text(max_size=12), kids, max_size=5)
    ),
    max_leaves=8,
)
FIELDS = [
    "type",
    "timestamp",
    "wave_ts",
    "signals",
    "id",
    "signal_id",
    "symbol",
    "pair_symbol",
    "exchange",
    "exchange_name",
    "action",
    "recommended_action",
    "score_week",
    "score_month",
]
hostile_object = st.dictionaries(
    st.sampled_from(FIELDS) | st.text(max_size=8), json_value, max_size=6
)


def _check(msg: Any) -> None:
    assert isinstance(msg, Wave | Signal | Control | Rejection), msg
    rejections = [msg] if isinstance(msg, Rejection) else list(getattr(msg, "rejections", ()))
    for r in rejections:
        assert r.code in CODES, r.reason
        assert len(r.excerpt) <= 200


@fuzz
@given(st.binary(max_size=2000) | st.text(max_size=2000))
def test_any_bytes_or_text_never_raise(data: bytes | str) -> None:
    _check(parse_message(data))


@fuzz
@given(hostile_object | st.lists(hostile_object, max_size=3))
def test_any_json_shape_never_raises(obj: Any) -> None:
    try:
        text = json.dumps(obj)
    except ValueError:
        return
    _check(parse_message(text))
    _check(parse_message(text.encode()))


WAVE_TS = datetime(2025, 5, 21, 11, 0, tzinfo=UTC)
ID_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.:-"
SYMBOL_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
valid_signal = st.fixed_dictionaries(
    {
        "id": st.text(alphabet=ID_CHARS, min_size=1, max_size=16),
        "symbol": st.text(alphabet=SYMBOL_CHARS, min_size=1, max_size=8).map(lambda s: s + "USDT"),
        "exchange": st.sampled_from(["bybit", "binance"]),
        "action": st.sampled_from(["BUY", "SELL", "LONG", "SHORT", "buy"]),
        "score_week": st.decimals(min_value=0, max_value=100, places=2).map(str),
    }
)
broken_signal = st.one_of(
    hostile_object,
    valid_signal.map(lambda s: {**s, "score_week": "-1"}),
    valid_signal.map(lambda s: {**s, "symbol": "BTC/USD"}),
    valid_signal.map(lambda s: {k: v for k, v in s.items() if k != "action"}),
)


@fuzz
@given(
    st.lists(st.tuples(st.booleans(), valid_signal, broken_signal), max_size=12),
    st.integers(min_value=0, max_value=4 * 24 * 365),
)
def test_a_mixed_wave_keeps_every_valid_signal(items: list[Any], quarter: int) -> None:
    ts = WAVE_TS + timedelta(minutes=15 * quarter)
    signals = [good if ok else bad for ok, good, bad in items]
    text = json.dumps(
        {"type": "wave", "timestamp": ts.isoformat().replace("+00:00", "Z"), "signals": signals}
    )
    msg = parse_message(text)
    assert isinstance(msg, Wave) and msg.wave_ts == ts
    _check(msg)
    assert len(msg.signals) + len(msg.rejections) == len(signals)  # every item accounted for
    expected: list[str] = []
    for ok, good, _bad in items:
        if ok and good["id"] not in expected:
            expected.append(good["id"])
    got = [s.signal_id for s in msg.signals]
    # valid ones are all there in order; a broken-looking item may also be valid
    it = iter(got)
    assert all(any(g == e for g in it) for e in expected), (expected, got)
    for s in msg.signals:
        src = (
            next(x for ok, x, _ in items if ok and x["id"] == s.signal_id)
            if s.signal_id in expected
            else None
        )
        if src is not None:
            assert s.symbol == src["symbol"] and s.score_week == Decimal(src["score_week"])
