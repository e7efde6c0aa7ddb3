"""The signal WebSocket client against real WebSocket servers on 127.0.0.1 (port 0).

Time is trio's MockClock (autojump): backoff delays, pings and watchdogs run in virtual
time while the bytes go through real loopback sockets.
"""

from __future__ import annotations

import json
import random
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import partial

import trio
import trio.testing
import wsproto
import wsproto.events
from trio_websocket import ConnectionClosed, WebSocketRequest, serve_websocket

from actors.runtime import run_actor
from actors.signal_feed import GetFeedStatus, SignalFeed
from actors.wave import GetWaveStatus, WaveProcessor
from adapters.signals import WebSocketSignalSource
from tests.test_wave_processor import INSTRUMENTS, PRICES, SYMBOLS, RecordingOpener
from tradebot.clock import TrioClock
from tradebot.events import EventType, MemoryJournal
from tradebot.policies.sizing import SizingSettings
from tradebot.signals import (
    FeedItem,
    FeedSettings,
    ProtocolLimits,
    Rejection,
    Signal,
    Wave,
    WaveSettings,
    backoff_delay_s,
)

T0 = datetime(2025, 5, 21, 11, 0, tzinfo=UTC)
TS = "2025-05-21T11:00:00Z"

Handler = Callable[[WebSocketRequest], Awaitable[None]]


def signal_obj(i: int, ts: str = TS, symbol: str | None = None) -> dict[str, object]:
    return {
        "id": f"s{i}",
        "symbol": symbol or SYMBOLS[i % len(SYMBOLS)],
        "exchange": "bybit",
        "action": "BUY" if i % 2 else "SELL",
        "score_week": f"{50 + i % 40}.5",
        "score_month": "40",
    }


def single(i: int, ts: str = TS) -> str:
    return json.dumps({"type": "signal", "timestamp": ts, **signal_obj(i, ts)})


def wave_msg(ids: range, ts: str = TS) -> str:
    return json.dumps(
        {"type": "wave", "timestamp": ts, "signals": [signal_obj(i, ts) for i in ids]}
    )


async def start_server(nursery: trio.Nursery, handler: Handler) -> str:
    server = await nursery.start(
        partial(serve_websocket, handler, "127.0.0.1", 0, ssl_context=None)
    )
    return f"ws://127.0.0.1:{server.port}/signals"


async def wait_subscribe(ws: object) -> None:
    msg = await ws.get_message()  # type: ignore[attr-defined]
    assert json.loads(msg) == {"type": "subscribe"}


def feed_settings(url: str, **kw: object) -> FeedSettings:
    base: dict[str, object] = {
        "url": url,
        "reconnect_initial_s": 1.0,
        "reconnect_factor": 2.0,
        "reconnect_max_s": 30.0,
        "reconnect_jitter": 0.5,
    }
    base.update(kw)
    return FeedSettings(**base)  # type: ignore[arg-type]


