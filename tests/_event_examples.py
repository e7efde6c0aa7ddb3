"""One valid example event of every :class:`~tradebot.events.EventType`, in an order a
real journal accepts: a wave and its signals, one position's whole life (intent, fills,
stops, trailing, protection, take-profit, aged exit, every lifecycle state), then the
process-level events. ``test_event_contracts`` checks that the table covers every type
exactly once and that each example projects through the real PostgreSQL journal."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

from tradebot.domain import OrderRole, OrderStatus, PositionSide, Side
from tradebot.events import (
    AgedExitFilled,
    AgedExitMoved,
    AgedExitPlaced,
    AgedMarketClose,
    AgedStarted,
    AlertRaised,
    AlertSuppressed,
    BotPaused,
    BotResumed,
    BotStarted,
    BotStopped,
    BotStopping,
    ChildCrashed,
    ChildGaveUp,
    ChildRestarted,
    ChildStarted,
    ChildStopped,
    ClockResynced,
    ConfigLoaded,
    DbRecovered,
    DbServerRestart,
    DbUnavailable,
    EmergencyStopPlaced,
    EntryAcked,
    EntryFilled,
    EntryIntent,
    EntryOutcomeUnknown,
    EntryPartialFill,
    EntryRejected,
    EntryResolved,
    EntrySubmitted,
    Event,
    EventSchemaErrorRecorded,
    ExchangeError,
    ExchangeRequest,
    ExchangeResponse,
    FillRecorded,
    FlattenFailed,
    FlattenIntent,
    FlattenVerified,
    Funding,
    LegacyEventImported,
    LegacyImportCompleted,
    LegacyPositionImported,
    LegacySignalImported,
    MarkRejected,
    OperatorCommand,
    OrderCancelled,
    OrderIntent,
    OrderRejected,
    OrderSubmitted,
    OrderUpdated,
    Payload,
    PositionActivated,
    PositionClosed,
    PositionClosing,
    PositionExitRecorded,
    PositionFailed,
    PositionIllegalTransition,
    PositionOpening,
    PositionRolledBack,
    PositionSnapshot,
    PositionUnknownMessage,
    ProtectionBreach,
    ProtectionMissing,
    ProtectionRepaired,
    ProtectionVerified,
    RateLimitHit,
    ReconcileAdopted,
    ReconcileCompleted,
    ReconcileForeignOrder,
    ReconcileIntentRolledBack,
    ReconcilePhantom,
    ReconcileQtyChanged,
    ReconcileResumed,
    ReconcileStarted,
    ReconcileUntracked,
    SafeModeEntered,
    Severity,
    SignalBufferOverflow,
    SignalFiltered,
    SignalLate,
    SignalReceived,
    SignalRejected,
    SignalTaken,
    SpoolKeptAside,
    SpoolReplayed,
    StartupStep,
    StopCancelled,
    StopConfirmed,
    StopGapFill,
    StopIntent,
    StopMoved,
    StopPlaced,
    StopRejected,
    StopRetry,
    StopTriggered,
    StreamConnected,
    StreamDisconnected,
    StreamGapped,
    StreamSilent,
    TakeProfitFilled,
    TakeProfitPlaced,
    TrailingActivated,
    TrailingBreakeven,
    TrailingSkipped,
    TrailingSnapshot,
    TrailingUpdated,
    WaveCompleted,
    WaveDuplicate,
    WaveStarted,
    ZombieCancelled,
    ZombieOrderFound,
)
from tradebot.ids import client_order_id
from tradebot.signals import wave_id_for

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
WAVE_ID = wave_id_for(T0)
PID = "00c0ffee00c0ffee"
SYMBOL = "ETHUSDT"
LONG = PositionSide.LONG
CID_ENTRY = client_order_id(PID, OrderRole.ENTRY, 0)
CID_STOP = client_order_id(PID, OrderRole.STOP, 1)
CID_TP = client_order_id(PID, OrderRole.TAKE_PROFIT, 1)
CID_AGED = client_order_id(PID, OrderRole.AGED_EXIT, 1)
CID_EMERGENCY = client_order_id(PID, OrderRole.EMERGENCY_STOP, 1)
ALERT_MESSAGE = f"{SYMBOL} LONG: flatten failed, emergency stop 2425.00"


def _signal(cls: type[SignalReceived] | type[SignalLate], sid: str, decision: str) -> Payload:
    return cls(
        signal_id=sid,
        symbol=SYMBOL,
        venue="bybit",
        action="BUY",
        score_week=D("72.5"),
        score_month=D("65.1"),
        wave_id=WAVE_ID,
        wave_ts=T0,
        decision=decision,
    )


def _wave() -> list[tuple[Payload, dict[str, object]]]:
    w = {"correlation_id": WAVE_ID}
    candidate = {
        "rank": 1,
        "qty": D("0.100"),
        "reference_price": D("2500"),
        "notional_usdt": D("250.0"),
    }
    return [
        (WaveStarted(wave_id=WAVE_ID, wave_ts=T0, received=3, rejected=1, duplicates=0), w),
        (_signal(SignalReceived, "s1", "received"), {**w, "symbol": SYMBOL}),
        (
            SignalTaken(
                signal_id="s1",
                symbol=SYMBOL,
                venue="bybit",
                action="BUY",
                score_week=D("72.5"),
                wave_id=WAVE_ID,
                wave_ts=T0,
                decision="taken",
                reason="opened",
                **candidate,  # type: ignore[arg-type]
            ),
            {**w, "symbol": SYMBOL, "position_id": PID},
        ),
        (
            SignalFiltered(
                signal_id="s2",
                symbol="DOGEUSDT",
                venue="bybit",
                action="SELL",
                wave_id=WAVE_ID,
                wave_ts=T0,
                decision="filtered",
                reason="stoplist",
            ),
            {**w, "symbol": "DOGEUSDT"},
        ),
        (_signal(SignalLate, "s0", "late"), {**w, "symbol": SYMBOL}),
        (
            SignalRejected(
                reason="invalid_symbol", excerpt='{"symbol":"BTC/USDT"}', source="websocket"
            ),
            {},
        ),
        (
            SignalBufferOverflow(
                kind="signal",
                buffer_size=100,
                source="websocket",
                wave_id=WAVE_ID,
                signal_ids=("s9",),
                signals=1,
            ),
            w,
        ),
        (WaveDuplicate(wave_id=WAVE_ID, wave_ts=T0, status="opening", signals=1, new_signals=0), w),
    ]


def _position() -> list[tuple[Payload, dict[str, object]]]:
    s = LONG
    pos: dict[str, object] = {"position_id": PID, "symbol": SYMBOL}

    def order(cid: str) -> dict[str, object]:
        return {**pos, "client_order_id": cid}

    snapshot = PositionSnapshot(
        position_side=s,
        lifecycle="ACTIVE",
        symbol=SYMBOL,
        entry_client_order_id=CID_ENTRY,
        requested_qty=D("0.100"),
        filled_qty=D("0.100"),
        qty=D("0.100"),
        entry_price=D("2500.00"),
        opened_at=T0,
        stop_price=D("2450.00"),
        stop_client_order_id=CID_STOP,
        stop_venue_order_id="v-stop",
        seq={"E": 0, "S": 1, "T": 0, "A": 0, "C": 0, "X": 0},
        trailing=TrailingSnapshot(phase="INACTIVE", water_mark=D("2500.00")),
        tp_levels_done=(),
        tp_orders={},
    )
    return [
        (
            EntryIntent(
                position_side=s,
                qty=D("0.100"),
                reference_price=D("2500"),
                intended_stop=D("2450.00"),
                stop_client_order_id=CID_STOP,
                signal_id="s1",
                wave_ts=T0,
                score_week=D("72.5"),
                attached_stop=False,
                venue="paper",
            ),
            order(CID_ENTRY),
        ),
        (PositionOpening(position_side=s), order(CID_ENTRY)),
        (EntrySubmitted(position_side=s, qty=D("0.100")), order(CID_ENTRY)),
        (
            EntryOutcomeUnknown(position_side=s, error="OutcomeUnknown: read timeout"),
            order(CID_ENTRY),
        ),
        (
            EntryResolved(position_side=s, found=True, status=OrderStatus.NEW, via="lookup"),
            order(CID_ENTRY),
        ),
        (
            EntryAcked(position_side=s, status=OrderStatus.NEW, venue_order_id="v-entry"),
            order(CID_ENTRY),
        ),
        (
            EntryPartialFill(
                position_side=s,
                filled_qty=D("0.040"),
                requested_qty=D("0.100"),
                avg_fill_price=D("2500.00"),
                still_working=True,
            ),
            order(CID_ENTRY),
        ),
        (
            FillRecorded(
                qty=D("0.100"),
                price=D("2500.00"),
                fee_usdt=D("0.1375"),
                side=Side.BUY,
                position_side=s,
                trade_id="x-1",
                venue_order_id="v-entry",
                realized_pnl_usdt=D("-0.1375"),
                fill_ts=T0,
            ),
            order(CID_ENTRY),
        ),
        (
            EntryFilled(
                position_side=s,
                filled_qty=D("0.100"),
                requested_qty=D("0.100"),
                avg_fill_price=D("2500.00"),
            ),
            order(CID_ENTRY),
        ),
        (
            StopIntent(position_side=s, stop_price=D("2450.00"), reason="initial", attempt=1),
            order(CID_STOP),
        ),
        (
            StopRetry(
                position_side=s,
                attempt=1,
                error="TransientError: 503",
                code="http_503",
                retry_in_s=0.5,
            ),
            order(CID_STOP),
        ),
        (
            StopPlaced(
                position_side=s, stop_price=D("2450.00"), reason="initial", venue_order_id="v-stop"
            ),
            order(CID_STOP),
        ),
        (StopConfirmed(position_side=s, stop_price=D("2450.00"), qty=D("0.100")), order(CID_STOP)),
        (
            PositionActivated(
                position_side=s, entry_price=D("2500.00"), qty=D("0.100"), stop_price=D("2450.00")
            ),
            pos,
        ),
        (snapshot, pos),
        (
            TrailingActivated(position_side=s, mark_price=D("2537.50"), water_mark=D("2537.50")),
            pos,
        ),
        (TrailingBreakeven(position_side=s, mark_price=D("2520.00")), pos),
        (
            TrailingSkipped(
                position_side=s,
                mark_price=D("2538.00"),
                water_mark=D("2538.00"),
                stop_price=D("2450.00"),
                reason="rate_limited",
            ),
            pos,
        ),
        (
            StopMoved(
                position_side=s,
                stop_price=D("2525.00"),
                old_stop_price=D("2450.00"),
                reason="trailing:trail",
            ),
            order(CID_STOP),
        ),
        (
            TrailingUpdated(
                position_side=s,
                mark_price=D("2540.00"),
                water_mark=D("2540.00"),
                old_stop_price=D("2450.00"),
                stop_price=D("2525.00"),
                update_count=1,
                reason="trail",
            ),
            pos,
        ),
        (
            StopRejected(
                position_side=s,
                reason="would_trigger_immediately",
                error="WouldTriggerImmediately: 110092",
                code="110092",
                stop_price=D("2545.00"),
            ),
            pos,
        ),
        (
            ProtectionVerified(
                position_side=s, stop_price=D("2525.00"), reason="periodic", quiet_checks=19
            ),
            pos,
        ),
        (
            ProtectionMissing(position_side=s, live=0, reason="missing", trigger="stream_gap"),
            pos,
        ),
        (
            ProtectionBreach(
                position_side=s,
                mark_price=D("2520.00"),
                stop_price=D("2525.00"),
                action="tighten",
                new_stop_price=D("2507.40"),
            ),
            pos,
        ),
        (
            ProtectionRepaired(
                position_side=s, stop_price=D("2525.00"), reason="missing", trigger="stream_gap"
            ),
            pos,
        ),
        (
            OrderIntent(
                position_side=s,
                role=OrderRole.TAKE_PROFIT,
                qty=D("0.030"),
                level=0,
                mark_price=D("2525.00"),
            ),
            order(CID_TP),
        ),
        (OrderSubmitted(position_side=s, venue_order_id="v-tp"), order(CID_TP)),
        (TakeProfitPlaced(position_side=s, level=0, qty=D("0.030")), order(CID_TP)),
        (
            OrderUpdated(position_side=s, status=OrderStatus.FILLED, filled_qty=D("0.030")),
            order(CID_TP),
        ),
        (
            TakeProfitFilled(
                position_side=s,
                level=0,
                qty=D("0.030"),
                price=D("2525.00"),
                remaining_qty=D("0.070"),
            ),
            order(CID_TP),
        ),
        (AgedStarted(position_side=s, age_h=3.0), pos),
        (
            AgedExitPlaced(
                position_side=s,
                price=D("2501.40"),
                phase="BREAKEVEN",
                loss_pct=D("0"),
                hours_past_grace=0,
            ),
            order(CID_AGED),
        ),
        (
            AgedExitMoved(
                position_side=s,
                price=D("2488.90"),
                phase="STEPPING",
                loss_pct=D("0.5"),
                hours_past_grace=1,
            ),
            order(CID_AGED),
        ),
        (AgedExitFilled(position_side=s, qty=D("0.010"), price=D("2488.90")), order(CID_AGED)),
        (AgedMarketClose(position_side=s, loss_pct=D("10")), pos),
        (OrderCancelled(position_side=s), order(CID_TP)),
        (
            OrderRejected(position_side=s, reason="unknown_message", message="Ping()"),
            pos,
        ),
        (
            EmergencyStopPlaced(position_side=s, stop_price=D("2425.00")),
            order(CID_EMERGENCY),
        ),
        (StopCancelled(position_side=s, stop_price=D("2525.00")), order(CID_STOP)),
        (StopTriggered(position_side=s, stop_price=D("2425.00")), order(CID_EMERGENCY)),
        (
            StopGapFill(
                position_side=s,
                trigger_price=D("2425.00"),
                fill_price=D("2380.00"),
                slippage_pct=D("1.8557"),
                bound_pct=D("1"),
                qty=D("0.060"),
                trade_id="x-9",
                fill_ts=T0,
            ),
            order(CID_EMERGENCY),
        ),
        (FlattenIntent(position_side=s, reason="stop_failed", qty=D("0.060")), pos),
        (FlattenFailed(position_side=s, reason="stop_failed", attempt=1), pos),
        (FlattenVerified(position_side=s, reason="stop_failed", qty=D("0.060")), pos),
        (
            AlertRaised(
                position_side=s,
                message=ALERT_MESSAGE,
                reason="flatten_failed",
                detail="stop_failed",
                emergency_stop=D("2425.00"),
                qty=D("0.060"),
            ),
            pos,
        ),
        (PositionClosing(position_side=s, reason="operator", qty=D("0.060")), pos),
        (
            PositionFailed(position_side=s, reason="flatten_failed", emergency_stop=D("2425.00")),
            pos,
        ),
        (
            PositionIllegalTransition(
                position_side=s,
                from_state="FAILED",
                to_state="ACTIVE",
                reason="close_failed",
                message="illegal lifecycle transition FAILED -> ACTIVE (close_failed)",
            ),
            pos,
        ),
        (
            PositionUnknownMessage(
                position_side=s,
                message_type="Bogus",
                detail="Bogus()",
                message="ignored a message of unknown type Bogus",
            ),
            pos,
        ),
        (
            PositionRolledBack(position_side=s, reason="entry_not_filled"),
            pos,
        ),
        (
            PositionClosed(
                position_side=s,
                reason="stop_triggered",
                filled_qty=D("0.100"),
                entry_price=D("2500.00"),
            ),
            pos,
        ),
        (
            EntryRejected(position_side=s, reason="max_open_positions", qty=D("0.100")),
            {"position_id": "0ddba11000000000", "symbol": "SOLUSDT"},
        ),
        (
            ReconcileAdopted(position_side=s, qty=D("0.100"), entry_price=D("2500.00")),
            pos,
        ),
        (
            PositionExitRecorded(
                position_side=s,
                qty=D("0.100"),
                exit_price=D("2450.0"),
                realized_pnl_usdt=D("-5.000"),
                fees_usdt=D("0.1347"),
                reason="stop",
                fills=1,
                trade_ids=("t-9",),
            ),
            pos,
        ),
    ]


def _legacy() -> list[tuple[Payload, dict[str, object]]]:
    """``tradebot import legacy``: one row of each kind and the run's completion."""
    lpid = "1e9ac11e9ac11e9a"
    return [
        (
            LegacyPositionImported(
                source_table="monitoring.positions",
                source_id="7",
                legacy_status="CLOSED",
                imported_as="CLOSED",
                position_side=LONG,
                symbol=SYMBOL,
                venue="bybit",
                qty=D("0.100"),
                entry_price=D("0.3000"),
                exit_price=None,
                stop_price=D("2450.00"),
                realized_pnl_usdt=D("-2.5"),
                fees_usdt=D("0.30000000000000004"),
                opened_at=T0 - timedelta(days=30),
                closed_at=T0 - timedelta(days=29),
                close_reason="aged_exit",
                trailing_activated=False,
                trailing_activation_price=D("2537.50"),
                trailing_callback_pct=D("0.5"),
                stop_order_id="bb-7",
                adjustments=("exit_price 0.0 → unknown (a price must be > 0)",),
                source_row={"id": 7, "symbol": "ETH/USDT:USDT", "exit_price": "0.0"},
            ),
            {"position_id": lpid, "symbol": SYMBOL},
        ),
        (
            LegacySignalImported(
                source_table="fas.signals",
                source_id="3",
                signal_id="legacy:3",
                symbol=SYMBOL,
                venue="bybit",
                action="BUY",
                score_week=D("72.5"),
                score_month=None,
                decision="filtered",
                reason="legacy: processed, no position opened",
                source_row={"id": 3, "pair_symbol": "ETH/USDT:USDT"},
            ),
            {"symbol": SYMBOL},
        ),
        (
            LegacyEventImported(
                source_table="public.events",
                source_id="12",
                original_type="stop_loss_error",
                original_severity="ERROR",
                data={"attempt": 3, "price": 2450.5},
                legacy_position_id="7",
                order_id="o-12",
                exchange="bybit",
                correlation_id="w-1",
                error_message="timeout",
                stack_trace="Traceback ...",
                extra={"host": "old-bot-1"},
            ),
            {"position_id": lpid, "symbol": SYMBOL, "correlation_id": "w-1"},
        ),
        (
            LegacyImportCompleted(
                run_id="00000000-0000-0000-0000-000000000001",
                source="host=old dbname=bot",
                imported={"monitoring.positions": 1, "fas.signals": 1, "public.events": 1},
                skipped={"monitoring.alerts": 2},
                open_positions=0,
            ),
            {},
        ),
    ]


