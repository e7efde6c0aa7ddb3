"""Which venue a public-data command (``instruments``, ``watch``) talks to.

``--venue bybit|binance`` wins, then ``exchange.venue`` of ``--config FILE``, then Bybit.
Endpoints: for Bybit see :mod:`tradebot.cli._bybit_common`; for Binance the same flags and
keys apply — ``--rest-url`` / ``exchange.rest_url``, ``--public-ws-url`` /
``exchange.ws_public_url`` (the market-stream base, e.g. the sandbox's
``ws://127.0.0.1:PORT/market``), ``--private-ws-url`` / ``exchange.ws_private_url``, and
``--environment`` / ``exchange.environment`` (testnet when neither is given: never
mainnet by accident).
"""

from __future__ import annotations

import argparse
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tradebot.cli._bybit_common import resolve_bybit_urls
from tradebot.errors import ConfigError

__all__ = ["VENUES", "add_venue_argument", "public_venue_factory"]

VENUES = ("bybit", "binance")


def add_venue_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--venue",
        choices=VENUES,
        default=None,
        help="exchange (exchange.venue of --config); default bybit",
    )


def _exchange_table(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError([(str(path), f"cannot read config: {exc}")]) from None
    table = data.get("exchange", {})
    if not isinstance(table, dict):
        raise ConfigError([("exchange", "must be a table")])
    for key in ("venue", "environment", "rest_url", "ws_public_url", "ws_private_url"):
        if key in table and not isinstance(table[key], str):
            raise ConfigError([(f"exchange.{key}", "must be a string")])
    return table


def public_venue_factory(args: argparse.Namespace) -> tuple[str, str, Callable[[], Any]]:
    """``(venue, rest_url, make)``: ``make()`` builds an unauthenticated venue adapter (call
    it inside ``trio.run``; use it as an async context manager).

    Raises:
        ConfigError: unreadable config, unknown venue or environment.
    """
    table = _exchange_table(getattr(args, "config", None))
    venue = getattr(args, "venue", None) or table.get("venue") or "bybit"
    if venue not in VENUES:
        raise ConfigError([("exchange.venue", f"expected one of {list(VENUES)}, got {venue!r}")])
    if venue == "bybit":
        from adapters.bybit import BybitVenue

        bybit = resolve_bybit_urls(args)
        return venue, bybit.rest_url, lambda: BybitVenue(bybit)
    from adapters.binance import BinanceVenue, binance_urls

    urls = binance_urls(
        args.environment or table.get("environment") or "testnet",
        rest_url=args.rest_url or table.get("rest_url") or None,
        market_ws_url=args.public_ws_url or table.get("ws_public_url") or None,
        private_ws_url=args.private_ws_url or table.get("ws_private_url") or None,
    )
    return venue, urls.rest_url, lambda: BinanceVenue(urls)
