"""Configuration: ``config.toml`` → the settings records the bot runs on, every problem at once.

One model: the policy sections of the file are structured *straight into* the records the
policies and actors use — ``[risk]`` → :class:`~tradebot.policies.sizing.SizingSettings`,
``[stop_loss]``, ``[trailing]``, ``[protection]``, ``[take_profit]``, ``[aged]``,
``[execution]`` → the records of :class:`~tradebot.policies.settings.PositionSettings`,
``[reconcile]`` → :class:`~tradebot.policies.reconcile.ReconcileSettings`,
``[waves]`` → :class:`~tradebot.signals.WaveSettings`, ``[signals]`` →
:class:`~tradebot.signals.FeedSettings`. The other sections (``[bot]``, ``[exchange]``,
``[database]``, ``[journal]``, ``[health]``, ``[alerts]``, ``[paper]``, ``[logging]``) are
the records below. Each field is defined once: its default, its unit (the name's suffix:
``_s``, ``_ms``, ``_h``, ``_min``, ``_pct``, ``_usdt``) and its valid range
(:mod:`tradebot.bounds`).

Loading is ``tomllib`` → cattrs (``forbid_extra_keys``, strict scalar hooks, one structure
function per record whose field hooks check each field's range: ``_config_structure.py``) →
the frozen records, whose ``__attrs_post_init__`` checks the rules between fields. Errors
come from cattrs' own machinery (``ClassValidationError`` → :func:`cattrs.transform_error`
paths) as ``(key_path, reason)`` pairs, e.g.::

    risk.position_size_usdt: must be a finite decimal in (0, 1e12] (got '1e400')
    risk.position_size_usdt: must be <= risk.max_exposure_usdt (got 3000 > 2000)
    trailing.activaton_pct: unknown key (did you mean 'activation_pct'?)

Rules:

- Money, prices, percents, fees and scores are :class:`~decimal.Decimal`, written as TOML
  *strings* (``"1.5"``) or integers; a TOML float (``1.5``) in such a field is an error
  (``trailing.activation_pct: expected a decimal string, got float 1.5``) because a binary
  float cannot hold most decimal fractions exactly. NaN, Infinity and out-of-range
  magnitudes (``"1e400"``) are refused.
- A typo is an error with the key's path, never silently ignored.
- Secrets are never in the file: keys ending in ``_env`` hold the NAME of an environment
  variable. A configured variable that is missing is an error only when the secret is
  needed (exchange keys in live mode, the Telegram token when alerts are enabled, the
  signal token when ``signals.token_env`` is set).
- Optional settings that are "off" by default (e.g. ``trailing.breakeven_trigger_pct``) are
  absent from the file or the empty string ``""``.

A config :func:`parse_config` accepts converts without error into every record the bot
builds from it (:meth:`Config.position_settings`, :meth:`Config.wave_settings`,
:meth:`Config.sizing_settings`, :meth:`Config.feed_settings`): they are its own sections.

Public API: :func:`load_config`, :func:`parse_config`, :func:`default_config`,
:func:`format_config`, :func:`resolve_secret`, :class:`Config`; errors are
:class:`tradebot.errors.ConfigError` with ``problems = [(key_path, reason), ...]``.

Defaults are those of docs/ARCHITECTURE.md (§3, §5, §7, §9, §10) and give a paper-trading
bot that runs out of the box; ``config.toml`` at the repository root documents every key.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

import attrs

from tradebot._config_structure import CONVERTER, LEVERAGE, Leverage, config_keys, problems_of
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
from tradebot.errors import ConfigError
from tradebot.policies.aged import AgedSettings
from tradebot.policies.liquidation import stop_liquidation_problems
from tradebot.policies.protection import ProtectionSettings
from tradebot.policies.reconcile import ReconcileSettings
from tradebot.policies.settings import ExecutionSettings, PositionSettings
from tradebot.policies.sizing import SizingSettings
from tradebot.policies.stops import StopLossSettings
from tradebot.policies.take_profit import TakeProfitSettings
from tradebot.policies.trailing import TrailingSettings
from tradebot.signals._settings import FeedSettings, WaveSettings

__all__ = [
    "AlertsConfig",
    "BotConfig",
    "Config",
    "DatabaseConfig",
    "ExchangeConfig",
    "HealthConfig",
    "JournalConfig",
    "Leverage",
    "LoggingConfig",
    "PaperConfig",
    "default_config",
    "format_config",
    "load_config",
    "parse_config",
    "resolve_secret",
]

# -- the config-only sections ------------------------------------------------------------

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


# -- the whole configuration ---------------------------------------------------------------


@attrs.frozen
class Config:
    """The whole configuration: one section per attribute, each the record the bot uses.

    ``waves.account`` and ``waves.risk`` are not ``[waves]`` keys: they always equal
    ``bot.account`` and ``risk`` (set on construction).
    """

    bot: BotConfig = attrs.Factory(BotConfig)
    exchange: ExchangeConfig = attrs.Factory(ExchangeConfig)
    risk: SizingSettings = attrs.Factory(SizingSettings)
    stop_loss: StopLossSettings = attrs.Factory(StopLossSettings)
    trailing: TrailingSettings = attrs.Factory(TrailingSettings)
    protection: ProtectionSettings = attrs.Factory(ProtectionSettings)
    take_profit: TakeProfitSettings = attrs.Factory(TakeProfitSettings)
    aged: AgedSettings = attrs.Factory(AgedSettings)
    execution: ExecutionSettings = attrs.Factory(ExecutionSettings)
    reconcile: ReconcileSettings = attrs.Factory(ReconcileSettings)
    waves: WaveSettings = attrs.Factory(WaveSettings)
    signals: FeedSettings = attrs.Factory(FeedSettings)
    database: DatabaseConfig = attrs.Factory(DatabaseConfig)
    journal: JournalConfig = attrs.Factory(JournalConfig)
    health: HealthConfig = attrs.Factory(HealthConfig)
    alerts: AlertsConfig = attrs.Factory(AlertsConfig)
    paper: PaperConfig = attrs.Factory(PaperConfig)
    logging: LoggingConfig = attrs.Factory(LoggingConfig)

    def __attrs_post_init__(self) -> None:
        w = self.waves
        if w.account != self.bot.account or w.risk != self.risk:
            # frozen: the documented attrs way to finish a frozen instance in post-init
            object.__setattr__(
                self, "waves", attrs.evolve(w, account=self.bot.account, risk=self.risk)
            )

    # -- the records the bot is built from ------------------------------------------------

    def position_settings(self) -> PositionSettings:
        """The PositionActor's :class:`~tradebot.policies.settings.PositionSettings`."""
        return PositionSettings(
            stop_loss=self.stop_loss,
            trailing=self.trailing,
            protection=self.protection,
            take_profit=self.take_profit,
            aged=self.aged,
            execution=self.execution,
        )

    def sizing_settings(self) -> SizingSettings:
        """:class:`~tradebot.policies.sizing.SizingSettings`: the ``[risk]`` section."""
        return self.risk

    def wave_settings(self) -> WaveSettings:
        """:class:`~tradebot.signals.WaveSettings`: ``[waves]`` with ``bot.account`` and
        ``[risk]``."""
        return self.waves

    def feed_settings(self, environ: Mapping[str, str] | None = None) -> FeedSettings:
        """:class:`~tradebot.signals.FeedSettings`: ``[signals]`` with the token resolved.

        Raises:
            ConfigError: ``signals.token_env`` names an unset variable.
        """
        s = self.signals
        token = resolve_secret(s.token_env, environ) if s.token_env else None
        return attrs.evolve(s, token=token)

    def secret_env_names(self) -> tuple[str, ...]:
        """Names of every environment variable this config reads a secret from (exchange
        keys, Telegram token, signal token, control token), for redaction
        (:mod:`tradebot.redact`)."""
        names = (
            self.exchange.api_key_env,
            self.exchange.api_secret_env,
            self.alerts.telegram_token_env,
            self.signals.token_env,
            self.health.control_token_env,
        )
        return tuple(n for n in names if n)

    def home_path(self, environ: Mapping[str, str] | None = None) -> Path:
        """``database.home``, else ``$TRADEBOT_HOME``, else ``~/.local/share/tradebot``."""
        env = os.environ if environ is None else environ
        home = self.database.home or env.get("TRADEBOT_HOME", "") or "~/.local/share/tradebot"
        return Path(home).expanduser()

    def spool_path(self, environ: Mapping[str, str] | None = None) -> Path:
        """``journal.spool_dir``, else ``<home>/spool``."""
        if self.journal.spool_dir:
            return Path(self.journal.spool_dir).expanduser()
        return self.home_path(environ) / "spool"


