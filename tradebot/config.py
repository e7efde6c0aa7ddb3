"""Configuration: ``config.toml`` → frozen attrs classes, validated, every problem at once.

Loading is ``tomllib`` → cattrs (``forbid_extra_keys``, one structure hook per scalar type)
→ frozen attrs classes → range checks (and the policy classes' own checks). Rules:

- Money, prices, percents, fees and scores are :class:`~decimal.Decimal`, written as TOML
  *strings* (``"1.5"``) or integers; a TOML float (``1.5``) in such a field is an error
  (``trailing.activation_pct: expected a decimal string, got float 1.5``) because a binary
  float cannot hold most decimal fractions exactly.
- Units are in the key names (``_s``, ``_ms``, ``_h``, ``_min``, ``_pct``, ``_usdt``).
- A typo is an error with the key's path (``trailing.activaton_pct: unknown key``).
- Secrets are never in the file: keys ending in ``_env`` hold the NAME of an environment
  variable. A configured variable that is missing is an error only when the secret is
  needed (exchange keys in live mode, the Telegram token when alerts are enabled, the
  signal token when ``signals.token_env`` is set).
- Optional settings that are "off" by default (e.g. ``trailing.breakeven_trigger_pct``) are
  absent from the file or the empty string ``""``.

Public API: :func:`load_config`, :func:`parse_config`, :func:`default_config`,
:func:`format_config`, :class:`Config`; errors are :class:`tradebot.errors.ConfigError`
with ``problems = [(key_path, reason), ...]``.

Defaults are those of DESIGN.md (sections 3, 5, 7, 9, 10) and give a paper-trading bot that
runs out of the box; ``config.toml`` at the repository root documents every key.
"""

from __future__ import annotations

import decimal
import os
import re
import tomllib
import typing
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import attrs
import cattrs
from cattrs.errors import ClassValidationError, ForbiddenExtraKeysError, IterableValidationError

from tradebot.errors import ConfigError

if TYPE_CHECKING:  # the policy records are built lazily (no import cost for the CLI)
    from tradebot.policies.settings import PositionSettings
    from tradebot.policies.sizing import SizingSettings
    from tradebot.signals._settings import FeedSettings, WaveSettings

__all__ = [
    "AgedConfig",
    "AlertsConfig",
    "BotConfig",
    "Config",
    "DatabaseConfig",
    "ExchangeConfig",
    "ExecutionConfig",
    "HealthConfig",
    "JournalConfig",
    "LoggingConfig",
    "PaperConfig",
    "ProtectionConfig",
    "RiskConfig",
    "SignalsConfig",
    "StopLossConfig",
    "TakeProfitConfig",
    "TakeProfitLevel",
    "TrailingConfig",
    "WavesConfig",
    "default_config",
    "format_config",
    "load_config",
    "parse_config",
    "resolve_secret",
]

D = Decimal


# -- sections ----------------------------------------------------------------------------


@attrs.frozen
class BotConfig:
    """``[bot]``: the process.

    Attributes:
        account: account name (one process = one exchange account); part of position ids
            and of the single-instance lock.
        mode: ``"paper"`` (simulated exchange, no keys needed) or ``"live"`` (real orders on
            ``exchange.venue``/``exchange.environment``).
        shutdown_grace_s: SIGTERM → finish in-flight actions within this many seconds
            (DESIGN.md section 10).
    """

    account: str = "default"
    mode: Literal["paper", "live"] = "paper"
    shutdown_grace_s: float = 30.0


@attrs.frozen
class ExchangeConfig:
    """``[exchange]``: venue, environment, endpoints and API key env var NAMES.

    Attributes:
        venue: ``"bybit"`` (v5 linear) or ``"binance"`` (USDⓈ-M). In paper mode, the venue
            whose rules and capabilities the paper exchange imitates.
        environment: ``"mainnet"``, ``"testnet"`` or ``"demo"``.
        rest_url / ws_public_url / ws_private_url: override the venue's standard URL for the
            environment; empty = standard.
        api_key_env / api_secret_env: names of the environment variables holding the API
            key and secret (required in live mode).
        recv_window_ms: signed-request validity window (Bybit ``X-BAPI-RECV-WINDOW``,
            Binance ``recvWindow``).
        request_timeout_s: REST request timeout; a timeout after sending is OutcomeUnknown.
        hedge_mode: positions in hedge mode (one long and one short per symbol).
        default_leverage: leverage set on each symbol before the first entry.
        leverage_per_symbol: overrides, e.g. ``{ BTCUSDT = 10 }``.
    """

    venue: Literal["bybit", "binance"] = "bybit"
    environment: Literal["mainnet", "testnet", "demo"] = "testnet"
    rest_url: str = ""
    ws_public_url: str = ""
    ws_private_url: str = ""
    api_key_env: str = "TRADEBOT_API_KEY"
    api_secret_env: str = "TRADEBOT_API_SECRET"
    recv_window_ms: int = 5000
    request_timeout_s: float = 10.0
    hedge_mode: bool = True
    default_leverage: int = 5
    leverage_per_symbol: dict[str, int] = attrs.field(factory=dict)


