"""Recovery scenarios: a crash inside the open protocol, a process restart (resume from the
journal + exchange), adoption of an untracked position, stream gaps and a breached stop."""

from __future__ import annotations

from decimal import Decimal as D

import pytest
import trio
import trio.testing

from actors.position import Lifecycle, VerifyProtection
from actors.runtime import SupervisionEventKind
from tests._position_support import paper_world, supervised
from tradebot.domain import PositionSide
from tradebot.events import Event, EventType, MemoryJournal
from tradebot.policies import PositionSettings, ProtectionSettings, TrailingPhase
from tradebot.ports import EntryRequest

LONG, SHORT = PositionSide.LONG, PositionSide.SHORT
PROFILES = ["bybit", "binance"]
MockClock = trio.testing.MockClock


class CrashOnceJournal(MemoryJournal):
    """A journal whose first durable write of one event type fails (a bug / DB hiccup)."""

    def __init__(self, crash_on: EventType) -> None:
        super().__init__()
        self.crash_on: EventType | None = crash_on

    async def emit_durable(self, event: Event) -> None:
        if event.type is self.crash_on:
            self.crash_on = None
            raise RuntimeError(f"injected crash on {event.type.value}")
        await super().emit_durable(event)


@pytest.mark.parametrize("profile", PROFILES)
async def test_crash_inside_open_protocol_resolves_by_client_id_one_entry(
    profile: str, autojump_clock: MockClock
) -> None:
    with trio.fail_after(120):
        async with paper_world(profile, marks={"ETHUSDT": "2500"}) as w:
            w.journal = CrashOnceJournal(EventType.ENTRY_FILLED)
            async with supervised(w) as (sup, events):
                out = await sup.open_position(w.request("ETHUSDT", LONG, "0.200", "2500"))
                assert out.opened, out
                assert [
                    e.kind
                    for e in events
                    if e.kind in (SupervisionEventKind.CRASHED, SupervisionEventKind.RESTARTED)
                ] == [SupervisionEventKind.CRASHED, SupervisionEventKind.RESTARTED]
                entries = [f for f in w.engine.trade_log if f.client_order_id.endswith("-E0")]
                assert sum(f.qty for f in entries) == D("0.200")  # never a second entry
                assert w.qty("ETHUSDT", LONG) == D("0.200")
                assert [s.trigger_price for s in w.stops("ETHUSDT", LONG)] == [D("2450.00")]
                (resolved,) = w.journal.of_type(EventType.ENTRY_RESOLVED)
                assert resolved.data["found"] is True and resolved.data["after"] == "restart"


@pytest.mark.parametrize("profile", PROFILES)
async def test_process_restart_resumes_trailing_state_from_journal_and_exchange(
    profile: str, autojump_clock: MockClock
) -> None:
    with trio.fail_after(300):
        async with paper_world(profile, marks={"ETHUSDT": "2500"}) as w:
            req = w.request("ETHUSDT", SHORT, "0.100", "2500")
            async with supervised(w) as (sup, _):
                assert (await sup.open_position(req)).opened
                w.push("ETHUSDT", "2462.5")  # activated: 2474.81
                await trio.sleep(5)
                w.push("ETHUSDT", "2440")  # low-water 2440; 2452.20 rate-limited
                await trio.sleep(1)
                before = sup.actor("ETHUSDT", SHORT)
                assert before is not None
                trailing = before.status().trailing
            # the process is gone; the stop stays on the venue
            assert [s.trigger_price for s in w.stops("ETHUSDT", SHORT)] == [D("2474.81")]
            async with supervised(w) as (sup2, _):
                assert await sup2.resume(req.position_id, "ETHUSDT", SHORT)
                after = sup2.actor("ETHUSDT", SHORT)
                assert after is not None
                st = after.status()
                assert st.lifecycle is Lifecycle.ACTIVE
                assert st.trailing == trailing
                assert st.trailing.water_mark == D("2440")
                assert st.trailing.phase is TrailingPhase.ACTIVE
                await trio.sleep(61)
                w.push("ETHUSDT", "2441")  # 61 s later: 2452.20 is 0.91 % better -> trail
                await trio.sleep(1)
                assert [s.trigger_price for s in w.stops("ETHUSDT", SHORT)] == [D("2452.20")]


@pytest.mark.parametrize("profile", PROFILES)
async def test_adopted_position_gets_emergency_stop(
    profile: str, autojump_clock: MockClock
) -> None:
    with trio.fail_after(120):
        async with paper_world(profile, marks={"SOLUSDT": "170"}) as w, supervised(w) as (sup, _):
            w.engine.place_entry(EntryRequest("SOLUSDT", LONG, D("2.00"), "manual-entry"))
            assert w.stops("SOLUSDT", LONG) == []
            assert await sup.adopt("0123456789abcdef", "SOLUSDT", LONG)
            assert [s.trigger_price for s in w.stops("SOLUSDT", LONG)] == [D("164.90")]  # -3 %
            assert w.journal.of_type(EventType.RECONCILE_ADOPTED)


