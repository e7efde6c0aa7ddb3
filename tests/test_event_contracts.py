"""The typed event contracts: one payload class per event type, one codec, and every type
projects through the real PostgreSQL journal without a skip."""

from __future__ import annotations

import collections.abc
import enum
import json
import types
import typing
from collections import Counter
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import attrs
import psycopg
import pytest
import trio
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.postgres.journal import open_postgres_journal
from tests._event_examples import ALERT_MESSAGE, PID, example_events
from tradebot.events import (
    PAYLOADS,
    AlertRaised,
    Event,
    EventSchemaError,
    EventType,
    MemoryJournal,
    Payload,
    Severity,
    StopMoved,
    WaveDuplicate,
    decode_data,
    encode,
    payload,
)

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def test_every_event_type_has_exactly_one_payload_class() -> None:
    assert set(PAYLOADS) == set(EventType)
    classes = list(PAYLOADS.values())
    assert len(set(classes)) == len(classes)  # no class serves two types
    for event_type, cls in PAYLOADS.items():
        assert cls.EVENT_TYPE is event_type
        assert attrs.has(cls) and issubclass(cls, Payload)
        assert cls.__doc__, f"{cls.__name__} has no docstring"
    with pytest.raises(TypeError, match="already has payload class"):

        @payload(EventType.FILL)
        @attrs.frozen(kw_only=True)
        class SecondFill(Payload):
            qty: Decimal


def test_no_payload_field_is_a_float_money_field() -> None:
    """Money and prices are Decimal: a float field may only be a duration or a latency."""
    for cls in PAYLOADS.values():
        for f in attrs.fields(attrs.resolve_types(cls)):
            if float in (f.type, *typing.get_args(f.type)):
                assert f.name.endswith(("_s", "_ms", "_h")), (cls.__name__, f.name)


def test_the_example_table_covers_every_type_once() -> None:
    counts = Counter(e.type for e in example_events())
    assert set(counts) == set(EventType)
    assert max(counts.values()) == 1


# -- the codec ------------------------------------------------------------------------------

_JSON_SCALARS = st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=8)


def _strategy(tp: Any) -> st.SearchStrategy[Any]:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any:
        return _JSON_SCALARS
    if tp is Decimal:
        return st.decimals(allow_nan=False, allow_infinity=False)
    if tp is datetime:
        return st.datetimes(timezones=st.just(UTC))
    if tp is bool:
        return st.booleans()
    if tp is int:
        return st.integers()
    if tp is float:
        return st.floats(allow_nan=False, allow_infinity=False)
    if tp is str:
        return st.text(max_size=20)
    if origin is typing.Literal:
        return st.sampled_from(args)
    if origin in (typing.Union, types.UnionType):
        return st.one_of(*(_strategy(a) for a in args))
    if tp is type(None):
        return st.none()
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return st.sampled_from(list(tp))
    if origin is tuple:
        return st.lists(_strategy(args[0]), max_size=3).map(tuple)
    if origin in (dict, collections.abc.Mapping):
        return st.dictionaries(st.text(max_size=5), _strategy(args[1]), max_size=3)
    if attrs.has(tp):
        return _builds(tp)
    raise AssertionError(f"no strategy for {tp!r}")


def _builds(cls: type) -> st.SearchStrategy[Any]:
    fields = attrs.fields(attrs.resolve_types(cls))
    return st.builds(cls, **{f.name: _strategy(f.type) for f in fields})


@pytest.mark.parametrize("event_type", list(EventType), ids=lambda t: t.value)
def test_every_payload_round_trips_through_json(event_type: EventType) -> None:
    cls = PAYLOADS[event_type]

    @settings(max_examples=25, deadline=None)
    @given(_builds(cls))
    def round_trip(p: Payload) -> None:
        data = json.loads(json.dumps(encode(p)))  # JSON-safe: no Decimal, no datetime
        assert decode_data(event_type, data) == p

    round_trip()