def _process() -> list[tuple[Payload, dict[str, object]]]:
    sup = {"supervisor": "positions", "child": f"position-{PID}"}
    return [
        (
            BotStarted(
                mode="paper",
                venue_profile="bybit",
                window_start=T0,
                window_end=T0 + timedelta(days=1),
                symbols=(SYMBOL,),
                wallet_usdt=D("10000"),
                instrument_sources={SYMBOL: "bundled"},
                signals="generate",
            ),
            {},
        ),
        (ConfigLoaded(account="main", path="config.toml", mode="paper", venue="bybit"), {}),
        (ChildStarted(kind="started", **sup), {}),
        (
            ChildCrashed(
                kind="crashed", error="RuntimeError('boom')", traceback="Traceback", **sup
            ),
            {},
        ),
        (ChildRestarted(kind="restarted", attempt=1, delay_s=0.5, **sup), {}),
        (ChildGaveUp(kind="gave_up", attempt=6, error="RuntimeError('boom')", **sup), {}),
        (ChildStopped(kind="stopped", leftover_messages=2, **sup), {}),
        (
            SafeModeEntered(
                reason="restart_intensity",
                error="RuntimeError('boom')",
                positions=2,
                protected=1,
                unprotected=("SOLUSDT:SHORT",),
                **sup,
            ),
            {},
        ),
        (
            StartupStep(
                step="schema",
                status="failed",
                detail="schema version 2 is older than the code (3): run tradebot db migrate",
                exit_code=1,
            ),
            {},
        ),
        (StreamConnected(stream="private", url="ws://127.0.0.1:1/v5/private", connects=1), {}),
        (
            StreamDisconnected(
                stream="signals", url="ws://127.0.0.1:2", reason="closed", attempt=1, retry_in_s=1.5
            ),
            {},
        ),
        (StreamGapped(stream="public", url="ws://127.0.0.1:1/v5/public", reason="reconnected"), {}),
        (StreamSilent(stream="signals", reason="silence", silence_timeout_s=60.0), {}),
        (MarkRejected(mark_price="NaN", reason="not finite (NaN)", mark_ts=T0), {}),
        (
            ExchangeRequest(
                request_id="bybit-1",
                venue="bybit",
                method="POST",
                path="/v5/order/create",
                params={"symbol": SYMBOL, "qty": "0.100", "orderLinkId": CID_ENTRY},
            ),
            {"symbol": SYMBOL, "client_order_id": CID_ENTRY, "correlation_id": "bybit-1"},
        ),
        (
            ExchangeResponse(
                request_id="bybit-1",
                venue="bybit",
                path="/v5/order/create",
                ret_code=0,
                ret_msg="OK",
                result={"orderId": "v-entry", "orderLinkId": CID_ENTRY},
                latency_ms=12.5,
            ),
            {"symbol": SYMBOL, "client_order_id": CID_ENTRY, "correlation_id": "bybit-1"},
        ),
        (
            ExchangeError(
                request_id="bybit-2",
                venue="bybit",
                path="/v5/position/trading-stop",
                error="RejectedError",
                code="110092",
                venue_message="TakeProfit/StopLoss price invalid",
                message="bybit: 110092",
                ret_code=110092,
                latency_ms=9.0,
            ),
            {"symbol": SYMBOL},
        ),
        (ClockResynced(old_offset_ms=0, offset_ms=-120, rtt_ms=8), {}),
        (RateLimitHit(request_id="bybit-3", path="/v5/order/create", retry_after_s=1.0), {}),
        (
            Funding(
                position_side=LONG,
                amount_usdt=D("0.0250"),
                funding_rate=D("0.0001"),
                mark_price=D("2500"),
                qty=D("0.100"),
            ),
            {"symbol": SYMBOL, "position_id": PID},
        ),
        (ReconcileStarted(trigger="startup"), {}),
        (ReconcilePhantom(position_side=LONG, journal_qty=D("0.100")), {"symbol": "SOLUSDT"}),
        (
            ReconcileUntracked(position_side=PositionSide.SHORT, qty=D("3"), entry_price=D("150")),
            {},
        ),
        (ZombieOrderFound(reason="no live actor", venue_order_id="v-z"), {}),
        (ZombieCancelled(venue_order_id="v-z"), {}),
        (
            ReconcileForeignOrder(
                venue_order_id="v-f",
                order_type="LIMIT",
                position_side=LONG,
                qty=D("1"),
                price=D("140"),
            ),
            {"symbol": "SOLUSDT", "client_order_id": "manual-1"},
        ),
        (
            ReconcileQtyChanged(position_side=LONG, owner_qty=D("0.100"), venue_qty=D("0.050")),
            {"symbol": SYMBOL, "position_id": PID},
        ),
        (
            ReconcileResumed(position_side=LONG, lifecycle="ACTIVE", managed=True),
            {"symbol": SYMBOL, "position_id": PID},
        ),
        (
            ReconcileIntentRolledBack(position_side=LONG),
            {"symbol": "SOLUSDT", "position_id": "0ddba11000000001"},
        ),
        (ReconcileCompleted(trigger="startup", findings=3), {}),
        (DbUnavailable(reason="connection lost", spool_path="/tmp/spool.jsonl"), {}),
        (DbRecovered(down_for_s=2.5, spooled=10), {}),
        (SpoolReplayed(events=10, spool_path="/tmp/spool.jsonl"), {}),
        (
            DbServerRestart(attempt=1, max_attempts=3, ok=True, spool_path="/tmp/spool.jsonl"),
            {},
        ),
        (
            SpoolKeptAside(
                path="/tmp/kept/journal-spool-x-previous-paper-run.jsonl",
                events=3,
                reason="stale spool of an earlier paper run",
            ),
            {},
        ),
        (
            EventSchemaErrorRecorded(
                event_type="alert.raised",
                event_id="00000000-0000-0000-0000-000000000000",
                error="required field missing @ data.message",
            ),
            {},
        ),
        (AlertSuppressed(key="flatten_failed", message="flatten failed", suppressed_count=2), {}),
        (OperatorCommand(command="close", args={"position_id": PID}, source="cli"), {}),
        (BotPaused(source="http", reason="maintenance"), {}),
        (BotResumed(source="telegram"), {}),
        *_legacy(),
        (BotStopping(reason="SIGTERM", open_positions=0), {}),
        (
            WaveCompleted(
                wave_id=WAVE_ID,
                wave_ts=T0,
                received=3,
                taken=1,
                filtered=1,
                rejected=1,
                opened=1,
                position_ids=(PID,),
            ),
            {"correlation_id": WAVE_ID},
        ),
        (BotStopped(reason="SIGTERM"), {}),
    ]


_SEVERITY = {AlertRaised: Severity.CRITICAL, PositionFailed: Severity.CRITICAL}


def example_events() -> Iterator[Event]:
    """One valid event of every type, a second apart from ``T0``, in journal order."""
    for i, (p, fields) in enumerate([*_wave(), *_position(), *_process()]):
        yield Event.of(
            p,
            T0 + timedelta(seconds=i),
            severity=_SEVERITY.get(type(p), Severity.INFO),
            **fields,  # type: ignore[arg-type]
        )