@pytest.mark.parametrize("profile", PROFILES)
async def test_stream_gap_triggers_verification_and_repair(
    profile: str, autojump_clock: MockClock
) -> None:
    with trio.fail_after(120):
        async with paper_world(profile, marks={"ETHUSDT": "2500"}) as w, supervised(w) as (sup, _):
            assert (await sup.open_position(w.request("ETHUSDT", LONG, "0.100", "2500"))).opened
            (stop,) = w.stops("ETHUSDT", LONG)
            w.faults.drop_events(count=5)  # the stream is down: the update is lost
            w.engine.cancel_stop(stop)
            w.venue.inject_stream_gap("private", "reconnect")
            await trio.sleep(1)  # long before the 30 s periodic check
            assert [s.trigger_price for s in w.stops("ETHUSDT", LONG)] == [D("2450.00")]
            (rep,) = w.journal.of_type(EventType.PROTECTION_REPAIRED)
            assert rep.data["trigger"] == "stream_gap"


@pytest.mark.parametrize(
    ("action", "expected_qty", "expected_stop"),
    [("tighten", "0.100", "2427.80"), ("close", "0", None)],
)
async def test_breached_stop_level_is_tightened_to_mark_or_closed(
    action: str, expected_qty: str, expected_stop: str | None, autojump_clock: MockClock
) -> None:
    settings = PositionSettings(protection=ProtectionSettings(breach_action=action))
    with trio.fail_after(120):
        async with (
            paper_world("binance", marks={"ETHUSDT": "2500"}) as w,
            supervised(w, settings) as (sup, _),
        ):
            assert (await sup.open_position(w.request("ETHUSDT", LONG, "0.100", "2500"))).opened
            (stop,) = w.stops("ETHUSDT", LONG)
            w.engine.cancel_stop(stop)
            w.push("ETHUSDT", "2440")  # through the intended 2450, no stop to fire
            addr = sup.address("ETHUSDT", LONG)
            assert addr is not None
            await addr.send(VerifyProtection("reconciler"))
            await trio.sleep(2)
            assert w.qty("ETHUSDT", LONG) == D(expected_qty)
            prices = [s.trigger_price for s in w.stops("ETHUSDT", LONG)]
            assert prices == ([D(expected_stop)] if expected_stop else [])  # 2440 * 0.995
            assert w.journal.of_type(EventType.PROTECTION_BREACH)


async def test_crash_after_early_stop_adopts_it_instead_of_a_second_stop(
    autojump_clock: MockClock,
) -> None:
    """binance-like: a partial fill got its stop at once; the actor crashes when the entry
    completes; the restarted actor finds that stop and keeps exactly one."""
    from adapters.paper import Fault, FaultPlan

    plan = FaultPlan(seed=5).fail_next("place_entry", Fault.partial_fill(D("0.5"), "next_mark"))
    with trio.fail_after(120):
        async with paper_world("binance", faults=plan, marks={"ETHUSDT": "2500"}) as w:
            w.journal = CrashOnceJournal(EventType.ENTRY_FILLED)
            async with supervised(w) as (sup, events):
                result: list[object] = []

                async def opener() -> None:
                    result.append(
                        await sup.open_position(w.request("ETHUSDT", LONG, "1.000", "2500"))
                    )

                async with trio.open_nursery() as n:
                    n.start_soon(opener)
                    await trio.sleep(0.5)
                    assert len(w.stops("ETHUSDT", LONG)) == 1  # the filled half is protected
                    w.push("ETHUSDT", "2500.5")  # the rest fills
                (out,) = result
                assert out.opened  # type: ignore[attr-defined]
                assert any(e.kind is SupervisionEventKind.CRASHED for e in events)
                assert w.qty("ETHUSDT", LONG) == D("1.000")
                assert [s.trigger_price for s in w.stops("ETHUSDT", LONG)] == [D("2450.00")]


@pytest.mark.parametrize("flatten_fails", [False, True])
async def test_bybit_repair_failing_every_retry_flattens_or_emergency_stop(
    flatten_fails: bool, autojump_clock: MockClock
) -> None:
    """bybit-like: the attached stop vanishes and setting it fails on every retry → flatten
    the filled quantity and verify flat; if flattening fails too → emergency stop + CRITICAL."""
    from adapters.paper import Fault

    with trio.fail_after(120):
        async with paper_world("bybit", marks={"ETHUSDT": "2500"}) as w, supervised(w) as (sup, _):
            assert (await sup.open_position(w.request("ETHUSDT", LONG, "0.300", "2500"))).opened
            (stop,) = w.stops("ETHUSDT", LONG)
            w.faults.drop_events(count=5)
            w.engine.cancel_stop(stop)
            w.faults.fail_next("place_stop", Fault.server_error(503), count=4)
            w.faults.fail_next("amend_stop", Fault.server_error(503), count=4)
            if flatten_fails:
                w.faults.fail_next("place_reduce", Fault.server_error(503), count=100)
            addr = sup.address("ETHUSDT", LONG)
            assert addr is not None
            await addr.send(VerifyProtection("reconciler"))
            await trio.sleep(10)
            if not flatten_fails:
                assert w.qty("ETHUSDT", LONG) == 0
                (fl,) = w.journal.of_type(EventType.FLATTEN_VERIFIED)
                assert fl.data["qty"] == D("0.300")
            else:
                assert w.qty("ETHUSDT", LONG) == D("0.300")
                assert [s.trigger_price for s in w.stops("ETHUSDT", LONG)] == [D("2425.00")]
                crit = [
                    e
                    for e in w.journal.of_type(EventType.ALERT_RAISED)
                    if e.severity.value == "critical" and e.data["reason"] == "flatten_failed"
                ]
                assert crit
                actor = sup.actor("ETHUSDT", LONG)
                assert actor is not None and actor.lifecycle is Lifecycle.FAILED
