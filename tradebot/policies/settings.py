"""Everything a PositionActor needs to know about policy and execution, in one record."""

from __future__ import annotations

import attrs

from tradebot.policies.aged import AgedSettings
from tradebot.policies.protection import ProtectionSettings
from tradebot.policies.stops import StopLossSettings
from tradebot.policies.take_profit import TakeProfitSettings
from tradebot.policies.trailing import TrailingSettings

__all__ = ["ExecutionSettings", "PositionSettings"]


@attrs.frozen
class ExecutionSettings:
    """How hard the PositionActor tries (config section ``execution``).

    Attributes:
        stop_attempts: attempts to place/move a stop before giving up (>= 1); default 4.
        retry_backoff_s: first retry delay, doubled per attempt (s); default 0.25.
        fill_timeout_s: how long to wait for an entry fill before cancelling the rest (s).
        query_attempts: attempts of a client-id lookup that resolves an unknown outcome.
        flatten_attempts: attempts to flatten (reduce-only market) before the emergency stop.
        age_tick_s: interval of the aged-exit clock (s); default 60.
        entry_probe_after_s: when an entry has no answer after this many seconds, look its
            client id up in parallel (a lost answer must not leave a fill unprotected for
            the whole request timeout); default 1.
        entry_probe_interval_s: interval of that lookup (s); default 0.5.
        snapshot_interval_s: minimum seconds between water-mark-only snapshots; stop moves
            and phase changes are snapshotted at once; default 0 = every new high/low-water
            mark (exact resume after a crash; new extremes are far rarer than ticks).
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

    def __attrs_post_init__(self) -> None:
        if self.stop_attempts < 1 or self.query_attempts < 1 or self.flatten_attempts < 1:
            raise ValueError("execution attempts must be >= 1")
        if self.entry_probe_after_s <= 0 or self.entry_probe_interval_s <= 0:
            raise ValueError("execution.entry_probe_* must be > 0")
        if self.retry_backoff_s < 0 or self.fill_timeout_s <= 0 or self.age_tick_s <= 0:
            raise ValueError("execution timings must be positive")


@attrs.frozen
class PositionSettings:
    """All policy settings of one position (defaults: DESIGN.md section 5)."""

    stop_loss: StopLossSettings = attrs.Factory(StopLossSettings)
    trailing: TrailingSettings = attrs.Factory(TrailingSettings)
    protection: ProtectionSettings = attrs.Factory(ProtectionSettings)
    take_profit: TakeProfitSettings = attrs.Factory(TakeProfitSettings)
    aged: AgedSettings = attrs.Factory(AgedSettings)
    execution: ExecutionSettings = attrs.Factory(ExecutionSettings)
