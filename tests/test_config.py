"""Configuration loading and ``tradebot check-config`` (issue 2; issue 10 item 5).

One config model: the TOML sections are the settings records the bot runs on, each field
defined once with its range (tradebot/bounds.py). What is proved here:

- every bad value a user can write is refused by ``check-config`` with its key path and
  exit 2 (a table of cases, each run through the real CLI);
- a config ``check-config`` accepts builds every record the bot builds from it and runs
  every policy on it without an exception (a property test over values at and beyond each
  field's bounds, and one paper run on an extreme but valid config);
- errors come with cattrs' key paths, all at once; secrets stay env-var names, masked.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.paper import load_instruments
from tradebot.bounds import BOUND, Bound, CrossFieldError, is_config_key
from tradebot.cli import main
from tradebot.config import Config, default_config, format_config, load_config, parse_config
from tradebot.domain import PositionSide
from tradebot.errors import ConfigError
from tradebot.policies import (
    NoValidStop,
    PositionSettings,
    SizingSettings,
    TakeProfitLevel,
    TrailingState,
    aged_target,
    breakeven_exit_price,
    check_limits,
    decide_repair,
    due_take_profits,
    emergency_stop_price,
    initial_stop_price,
    size_position,
    trailing_step,
)
from tradebot.signals import FeedSettings, WaveSettings

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "config.toml"
D = Decimal


def _problems(text: str, environ: dict[str, str] | None = None) -> dict[str, str]:
    with pytest.raises(ConfigError) as info:
        parse_config(text, environ=environ or {})
    return dict(info.value.problems)


def _sections() -> list[tuple[str, type]]:
    attrs.resolve_types(Config)
    return [(f.name, f.type) for f in attrs.fields(Config)]  # type: ignore[misc]


def _config_fields(record: type) -> list[attrs.Attribute[Any]]:
    attrs.resolve_types(record)
    return [f for f in attrs.fields(record) if is_config_key(f)]


# --- one model ----------------------------------------------------------------------------


def test_config_sections_are_the_settings_records_the_bot_uses() -> None:
    """No copy of a policy class: the section IS the record (one definition per field)."""
    from tradebot.policies.settings import ExecutionSettings
    from tradebot.policies.stops import StopLossSettings
    from tradebot.policies.take_profit import TakeProfitSettings
    from tradebot.policies.trailing import TrailingSettings

    sections = dict(_sections())
    assert sections["risk"] is SizingSettings
    assert sections["waves"] is WaveSettings and sections["signals"] is FeedSettings
    for name, record in (
        ("stop_loss", StopLossSettings),
        ("trailing", TrailingSettings),
        ("take_profit", TakeProfitSettings),
        ("execution", ExecutionSettings),
    ):
        assert sections[name] is record
    pos = default_config().position_settings()
    assert pos == PositionSettings()
    for f in attrs.fields(PositionSettings):
        assert sections[f.name] is type(getattr(pos, f.name))


def test_every_numeric_config_key_declares_its_range() -> None:
    for section, record in _sections():
        for f in _config_fields(record):
            if f.type in (Decimal, int, float, Decimal | None, float | None):
                bound = f.metadata.get(BOUND)
                assert isinstance(bound, Bound), f"{section}.{f.name}"
                assert bound.low is not None and bound.high is not None, f"{section}.{f.name}"
                assert bound.problem(f.default) is None, f"{section}.{f.name} default"


def test_template_is_valid_and_equals_the_defaults() -> None:
    cfg = load_config(TEMPLATE, environ={})
    assert cfg == default_config()
    assert cfg.bot.mode == "paper"
    assert cfg.trailing.activation_pct == Decimal("1.5") and isinstance(
        cfg.risk.position_size_usdt, Decimal
    )


def test_template_documents_every_key() -> None:
    text = TEMPLATE.read_text()
    for section, record in _sections():
        assert f"[{section}]" in text, section
        for f in _config_fields(record):
            documented = (f"{f.name} =", f"[[{section}.{f.name}]]")
            assert any(d in text for d in documented), f"{section}.{f.name}"


def test_empty_file_gives_defaults_and_printing_round_trips() -> None:
    assert parse_config("", environ={}) == default_config()
    assert parse_config(format_config(default_config(), environ={}), environ={}) == Config()
    cfg = parse_config(
        '[bot]\naccount = "acc-2"\n[waves]\nstoplist = ["dogeusdt"]\nvenues = ["Bybit"]\n'
        '[take_profit]\nlevels = [{ profit_pct = "2", fraction = "0.5" }]\n'
        "[exchange]\nleverage_per_symbol = { BTCUSDT = 10 }\n[trailing]\ntime_activation_min = 5\n",
        environ={},
    )
    assert parse_config(format_config(cfg, environ={}), environ={}) == cfg


# --- check-config --------------------------------------------------------------------------


def test_check_config_on_template_exits_0_and_masks_secrets(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRADEBOT_API_KEY", "super-secret-key-value")
    assert main(["check-config", str(TEMPLATE)]) == 0
    out = capsys.readouterr().out
    assert "[trailing]" in out and 'activation_pct = "1.5"' in out
    assert "super-secret-key-value" not in out
    assert 'api_key_env = "TRADEBOT_API_KEY"  # set (value hidden)' in out
    assert "token =" not in out and "limits" not in out  # not config keys


def test_check_config_names_unknown_key_float_price_and_missing_env_var(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(
        '[bot]\nmode = "live"\n'
        '[exchange]\napi_key_env = "TB_TEST_MISSING_KEY"\napi_secret_env = "TB_TEST_SECRET"\n'
        '[trailing]\nactivation_pct = 1.5\nactivaton_pct = "1"\n'
        "[risk]\nposition_size_usdt = 200.5\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("TB_TEST_")}
    env["TB_TEST_SECRET"] = "s"
    proc = subprocess.run(
        [sys.executable, "-m", "tradebot", "check-config", str(bad)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert proc.returncode == 2
    err = proc.stderr
    assert "trailing.activation_pct: expected a decimal string, got float 1.5" in err
    assert "trailing.activaton_pct: unknown key (did you mean 'activation_pct'?)" in err
    assert "risk.position_size_usdt: expected a decimal string, got float 200.5" in err
    assert "exchange.api_key_env: environment variable TB_TEST_MISSING_KEY is not set" in err
    assert "api_secret_env" not in err  # that one is set
    assert "Traceback" not in err
    assert proc.stdout == ""


# (TOML, key path, reason): each value a user could write that the bot cannot run with
BAD_VALUES = [
    (
        '[risk]\nposition_size_usdt = "1e400"',
        "risk.position_size_usdt",
        "must be a finite decimal in (0, 1e12] (got '1e400')",
    ),
    (
        '[risk]\nposition_size_usdt = "NaN"',
        "risk.position_size_usdt",
        "must be a finite decimal in (0, 1e12] (got 'NaN')",
    ),
    ('[risk]\nposition_size_usdt = "Infinity"', "risk.position_size_usdt", "(got 'Infinity')"),
    ('[risk]\nposition_size_usdt = "-Infinity"', "risk.position_size_usdt", "finite decimal"),
    ('[risk]\nposition_size_usdt = "0"', "risk.position_size_usdt", "(0, 1e12]"),
    ('[risk]\nposition_size_usdt = "-200"', "risk.position_size_usdt", "(0, 1e12]"),
    (
        '[risk]\nposition_size_usdt = "abc"',
        "risk.position_size_usdt",
        "expected a decimal string, got str 'abc'",
    ),
    (
        '[risk]\nposition_size_usdt = "3000"',
        "risk.position_size_usdt",
        "must be <= risk.max_exposure_usdt (got 3000 > 2000)",
    ),
    ('[risk]\nmax_exposure_usdt = "1e13"', "risk.max_exposure_usdt", "(0, 1e12]"),
    (
        "[risk]\nmax_open_positions = 0",
        "risk.max_open_positions",
        "must be an integer in [1, 10000] (got 0)",
    ),
    ("[risk]\nmax_open_positions = true", "risk.max_open_positions", "expected an integer"),
    ('[stop_loss]\ninitial_pct = "0"', "stop_loss.initial_pct", "(0, 100)"),
    ('[stop_loss]\ninitial_pct = "100"', "stop_loss.initial_pct", "(0, 100)"),
    ('[stop_loss]\nemergency_pct = "150"', "stop_loss.emergency_pct", "(0, 100)"),
    ('[trailing]\ncallback_pct = "0"', "trailing.callback_pct", "(0, 100)"),
    ('[trailing]\nactivation_pct = "-1"', "trailing.activation_pct", "(0, 100)"),
    (
        '[trailing]\nmin_improvement_pct = "5"',
        "trailing.immediate_improvement_pct",
        "must be >= trailing.min_improvement_pct (got 1.0 < 5)",
    ),
    ("[trailing]\nmin_update_interval_s = -1.0", "trailing.min_update_interval_s", "[0, 86400]"),
    ("[trailing]\ntime_activation_min = 1e300", "trailing.time_activation_min", "(0, 525600]"),
    ("[trailing]\ntime_activation_min = nan", "trailing.time_activation_min", "finite number"),
    ('[trailing]\nbreakeven_trigger_pct = "0"', "trailing.breakeven_trigger_pct", 'or "" (off)'),
    (
        "[protection]\nverify_interval_s = 0.0",
        "protection.verify_interval_s",
        "must be a finite number in (0, 86400] (got 0.0)",
    ),
    ("[protection]\nverify_interval_s = inf", "protection.verify_interval_s", "(got inf)"),
    (
        '[protection]\nbreach_action = "pray"',
        "protection.breach_action",
        "expected one of 'tighten', 'close'",
    ),
    ('[protection]\nbreach_tighten_pct = "100"', "protection.breach_tighten_pct", "(0, 100)"),
    (
        '[[take_profit.levels]]\nprofit_pct = "0"\nfraction = "0.5"',
        "take_profit.levels[0].profit_pct",
        "(0, 1000]",
    ),
    (
        '[[take_profit.levels]]\nprofit_pct = "2"\nfraction = "1.5"',
        "take_profit.levels[0].fraction",
        "(0, 1]",
    ),
    (
        '[[take_profit.levels]]\nprofit_pct = "2"\nfraction = "0.5"\nfracton = "1"',
        "take_profit.levels[0].fracton",
        "unknown key (did you mean 'fraction'?)",
    ),
    (
        '[take_profit]\nlevels = [{ profit_pct = "2", fraction = "0.5" }, '
        '{ profit_pct = "2", fraction = "0.2" }]',
        "take_profit.levels[1].profit_pct",
        "must be > take_profit.levels[0].profit_pct",
    ),
    (
        '[take_profit]\nlevels = [{ profit_pct = "1", fraction = "0.7" }, '
        '{ profit_pct = "2", fraction = "0.7" }]',
        "take_profit.levels",
        "fractions sum to 1.4 > 1",
    ),
    ('[take_profit]\nlevels = "2:0.5"', "take_profit.levels", "expected an array"),
    ("[aged]\nmax_age_h = 0.0", "aged.max_age_h", "(0, 8760]"),
    ('[aged]\nacceleration = "0.5"', "aged.acceleration", "[1, 100]"),
    ('[aged]\nmax_loss_pct = "100"', "aged.max_loss_pct", "(0, 100)"),
    ('[aged]\nentry_fee_pct = "-0.1"', "aged.entry_fee_pct", "[0, 5)"),
    ("[execution]\nstop_attempts = 0", "execution.stop_attempts", "[1, 100]"),
    ("[execution]\nage_tick_s = 0.0", "execution.age_tick_s", "(0, 86400]"),
    ("[execution]\nfill_timeout_s = -5.0", "execution.fill_timeout_s", "(0, 3600]"),
    ("[execution]\nentry_probe_interval_s = 0.0", "execution.entry_probe_interval_s", "(0, 3600]"),
    ("[execution]\nretry_backoff_s = 1e9", "execution.retry_backoff_s", "[0, 60]"),
    ("[waves]\ndelay_min = 15", "waves.delay_min", "must be an integer in [0, 15) (got 15)"),
    ("[waves]\nmax_trades_per_wave = 0", "waves.max_trades_per_wave", "[1, 1000]"),
    ("[waves]\nreserve_pct = -1", "waves.reserve_pct", "[0, 1000]"),
    ('[waves]\nstoplist = "LUNAUSDT"', "waves.stoplist", "expected an array, got str"),
    ('[waves]\nmin_score_week = "150"', "waves.min_score_week", "[0, 100]"),
    ('[waves]\naccount = "x"', "waves.account", "unknown key (set by bot.account)"),
    ('[signals]\nurl = "http://x"', "signals.url", "must be a ws:// or wss:// URL"),
    ('[signals]\nurl = "ws://"', "signals.url", "must be a ws:// or wss:// URL"),
    ("[signals]\nreconnect_max_s = 60.0", "signals.reconnect_max_s", "(0, 30]"),
    ("[signals]\nbuffer_size = 0", "signals.buffer_size", "[1, 100000]"),
    ("[signals]\nping_interval_s = 0.0", "signals.ping_interval_s", "(0, 3600]"),
    ('[signals]\ntoken = "secret"', "signals.token", "unknown key"),
    ('[signals]\ntoken_env = "my token"', "signals.token_env", "environment variable NAME"),
    ('[bot]\naccount = "my account!"', "bot.account", "1-32 characters"),
    ("[bot]\nshutdown_grace_s = 0.0", "bot.shutdown_grace_s", "(0, 3600]"),
    ("[exchange]\ndefault_leverage = 0", "exchange.default_leverage", "[1, 125]"),
    ("[exchange]\ndefault_leverage = 126", "exchange.default_leverage", "[1, 125]"),
    (
        "[exchange.leverage_per_symbol]\nBTCUSDT = 200",
        "exchange.leverage_per_symbol['BTCUSDT']",
        "must be an integer in [1, 125] (got 200)",
    ),
    (
        "[exchange.leverage_per_symbol]\nbtcusdt = 10",
        "exchange.leverage_per_symbol",
        "upper-case symbol",
    ),
    ("[exchange]\nrecv_window_ms = 0", "exchange.recv_window_ms", "[1, 60000]"),
    ("[exchange]\nrecv_window_ms = 120000", "exchange.recv_window_ms", "[1, 60000]"),
    ('[exchange]\nrest_url = "ftp://x"', "exchange.rest_url", "http:// or https:// URL"),
    ('[exchange]\nws_public_url = "https://x"', "exchange.ws_public_url", "ws:// or wss://"),
    ('[exchange]\napi_key_env = "sk-live-123"', "exchange.api_key_env", "never the secret"),
    ("[exchange]\nrequest_timeout_s = 0.0", "exchange.request_timeout_s", "(0, 300]"),
    (
        "[exchange]\norder_lookup_window_s = -1.0",
        "exchange.order_lookup_window_s",
        "must be a finite number in [0, 300] (got -1.0)",
    ),
    ("[exchange]\norder_lookup_window_s = inf", "exchange.order_lookup_window_s", "[0, 300]"),
    ('[exchange]\norder_lookup_window_s = "10"', "exchange.order_lookup_window_s", "expected"),
    (
        "[exchange]\nprotective_retry_s = 301.0",
        "exchange.protective_retry_s",
        "must be a finite number in [0, 300] (got 301.0)",
    ),
    ("[exchange]\nprotective_retry_s = nan", "exchange.protective_retry_s", "finite number"),
    (
        '[exchange]\nvenue = "binance"\nmargin_type = "isolated"',
        "exchange.margin_type",
        "expected one of 'CROSSED', 'ISOLATED'",
    ),
    (
        '[exchange]\nmargin_type = "ISOLATED"',
        "exchange.margin_type",
        "'ISOLATED' applies to Binance only; exchange.venue is 'bybit'",
    ),
    (
        '[exchange]\nvenue = "binance"\nprice_protect = "yes"',
        "exchange.price_protect",
        "expected true or false, got str 'yes'",
    ),
    (
        "[exchange]\nprice_protect = true",
        "exchange.price_protect",
        "applies to Binance algo stops only; exchange.venue is 'bybit'",
    ),
    ("[journal]\nretention_days = -1", "journal.retention_days", "[0, 36500]"),
    ("[journal]\nmax_batch_events = 0", "journal.max_batch_events", "[1, 1000000]"),
    (
        "[journal]\nretry_interval_s = 10.0",
        "journal.retry_interval_s",
        "must be <= journal.max_retry_interval_s (got 10.0 > 5.0)",
    ),
    ("[journal]\npartitions_ahead_months = 100000", "journal.partitions_ahead_months", "[0, 120]"),
    ("[health]\nport = 70000", "health.port", "[0, 65535]"),
    ('[health]\nhost = ""', "health.host", "must not be empty"),
    ("[alerts]\nmax_per_hour = 0", "alerts.max_per_hour", "[1, 3600]"),
    ('[alerts]\ntelegram_api_url = "api.telegram.org"', "alerts.telegram_api_url", "URL"),
    ('[paper]\nwallet_usdt = "0"', "paper.wallet_usdt", "(0, 1e12]"),
    ('[paper]\ntaker_fee_pct = "10"', "paper.taker_fee_pct", "(-1, 10)"),
    ("[paper]\nlatency_ms = -1", "paper.latency_ms", "[0, 60000]"),
    ('[paper]\nslippage_pct = "-0.1"', "paper.slippage_pct", "[0, 10)"),
    ("[paper]\nseed = -1", "paper.seed", "[0, 9223372036854775807]"),
    ('[logging]\nlevel = "TRACE"', "logging.level", "expected one of"),
    ("trailing = 5", "trailing", "expected a table, got int 5"),
    ("[nonsense]\na = 1", "nonsense", "unknown key"),
]


@pytest.mark.parametrize(("text", "key", "reason"), BAD_VALUES, ids=[c[1] for c in BAD_VALUES])
def test_check_config_refuses_each_bad_value_with_its_key_path(
    text: str, key: str, reason: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "config.toml"
    path.write_text(text + "\n")
    assert main(["check-config", str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert lines[0] == f"{path}: 1 problem(s)"
    assert len(lines) == 2 and lines[1].startswith(f"{key}: "), captured.err
    assert reason in lines[1], captured.err


def test_all_problems_reported_at_once_with_paths() -> None:
    problems = _problems(
        """
        [bot]
        mode = "demo"
        [risk]
        position_size_usdt = 200.5
        max_open_positions = "3"
        [[take_profit.levels]]
        profit_pct = "2"
        fraction = 0.5
        [[take_profit.levels]]
        profit_pct = "4"
        [exchange.leverage_per_symbol]
        BTCUSDT = "x"
        [trailing]
        callback_pct = "1e400"
        activation_pct = "0"
        [nonsense]
        a = 1
        """
    )
    assert problems == {
        "bot.mode": "expected one of 'paper', 'live', 'dry-run', got str 'demo'",
        "risk.position_size_usdt": "expected a decimal string, got float 200.5",
        "risk.max_open_positions": "expected an integer, got str '3'",
        "take_profit.levels[0].fraction": "expected a decimal string, got float 0.5",
        "take_profit.levels[1].fraction": "required key is missing",
        "exchange.leverage_per_symbol['BTCUSDT']": "expected an integer, got str 'x'",
        "trailing.callback_pct": "must be a finite decimal in (0, 100) (got '1e400')",
        "trailing.activation_pct": "must be a finite decimal in (0, 100) (got '0')",
        "nonsense": "unknown key",
    }


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("[alerts]\nenabled = true\n", "alerts.telegram_token_env"),
        ('[signals]\ntoken_env = "TB_SIGNAL_TOKEN"\n', "signals.token_env"),
        ('[bot]\nmode = "live"\n', "exchange.api_secret_env"),
    ],
)
def test_missing_secret_is_an_error_only_when_needed(text: str, key: str) -> None:
    assert key in _problems(text)
    # the same env var names in paper mode / disabled alerts are fine
    parse_config('[alerts]\nenabled = false\n[bot]\nmode = "paper"\n', environ={})


def test_secrets_resolve_from_env_and_never_print() -> None:
    cfg = parse_config(
        '[signals]\ntoken_env = "TB_SIGNAL_TOKEN"\n[database]\n'
        'dsn = "postgresql://bot:hunter2@db.example:5432/tb"\n',
        environ={"TB_SIGNAL_TOKEN": "tok-123"},
    )
    feed = cfg.feed_settings({"TB_SIGNAL_TOKEN": "tok-123"})
    assert feed.token == "tok-123" and "tok-123" not in repr(feed)
    assert cfg.signals.token is None  # the config holds the NAME only
    text = format_config(cfg, environ={"TB_SIGNAL_TOKEN": "tok-123"})
    assert "tok-123" not in text and "hunter2" not in text
    assert "postgresql://bot:****@db.example:5432/tb" in text
    assert 'token_env = "TB_SIGNAL_TOKEN"  # set (value hidden)' in text
    with pytest.raises(ConfigError, match="TB_SIGNAL_TOKEN"):
        cfg.feed_settings({})


def test_conversions_to_policy_settings() -> None:
    cfg = parse_config(
        '[take_profit]\nlevels = [{ profit_pct = "2", fraction = "0.5" }]\n'
        '[waves]\nstoplist = ["dogeusdt"]\nvenues = ["Bybit"]\nmin_score_week = "60"\n'
        '[trailing]\nbreakeven_trigger_pct = ""\n[bot]\naccount = "acc1"\n'
        '[risk]\nposition_size_usdt = "100"\n',
        environ={},
    )
    ps = cfg.position_settings()
    assert ps.take_profit.levels == (TakeProfitLevel(D("2"), D("0.5")),)
    assert [tuple(lv) for lv in ps.take_profit.levels] == [(D("2"), D("0.5"))]
    assert ps.trailing.breakeven_trigger_pct is None
    ws = cfg.wave_settings()
    assert ws.stoplist == frozenset({"DOGEUSDT"}) and ws.venues == frozenset({"bybit"})
    assert ws.min_score_week == Decimal("60")
    assert ws.account == "acc1" and ws.risk is cfg.risk == cfg.sizing_settings()
    assert ws.risk.position_size_usdt == D("100")
    # the waves record follows bot/risk when a config is evolved in code, too
    moved = attrs.evolve(cfg, risk=SizingSettings(position_size_usdt=D("50")))
    assert moved.wave_settings().risk.position_size_usdt == D("50")


def test_records_built_in_code_check_the_same_ranges() -> None:
    with pytest.raises(ValueError, match=r"position_size_usdt must be a finite decimal"):
        SizingSettings(position_size_usdt=D("1e400"))
    with pytest.raises(CrossFieldError, match="position_size_usdt must be <= max_exposure_usdt"):
        SizingSettings(position_size_usdt=D("3000"))
    with pytest.raises(ValueError, match="max_open_positions"):
        SizingSettings(max_open_positions=0)
    with pytest.raises(ValueError, match="reconnect_max_s"):
        FeedSettings(reconnect_max_s=60)
    with pytest.raises(ValueError, match="url must be a ws:// or wss:// URL"):
        FeedSettings(url="http://x")
    with pytest.raises(ValueError, match="delay_min"):
        WaveSettings(delay_min=15)


def test_unreadable_and_invalid_toml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "absent.toml")
    p = tmp_path / "broken.toml"
    p.write_text("[bot\nmode=")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(p)


def test_db_commands_do_not_need_exchange_secrets(tmp_path: Path) -> None:
    live = tmp_path / "live.toml"
    live.write_text('[bot]\nmode = "live"\n[exchange]\napi_key_env = "TB_TEST_NOPE"\n')
    with pytest.raises(ConfigError):
        load_config(live, environ={})
    assert load_config(live, environ={}, require_secrets=False).bot.mode == "live"


# --- accepted implies runnable --------------------------------------------------------------

INSTRUMENTS = load_instruments()
T0 = datetime(2025, 5, 20, tzinfo=UTC)


def _run_every_policy(cfg: Config) -> None:
    """What the bot builds from a config and every policy it runs on it: no exception."""
    ps = cfg.position_settings()
    ws = cfg.wave_settings()
    cfg.feed_settings({cfg.signals.token_env: "t"} if cfg.signals.token_env else {})
    assert ws.reserve_size >= ws.max_trades_per_wave
    for inst in INSTRUMENTS.values():
        for price in (inst.tick_size, inst.tick_size * 1000, D("123456.7")):
            sized = size_position(ws.risk.position_size_usdt, price, inst)
            check_limits(
                open_count=ws.risk.max_open_positions - 1,
                exposure_usdt=ws.risk.max_exposure_usdt,
                new_notional_usdt=sized.notional_usdt,
                settings=ws.risk,
            )
            for side in (PositionSide.LONG, PositionSide.SHORT):
                _run_position_policies(ps, inst, price, side, sized.qty or inst.min_qty)


def _run_position_policies(
    ps: PositionSettings, inst: Any, entry: Decimal, side: PositionSide, qty: Decimal
) -> None:
    try:
        stop = initial_stop_price(entry, side, inst, ps.stop_loss)
        emergency_stop_price(entry, side, inst, ps.stop_loss)
    except NoValidStop:  # a handled outcome: the actor does not open / closes
        return
    state = TrailingState()
    for minutes, move_pct in ((1, "0.5"), (30, "3"), (600, "40"), (601, "-10")):
        mark = entry * (1 + side.sign * D(move_pct) / 100)
        decision = trailing_step(
            state,
            settings=ps.trailing,
            side=side,
            instrument=inst,
            entry_price=entry,
            opened_at=T0,
            mark_price=mark,
            current_stop=stop,
            now=T0 + timedelta(minutes=minutes),
        )
        state = decision.state
        if decision.new_stop is not None:
            stop = decision.new_stop
            state = state.with_update(T0 + timedelta(minutes=minutes))
        due_take_profits(
            settings=ps.take_profit,
            side=side,
            instrument=inst,
            entry_price=entry,
            mark_price=mark,
            filled_qty=qty,
            remaining_qty=qty,
            done=set(),
        )
        decide_repair(
            side=side,
            instrument=inst,
            entry_price=entry,
            mark_price=mark,
            intended_stop=stop,
            live_stop_prices=[],
            settings=ps.protection,
        )
    breakeven_exit_price(entry, side, ps.aged)
    a = ps.aged
    for hours in (0.0, a.max_age_h, a.max_age_h + a.grace_h + 1, 3 * 8760.0):
        aged_target(
            opened_at=T0,
            now=T0 + timedelta(hours=hours),
            entry_price=entry,
            side=side,
            instrument=inst,
            settings=a,
        )


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return {"inf": "inf", "-inf": "-inf", "nan": "nan"}.get(repr(value), repr(value))
    if isinstance(value, int):
        return str(value)
    return json.dumps(value)  # strings: JSON string syntax is valid TOML


def _candidates(bound: Bound) -> tuple[list[Any], list[Any]]:
    """Raw TOML values (valid, invalid) at, inside and beyond a field's bounds."""
    assert bound.low is not None and bound.high is not None
    lo, hi = D(bound.low), D(bound.high)
    inside = [lo, hi, (lo + hi) / 2, lo + (hi - lo) / 1000, hi - (hi - lo) / 1000]
    inside = [n for n in inside if bound.problem(_typed(bound, n)) is None]
    outside = [lo - 1, hi + 1, lo, hi]
    outside = [n for n in outside if bound.problem(_typed(bound, n)) is not None]
    if bound.kind == "decimal":
        valid: list[Any] = [str(n) for n in inside] + [int(n) for n in inside if n == int(n)]
        invalid: list[Any] = [str(n) for n in outside]
        invalid += ["1e400", "NaN", "Infinity", "-1e400", "abc", 1.5]
    elif bound.kind == "integer":
        valid = sorted({int(n) for n in inside if bound.problem(int(n)) is None})
        invalid = [int(n) for n in outside if n == int(n)] + [2**62, "3", True]
    else:
        valid = [float(n) for n in inside]
        invalid = [float(n) for n in outside] + [1e300, float("inf"), float("nan"), "x"]
    if bound.optional:
        valid.append("")
    return valid, invalid


