"""Shared options of the Bybit user commands (``instruments``, ``watch``).

Endpoints come from config and flags, flags winning: ``[exchange]`` of ``--config FILE``
(``venue = "bybit"``, ``environment`` = mainnet | testnet | demo, optional ``rest_url``,
``ws_public_url``, ``ws_private_url``), then ``--environment`` / ``--rest-url`` /
``--public-ws-url`` / ``--private-ws-url``. Without either, testnet is used (never
mainnet by accident).
"""

from __future__ import annotations

import argparse
import tomllib
from pathlib import Path
from typing import Any

from tradebot.errors import ConfigError

__all__ = ["add_exchange_arguments", "resolve_bybit_urls"]


def add_exchange_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("exchange endpoint (flags override --config)")
    g.add_argument("--config", type=Path, help="config.toml to read [exchange] from")
    g.add_argument(
        "--environment",
        choices=["mainnet", "testnet", "demo"],
        help="default URLs (exchange.environment); default testnet",
    )
    g.add_argument("--rest-url", help="REST base URL (exchange.rest_url), e.g. the sandbox's")
    g.add_argument("--public-ws-url", help="public stream URL (exchange.ws_public_url)")
    g.add_argument("--private-ws-url", help="private stream URL (exchange.ws_private_url)")


def _exchange_table(path: Path) -> dict[str, Any]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError([(str(path), f"cannot read config: {exc}")]) from None
    table = data.get("exchange", {})
    if not isinstance(table, dict):
        raise ConfigError([("exchange", "must be a table")])
    venue = table.get("venue", "bybit")
    if venue != "bybit":
        raise ConfigError(
            [("exchange.venue", f"this command talks to Bybit; config says {venue!r}")]
        )
    return table


def resolve_bybit_urls(args: argparse.Namespace) -> Any:
    """The :class:`adapters.bybit.BybitUrls` for the command.

    Raises:
        ConfigError: unreadable config, another venue, unknown environment.
    """
    from adapters.bybit import bybit_urls

    table: dict[str, Any] = _exchange_table(args.config) if args.config else {}
    for key in (
        "environment",
        "rest_url",
        "ws_public_url",
        "ws_private_url",
        "public_ws_url",
        "private_ws_url",
    ):
        if key in table and not isinstance(table[key], str):
            raise ConfigError([(f"exchange.{key}", "must be a string")])
    env = args.environment or table.get("environment") or "testnet"
    return bybit_urls(
        env,
        rest_url=args.rest_url or table.get("rest_url") or None,
        public_ws_url=args.public_ws_url
        or table.get("ws_public_url")
        or table.get("public_ws_url")
        or None,
        private_ws_url=args.private_ws_url
        or table.get("ws_private_url")
        or table.get("private_ws_url")
        or None,
    )
