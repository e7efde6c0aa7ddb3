"""Periodic stop verification: every check happens, the journal keeps the evidence without a
row per check (protection.verified_journal_interval_s), and anything that is not a quiet
periodic check is journaled at once."""

from __future__ import annotations

import pytest
import trio
from trio.testing import MockClock

from tests._position_support import PROFILES, paper_world, supervised
from tradebot.domain import PositionSide
from tradebot.events import EventType
from tradebot.ports import StreamGap

LONG = PositionSide.LONG


@pytest.mark.parametrize("profile", PROFILES)
async def test_quiet_periodic_checks_are_counted_and_journaled_every_interval(
    profile: str, autojump_clock: MockClock
) -> None:
    with trio.fail_after(3 * 3600):  # virtual seconds
        async with (
            paper_world(profile, marks={"ETHUSDT": "2500"}) as w,
            supervised(w) as (sup, _),
        ):
            req = w.request("ETHUSDT", LONG, "0.100", "2500")
            assert (await sup.open_position(req)).opened
            await trio.sleep(1800 + 5)  # 30 min: 60 periodic checks at the 30 s default
            verified = [
                e
                for e in w.journal.of_type(EventType.PROTECTION_VERIFIED)
                if e.data["reason"] == "periodic"
            ]
            # the first check, then one every 600 s (each counting the quiet ones between)
            assert len(verified) == 3
            assert [e.data["quiet_checks"] for e in verified] == [0, 19, 19]
            assert all(e.position_id == req.position_id for e in verified)

            # a stream gap is not a quiet periodic check: journaled at once
            await w.account.emit(StreamGap("private", "test", w.clock.now()))
            await trio.sleep(1)
            gap = [
                e
                for e in w.journal.of_type(EventType.PROTECTION_VERIFIED)
                if e.data["reason"] == "stream_gap"
            ]
            assert len(gap) == 1
