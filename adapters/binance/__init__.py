"""Binance USDⓈ-M Futures (USDT perpetuals, hedge mode, Algo Order API) adapter.

Front door::

    from adapters.binance import BinanceVenue, binance_urls
    async with BinanceVenue(binance_urls("testnet"), key, secret, journal=journal) as venue: ...
"""

from adapters.binance.budget import BudgetLimits as BudgetLimits
from adapters.binance.budget import Priority as Priority
from adapters.binance.budget import RequestBudget as RequestBudget
from adapters.binance.errors import ERROR_CODES as ERROR_CODES
from adapters.binance.errors import error_for as error_for
from adapters.binance.factory import read_credentials as read_credentials
from adapters.binance.factory import venue_from_config as venue_from_config
from adapters.binance.http import BinanceHttp as BinanceHttp
from adapters.binance.http import Security as Security
from adapters.binance.http import ServerClock as ServerClock
from adapters.binance.urls import BinanceUrls as BinanceUrls
from adapters.binance.urls import binance_urls as binance_urls
from adapters.binance.venue import BINANCE_CAPABILITIES as BINANCE_CAPABILITIES
from adapters.binance.venue import BinanceVenue as BinanceVenue
from adapters.binance.ws import MarkCache as MarkCache
from adapters.binance.ws import StreamSettings as StreamSettings

__all__ = [
    "BINANCE_CAPABILITIES",
    "ERROR_CODES",
    "BinanceHttp",
    "BinanceUrls",
    "BinanceVenue",
    "BudgetLimits",
    "MarkCache",
    "Priority",
    "RequestBudget",
    "Security",
    "ServerClock",
    "StreamSettings",
    "binance_urls",
    "error_for",
    "read_credentials",
    "venue_from_config",
]
