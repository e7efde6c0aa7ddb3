"""Bybit v5 (linear USDT perpetuals, hedge mode) adapter.

Front door::

    from adapters.bybit import BybitVenue, bybit_urls
    async with BybitVenue(bybit_urls("testnet"), key, secret, journal=journal) as venue: ...
"""

from adapters.bybit.budget import EndpointBudgets as EndpointBudgets
from adapters.bybit.budget import Priority as Priority
from adapters.bybit.budget import RateBudget as RateBudget
from adapters.bybit.factory import read_credentials as read_credentials
from adapters.bybit.factory import venue_from_config as venue_from_config
from adapters.bybit.http import BybitHttp as BybitHttp
from adapters.bybit.http import ServerClock as ServerClock
from adapters.bybit.urls import BybitUrls as BybitUrls
from adapters.bybit.urls import bybit_urls as bybit_urls
from adapters.bybit.venue import BYBIT_CAPABILITIES as BYBIT_CAPABILITIES
from adapters.bybit.venue import BybitVenue as BybitVenue
from adapters.bybit.ws import StreamSettings as StreamSettings
from adapters.bybit.ws import TickerCache as TickerCache

__all__ = [
    "BYBIT_CAPABILITIES",
    "BybitHttp",
    "BybitUrls",
    "BybitVenue",
    "EndpointBudgets",
    "Priority",
    "RateBudget",
    "ServerClock",
    "StreamSettings",
    "TickerCache",
    "bybit_urls",
    "read_credentials",
    "venue_from_config",
]
