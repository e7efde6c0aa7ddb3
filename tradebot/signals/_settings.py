"""Settings of signal intake: the feed (config ``[signals]``) and waves (config ``[waves]``).

Defaults are DESIGN.md sections 5 and 9. Sizing and risk limits are
:class:`tradebot.policies.sizing.SizingSettings` (config ``[risk]``).
"""

from __future__ import annotations

import random
from decimal import Decimal

import attrs

from tradebot.policies.sizing import SizingSettings
from tradebot.signals._protocol import ProtocolLimits

__all__ = ["FeedSettings", "WaveSettings", "backoff_delay_s"]


@attrs.frozen
class FeedSettings:
    """The signal-service WebSocket client (config ``[signals]``).

    Attributes:
        url: ``ws://`` or ``wss://`` URL of the signal service.
        token: optional auth token, sent as ``Authorization: Bearer <token>`` on the
            WebSocket handshake (resolved from the environment variable the config names;
            never logged — excluded from ``repr``).
        subscribe_message: text sent after every (re)connect; None sends nothing.
        ping_interval_s: WebSocket ping period (DESIGN.md section 9: 20 s).
        pong_timeout_s: a ping unanswered this long drops and re-establishes the connection.
        silence_timeout_s: no message at all for this long (waves come every 900 s) →
            ``STREAM_SILENT`` and reconnect.
        connect_timeout_s: TCP + WebSocket handshake deadline.
        disconnect_timeout_s: how long a closing handshake may take before the socket is
            dropped anyway.
        reconnect_initial_s: first backoff delay.
        reconnect_factor: backoff growth per failed attempt.
        reconnect_max_s: backoff cap (DESIGN.md section 9: <= 30 s).
        reconnect_jitter: fraction in [0, 1]: each delay is ``d * (1 - jitter * U[0,1))``,
            so it never exceeds the cap and clients do not reconnect in lockstep.
        buffer_size: bounded buffer between the socket reader and the consumer (100);
            overflow is journaled ``SIGNAL_BUFFER_OVERFLOW``, never silent.
        limits: protocol validation limits (max message size etc.).
    """

    url: str = "ws://127.0.0.1:8765/signals"
    token: str | None = attrs.field(default=None, repr=False)
    subscribe_message: str | None = '{"type":"subscribe"}'
    ping_interval_s: float = 20.0
    pong_timeout_s: float = 10.0
    silence_timeout_s: float = 1200.0
    connect_timeout_s: float = 10.0
    disconnect_timeout_s: float = 2.0
    reconnect_initial_s: float = 1.0
    reconnect_factor: float = 2.0
    reconnect_max_s: float = 30.0
    reconnect_jitter: float = 0.5
    buffer_size: int = 100
    limits: ProtocolLimits = attrs.field(factory=ProtocolLimits)

    def __attrs_post_init__(self) -> None:
        if not (0.0 <= self.reconnect_jitter <= 1.0):
            raise ValueError("signals.reconnect_jitter must be in [0, 1]")
        if self.reconnect_max_s > 30.0 or self.reconnect_initial_s <= 0:
            raise ValueError("signals.reconnect_max_s must be <= 30 and reconnect_initial_s > 0")
        if self.buffer_size < 1:
            raise ValueError("signals.buffer_size must be >= 1")


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


@attrs.frozen
class WaveSettings:
    """Wave processing (config ``[waves]``; DESIGN.md section 5 "Waves").

    Attributes:
        account: account name, part of the deterministic position id.
        venues: accepted ``exchange`` values of signals (lower case); empty = any. A signal
            for another venue is filtered ``venue_mismatch``.
        delay_min: wave ``T`` is processed once at ``T + delay_min`` minutes (5 → minutes
            5, 20, 35, 50); signals arriving later are journaled ``SIGNAL_LATE``.
        max_trades_per_wave: positions opened per wave at most (5).
        reserve_pct: the ranked candidate list holds ``max_trades_per_wave`` plus this
            percentage, floored (50 → 7); when an open fails the next candidate is tried.
        stoplist: symbols never traded (upper case).
        min_score_week: minimum ``score_week`` (inclusive); None = no filter. A signal
            without a score fails a set minimum.
        min_score_month: minimum ``score_month``, same rules.
        risk: sizing and limits (config ``[risk]``).
    """

    account: str = "default"
    venues: frozenset[str] = frozenset()
    delay_min: int = 5
    max_trades_per_wave: int = 5
    reserve_pct: int = 50
    stoplist: frozenset[str] = frozenset()
    min_score_week: Decimal | None = None
    min_score_month: Decimal | None = None
    risk: SizingSettings = attrs.field(factory=SizingSettings)

    def __attrs_post_init__(self) -> None:
        if not (0 <= self.delay_min < 15):
            raise ValueError("waves.delay_min must be in [0, 15)")
        if self.max_trades_per_wave < 0 or self.reserve_pct < 0:
            raise ValueError("waves.max_trades_per_wave and reserve_pct must be >= 0")

    @property
    def reserve_size(self) -> int:
        """Length of the ranked candidate list: ``max_trades + floor(max_trades * pct/100)``."""
        return self.max_trades_per_wave + self.max_trades_per_wave * self.reserve_pct // 100
