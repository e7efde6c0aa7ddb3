"""``tradebot instruments [--venue bybit|binance] [--symbol S] [--json]``: instrument rules.

Reads Bybit ``/v5/market/instruments-info`` (linear, all pages) or Binance USDⓈ-M
``/fapi/v1/exchangeInfo`` (USDT perpetuals; tick from PRICE_FILTER, step/min qty valid for
LOT_SIZE and MARKET_LOT_SIZE, MIN_NOTIONAL) from the configured endpoint (mainnet, testnet,
demo or the sandbox) — a connectivity and metadata check before trading.
``--json`` prints an array of ``{"symbol", "tick_size", "qty_step", "min_qty",
"min_notional", "status"}`` with decimals as strings.

Exit codes: 0, 1 venue/network failure or unknown symbol, 2 bad arguments/config.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from tradebot.cli._bybit_common import add_exchange_arguments
from tradebot.cli._venue import add_venue_argument, public_venue_factory


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "instruments", help="instrument rules (tick, step, min qty/notional)"
    )
    parser.add_argument("--symbol", help="only this symbol, e.g. BTCUSDT")
    parser.add_argument("--json", action="store_true", help="JSON array instead of a table")
    add_venue_argument(parser)
    add_exchange_arguments(parser)
    parser.set_defaults(func=run)


def instrument_rows(instruments: Any, symbol: str | None) -> list[dict[str, str]]:
    rows = []
    for sym in sorted(instruments):
        if symbol and sym != symbol:
            continue
        i = instruments[sym]
        rows.append(
            {
                "symbol": i.symbol,
                "tick_size": str(i.tick_size),
                "qty_step": str(i.qty_step),
                "min_qty": str(i.min_qty),
                "min_notional": str(i.min_notional),
                "status": i.status.value,
            }
        )
    return rows


def run(args: argparse.Namespace) -> int:
    import trio

    from tradebot.errors import ConfigError, VenueError

    try:
        _, rest_url, make_venue = public_venue_factory(args)
    except ConfigError as exc:
        for key, reason in exc.problems:
            print(f"{key}: {reason}", file=sys.stderr)
        return 2

    async def fetch() -> Any:
        async with make_venue() as venue:
            return await venue.refresh_instruments()

    try:
        instruments = trio.run(fetch)
    except VenueError as exc:
        print(f"error: {rest_url}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    symbol = args.symbol.strip().upper() if args.symbol else None
    rows = instrument_rows(instruments, symbol)
    if symbol and not rows:
        print(f"error: no linear USDT instrument {symbol!r} at {rest_url}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    cols = ["symbol", "tick_size", "qty_step", "min_qty", "min_notional", "status"]
    widths = {c: max([len(c), *(len(r[c]) for r in rows)]) for c in cols}
    print("  ".join(c.ljust(widths[c]) for c in cols))
    for r in rows:
        print("  ".join(r[c].ljust(widths[c]) for c in cols))
    print(f"{len(rows)} instrument(s) from {rest_url}", file=sys.stderr)
    return 0
