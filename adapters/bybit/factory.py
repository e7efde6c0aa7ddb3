"""Build a :class:`BybitVenue` from the ``[exchange]`` config section and the environment.

Secrets never live in config: the config names the environment variables that hold the API
key and secret (docs/ARCHITECTURE.md §10), and they are read here, once, and never logged.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from adapters.bybit.urls import bybit_urls
from adapters.bybit.venue import BybitVenue
from tradebot.errors import ConfigError
from tradebot.events import JournalPort
from tradebot.ports import Clock

__all__ = ["read_credentials", "venue_from_config"]


def _get(section: Any, name: str, default: Any = None) -> Any:
    if isinstance(section, Mapping):
        return section.get(name, default)
    return getattr(section, name, default)


def read_credentials(
    key_env: str, secret_env: str, environ: Mapping[str, str] | None = None
) -> tuple[str, str]:
    """``(api_key, api_secret)`` from the named environment variables.

    Raises:
        ConfigError: a variable is unset or empty (names the config key, never a value).
    """
    env = os.environ if environ is None else environ
    key, secret = env.get(key_env, ""), env.get(secret_env, "")
    problems = []
    if not key:
        problems.append(("exchange.api_key_env", f"environment variable {key_env} is not set"))
    if not secret:
        problems.append(
            ("exchange.api_secret_env", f"environment variable {secret_env} is not set")
        )
    if problems:
        raise ConfigError(problems)
    return key, secret


def venue_from_config(
    exchange: Any,
    *,
    journal: JournalPort | None = None,
    clock: Clock | None = None,
    environ: Mapping[str, str] | None = None,
    require_credentials: bool = True,
) -> BybitVenue:
    """A :class:`BybitVenue` for config section ``exchange``.

    ``exchange`` is :class:`tradebot.config.ExchangeConfig` or a mapping with the same
    keys: ``venue`` (must be ``"bybit"``), ``environment`` (mainnet | testnet | demo,
    default testnet), optional URL overrides ``rest_url`` / ``ws_public_url`` /
    ``ws_private_url`` (the spellings ``public_ws_url`` / ``private_ws_url`` are accepted
    too), ``api_key_env`` / ``api_secret_env`` (default ``TRADEBOT_API_KEY`` /
    ``TRADEBOT_API_SECRET``), ``recv_window_ms`` (5000), ``request_timeout_s`` (10),
    ``order_lookup_window_s`` (10: how long a lookup by client id keeps looking for an
    order of unknown outcome, from its submission) and ``protective_retry_s`` (10: the retry
    budget of stop moves and closes on retryable answers); see :class:`BybitVenue`.

    Raises:
        ConfigError: wrong venue, unknown environment, missing credentials.
    """
    venue = _get(exchange, "venue", "bybit")
    if venue != "bybit":
        raise ConfigError([("exchange.venue", f"expected 'bybit', got {venue!r}")])
    public = _get(exchange, "ws_public_url", None) or _get(exchange, "public_ws_url", None)
    private = _get(exchange, "ws_private_url", None) or _get(exchange, "private_ws_url", None)
    urls = bybit_urls(
        _get(exchange, "environment", None) or "testnet",
        rest_url=_get(exchange, "rest_url", None) or None,
        public_ws_url=public or None,
        private_ws_url=private or None,
    )
    key = secret = ""
    if require_credentials:
        key, secret = read_credentials(
            _get(exchange, "api_key_env", None) or "TRADEBOT_API_KEY",
            _get(exchange, "api_secret_env", None) or "TRADEBOT_API_SECRET",
            environ,
        )
    recv = int(_get(exchange, "recv_window_ms", None) or 5000)
    timeout_s = float(_get(exchange, "request_timeout_s", None) or 10.0)
    lookup_s = _get(exchange, "order_lookup_window_s", None)
    protective_s = _get(exchange, "protective_retry_s", None)
    try:
        return BybitVenue(
            urls,
            key,
            secret,
            journal=journal,
            clock=clock,
            recv_window_ms=recv,
            timeout_s=timeout_s,
            order_lookup_window_s=10.0 if lookup_s is None else float(lookup_s),
            protective_retry_s=10.0 if protective_s is None else float(protective_s),
        )
    except ValueError as exc:
        raise ConfigError([("exchange", str(exc))]) from None
