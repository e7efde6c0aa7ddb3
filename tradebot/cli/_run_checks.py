"""``tradebot run``'s checks before the venue is called: environment, clock, schema.

Owns the venue URLs the adapter will use (:func:`_venue_urls`, from the adapters' own
tables), the wrong-environment check of URL overrides (:func:`check_environment`: keys of
one environment never work on another), the rehearsal clock offset
(:data:`CLOCK_OFFSET_ENV`, honoured only for a loopback sandbox) and the schema check
(:func:`check_schema`: refuse a schema older than the code). Each raises
:class:`tradebot.errors.ConfigError` (exit 2) or :class:`StartupFailed` (exit 1).
"""

from __future__ import annotations

import ipaddress
import os
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from tradebot.cli._run_steps import EXIT_RUNTIME, StartupFailed
from tradebot.clock import WallClock
from tradebot.config import Config
from tradebot.errors import ConfigError

__all__ = ["CLOCK_OFFSET_ENV", "check_environment", "check_schema"]

CLOCK_OFFSET_ENV = "TRADEBOT_CLOCK_OFFSET_S"
"""Rehearsal/test seam: shift the bot's clock (wave timing, journal times) by this many
seconds. Honoured only when every exchange and signal URL is a loopback address (a
sandbox), refused otherwise (exit 2)."""


class _OffsetClock:
    """The wall clock shifted by ``offset_s`` (:data:`CLOCK_OFFSET_ENV`)."""

    def __init__(self, offset_s: float) -> None:
        self._offset = timedelta(seconds=offset_s)

    def now(self) -> datetime:
        return datetime.now(UTC) + self._offset


def _is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _venue_urls(cfg: Config) -> dict[str, str]:
    """``{config key: URL}`` the venue adapter will use (overrides, else the standard
    URLs of ``exchange.environment``)."""
    ex = cfg.exchange
    if ex.venue == "bybit":
        from adapters.bybit import bybit_urls

        b = bybit_urls(
            ex.environment,
            rest_url=ex.rest_url or None,
            public_ws_url=ex.ws_public_url or None,
            private_ws_url=ex.ws_private_url or None,
        )
        return {
            "exchange.rest_url": b.rest_url,
            "exchange.ws_public_url": b.public_ws_url,
            "exchange.ws_private_url": b.private_ws_url,
        }
    from adapters.binance import binance_urls

    n = binance_urls(
        ex.environment,
        rest_url=ex.rest_url or None,
        market_ws_url=ex.ws_public_url or None,
        private_ws_url=ex.ws_private_url or None,
    )
    return {
        "exchange.rest_url": n.rest_url,
        "exchange.ws_public_url": n.market_ws_url,
        "exchange.ws_private_url": n.private_ws_url,
    }


def _standard_hosts(venue: str) -> dict[str, set[str]]:
    """environment → the hosts of its standard URLs (from the adapters' own tables)."""
    out: dict[str, set[str]] = {}
    for env in ("mainnet", "testnet", "demo"):
        if venue == "bybit":
            from adapters.bybit import bybit_urls

            b = bybit_urls(env)
            urls = [b.rest_url, b.public_ws_url, b.private_ws_url]
        else:
            from adapters.binance import binance_urls

            n = binance_urls(env)
            urls = [n.rest_url, n.market_ws_url, n.private_ws_url]
        out[env] = {urlsplit(u).hostname or "" for u in urls}
    return out


def check_environment(cfg: Config) -> None:
    """Refuse a URL override that is another environment's standard host (keys of one
    environment never work on another; mixing them is a wrong environment, named as such).

    Raises:
        ConfigError: ``exchange.<url key>: ... is the <env> URL but exchange.environment is
            <env>``.
    """
    ex = cfg.exchange
    hosts = _standard_hosts(ex.venue)
    mine = hosts.get(ex.environment, set())
    problems: list[tuple[str, str]] = []
    for key, url in (
        ("exchange.rest_url", ex.rest_url),
        ("exchange.ws_public_url", ex.ws_public_url),
        ("exchange.ws_private_url", ex.ws_private_url),
    ):
        host = urlsplit(url).hostname if url else None
        if not host or host in mine:
            continue
        for env, env_hosts in hosts.items():
            if env != ex.environment and host in env_hosts:
                problems.append(
                    (
                        key,
                        f"wrong environment: {url} is the {ex.venue} {env} URL but "
                        f"exchange.environment is {ex.environment!r}",
                    )
                )
    if problems:
        raise ConfigError(problems)


def _clock(cfg: Config) -> Any:
    raw = os.environ.get(CLOCK_OFFSET_ENV, "").strip()
    if not raw:
        return WallClock()
    urls = [*_venue_urls(cfg).values(), cfg.signals.url]
    if not all(_is_loopback(u) for u in urls):
        raise ConfigError(
            [(CLOCK_OFFSET_ENV, "only for a loopback sandbox: every exchange and signal URL")]
        )
    try:
        return _OffsetClock(float(raw))
    except ValueError:
        raise ConfigError([(CLOCK_OFFSET_ENV, f"not a number of seconds: {raw!r}")]) from None


def check_schema(dsn: str) -> str:
    """The schema's state, or raise.

    Returns:
        a one-line description (``schema version N (M migrations)``).

    Raises:
        StartupFailed: a migration of this code is not applied (older schema), or an
            applied one differs from its file.
    """
    from adapters.postgres.migrations import migration_status

    states = migration_status(dsn)
    pending = [s for s in states if s.file_present and s.applied_at is None]
    changed = [s for s in states if s.applied_at is not None and not s.checksum_ok]
    applied = [s.version for s in states if s.applied_at is not None]
    newest = max(applied, default=0)
    if pending:
        names = ", ".join(f"{s.version:04d}_{s.name}" for s in pending)
        raise StartupFailed(
            "schema",
            EXIT_RUNTIME,
            f"the database schema (version {newest}) is older than this code: {names} not "
            "applied; run `tradebot db migrate --config CONFIG` first",
        )
    if changed:
        names = ", ".join(f"{s.version:04d}_{s.name}" for s in changed)
        raise StartupFailed(
            "schema",
            EXIT_RUNTIME,
            f"applied migrations differ from this code's files: {names}",
        )
    extra = [s.version for s in states if not s.file_present]
    note = f"; {len(extra)} newer migration(s) unknown to this code" if extra else ""
    return f"schema version {newest} ({len(applied)} migrations){note}"
