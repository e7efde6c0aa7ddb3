"""Bybit-v5-shaped sandbox (REST + public/private WebSocket on loopback) over the paper
engine. Front door::

    from adapters.bybit_sandbox import open_bybit_sandbox, sandbox_engine
    async with open_bybit_sandbox(sandbox_engine(), api_key="k", api_secret="s") as sb:
        sb.rest_url, sb.public_ws_url, sb.private_ws_url
"""

from adapters.bybit_sandbox._player import play_market_data as play_market_data
from adapters.bybit_sandbox._player import sandbox_engine as sandbox_engine
from adapters.bybit_sandbox._server import DEFAULT_RATE_LIMITS as DEFAULT_RATE_LIMITS
from adapters.bybit_sandbox._server import BybitSandbox as BybitSandbox
from adapters.bybit_sandbox._server import Fault as Fault
from adapters.bybit_sandbox._server import LoggedRequest as LoggedRequest
from adapters.bybit_sandbox._server import open_bybit_sandbox as open_bybit_sandbox

__all__ = [
    "DEFAULT_RATE_LIMITS",
    "BybitSandbox",
    "Fault",
    "LoggedRequest",
    "open_bybit_sandbox",
    "play_market_data",
    "sandbox_engine",
]
