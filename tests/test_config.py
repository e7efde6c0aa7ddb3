"""Configuration loading and ``tradebot check-config`` (issue 2, "Must show")."""

from __future__ import annotations

import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from tradebot.cli import main
from tradebot.config import Config, default_config, format_config, load_config, parse_config
from tradebot.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "config.toml"


def _problems(text: str, environ: dict[str, str] | None = None) -> dict[str, str]:
    with pytest.raises(ConfigError) as info:
        parse_config(text, environ=environ or {})
    return dict(info.value.problems)


def test_template_is_valid_and_equals_the_defaults() -> None:
    cfg = load_config(TEMPLATE, environ={})
    assert cfg == default_config()
    assert cfg.bot.mode == "paper"
    assert cfg.trailing.activation_pct == Decimal("1.5") and isinstance(
        cfg.risk.position_size_usdt, Decimal
    )


def test_template_documents_every_key() -> None:
    import attrs

    text = TEMPLATE.read_text()
    for section in attrs.fields(Config):
        assert f"[{section.name}]" in text, section.name
        for field in attrs.fields(section.type):  # type: ignore[arg-type]
            documented = (f"{field.name} =", f"[[{section.name}.{field.name}]]")
            assert any(d in text for d in documented), f"{section.name}.{field.name}"


def test_empty_file_gives_defaults() -> None:
    assert parse_config("", environ={}) == default_config()


def test_check_config_on_template_exits_0_and_masks_secrets(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRADEBOT_API_KEY", "super-secret-key-value")
    assert main(["check-config", str(TEMPLATE)]) == 0
    out = capsys.readouterr().out
    assert "[trailing]" in out and 'activation_pct = "1.5"' in out
    assert "super-secret-key-value" not in out
    assert 'api_key_env = "TRADEBOT_API_KEY"  # set (value hidden)' in out


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
    assert "trailing.activaton_pct: unknown key" in err
    assert "risk.position_size_usdt: expected a decimal string, got float 200.5" in err
    assert "exchange.api_key_env: environment variable TB_TEST_MISSING_KEY is not set" in err
    assert "api_secret_env" not in err  # that one is set
    assert proc.stdout == ""


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
        [nonsense]
        a = 1
        """
    )
    assert problems == {
        "bot.mode": "expected one of 'paper', 'live', got str 'demo'",
        "risk.position_size_usdt": "expected a decimal string, got float 200.5",
        "risk.max_open_positions": "expected an integer, got str '3'",
        "take_profit.levels[0].fraction": "expected a decimal string, got float 0.5",
        "take_profit.levels[1].fraction": "required key is missing",
        "exchange.leverage_per_symbol[BTCUSDT]": "expected an integer, got str 'x'",
        "nonsense": "unknown key",
    }


def test_range_and_policy_checks() -> None:
    problems = _problems(
        """
        [trailing]
        activation_pct = "0"
        min_improvement_pct = "5"
        [stop_loss]
        initial_pct = "100"
        [take_profit]
        levels = [{ profit_pct = "2", fraction = "0.8" }, { profit_pct = "1", fraction = "0.8" }]
        [signals]
        url = "http://x"
        reconnect_max_s = 60.0
        [journal]
        retention_days = -1
        """
    )
    assert problems["trailing.activation_pct"] == "must be in (0, 100)"
    assert problems["stop_loss.initial_pct"] == "must be in (0, 100)"
    assert problems["take_profit.levels[1].profit_pct"] == "must be > 0 and increasing"
    assert problems["take_profit.levels"] == "fractions sum to 1.6 > 1"
    assert "signals.url" in problems and "signals.reconnect_max_s" in problems
    assert "journal.retention_days" in problems
    # cross-field rule enforced by the policy record itself
    only_policy = _problems('[trailing]\nmin_improvement_pct = "5"\n')
    assert list(only_policy) == ["trailing.immediate_improvement_pct"]


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
    assert cfg.feed_settings({"TB_SIGNAL_TOKEN": "tok-123"}).token == "tok-123"
    text = format_config(cfg, environ={"TB_SIGNAL_TOKEN": "tok-123"})
    assert "tok-123" not in text and "hunter2" not in text
    assert "postgresql://bot:****@db.example:5432/tb" in text


def test_conversions_to_policy_settings() -> None:
    cfg = parse_config(
        '[take_profit]\nlevels = [{ profit_pct = "2", fraction = "0.5" }]\n'
        '[waves]\nstoplist = ["dogeusdt"]\nmin_score_week = "60"\n[trailing]\nbreakeven_trigger_pct = ""\n',
        environ={},
    )
    ps = cfg.position_settings()
    assert ps.take_profit.levels == ((Decimal("2"), Decimal("0.5")),)
    assert ps.trailing.breakeven_trigger_pct is None
    ws = cfg.wave_settings()
    assert ws.stoplist == frozenset({"DOGEUSDT"}) and ws.min_score_week == Decimal("60")


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


def test_config_sections_mirror_the_policy_settings_exactly() -> None:
    """The TOML sections are separate classes (they carry the config's own validation and
    key documentation), so this pins them to the policy records they feed: same keys, same
    defaults. A key added to a policy without a config key (or vice versa) fails here."""
    import attrs

    from tradebot import config as c
    from tradebot.policies.aged import AgedSettings
    from tradebot.policies.protection import ProtectionSettings
    from tradebot.policies.settings import ExecutionSettings
    from tradebot.policies.sizing import SizingSettings
    from tradebot.policies.stops import StopLossSettings
    from tradebot.policies.trailing import TrailingSettings

    pairs = [
        (c.StopLossConfig, StopLossSettings),
        (c.TrailingConfig, TrailingSettings),
        (c.ProtectionConfig, ProtectionSettings),
        (c.AgedConfig, AgedSettings),
        (c.ExecutionConfig, ExecutionSettings),
        (c.RiskConfig, SizingSettings),
    ]
    for section, policy in pairs:
        mine = {f.name: f.default for f in attrs.fields(section)}
        theirs = {f.name: f.default for f in attrs.fields(policy)}
        assert mine == theirs, section.__name__
    assert default_config().position_settings() == c.Config().position_settings()
