"""Reconciliation of one account: the Reconciler actor and its narrow zombie-cancel port
(docs/ARCHITECTURE.md §3, §7)."""

from actors.reconcile._reconciler import (
    PositionsView,
    ReconcileNow,
    Reconciler,
    ReconcileReport,
)
from actors.reconcile._zombie import ZombieCanceller

__all__ = ["PositionsView", "ReconcileNow", "ReconcileReport", "Reconciler", "ZombieCanceller"]
