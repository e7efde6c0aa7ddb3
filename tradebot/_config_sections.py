"""The config-only sections of ``config.toml`` (``[bot]``, ``[exchange]``, ``[database]``,
``[journal]``, ``[health]``, ``[alerts]``, ``[paper]``, ``[logging]``): one attrs record
each, every field with its default, unit and valid range (:mod:`tradebot.bounds`). The
sections that configure policies are the policies' own settings records; the whole
configuration is :class:`tradebot.config.Config`."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any, Literal

import attrs

from tradebot._config_structure import LEVERAGE, Leverage
from tradebot.bounds import (
    CrossFieldError,
    FieldValueError,
    decimal_field,
    env_var_name,
    int_field,
    number_field,
    setting,
    url,
)

__all__ = [
    "AlertsConfig",
    "BotConfig",
    "DatabaseConfig",
    "ExchangeConfig",
    "HealthConfig",
    "JournalConfig",
    "LoggingConfig",
    "PaperConfig",
]


_ACCOUNT = re.compile(r"[A-Za-z0-9_.-]{1,32}")
_SYMBOL = re.compile(r"[A-Z0-9]{2,40}")


def _account(_instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not isinstance(value, str) or _ACCOUNT.fullmatch(value) is None:
        raise FieldValueError(
            attribute.name, f"must be 1-32 characters of [A-Za-z0-9_.-] (got {value!r})"
        )


def _leverage_map(_instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    for symbol, leverage in value.items():
        if not isinstance(symbol, str) or _SYMBOL.fullmatch(symbol) is None:
            raise FieldValueError(
                attribute.name,
                f"symbol {symbol!r} must be an upper-case symbol such as BTCUSDT",
            )
        reason = LEVERAGE.problem(leverage)
        if reason is not None:
            raise FieldValueError(attribute.name, f"[{symbol!r}] {reason} (got {leverage!r})")


_CHAT_IDS = re.compile(r"^\s*(-?\d+\s*(,\s*-?\d+\s*)*)?$")


def _chat_ids(_instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not isinstance(value, str) or not _CHAT_IDS.match(value):
        raise ValueError(f"must be comma-separated integer chat ids (got {value!r})")


def _non_empty(_instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not isinstance(value, str) or not value.strip():
        raise FieldValueError(attribute.name, f"must not be empty (got {value!r})")


@attrs.frozen
class BotConfig:
    """``[bot]``: the process.

    Attributes:
        account: account name, 1-32 characters of ``[A-Za-z0-9_.-]`` (one process = one
            exchange account); part of position ids and of the single-instance lock.
        mode: ``"paper"`` (simulated exchange, no keys needed; ``tradebot paper``),
            ``"live"`` (real orders on ``exchange.venue``/``exchange.environment``; needs
            the API keys) or ``"dry-run"`` (``tradebot run`` on the venue's real public
            market stream, orders matched by the paper engine, no keys).
        shutdown_grace_s: SIGTERM → finish in-flight actions within this many seconds, in
            (0, 3600] (docs/ARCHITECTURE.md §10).
    """

    account: str = setting("default", validator=_account)
    mode: Literal["paper", "live", "dry-run"] = setting("paper")
    shutdown_grace_s: float = number_field(30.0, gt="0", le="3600")


@attrs.frozen
class ExchangeConfig:
    """``[exchange]``: venue, environment, endpoints and API key env var NAMES.

    Attributes:
        venue: ``"bybit"`` (v5 linear) or ``"binance"`` (USDⓈ-M). In paper mode, the venue
            whose rules and capabilities the paper exchange imitates.
        environment: ``"mainnet"``, ``"testnet"`` or ``"demo"``.
        rest_url: ``http(s)://`` override of the venue's standard REST URL for the
            environment; empty = standard.
        ws_public_url / ws_private_url: ``ws(s)://`` overrides of the stream URLs.
        api_key_env / api_secret_env: names of the environment variables holding the API
            key and secret (required in live mode).
        recv_window_ms: signed-request validity window, in [1, 60000] (Bybit
            ``X-BAPI-RECV-WINDOW``, Binance ``recvWindow``, at most 60000 per Binance's
            "Timing security" rules).
        request_timeout_s: REST request timeout, in (0, 300]; a timeout after sending is
            OutcomeUnknown.
        hedge_mode: positions in hedge mode (one long and one short per symbol).
        default_leverage: leverage set on each symbol before the first entry, in [1, 125].
        leverage_per_symbol: overrides, e.g. ``{ BTCUSDT = 10 }`` (upper-case symbols,
            each in [1, 125]).
        order_lookup_window_s: how long after an order's submission a lookup by client
            order id keeps looking before it calls an order of unknown outcome absent, in
            [0, 300] s; 10. Bybit only (its order history may lag the matching engine;
            ``adapters/bybit/venue.py``).
        protective_retry_s: retry budget of protective calls (stop place / move / cancel,
            closes) on retryable answers (rate limits, busy), in [0, 300] s; 0 = one try;
            10. Bybit only (the Binance adapter retries per call class).
        margin_type: ``"CROSSED"`` or ``"ISOLATED"``, set and verified per symbol before
            the first entry (``POST /fapi/v1/marginType``). Binance only: the Bybit
            adapter trades in the account's own margin mode, so ``"ISOLATED"`` with
            ``venue = "bybit"`` is refused rather than silently ignored.
        price_protect: ``priceProtect`` of the Binance algo stops (mark-vs-last sanity
            check at trigger time); false, so that a protective stop always fires.
            Binance only: ``true`` with ``venue = "bybit"`` is refused.
    """

    venue: Literal["bybit", "binance"] = setting("bybit")
    environment: Literal["mainnet", "testnet", "demo"] = setting("testnet")
    rest_url: str = setting("", validator=url("http", "https", allow_empty=True))
    ws_public_url: str = setting("", validator=url("ws", "wss", allow_empty=True))
    ws_private_url: str = setting("", validator=url("ws", "wss", allow_empty=True))
    api_key_env: str = setting("TRADEBOT_API_KEY", validator=env_var_name())
    api_secret_env: str = setting("TRADEBOT_API_SECRET", validator=env_var_name())
    recv_window_ms: int = int_field(5000, ge="1", le="60000")
    request_timeout_s: float = number_field(10.0, gt="0", le="300")
    hedge_mode: bool = setting(True)
    default_leverage: int = int_field(5, ge="1", le="125")
    leverage_per_symbol: dict[str, Leverage] = setting(factory=dict, validator=_leverage_map)
    order_lookup_window_s: float = number_field(10.0, ge="0", le="300")
    protective_retry_s: float = number_field(10.0, ge="0", le="300")
    margin_type: Literal["CROSSED", "ISOLATED"] = setting("CROSSED")
    price_protect: bool = setting(False)

    def __attrs_post_init__(self) -> None:
        if self.venue != "binance" and self.margin_type != "CROSSED":
            raise CrossFieldError(
                "margin_type",
                f"{self.margin_type!r} applies to Binance only; {{0}} is {self.venue!r} "
                "(the Bybit adapter uses the account's margin mode)",
                ("venue",),
            )
        if self.venue != "binance" and self.price_protect:
            raise CrossFieldError(
                "price_protect",
                f"applies to Binance algo stops only; {{0}} is {self.venue!r}",
                ("venue",),
            )


@attrs.frozen
class DatabaseConfig:
    """``[database]``: where the journal lives (docs/ARCHITECTURE.md §7).

    Attributes:
        dsn: PostgreSQL >= 14 DSN; empty = ``$TRADEBOT_DSN`` or, unset, the embedded server.
            Put a password in ``$TRADEBOT_DSN`` or ``~/.pgpass``, not here.
        home: data directory (embedded server under ``<home>/pg``, spool under
            ``<home>/spool``); empty = ``$TRADEBOT_HOME`` or ``~/.local/share/tradebot``.
    """

    dsn: str = setting("")
    home: str = setting("")


@attrs.frozen
class JournalConfig:
    """``[journal]``: group commit, spool, retention.

    Attributes:
        retention_days: ``tradebot db partitions`` drops monthly event partitions older
            than this, in [0, 36500]; 0 keeps everything; 365.
        spool_dir: spool directory; empty = ``<database.home>/spool``.
        max_batch_events: events per transaction at most, in [1, 1000000]; 5000.
        retry_interval_s: first reconnect delay while the DB is down, in (0, 3600] and
            <= ``max_retry_interval_s``; 0.5.
        max_retry_interval_s: reconnect backoff cap, in (0, 3600]; 5.
        drain_timeout_s: on shutdown, wait this long for the DB before spooling the rest,
            in (0, 3600]; 30.
        partitions_ahead_months: monthly partitions created ahead, in [0, 120]; 2.
    """

    retention_days: int = int_field(365, ge="0", le="36500")
    spool_dir: str = setting("")
    max_batch_events: int = int_field(5000, ge="1", le="1000000")
    retry_interval_s: float = number_field(0.5, gt="0", le="3600")
    max_retry_interval_s: float = number_field(5.0, gt="0", le="3600")
    drain_timeout_s: float = number_field(30.0, gt="0", le="3600")
    partitions_ahead_months: int = int_field(2, ge="0", le="120")

    def __attrs_post_init__(self) -> None:
        if self.retry_interval_s > self.max_retry_interval_s:
            raise CrossFieldError(
                "retry_interval_s",
                f"must be <= {{0}} (got {self.retry_interval_s} > {self.max_retry_interval_s})",
                ("max_retry_interval_s",),
            )


@attrs.frozen
class HealthConfig:
    """``[health]``: ``/health``, ``/metrics``, ``/positions`` HTTP server.

    Attributes:
        enabled: run it.
        host: bind address; loopback by default (docs/ARCHITECTURE.md §10).
        port: TCP port, in [0, 65535]; 0 = any free port.
        watchdog_interval_s: systemd watchdog ping period, in (0, 3600]
            (``WATCHDOG_USEC`` wins if set: half of it).
        control_token_env: env var NAME of the bearer token of the control API
            (``/control/*``, the operator CLI); unset variable = the control API refuses
            every request (403).
        market_stale_s: ``/health`` says the market stream is stale when no mark price
            arrived for this long, seconds, in (0, 86400]; 60.
    """

    enabled: bool = setting(True)
    host: str = setting("127.0.0.1", validator=_non_empty)
    port: int = int_field(8787, ge="0", le="65535")
    watchdog_interval_s: float = number_field(10.0, gt="0", le="3600")
    control_token_env: str = setting("TRADEBOT_CONTROL_TOKEN", validator=env_var_name())
    market_stale_s: float = number_field(60.0, gt="0", le="86400")


@attrs.frozen
class AlertsConfig:
    """``[alerts]``: de-duplicated, rate-limited alerts to Telegram.

    Attributes:
        enabled: send alerts (the token and chat id env vars must then be set).
        telegram_token_env / telegram_chat_id_env: env var NAMES of the bot token and chat.
        telegram_api_url: Bot API base URL (``http(s)://``).
        dedup_window_s: the same alert key is sent at most once per window, in
            [0, 86400]; 300.
        max_per_hour: alerts sent per hour at most, in [1, 3600] (the rest are counted as
            suppressed); 30.
        command_chat_ids: further Telegram chat ids (comma-separated integers) whose
            commands are obeyed besides the alert chat; "" = the alert chat only.
        unprotected_after_s: alert when an open position has had no verified stop for this
            long, seconds, in (0, 86400]; 60.
        db_down_after_s: alert when the journal database has been down this long, seconds,
            in (0, 86400]; 60.
        reconnects_alert: alert when a stream reconnects this many times within
            ``dedup_window_s`` (at least 10 minutes), in [1, 1000]; 3.
        daily_summary_hour_utc: hour (UTC) of the daily summary, in [0, 23]; 0.
    """

    enabled: bool = setting(False)
    telegram_token_env: str = setting("TRADEBOT_TELEGRAM_TOKEN", validator=env_var_name())
    telegram_chat_id_env: str = setting("TRADEBOT_TELEGRAM_CHAT_ID", validator=env_var_name())
    telegram_api_url: str = setting("https://api.telegram.org", validator=url("http", "https"))
    dedup_window_s: float = number_field(300.0, ge="0", le="86400")
    max_per_hour: int = int_field(30, ge="1", le="3600")
    command_chat_ids: str = setting("", validator=_chat_ids)
    unprotected_after_s: float = number_field(60.0, gt="0", le="86400")
    db_down_after_s: float = number_field(60.0, gt="0", le="86400")
    reconnects_alert: int = int_field(3, ge="1", le="1000")
    daily_summary_hour_utc: int = int_field(0, ge="0", le="23")

    def chat_ids(self) -> frozenset[str]:
        """The extra allowlisted chat ids of :attr:`command_chat_ids`."""
        return frozenset(p.strip() for p in self.command_chat_ids.split(",") if p.strip())


@attrs.frozen
class PaperConfig:
    """``[paper]``: the simulated exchange (paper trading and replay).

    Attributes:
        wallet_usdt: starting balance, USDT, in (0, 1e12]; 10000.
        taker_fee_pct / maker_fee_pct: fees, percent of notional, in (-1, 10) (negative =
            rebate; Bybit VIP0 defaults 0.055 / 0.02).
        latency_ms: simulated request latency, in [0, 60000]; 50.
        slippage_pct: market-order slippage against the mark price, percent, in [0, 10); 0.
        data_dir: historical market data; empty = the bundled ``tradebot/data/market``.
        signals_file: JSON-lines signal file for replay; empty = the bundled signals.
        seed: random seed for injected latency/faults, in [0, 2**63 - 1] (replay is
            deterministic).
    """

    wallet_usdt: Decimal = decimal_field("10000", gt="0", le="1e12")
    taker_fee_pct: Decimal = decimal_field("0.055", gt="-1", lt="10")
    maker_fee_pct: Decimal = decimal_field("0.02", gt="-1", lt="10")
    latency_ms: int = int_field(50, ge="0", le="60000")
    slippage_pct: Decimal = decimal_field("0", ge="0", lt="10")
    data_dir: str = setting("")
    signals_file: str = setting("")
    seed: int = int_field(0, ge="0", le=str(2**63 - 1))


@attrs.frozen
class LoggingConfig:
    """``[logging]``: JSON lines to stdout (journald), secrets redacted.

    Attributes:
        level: ``DEBUG`` / ``INFO`` / ``WARNING`` / ``ERROR``.
        format: ``"json"`` or ``"text"``.
    """

    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = setting("INFO")
    format: Literal["json", "text"] = setting("json")
