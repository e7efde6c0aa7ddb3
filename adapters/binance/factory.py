"""Build a :class:`BinanceVenue` from the ``[exchange]`` config section and the environment.

Secrets never live in config: the config names the environment variables that hold the API
key and secret (docs/ARCHITECTURE.md §10), and they are read here, once, and never logged.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from adapters.binance.urls import binance_urls
from adapters.binance.venue import BinanceVenue
from adapters.bybit.factory import read_credentials  # venue-neutral: env var names → secrets
from tradebot.errors import ConfigError
from tradebot.events import JournalPort
from tradebot.ports import Clock

__all__ = ["read_credentials", "venue_from_config"]


def _get(section: Any, name: str, default: Any = None) -> Any:
    if isinstance(section, Mapping):
        return section.get(name, default)
    return getattr(section, name, default)


def venue_from_config(
    exchange: Any,
    *,
    journal: JournalPort | None = None,
    clock: Clock | None = None,
    environ: Mapping[str, str] | None = None,
    require_credentials: bool = True,
) -> BinanceVenue:
    """A :class:`BinanceVenue` for config section ``exchange``.

    ``exchange`` is :class:`tradebot.config.ExchangeConfig` or a mapping with the same
    keys: ``venue`` (must be ``"binance"``), ``environment`` (mainnet | testnet | demo,
    default testnet), optional URL overrides ``rest_url`` / ``ws_public_url`` (the
    market-stream base) / ``ws_private_url`` (the user-data base), ``api_key_env`` /
    ``api_secret_env`` (default ``TRADEBOT_API_KEY`` / ``TRADEBOT_API_SECRET``),
    ``recv_window_ms`` (5000, at most 60000), ``request_timeout_s`` (10),
    ``price_protect`` (False), ``margin_type`` (CROSSED | ISOLATED, default CROSSED).

    Raises:
        ConfigError: wrong venue, unknown environment, bad recv window or margin type,
            missing credentials.
    """
    venue = _get(exchange, "venue", "binance")
    if venue != "binance":
        raise ConfigError([("exchange.venue", f"expected 'binance', got {venue!r}")])
    urls = binance_urls(
        _get(exchange, "environment", None) or "testnet",
        rest_url=_get(exchange, "rest_url", None) or None,
        market_ws_url=_get(exchange, "ws_public_url", None) or None,
        private_ws_url=_get(exchange, "ws_private_url", None) or None,
    )
    recv = int(_get(exchange, "recv_window_ms", None) or 5000)
    if not 0 < recv <= 60_000:
        raise ConfigError(
            [("exchange.recv_window_ms", f"must be in 1..60000 (Binance), got {recv}")]
        )
    margin = str(_get(exchange, "margin_type", None) or "CROSSED").upper()
    if margin not in ("CROSSED", "ISOLATED"):
        raise ConfigError(
            [("exchange.margin_type", f"expected CROSSED or ISOLATED, got {margin!r}")]
        )
    key = secret = ""
    if require_credentials:
        key, secret = read_credentials(
            _get(exchange, "api_key_env", None) or "TRADEBOT_API_KEY",
            _get(exchange, "api_secret_env", None) or "TRADEBOT_API_SECRET",
            environ,
        )
    return BinanceVenue(
        urls,
        key,
        secret,
        journal=journal,
        clock=clock,
        recv_window_ms=recv,
        timeout_s=float(_get(exchange, "request_timeout_s", None) or 10.0),
        price_protect=bool(_get(exchange, "price_protect", False)),
        margin_type=margin,
    )
