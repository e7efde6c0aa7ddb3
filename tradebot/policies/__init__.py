"""Pure trading policies: Decimal in, Decimal out, no I/O, no clock (docs/ARCHITECTURE.md §5).

Each settings class is a frozen attrs class whose defaults are the docs/ARCHITECTURE.md §5
defaults, with each field's unit in its name and its valid range on the field
(:mod:`tradebot.bounds`); the config file is structured straight into them
(:mod:`tradebot.config`).
"""

from tradebot.policies.aged import (
    AgedPhase,
    AgedSettings,
    AgedTarget,
    aged_target,
    breakeven_exit_price,
    should_replace_exit,
)
from tradebot.policies.protection import (
    ProtectionSettings,
    RepairAction,
    RepairDecision,
    decide_repair,
)
from tradebot.policies.reconcile import ReconcileSettings
from tradebot.policies.settings import ExecutionSettings, PositionSettings
from tradebot.policies.sizing import (
    SizingResult,
    SizingSettings,
    check_limits,
    size_position,
)
from tradebot.policies.stops import (
    NoValidStop,
    StopLossSettings,
    emergency_stop_price,
    initial_stop_price,
    is_protective,
    is_tighter,
    protective_stop_price,
    stop_violations,
    tightest,
)
from tradebot.policies.take_profit import (
    TakeProfitLevel,
    TakeProfitOrder,
    TakeProfitSettings,
    breakeven_stop_price,
    due_take_profits,
)
from tradebot.policies.trailing import (
    QuietBand,
    TrailingDecision,
    TrailingPhase,
    TrailingSettings,
    TrailingState,
    improvement_pct,
    quiet_band,
    trailing_step,
)

__all__ = [
    "AgedPhase",
    "AgedSettings",
    "AgedTarget",
    "ExecutionSettings",
    "NoValidStop",
    "PositionSettings",
    "ProtectionSettings",
    "QuietBand",
    "ReconcileSettings",
    "RepairAction",
    "RepairDecision",
    "SizingResult",
    "SizingSettings",
    "StopLossSettings",
    "TakeProfitLevel",
    "TakeProfitOrder",
    "TakeProfitSettings",
    "TrailingDecision",
    "TrailingPhase",
    "TrailingSettings",
    "TrailingState",
    "aged_target",
    "breakeven_exit_price",
    "breakeven_stop_price",
    "check_limits",
    "decide_repair",
    "due_take_profits",
    "emergency_stop_price",
    "improvement_pct",
    "initial_stop_price",
    "is_protective",
    "is_tighter",
    "protective_stop_price",
    "quiet_band",
    "should_replace_exit",
    "size_position",
    "stop_violations",
    "tightest",
    "trailing_step",
]
