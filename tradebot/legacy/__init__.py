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
)
from tradebot.legacy._convert import (
    normalise_symbol as normalise_symbol,
)
from tradebot.legacy._convert import (
    to_aware_utc as to_aware_utc,
)
from tradebot.legacy._convert import (
    to_decimal_exact as to_decimal_exact,
)
from tradebot.legacy._model import (
    AdoptionSpec as AdoptionSpec,
)
from tradebot.legacy._model import (
    ImportItem as ImportItem,
)
from tradebot.legacy._model import (
    ImportPlan as ImportPlan,
)
from tradebot.legacy._model import (
    LegacySource as LegacySource,
)
from tradebot.legacy._model import (
    PositionRow as PositionRow,
)
from tradebot.legacy._model import (
    SignalRow as SignalRow,
)
from tradebot.legacy._model import (
    SourceTable as SourceTable,
)
from tradebot.legacy._model import (
    TargetState as TargetState,
)
from tradebot.legacy._plan import (
    CLOSED_BEFORE_IMPORT as CLOSED_BEFORE_IMPORT,
)
from tradebot.legacy._plan import (
    ORIGIN_LEGACY as ORIGIN_LEGACY,
)
from tradebot.legacy._plan import (
    SnapshotBuilder as SnapshotBuilder,
)
from tradebot.legacy._plan import (
    finish_report as finish_report,
)
from tradebot.legacy._plan import (
    legacy_event_id as legacy_event_id,
)
from tradebot.legacy._plan import (
    legacy_position_id as legacy_position_id,
)
from tradebot.legacy._plan import (
    plan_import as plan_import,
)
from tradebot.legacy._report import (
    ImportReport as ImportReport,
)
from tradebot.legacy._report import (
    MoneySums as MoneySums,
)
from tradebot.legacy._report import (
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
