"""Everything a PositionActor needs to know about policy and execution, in one record.

Each section record is also the config section of that name (``[stop_loss]``,
``[trailing]``, ``[protection]``, ``[take_profit]``, ``[aged]``, ``[execution]``):
:mod:`tradebot.config` structures the TOML straight into them.
"""

from __future__ import annotations

import attrs

from tradebot.bounds import int_field, number_field
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
        stop_attempts: attempts to place/move a stop before giving up, in [1, 100];
            default 4.
        retry_backoff_s: first retry delay, doubled per attempt (s), in [0, 60]; 0.25.
        fill_timeout_s: how long to wait for an entry fill before cancelling the rest (s),
            in (0, 3600]; 10.
        query_attempts: attempts of a client-id lookup that resolves an unknown outcome,
            in [1, 100]; 6.
        flatten_attempts: attempts to flatten (reduce-only market) before the emergency
            stop, in [1, 100]; 3.
        age_tick_s: interval of the aged-exit clock (s), in (0, 86400]; default 60.
        snapshot_interval_s: minimum seconds between water-mark-only snapshots, in
            [0, 86400]; stop moves and phase changes are snapshotted at once; default 0 =
            every new high/low-water mark (exact resume after a crash; new extremes are far
            rarer than ticks).
        entry_probe_after_s: when an entry has no answer after this many seconds, look its
            client id up in parallel (a lost answer must not leave a fill unprotected for
            the whole request timeout), in (0, 3600]; default 1.
        entry_probe_interval_s: interval of that lookup (s), in (0, 3600]; default 0.5.

    Raises:
        ValueError: a value out of range.
    """

    stop_attempts: int = int_field(4, ge="1", le="100")
    retry_backoff_s: float = number_field(0.25, ge="0", le="60")
    fill_timeout_s: float = number_field(10.0, gt="0", le="3600")
    query_attempts: int = int_field(6, ge="1", le="100")
    flatten_attempts: int = int_field(3, ge="1", le="100")
    age_tick_s: float = number_field(60.0, gt="0", le="86400")
    snapshot_interval_s: float = number_field(0.0, ge="0", le="86400")
    entry_probe_after_s: float = number_field(1.0, gt="0", le="3600")
    entry_probe_interval_s: float = number_field(0.5, gt="0", le="3600")


@attrs.frozen
class PositionSettings:
    """All policy settings of one position (defaults: docs/ARCHITECTURE.md §5)."""

    stop_loss: StopLossSettings = attrs.Factory(StopLossSettings)
    trailing: TrailingSettings = attrs.Factory(TrailingSettings)
    protection: ProtectionSettings = attrs.Factory(ProtectionSettings)
    take_profit: TakeProfitSettings = attrs.Factory(TakeProfitSettings)
    aged: AgedSettings = attrs.Factory(AgedSettings)
    execution: ExecutionSettings = attrs.Factory(ExecutionSettings)
