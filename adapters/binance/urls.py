"""Default Binance USDⓈ-M Futures endpoints per environment (exchanges.md sections 7 and 8).

Since the 2026 WebSocket URL split, market data (``markPrice``, klines, tickers) is served
under ``wss://fstream.binance.com/market``, book data under ``/public`` and the user-data
stream under ``/private``. The official SDK (``binance-sdk-derivatives-trading-usds-futures``)
connects ``<base>/market/stream`` and ``<base>/private/stream`` and subscribes with
``{"method": "SUBSCRIBE", ...}``; the adapter does the same.

Config: ``exchange.environment`` picks a row; ``exchange.rest_url``,
``exchange.ws_public_url`` (the market-stream base) and ``exchange.ws_private_url`` (the
user-data base) override single URLs, e.g. the loopback sandbox printed by
``tradebot sandbox --venue binance``.

Unverified: the testnet/demo stream hosts after the URL split (the SDKs disagree on the
demo market-stream host, exchanges.md section 8); the rows below follow the official SDK's
constants with the ``/market`` and ``/private`` paths appended.
"""

from __future__ import annotations

import attrs

from tradebot.errors import ConfigError

__all__ = ["ENVIRONMENTS", "BinanceUrls", "binance_urls"]


@attrs.frozen
class BinanceUrls:
    """Base URLs of one Binance USDⓈ-M environment.

    Attributes:
        rest_url: REST base, e.g. ``https://fapi.binance.com``.
        market_ws_url: market-stream base; the adapter connects ``<market_ws_url>/stream``.
        private_ws_url: user-data-stream base; the adapter connects
            ``<private_ws_url>/stream`` and subscribes the listenKey.
    """

    rest_url: str
    market_ws_url: str
    private_ws_url: str


ENVIRONMENTS: dict[str, BinanceUrls] = {
    "mainnet": BinanceUrls(
        "https://fapi.binance.com",
        "wss://fstream.binance.com/market",
        "wss://fstream.binance.com/private",
    ),
    "testnet": BinanceUrls(
        "https://testnet.binancefuture.com",
        "wss://fstream.binancefuture.com/market",
        "wss://fstream.binancefuture.com/private",
    ),
    "demo": BinanceUrls(
        "https://demo-fapi.binance.com",
        "wss://fstream.binancefuture.com/market",
        "wss://fstream.binancefuture.com/private",
    ),
}


def binance_urls(
    environment: str,
    *,
    rest_url: str | None = None,
    market_ws_url: str | None = None,
    private_ws_url: str | None = None,
) -> BinanceUrls:
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
                    f"unknown Binance environment {environment!r}; "
                    f"expected one of {sorted(ENVIRONMENTS)}",
                )
            ]
        ) from None
    return BinanceUrls(
        (rest_url or base.rest_url).rstrip("/"),
        (market_ws_url or base.market_ws_url).rstrip("/"),
        (private_ws_url or base.private_ws_url).rstrip("/"),
    )
