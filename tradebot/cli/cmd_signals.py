"""``tradebot signals listen|generate``: check a signal service; make a signals file.

``tradebot signals listen URL [--json] [--duration S] [--token-env NAME]`` connects exactly
as the bot does (:class:`adapters.signals.WebSocketSignalSource`: bearer-token auth,
20 s ping with pong deadline, silence watchdog, capped jittered reconnect backoff,
resubscribe, the same validation) and prints every wave and signal as the bot would take
it — accepted, rejected with the reason, or a duplicate with the reason — plus
connects/disconnects. Text output::

    # connected ws://127.0.0.1:8765/signals
    wave wave-20250521T1100Z 2025-05-21T11:00:00+00:00  accepted=6 rejected=1
      ACCEPT s1 BTCUSDT bybit BUY score_week=72.5 score_month=65.1
      REJECT s7 negative_score:score_week=-1  {"id":"s7",...}
    wave wave-20250521T1100Z 2025-05-21T11:00:00+00:00  accepted=0 rejected=1 duplicates=6  (re-sent: delivery 2)
      DUPLICATE s1 duplicate_delivery:already received in wave-20250521T1100Z ...
    REJECT invalid_json:Expecting value: line 1 column 1 (char 0)  not json

Duplicates (:class:`DeliveryTracker`): a signal id already received in the same wave is
``duplicate_delivery`` (a wave re-sent across a reconnect: the bot de-duplicates it and
trades it once, ``actors/wave.py``); a signal id already used in an *earlier* wave is
``signal_id_reused`` — signal ids are unique across waves, so the service sent a stale or
conflicting signal. (The bot's WaveProcessor refuses a reused id: journaled
``signal.rejected`` ``duplicate_signal_id``, never traded. Reported here so the service can
be fixed.)

``--json`` prints JSON lines instead: ``{"kind": "signal", "status": "accepted"|
"rejected"|"duplicate", ...}``, ``{"kind": "wave", "wave_id", "accepted", "rejected",
"duplicates", "delivery"}`` and ``{"kind": "stream", "event": "stream.connected"|...,
...}``; decimals are strings.

``tradebot signals generate ...`` is :mod:`tradebot.signalgen` (H-replay).

Exit codes: 0 done (duration elapsed or Ctrl-C), 2 bad arguments.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any, TextIO

from tradebot.events import Event, EventType, jsonable
from tradebot.signals import (
    FeedItem,
    FeedSettings,
    ProtocolLimits,
    Rejection,
    Signal,
    Wave,
    wave_id_for,
)

__all__ = ["DeliveryTracker", "listen", "register"]


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("signals", help="signal service tools (listen, generate)")
    sub = parser.add_subparsers(dest="signals_command", metavar="SUBCOMMAND")

    listen_p = sub.add_parser(
        "listen", help="connect to a signal service as the bot does and print what it sends"
    )
    listen_p.add_argument("url", help="ws:// or wss:// URL of the signal service")
    listen_p.add_argument("--json", action="store_true", help="JSON lines instead of text")
    listen_p.add_argument(
        "--duration",
        type=float,
        default=None,
        help="stop after this many seconds (default: until Ctrl-C)",
    )
    listen_p.add_argument(
        "--token-env",
        default=None,
        metavar="NAME",
        help="environment variable holding the auth token (sent as 'Authorization: Bearer')",
    )
    listen_p.add_argument(
        "--max-message-bytes",
        type=int,
        default=ProtocolLimits().max_message_bytes,
        help="largest accepted message (default: %(default)s)",
    )
    listen_p.set_defaults(func=_run_listen)

    gen_p = sub.add_parser("generate", help="generate a JSON-lines signals file from klines")
    try:
        from tradebot import signalgen
    except ImportError:  # pragma: no cover - until tradebot.signalgen lands
        gen_p.set_defaults(func=_generate_unavailable)
    else:
        signalgen.add_arguments(gen_p)
        gen_p.set_defaults(func=_run_generate)

    def _usage(_args: argparse.Namespace) -> int:
        parser.print_help()
        return 2

    parser.set_defaults(func=_usage)


def _run_generate(args: argparse.Namespace) -> int:
    from tradebot import signalgen

    return int(signalgen.run(args))


def _generate_unavailable(_args: argparse.Namespace) -> int:  # pragma: no cover
    print("tradebot signals generate: tradebot.signalgen is not installed", file=sys.stderr)
    return 2


class _ConsoleJournal:
    """A JournalPort that prints connection events; rejections are printed from the feed
    items themselves (every one of them reaches the consumer)."""

    _SHOWN = frozenset(
        {
            EventType.STREAM_CONNECTED,
            EventType.STREAM_DISCONNECTED,
            EventType.STREAM_SILENT,
            EventType.SIGNAL_BUFFER_OVERFLOW,
        }
    )

    def __init__(self, out: TextIO, as_json: bool) -> None:
        self._out = out
        self._json = as_json

    def emit(self, event: Event) -> None:
        if event.type not in self._SHOWN:
            return
        if self._json:
            _print_json(
                self._out,
                {"kind": "stream", "event": event.type.value, "ts": event.ts, **event.data},
            )
            return
        d = event.data
        if event.type is EventType.STREAM_CONNECTED:
            line = f"# connected {d.get('url')}"
        elif event.type is EventType.STREAM_DISCONNECTED:
            line = f"# disconnected: {d.get('reason')} (retry in {d.get('retry_in_s')} s)"
        elif event.type is EventType.STREAM_SILENT:
            line = f"# silent: {d.get('reason')}"
        else:
            line = (
                f"# BUFFER OVERFLOW: dropped {d.get('kind')} {d.get('wave_id')} "
                f"signals={d.get('signal_ids')}"
            )
        print(line, file=self._out, flush=True)

    async def emit_durable(self, event: Event) -> None:
        self.emit(event)


def _print_json(out: TextIO, obj: dict[str, Any]) -> None:
    print(
        json.dumps(jsonable(obj), separators=(",", ":"), ensure_ascii=False), file=out, flush=True
    )


def _signal_line(s: Signal) -> str:
    return (
        f"ACCEPT {s.signal_id} {s.symbol} {s.venue} {s.action} "
        f"score_week={s.score_week} score_month={s.score_month}"
    )


def _signal_json(s: Signal) -> dict[str, Any]:
    return {
        "kind": "signal",
        "status": "accepted",
        "wave_id": s.wave_id,
        "signal_id": s.signal_id,
        "symbol": s.symbol,
        "venue": s.venue,
        "action": s.action,
        "score_week": s.score_week,
        "score_month": s.score_month,
    }


def _rejection_json(r: Rejection) -> dict[str, Any]:
    return {
        "kind": "signal",
        "status": "rejected",
        "wave_id": None if r.wave_ts is None else wave_id_for(r.wave_ts),
        "signal_id": r.signal_id,
        "reason": r.reason,
        "excerpt": r.excerpt,
    }


class DeliveryTracker:
    """Which accepted signals the bot would see as duplicates (rules in the module docstring).

    Remembers the wave of every signal id (the most recent ``max_ids``; older ones are
    forgotten first) and how many times each wave was delivered.
    """

    def __init__(self, max_ids: int = 100_000) -> None:
        self._wave_of: dict[str, str] = {}
        self._deliveries: dict[str, int] = {}
        self._max_ids = max_ids

    def delivery(self, wave_id: str) -> int:
        """Count one more delivery of ``wave_id``; returns its number (1 = first)."""
        n = self._deliveries.get(wave_id, 0) + 1
        self._deliveries[wave_id] = n
        if len(self._deliveries) > self._max_ids:
            del self._deliveries[next(iter(self._deliveries))]
        return n

    def duplicate_reason(self, s: Signal) -> str | None:
        """None for a new signal id (remembered now), else the reason it is a duplicate."""
        first = self._wave_of.get(s.signal_id)
        if first is None:
            self._wave_of[s.signal_id] = s.wave_id
            if len(self._wave_of) > self._max_ids:
                del self._wave_of[next(iter(self._wave_of))]
            return None
        if first == s.wave_id:
            return f"duplicate_delivery:already received in {first} (the bot takes it once)"
        return (
            f"signal_id_reused:first used in {first}, now in {s.wave_id} "
            "(signal ids are unique across waves)"
        )


def _duplicate_json(s: Signal, reason: str) -> dict[str, Any]:
    return {**_signal_json(s), "status": "duplicate", "reason": reason}


def print_item(
    item: FeedItem, out: TextIO, as_json: bool, tracker: DeliveryTracker | None = None
) -> None:
    """Print one feed item (wave, signal or rejection) as text or JSON lines; with a
    ``tracker``, signals the bot would treat as duplicates are printed as such."""
    tracker = tracker if tracker is not None else DeliveryTracker()
    if isinstance(item, Wave):
        delivery = tracker.delivery(item.wave_id)
        fresh: list[Signal] = []
        dups: list[tuple[Signal, str]] = []
        for s in item.signals:
            why = tracker.duplicate_reason(s)
            if why is None:
                fresh.append(s)
            else:
                dups.append((s, why))
        if as_json:
            _print_json(
                out,
                {
                    "kind": "wave",
                    "wave_id": item.wave_id,
                    "wave_ts": item.wave_ts,
                    "accepted": len(fresh),
                    "rejected": len(item.rejections),
                    "duplicates": len(dups),
                    "delivery": delivery,
                },
            )
            for s in fresh:
                _print_json(out, _signal_json(s))
            for s, why in dups:
                _print_json(out, _duplicate_json(s, why))
            for r in item.rejections:
                _print_json(out, _rejection_json(r))
            return
        extra = f" duplicates={len(dups)}" if dups else ""
        resent = f"  (re-sent: delivery {delivery})" if delivery > 1 else ""
        print(
            f"wave {item.wave_id} {item.wave_ts.isoformat()}  accepted={len(fresh)} "
            f"rejected={len(item.rejections)}{extra}{resent}",
            file=out,
        )
        for s in fresh:
            print("  " + _signal_line(s), file=out)
        for s, why in dups:
            print(f"  DUPLICATE {s.signal_id} {why}", file=out)
        for r in item.rejections:
            print(f"  REJECT {r.signal_id or '-'} {r.reason}  {r.excerpt}", file=out)
        out.flush()
    elif isinstance(item, Signal):
        why = tracker.duplicate_reason(item)
        if as_json:
            _print_json(out, _signal_json(item) if why is None else _duplicate_json(item, why))
        elif why is None:
            print(f"signal {item.wave_id} " + _signal_line(item), file=out, flush=True)
        else:
            print(f"signal {item.wave_id} DUPLICATE {item.signal_id} {why}", file=out, flush=True)
    elif as_json:
        _print_json(out, _rejection_json(item))
    else:
        who = f"{item.signal_id} " if item.signal_id else ""
        print(f"REJECT {who}{item.reason}  {item.excerpt}", file=out, flush=True)


async def listen(
    url: str,
    *,
    out: TextIO,
    as_json: bool = False,
    duration_s: float | None = None,
    token: str | None = None,
    limits: ProtocolLimits | None = None,
) -> int:
    """Connect like the bot and print everything until ``duration_s`` (None = forever).

    Returns the exit code (0).
    """
    import trio

    from adapters.signals import WebSocketSignalSource
    from tradebot.clock import WallClock

    settings = FeedSettings(url=url, token=token, limits=limits or ProtocolLimits())
    source = WebSocketSignalSource(
        settings, journal=_ConsoleJournal(out, as_json), clock=WallClock()
    )

    tracker = DeliveryTracker()

    async def emit(item: FeedItem) -> None:
        print_item(item, out, as_json, tracker)

    with trio.move_on_after(duration_s if duration_s is not None else float("inf")):
        await source.run(emit)
    return 0


def _run_listen(args: argparse.Namespace) -> int:
    import trio

    if not args.url.startswith(("ws://", "wss://")):
        print("tradebot signals listen: URL must start with ws:// or wss://", file=sys.stderr)
        return 2
    if args.duration is not None and args.duration <= 0:
        print("tradebot signals listen: --duration must be > 0", file=sys.stderr)
        return 2
    token = None
    if args.token_env:
        token = os.environ.get(args.token_env)
        if not token:
            print(
                f"tradebot signals listen: environment variable {args.token_env} is not set",
                file=sys.stderr,
            )
            return 2
    limits = ProtocolLimits(max_message_bytes=args.max_message_bytes)
    try:
        return trio.run(
            lambda: listen(
                args.url,
                out=sys.stdout,
                as_json=args.json,
                duration_s=args.duration,
                token=token,
                limits=limits,
            )
        )
    except KeyboardInterrupt:
        return 0
