"""Default Bybit v5 endpoints per environment (exchanges.md sections 7 and 8).

Config: ``exchange.environment`` picks a row; ``exchange.rest_url``,
``exchange.public_ws_url`` and ``exchange.private_ws_url`` override single URLs (e.g. the
loopback sandbox printed by ``tradebot sandbox --venue bybit``).
"""

from __future__ import annotations

import attrs

from tradebot.errors import ConfigError

__all__ = ["ENVIRONMENTS", "BybitUrls", "bybit_urls"]


@attrs.frozen
class BybitUrls:
    """Base URLs of one Bybit environment (linear category)."""

    rest_url: str
    public_ws_url: str
    private_ws_url: str


ENVIRONMENTS: dict[str, BybitUrls] = {
    "mainnet": BybitUrls(
        "https://api.bybit.com",
        "wss://stream.bybit.com/v5/public/linear",
        "wss://stream.bybit.com/v5/private",
    ),
    "testnet": BybitUrls(
        "https://api-testnet.bybit.com",
        "wss://stream-testnet.bybit.com/v5/public/linear",
        "wss://stream-testnet.bybit.com/v5/private",
    ),
    # Demo trading: own REST and private stream; public market data comes from mainnet.
    "demo": BybitUrls(
        "https://api-demo.bybit.com",
        "wss://stream.bybit.com/v5/public/linear",
        "wss://stream-demo.bybit.com/v5/private",
    ),
}


def bybit_urls(
    environment: str,
    *,
    rest_url: str | None = None,
    public_ws_url: str | None = None,
    private_ws_url: str | None = None,
) -> BybitUrls:
    """URLs for ``environment`` (mainnet | testnet | demo), with optional overrides.

    Raises:
        ConfigError: unknown environment (key ``exchange.environment``).
    """
    try:
        base = ENVIRONMENTS[environment]
    except KeyError:
        raise ConfigError(
            [
                (
                    "exchange.environment",
                    f"unknown Bybit environment {environment!r}; "
                    f"expected one of {sorted(ENVIRONMENTS)}",
                )
            ]
        ) from None
    return BybitUrls(
        rest_url or base.rest_url,
        public_ws_url or base.public_ws_url,
        private_ws_url or base.private_ws_url,
    )
