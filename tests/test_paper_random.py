"""Randomized engine suite: seeded random operations and mark paths (real 1m closes from the
bundled data), with accounting and reduce-only invariants checked at every engine step."""

from __future__ import annotations

import csv
import gzip
import random
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from importlib import resources

import pytest

from adapters.paper import EngineStep, PaperEngine, binance_like, bybit_like, load_instruments
from tradebot.domain import OrderStatus, OrderType, PositionSide, Side
from tradebot.errors import RejectedError
from tradebot.money import Rounding
from tradebot.ports import EntryRequest, Fill, OrderUpdate, ReduceRequest, StopRequest

D = Decimal
T0 = datetime(2025, 5, 20, tzinfo=UTC)
SYMBOLS = ["BTCUSDT", "ETHUSDT", "XRPUSDT", "ADAUSDT"]
START_WALLET = D(100_000)


def _closes(symbol: str, n: int) -> list[Decimal]:
    path = resources.files("tradebot") / "data" / "market" / f"{symbol}.csv.gz"
    with path.open("rb") as raw, gzip.open(raw, "rt") as fh:
        rows = csv.DictReader(fh)
        return [D(r["close"]) for _, r in zip(range(n), rows, strict=False)]


class Checker:
    """Step listener: invariants that must hold after every engine step."""

    def __init__(self, engine: PaperEngine) -> None:
        self.e = engine
        self.net: dict[tuple[str, PositionSide], Decimal] = defaultdict(Decimal)
        self.steps = 0
        self.stop_fills = 0
        self.log: list[tuple[int, str, str | None, tuple[object, ...]]] = []

    def __call__(self, step: EngineStep) -> None:
        self.steps += 1
        self.log.append((step.seq, step.kind, step.symbol, step.events))
        e = self.e
        for ev in step.events:
            if isinstance(ev, Fill) and ev.reason != "funding":
                key = (ev.symbol, ev.position_side)
                opening = ev.side is ev.position_side.entry_side
                self.net[key] += ev.qty if opening else -ev.qty
                if ev.reason == "stop":
                    self.stop_fills += 1
                    # gap-aware: a stop fills at the mark of the step that triggered it
                    assert step.kind == "mark" and ev.price == e.mark_price(ev.symbol)
            if isinstance(ev, OrderUpdate):
                o = ev.order
                assert o.filled_qty <= o.qty or o.close_position
        if step.error is not None:
            assert step.events == ()  # a refusal changes nothing
        for (sym, side), net in self.net.items():
            pos = e.position(sym, side)
            assert pos.qty == net >= 0, (sym, side, pos.qty, net)
            assert (pos.entry_price > 0) == (pos.qty > 0)
        w = e.wallet()
        assert w.wallet_usdt == START_WALLET + w.realized_pnl_usdt - w.fees_usdt - w.funding_usdt
        assert w.used_margin_usdt >= 0 and w.reserved_margin_usdt >= 0
        fee_sum = sum((f.fee_usdt for f in e.trade_log), D(0))
        assert fee_sum == w.fees_usdt
        assert sum((f.realized_pnl_usdt or D(0) for f in e.trade_log), D(0)) == w.realized_pnl_usdt


def run_random(
    profile_name: str,
    seed: int,
    n_marks: int = 300,
    engine_cls: type[PaperEngine] = PaperEngine,
    batched: bool = False,
) -> tuple[list[Fill], Checker]:
    rng = random.Random(seed)
    profile = bybit_like() if profile_name == "bybit" else binance_like()
    inst = load_instruments()
    e = engine_cls(profile, inst, wallet_usdt=START_WALLET, start_ts=T0)
    chk = Checker(e)
    e.add_listener(chk)
    paths = {s: _closes(s, n_marks) for s in SYMBOLS}
    cid_n = 0
    for k in range(n_marks):
        ts = T0 + timedelta(minutes=k)
        marks = []
        for s in SYMBOLS:
            # exaggerate moves so stops and limits fire: +-3% shocks now and then
            p = paths[s][k]
            if rng.random() < 0.05:
                p = p * D(1 + rng.choice([-3, 3]) / 100)
            marks.append((s, inst[s].round_price(p, Rounding.DOWN)))
        if batched:
            e.set_marks(marks, ts)  # the replay driver's path
        else:
            for s, p in marks:
                e.set_mark(s, p, ts)
        for _ in range(rng.randint(0, 3)):
            s = rng.choice(SYMBOLS)
            side = rng.choice([PositionSide.LONG, PositionSide.SHORT])
            mark = e.mark_price(s)
            assert mark is not None
            i = inst[s]
            qty = i.floor_qty(D(rng.choice([20, 50, 150, 400])) / mark)
            cid_n += 1
            cid = f"r{cid_n}"
            op = rng.random()
            try:
                if op < 0.35:
                    stop = None
                    if profile.capabilities.attached_stop and rng.random() < 0.7:
                        pct = D(rng.choice([1, 2, 3])) / 100
                        raw = mark * (1 - pct) if side is PositionSide.LONG else mark * (1 + pct)
                        stop = i.round_price(raw, side.stop_rounding)
                    e.place_entry(EntryRequest(s, side, max(qty, i.min_qty), cid, stop))
                elif op < 0.55:
                    pct = D(rng.choice([-1, 1, 2, 3])) / 100  # -1%: sometimes through the mark
                    raw = mark * (1 - pct) if side is PositionSide.LONG else mark * (1 + pct)
                    q = None if rng.random() < 0.6 else max(qty, i.min_qty)
                    e.place_stop(
                        StopRequest(s, side, i.round_price(raw, side.stop_rounding), cid, q)
                    )
                elif op < 0.75:
                    price = None
                    if rng.random() < 0.5:
                        off = D(rng.choice([1, 2])) / 100
                        raw = mark * (1 + off) if side is PositionSide.LONG else mark * (1 - off)
                        price = i.round_price(raw, Rounding.DOWN)
                    e.place_reduce(ReduceRequest(s, side, max(qty, i.min_qty), cid, price))
                elif op < 0.85:
                    off = D(rng.choice([1, 2])) / 100
                    raw = mark * (1 - off) if side is PositionSide.LONG else mark * (1 + off)
                    e.submit_order(
                        symbol=s,
                        side=side.entry_side,
                        position_side=side,
                        order_type=OrderType.LIMIT,
                        qty=max(qty, i.min_qty),
                        client_order_id=cid,
                        price=i.round_price(raw, Rounding.DOWN),
                    )
                elif op < 0.95:
                    live = e.open_orders(s)
                    if live:
                        o = rng.choice(live)
                        if (
                            o.order_type is OrderType.STOP_MARKET
                            and profile.conditional_orders_are_algo
                        ):
                            e.cancel_algo_order(s, o.client_order_id, o.venue_order_id)
                        else:
                            e.cancel_order(s, o.client_order_id, o.venue_order_id)
                else:
                    e.apply_funding(s, D(rng.choice([-1, 1, 3])) / 10000, ts)
            except RejectedError:
                pass
    return list(e.trade_log), chk


