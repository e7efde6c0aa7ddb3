"""Reconciliation settings (config section ``[reconcile]``; docs/ARCHITECTURE.md §3, §7).

The Reconciler compares the journal's open positions, the exchange's positions and the
exchange's open orders (conditional/stop orders included) at start-up, every
``interval_s`` and after every private-stream gap.
"""

from __future__ import annotations

from typing import Literal

import attrs

from tradebot.bounds import number_field, setting

__all__ = ["ReconcileSettings"]


@attrs.frozen
class ReconcileSettings:
    """``[reconcile]``.

    Attributes:
        interval_s: seconds between periodic passes, in (0, 86400]; default 60.
        untracked: what to do with a position on the exchange that the journal does not
            track (opened by hand, journal lost): ``"adopt"`` — a PositionActor manages it,
            with an emergency stop at ``protection.emergency_pct`` from its entry when it
            has none, then the trailing and aged rules; ``"alert"`` — journaled and alerted
            (critical), left alone. Default ``"adopt"``.
        gap_debounce_s: a burst of private-stream gaps starts one pass, at most one per
            this many seconds, in [0, 3600]; default 5.

    Raises:
        ValueError: a value out of range or an unknown ``untracked``.
    """

    interval_s: float = number_field(60.0, gt="0", le="86400")
    untracked: Literal["adopt", "alert"] = setting(
        "adopt", validator=attrs.validators.in_(("adopt", "alert"))
    )
    gap_debounce_s: float = number_field(5.0, ge="0", le="3600")