def test_the_codec_refuses_drift_with_key_paths() -> None:
    good = encode(StopMoved(stop_price=Decimal("100.5")))
    wave: dict[str, Any] = {
        "wave_id": "w",
        "wave_ts": T0,
        "status": "opening",
        "signals": 1,
        "new_signals": 0,
    }
    assert good["stop_price"] == "100.5" and good["old_stop_price"] is None
    cases = {
        "float money": ({**good, "stop_price": 100.5}, "got float @ data.stop_price"),
        "missing": ({k: v for k, v in good.items() if k != "stop_price"}, "data.stop_price"),
        "extra key": ({**good, "hwm": "1"}, "extra fields found (hwm)"),
        "not finite": ({**good, "stop_price": "NaN"}, "not a finite decimal"),
        "bool as int": (
            {**encode(AlertRaised(message="m")), "suppressed_count": True},
            "got bool @ data.suppressed_count",
        ),
        "bad enum": ({**good, "position_side": "UP"}, "'UP' is not a valid PositionSide"),
        "naive time": (
            {**encode(WaveDuplicate(**wave)), "wave_ts": "2026-03-02T09:00:00"},
            "time without a UTC offset",
        ),
        "string as int": (
            {**encode(WaveDuplicate(**wave)), "signals": "3"},
            "expected an integer, got str @ data.signals",
        ),
    }
    types_of = {"suppressed_count": EventType.ALERT_RAISED, "new_signals": EventType.WAVE_DUPLICATE}
    for name, (data, expected) in cases.items():
        event_type = next((t for k, t in types_of.items() if k in data), EventType.STOP_MOVED)
        with pytest.raises(EventSchemaError) as info:
            decode_data(event_type, data)
        assert expected in str(info.value), name


def test_memory_journal_raises_on_an_event_off_its_contract() -> None:
    journal = MemoryJournal()
    # the PositionActor's alerts before this issue: reason/detail, no message
    drift = Event(EventType.ALERT_RAISED, T0, {"reason": "close_failed", "detail": "x"})
    with pytest.raises(EventSchemaError, match=r"required field missing @ data\.message"):
        journal.emit(drift)
    assert journal.events == []
    ok = Event.of(AlertRaised(message="close failed", reason="close_failed"), T0)
    journal.emit(ok)
    assert journal.events == [ok]
    assert ok.payload_as(AlertRaised).message == "close failed"


# -- the must-show test ----------------------------------------------------------------------