@attrs.frozen
class RiskConfig:
    """``[risk]``: sizing and limits (DESIGN.md section 5 "Sizing/risk").

    Attributes:
        position_size_usdt: entry notional per position, USDT (> 0).
        max_open_positions: open positions at most (>= 0).
        max_exposure_usdt: summed entry notional of open positions at most, USDT (> 0).
    """

    position_size_usdt: Decimal = Decimal("200")
    max_open_positions: int = 10
    max_exposure_usdt: Decimal = Decimal("2000")


@attrs.frozen
class StopLossConfig:
    """``[stop_loss]``: initial stop (mark-price trigger).

    Attributes:
        initial_pct: stop distance from the entry price, percent (0 < x < 100); 2.
        emergency_pct: stop distance from entry for an adopted position, percent; 3.
    """

    initial_pct: Decimal = Decimal("2")
    emergency_pct: Decimal = Decimal("3")


@attrs.frozen
class TrailingConfig:
    """``[trailing]``: trailing stop (DESIGN.md section 5).

    Attributes:
        activation_pct: profit that activates trailing, percent of entry; 1.5.
        callback_pct: stop distance from the high/low-water mark, percent; 0.5.
        min_update_interval_s: at least this long between exchange updates; 60.
        min_improvement_pct: an update must improve the stop by at least this, percent; 0.1.
        immediate_improvement_pct: an improvement this large goes through at once; 1.0.
        breakeven_trigger_pct: profit at which the stop moves to breakeven; absent = off.
        breakeven_offset_pct: breakeven = entry moved this far into profit (fees); 0.1.
        time_activation_min: activate after this many minutes if in profit; absent = off.
    """

    activation_pct: Decimal = Decimal("1.5")
    callback_pct: Decimal = Decimal("0.5")
    min_update_interval_s: float = 60.0
    min_improvement_pct: Decimal = Decimal("0.1")
    immediate_improvement_pct: Decimal = Decimal("1.0")
    breakeven_trigger_pct: Decimal | None = None
    breakeven_offset_pct: Decimal = Decimal("0.1")
    time_activation_min: float | None = None


@attrs.frozen
class ProtectionConfig:
    """``[protection]``: stop verification and repair.

    Attributes:
        verify_interval_s: verify each position's stop on the exchange this often; 30.
        emergency_pct: emergency stop distance from entry for adopted positions, percent; 3.
        breach_action: mark already through the stop level: ``"tighten"`` (stop at mark ∓
            ``breach_tighten_pct``) or ``"close"`` (reduce-only market).
        breach_tighten_pct: distance from the mark of a breach stop, percent; 0.5.
        verified_journal_interval_s: an unchanged periodic verification is journaled at most
            this often (with the count of quiet checks in between); 600.
    """

    verify_interval_s: float = 30.0
    emergency_pct: Decimal = Decimal("3")
    breach_action: Literal["tighten", "close"] = "tighten"
    breach_tighten_pct: Decimal = Decimal("0.5")
    verified_journal_interval_s: float = 600.0


@attrs.frozen
class TakeProfitLevel:
    """One ``[[take_profit.levels]]`` entry: close ``fraction`` of the filled qty at
    ``profit_pct`` percent profit (reduce-only limit)."""

    profit_pct: Decimal
    fraction: Decimal


@attrs.frozen
class TakeProfitConfig:
    """``[take_profit]``: partial take-profit ("enhanced SL/TP").

    Attributes:
        levels: increasing ``profit_pct``; fractions in (0, 1] summing to <= 1; none = off.
        breakeven_after_first: move the stop to breakeven after the first level fills.
        breakeven_offset_pct: breakeven = entry moved this far into profit, percent; 0.1.
    """

    levels: tuple[TakeProfitLevel, ...] = ()
    breakeven_after_first: bool = True
    breakeven_offset_pct: Decimal = Decimal("0.1")


