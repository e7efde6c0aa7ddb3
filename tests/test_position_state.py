"""The PositionActor's state record and its snapshot codec: the JSON shape journals already
hold (written before the package split) loads, and a record round-trips exactly."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal as D

import pytest

from actors.position import Lifecycle
from actors.position._state import (
    SEQ_SKIP_ON_RESTART,
    PositionRecord,
    load_snapshot,
    snapshot_data,
)
from tradebot.domain import OrderRole, PositionSide
from tradebot.events import dumps
from tradebot.policies import TrailingPhase
from tradebot.ports import StopState

# a snapshot as the single-module PositionActor wrote it (same keys, same encodings)
OLD_SNAPSHOT = {
    "lifecycle": "ACTIVE",
    "symbol": "ETHUSDT",
    "position_side": "LONG",
    "entry_client_order_id": "tb-0123456789abcdef-E0",
    "requested_qty": "0.100",
    "filled_qty": "0.100",
    "qty": "0.060",
    "entry_price": "2500.00",
    "opened_at": "2025-05-20T00:01:00+00:00",
    "stop_price": "2524.82",
    "stop_client_order_id": "tb-0123456789abcdef-S3",
    "stop_venue_order_id": "algo-17",
    "seq": {"E": 0, "S": 3, "C": 0, "T": 1, "A": 2, "X": 0},
    "trailing": {
        "phase": "ACTIVE",
        "water_mark": "2537.5",
        "update_count": 2,
        "last_update_at": "2025-05-20T00:05:00+00:00",
        "activated_at": "2025-05-20T00:04:00+00:00",
    },
    "tp_levels_done": [0],
    "tp_orders": {"tb-0123456789abcdef-T1": 1},
    "aged_client_order_id": "tb-0123456789abcdef-A2",
    "aged_exit_price": "2512.50",
    "aged_started": True,
    "adopted": False,
    "close_reason": "",
}


def _fresh() -> PositionRecord:
    return PositionRecord.new("0123456789abcdef", "ETHUSDT", PositionSide.LONG)


def test_a_snapshot_of_the_old_shape_loads() -> None:
    r = _fresh()
    load_snapshot(r, OLD_SNAPSHOT)
    assert r.state is Lifecycle.ACTIVE
    assert (r.req_qty, r.filled_qty, r.qty) == (D("0.100"), D("0.100"), D("0.060"))
    assert r.entry_price == D("2500.00") and r.stop_price == D("2524.82")
    assert r.opened_at == datetime(2025, 5, 20, 0, 1, tzinfo=UTC)
    assert r.trailing.phase is TrailingPhase.ACTIVE and r.trailing.water_mark == D("2537.5")
    assert r.tp_done == {0} and r.tp_orders == {"tb-0123456789abcdef-T1": 1}
    assert (r.aged_cid, r.aged_price, r.aged_started) == (
        "tb-0123456789abcdef-A2",
        D("2512.50"),
        True,
    )
    # ids used after the snapshot are never reused
    assert r.seq["S"] == 3 + SEQ_SKIP_ON_RESTART
    assert r.next_cid(OrderRole.STOP) == f"tb-0123456789abcdef-S{4 + SEQ_SKIP_ON_RESTART}"


def test_the_written_shape_is_the_old_shape() -> None:
    r = _fresh()
    load_snapshot(r, OLD_SNAPSHOT)
    r.stop = StopState(
        "ETHUSDT", PositionSide.LONG, D("2524.82"), "tb-0123456789abcdef-S3", "algo-17"
    )
    out = snapshot_data(r)
    assert list(out) == list(OLD_SNAPSHOT)  # same keys, same order
    expected = dict(
        OLD_SNAPSHOT, seq={k: v + SEQ_SKIP_ON_RESTART for k, v in OLD_SNAPSHOT["seq"].items()}
    )  # type: ignore[union-attr]
    assert json.loads(dumps(out)) == json.loads(dumps(expected))


def test_round_trip_is_exact() -> None:
    r = _fresh()
    load_snapshot(r, OLD_SNAPSHOT)
    again = _fresh()
    load_snapshot(again, snapshot_data(r))
    # the codec skips the sequence ahead once per load; everything else is equal
    a, b = snapshot_data(r), snapshot_data(again)
    assert {
        k: v
        for k, v in a.items()
        if k not in ("seq", "stop_client_order_id", "stop_venue_order_id")
    } == {
        k: v
        for k, v in b.items()
        if k not in ("seq", "stop_client_order_id", "stop_venue_order_id")
    }
    assert b["seq"] == {k: v + SEQ_SKIP_ON_RESTART for k, v in a["seq"].items()}


def test_a_bad_lifecycle_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        load_snapshot(_fresh(), dict(OLD_SNAPSHOT, lifecycle="HALF_OPEN"))
