"""Bad market data never reaches the engine or the actors (issue 17 items 1 and 2).

* The replay reader refuses a bad row in the middle of a file — text price, 0, -1, NaN,
  sNaN, Infinity, ``1e400``, a duplicate or out-of-order minute, ``high < low``, a gap, a
  99 % one-minute drop — with the file, the line and the rule, when the replay is built
  (before anything runs), and never loses the rows before it.
* The allow options accept gaps / price jumps explicitly.
* The paper engine and the market router refuse the same prices (a live mark that fails
  is dropped and journaled, never acted on).
* A stop's fill carries its trigger price; a fill worse than the trigger beyond the bound
  is a ``stop.gap_fill`` incident in the journal and in the report.
"""

from __future__ import annotations

import gzip
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from actors.routers import AccountRouter, MarketRouter
from adapters.paper import PaperEngine, bybit_like, load_instruments
from adapters.replay import KlineReplay, MarkTick, ReplayDataError, ms_to_datetime, read_bars
from tradebot.domain import PositionSide
from tradebot.events import EventType, FillRecorded, MemoryJournal, StopGapFill
from tradebot.invariants import InvariantMonitor
from tradebot.ports import EntryRequest, Fill, MarkPrice
from tradebot.report import build_report

D = Decimal
T0 = 1747699200000  # 2025-05-20T00:00:00Z
M = 60_000
HEADER = "open_time_ms,open,high,low,close,volume\n"


class _Clock:
    def __init__(self, now: datetime) -> None:
        self._now = now

    def now(self) -> datetime:
        return self._now


def good_rows(n: int = 6, start: int = T0) -> list[str]:
    return [f"{start + i * M},100.0,100.5,99.5,100.2,1\n" for i in range(n)]


def write(d: Path, symbol: str, rows: list[str]) -> Path:
    path = d / f"{symbol}.csv.gz"
    with gzip.open(path, "wt") as fh:
        fh.write(HEADER + "".join(rows))
    return path


# (bad row 4 = line 5 of the file, after the header and three good rows) → rule, message
BAD_ROWS = [
    (f"{T0 + 3 * M},abc,100.5,99.5,100.2,1", "format", "open 'abc' is not a decimal number"),
    (f"{T0 + 3 * M},100.0,100.5,0,100.2,1", "price", "low price not positive"),
    (f"{T0 + 3 * M},100.0,100.5,-1,100.2,1", "price", "low price not positive"),
    (f"{T0 + 3 * M},NaN,100.5,99.5,100.2,1", "price", "open price not finite"),
    (f"{T0 + 3 * M},100.0,sNaN,99.5,100.2,1", "price", "high price not finite"),
    (f"{T0 + 3 * M},100.0,Infinity,99.5,100.2,1", "price", "high price not finite"),
    (f"{T0 + 3 * M},100.0,1e400,99.5,100.2,1", "price", "high price above 1E+9 USDT"),
    (f"{T0 + 2 * M},100.0,100.5,99.5,100.2,1", "order", "duplicate minute"),
    (f"{T0 + 1 * M},100.0,100.5,99.5,100.2,1", "order", "out of order"),
    (f"{T0 + 3 * M},100.0,99.0,99.5,100.2,1", "ohlc", "inconsistent candle"),
    (f"{T0 + 5 * M},100.0,100.5,99.5,100.2,1", "gap", "gap: 2 minute(s) missing"),
    (f"{T0 + 3 * M},100.0,100.5,1.0,100.2,1", "move", "price moves -99.00 %"),
    (f"{T0 + 3 * M},100.0,250.0,99.5,100.2,1", "move", "price moves +151.26 %"),
    (f"{T0 + 3 * M},1.0,1.5,0.9,1.2,1", "move", "previous close 100.2 -> open 1.0"),
]


@pytest.mark.parametrize(("row", "rule", "message"), BAD_ROWS)
def test_bad_row_in_the_middle_is_refused_at_construction_with_file_line_rule(
    tmp_path: Path, row: str, rule: str, message: str
) -> None:
    rows = [*good_rows(3), row + "\n", *good_rows(2, start=T0 + 6 * M)]
    path = write(tmp_path, "BADUSDT", rows)
    write(tmp_path, "OKUSDT", good_rows(8))
    with pytest.raises(ReplayDataError) as info:
        # construction alone: the run would never start on this data
        KlineReplay(tmp_path, start=ms_to_datetime(T0), end=ms_to_datetime(T0 + 8 * M))
    assert str(info.value).startswith(f"{path}:5: "), str(info.value)
    assert message in str(info.value)
    assert info.value.rule == rule
    # the reader yields every row before the bad one, then raises
    got = []
    with pytest.raises(ReplayDataError):
        for bar in read_bars(path, "BADUSDT"):
            got.append(bar.open_time_ms)
    assert got == [T0, T0 + M, T0 + 2 * M]


