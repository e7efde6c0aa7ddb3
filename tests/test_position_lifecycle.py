"""The PositionActor lifecycle on the paper exchange: a failed close returns the position
to the state it came from (ACTIVE stays ACTIVE, FAILED stays FAILED), and that state is
what the snapshot carries (docs/ARCHITECTURE.md §4)."""

from __future__ import annotations

from decimal import Decimal as D

import attrs
import pytest
import trio
import trio.testing

from actors.position import (
    TRANSITIONS,
    AccountEventMsg,
    AgeTick,
    Close,
    Lifecycle,
    MarkChanged,
    Query,
    VerifyProtection,
    _lifecycle,
)
from actors.position._lifecycle import LifecycleMachine
from actors.position._messages import MESSAGE_TYPES, _ManageTick
from adapters.paper import Fault, FaultPlan
from tests._position_support import paper_world
from tradebot.domain import OrderRole, PositionSide
from tradebot.errors import IllegalTransition, WouldTriggerImmediately
from tradebot.events import EventType, Severity

LONG = PositionSide.LONG
PROFILES = ["bybit", "binance"]


async def test_failed_close_of_a_failed_position_keeps_it_failed(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A FAILED position (stop placement and flatten both failed, it runs on its emergency
    stop) gets a Close whose reduce orders fail too: it must stay FAILED, in memory and in
    its snapshot, never become ACTIVE (the money bug of issue 10)."""
    plan = (
        FaultPlan(seed=3)
        .fail_next("place_stop", Fault.server_error(503), count=4, role=OrderRole.STOP)
        .fail_next("place_reduce", Fault.server_error(503), count=100)
    )
    with trio.fail_after(120):
        async with paper_world("binance", faults=plan, marks={"ETHUSDT": "2500"}) as w:
            req = w.request("ETHUSDT", LONG, "0.100", "2500")
            actor = w.actor(req)
            addr = await w.start(actor)
            outcome = await actor._ticket.wait()  # type: ignore[union-attr]
            assert not outcome.opened and "emergency" in outcome.reason
            assert actor.lifecycle is Lifecycle.FAILED
            (emergency,) = w.stops("ETHUSDT", LONG)
            assert emergency.trigger_price == D("2425.00")

            status = await addr.ask(Close("operator"), timeout_s=60)
            assert status.lifecycle is Lifecycle.FAILED
            assert actor.lifecycle is Lifecycle.FAILED
            snap = await w.journal.latest_snapshot(req.position_id)
            assert snap is not None and snap["lifecycle"] == "FAILED"
            # the close was attempted, failed, and said so
            assert w.journal.of_type(EventType.POSITION_CLOSING)
            alerts = w.journal.of_type(EventType.ALERT_RAISED)
            assert [a.data["reason"] for a in alerts] == ["flatten_failed", "close_failed"]
            # every alert carries human text (the alerts projection requires `message`)
            assert all(isinstance(a.data["message"], str) and a.data["message"] for a in alerts)
            assert "FAILED" in alerts[-1].data["message"]
            # still on its emergency stop, still held
            assert [s.trigger_price for s in w.stops("ETHUSDT", LONG)] == [D("2425.00")]
            assert w.qty("ETHUSDT", LONG) == D("0.100")
            again = await addr.ask(Query(), timeout_s=5)
            assert again.lifecycle is Lifecycle.FAILED


@pytest.mark.parametrize("profile", PROFILES)
async def test_failed_close_of_an_active_position_keeps_it_active(
    profile: str, autojump_clock: trio.testing.MockClock
) -> None:
    plan = FaultPlan(seed=3).fail_next(
        "place_reduce", Fault.server_error(503), count=100, role=OrderRole.CLOSE
    )
    with trio.fail_after(120):
        async with paper_world(profile, faults=plan, marks={"ETHUSDT": "2500"}) as w:
            req = w.request("ETHUSDT", LONG, "0.100", "2500")
            actor = w.actor(req)
            addr = await w.start(actor)
            outcome = await actor._ticket.wait()  # type: ignore[union-attr]
            assert outcome.opened
            status = await addr.ask(Close("operator"), timeout_s=60)
            assert status.lifecycle is Lifecycle.ACTIVE
            snap = await w.journal.latest_snapshot(req.position_id)
            assert snap is not None and snap["lifecycle"] == "ACTIVE"
            assert [s.trigger_price for s in w.stops("ETHUSDT", LONG)] == [D("2450.00")]
            assert w.qty("ETHUSDT", LONG) == D("0.100")


# --- the transition table ------------------------------------------------------------------

ALL = list(Lifecycle)


def test_failed_leaves_only_to_closed_and_final_states_have_no_exit() -> None:
    assert {to for frm, to in TRANSITIONS if frm is Lifecycle.FAILED} == {Lifecycle.CLOSED}
    assert not [t for t in TRANSITIONS if t[0] in (Lifecycle.CLOSED, Lifecycle.ROLLED_BACK)]
    assert not [t for t in TRANSITIONS if t[0] is t[1]]  # staying is not a transition


@pytest.mark.parametrize(("frm", "to"), [(a, b) for a in ALL for b in ALL])
def test_every_pair_is_allowed_exactly_when_it_is_in_the_table(
    frm: Lifecycle, to: Lifecycle
) -> None:
    seen: list[tuple[Lifecycle, Lifecycle, str]] = []
    m = LifecycleMachine("position p", lambda a, b, r: seen.append((a, b, r)))
    m.restore(frm)
    if (frm, to) in TRANSITIONS:
        m.transition(to, "why")
        assert m.state is to and seen == []
    else:
        with pytest.raises(IllegalTransition) as info:
            m.transition(to, "why")
        assert m.state is frm  # unchanged
        assert seen == [(frm, to, "why")]  # reported before raising
        assert (info.value.from_state, info.value.to_state) == (frm.value, to.value)


def test_restore_is_for_start_up_only() -> None:
    m = LifecycleMachine("position p")
    m.transition(Lifecycle.ACTIVE, "stop_confirmed")
    with pytest.raises(RuntimeError):
        m.restore(Lifecycle.OPENING)


def test_the_table_in_the_docstring_is_the_table() -> None:
    """The module docstring's table (copied into docs/ARCHITECTURE.md §4) lists exactly
    the pairs of TRANSITIONS."""
    doc = _lifecycle.__doc__ or ""
    names = {s.value for s in Lifecycle}
    rows = set()
    for line in doc.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] in names and parts[1] in names:
            rows.add((Lifecycle(parts[0]), Lifecycle(parts[1])))
    assert rows == set(TRANSITIONS)


async def test_an_illegal_transition_in_the_actor_is_journaled_and_raised(
    autojump_clock: trio.testing.MockClock,
) -> None:
    with trio.fail_after(60):
        async with paper_world("bybit", marks={"ETHUSDT": "2500"}) as w:
            req = w.request("ETHUSDT", LONG, "0.100", "2500")
            actor = w.actor(req)
            await w.start(actor)
            assert (await actor._ticket.wait()).opened  # type: ignore[union-attr]
            with pytest.raises(IllegalTransition):
                actor._transition(Lifecycle.OPENING, "test")
            assert actor.lifecycle is Lifecycle.ACTIVE
            (ev,) = w.journal.of_type(EventType.POSITION_ILLEGAL_TRANSITION)
            assert ev.severity is Severity.CRITICAL
            assert (ev.data["from_state"], ev.data["to_state"]) == ("ACTIVE", "OPENING")
            assert ev.data["message"]


@attrs.frozen
class _Bogus:
    payload: int = 7


async def test_an_unknown_message_is_journaled_as_what_it_is(
    autojump_clock: trio.testing.MockClock,
) -> None:
    with trio.fail_after(60):
        async with paper_world("binance", marks={"ETHUSDT": "2500"}) as w:
            req = w.request("ETHUSDT", LONG, "0.100", "2500")
            actor = w.actor(req)
            addr = await w.start(actor)
            assert (await actor._ticket.wait()).opened  # type: ignore[union-attr]
            assert await addr.ask(_Bogus(), timeout_s=5) is None
            (ev,) = w.journal.of_type(EventType.POSITION_UNKNOWN_MESSAGE)
            assert ev.data["message_type"] == "_Bogus"
            assert "payload=7" in ev.data["detail"] and ev.data["message"]
            assert not w.journal.of_type(EventType.ORDER_REJECTED)
            # the actor carries on
            status = await addr.ask(Query(), timeout_s=5)
            assert status.lifecycle is Lifecycle.ACTIVE


def test_every_message_class_is_in_the_union() -> None:
    public = {Close, Query, VerifyProtection, AgeTick, MarkChanged, AccountEventMsg}
    assert set(MESSAGE_TYPES) == public | {_ManageTick}


async def test_a_failed_close_inside_the_open_protocol_returns_to_opening_then_fails(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """binance-like: the stop would trigger at once (-2021) so the open closes at market;
    the close's reduce orders fail too: CLOSING → OPENING (not ACTIVE), then the flatten
    fails and the position ends FAILED on its emergency stop. No illegal transition."""
    plan = (
        FaultPlan(seed=3)
        .fail_next(
            "place_stop",
            Fault.reject("-2021", WouldTriggerImmediately, "Order would immediately trigger."),
        )
        .fail_next("place_reduce", Fault.server_error(503), count=100)
    )
    with trio.fail_after(120):
        async with paper_world("binance", faults=plan, marks={"ETHUSDT": "2500"}) as w:
            req = w.request("ETHUSDT", LONG, "0.100", "2500")
            actor = w.actor(req)
            await w.start(actor)
            outcome = await actor._ticket.wait()  # type: ignore[union-attr]
            assert not outcome.opened and "close failed" in outcome.reason
            assert actor.lifecycle is Lifecycle.FAILED
            snap = await w.journal.latest_snapshot(req.position_id)
            assert snap is not None and snap["lifecycle"] == "FAILED"
            assert not w.journal.of_type(EventType.POSITION_ILLEGAL_TRANSITION)
            assert not w.journal.of_type(EventType.POSITION_ACTIVE)
            assert [s.trigger_price for s in w.stops("ETHUSDT", LONG)] == [D("2425.00")]