async def test_every_event_type_projects_through_the_real_journal_with_no_skip(
    fresh_db_dsn: str, tmp_path: Path
) -> None:
    """One valid example of every event type through the real PostgreSQL journal (strict):
    stored once each, every projection runs (no skip), alerts land in ``alerts``."""
    events = list(example_events())
    with trio.fail_after(60):
        async with open_postgres_journal(
            fresh_db_dsn, spool_dir=tmp_path, strict_schema=True
        ) as journal:
            for ev in events:
                journal.emit(ev)
            await journal.flush()
    stats = journal.stats
    assert stats.schema_errors == 0
    assert stats.committed == len(events) == len(EventType)
    assert stats.projection_skipped == 0, stats.projection_skip_reasons
    with psycopg.connect(fresh_db_dsn) as conn:
        types = {r[0] for r in conn.execute("SELECT DISTINCT type FROM events")}
        assert types == {t.value for t in EventType}
        alerts = conn.execute(
            "SELECT severity::text, alert_key, message, suppressed_count FROM alerts"
        ).fetchall()
        assert alerts == [("critical", "flatten_failed", ALERT_MESSAGE, 0)]
        # the position's life in the relational tables
        pos = conn.execute(
            """SELECT status::text, qty, entry_price, stop_price, fees_usdt, close_reason,
                      wave_id, signal_id, venue
               FROM positions WHERE position_id = %s""",
            (PID,),
        ).fetchone()
        assert pos == (
            "CLOSED",
            Decimal("0.100"),
            Decimal("2500.00"),
            Decimal("2425.00"),  # the emergency stop, the last live stop recorded
            Decimal("0.2722"),  # entry 0.1375 + the exit's 0.1347 (position.exit_recorded)
            "stop_triggered",
            "wave-20260302T0900Z",
            "s1",
            "paper",
        )
        exit_row = conn.execute(
            "SELECT exit_price, realized_pnl_usdt FROM positions WHERE position_id = %s", (PID,)
        ).fetchone()
        assert exit_row == (Decimal("2450.0"), Decimal("-5.000"))  # position.exit_recorded
        orders = dict(
            conn.execute(
                "SELECT role::text, status::text FROM orders WHERE position_id = %s", (PID,)
            ).fetchall()
        )
        assert orders == {
            "ENTRY": "FILLED",
            "STOP": "CANCELED",
            "TAKE_PROFIT": "CANCELED",
            "EMERGENCY_STOP": "TRIGGERED",
        }
        assert conn.execute("SELECT count(*) FROM fills").fetchone() == (1,)
        assert conn.execute("SELECT level, status::text FROM tp_levels").fetchall() == [
            (0, "FILLED")
        ]
        signals = sorted(conn.execute("SELECT decision::text, reason FROM signals").fetchall())
        assert signals == [
            ("filtered", "stoplist"),
            ("rejected", "invalid_symbol"),
            ("taken", "opened"),
        ]
        assert conn.execute(
            "SELECT signals_received, signals_taken, signals_filtered, started_at IS NOT NULL, "
            "completed_at IS NOT NULL FROM waves"
        ).fetchall() == [(3, 1, 1, True, True)]


async def test_strict_journal_raises_and_stores_nothing_off_contract(
    fresh_db_dsn: str, tmp_path: Path
) -> None:
    with trio.fail_after(30):
        async with open_postgres_journal(
            fresh_db_dsn, spool_dir=tmp_path, strict_schema=True
        ) as journal:
            with pytest.raises(EventSchemaError, match=r"data\.message"):
                journal.emit(Event(EventType.ALERT_RAISED, T0, {"reason": "close_failed"}))
            journal.emit(Event.of(AlertRaised(message="ok"), T0))
            await journal.flush()
    assert journal.stats.committed == 1 and journal.stats.schema_errors == 0


async def test_lenient_journal_stores_counts_and_flags_each_type_once(
    fresh_db_dsn: str, tmp_path: Path
) -> None:
    drift = [Event(EventType.ALERT_RAISED, T0, {"reason": "close_failed"}) for _ in range(3)]
    with trio.fail_after(30):
        async with open_postgres_journal(
            fresh_db_dsn, spool_dir=tmp_path, strict_schema=False
        ) as journal:
            for ev in drift:
                journal.emit(ev)
            await journal.flush()
    assert journal.stats.schema_errors == 3
    assert journal.stats.schema_error_types == {"alert.raised": 3}
    assert journal.stats.projection_skipped == 3  # stored, but not projected
    with psycopg.connect(fresh_db_dsn) as conn:
        counts = dict(conn.execute("SELECT type, count(*) FROM events GROUP BY type").fetchall())
        flagged = conn.execute(
            "SELECT severity::text, data->>'event_type', data->>'event_id', data->>'error' "
            "FROM events WHERE type = 'db.schema_error'"
        ).fetchall()
    assert counts == {"alert.raised": 3, "db.schema_error": 1}  # none lost, flagged once
    ((severity, etype, eid, error),) = flagged
    assert (severity, etype, eid) == ("error", "alert.raised", str(drift[0].event_id))
    assert "required field missing @ data.message" in error


def test_severity_is_the_events_not_the_payloads() -> None:
    ev = Event.of(AlertRaised(message="m"), T0, severity=Severity.CRITICAL)
    assert ev.severity is Severity.CRITICAL and "severity" not in ev.data