def test_allow_options_accept_gaps_and_jumps_explicitly(tmp_path: Path) -> None:
    gap = [*good_rows(3), f"{T0 + 5 * M},100.0,100.5,99.5,100.2,1\n"]
    write(tmp_path, "GAPUSDT", gap)
    with pytest.raises(ReplayDataError, match="gap"):
        KlineReplay(tmp_path)
    r = KlineReplay(tmp_path, allow_gaps=True)
    assert [b.open_time_ms for b in r.bars()] == [T0, T0 + M, T0 + 2 * M, T0 + 5 * M]

    drop = [*good_rows(3), f"{T0 + 3 * M},100.0,100.5,0.1,100.2,1\n"]
    write(tmp_path, "GAPUSDT", drop)
    with pytest.raises(ReplayDataError, match=r"-99\.90 %"):
        KlineReplay(tmp_path)
    with pytest.raises(ReplayDataError, match=r"-99\.90 %"):
        KlineReplay(tmp_path, max_move_pct=D(99))
    r = KlineReplay(tmp_path, max_move_pct=None)
    marks = [t.mark_price for t in r.ticks() if isinstance(t, MarkTick)]
    assert D("0.1") in marks
    with pytest.raises(ValueError, match="max_move_pct"):
        KlineReplay(tmp_path, max_move_pct=D("NaN"))


def test_bundled_data_passes_the_validation_unchanged() -> None:
    r = KlineReplay()  # the whole bundled 3 days, every rule at its default
    assert len(r.symbols) == 16 and r.left_out == {}


def test_symbol_without_candles_in_the_window_is_left_out_with_a_note(tmp_path: Path) -> None:
    write(tmp_path, "AAAUSDT", good_rows(10))
    write(tmp_path, "LATEUSDT", good_rows(3, start=T0 + 100 * M))
    r = KlineReplay(tmp_path, start=ms_to_datetime(T0), end=ms_to_datetime(T0 + 10 * M))
    assert r.symbols == ("AAAUSDT",)
    assert "LATEUSDT" in r.left_out and "instruments" not in r.left_out["LATEUSDT"]
    assert r.notes == [f"LATEUSDT: {r.left_out['LATEUSDT']}; left out of this run"]
    assert "no candles in the window" in r.notes[0]
    with pytest.raises(ReplayDataError) as info:
        KlineReplay(tmp_path, start=ms_to_datetime(T0 + 10 * M), end=ms_to_datetime(T0))
    assert info.value.rule == "window" and "is not before its end" in str(info.value)


@pytest.mark.parametrize("bad", [D("NaN"), D("sNaN"), D("Infinity"), D(0), D(-1), D("1e400")])
def test_engine_refuses_the_same_prices_and_keeps_its_state(bad: Decimal) -> None:
    ts = ms_to_datetime(T0)
    e = PaperEngine(bybit_like(), load_instruments(), wallet_usdt=D(10000), start_ts=ts)
    e.set_mark("BTCUSDT", D(100000), ts)
    with pytest.raises(ValueError, match="BTCUSDT: mark_price"):
        e.set_mark("BTCUSDT", bad, ts + timedelta(seconds=1))
    assert e.mark_price("BTCUSDT") == D(100000)


def test_market_router_drops_and_journals_an_insane_live_mark() -> None:
    journal = MemoryJournal()
    ts = datetime(2025, 5, 20, tzinfo=UTC)
    router = MarketRouter(journal=journal, clock=_Clock(ts))
    router.set_mark(MarkPrice("BTCUSDT", D(100000), ts))
    for bad in (D("NaN"), D(0), D("-5"), D("1e400"), 1.5):
        router.set_mark(MarkPrice("BTCUSDT", bad, ts))  # type: ignore[arg-type]
    assert router.latest("BTCUSDT") == D(100000)  # never acted on
    assert router.rejected == 5 and router.updates == 1
    rejected = journal.of_type(EventType.MARK_REJECTED)
    assert [e.data["mark_price"] for e in rejected] == ["NaN", "0", "-5", "1E+400", "1.5"]
    assert all(e.symbol == "BTCUSDT" and e.data["reason"] for e in rejected)


def test_market_router_batch_path_delivers_in_order_and_drops_insane_marks() -> None:
    journal = MemoryJournal()
    ts = datetime(2025, 5, 20, tzinfo=UTC)
    router = MarketRouter(journal=journal, clock=_Clock(ts))
    seen: list[tuple[str, Decimal]] = []
    for sym in ("BTCUSDT", "ETHUSDT"):
        cell = router.cell(sym)
        cell.add_listener(lambda c=cell: seen.append((c.get().symbol, c.get().mark_price)))
    router.set_marks(
        [("BTCUSDT", D(100000)), ("ETHUSDT", D("NaN")), ("ETHUSDT", D(2500)), ("BTCUSDT", D(1))],
        ts,
    )
    assert seen == [("BTCUSDT", D(100000)), ("ETHUSDT", D(2500)), ("BTCUSDT", D(1))]
    assert router.updates == 3 and router.rejected == 1
    assert router.cell("ETHUSDT").get() == MarkPrice("ETHUSDT", D(2500), ts)
    assert [e.data["mark_price"] for e in journal.of_type(EventType.MARK_REJECTED)] == ["NaN"]