def default_config() -> Config:
    """The defaults: paper mode, embedded database, docs/ARCHITECTURE.md §5 policy values."""
    return Config()


# -- secrets -----------------------------------------------------------------------------


def resolve_secret(env_name: str, environ: Mapping[str, str] | None = None) -> str:
    """The value of the environment variable ``env_name``.

    Raises:
        ConfigError: the variable is unset or empty (the problem names the variable).
    """
    env = os.environ if environ is None else environ
    value = env.get(env_name, "")
    if not value:
        raise ConfigError([(env_name, "environment variable is not set")])
    return value


def _needed_secrets(raw: Mapping[str, Any]) -> list[tuple[str, str]]:
    """``(key_path, env_var_name)`` of the secrets a config needs, read from the raw TOML
    (so a missing secret is reported together with the file's other problems)."""

    def value(section: str, key: str, record: type) -> Any:
        table = raw.get(section, {})
        default = attrs.fields_dict(record)[key].default
        return table.get(key, default) if isinstance(table, Mapping) else default

    needed: list[tuple[str, str]] = []
    wanted: list[tuple[str, str, type]] = []
    if value("bot", "mode", BotConfig) == "live":
        wanted += [("exchange", k, ExchangeConfig) for k in ("api_key_env", "api_secret_env")]
    if value("alerts", "enabled", AlertsConfig) is True:
        wanted += [
            ("alerts", k, AlertsConfig) for k in ("telegram_token_env", "telegram_chat_id_env")
        ]
    wanted.append(("signals", "token_env", FeedSettings))
    for section, key, record in wanted:
        name = value(section, key, record)
        if isinstance(name, str) and name:
            needed.append((f"{section}.{key}", name))
    return needed