@attrs.frozen
class AgedConfig:
    """``[aged]``: aged-position progressive exit (DESIGN.md section 5).

    Attributes:
        max_age_h: a position older than this is aged; 3.
        grace_h: the breakeven exit (fees included) waits this long; 8.
        loss_step_pct_per_h: then the target moves toward loss by this per hour; 0.5.
        acceleration: step multiplier after ``accelerate_after_h`` aged hours; 1.2.
        accelerate_after_h: 10.
        max_loss_pct: loss cap; reaching it closes at market; 10.
        entry_fee_pct / exit_fee_pct: fees in the breakeven price (taker entry, maker exit).
    """

    max_age_h: float = 3.0
    grace_h: float = 8.0
    loss_step_pct_per_h: Decimal = Decimal("0.5")
    acceleration: Decimal = Decimal("1.2")
    accelerate_after_h: float = 10.0
    max_loss_pct: Decimal = Decimal("10")
    entry_fee_pct: Decimal = Decimal("0.055")
    exit_fee_pct: Decimal = Decimal("0.02")


@attrs.frozen
class ExecutionConfig:
    """``[execution]``: how hard a PositionActor tries.

    Attributes:
        stop_attempts: attempts to place/move a stop before flattening (>= 1); 4.
        retry_backoff_s: first retry delay, doubled per attempt; 0.25.
        fill_timeout_s: wait this long for an entry fill; 10.
        query_attempts: client-id lookups to resolve an unknown outcome (>= 1); 6.
        flatten_attempts: reduce-only market attempts before the emergency stop (>= 1); 3.
        age_tick_s: aged-exit clock interval; 60.
        snapshot_interval_s: min seconds between water-mark-only snapshots (0 = every mark).
        entry_probe_after_s: an entry still unanswered after this long is looked up by its
            client order id in parallel (a lost answer must not leave a fill unprotected for
            the whole request timeout); 1.
        entry_probe_interval_s: interval of that lookup; 0.5.
    """

    stop_attempts: int = 4
    retry_backoff_s: float = 0.25
    fill_timeout_s: float = 10.0
    query_attempts: int = 6
    flatten_attempts: int = 3
    age_tick_s: float = 60.0
    snapshot_interval_s: float = 0.0
    entry_probe_after_s: float = 1.0
    entry_probe_interval_s: float = 0.5


@attrs.frozen
class WavesConfig:
    """``[waves]``: wave processing (DESIGN.md section 5 "Waves").

    Attributes:
        delay_min: wave T is processed at T + delay_min minutes (0 <= x < 15); 5.
        max_trades_per_wave: positions opened per wave at most; 5.
        reserve_pct: ranked list holds max_trades_per_wave plus this percent (50 → 7).
        stoplist: symbols never traded.
        venues: accepted ``exchange`` values of signals; empty = any.
        min_score_week / min_score_month: minimum scores (inclusive); absent = no filter.
    """

    delay_min: int = 5
    max_trades_per_wave: int = 5
    reserve_pct: int = 50
    stoplist: tuple[str, ...] = ()
    venues: tuple[str, ...] = ()
    min_score_week: Decimal | None = None
    min_score_month: Decimal | None = None


@attrs.frozen
class SignalsConfig:
    """``[signals]``: the signal service WebSocket (DESIGN.md section 9).

    Attributes:
        url: ``ws://``/``wss://`` URL.
        token_env: name of the env var holding the auth token; empty = no token.
        ping_interval_s: heartbeat ping period; 20.
        pong_timeout_s: unanswered ping → reconnect; 10.
        silence_timeout_s: no message for this long → reconnect; 1200.
        reconnect_max_s: backoff cap (<= 30); 30.
        buffer_size: bounded buffer of received messages (>= 1); 100.
    """

    url: str = "ws://127.0.0.1:8765/signals"
    token_env: str = ""
    ping_interval_s: float = 20.0
    pong_timeout_s: float = 10.0
    silence_timeout_s: float = 1200.0
    reconnect_max_s: float = 30.0
    buffer_size: int = 100


@attrs.frozen
class DatabaseConfig:
    """``[database]``: where the journal lives (DESIGN.md section 7).

    Attributes:
        dsn: PostgreSQL >= 14 DSN; empty = ``$TRADEBOT_DSN`` or, unset, the embedded server.
            Put a password in ``$TRADEBOT_DSN`` or ``~/.pgpass``, not here.
        home: data directory (embedded server under ``<home>/pg``, spool under
            ``<home>/spool``); empty = ``$TRADEBOT_HOME`` or ``~/.local/share/tradebot``.
    """

    dsn: str = ""
    home: str = ""