@pytest.mark.parametrize("profile_name", ["bybit", "binance"])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_operations_keep_accounting_and_reduce_only_invariants(
    profile_name: str, seed: int
) -> None:
    trades, chk = run_random(profile_name, seed)
    assert chk.steps > 1000 and len(trades) > 50
    assert chk.stop_fills > 0  # the suite really exercises triggered stops


class _MatchEveryMark(PaperEngine):
    """The reference: no trigger band, every mark runs the full match."""

    def _band_of(self, symbol: str, live: list[object]) -> None:  # type: ignore[override]
        return None


@pytest.mark.parametrize("profile_name", ["bybit", "binance"])
@pytest.mark.parametrize("seed", [4, 5])
def test_trigger_bands_skip_only_marks_that_trigger_nothing(profile_name: str, seed: int) -> None:
    # the engine skips a mark strictly inside the band of its symbol's triggers: the
    # same random run with every mark fully matched gives the very same executions
    fast, chk = run_random(profile_name, seed)
    full, _ = run_random(profile_name, seed, engine_cls=_MatchEveryMark)
    assert fast == full and chk.stop_fills > 0 and len(fast) > 50


@pytest.mark.parametrize("profile_name", ["bybit", "binance"])
def test_set_marks_is_set_mark_in_order(profile_name: str) -> None:
    # one call per instant (the replay driver's) gives the very same steps, events and trades
    one, chk1 = run_random(profile_name, 6)
    batch, chk2 = run_random(profile_name, 6, batched=True)
    assert batch == one and chk2.log == chk1.log and chk1.stop_fills > 0


def test_set_marks_refuses_a_bad_mark_after_applying_the_ones_before() -> None:
    e = PaperEngine(bybit_like(), load_instruments(), start_ts=T0)
    with pytest.raises(ValueError, match="mark_price"):
        e.set_marks([("BTCUSDT", D("100000")), ("ETHUSDT", D("NaN")), ("XRPUSDT", D(2))], T0)
    assert e.mark_price("BTCUSDT") == D("100000")
    assert e.mark_price("ETHUSDT") is None and e.mark_price("XRPUSDT") is None
    with pytest.raises(ValueError, match="unknown symbol"):
        e.set_marks([("NOPEUSDT", D(1))], T0)


def test_same_seed_same_trades() -> None:
    a, _ = run_random("binance", 11, n_marks=120)
    b, _ = run_random("binance", 11, n_marks=120)
    assert a == b and len(a) > 10


def test_reduce_only_never_flips_or_increases() -> None:
    e = PaperEngine(bybit_like(), load_instruments(), start_ts=T0)
    e.set_mark("ETHUSDT", D("2500"), T0)
    e.place_entry(EntryRequest("ETHUSDT", PositionSide.LONG, D("0.1"), "e1"))
    for k, q in enumerate(["0.05", "0.2", "0.2"]):
        try:
            e.place_reduce(ReduceRequest("ETHUSDT", PositionSide.LONG, D(q), f"c{k}"))
        except RejectedError as exc:
            assert exc.code == "110017"
    assert e.position("ETHUSDT", PositionSide.LONG).qty == 0
    assert e.position("ETHUSDT", PositionSide.SHORT).qty == 0
    assert [f.qty for f in e.trade_log] == [D("0.1"), D("0.05"), D("0.05")]
    assert all(f.side is Side.SELL for f in e.trade_log[1:])
    o = e.get_order("ETHUSDT", "c1")
    assert o is not None and o.status is OrderStatus.FILLED and o.qty == D("0.05")  # trimmed
