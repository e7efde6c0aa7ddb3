"""``tradebot watch [--venue bybit|binance] --symbols A,B [--json] [--duration S]``: live
mark prices.

Subscribes to Bybit ``tickers.{symbol}`` or Binance ``<symbol>@markPrice@1s`` on the
configured public/market stream (mainnet, testnet, demo or the sandbox) and prints every
mark-price update; ``--json`` prints JSON lines ``{"symbol", "mark_price", "ts"}`` (mark
as a decimal string, ts ISO-8601 UTC). Symbols are checked against the venue's instrument
list first (REST). Reconnects are reported
on stderr. Stops after ``--duration`` seconds or on Ctrl-C.

Exit codes: 0, 1 stream failure or unknown symbol, 2 bad arguments/config.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from tradebot.cli._bybit_common import add_exchange_arguments
from tradebot.cli._venue import add_venue_argument, public_venue_factory


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("watch", help="live mark prices of symbols")
    parser.add_argument("--symbols", required=True, help="comma-separated, e.g. BTCUSDT,ETHUSDT")
    parser.add_argument("--json", action="store_true", help="JSON lines instead of text")
    parser.add_argument(
        "--duration",
        type=float,
        default=None,
        help="stop after this many seconds (default: run until Ctrl-C)",
    )
    add_venue_argument(parser)
    add_exchange_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import trio

    from tradebot.errors import ConfigError, VenueError
    from tradebot.ports import MarketEvent, MarkPrice, StreamGap

    try:
        _, rest_url, make_venue = public_venue_factory(args)
    except ConfigError as exc:
        for key, reason in exc.problems:
            print(f"{key}: {reason}", file=sys.stderr)
        return 2
    symbols = [s.strip().upper() for s in args.symbols.split(",") if s.strip()]
    if not symbols:
        print("--symbols: give at least one symbol", file=sys.stderr)
        return 2
    if args.duration is not None and args.duration <= 0:
        print("--duration: must be > 0", file=sys.stderr)
        return 2

    async def emit(event: MarketEvent) -> None:
        if isinstance(event, StreamGap):
            print(f"# stream reconnected: {event.reason}", file=sys.stderr, flush=True)
        elif isinstance(event, MarkPrice):
            if args.json:
                print(
                    json.dumps(
                        {
                            "symbol": event.symbol,
                            "mark_price": str(event.mark_price),
                            "ts": event.ts.isoformat(),
                        }
                    ),
                    flush=True,
                )
            else:
                print(f"{event.ts.isoformat()}  {event.symbol:<12} {event.mark_price}", flush=True)

    unknown: list[str] = []

    async def main() -> None:
        async with make_venue() as venue:
            known = await venue.instruments()
            unknown.extend(s for s in symbols if s not in known)
            if unknown:
                return
            with trio.move_on_after(args.duration if args.duration else float("inf")):
                await venue.run_market_stream(symbols, emit)

    try:
        trio.run(main)
    except VenueError as exc:
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    if unknown:
        print(
            f"error: no linear USDT instrument {', '.join(unknown)} at {rest_url}",
            file=sys.stderr,
        )
        return 1
    return 0