@attrs.frozen
class JournalConfig:
    """``[journal]``: group commit, spool, retention.

    Attributes:
        retention_days: ``tradebot db partitions`` drops monthly event partitions older
            than this; 0 keeps everything; 365.
        spool_dir: spool directory; empty = ``<database.home>/spool``.
        max_batch_events: events per transaction at most; 5000.
        retry_interval_s / max_retry_interval_s: reconnect backoff while the DB is down.
        drain_timeout_s: on shutdown, wait this long for the DB before spooling the rest.
        partitions_ahead_months: monthly partitions created ahead; 2.
    """

    retention_days: int = 365
    spool_dir: str = ""
    max_batch_events: int = 5000
    retry_interval_s: float = 0.5
    max_retry_interval_s: float = 5.0
    drain_timeout_s: float = 30.0
    partitions_ahead_months: int = 2


@attrs.frozen
class HealthConfig:
    """``[health]``: ``/health``, ``/metrics``, ``/positions`` HTTP server.

    Attributes:
        enabled: run it.
        host: bind address; loopback by default (DESIGN.md section 10).
        port: TCP port; 0 = any free port.
        watchdog_interval_s: systemd watchdog ping period (``WATCHDOG_USEC`` wins if set).
    """

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = 8787
    watchdog_interval_s: float = 10.0


@attrs.frozen
class AlertsConfig:
    """``[alerts]``: de-duplicated, rate-limited alerts to Telegram.

    Attributes:
        enabled: send alerts (the token and chat id env vars must then be set).
        telegram_token_env / telegram_chat_id_env: env var NAMES of the bot token and chat.
        telegram_api_url: Bot API base URL.
        dedup_window_s: the same alert key is sent at most once per window; 300.
        max_per_hour: alerts sent per hour at most (the rest are counted as suppressed); 30.
    """

    enabled: bool = False
    telegram_token_env: str = "TRADEBOT_TELEGRAM_TOKEN"
    telegram_chat_id_env: str = "TRADEBOT_TELEGRAM_CHAT_ID"
    telegram_api_url: str = "https://api.telegram.org"
    dedup_window_s: float = 300.0
    max_per_hour: int = 30


@attrs.frozen
class PaperConfig:
    """``[paper]``: the simulated exchange (paper trading and replay).

    Attributes:
        wallet_usdt: starting balance, USDT; 10000.
        taker_fee_pct / maker_fee_pct: fees, percent of notional (Bybit VIP0 defaults).
        latency_ms: simulated request latency; 50.
        slippage_pct: market-order slippage against the mark price, percent; 0.
        data_dir: historical market data; empty = the bundled ``tradebot/data/market``.
        signals_file: JSON-lines signal file for replay; empty = the bundled signals.
        seed: random seed for injected latency/faults (replay is deterministic).
    """

    wallet_usdt: Decimal = Decimal("10000")
    taker_fee_pct: Decimal = Decimal("0.055")
    maker_fee_pct: Decimal = Decimal("0.02")
    latency_ms: int = 50
    slippage_pct: Decimal = Decimal("0")
    data_dir: str = ""
    signals_file: str = ""
    seed: int = 0


@attrs.frozen
class LoggingConfig:
    """``[logging]``: JSON lines to stdout (journald), secrets redacted.

    Attributes:
        level: ``DEBUG`` / ``INFO`` / ``WARNING`` / ``ERROR``.
        format: ``"json"`` or ``"text"``.
    """

    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    format: Literal["json", "text"] = "json"


