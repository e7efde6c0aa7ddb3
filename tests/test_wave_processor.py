"""WaveProcessor scenarios in virtual time (MockClock): timing, reserve, limits, duplicates.

The opener is a recording stand-in of the PositionSupervisor's ``PositionOpener``
interface: it keeps real open-position bookkeeping (so the limits see what was opened) and
can be told which symbols fail to open.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import trio
import trio.testing

from actors.runtime import Address, run_actor
from actors.wave import Deliver, GetWaveStatus, WaveMessage, WaveProcessor, WaveStatus
from tradebot.clock import TrioClock
from tradebot.domain import Instrument, PositionSide
from tradebot.errors import JournalError
from tradebot.events import EventType, MemoryJournal, SignalTaken
from tradebot.ids import position_id_for
from tradebot.policies.sizing import SizingSettings
from tradebot.ports import OpenOutcome, OpenRequest
from tradebot.signals import Rejection, Signal, Wave, WaveSettings

T0 = datetime(2025, 5, 21, 11, 0, tzinfo=UTC)
SYMBOLS = [f"S{i:02d}USDT" for i in range(20)]
INSTRUMENTS = {
    s: Instrument(s, Decimal("0.01"), Decimal("0.1"), Decimal("0.1"), Decimal(5)) for s in SYMBOLS
}
PRICES = {s: Decimal(10) for s in SYMBOLS}


class RecordingOpener:
    """A PositionOpener stand-in: records requests, keeps positions, fails on demand."""

    def __init__(self, *, fail: Iterable[str] = (), latency_s: float = 1.0) -> None:
        self.fail = set(fail)
        self.latency_s = latency_s
        self.requests: list[tuple[float, OpenRequest]] = []
        self.positions: dict[tuple[str, PositionSide], Decimal] = {}

    def has_position(self, symbol: str, position_side: PositionSide) -> bool:
        return (symbol, position_side) in self.positions

    def open_count(self) -> int:
        return len(self.positions)

    def exposure_usdt(self) -> Decimal:
        return sum(self.positions.values(), Decimal(0))

    async def open_position(self, request: OpenRequest) -> OpenOutcome:
        self.requests.append((trio.current_time(), request))
        await trio.sleep(self.latency_s)
        if request.symbol in self.fail:
            return OpenOutcome(request.position_id, False, "entry rejected: 110007")
        self.positions[(request.symbol, request.position_side)] = (
            request.qty * request.reference_price
        )
        return OpenOutcome(request.position_id, True)


def sig(
    i: int,
    score: str,
    *,
    symbol: str | None = None,
    ts: datetime = T0,
    side: PositionSide = PositionSide.LONG,
) -> Signal:
    return Signal(f"sig-{i}", symbol or SYMBOLS[i], "bybit", side, Decimal(score), Decimal(50), ts)


@asynccontextmanager
async def processor(
    journal: MemoryJournal,
    opener: RecordingOpener,
    settings: WaveSettings | None = None,
    *,
    start: datetime = T0 + timedelta(minutes=1),
) -> AsyncIterator[tuple[Address[WaveMessage], TrioClock]]:
    clock = TrioClock(start)
    actor = WaveProcessor(
        settings=settings or WaveSettings(venues=frozenset({"bybit"})),
        journal=journal,
        reader=journal,
        clock=clock,
        opener=opener,
        instruments=INSTRUMENTS,
        price_of=PRICES.get,
    )
    async with trio.open_nursery() as nursery:
        address = await nursery.start(run_actor, actor, "waves")
        yield address, clock
        nursery.cancel_scope.cancel()


def decisions(journal: MemoryJournal) -> dict[str, tuple[str, str]]:
    out = {}
    for e in journal.of_type(EventType.SIGNAL_TAKEN, EventType.SIGNAL_FILTERED):
        assert e.data["signal_id"] not in out, "a signal decided twice"
        out[e.data["signal_id"]] = (e.data["decision"], e.data["reason"])
    return out


async def test_reserve_two_failures_still_open_exactly_five(
    autojump_clock: trio.testing.MockClock,
) -> None:
    journal = MemoryJournal()
    # ranks: sig-0 (99) ... sig-8 (91); sig-1 and sig-3 fail to open
    opener = RecordingOpener(fail={SYMBOLS[1], SYMBOLS[3]})
    with trio.fail_after(3600):
        async with processor(journal, opener) as (address, _clock):
            await address.send(Deliver(Wave(T0, tuple(sig(i, str(99 - i)) for i in range(9)))))
            await trio.sleep(10 * 60)
            status: WaveStatus = await address.ask(GetWaveStatus(), timeout_s=5)
    assert [r.signal_id for _, r in opener.requests] == [f"sig-{i}" for i in range(7)]
    assert len(opener.positions) == 5
    d = decisions(journal)
    assert {k for k, v in d.items() if v[0] == "taken"} == {
        "sig-0",
        "sig-2",
        "sig-4",
        "sig-5",
        "sig-6",
    }
    assert d["sig-1"] == ("filtered", "open_failed:entry rejected: 110007")
    assert d["sig-3"] == ("filtered", "open_failed:entry rejected: 110007")
    assert d["sig-7"] == ("filtered", "below_reserve_cutoff")
    assert d["sig-8"] == ("filtered", "below_reserve_cutoff")
    (done,) = journal.of_type(EventType.WAVE_COMPLETED)
    assert {
        k: done.data[k]
        for k in ("wave_id", "received", "taken", "filtered", "rejected", "opened", "open_failed")
    } == {
        "wave_id": "wave-20250521T1100Z",
        "received": 9,
        "taken": 5,
        "filtered": 4,
        "rejected": 0,
        "opened": 5,
        "open_failed": 2,
    }
    assert status.completed[0].position_ids == tuple(
        position_id_for("default", SYMBOLS[i], PositionSide.LONG, T0) for i in (0, 2, 4, 5, 6)
    )
    required = {
        "signal_id",
        "symbol",
        "venue",
        "action",
        "score_week",
        "score_month",
        "wave_id",
        "decision",
        "reason",
    }
    for e in journal.of_type(EventType.SIGNAL_TAKEN, EventType.SIGNAL_FILTERED):
        assert required <= set(e.data), e.data
        assert e.correlation_id == e.data["wave_id"] == "wave-20250521T1100Z"
    assert {"wave_id", "wave_ts", "received", "taken", "filtered", "rejected", "opened"} <= set(
        done.data
    )
    taken = journal.of_type(EventType.SIGNAL_TAKEN)[0]
    assert taken.payload_as(SignalTaken).qty == Decimal("20.0") and taken.position_id is not None


async def test_five_taken_leaves_the_rest_of_the_reserve_unopened(
    autojump_clock: trio.testing.MockClock,
) -> None:
    journal = MemoryJournal()
    opener = RecordingOpener()
    with trio.fail_after(3600):
        async with processor(journal, opener) as (address, _clock):
            await address.send(Deliver(Wave(T0, tuple(sig(i, str(50 + i)) for i in range(8)))))
            await trio.sleep(10 * 60)
    assert len(opener.requests) == 5
    d = decisions(journal)
    # best scores are the highest i
    assert {k for k, v in d.items() if v[0] == "taken"} == {f"sig-{i}" for i in (7, 6, 5, 4, 3)}
    assert d["sig-2"] == ("filtered", "max_trades_per_wave")
    assert d["sig-1"] == ("filtered", "max_trades_per_wave")
    assert d["sig-0"] == ("filtered", "below_reserve_cutoff")


async def test_wave_is_processed_once_at_t_plus_delay_and_late_signals_are_journaled(
    autojump_clock: trio.testing.MockClock,
) -> None:
    journal = MemoryJournal()
    opener = RecordingOpener(latency_s=0)
    with trio.fail_after(3600):
        async with processor(journal, opener, start=T0 + timedelta(seconds=30)) as (address, clock):
            t_start = trio.current_time()
            await address.send(Deliver(sig(1, "80")))
            await trio.sleep(60)
            # the same wave in a batch, plus one more signal and one rejection
            await address.send(
                Deliver(
                    Wave(T0, (sig(1, "80"), sig(2, "70")), (Rejection("negative_score", "x", T0),))
                )
            )
            await trio.sleep(3 * 60)
            assert opener.requests == []  # not before T + 5 min
            await trio.sleep(2 * 60)
            assert [r.signal_id for _, r in opener.requests] == ["sig-1", "sig-2"]
            # processed exactly at 11:05:00 virtual
            assert opener.requests[0][0] - t_start == 4 * 60 + 30
            # a straggler for the processed wave, and a redelivery of the whole wave
            await address.send(Deliver(sig(3, "99")))
            await address.send(Deliver(Wave(T0, (sig(1, "80"), sig(2, "70")))))
            # the next wave starts its own clock: processed at 11:20
            await address.send(Deliver(sig(4, "60", ts=T0 + timedelta(minutes=15))))
            await trio.sleep(15 * 60)
            assert clock.now() == T0 + timedelta(minutes=21, seconds=30)
    assert len(opener.requests) == 3 and opener.requests[2][1].signal_id == "sig-4"
    assert opener.requests[2][0] - t_start == 19 * 60 + 30  # at 11:20:00
    (late,) = journal.of_type(EventType.SIGNAL_LATE)
    assert late.data["signal_id"] == "sig-3" and late.data["decision"] == "late"
    assert "processed" in late.data["reason"]
    dup = journal.of_type(EventType.WAVE_DUPLICATE)
    assert len(dup) == 1 and dup[0].data["new_signals"] == 0
    done = journal.of_type(EventType.WAVE_COMPLETED)
    assert [
        (e.data["wave_id"], e.data["received"], e.data["rejected"], e.data["duplicates"])
        for e in done
    ] == [("wave-20250521T1100Z", 2, 1, 1), ("wave-20250521T1115Z", 1, 0, 0)]
    assert done[0].ts == T0 + timedelta(minutes=5)


async def test_signal_after_the_processing_time_of_an_unseen_wave_is_late(
    autojump_clock: trio.testing.MockClock,
) -> None:
    journal = MemoryJournal()
    opener = RecordingOpener()
    with trio.fail_after(3600):
        async with processor(journal, opener, start=T0 + timedelta(minutes=6)) as (address, _):
            await address.send(Deliver(Wave(T0, (sig(1, "80"),))))
            await address.send(Deliver(sig(2, "80", ts=T0 + timedelta(hours=2))))
            await address.ask(GetWaveStatus(), timeout_s=5)
    assert opener.requests == []
    late = journal.of_type(EventType.SIGNAL_LATE)
    assert [e.data["signal_id"] for e in late] == ["sig-1", "sig-2"]
    assert "processing time" in late[0].data["reason"]
    assert late[1].data["reason"].startswith("wave_in_future")
    assert journal.of_type(EventType.WAVE_COMPLETED) == []


async def test_limits_each_respected_with_reasons(autojump_clock: trio.testing.MockClock) -> None:
    journal = MemoryJournal()
    opener = RecordingOpener(latency_s=0)
    # one position already open; room for two more positions (max 3) and 400 USDT exposure
    opener.positions[(SYMBOLS[0], PositionSide.LONG)] = Decimal(100)
    settings = WaveSettings(
        venues=frozenset({"bybit"}),
        stoplist=frozenset({SYMBOLS[1]}),
        min_score_month=Decimal(40),
        risk=SizingSettings(
            position_size_usdt=Decimal(200), max_open_positions=3, max_exposure_usdt=Decimal(450)
        ),
    )
    wave = Wave(
        T0,
        (
            sig(0, "99"),  # existing position on the same symbol/side
            sig(1, "98"),  # stoplist
            sig(2, "97"),  # opened: exposure 100 + 200 = 300
            sig(3, "96"),  # exposure 300 + 200 > 450
            Signal("sig-4", SYMBOLS[4], "binance", PositionSide.LONG, Decimal(95), Decimal(50), T0),
            Signal("sig-5", SYMBOLS[5], "bybit", PositionSide.LONG, Decimal(94), Decimal(10), T0),
            # the other side of an open symbol is not "existing", but exposure binds
            Signal("sig-6", SYMBOLS[0], "bybit", PositionSide.SHORT, Decimal(93), Decimal(50), T0),
            Signal("sig-7", SYMBOLS[7], "bybit", PositionSide.LONG, Decimal(92), Decimal(50), T0),
        ),
    )
    with trio.fail_after(3600):
        async with processor(journal, opener, settings) as (address, _):
            await address.send(Deliver(wave))
            await trio.sleep(10 * 60)
    d = decisions(journal)
    assert d == {
        "sig-0": ("filtered", "existing_position"),
        "sig-1": ("filtered", "stoplist"),
        "sig-2": ("taken", "opened"),
        "sig-3": ("filtered", "max_exposure"),
        "sig-4": ("filtered", "venue_mismatch"),
        "sig-5": ("filtered", "min_score_month"),
        "sig-6": ("filtered", "max_exposure"),  # 300 + 200 > 450 as well
        "sig-7": ("filtered", "max_exposure"),
    }
    # now the position count is the binding limit
    journal2 = MemoryJournal()
    opener.positions[(SYMBOLS[9], PositionSide.LONG)] = Decimal(0)
    settings2 = WaveSettings(
        risk=SizingSettings(max_open_positions=3, max_exposure_usdt=Decimal(10_000))
    )
    with trio.fail_after(3600):
        async with processor(journal2, opener, settings2, start=T0 + timedelta(minutes=16)) as (
            address,
            _,
        ):
            ts = T0 + timedelta(minutes=15)
            await address.send(Deliver(Wave(ts, (sig(10, "90", ts=ts), sig(11, "80", ts=ts)))))
            await trio.sleep(10 * 60)
    assert decisions(journal2) == {
        "sig-10": ("filtered", "max_open_positions"),
        "sig-11": ("filtered", "max_open_positions"),
    }
    for e in journal.of_type(EventType.SIGNAL_FILTERED) + journal2.of_type(
        EventType.SIGNAL_FILTERED
    ):
        assert e.data["reason"] and e.data["wave_id"] and e.symbol


async def test_duplicate_delivery_after_restart_is_not_processed_again(
    autojump_clock: trio.testing.MockClock,
) -> None:
    journal = MemoryJournal()
    opener = RecordingOpener()
    wave = Wave(T0, (sig(1, "80"), sig(2, "70")))
    with trio.fail_after(3600):
        async with processor(journal, opener) as (address, _):
            await address.send(Deliver(wave))
            await trio.sleep(10 * 60)
        assert len(opener.requests) == 2
        # "restart": a fresh processor over the same journal, the wave re-delivered in time
        fresh_opener = RecordingOpener()
        async with processor(journal, fresh_opener, start=T0 + timedelta(minutes=2)) as (
            address,
            _,
        ):
            await address.send(Deliver(wave))
            await address.send(Deliver(sig(3, "99")))
            await trio.sleep(10 * 60)
    assert fresh_opener.requests == []
    assert len(journal.of_type(EventType.WAVE_COMPLETED)) == 1
    dups = journal.of_type(EventType.WAVE_DUPLICATE)
    assert [d.data["status"] for d in dups] == ["already_processed", "already_processed"]
    assert len(decisions(journal)) == 2


class _BrokenReader(MemoryJournal):
    async def is_wave_processed(self, wave_id: str) -> bool:
        raise JournalError("database unreachable and nothing in the spool")


async def test_unknown_processed_state_never_trades_the_wave(
    autojump_clock: trio.testing.MockClock,
) -> None:
    journal = _BrokenReader()
    opener = RecordingOpener()
    with trio.fail_after(3600):
        async with processor(journal, opener) as (address, _):
            await address.send(Deliver(Wave(T0, (sig(1, "80"), sig(2, "70")))))
            await trio.sleep(10 * 60)
    assert opener.requests == []
    assert decisions(journal) == {
        "sig-1": ("filtered", "journal_unavailable"),
        "sig-2": ("filtered", "journal_unavailable"),
    }
    (done,) = journal.of_type(EventType.WAVE_COMPLETED)
    assert (done.data["received"], done.data["filtered"], done.data["opened"]) == (2, 2, 0)


async def test_paused_entries_open_nothing_and_resume_opens_again(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The entry gate (operator pause): a paused processor still processes the wave once and
    journals every candidate ``entries_paused``; after resume the next wave opens."""
    from actors.wave import SetEntriesPaused

    journal = MemoryJournal()
    opener = RecordingOpener()
    with trio.fail_after(3600):
        async with processor(journal, opener) as (address, _clock):
            assert await address.ask(SetEntriesPaused(True, "http", "maintenance"), 5) is True
            assert await address.ask(SetEntriesPaused(True, "http"), 5) is False  # no change
            await address.send(Deliver(Wave(T0, tuple(sig(i, str(50 + i)) for i in range(3)))))
            await trio.sleep(10 * 60)
            assert opener.requests == []
            assert await address.ask(SetEntriesPaused(False, "cli"), 5) is True
            t1 = T0 + timedelta(minutes=15)
            await address.send(Deliver(Wave(t1, (sig(5, "60", ts=t1),))))
            await trio.sleep(15 * 60)
    assert [r.symbol for _, r in opener.requests] == [SYMBOLS[5]]
    d = decisions(journal)
    assert {d[f"sig-{i}"] for i in range(3)} == {("filtered", "entries_paused")}
    assert d["sig-5"] == ("taken", "opened")
    gate = journal.of_type(EventType.BOT_PAUSED, EventType.BOT_RESUMED)
    assert [(e.type, e.data["source"]) for e in gate] == [
        (EventType.BOT_PAUSED, "http"),
        (EventType.BOT_RESUMED, "cli"),
    ]
    assert len(journal.of_type(EventType.WAVE_COMPLETED)) == 2


