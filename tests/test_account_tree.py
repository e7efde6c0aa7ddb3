"""``actors.account.open_account``: the one function that builds an account's actor tree.

A JSON-lines signal file (the real file source, paced on the trio clock) delivers one wave;
the tree's WaveProcessor opens it through the PositionSupervisor on the paper venue; every
supervision event reaches the journal through the one journal sink (with the traceback of a
crash and the restart delay); the ordered stop ends the signal feed before the wave
processor and the positions, and leaves every exchange stop in place.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import trio
from _position_support import T0, paper_world
from trio.testing import MockClock

from actors.account import open_account
from actors.runtime import RestartPolicy
from adapters.signals import FileSignalSource
from tradebot.domain import PositionSide
from tradebot.events import EventType
from tradebot.signals import WaveSettings

POLICY = RestartPolicy(max_restarts=2, window_s=60, backoff_initial_s=0.5, jitter=0.0)


def _wave_file(tmp_path: Path) -> Path:
    wave_ts = T0 + timedelta(minutes=15)
    msg = {
        "type": "wave",
        "timestamp": wave_ts.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "signals": [
            {
                "id": "s-eth",
                "symbol": "ETHUSDT",
                "exchange": "bybit",
                "action": "BUY",
                "score_week": "80",
                "score_month": "70",
            },
            {
                "id": "s-sol",
                "symbol": "SOLUSDT",
                "exchange": "bybit",
                "action": "SELL",
                "score_week": "75",
                "score_month": "60",
            },
        ],
    }
    path = tmp_path / "signals.jsonl"
    path.write_text(json.dumps(msg) + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize("profile", ["bybit", "binance"])
async def test_one_wave_through_the_whole_tree_and_the_ordered_stop(
    profile: str, tmp_path: Path, autojump_clock: MockClock
) -> None:
    path = _wave_file(tmp_path)
    with trio.fail_after(3600):  # virtual seconds
        async with paper_world(profile, marks={"ETHUSDT": "2500", "SOLUSDT": "170"}) as w:

            def source(journal: Any, clock: Any) -> FileSignalSource:
                return FileSignalSource(path, journal=journal, clock=clock, paced=True)

            async with open_account(
                port=w.venue,
                journal=w.journal,
                clock=w.clock,
                instruments=w.instruments,
                waves=WaveSettings(account="test"),
                signal_source=source,
                policy=POLICY,
                market=w.market,
                account_router=w.account,
            ) as account:
                assert account.wave_processor is not None
                # the wave for T0+15 min is processed at T0+20 min
                await trio.sleep(21 * 60)
                assert account.positions.open_count() == 2
                assert w.qty("ETHUSDT", PositionSide.LONG) > 0
                assert w.qty("SOLUSDT", PositionSide.SHORT) > 0
            # after the ordered stop: the positions are still open on the venue, with stops
            for sym, side in (("ETHUSDT", PositionSide.LONG), ("SOLUSDT", PositionSide.SHORT)):
                assert w.qty(sym, side) > 0
                assert w.stops(sym, side), f"{sym} {side}: stop removed by the shutdown"

    completed = w.journal.of_type(EventType.WAVE_COMPLETED)
    assert len(completed) == 1
    stopped = [
        (e.data["supervisor"], e.data["child"]) for e in w.journal.of_type(EventType.ACTOR_STOPPED)
    ]  # in the order the children stopped
    children = [child for _sup, child in stopped]
    assert children[:2] == ["signal_feed", "wave_processor"]
    assert {sup for sup, _child in stopped[2:]} == {"positions"} and len(stopped) == 4


async def test_a_crashing_signal_source_is_journaled_with_traceback_and_delay(
    autojump_clock: MockClock,
) -> None:
    calls = {"n": 0}

    class Broken:
        async def run(self, emit: Any) -> None:
            calls["n"] += 1
            if calls["n"] == 1:
                raise RuntimeError("signal source broke")
            await trio.sleep_forever()

    with trio.fail_after(600):
        async with (
            paper_world("bybit") as w,
            open_account(
                port=w.venue,
                journal=w.journal,
                clock=w.clock,
                instruments=w.instruments,
                waves=WaveSettings(account="test"),
                signal_source=lambda journal, clock: Broken(),
                policy=POLICY,
                market=w.market,
                account_router=w.account,
            ),
        ):
            await trio.sleep(10)
    crashed = w.journal.of_type(EventType.ACTOR_CRASHED)
    assert crashed, "the crash was not journaled"
    first = crashed[0].data
    assert first["child"] == "signal_feed"
    assert "signal source broke" in str(first["error"])
    assert "RuntimeError" in str(first["traceback"])
    restarted = w.journal.of_type(EventType.ACTOR_RESTARTED)
    assert restarted and restarted[0].data["delay_s"] == 0.5
    assert calls["n"] >= 2


async def test_a_signal_source_needs_waves() -> None:
    async with paper_world("bybit") as w:
        with pytest.raises(ValueError, match="needs waves"):
            async with open_account(
                port=w.venue,
                journal=w.journal,
                clock=w.clock,
                instruments=w.instruments,
                signal_source=lambda journal, clock: None,
            ):
                pass  # pragma: no cover
