"""The ``position.snapshot`` of an imported OPEN legacy position, built with the
PositionActor's own codec (actors/position/_state.py), so a restarted actor reads it back
exactly as it reads its own snapshots (``load_snapshot``)."""

from __future__ import annotations

from typing import Any

from actors.position import Lifecycle
from actors.position._state import PositionRecord, snapshot_data
from tradebot.legacy import AdoptionSpec

__all__ = ["legacy_snapshot"]


def legacy_snapshot(spec: AdoptionSpec) -> dict[str, Any]:
    """Snapshot data of ``spec``: lifecycle ACTIVE, ``adopted`` (tracked without our
    intent), requested = filled = held quantity, the entry price and time, the intended
    stop price (the old bot's stop; the live one is asked from the venue at restart) and
    the trailing state (phase, water mark)."""
    r = PositionRecord.new(spec.position_id, spec.symbol, spec.position_side, adopted=True)
    r.lifecycle.restore(Lifecycle.ACTIVE)
    r.req_qty = r.filled_qty = r.qty = spec.qty
    r.entry_price = spec.entry_price
    r.opened_at = spec.opened_at
    r.stop_price = spec.stop_price
    r.trailing = spec.trailing
    r.origin = "legacy"
    r.imported = True  # found flat at its first recovery: "closed before import"
    return snapshot_data(r)
