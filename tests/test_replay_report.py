"""Report math on a small hand-made run, and the invariant monitor on hand-made venue states."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from tradebot.domain import PositionSide, Side
from tradebot.events import Event, EventType
from tradebot.invariants import InvariantMonitor, InvariantSummary
from tradebot.ports import Fill, PositionState, StopState
from tradebot.report import (
    REPORT_KEYS,
    build_report,
    count_events,
    format_table,
    max_drawdown_pct,
    realized_pnl_usdt,
    trades_sha256,
    write_equity_chart,
)

T0 = datetime(2025, 5, 20, tzinfo=UTC)
D = Decimal
LONG, SHORT = PositionSide.LONG, PositionSide.SHORT


def fill(
    sec: int,
    symbol: str,
    side: Side,
    ps: PositionSide,
    qty: str,
    price: str,
    fee: str,
    cid: str,
    reason: str = "",
) -> Fill:
    return Fill(
        symbol=symbol,
        client_order_id=cid,
        venue_order_id="v",
        trade_id=f"t{sec}",
        side=side,
        position_side=ps,
        qty=D(qty),
        price=D(price),
        fee_usdt=D(fee),
        is_maker=False,
        ts=T0 + timedelta(seconds=sec),
        reason=reason,
    )


FILLS = [
    # long BTC 0.002 @ 100000, partial TP 0.001 @ 101000, stop rest @ 100500
    fill(0, "BTCUSDT", Side.BUY, LONG, "0.002", "100000", "0.10", "tb-a-E0"),
    fill(60, "BTCUSDT", Side.SELL, LONG, "0.001", "101000", "0.02", "tb-a-T0"),
    # funding: long paid 0.05
    fill(100, "BTCUSDT", Side.BUY, LONG, "0.001", "100800", "0.05", "", reason="funding"),
    fill(120, "BTCUSDT", Side.SELL, LONG, "0.001", "100500", "0.05", "tb-a-S0", reason="stop"),
    # short ETH 1 @ 2500 in two fills (avg 2505), aged exit at 2520 → loss 15
    fill(200, "ETHUSDT", Side.SELL, SHORT, "0.5", "2500", "0.6", "tb-b-E0"),
    fill(200, "ETHUSDT", Side.SELL, SHORT, "0.5", "2510", "0.6", "tb-b-E0"),
    fill(900, "ETHUSDT", Side.BUY, SHORT, "1", "2520", "0.5", "tb-b-A0"),
]


def test_pnl_fees_hash_and_counts() -> None:
    # BTC: +1000*0.001 + 500*0.001 = 1.5 ; ETH short avg 2505 → (2520-2505)*1*-1 = -15
    assert realized_pnl_usdt(FILLS) == D("-13.5")
    events = [
        Event(EventType.POSITION_ACTIVE, T0),
        Event(EventType.POSITION_ACTIVE, T0),
        Event(EventType.POSITION_CLOSED, T0),
        Event(EventType.POSITION_CLOSED, T0),
        Event(EventType.STOP_MOVED, T0),
        Event(EventType.STOP_MOVED, T0),
        Event(EventType.STOP_MOVED, T0),
        Event(EventType.TRAILING_ACTIVATED, T0),
        Event(EventType.TP_FILLED, T0),
        Event(EventType.AGED_EXIT_FILLED, T0),
        Event(EventType.POSITION_ROLLED_BACK, T0),
        Event(EventType.FILL, T0),
    ]
    counts = count_events(events)
    inv = InvariantSummary(
        violations=(),
        position_time_ms=1000,
        unprotected_ms=0,
        max_unprotected_ms=0,
        positions_seen=2,
        steps=10,
    )
    r = build_report(
        event_counts=counts,
        fills=FILLS,
        invariants=inv,
        start_ts=T0,
        starting_wallet_usdt=D(1000),
        ticks_processed=400,
        wall_s=2.5,
        sim_s=900,
    )
    # fees: 0.10 + 0.02 + 0.05 + 0.6 + 0.6 + 0.5 = 1.87 (funding is not a fee)
    assert r.fees_usdt == D("1.87")
    # pnl = realized -13.5 - fees 1.87 - funding 0.05
    assert r.pnl_usdt == D("-15.42")
    assert (
        r.positions_opened,
        r.positions_closed,
        r.stop_moves,
        r.trailing_activations,
        r.tp_fills,
        r.aged_exits,
        r.rollbacks,
    ) == (2, 2, 3, 1, 1, 1, 1)
    assert r.events_journaled == 12 and r.events_by_type["order.fill"] == 1
    assert r.stop_coverage_pct == D("100.00")
    # realized equity: 1000 → 999.90 → 1000.88 → 1000.83 (funding) → 1001.28 (stop, peak)
    # → 1000.68 → 1000.08 → 984.58 (aged exit): dd = 16.70 / 1001.28 = 1.668 %
    assert r.max_drawdown_pct == D("1.67")
    lines = [
        "2025-05-20T00:00:00+00:00|BTCUSDT|BUY|LONG|0.002|100000|0.10|tb-a-E0|",
        "2025-05-20T00:01:00+00:00|BTCUSDT|SELL|LONG|0.001|101000|0.02|tb-a-T0|",
        "2025-05-20T00:02:00+00:00|BTCUSDT|SELL|LONG|0.001|100500|0.05|tb-a-S0|stop",
        "2025-05-20T00:03:20+00:00|ETHUSDT|SELL|SHORT|0.5|2500|0.6|tb-b-E0|",
        "2025-05-20T00:03:20+00:00|ETHUSDT|SELL|SHORT|0.5|2510|0.6|tb-b-E0|",
        "2025-05-20T00:15:00+00:00|ETHUSDT|BUY|SHORT|1|2520|0.5|tb-b-A0|",
    ]
    expected = hashlib.sha256("".join(x + "\n" for x in lines).encode()).hexdigest()
    assert r.trades_sha256 == expected == trades_sha256(FILLS)
    # any change in the trade list changes the hash; funding does not count as a trade
    assert trades_sha256(FILLS[:-1]) != expected
    assert trades_sha256([f for f in FILLS if f.reason != "funding"]) == expected
    doc = r.to_json_dict()
    assert list(doc)[: len(REPORT_KEYS)] == list(REPORT_KEYS)
    assert doc["pnl_usdt"] == "-15.42" and doc["fees_usdt"] == "1.87"
    json.dumps(doc)
    # with the journal's close reasons, aged exits are the positions closed by the aged exit
    r2 = build_report(
        event_counts=counts,
        fills=FILLS,
        invariants=inv,
        start_ts=T0,
        starting_wallet_usdt=D(1000),
        close_reasons={"aged_exit": 3, "stop": 1},
    )
    assert r2.aged_exits == 3
    assert r2.details["positions_closed_by_reason"] == {"aged_exit": 3, "stop": 1}
    table = format_table(r)
    assert "stop coverage" in table and "100.00 %" in table and "position.active" in table


def test_drawdown_on_sampled_curve(tmp_path: Path) -> None:
    curve = [
        (T0 + timedelta(minutes=i), D(v))
        for i, v in enumerate(["1000", "1100", "990", "1200", "1080", "1300"])
    ]
    assert max_drawdown_pct(curve) == D("10.00")  # 1100 → 990
    assert max_drawdown_pct([(T0, D(5))]) == D("0.00")
    out = tmp_path / "eq.png"
    write_equity_chart(curve, out)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def at(sec: float) -> datetime:
    return T0 + timedelta(seconds=sec)


class Venue:
    """A hand-driven venue view for the monitor."""

    def __init__(self) -> None:
        self.positions: list[PositionState] = []
        self.stops: dict[tuple[str, PositionSide], list[StopState]] = {}
        self.marks: dict[str, Decimal] = {}

    def open(self, sym: str, side: PositionSide, qty: str = "1") -> None:
        self.positions.append(PositionState(sym, side, D(qty), D(100)))

    def close(self, sym: str, side: PositionSide) -> None:
        self.positions = [p for p in self.positions if (p.symbol, p.position_side) != (sym, side)]
        self.stops.pop((sym, side), None)

    def set_stops(self, sym: str, side: PositionSide, *prices: str) -> None:
        self.stops[(sym, side)] = [StopState(sym, side, D(p)) for p in prices]

    def stops_of(self, sym: str, side: PositionSide) -> Sequence[StopState]:
        return self.stops.get((sym, side), [])

    def observe(self, mon: InvariantMonitor, sec: float) -> None:
        mon.observe(at(sec), self.positions, self.stops_of, self.marks.get)


def test_monitor_clean_life_and_unprotected_window() -> None:
    v, mon = Venue(), InvariantMonitor(unprotected_grace_ms=1000)
    v.marks["AUSDT"] = D(100)
    v.open("AUSDT", LONG)  # Binance-like: filled, stop not yet placed
    v.observe(mon, 0)
    v.set_stops("AUSDT", LONG, "98")  # stop confirmed 0.4 s later
    v.observe(mon, 0.4)
    v.marks["AUSDT"] = D(103)
    v.set_stops("AUSDT", LONG, "98", "102.4")  # make-before-break: new first
    v.observe(mon, 60)
    v.set_stops("AUSDT", LONG, "102.4")  # then cancel the old one
    v.observe(mon, 60)
    v.close("AUSDT", LONG)
    v.observe(mon, 100)
    s = mon.summary()
    assert s.violations == ()
    assert (s.position_time_ms, s.unprotected_ms, s.max_unprotected_ms) == (100_000, 400, 400)
    assert s.stop_coverage_pct == D("99.60")
    assert s.positions_seen == 1 and mon.open_positions() == 0


def test_monitor_flags_each_invariant() -> None:
    v, mon = Venue(), InvariantMonitor(unprotected_grace_ms=1000, duplicate_grace_ms=1000)
    v.marks.update({"AUSDT": D(100), "BUSDT": D(50)})
    v.open("AUSDT", LONG)
    v.set_stops("AUSDT", LONG, "98")
    v.open("BUSDT", SHORT)
    v.set_stops("BUSDT", SHORT, "51")
    v.observe(mon, 0)
    v.set_stops("AUSDT", LONG, "97")  # loosened long
    v.set_stops("BUSDT", SHORT, "49.9")  # short stop below the mark: wrong side
    v.observe(mon, 1)
    v.set_stops("AUSDT", LONG, "97", "97.5")  # duplicate …
    v.observe(mon, 2)
    v.observe(mon, 5)  # … persisting 3 s > grace
    v.set_stops("AUSDT", LONG)  # naked
    v.observe(mon, 6)
    v.observe(mon, 10)  # 4 s naked > grace
    v.set_stops("AUSDT", LONG, "0")  # zero stop
    v.observe(mon, 11)
    kinds = [x.kind for x in mon.violations]
    assert kinds.count("stop_loosened") == 2  # 98 → 97, then 97.5 → 0
    assert kinds.count("stop_wrong_side") == 1  # counted once while it persists
    assert kinds.count("duplicate_stops") == 1
    assert kinds.count("unprotected") == 1
    assert kinds.count("stop_zero") == 1
    s = mon.summary(end_ts=at(20))
    assert s.max_unprotected_ms == 5000 and s.position_time_ms == 40_000


def test_monitor_per_symbol_steps_and_open_at_end() -> None:
    v, mon = Venue(), InvariantMonitor()
    v.marks.update({"AUSDT": D(100), "BUSDT": D(50)})
    v.open("AUSDT", LONG)
    v.set_stops("AUSDT", LONG, "98")
    v.open("BUSDT", SHORT)
    v.set_stops("BUSDT", SHORT, "51")
    v.observe(mon, 0)
    # a step about AUSDT only: BUSDT's life must not end just because it is not listed
    mon.observe(
        at(30),
        [p for p in v.positions if p.symbol == "AUSDT"],
        v.stops_of,
        v.marks.get,
        symbol="AUSDT",
    )
    assert mon.open_positions() == 2
    v.close("AUSDT", LONG)
    mon.observe(at(45), [], v.stops_of, v.marks.get, symbol="AUSDT")
    assert mon.open_positions() == 1
    s = mon.summary(end_ts=at(60))
    assert s.position_time_ms == 45_000 + 60_000 and s.violations == ()


def test_monitor_watching_fast_path() -> None:
    v, mon = Venue(), InvariantMonitor()
    v.marks["AUSDT"] = D(100)
    assert not mon.watching("AUSDT")
    mon.skip()
    v.open("AUSDT", LONG)
    v.set_stops("AUSDT", LONG, "98")
    v.observe(mon, 1)
    assert mon.watching("AUSDT") and not mon.watching("BUSDT")
    v.close("AUSDT", LONG)
    v.observe(mon, 2)
    assert not mon.watching("AUSDT")
    assert mon.summary().steps == 3


def test_monitor_mark_steps_from_its_view_match_full_observations() -> None:
    """``observe_mark`` (a mark step without events, checked from the last view) flags and
    measures exactly what a full ``observe`` of the same step does: a stop the mark moved
    through, a naked window and duplicates that outlast their grace over mark steps."""

    def run(fast: bool) -> tuple[InvariantSummary, int]:
        v = Venue()
        mon = InvariantMonitor(unprotected_grace_ms=1000, duplicate_grace_ms=1000)
        taken = 0

        def step(sec: float, sym: str | None = None) -> None:
            nonlocal taken
            if sym is None:  # a request step: always a full observation
                v.observe(mon, sec)
                return
            if fast and mon.observe_mark(at(sec), sym, v.marks[sym]):
                taken += 1
                return
            mon.observe(
                at(sec),
                [p for p in v.positions if p.symbol == sym],
                v.stops_of,
                v.marks.get,
                symbol=sym,
            )

        v.marks.update({"AUSDT": D(100), "BUSDT": D(50)})
        assert not mon.observe_mark(at(0), "AUSDT", D(100))  # no view yet
        v.open("AUSDT", LONG)
        v.open("BUSDT", SHORT)
        v.set_stops("BUSDT", SHORT, "51", "52")  # duplicates
        step(0)  # AUSDT naked
        for sec in (0.5, 1.0, 1.5, 2.0):
            step(sec, "AUSDT")
            step(sec, "BUSDT")
        v.set_stops("AUSDT", LONG, "98")
        step(2.5)
        v.marks["AUSDT"] = D("97.9")  # the mark moved through the stop (no trigger here)
        step(3, "AUSDT")
        v.marks["BUSDT"] = D("51.5")
        step(3, "BUSDT")
        return mon.summary(), taken

    full, none_taken = run(fast=False)
    fast, taken = run(fast=True)
    assert none_taken == 0 and taken == 10
    assert fast == full
    kinds = sorted(x.kind for x in fast.violations)
    assert kinds == ["duplicate_stops", "stop_wrong_side", "stop_wrong_side", "unprotected"]