def reuse_rejections(journal: MemoryJournal) -> list[tuple[str, str, str]]:
    return [
        (e.data["signal_id"], e.data["wave_id"], e.data["reason"])
        for e in journal.of_type(EventType.SIGNAL_REJECTED)
    ]


async def test_signal_id_reused_in_a_later_wave_is_refused_never_opened_twice(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A signal id first seen in wave T0 and sent again in wave T0+15 (another symbol, as a
    stale or conflicting service would) is journaled SIGNAL_REJECTED
    ``duplicate_signal_id`` naming the first wave; it never reaches the filters."""
    journal = MemoryJournal()
    opener = RecordingOpener(latency_s=0)
    t1, t2 = T0 + timedelta(minutes=15), T0 + timedelta(minutes=30)
    with trio.fail_after(3600):
        async with processor(journal, opener) as (address, _clock):
            await address.send(Deliver(Wave(T0, (sig(1, "80"), sig(2, "70")))))
            await trio.sleep(15 * 60)
            # sig-1 again in the next wave (another symbol) and as a single signal
            again = sig(1, "90", symbol=SYMBOLS[5], ts=t1)
            await address.send(Deliver(Wave(t1, (again, sig(3, "60", ts=t1)))))
            await address.send(Deliver(again))
            await trio.sleep(15 * 60)
            # the first signal of a new wave is a reused id: the wave still runs
            await address.send(Deliver(sig(2, "90", symbol=SYMBOLS[6], ts=t2)))
            await address.send(Deliver(sig(4, "60", ts=t2)))
            await trio.sleep(15 * 60)
    assert [r.signal_id for _, r in opener.requests] == ["sig-1", "sig-2", "sig-3", "sig-4"]
    assert [r.symbol for _, r in opener.requests] == [SYMBOLS[i] for i in (1, 2, 3, 4)]
    assert reuse_rejections(journal) == [
        ("sig-1", "wave-20250521T1115Z", "duplicate_signal_id:first seen in wave-20250521T1100Z"),
        ("sig-1", "wave-20250521T1115Z", "duplicate_signal_id:first seen in wave-20250521T1100Z"),
        ("sig-2", "wave-20250521T1130Z", "duplicate_signal_id:first seen in wave-20250521T1100Z"),
    ]
    rejected = journal.of_type(EventType.SIGNAL_REJECTED)[0]
    assert rejected.data["symbol"] == SYMBOLS[5] and rejected.data["source"] == "wave_processor"
    done = journal.of_type(EventType.WAVE_COMPLETED)
    assert [(d.data["received"], d.data["rejected"], d.data["opened"]) for d in done] == [
        (2, 0, 2),
        (1, 2, 1),
        (1, 1, 1),
    ]


async def test_reused_signal_id_is_refused_after_a_restart_from_the_journal(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The memory is seeded from the journal on start: a new incarnation (same journal)
    refuses an id an earlier one took; ids older than 24 h behind are forgotten."""
    journal = MemoryJournal()
    first = RecordingOpener(latency_s=0)
    with trio.fail_after(3600):
        async with processor(journal, first) as (address, _):
            await address.send(Deliver(Wave(T0, (sig(1, "80"), sig(2, "70")))))
            await trio.sleep(10 * 60)
    assert len(first.requests) == 2
    t1 = T0 + timedelta(minutes=15)
    second = RecordingOpener(latency_s=0)
    with trio.fail_after(3600):
        async with processor(journal, second, start=t1 + timedelta(minutes=1)) as (address, _):
            await address.send(Deliver(Wave(t1, (sig(1, "80", ts=t1), sig(3, "70", ts=t1)))))
            await trio.sleep(10 * 60)
    assert [r.signal_id for _, r in second.requests] == ["sig-3"]
    assert reuse_rejections(journal) == [
        ("sig-1", "wave-20250521T1115Z", "duplicate_signal_id:first seen in wave-20250521T1100Z"),
    ]
    # 24 h later the id of wave T0 is no longer remembered (bounded memory)
    late = T0 + timedelta(hours=24, minutes=15)
    third = RecordingOpener(latency_s=0)
    with trio.fail_after(3600):
        async with processor(journal, third, start=late + timedelta(minutes=1)) as (address, _):
            await address.send(Deliver(Wave(late, (sig(2, "80", symbol=SYMBOLS[7], ts=late),))))
            await trio.sleep(10 * 60)
    assert [r.signal_id for _, r in third.requests] == ["sig-2"]
    assert len(reuse_rejections(journal)) == 1


async def test_signal_id_memory_is_bounded_to_24_hours_of_waves(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Within one incarnation: sig-1 (wave T0) is refused in the wave 23 h 45 min later
    and accepted again in the wave 24 h 15 min later, when it is more than 24 h behind."""
    journal = MemoryJournal()
    opener = RecordingOpener(latency_s=0)
    with trio.fail_after(4 * 86400):
        async with processor(journal, opener) as (address, clock):
            await address.send(Deliver(Wave(T0, (sig(1, "80"),))))
            for k in range(1, 98):
                ts = T0 + timedelta(minutes=15 * k)
                await trio.sleep((ts + timedelta(minutes=1) - clock.now()).total_seconds())
                if k in (95, 97):  # 23:45 and 24:15 after T0; sig-1 first in its wave
                    await address.send(Deliver(sig(1, "80", symbol=SYMBOLS[k - 90], ts=ts)))
                other = Signal(
                    f"w{k}", SYMBOLS[10], "bybit", PositionSide.SHORT, Decimal(1), None, ts
                )
                await address.send(Deliver(other))
            await trio.sleep(10 * 60)
    opened = {(r.signal_id, r.symbol) for _, r in opener.requests}
    assert ("sig-1", SYMBOLS[1]) in opened and ("sig-1", SYMBOLS[7]) in opened
    assert ("sig-1", SYMBOLS[5]) not in opened
    assert reuse_rejections(journal) == [
        ("sig-1", "wave-20250522T1045Z", "duplicate_signal_id:first seen in wave-20250521T1100Z")
    ]