@attrs.frozen
class Config:
    """The whole configuration (one section per attribute)."""

    bot: BotConfig = attrs.Factory(BotConfig)
    exchange: ExchangeConfig = attrs.Factory(ExchangeConfig)
    risk: RiskConfig = attrs.Factory(RiskConfig)
    stop_loss: StopLossConfig = attrs.Factory(StopLossConfig)
    trailing: TrailingConfig = attrs.Factory(TrailingConfig)
    protection: ProtectionConfig = attrs.Factory(ProtectionConfig)
    take_profit: TakeProfitConfig = attrs.Factory(TakeProfitConfig)
    aged: AgedConfig = attrs.Factory(AgedConfig)
    execution: ExecutionConfig = attrs.Factory(ExecutionConfig)
    waves: WavesConfig = attrs.Factory(WavesConfig)
    signals: SignalsConfig = attrs.Factory(SignalsConfig)
    database: DatabaseConfig = attrs.Factory(DatabaseConfig)
    journal: JournalConfig = attrs.Factory(JournalConfig)
    health: HealthConfig = attrs.Factory(HealthConfig)
    alerts: AlertsConfig = attrs.Factory(AlertsConfig)
    paper: PaperConfig = attrs.Factory(PaperConfig)
    logging: LoggingConfig = attrs.Factory(LoggingConfig)

    # -- conversions to the policy / signal settings records (tradebot core) --------------

    def position_settings(self) -> PositionSettings:
        """:class:`tradebot.policies.settings.PositionSettings` from this config."""
        from tradebot.policies.aged import AgedSettings
        from tradebot.policies.protection import ProtectionSettings
        from tradebot.policies.settings import ExecutionSettings, PositionSettings
        from tradebot.policies.stops import StopLossSettings
        from tradebot.policies.take_profit import TakeProfitSettings
        from tradebot.policies.trailing import TrailingSettings

        tp = self.take_profit
        return PositionSettings(
            stop_loss=StopLossSettings(**_fields(self.stop_loss)),
            trailing=TrailingSettings(**_fields(self.trailing)),
            protection=ProtectionSettings(**_fields(self.protection)),
            take_profit=TakeProfitSettings(
                levels=tuple((lv.profit_pct, lv.fraction) for lv in tp.levels),
                breakeven_after_first=tp.breakeven_after_first,
                breakeven_offset_pct=tp.breakeven_offset_pct,
            ),
            aged=AgedSettings(**_fields(self.aged)),
            execution=ExecutionSettings(**_fields(self.execution)),
        )

    def sizing_settings(self) -> SizingSettings:
        """:class:`tradebot.policies.sizing.SizingSettings` from ``[risk]``."""
        from tradebot.policies.sizing import SizingSettings

        return SizingSettings(**_fields(self.risk))

    def wave_settings(self) -> WaveSettings:
        """:class:`tradebot.signals.WaveSettings`-shaped record from ``[waves]`` + ``[risk]``."""
        from tradebot.signals._settings import WaveSettings

        w = self.waves
        return WaveSettings(
            account=self.bot.account,
            venues=frozenset(v.lower() for v in w.venues),
            delay_min=w.delay_min,
            max_trades_per_wave=w.max_trades_per_wave,
            reserve_pct=w.reserve_pct,
            stoplist=frozenset(s.upper() for s in w.stoplist),
            min_score_week=w.min_score_week,
            min_score_month=w.min_score_month,
            risk=self.sizing_settings(),
        )

    def feed_settings(self, environ: Mapping[str, str] | None = None) -> FeedSettings:
        """:class:`tradebot.signals._settings.FeedSettings` from ``[signals]`` (token resolved)."""
        from tradebot.signals._settings import FeedSettings

        s = self.signals
        return FeedSettings(
            url=s.url,
            token=resolve_secret(s.token_env, environ) if s.token_env else None,
            ping_interval_s=s.ping_interval_s,
            pong_timeout_s=s.pong_timeout_s,
            silence_timeout_s=s.silence_timeout_s,
            reconnect_max_s=s.reconnect_max_s,
            buffer_size=s.buffer_size,
        )

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


def _fields(obj: Any) -> dict[str, Any]:
    return {f.name: getattr(obj, f.name) for f in attrs.fields(type(obj))}


def default_config() -> Config:
    """The defaults: paper mode, embedded database, DESIGN.md policy values."""
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


def _default(cls: type, name: str) -> str:
    return str(attrs.fields_dict(cls)[name].default)


def _needed_secrets(raw: Mapping[str, Any]) -> list[tuple[str, str]]:
    """``(key_path, env_var_name)`` of the secrets this (raw) config needs."""

    def sect(name: str) -> Mapping[str, Any]:
        v = raw.get(name, {})
        return v if isinstance(v, Mapping) else {}

    def name_of(section: str, key: str, default: str) -> str | None:
        v = sect(section).get(key, default)
        return v if isinstance(v, str) else None

    needed: list[tuple[str, str]] = []
    if sect("bot").get("mode", "paper") == "live":
        for key in ("api_key_env", "api_secret_env"):
            n = name_of("exchange", key, _default(ExchangeConfig, key))
            if n:
                needed.append((f"exchange.{key}", n))
    if sect("alerts").get("enabled", False) is True:
        for key in ("telegram_token_env", "telegram_chat_id_env"):
            n = name_of("alerts", key, _default(AlertsConfig, key))
            if n:
                needed.append((f"alerts.{key}", n))
    token = name_of("signals", "token_env", "")
    if token:
        needed.append(("signals.token_env", token))
    return needed


# -- structuring -------------------------------------------------------------------------


def _describe(value: Any) -> str:
    return f"{type(value).__name__} {value!r}"


def _s_decimal(value: Any, _: type) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, (str, int, Decimal)):
        raise ValueError(f"expected a decimal string, got {_describe(value)}")
    try:
        d = Decimal(value.strip()) if isinstance(value, str) else Decimal(value)
    except decimal.InvalidOperation:
        raise ValueError(f"expected a decimal string, got {_describe(value)}") from None
    if not d.is_finite():
        raise ValueError(f"expected a finite decimal, got {_describe(value)}")
    return d


