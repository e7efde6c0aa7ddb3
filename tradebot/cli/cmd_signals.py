"""``tradebot signals listen|generate``: check a signal service; make a signals file.

``tradebot signals listen URL [--json] [--duration S] [--token-env NAME]`` connects exactly
as the bot does (:class:`adapters.signals.WebSocketSignalSource`: bearer-token auth,
20 s ping with pong deadline, silence watchdog, capped jittered reconnect backoff,
resubscribe, the same validation) and prints every wave and signal as accepted or rejected
with the reason, plus connects/disconnects. Text output::

    # connected ws://127.0.0.1:8765/signals
    wave wave-20250521T1100Z 2025-05-21T11:00:00+00:00  accepted=6 rejected=1
      ACCEPT s1 BTCUSDT bybit BUY score_week=72.5 score_month=65.1
      REJECT s7 negative_score:score_week=-1  {"id":"s7",...}
    REJECT invalid_json:Expecting value: line 1 column 1 (char 0)  not json

``--json`` prints JSON lines instead: ``{"kind": "signal", "status": "accepted"|
"rejected", ...}``, ``{"kind": "wave", "wave_id", "accepted", "rejected"}`` and
``{"kind": "stream", "event": "stream.connected"|..., ...}``; decimals are strings.

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

__all__ = ["listen", "register"]


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


def print_item(item: FeedItem, out: TextIO, as_json: bool) -> None:
    """Print one feed item (wave, signal or rejection) as text or JSON lines."""
    if isinstance(item, Wave):
        if as_json:
            _print_json(
                out,
                {
                    "kind": "wave",
                    "wave_id": item.wave_id,
                    "wave_ts": item.wave_ts,
                    "accepted": len(item.signals),
                    "rejected": len(item.rejections),
                },
            )
            for s in item.signals:
                _print_json(out, _signal_json(s))
            for r in item.rejections:
                _print_json(out, _rejection_json(r))
            return
        print(
            f"wave {item.wave_id} {item.wave_ts.isoformat()}  accepted={len(item.signals)} "
            f"rejected={len(item.rejections)}",
            file=out,
        )
        for s in item.signals:
            print("  " + _signal_line(s), file=out)
        for r in item.rejections:
            print(f"  REJECT {r.signal_id or '-'} {r.reason}  {r.excerpt}", file=out)
        out.flush()
    elif isinstance(item, Signal):
        if as_json:
            _print_json(out, _signal_json(item))
        else:
            print(f"signal {item.wave_id} " + _signal_line(item), file=out, flush=True)
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

    async def emit(item: FeedItem) -> None:
        print_item(item, out, as_json)

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
