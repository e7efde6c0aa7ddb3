"""``tradebot sandbox --venue bybit|binance [--port N] [--data DIR] [--api-key K --api-secret S]``.

Runs the Bybit-v5-shaped or the Binance-USDⓈ-M-shaped sandbox (REST + public/private
WebSocket over the paper engine; Binance with the Algo Order API, listenKey user stream,
signature/recvWindow checks, request weights and 429/418) on 127.0.0.1, prints its base
URLs and the credentials it accepts, and plays the market data (bundled
``tradebot/data/market`` by default) so mark prices move. Point the bot, the
``instruments``/``watch`` commands, pybit or Binance's official SDK at the printed URLs.

Exit codes: 0 (Ctrl-C or ``--duration`` elapsed), 1 startup failure, 2 bad arguments.
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("sandbox", help="run a loopback exchange sandbox")
    parser.add_argument("--venue", choices=["bybit", "binance"], default="bybit")
    parser.add_argument("--port", type=int, default=0, help="REST port (0 = any free port)")
    parser.add_argument(
        "--ws-port",
        type=int,
        default=None,
        help="WebSocket port (default: --port + 1, or any free port)",
    )
    parser.add_argument(
        "--data",
        type=Path,
        default=None,
        help="market data directory (SYMBOL.csv.gz + instruments.json)",
    )
    parser.add_argument("--api-key", default=None, help="accepted API key (default: random)")
    parser.add_argument("--api-secret", default=None, help="accepted API secret (default: random)")
    parser.add_argument("--wallet-usdt", default="10000", help="starting USDT wallet")
    parser.add_argument(
        "--hedge-mode",
        action="store_true",
        help="start in hedge mode (Binance: dualSidePosition=true; default: one-way, like "
        "a fresh account)",
    )
    parser.add_argument(
        "--step-s",
        type=float,
        default=0.25,
        help="wall seconds per replayed price point (4 points per 1m candle)",
    )
    parser.add_argument("--duration", type=float, default=None, help="stop after N seconds")
    parser.add_argument("--json", action="store_true", help="print the endpoints as JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import trio

    from adapters.replay import ReplayDataError

    if (args.api_secret and not args.api_key) or (args.api_key and not args.api_secret):
        print("--api-key and --api-secret go together", file=sys.stderr)
        return 2
    if args.step_s <= 0:
        print("--step-s must be > 0", file=sys.stderr)
        return 2
    try:
        wallet = Decimal(args.wallet_usdt)
    except InvalidOperation:
        print("--wallet-usdt must be a decimal number", file=sys.stderr)
        return 2
    key = args.api_key or f"sandbox-{secrets.token_hex(6)}"
    secret = args.api_secret or secrets.token_hex(16)
    ws_port = args.ws_port if args.ws_port is not None else (args.port + 1 if args.port else 0)

    async def main() -> None:
        await _serve(args, key, secret, wallet, ws_port)

    try:
        trio.run(main)
    except KeyboardInterrupt:
        return 0
    except (OSError, ReplayDataError, ValueError) as exc:
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0


_TITLES = {
    "bybit": (
        "Bybit v5 sandbox (paper engine) on loopback",
        'config: [exchange] venue = "bybit", rest_url / ws_public_url / ws_private_url as '
        "above; key and secret via the env vars named in config",
    ),
    "binance": (
        "Binance USD-M futures sandbox (paper engine, Algo Order API) on loopback",
        'config: [exchange] venue = "binance", rest_url / ws_public_url (market streams) / '
        "ws_private_url (user data) as above; key and secret via the env vars named in "
        "config. Official SDK: ConfigurationRestAPI(base_path=rest_url), "
        "ConfigurationWebSocketStreams(stream_url=<ws base without /market>)",
    ),
}


async def _serve(
    args: argparse.Namespace, key: str, secret: str, wallet: Decimal, ws_port: int
) -> None:
    import trio

    opener: Any
    player: Any
    if args.venue == "binance":
        from adapters.binance_sandbox import open_binance_sandbox as opener
        from adapters.binance_sandbox import play_market_data as player
        from adapters.binance_sandbox import sandbox_engine
    else:
        from adapters.bybit_sandbox import open_bybit_sandbox as opener
        from adapters.bybit_sandbox import play_market_data as player
        from adapters.bybit_sandbox import sandbox_engine  # type: ignore[no-redef]

    engine = sandbox_engine(data_dir=args.data, wallet_usdt=wallet)
    async with opener(
        engine,
        rest_port=args.port,
        ws_port=ws_port,
        api_key=key,
        api_secret=secret,
        hedge_mode=args.hedge_mode,
    ) as sb:
        info = {
            "venue": args.venue,
            "rest_url": sb.rest_url,
            "public_ws_url": getattr(sb, "market_ws_url", None) or sb.public_ws_url,
            "private_ws_url": sb.private_ws_url,
            "api_key": key,
            "api_secret": secret,
            "symbols": sorted(engine.instruments()),
        }
        title, hint = _TITLES[args.venue]
        if args.json:
            print(json.dumps(info), flush=True)
        else:
            print(title, flush=True)
            for k in ("rest_url", "public_ws_url", "private_ws_url", "api_key", "api_secret"):
                print(f"  {k:<15} {info[k]}", flush=True)
            print(f"  symbols         {', '.join(info['symbols'])}", flush=True)
            print(hint, flush=True)
        with trio.move_on_after(args.duration if args.duration else float("inf")):
            await player(sb, data_dir=args.data, step_interval_s=args.step_s)
