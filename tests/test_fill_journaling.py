"""Every execution on the venue is journaled exactly once as ``order.fill``, with its
position id — including fills that arrive after the position's actor has ended (an aged
exit limit that fills on placement, a stop). docs/ARCHITECTURE.md §1 invariant 6."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal as D

import pytest
import trio
from trio.testing import MockClock

from tests._position_support import PROFILES, paper_world, supervised
from tradebot.domain import PositionSide
from tradebot.events import EventType, FillRecorded

LONG, SHORT = PositionSide.LONG, PositionSide.SHORT


@pytest.mark.parametrize("profile", PROFILES)
async def test_every_venue_trade_has_exactly_one_journaled_fill(
    profile: str, autojump_clock: MockClock
) -> None:
    with trio.fail_after(6 * 3600):  # virtual seconds
        async with (
            paper_world(profile, marks={"ETHUSDT": "2500", "SOLUSDT": "150"}) as w,
            supervised(w) as (sup, _),
        ):
            eth = w.request("ETHUSDT", LONG, "0.100", "2500")
            sol = w.request("SOLUSDT", SHORT, "1.00", "150")
            assert (await sup.open_position(eth)).opened
            assert (await sup.open_position(sol)).opened
            # ETH drifts up a little (no trailing): after 3 h the aged exit at breakeven is
            # already marketable and fills on placement.
            w.push("ETHUSDT", "2510")
            # SOL rallies through the short's stop.
            w.push("SOLUSDT", "160")
            await trio.sleep(3 * 3600 + 120)
            await trio.sleep(5)
            assert w.qty("ETHUSDT", LONG) == 0
            assert w.qty("SOLUSDT", SHORT) == 0

            fills = w.journal.of_type(EventType.FILL)
            journaled = Counter(e.data["trade_id"] for e in fills)
            venue_trades = [f.trade_id for f in w.engine.trade_log]
            assert len(venue_trades) == 4  # two entries, an aged exit, a stop
            assert journaled == Counter(venue_trades)  # each exactly once
            by_position = Counter(e.position_id for e in fills)
            assert by_position == {eth.position_id: 2, sol.position_id: 2}
            for e in fills:
                # data holds exact decimal strings; the typed payload holds Decimals
                assert D(e.data["qty"]) == e.payload_as(FillRecorded).qty
                p = e.payload_as(FillRecorded)
                assert isinstance(p.qty, D) and isinstance(p.price, D) and p.qty > 0
            assert w.journal.of_type(EventType.AGED_EXIT_PLACED)
