"""Settings of signal intake: the feed (config ``[signals]``) and waves (config ``[waves]``).

Defaults are docs/ARCHITECTURE.md §5 and §9; each field's range is declared on it
(:mod:`tradebot.bounds`) and the config file is structured straight into these records
(:mod:`tradebot.config`). Sizing and risk limits are
:class:`tradebot.policies.sizing.SizingSettings` (config ``[risk]``).
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from decimal import Decimal

import attrs

from tradebot.bounds import decimal_field, env_var_name, int_field, number_field, setting, url
from tradebot.policies.sizing import SizingSettings
from tradebot.signals._protocol import ProtocolLimits

__all__ = ["FeedSettings", "WaveSettings", "backoff_delay_s"]


@attrs.frozen
class FeedSettings:
    """The signal-service WebSocket client (config ``[signals]``; docs/ARCHITECTURE.md §9).

    Attributes:
        url: ``ws://`` or ``wss://`` URL of the signal service.
        token_env: NAME of the environment variable holding the auth token; ``""`` = no
            token. Resolved into ``token`` by :meth:`tradebot.config.Config.feed_settings`.
        token: optional auth token, sent as ``Authorization: Bearer <token>`` on the
            WebSocket handshake (never in the config file, never logged — excluded from
            ``repr``).
        subscribe_message: text sent after every (re)connect; None sends nothing.
        ping_interval_s: WebSocket ping period, in (0, 3600] (docs/ARCHITECTURE.md §9: 20 s).
        pong_timeout_s: a ping unanswered this long drops and re-establishes the
            connection, in (0, 3600]; 10.
        silence_timeout_s: no message at all for this long (waves come every 900 s) →
            ``STREAM_SILENT`` and reconnect, in (0, 86400]; 1200.
        connect_timeout_s: TCP + WebSocket handshake deadline, in (0, 300]; 10.
        disconnect_timeout_s: how long a closing handshake may take before the socket is
            dropped anyway, in (0, 300]; 2.
        reconnect_initial_s: first backoff delay, in (0, 30]; 1.
        reconnect_factor: backoff growth per failed attempt, in [1, 10]; 2.
        reconnect_max_s: backoff cap, in (0, 30] (docs/ARCHITECTURE.md §9: <= 30 s); 30.
        reconnect_jitter: fraction in [0, 1]: each delay is ``d * (1 - jitter * U[0,1))``,
            so it never exceeds the cap and clients do not reconnect in lockstep; 0.5.
        buffer_size: bounded buffer between the socket reader and the consumer, in
            [1, 100000] (100); overflow is journaled ``SIGNAL_BUFFER_OVERFLOW``, never silent.
        limits: protocol validation limits (max message size etc.).

    Config keys: ``url``, ``token_env``, ``ping_interval_s``, ``pong_timeout_s``,
    ``silence_timeout_s``, ``reconnect_max_s``, ``buffer_size``; the others are set in code.

    Raises:
        ValueError: a value out of range or not a ws(s) URL.
    """

    url: str = setting("ws://127.0.0.1:8765/signals", validator=url("ws", "wss"))
    token_env: str = setting("", validator=env_var_name(allow_empty=True))
    token: str | None = setting(None, config=False, repr=False)
    subscribe_message: str | None = setting('{"type":"subscribe"}', config=False)
    ping_interval_s: float = number_field(20.0, gt="0", le="3600")
    pong_timeout_s: float = number_field(10.0, gt="0", le="3600")
    silence_timeout_s: float = number_field(1200.0, gt="0", le="86400")
    connect_timeout_s: float = number_field(10.0, gt="0", le="300", config=False)
    disconnect_timeout_s: float = number_field(2.0, gt="0", le="300", config=False)
    reconnect_initial_s: float = number_field(1.0, gt="0", le="30", config=False)
    reconnect_factor: float = number_field(2.0, ge="1", le="10", config=False)
    reconnect_max_s: float = number_field(30.0, gt="0", le="30")
    reconnect_jitter: float = number_field(0.5, ge="0", le="1", config=False)
    buffer_size: int = int_field(100, ge="1", le="100000")
    limits: ProtocolLimits = setting(factory=ProtocolLimits, config=False)


def backoff_delay_s(attempt: int, settings: FeedSettings, rng: random.Random) -> float:
    """Delay before reconnect attempt ``attempt`` (0-based), seconds.

    ``min(max, initial * factor**attempt) * (1 - jitter * rng.random())``: capped
    exponential with multiplicative jitter; always in ``(0, reconnect_max_s]``. A seeded
    ``rng`` makes the schedule reproducible (tests).
    """
    base = min(
        settings.reconnect_max_s,
        settings.reconnect_initial_s * settings.reconnect_factor ** min(attempt, 64),
    )
    return base * (1.0 - settings.reconnect_jitter * rng.random())


def _upper_set(symbols: Iterable[str]) -> frozenset[str]:
    return frozenset(s.upper() for s in symbols)


def _lower_set(venues: Iterable[str]) -> frozenset[str]:
    return frozenset(v.lower() for v in venues)


@attrs.frozen
class WaveSettings:
    """Wave processing (config ``[waves]``; docs/ARCHITECTURE.md §5 "Waves").

    Attributes:
        account: account name, part of the deterministic position id (config
            ``bot.account``, not a ``[waves]`` key).
        venues: accepted ``exchange`` values of signals (stored lower case); empty = any.
            A signal for another venue is filtered ``venue_mismatch``.
        delay_min: wave ``T`` is processed once at ``T + delay_min`` minutes, in [0, 15)
            (5 → minutes 5, 20, 35, 50); signals arriving later are journaled
            ``SIGNAL_LATE``.
        max_trades_per_wave: positions opened per wave at most, in [1, 1000] (5).
        reserve_pct: the ranked candidate list holds ``max_trades_per_wave`` plus this
            percentage, floored, in [0, 1000] (50 → 7); when an open fails the next
            candidate is tried.
        stoplist: symbols never traded (stored upper case).
        min_score_week: minimum ``score_week`` (inclusive), in [0, 100] (the score range
            of :class:`~tradebot.signals._protocol.ProtocolLimits`); None = no filter. A
            signal without a score fails a set minimum.
        min_score_month: minimum ``score_month``, same rules.
        risk: sizing and limits (config ``[risk]``, not a ``[waves]`` key).

    Raises:
        ValueError: a value out of range.
    """

    account: str = setting("default", config=False)
    venues: frozenset[str] = attrs.field(default=frozenset(), converter=_lower_set)
    delay_min: int = int_field(5, ge="0", lt="15")
    max_trades_per_wave: int = int_field(5, ge="1", le="1000")
    reserve_pct: int = int_field(50, ge="0", le="1000")
    stoplist: frozenset[str] = attrs.field(default=frozenset(), converter=_upper_set)
    min_score_week: Decimal | None = decimal_field(None, ge="0", le="100", optional=True)
    min_score_month: Decimal | None = decimal_field(None, ge="0", le="100", optional=True)
    risk: SizingSettings = setting(factory=SizingSettings, config=False)

    @property
    def reserve_size(self) -> int:
        """Length of the ranked candidate list: ``max_trades + floor(max_trades * pct/100)``."""
        return self.max_trades_per_wave + self.max_trades_per_wave * self.reserve_pct // 100
