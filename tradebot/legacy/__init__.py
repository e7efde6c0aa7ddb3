"""``tradebot import legacy``: history and open positions from the bot tradebot replaces.

Issue 14; the old database is described in ../shared/reference/legacy-bot-schema.md.
The flow (docs/ARCHITECTURE.md §7, "Legacy import"):

1. the read-only reader (``adapters/postgres/legacy_source.py``) discovers the old tables
   and columns through ``information_schema`` and reads them in one REPEATABLE READ,
   READ ONLY snapshot (the old bot may keep running);
2. :func:`plan_import` (pure) converts the rows (:mod:`tradebot.legacy._convert`) and
   decides what becomes what, with the validation report (:class:`ImportReport`);
3. the store (``adapters/postgres/legacy_store.py``) writes the plan in one transaction
   (positions with origin ``legacy``, signals, journal events, the ``legacy_import_map``
   idempotency keys) — or, with ``--dry-run``, nothing.

For the Reconciler: an imported OPEN position is a journal-tracked ACTIVE position with a
``position.snapshot`` (qty, entry, stop, trailing phase and water mark). Found open on the
exchange → ``PositionSupervisor.resume`` restores it from that snapshot. Found flat → close
it in the journal with :data:`CLOSED_BEFORE_IMPORT` when
``adapters.postgres.legacy_store.is_legacy_origin(dsn, position_id)`` (or
:func:`close_reason_when_flat`) says it is legacy-origin.
"""

from __future__ import annotations

from tradebot.legacy._convert import (
    nearest_step as nearest_step,
    normalise_symbol as normalise_symbol,
    to_aware_utc as to_aware_utc,
    to_decimal_exact as to_decimal_exact,
)
from tradebot.legacy._model import (
    AdoptionSpec as AdoptionSpec,
    ImportItem as ImportItem,
    ImportPlan as ImportPlan,
    LegacySource as LegacySource,
    PositionRow as PositionRow,
    SignalRow as SignalRow,
    SourceTable as SourceTable,
    TargetState as TargetState,
)
from tradebot.legacy._plan import (
    CLOSED_BEFORE_IMPORT as CLOSED_BEFORE_IMPORT,
    ORIGIN_LEGACY as ORIGIN_LEGACY,
    SnapshotBuilder as SnapshotBuilder,
    finish_report as finish_report,
    legacy_event_id as legacy_event_id,
    legacy_position_id as legacy_position_id,
    plan_import as plan_import,
)
from tradebot.legacy._report import (
    ImportReport as ImportReport,
    MoneySums as MoneySums,
    TableReport as TableReport,
)
from tradebot.legacy._schema import IMPORTED as IMPORTED
from tradebot.legacy._schema import NOT_IMPORTED as NOT_IMPORTED
from tradebot.legacy._schema import TableSpec as TableSpec

__all__ = [
    "CLOSED_BEFORE_IMPORT",
    "IMPORTED",
    "NOT_IMPORTED",
    "ORIGIN_LEGACY",
    "AdoptionSpec",
    "ImportItem",
    "ImportPlan",
    "ImportReport",
    "LegacySource",
    "MoneySums",
    "PositionRow",
    "SignalRow",
    "SnapshotBuilder",
    "SourceTable",
    "TableReport",
    "TableSpec",
    "TargetState",
    "close_reason_when_flat",
    "finish_report",
    "legacy_event_id",
    "legacy_position_id",
    "nearest_step",
    "normalise_symbol",
    "plan_import",
    "to_aware_utc",
    "to_decimal_exact",
]


def close_reason_when_flat(origin: str, default: str) -> str:
    """The close reason of a tracked position the Reconciler finds flat: legacy-origin
    (``positions.origin == ORIGIN_LEGACY``) → :data:`CLOSED_BEFORE_IMPORT`, else
    ``default`` (the Reconciler's own reason)."""
    return CLOSED_BEFORE_IMPORT if origin == ORIGIN_LEGACY else default
