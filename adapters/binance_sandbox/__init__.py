"""Binance-USDⓈ-M-shaped sandbox (REST + market/user-data WebSocket on loopback) over the
paper engine, with the Algo Order API. Front door::

    from adapters.binance_sandbox import open_binance_sandbox, sandbox_engine
    async with open_binance_sandbox(sandbox_engine(), api_key="k", api_secret="s") as sb:
        sb.rest_url, sb.market_ws_url, sb.private_ws_url
"""

from adapters.binance_sandbox._player import play_market_data as play_market_data
from adapters.binance_sandbox._player import sandbox_engine as sandbox_engine
from adapters.binance_sandbox._server import BinanceSandbox as BinanceSandbox
from adapters.binance_sandbox._server import Fault as Fault
from adapters.binance_sandbox._server import LoggedRequest as LoggedRequest
from adapters.binance_sandbox._server import open_binance_sandbox as open_binance_sandbox

__all__ = [
    "BinanceSandbox",
    "Fault",
    "LoggedRequest",
    "open_binance_sandbox",
    "play_market_data",
    "sandbox_engine",
]
