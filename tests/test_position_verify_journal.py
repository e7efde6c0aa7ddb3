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
@pytest.mark.parametrize("answered", [False, True])
async def test_quiet_periodic_checks_are_counted_and_journaled_every_interval(
    profile: str, answered: bool, autojump_clock: MockClock
) -> None:
    # answered: zero-latency reads, so the checks are answered from the venue's change
    # counter in the timer service (quiet ticks, the actor not woken), the due
    # PROTECTION_VERIFIED rows included: the journal must come out the same
    with trio.fail_after(3 * 3600):  # virtual seconds
        async with (
            paper_world(profile, marks={"ETHUSDT": "2500"}) as w,
            supervised(w) as (sup, _),
        ):
            if answered:
                w.venue.latency_by_method.update(positions=0.0, stops=0.0)
            req = w.request("ETHUSDT", LONG, "0.100", "2500")
            assert (await sup.open_position(req)).opened
            await trio.sleep(1800 + 5)  # 30 min: 60 periodic checks at the 30 s default
            actor = sup.actor("ETHUSDT", LONG)
            assert actor is not None
            assert (actor.quiet_ticks > 50) is answered
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


CREEPING = ["2505", "2510", "2515", "2520", "2525", "2530", "2530", "2530"]
"""Marks that move the water mark below the trailing activation (+1.5 %): such moves are
flushed with the next periodic check, which is then a quiet one that journals the snapshot."""


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("path", ["flat", "creeping"])
async def test_quiet_checks_answered_from_the_venue_journal_the_same(
    profile: str, path: str, autojump_clock: MockClock
) -> None:
    """Issue 15 item 3: with zero-latency reads the paper venue's change counter lets the
    actor apply quiet periodic checks in place (``quiet_ticks``) without being woken; the
    journal is the same, event for event, as when every check asks the venue — also across
    a stop that disappears behind the actor's back (the next check repairs it). (A quiet
    check is decided at its due instant, before anything else scheduled for that same
    instant: the test keeps its own steps off the checks' 30 s grid.)"""

    async def run(answer_from_venue: bool) -> tuple[list[tuple[object, ...]], int]:
        async with (
            paper_world(profile, marks={"ETHUSDT": "2500"}) as w,
            supervised(w) as (sup, _),
        ):
            w.venue.latency_by_method.update(positions=0.0, stops=0.0)
            if not answer_from_venue:
                w.venue.protection_version = lambda symbol: None  # type: ignore[method-assign]
            req = w.request("ETHUSDT", LONG, "0.100", "2500")
            assert (await sup.open_position(req)).opened
            await trio.sleep(7)  # off the 30 s grid of the checks: no tie at one instant
            marks = ["2505"] * 20 if path == "flat" else CREEPING
            for price in marks:  # 15 s apart: inside the band (flat), or new water marks
                await trio.sleep(15)
                w.push("ETHUSDT", price)
            actor = sup.actor("ETHUSDT", LONG)
            assert actor is not None
            (stop,) = w.stops("ETHUSDT", LONG)
            # the stop goes and the actor is not told (its events reach no one)
            w.account.unregister(req.position_id)
            w.engine.cancel_stop(stop)
            await trio.sleep(1)
            w.account.register(req.position_id, "ETHUSDT", LONG, actor.address)
            assert w.stops("ETHUSDT", LONG) == []
            await trio.sleep(900)
            assert len(w.stops("ETHUSDT", LONG)) == 1  # repaired by a periodic check
            rows = [
                (e.type, e.ts, e.severity, e.symbol, e.client_order_id, dict(e.data))
                for e in w.journal.events
                if e.position_id == req.position_id
            ]
            return rows, actor.quiet_ticks

    with trio.fail_after(3 * 3600):
        asked, none = await run(answer_from_venue=False)
        answered, quiet = await run(answer_from_venue=True)
    assert none == 0 and quiet > 10
    assert answered == asked
    assert any(r[0] is EventType.PROTECTION_MISSING for r in answered)
    if path == "creeping":  # the water-mark snapshots of the quiet path are the same too
        assert sum(r[0] is EventType.POSITION_SNAPSHOT for r in answered) >= 3