async def test_drop_mid_wave_reconnects_on_backoff_schedule_and_wave_is_processed_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Connection 1 sends 6 of the 12 signals of wave 11:00 one by one and drops; the next
    two handshakes are refused; connection 4 re-sends the whole wave as a batch (the first
    6 are duplicates). The wave is processed once, at 11:05, with all 12 signals."""
    connects: list[float] = []
    drop_time: list[float] = []

    async def handler(request: WebSocketRequest) -> None:
        connects.append(trio.current_time())
        n = len(connects)
        if n in (2, 3):
            await request.reject(503)
            return
        ws = await request.accept()
        await wait_subscribe(ws)
        if n == 1:
            for i in range(6):
                await ws.send_message(single(i))
            await trio.sleep(0.5)
            drop_time.append(trio.current_time())
            await ws.aclose(1011, "going away mid-wave")
            return
        await ws.send_message(wave_msg(range(12)))
        try:
            await trio.sleep_forever()
        except ConnectionClosed:
            pass

    journal = MemoryJournal()
    opener = RecordingOpener(latency_s=0.1)
    settings = WaveSettings(
        max_trades_per_wave=20,
        reserve_pct=0,
        risk=SizingSettings(max_open_positions=50, max_exposure_usdt=Decimal(100_000)),
    )
    with trio.fail_after(3600):
        async with trio.open_nursery() as nursery:
            url = await start_server(nursery, handler)
            clock = TrioClock(T0 + timedelta(minutes=1))
            source = WebSocketSignalSource(
                feed_settings(url), journal=journal, clock=clock, rng=random.Random(42)
            )
            waves = await nursery.start(
                run_actor,
                WaveProcessor(
                    settings=settings,
                    journal=journal,
                    reader=journal,
                    clock=clock,
                    opener=opener,
                    instruments=INSTRUMENTS,
                    price_of=PRICES.get,
                ),
                "waves",
            )
            feed = await nursery.start(run_actor, SignalFeed(source, waves), "feed")
            await trio.sleep(10 * 60)
            status = await waves.ask(GetWaveStatus(), timeout_s=5)
            feed_status = await feed.ask(GetFeedStatus(), timeout_s=5)
            nursery.cancel_scope.cancel()

    rng = random.Random(42)
    expected = [backoff_delay_s(a, source.settings, rng) for a in range(3)]
    assert source.reconnect_delays[:3] == expected
    assert 0.5 <= expected[0] <= 1.0 and 1.0 <= expected[1] <= 2.0 and 2.0 <= expected[2] <= 4.0
    # The handshakes happened exactly on the schedule (virtual time).
    gaps = [connects[1] - drop_time[0], connects[2] - connects[1], connects[3] - connects[2]]
    assert [round(g, 6) for g in gaps] == [round(d, 6) for d in expected]
    assert source.connects == 2 and len(connects) == 4

    (summary,) = status.completed
    assert (summary.received, summary.duplicates) == (12, 6)
    assert [r.signal_id for _, r in opener.requests] == [
        e.data["signal_id"] for e in journal.of_type(EventType.SIGNAL_TAKEN)
    ]
    decided = [
        e.data["signal_id"]
        for e in journal.of_type(EventType.SIGNAL_TAKEN, EventType.SIGNAL_FILTERED)
    ]
    assert sorted(decided) == sorted(f"s{i}" for i in range(12))  # all, each once
    assert len(journal.of_type(EventType.WAVE_COMPLETED)) == 1
    assert journal.of_type(EventType.WAVE_STARTED)[0].ts == T0 + timedelta(minutes=5)
    disconnects = journal.of_type(EventType.STREAM_DISCONNECTED)
    assert [e.data["retry_in_s"] for e in disconnects[:3]] == [round(d, 6) for d in expected]
    assert "1011" in disconnects[0].data["reason"]
    assert "connect_failed" in disconnects[1].data["reason"]
    assert feed_status.signals == 6 + 12


def hostile_messages(seed: int) -> list[tuple[str | bytes, str]]:
    """Seeded hostile messages with the reason code each must be rejected with."""
    rng = random.Random(seed)
    ok = signal_obj(1)
    bad_scores: list[tuple[str, str]] = [
        ("NaN", "score_not_finite"),
        ("Infinity", "score_not_finite"),
        ("-Infinity", "score_not_finite"),
        ("1e400", "score_out_of_range"),
        ("-3.5", "negative_score"),
        ("100.0001", "score_out_of_range"),
        ('"NaN"', "score_not_finite"),
        ('"1e999999"', "score_out_of_range"),
        ("true", "invalid_score"),
        ("[]", "invalid_score"),
        ("{}", "invalid_score"),
        ('"12abc"', "invalid_score"),
        ("-1e400", "negative_score"),
    ]
    out: list[tuple[str | bytes, str]] = []
    makers: list[Callable[[int], tuple[str | bytes, str]]] = []

    def m_score(i: int) -> tuple[str | bytes, str]:
        lit, code = rng.choice(bad_scores)
        field = rng.choice(["score_week", "score_month"])
        body = json.dumps({**ok, "id": f"h{i}"})[:-1] + f', "{field}": {lit}}}'
        return f'{{"type":"wave","timestamp":"{TS}","signals":[{body}]}}', code

    def m_missing(i: int) -> tuple[str | bytes, str]:
        obj = {**ok, "id": f"h{i}"}
        key = rng.choice(["id", "symbol", "exchange", "action"])
        del obj[key]
        return json.dumps({"type": "signal", "timestamp": TS, **obj}), "missing_field"

    def m_symbol(i: int) -> tuple[str | bytes, str]:
        sym, code = rng.choice(
            [
                ("DOGEUSDT", "unknown_symbol"),
                ("PEPE1000USDT", "unknown_symbol"),
                ("BTC-USDT", "invalid_symbol"),
                ("../etc", "invalid_symbol"),
                ("", "invalid_symbol"),
                ("BTCUSD", "invalid_symbol"),
            ]
        )
        return json.dumps(
            {"type": "signal", "timestamp": TS, **ok, "id": f"h{i}", "symbol": sym}
        ), code

    def m_types(i: int) -> tuple[str | bytes, str]:
        return rng.choice(
            [
                ("[]", "not_an_object"),
                ("42", "not_an_object"),
                ('"wave"', "not_an_object"),
                ("null", "not_an_object"),
                ('{"type":5}', "unknown_type"),
                ('{"type":"order","x":1}', "unknown_type"),
                ('{"foo":"bar"}', "missing_field"),
                (f'{{"type":"wave","timestamp":"{TS}","signals":{{"a":1}}}}', "invalid_signals"),
                (
                    '{"type":"wave","timestamp":"2025-05-21T11:01:00Z","signals":[]}',
                    "timestamp_not_on_wave_boundary",
                ),
                ('{"type":"wave","timestamp":12.5,"signals":[]}', "invalid_timestamp"),
                ('{"type":"wave","signals":[]}', "missing_field"),
                (
                    json.dumps(
                        {"type": "signal", "timestamp": TS, **ok, "id": f"h{i}", "action": "HODL"}
                    ),
                    "invalid_action",
                ),
                (json.dumps({"type": "signal", "timestamp": TS, **ok, "id": ["x"]}), "invalid_id"),
                ("{" * 20 + "}", "invalid_json"),
                ('{"type":"wave",', "invalid_json"),
                ("\x00\x01", "invalid_json"),
                ("[" * 100_000, "invalid_json"),
            ]
        )

    def m_utf8(i: int) -> tuple[str | bytes, str]:
        prefix = json.dumps({"type": "signal", "timestamp": TS, **ok, "id": f"h{i}"})[:-2]
        return prefix.encode() + bytes([0xC3, 0x28, 0xFF, 0xFE]) + b'"}', "invalid_utf8"

    makers = [m_score, m_missing, m_symbol, m_types, m_utf8]
    for i in range(1100):
        out.append(makers[i % len(makers)](i))
    return out


async def test_fuzzed_hostile_stream_every_message_rejected_with_reason_valid_waves_served(
    autojump_clock: trio.testing.MockClock,
) -> None:
    hostile = hostile_messages(seed=5)
    big_frame = json.dumps({"type": "wave", "timestamp": TS, "signals": ["A" * 10_000_000]})
    waves_sent: list[str] = []
    connections: list[int] = []

    async def handler(request: WebSocketRequest) -> None:
        connections.append(1)
        ws = await request.accept()
        await wait_subscribe(ws)
        try:
            if len(connections) == 1:
                for k, (msg, _code) in enumerate(hostile):
                    if k % 100 == 0:  # a valid wave every 100 hostile messages
                        ts = (T0 + timedelta(minutes=15 * (k // 100))).strftime(
                            "%Y-%m-%dT%H:%M:%SZ"
                        )
                        waves_sent.append(ts)
                        await ws.send_message(wave_msg(range(k, k + 5), ts))
                    await ws.send_message(msg)
                await ws.send_message(big_frame)  # 10 MB: the client closes with 1009
                await trio.sleep_forever()
            # after the reconnect: valid waves keep coming
            for j in range(3):
                ts = (T0 + timedelta(hours=5, minutes=15 * j)).strftime("%Y-%m-%dT%H:%M:%SZ")
                waves_sent.append(ts)
                await ws.send_message(wave_msg(range(100 + 5 * j, 105 + 5 * j), ts))
            await trio.sleep_forever()
        except ConnectionClosed:
            pass

    journal = MemoryJournal()
    received: list[FeedItem] = []

    async def emit(item: FeedItem) -> None:
        received.append(item)

    limits = ProtocolLimits(known_symbols=frozenset(SYMBOLS))
    with trio.fail_after(3600):
        async with trio.open_nursery() as nursery:
            url = await start_server(nursery, handler)
            source = WebSocketSignalSource(
                feed_settings(url, limits=limits),
                journal=journal,
                clock=TrioClock(T0),
                rng=random.Random(1),
            )
            nursery.start_soon(source.run, emit)
            await trio.sleep(120)
            nursery.cancel_scope.cancel()

    assert len(hostile) >= 1000
    rejected = journal.of_type(EventType.SIGNAL_REJECTED)
    # one rejection per hostile message, in order, with the expected reason; then the 10 MB
    assert len(rejected) == len(hostile) + 1
    for (msg, code), event in zip(hostile, rejected, strict=False):
        assert event.data["reason"].split(":", 1)[0] == code, (msg[:120], event.data)
        assert event.data["decision"] == "rejected" and event.data["excerpt"]
    assert rejected[-1].data["reason"].startswith("message_too_large")
    # valid waves: all of them, complete, before and after the reconnect
    got = [item for item in received if isinstance(item, Wave) and item.signals]
    assert [w.wave_ts.strftime("%Y-%m-%dT%H:%M:%SZ") for w in got] == waves_sent
    assert all(len(w.signals) == 5 and not w.rejections for w in got)
    assert len(connections) == 2 and source.connects == 2
    assert source.overflowed == 0
    # the consumer saw every rejection too (whole messages, or inside their wave)
    assert (
        sum(isinstance(i, Rejection) for i in received)
        + sum(len(i.rejections) for i in received if isinstance(i, Wave))
        == len(hostile) + 1
    )


async def test_buffer_overflow_is_journaled_never_silent(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def handler(request: WebSocketRequest) -> None:
        ws = await request.accept()
        await wait_subscribe(ws)
        try:
            for i in range(150):
                await ws.send_message(single(i))
            await trio.sleep_forever()
        except ConnectionClosed:
            pass

    journal = MemoryJournal()
    release = trio.Event()
    received: list[FeedItem] = []

    async def slow_emit(item: FeedItem) -> None:
        await release.wait()
        received.append(item)

    with trio.fail_after(3600):
        async with trio.open_nursery() as nursery:
            url = await start_server(nursery, handler)
            source = WebSocketSignalSource(
                feed_settings(url), journal=journal, clock=TrioClock(T0), rng=random.Random(1)
            )
            nursery.start_soon(source.run, slow_emit)
            await trio.sleep(5)
            release.set()
            await trio.sleep(5)
            nursery.cancel_scope.cancel()
    overflow = journal.of_type(EventType.SIGNAL_BUFFER_OVERFLOW)
    dropped = [sid for e in overflow for sid in e.data["signal_ids"]]
    delivered = [i.signal_id for i in received if isinstance(i, Signal)]
    assert len(delivered) == 101  # 100 in the buffer + 1 held by the blocked consumer
    assert len(dropped) == 49 == source.overflowed
    assert sorted(delivered + dropped, key=lambda s: int(s[1:])) == [f"s{i}" for i in range(150)]
    assert all(e.data["wave_id"] == "wave-20250521T1100Z" for e in overflow)


async def test_token_auth_header_and_refusal(autojump_clock: trio.testing.MockClock) -> None:
    seen_auth: list[bytes | None] = []

    async def handler(request: WebSocketRequest) -> None:
        auth = dict((k.lower(), v) for k, v in request.headers).get(b"authorization")
        seen_auth.append(auth)
        if auth != b"Bearer s3cret":
            await request.reject(401)
            return
        ws = await request.accept()
        await wait_subscribe(ws)
        await ws.send_message(wave_msg(range(2)))
        try:
            await trio.sleep_forever()
        except ConnectionClosed:
            pass

    for token, expect_waves in ((None, 0), ("s3cret", 1)):
        journal = MemoryJournal()
        received: list[FeedItem] = []

        async def emit(item: FeedItem, received: list[FeedItem] = received) -> None:
            received.append(item)

        with trio.fail_after(3600):
            async with trio.open_nursery() as nursery:
                url = await start_server(nursery, handler)
                source = WebSocketSignalSource(
                    feed_settings(url, token=token),
                    journal=journal,
                    clock=TrioClock(T0),
                    rng=random.Random(1),
                )
                nursery.start_soon(source.run, emit)
                await trio.sleep(10)
                nursery.cancel_scope.cancel()
        assert len([i for i in received if isinstance(i, Wave)]) == expect_waves
        if token is None:
            reasons = [e.data["reason"] for e in journal.of_type(EventType.STREAM_DISCONNECTED)]
            assert reasons and all("connect_failed" in r for r in reasons)
            assert "s3cret" not in repr(source.settings)
    assert seen_auth[0] is None and seen_auth[-1] == b"Bearer s3cret"


async def test_pong_deadline_and_silence_watchdog_reconnect(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Server A completes the handshake and then never reads (no pongs): the client gives
    up 10 s after its 20 s ping. Server B answers pings but never sends data: the silence
    watchdog reconnects after silence_timeout_s."""

    async def deaf_server(stream: trio.SocketStream) -> None:
        conn = wsproto.WSConnection(wsproto.ConnectionType.SERVER)
        while True:
            data = await stream.receive_some(65536)
            if not data:
                return
            conn.receive_data(data)
            if any(isinstance(e, wsproto.events.Request) for e in conn.events()):
                await stream.send_all(conn.send(wsproto.events.AcceptConnection()))
                break
        await trio.sleep_forever()  # never reads again: pings go unanswered

    async def quiet_handler(request: WebSocketRequest) -> None:
        ws = await request.accept()
        try:
            await trio.sleep_forever()
        except ConnectionClosed:
            pass
        finally:
            del ws

    for kind in ("deaf", "quiet"):
        journal = MemoryJournal()
        t_connect: list[float] = []
        async with trio.open_nursery() as nursery:
            if kind == "deaf":
                (listener,) = await nursery.start(
                    partial(
                        trio.serve_tcp,
                        partial(_record, t_connect, deaf_server),
                        0,
                        host="127.0.0.1",
                    )
                )
                url = f"ws://127.0.0.1:{listener.socket.getsockname()[1]}/"
            else:
                url = await start_server(nursery, partial(_record, t_connect, quiet_handler))
            source = WebSocketSignalSource(
                feed_settings(url, silence_timeout_s=300.0),
                journal=journal,
                clock=TrioClock(T0),
                rng=random.Random(1),
            )

            async def emit(item: FeedItem) -> None:
                return None

            with trio.fail_after(3600):
                nursery.start_soon(source.run, emit)
                await trio.sleep(400)
            nursery.cancel_scope.cancel()
        silent = journal.of_type(EventType.STREAM_SILENT)
        assert silent, kind
        if kind == "deaf":
            assert silent[0].data["reason"] == "pong_timeout"
            # ping at 20 s, pong deadline 10 s, closing handshake abandoned after 2 s
            assert round(t_connect[1] - t_connect[0] - source.reconnect_delays[0], 6) == 32.0
        else:
            assert silent[0].data["reason"] == "silence"
            assert round(t_connect[1] - t_connect[0] - source.reconnect_delays[0], 6) == 300.0
        assert len(t_connect) >= 2