def _why_needed(key: str) -> str:
    if key.startswith("exchange."):
        return "bot.mode is live"
    if key.startswith("alerts."):
        return "alerts.enabled is true"
    return "signals.token_env is set"


# -- loading -------------------------------------------------------------------------------


def parse_config(
    text: str,
    *,
    environ: Mapping[str, str] | None = None,
    source: str = "<string>",
    require_secrets: bool = True,
) -> Config:
    """Parse TOML text into a validated :class:`Config`.

    Args:
        text: TOML document (an empty one gives :func:`default_config`).
        environ: environment used to check that needed secrets exist (default ``os.environ``).
        source: file name for messages.
        require_secrets: check that the secrets this config needs are set (False for
            tools that need no secret, e.g. ``tradebot db``).

    Raises:
        ConfigError: every problem found, as ``(key_path, reason)`` pairs.
    """
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([(source, f"not valid TOML: {exc}")]) from None
    problems: list[tuple[str, str]] = []
    cfg: Config | None = None
    try:
        cfg = CONVERTER.structure(raw, Config)
    except Exception as exc:
        problems = problems_of(exc)
    env = os.environ if environ is None else environ
    bad = {key for key, _ in problems}
    problems += [
        (key, f"environment variable {var} is not set (needed: {_why_needed(key)})")
        for key, var in (_needed_secrets(raw) if require_secrets else [])
        if not env.get(var, "") and key not in bad
    ]
    if cfg is not None:
        problems += _stop_liquidation_problems(cfg)
    if problems or cfg is None:
        raise ConfigError(problems)
    return cfg


def _stop_liquidation_problems(cfg: Config) -> list[tuple[str, str]]:
    """Stops at or beyond the estimated liquidation price at the configured leverages
    (:mod:`tradebot.policies.liquidation`)."""
    leverages = {"exchange.default_leverage": cfg.exchange.default_leverage} | {
        f"exchange.leverage_per_symbol[{sym!r}]": lev
        for sym, lev in cfg.exchange.leverage_per_symbol.items()
    }
    stops = {
        "stop_loss.initial_pct": cfg.stop_loss.initial_pct,
        "stop_loss.emergency_pct": cfg.stop_loss.emergency_pct,
        "protection.emergency_pct": cfg.protection.emergency_pct,
    }
    return stop_liquidation_problems(stops, leverages)


def load_config(
    path: str | Path, *, environ: Mapping[str, str] | None = None, require_secrets: bool = True
) -> Config:
    """Read and validate a ``config.toml``.

    Raises:
        ConfigError: unreadable file or any invalid key (all problems at once).
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([(str(p), f"cannot read: {exc.strerror or exc}")]) from None
    except UnicodeDecodeError:
        raise ConfigError([(str(p), "not UTF-8 text")]) from None
    return parse_config(text, environ=environ, source=str(p), require_secrets=require_secrets)


# -- printing ----------------------------------------------------------------------------

_DSN_PASSWORD = re.compile(r"(://[^:/@]*:)([^@]*)(@)|(password\s*=\s*)(\S+)", re.IGNORECASE)


def _mask_dsn(dsn: str) -> str:
    def sub(m: re.Match[str]) -> str:
        if m.group(1):
            return f"{m.group(1)}****{m.group(3)}" if m.group(2) else m.group(0)
        return f"{m.group(4)}****"

    return _DSN_PASSWORD.sub(sub, dsn)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return f'"{value}"'
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, frozenset):
        return _toml_value(sorted(value))
    if isinstance(value, (tuple, list)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        if not value:
            return "{}"
        return "{ " + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + " }"
    if attrs.has(type(value)):
        keys = config_keys(type(value))
        return "{ " + ", ".join(f"{k} = {_toml_value(getattr(value, k))}" for k in keys) + " }"
    return _toml_value(str(value))


def format_config(cfg: Config, *, environ: Mapping[str, str] | None = None) -> str:
    """The resolved config as TOML (config keys only), secrets masked: ``*_env`` keys show
    whether the variable is set (never its value); a password in ``database.dsn`` is
    replaced by ``****``. Without a DSN password, :func:`parse_config` of the text gives
    ``cfg`` back."""
    env = os.environ if environ is None else environ
    lines: list[str] = []
    for section in attrs.fields(Config):
        value = getattr(cfg, section.name)
        lines.append(f"[{section.name}]")
        for key in config_keys(type(value)):
            v = getattr(value, key)
            if v is None:
                lines.append(f"# {key} = (off)")
                continue
            if key == "dsn" and isinstance(v, str):
                v = _mask_dsn(v)
            line = f"{key} = {_toml_value(v)}"
            if key.endswith("_env") and isinstance(v, str) and v:
                line += "  # " + ("set (value hidden)" if env.get(v) else "not set")
            lines.append(line)
        lines.append("")
    return "\n".join(lines)