def test_gap_fill_of_a_stop_is_an_incident_in_journal_and_report() -> None:
    """A long BTC position of ~200 USDT with a 2 % stop; the mark drops 99 % in one step:
    the stop fills at the new mark (gap-aware), carrying its trigger; the router journals
    trigger, fill price and slippage, and a ``stop.gap_fill`` incident; the report shows
    it in its incident line."""
    ts = datetime(2025, 5, 20, tzinfo=UTC)
    e = PaperEngine(bybit_like(), load_instruments(), wallet_usdt=D(10000), start_ts=ts)
    e.set_mark("BTCUSDT", D(100000), ts)
    e.place_entry(
        EntryRequest(
            symbol="BTCUSDT",
            position_side=PositionSide.LONG,
            qty=D("0.002"),
            client_order_id="tb-p1-E0",
            stop_price=D(98000),
        )
    )
    events = e.set_mark("BTCUSDT", D(1000), ts + timedelta(minutes=1))
    stop_fill = next(x for x in events if isinstance(x, Fill))
    assert (stop_fill.reason, stop_fill.trigger_price, stop_fill.price) == ("stop", 98000, 1000)

    journal = MemoryJournal()
    router = AccountRouter(journal, _Clock(ts))
    router._journal_fill(stop_fill)
    (fill_ev,) = journal.of_type(EventType.FILL)
    recorded = fill_ev.payload_as(FillRecorded)
    assert (recorded.trigger_price, recorded.price) == (D(98000), D(1000))
    assert recorded.slippage_pct == D("98.9796")
    assert fill_ev.data["trigger_price"] == "98000"  # JSON-safe in the journal's data
    (gap_ev,) = journal.of_type(EventType.STOP_GAP_FILL)
    gap = gap_ev.payload_as(StopGapFill)
    assert (gap.fill_price, gap.bound_pct, gap.trigger_price) == (D(1000), D(1), D(98000))
    assert router.gap_fills == 1

    counts = {EventType.FILL.value: 1, EventType.STOP_GAP_FILL.value: 1}
    report = build_report(
        event_counts=counts,
        fills=e.trade_log,
        invariants=InvariantMonitor().summary(),
        start_ts=ts,
        starting_wallet_usdt=D(10000),
    )
    assert report.details["incidents"]["stop_gap_fills"] == 1
    (listed,) = report.details["stop_fills"]["gap_fills"]
    assert (listed["trigger_price"], listed["fill_price"]) == (D(98000), D(1000))
    from tradebot.report import format_table

    table = format_table(report)
    assert "stop gap fills 1" in table
    assert "trigger 98000 filled 1000 (98.9796 % worse)" in table

    # a normal stop fill (at its trigger) is no incident
    journal2 = MemoryJournal()
    AccountRouter(journal2, _Clock(ts))._journal_fill(
        Fill(
            symbol="BTCUSDT",
            client_order_id="",
            venue_order_id="1",
            trade_id="T1",
            side=PositionSide.LONG.exit_side,
            position_side=PositionSide.LONG,
            qty=D("0.002"),
            price=D("97990"),
            fee_usdt=D("0.1"),
            is_maker=False,
            ts=ts,
            reason="stop",
            trigger_price=D(98000),
        )
    )
    assert journal2.of_type(EventType.STOP_GAP_FILL) == []
    assert journal2.of_type(EventType.FILL)[0].payload_as(FillRecorded).slippage_pct == D("0.0102")


def test_fuzz_findings_non_ascii_byte_and_out_of_order_row_before_the_window(
    tmp_path: Path,
) -> None:
    """Found by tests/test_fuzz_klines.py: (1) a non-ASCII byte failed the whole read buffer
    (error on line 1, the good rows before it never yielded); (2) a row out of order whose
    time lies before the window start was skipped silently (and reset the order check)."""
    path = tmp_path / "AAAUSDT.csv"
    path.write_bytes((HEADER + "".join(good_rows(3))).encode() + b"\x80,1,1,1,1,1\n")
    got = []
    with pytest.raises(ReplayDataError, match=r"AAAUSDT\.csv:5: bad row"):
        for bar in read_bars(path, "AAAUSDT"):
            got.append(bar.open_time_ms)
    assert got == [T0, T0 + M, T0 + 2 * M]
    rows = [*good_rows(3), f"{T0 - 10 * M},100.0,100.5,99.5,100.2,1\n", *good_rows(2, T0 + 3 * M)]
    write(tmp_path, "BBBUSDT", rows)
    path.unlink()
    with pytest.raises(ReplayDataError, match=r"BBBUSDT\.csv\.gz:5: .* out of order"):
        KlineReplay(tmp_path, start=ms_to_datetime(T0 + 2 * M))