def _typed(bound: Bound, n: Decimal) -> Any:
    return n if bound.kind == "decimal" else (int(n) if bound.kind == "integer" else float(n))


def _field_values() -> list[tuple[str, str, tuple[list[Any], list[Any]]]]:
    out = []
    for section, record in _sections():
        for f in _config_fields(record):
            bound = f.metadata.get(BOUND)
            if isinstance(bound, Bound):
                out.append((section, f.name, _candidates(bound)))
    return out


FIELD_VALUES = _field_values()


@st.composite
def raw_configs(draw: st.DrawFn) -> str:
    """Mostly valid values (so that many configs are accepted and run), some invalid."""
    chosen = draw(st.lists(st.sampled_from(FIELD_VALUES), max_size=16, unique_by=lambda c: c[:2]))
    tables: dict[str, list[str]] = {}
    for section, key, (valid, invalid) in chosen:
        pool = invalid if draw(st.integers(0, 19)) == 0 else valid
        tables.setdefault(section, []).append(f"{key} = {_toml(draw(st.sampled_from(pool)))}")
    profits = sorted(
        draw(st.sets(st.sampled_from(["0.0001", "0.5", "1", "2", "5", "1000"]), max_size=3)),
        key=Decimal,
    )
    levels = [(p, draw(st.sampled_from(["0.0001", "0.1", "0.3"]))) for p in profits]
    if levels and draw(st.integers(0, 9)) == 0:  # now and then a broken level
        levels[-1] = (
            draw(st.sampled_from(["0", "1e400", "0.0001", levels[-1][0]])),
            draw(st.sampled_from(["0", "2", "NaN", "1"])),
        )
    text = "".join(f"[{s}]\n" + "\n".join(lines) + "\n" for s, lines in tables.items())
    for profit, fraction in levels:
        text += f'[[take_profit.levels]]\nprofit_pct = "{profit}"\nfraction = "{fraction}"\n'
    return text


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(raw_configs())
def test_an_accepted_config_builds_and_runs_every_policy(text: str) -> None:
    try:
        cfg = parse_config(text, environ={})
    except ConfigError as exc:
        sections = {name for name, _ in _sections()}
        assert exc.problems
        for key, reason in exc.problems:
            assert key.split(".")[0].split("[")[0] in sections, (key, reason)
            assert reason and "Traceback" not in reason
        return
    _run_every_policy(cfg)
    assert parse_config(format_config(cfg, environ={}), environ={}) == cfg