async def _record(
    times: list[float],
    inner: Callable[[trio.SocketStream], Awaitable[None]],
    stream: trio.SocketStream,
) -> None:
    times.append(trio.current_time())
    await inner(stream)


async def test_invalid_utf8_text_frame_is_rejected_and_connection_reestablished(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A *text* frame with invalid UTF-8 (which trio-websocket cannot even hand over: the
    protocol layer closes with 1007) is journaled as a rejection; after the reconnect the
    next (valid) wave arrives."""
    connects: list[float] = []
    valid = wave_msg(range(3)).encode()

    async def raw_server(stream: trio.SocketStream) -> None:
        connects.append(trio.current_time())
        conn = wsproto.WSConnection(wsproto.ConnectionType.SERVER)
        while True:
            data = await stream.receive_some(65536)
            if not data:
                return
            conn.receive_data(data)
            if any(isinstance(e, wsproto.events.Request) for e in conn.events()):
                await stream.send_all(conn.send(wsproto.events.AcceptConnection()))
                break
        if len(connects) == 1:
            await stream.send_all(b"\x81\x04\xff\xfe\xfd\xfc")  # FIN+text, 4 bytes, not UTF-8
        else:
            # a valid text frame (server frames are unmasked); 16-bit extended length
            await stream.send_all(b"\x81\x7e" + len(valid).to_bytes(2, "big") + valid)
        try:
            while await stream.receive_some(65536):
                pass
        except trio.BrokenResourceError:
            pass

    journal = MemoryJournal()
    received: list[FeedItem] = []

    async def emit(item: FeedItem) -> None:
        received.append(item)

    with trio.fail_after(3600):
        async with trio.open_nursery() as nursery:
            (listener,) = await nursery.start(
                partial(trio.serve_tcp, raw_server, 0, host="127.0.0.1")
            )
            url = f"ws://127.0.0.1:{listener.socket.getsockname()[1]}/signals"
            source = WebSocketSignalSource(
                feed_settings(url), journal=journal, clock=TrioClock(T0), rng=random.Random(1)
            )
            nursery.start_soon(source.run, emit)
            await trio.sleep(30)
            nursery.cancel_scope.cancel()
    (rejected,) = journal.of_type(EventType.SIGNAL_REJECTED)
    assert rejected.data["reason"].startswith("invalid_utf8:text frame, connection closed 1007")
    assert isinstance(received[0], Rejection) and received[0].code == "invalid_utf8"
    assert isinstance(received[1], Wave) and len(received[1].signals) == 3
    assert len(connects) == 2 and source.connects == 2
