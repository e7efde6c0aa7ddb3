"""Execution bookkeeping shared by the private stream and the REST backfill.

Bybit pushes each execution once on the private ``execution`` topic; while the stream is
down (a gap) the pushes are lost. The venue backfills ``/v5/execution/list`` after every
(re)connect from the last execution seen (docs v5/order/execution), and this tracker makes
the union exactly-once: every execution is emitted the first time its ``execId`` is seen,
whether it came from the stream or the backfill.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

__all__ = ["ExecutionTracker"]


class ExecutionTracker:
    """Seen execution ids (bounded), the newest execution time, and ``orderId →
    positionIdx`` learned from order rows (execution rows carry no ``positionIdx``).

    Args:
        max_ids: how many execution ids / order ids to remember (oldest forgotten first);
            far more than the executions of one backfill window.
    """

    def __init__(self, max_ids: int = 50_000) -> None:
        self.max_ids = max_ids
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._idx_by_order: OrderedDict[str, int] = OrderedDict()
        self.last_exec_ms: int | None = None

    def admit(self, row: Mapping[str, Any]) -> bool:
        """True the first time ``row['execId']`` is seen (then remembered), else False.
        Rows without an ``execId`` are admitted (they cannot be de-duplicated)."""
        exec_id = str(row.get("execId") or "")
        ts = row.get("execTime")
        if ts is not None and str(ts).isdigit():
            t = int(str(ts))
            self.last_exec_ms = t if self.last_exec_ms is None else max(self.last_exec_ms, t)
        if not exec_id:
            return True
        if exec_id in self._seen:
            return False
        self._seen[exec_id] = None
        while len(self._seen) > self.max_ids:
            self._seen.popitem(last=False)
        return True

    def seen(self, exec_id: str) -> bool:
        return exec_id in self._seen

    def note_since_ms(self, since_ms: int) -> None:
        """Start the watermark at ``since_ms`` (the caller's last journaled fill) unless a
        newer execution was already seen."""
        if self.last_exec_ms is None or since_ms > self.last_exec_ms:
            self.last_exec_ms = since_ms

    def note_order(self, order_id: str, position_idx: int) -> None:
        self._idx_by_order[order_id] = position_idx
        self._idx_by_order.move_to_end(order_id)
        while len(self._idx_by_order) > self.max_ids:
            self._idx_by_order.popitem(last=False)

    def idx_of(self, order_id: str) -> int | None:
        return self._idx_by_order.get(order_id)
