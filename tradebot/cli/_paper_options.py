"""What a ``tradebot paper`` run takes and gives: its options (:class:`PaperRunOptions`,
:func:`parse_speed`), its result and failure, the venue profiles, and the settings it
reads from a loaded config (venue profile fees, leverage, position and wave settings)."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import attrs

from adapters.paper import binance_like, bybit_like
from tradebot.errors import TradebotError
from tradebot.price_checks import DEFAULT_MAX_MOVE_PCT
from tradebot.report import RunReport

__all__ = [
    "EQUITY_SAMPLE_S",
    "PROFILES",
    "PaperRunFailed",
    "PaperRunOptions",
    "PaperRunResult",
    "QUERY_METHODS",
    "SIGNAL_ARRIVAL_OFFSET_S",
    "default_home",
    "parse_speed",
]


PROFILES = {"bybit": bybit_like, "binance": binance_like}
EQUITY_SAMPLE_S = 900
QUERY_METHODS = ("instruments", "balance", "get_order", "open_orders", "positions", "stops")
"""ExchangePort methods that only read venue state."""
SIGNAL_ARRIVAL_OFFSET_S = 30.0
"""Signals of wave T arrive T + 30 s (the signal service computes, then publishes)."""


def parse_speed(text: str) -> float | None:
    """``max`` → None (virtual time, autojump); ``realtime`` → 1.0; ``60x`` → 60.0.

    Raises:
        ValueError: anything else, or a factor <= 0.
    """
    t = text.strip().lower()
    if t == "max":
        return None
    if t in ("realtime", "1x"):
        return 1.0
    if t.endswith("x"):
        try:
            f = float(t[:-1])
        except ValueError:
            raise ValueError(f"bad speed {text!r}: max, realtime or a factor like 60x") from None
        if f > 0 and math.isfinite(f):
            return f
    raise ValueError(f"bad speed {text!r}: max, realtime or a factor like 60x")


@attrs.frozen
class PaperRunOptions:
    """What ``tradebot paper`` runs.

    Attributes:
        data_dir: kline directory; None = the bundled 3 days.
        symbols: subset of symbols; None = all in ``data_dir``.
        signals: ``"auto"`` (bundled file for bundled data, else ``generate``),
            ``"generate"`` (tradebot.signalgen on the replayed prices), a JSON-lines file
            path, or a ``ws://``/``wss://`` URL of a signal service.
        start, end: replay window (aware UTC); None = the data's common window.
        speed: see :func:`parse_speed` (None = max).
        venue_profile: ``"bybit"`` or ``"binance"``.
        dsn: journal database; None = the embedded server's ``tradebot_paper`` database,
            recreated for every run.
        reset_db: with an explicit ``dsn``, empty the journal tables first (otherwise a
            database that already holds events is refused).
        home: embedded server home (None = ``$TRADEBOT_HOME`` or the default).
        wallet_usdt: starting wallet of the paper account.
        latency_s: paper venue round trip of every state-changing request (virtual seconds
            under ``max``); queries are answered at once.
        config: a loaded ``tradebot.config.Config`` (policies, waves, risk, leverage, the
            paper venue's fees and slippage, the signal-service client settings), or None
            for the built-in defaults.
        progress: draw a progress line on ``progress_stream`` while running.
        max_move_pct: the replay's bound on a move between consecutive price points,
            percent (None = price jumps allowed); see :mod:`tradebot.price_checks`.
        allow_gaps: accept missing minutes in the data.
        ops: run the operations surface beside the account (``[health]`` HTTP server,
            control API, alerts, sd_notify ``READY=1`` / ``WATCHDOG=1`` / ``STOPPING=1``;
            :mod:`tradebot.cli._ops_wiring`); needs a ``speed`` (not virtual ``max``).
    """

    data_dir: Path | None = None
    symbols: Sequence[str] | None = None
    signals: str = "auto"
    start: datetime | None = None
    end: datetime | None = None
    speed: float | None = None
    venue_profile: str = "bybit"
    dsn: str | None = None
    reset_db: bool = False
    home: Path | None = None
    wallet_usdt: Decimal = Decimal(10000)
    latency_s: float = 0.05
    config: Any = None
    progress: bool = True
    max_move_pct: Decimal | None = DEFAULT_MAX_MOVE_PCT
    allow_gaps: bool = False
    ops: bool = False


@attrs.frozen
class PaperRunResult:
    """The report plus what a caller needs to look further (the journal DSN)."""

    report: RunReport
    dsn: str
    instrument_lines: tuple[str, ...]
    examples: dict[str, list[str]]
    notes: tuple[str, ...] = ()
    """Human notes about the run's inputs (symbols left out of the window, ...)."""


class PaperRunFailed(TradebotError):
    """The paper run stopped on an error (after the journal closed with ``bot.stopped``).

    Attributes:
        user_cause: the error that stopped it (possibly an exception group; the CLI shows
            its leaf, :func:`tradebot.cli._errors.user_error`).
        user_notes: what was left behind: the positions still open on the paper venue,
            each with its stop (they are not flattened on an error).
        open_positions: the same as ``(symbol, position_side, qty, entry_price, stops)``.
    """

    def __init__(
        self,
        cause: BaseException,
        notes: list[str],
        open_positions: list[tuple[str, str, Decimal, Decimal, list[Decimal]]],
    ) -> None:
        super().__init__(f"paper run failed: {type(cause).__name__}: {cause}")
        self.user_cause = cause
        self.user_notes = notes
        self.open_positions = open_positions


def default_home() -> Path | None:
    env = os.environ.get("TRADEBOT_HOME", "").strip()
    return Path(env).expanduser() if env else None


# --- settings from the config -------------------------------------------------------------


def _default_config() -> Any:
    """``tradebot.config.default_config()`` (None if the config module is unavailable)."""
    try:
        from tradebot.config import default_config
    except ImportError:  # pragma: no cover
        return None
    return default_config()


def _profile(opts: PaperRunOptions) -> Any:
    """The venue profile; fees and slippage from ``[paper]`` of the config when given."""
    make = PROFILES[opts.venue_profile]
    paper = getattr(opts.config, "paper", None)
    if paper is None:
        return make()
    return make(
        maker_fee_rate=Decimal(paper.maker_fee_pct) / 100,
        taker_fee_rate=Decimal(paper.taker_fee_pct) / 100,
        market_slippage_bps=Decimal(paper.slippage_pct) * 100,
    )


def _leverage(config: Any, symbols: Sequence[str]) -> dict[str, int]:
    """Leverage per symbol: ``[exchange]`` of the config, else 5 (the config default)."""
    exchange = getattr(config, "exchange", None)
    default = int(getattr(exchange, "default_leverage", 5))
    per_symbol = dict(getattr(exchange, "leverage_per_symbol", {}) or {})
    return {s: int(per_symbol.get(s, default)) for s in symbols}


def _settings(config: Any) -> tuple[Any, Any, str]:
    """(PositionSettings, WaveSettings, account) from a loaded config, or the defaults."""
    from tradebot.policies import PositionSettings
    from tradebot.signals import WaveSettings

    if config is None:
        return PositionSettings(), WaveSettings(account="paper"), "paper"
    to_pos = getattr(config, "position_settings", None)
    to_wave = getattr(config, "wave_settings", None)
    pos = to_pos() if callable(to_pos) else PositionSettings()
    wave = to_wave() if callable(to_wave) else WaveSettings(account="paper")
    account = str(getattr(wave, "account", "paper"))
    return pos, wave, account