def _s_opt_decimal(value: Any, _: type) -> Decimal | None:
    if value is None or (isinstance(value, str) and value.strip() in ("", "off")):
        return None
    return _s_decimal(value, Decimal)


def _s_int(value: Any, _: type) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"expected an integer, got {_describe(value)}")
    return value


def _s_float(value: Any, _: type) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"expected a number, got {_describe(value)}")
    return float(value)


def _s_opt_float(value: Any, _: type) -> float | None:
    if value is None or (isinstance(value, str) and value.strip() in ("", "off")):
        return None
    return _s_float(value, float)


def _s_bool(value: Any, _: type) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"expected true or false, got {_describe(value)}")
    return value


def _s_str(value: Any, _: type) -> str:
    if not isinstance(value, str):
        raise ValueError(f"expected a string, got {_describe(value)}")
    return value


def _is_literal(t: Any) -> bool:
    return typing.get_origin(t) is Literal


def _s_literal(value: Any, t: Any) -> Any:
    choices = typing.get_args(t)
    if value not in choices:
        raise ValueError(f"expected one of {', '.join(map(repr, choices))}, got {_describe(value)}")
    return value


def _make_converter() -> cattrs.Converter:
    conv = cattrs.Converter(forbid_extra_keys=True, detailed_validation=True)
    conv.register_structure_hook(Decimal, _s_decimal)
    conv.register_structure_hook(Decimal | None, _s_opt_decimal)  # type: ignore[arg-type]
    conv.register_structure_hook(float | None, _s_opt_float)  # type: ignore[arg-type]
    conv.register_structure_hook(int, _s_int)
    conv.register_structure_hook(float, _s_float)
    conv.register_structure_hook(bool, _s_bool)
    conv.register_structure_hook(str, _s_str)
    conv.register_structure_hook_func(_is_literal, _s_literal)
    return conv


_CONVERTER = _make_converter()

T = TypeVar("T")


def _flatten(exc: BaseException, path: str, out: list[tuple[str, str]]) -> None:
    """cattrs' nested validation errors → ``(key.path, reason)``."""
    if isinstance(exc, ForbiddenExtraKeysError):
        for key in sorted(exc.extra_fields):
            out.append((f"{path}.{key}" if path else key, "unknown key"))
        return
    if isinstance(exc, (ClassValidationError, IterableValidationError)):
        for sub in exc.exceptions:
            note = next(
                (
                    n
                    for n in getattr(sub, "__notes__", [])
                    if hasattr(n, "name") or hasattr(n, "index")
                ),
                None,
            )
            if note is not None and hasattr(note, "name"):
                sub_path = f"{path}.{note.name}" if path else str(note.name)
            elif note is not None and hasattr(note, "index"):
                sub_path = f"{path}[{note.index}]"
            else:
                sub_path = path
            _flatten(sub, sub_path, out)
        return
    if isinstance(exc, KeyError):
        key = str(exc.args[0]) if exc.args else "?"
        full = path if path.endswith(key) else (f"{path}.{key}" if path else key)
        out.append((full, "required key is missing"))
        return
    if isinstance(exc, TypeError) and "missing" in str(exc) and "argument" in str(exc):
        m = re.findall(r"'(\w+)'", str(exc))
        for key in m or ["?"]:
            out.append((f"{path}.{key}" if path else key, "required key is missing"))
        return
    out.append((path or "<root>", str(exc) or type(exc).__name__))


def _structure(raw: Mapping[str, Any], cls: type[T]) -> tuple[T | None, list[tuple[str, str]]]:
    try:
        return _CONVERTER.structure(raw, cls), []
    except Exception as exc:
        problems: list[tuple[str, str]] = []
        _flatten(exc, "", problems)
        return None, problems


