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
from typing import Any

import attrs

from tradebot._config_sections import (
    AlertsConfig,
    BotConfig,
    DatabaseConfig,
    ExchangeConfig,
    HealthConfig,
    JournalConfig,
    LoggingConfig,
    PaperConfig,
)
from tradebot._config_structure import CONVERTER, Leverage, config_keys, problems_of
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