EXTREME = """
[risk]
position_size_usdt = "1e12"
max_exposure_usdt = "1e12"
max_open_positions = 10000
[exchange]
default_leverage = 1
[stop_loss]
initial_pct = "98.99"
[trailing]
activation_pct = "0.0001"
callback_pct = "99.9"
min_update_interval_s = 0.0
min_improvement_pct = "0"
immediate_improvement_pct = "0.0001"
breakeven_trigger_pct = "0.00001"
time_activation_min = 525600
[protection]
verify_interval_s = 86400
breach_action = "close"
[[take_profit.levels]]
profit_pct = "0.0001"
fraction = "1"
[aged]
max_age_h = 0.001
grace_h = 0.0
loss_step_pct_per_h = "99.9"
acceleration = "100"
[execution]
age_tick_s = 86400
snapshot_interval_s = 86400.0
[waves]
delay_min = 14
max_trades_per_wave = 1000
reserve_pct = 1000
[paper]
wallet_usdt = "1e12"
maker_fee_pct = "-0.99"
taker_fee_pct = "9.99"
slippage_pct = "9.99"
"""


@pytest.mark.slow
def test_paper_runs_on_an_extreme_but_accepted_config(
    tmp_path: Path, fresh_db_dsn: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "extreme.toml"
    path.write_text(EXTREME)
    assert main(["check-config", "-q", str(path)]) == 0
    _run_every_policy(load_config(path, environ={}))
    report = tmp_path / "report.json"
    rc = main(
        [
            "paper",
            "--config",
            str(path),
            "--from",
            "2025-05-20T04:00:00Z",
            "--to",
            "2025-05-20T06:00:00Z",
            "--dsn",
            fresh_db_dsn,
            "--no-progress",
            "--report-json",
            str(report),
        ]
    )
    captured = capsys.readouterr()
    assert rc in (0, 3), captured.err  # 3 = the report shows a violation; never a crash (1)
    assert "error:" not in captured.err
    doc = json.loads(report.read_text())
    assert doc["details"]["window_end"] == "2025-05-20T06:00:00+00:00"


async def test_exchange_adapter_keys_reach_the_venues() -> None:
    """``exchange.order_lookup_window_s`` / ``protective_retry_s`` (Bybit) and
    ``margin_type`` / ``price_protect`` (Binance) are config keys: parsed, checked, and
    what the venue factories build with."""
    from adapters.binance import venue_from_config as binance_venue
    from adapters.bybit import venue_from_config as bybit_venue

    env = {"K": "k", "S": "s"}
    keys = 'api_key_env = "K"\napi_secret_env = "S"\n'
    bybit = parse_config(
        f"[exchange]\n{keys}order_lookup_window_s = 0.0\nprotective_retry_s = 2.5\n",
        environ=env,
    )
    async with bybit_venue(bybit.exchange, environ=env) as venue:
        assert (venue.order_lookup_window_s, venue.protective_retry_s) == (0.0, 2.5)
    binance = parse_config(
        f'[exchange]\nvenue = "binance"\n{keys}margin_type = "ISOLATED"\nprice_protect = true\n',
        environ=env,
    )
    async with binance_venue(binance.exchange, environ=env) as venue:
        assert (venue.margin_type, venue.price_protect) == ("ISOLATED", True)
    defaults = default_config().exchange
    assert (defaults.order_lookup_window_s, defaults.protective_retry_s) == (10.0, 10.0)
    assert (defaults.margin_type, defaults.price_protect) == ("CROSSED", False)


def test_check_config_refuses_stops_beyond_the_estimated_liquidation(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """100/leverage − 1 % maintenance margin (tradebot/policies/liquidation.py): at 40x
    the estimate is 1.5 %, so the 2 % initial and 3 % emergency stops are refused, naming
    the stop key and the leverage key; at the default 5x (19 %) they are fine."""
    path = tmp_path / "config.toml"
    path.write_text("[exchange]\nleverage_per_symbol = { BTCUSDT = 40 }\n")
    assert main(["check-config", str(path)]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == f"{path}: 3 problem(s)"
    keys = sorted(line.split(": ")[0] for line in lines[1:])
    assert keys == ["protection.emergency_pct", "stop_loss.emergency_pct", "stop_loss.initial_pct"]
    assert all("exchange.leverage_per_symbol['BTCUSDT'] = 40" in line for line in lines[1:])
    assert "estimated liquidation distance 1.5 %" in lines[1]
    path.write_text(
        "[exchange]\nleverage_per_symbol = { BTCUSDT = 40 }\n"
        '[stop_loss]\ninitial_pct = "1"\nemergency_pct = "1.4"\n'
        '[protection]\nemergency_pct = "1.4"\n'
    )
    assert main(["check-config", str(path)]) == 0