def _range_problems(cfg: Config) -> list[tuple[str, str]]:
    p: list[tuple[str, str]] = []

    def check(ok: bool, key: str, reason: str) -> None:
        if not ok:
            p.append((key, reason))

    zero, hundred = D(0), D(100)
    check(
        cfg.bot.account.strip() != ""
        and re.fullmatch(r"[A-Za-z0-9_.-]{1,32}", cfg.bot.account) is not None,
        "bot.account",
        "must be 1-32 characters of [A-Za-z0-9_.-]",
    )
    check(cfg.bot.shutdown_grace_s > 0, "bot.shutdown_grace_s", "must be > 0")
    check(cfg.exchange.recv_window_ms > 0, "exchange.recv_window_ms", "must be > 0")
    check(cfg.exchange.request_timeout_s > 0, "exchange.request_timeout_s", "must be > 0")
    check(
        1 <= cfg.exchange.default_leverage <= 125,
        "exchange.default_leverage",
        "must be in [1, 125]",
    )
    for sym, lev in cfg.exchange.leverage_per_symbol.items():
        check(1 <= lev <= 125, f"exchange.leverage_per_symbol.{sym}", "must be in [1, 125]")
    for key in ("rest_url", "ws_public_url", "ws_private_url"):
        url = getattr(cfg.exchange, key)
        check(
            url == "" or re.match(r"^(https?|wss?)://", url) is not None,
            f"exchange.{key}",
            "must be empty or an http(s)/ws(s) URL",
        )
    check(cfg.risk.position_size_usdt > zero, "risk.position_size_usdt", "must be > 0")
    check(cfg.risk.max_exposure_usdt > zero, "risk.max_exposure_usdt", "must be > 0")
    check(cfg.risk.max_open_positions >= 0, "risk.max_open_positions", "must be >= 0")
    for key in ("initial_pct", "emergency_pct"):
        v = getattr(cfg.stop_loss, key)
        check(zero < v < hundred, f"stop_loss.{key}", "must be in (0, 100)")
    t = cfg.trailing
    for key in (
        "activation_pct",
        "callback_pct",
        "min_improvement_pct",
        "immediate_improvement_pct",
    ):
        v = getattr(t, key)
        check(zero < v < hundred, f"trailing.{key}", "must be in (0, 100)")
    check(t.min_update_interval_s >= 0, "trailing.min_update_interval_s", "must be >= 0")
    check(
        t.breakeven_trigger_pct is None or zero < t.breakeven_trigger_pct < hundred,
        "trailing.breakeven_trigger_pct",
        "must be in (0, 100) or absent",
    )
    check(
        zero <= t.breakeven_offset_pct < hundred,
        "trailing.breakeven_offset_pct",
        "must be in [0, 100)",
    )
    check(
        t.time_activation_min is None or t.time_activation_min > 0,
        "trailing.time_activation_min",
        "must be > 0 or absent",
    )
    pr = cfg.protection
    check(pr.verify_interval_s > 0, "protection.verify_interval_s", "must be > 0")
    check(
        pr.verified_journal_interval_s >= 0,
        "protection.verified_journal_interval_s",
        "must be >= 0",
    )
    check(zero < pr.emergency_pct < hundred, "protection.emergency_pct", "must be in (0, 100)")
    check(
        zero < pr.breach_tighten_pct < hundred,
        "protection.breach_tighten_pct",
        "must be in (0, 100)",
    )
    last, total = zero, zero
    for i, lv in enumerate(cfg.take_profit.levels):
        check(
            lv.profit_pct > last,
            f"take_profit.levels[{i}].profit_pct",
            "must be > 0 and increasing",
        )
        check(zero < lv.fraction <= 1, f"take_profit.levels[{i}].fraction", "must be in (0, 1]")
        last = max(last, lv.profit_pct)
        total += lv.fraction
    check(total <= 1, "take_profit.levels", f"fractions sum to {total} > 1")
    a = cfg.aged
    check(a.max_age_h > 0, "aged.max_age_h", "must be > 0")
    check(a.grace_h >= 0, "aged.grace_h", "must be >= 0")
    check(a.loss_step_pct_per_h > zero, "aged.loss_step_pct_per_h", "must be > 0")
    check(a.acceleration >= 1, "aged.acceleration", "must be >= 1")
    check(zero < a.max_loss_pct < hundred, "aged.max_loss_pct", "must be in (0, 100)")
    for key in ("entry_fee_pct", "exit_fee_pct"):
        check(zero <= getattr(a, key) < 10, f"aged.{key}", "must be in [0, 10)")
    e = cfg.execution
    for key in ("stop_attempts", "query_attempts", "flatten_attempts"):
        check(getattr(e, key) >= 1, f"execution.{key}", "must be >= 1")
    for key in ("fill_timeout_s", "age_tick_s", "entry_probe_after_s", "entry_probe_interval_s"):
        check(getattr(e, key) > 0, f"execution.{key}", "must be > 0")
    check(
        e.retry_backoff_s >= 0 and e.snapshot_interval_s >= 0,
        "execution.retry_backoff_s",
        "retry_backoff_s and snapshot_interval_s must be >= 0",
    )
    w = cfg.waves
    check(0 <= w.delay_min < 15, "waves.delay_min", "must be in [0, 15)")
    check(w.max_trades_per_wave >= 0, "waves.max_trades_per_wave", "must be >= 0")
    check(w.reserve_pct >= 0, "waves.reserve_pct", "must be >= 0")
    s = cfg.signals
    check(re.match(r"^wss?://", s.url) is not None, "signals.url", "must be a ws:// or wss:// URL")
    check(
        s.ping_interval_s > 0 and s.pong_timeout_s > 0,
        "signals.ping_interval_s",
        "ping_interval_s and pong_timeout_s must be > 0",
    )
    check(
        0 < s.reconnect_max_s <= 30,
        "signals.reconnect_max_s",
        "must be in (0, 30] (DESIGN.md section 9)",
    )
    check(s.buffer_size >= 1, "signals.buffer_size", "must be >= 1")
    check(s.silence_timeout_s > 0, "signals.silence_timeout_s", "must be > 0")
    j = cfg.journal
    check(j.retention_days >= 0, "journal.retention_days", "must be >= 0 (0 keeps everything)")
    check(j.max_batch_events >= 1, "journal.max_batch_events", "must be >= 1")
    check(
        0 < j.retry_interval_s <= j.max_retry_interval_s,
        "journal.retry_interval_s",
        "must be > 0 and <= max_retry_interval_s",
    )
    check(j.drain_timeout_s > 0, "journal.drain_timeout_s", "must be > 0")
    check(j.partitions_ahead_months >= 0, "journal.partitions_ahead_months", "must be >= 0")
    check(0 <= cfg.health.port <= 65535, "health.port", "must be in [0, 65535]")
    check(cfg.health.watchdog_interval_s > 0, "health.watchdog_interval_s", "must be > 0")
    check(cfg.alerts.dedup_window_s >= 0, "alerts.dedup_window_s", "must be >= 0")
    check(cfg.alerts.max_per_hour >= 1, "alerts.max_per_hour", "must be >= 1")
    pa = cfg.paper
    check(pa.wallet_usdt > zero, "paper.wallet_usdt", "must be > 0")
    for key in ("taker_fee_pct", "maker_fee_pct"):
        check(D("-1") < getattr(pa, key) < D("10"), f"paper.{key}", "must be in (-1, 10)")
    check(pa.latency_ms >= 0, "paper.latency_ms", "must be >= 0")
    check(zero <= pa.slippage_pct < D("10"), "paper.slippage_pct", "must be in [0, 10)")
    return p


