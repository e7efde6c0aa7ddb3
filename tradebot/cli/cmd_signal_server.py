"""``tradebot signal-server --replay FILE [--port N]``: a loopback signal service.

Publishes a JSON-lines signals file (``tradebot signals generate`` writes one) wave by wave
over WebSocket, so users can test their setup (``tradebot signals listen``, a paper bot)
without the real service. Lines go out verbatim, grouped into waves by timestamp; one wave
every ``--interval`` seconds (or ``900 / --speed``). A client must send
``{"type":"subscribe"}``; it then gets the latest wave and every later one
(:class:`adapters.signals.SignalServer`). Binds 127.0.0.1 only.

Prints ``ws://127.0.0.1:PORT/signals`` on stdout once listening; progress on stderr.

Exit codes: 0 done (``--exit-after-last`` elapsed, or Ctrl-C), 1 file unreadable,
2 bad arguments.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

__all__ = ["register", "serve"]


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "signal-server", help="serve a JSON-lines signals file over WebSocket (loopback)"
    )
    parser.add_argument(
        "--replay", required=True, metavar="FILE", help="JSON-lines file of wave/signal messages"
    )
    parser.add_argument(
        "--port", type=int, default=0, help="TCP port on 127.0.0.1 (default 0: any free port)"
    )
    parser.add_argument(
        "--interval", type=float, default=None, help="seconds between waves (default 1.0)"
    )
    parser.add_argument(
        "--speed",
        type=float,
        default=None,
        help="replay speed: waves every 900/SPEED seconds (1 = real time)",
    )
    parser.add_argument(
        "--start-delay", type=float, default=0.0, help="seconds before the first wave (default 0)"
    )
    parser.add_argument(
        "--token-env",
        default=None,
        metavar="NAME",
        help="require 'Authorization: Bearer <token>' with the token from "
        "this environment variable",
    )
    parser.add_argument(
        "--restamp",
        action="store_true",
        help="rewrite timestamps to the current wave boundary when publishing",
    )
    parser.add_argument(
        "--exit-after-last",
        type=float,
        default=None,
        metavar="S",
        help="exit S seconds after the last wave (default: serve until Ctrl-C)",
    )
    parser.set_defaults(func=_run)


async def serve(args: argparse.Namespace, *, task_status: Any = None) -> int:
    """Run the server described by ``args``; ``task_status.started(port)`` once listening.

    Returns the exit code.
    """
    import trio

    from adapters.signals import SignalServer, load_waves

    try:
        waves = load_waves(args.replay)
    except OSError as exc:
        print(
            f"tradebot signal-server: cannot read {args.replay}: {exc.strerror or exc}",
            file=sys.stderr,
        )
        return 1
    interval = (
        args.interval if args.interval is not None else (900.0 / args.speed if args.speed else 1.0)
    )
    token = os.environ.get(args.token_env) if args.token_env else None
    server = SignalServer(
        waves,
        interval_s=interval,
        start_delay_s=args.start_delay,
        token=token,
        restamp=args.restamp,
        linger_s=args.exit_after_last,
    )
    async with trio.open_nursery() as nursery:
        port = await nursery.start(
            lambda task_status: server.serve(port=args.port, task_status=task_status)
        )
        print(f"ws://127.0.0.1:{port}/signals", flush=True)
        print(
            f"# serving {sum(len(w) for w in waves)} messages in {len(waves)} waves, "
            f"one every {interval:g} s",
            file=sys.stderr,
            flush=True,
        )
        if task_status is not None:
            task_status.started(port)
    return 0


def _run(args: argparse.Namespace) -> int:
    import trio

    if args.port < 0 or args.port > 65535:
        print("tradebot signal-server: --port must be in 0..65535", file=sys.stderr)
        return 2
    if (args.interval is not None and args.interval < 0) or (
        args.speed is not None and args.speed <= 0
    ):
        print("tradebot signal-server: --interval must be >= 0 and --speed > 0", file=sys.stderr)
        return 2
    if args.token_env and not os.environ.get(args.token_env):
        print(
            f"tradebot signal-server: environment variable {args.token_env} is not set",
            file=sys.stderr,
        )
        return 2
    try:
        return trio.run(serve, args)
    except KeyboardInterrupt:
        return 0