def _policy_problems(cfg: Config) -> list[tuple[str, str]]:
    """Build the policy records, so their own checks run at load time."""
    problems: list[tuple[str, str]] = []
    for section, build in (("policies", cfg.position_settings), ("waves", cfg.wave_settings)):
        try:
            build()
        except ImportError:  # pragma: no cover - policy package absent
            continue
        except (ValueError, TypeError) as exc:
            msg = str(exc)
            m = re.match(r"^([a-z_]+\.[a-z_]+(?:\[\d+\])?)\s*:?\s*(.*)$", msg, re.DOTALL)
            if m:
                problems.append((m.group(1), m.group(2) or msg))
            else:
                problems.append((section, msg))
    return problems


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
    env = os.environ if environ is None else environ
    cfg, problems = _structure(raw, Config)
    if cfg is not None:
        problems.extend(_range_problems(cfg))
        if not problems:
            problems.extend(_policy_problems(cfg))
    for key, var in _needed_secrets(raw) if require_secrets else []:
        if not env.get(var, ""):
            problems.append(
                (key, f"environment variable {var} is not set (needed: {_why_needed(key)})")
            )
    if problems or cfg is None:
        raise ConfigError(problems)
    return cfg


def _why_needed(key: str) -> str:
    if key.startswith("exchange."):
        return "bot.mode is live"
    if key.startswith("alerts."):
        return "alerts.enabled is true"
    return "signals.token_env is set"


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
    if isinstance(value, (tuple, list)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        if not value:
            return "{}"
        return "{ " + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + " }"
    if attrs.has(type(value)):
        return "{ " + ", ".join(f"{k} = {_toml_value(v)}" for k, v in _fields(value).items()) + " }"
    return _toml_value(str(value))


def format_config(cfg: Config, *, environ: Mapping[str, str] | None = None) -> str:
    """The resolved config as TOML, secrets masked: ``*_env`` keys show whether the variable
    is set (never its value); a password in ``database.dsn`` is replaced by ``****``."""
    env = os.environ if environ is None else environ
    lines: list[str] = []
    for section, value in _fields(cfg).items():
        lines.append(f"[{section}]")
        for key, v in _fields(value).items():
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
