"""The validation report of ``tradebot import legacy`` (text and JSON).

Per source table: rows read, imported (would be, in a dry run), already imported (an
earlier run), skipped with the reason; columns missing and columns the importer did not
know. Money: values converted from FLOAT, values moved by the tick/step rounding, prices
imported as unknown. Sums of realized PnL and fees: in the source (as decimals) over every
row read and over the rows tradebot holds (imported now or before), and in tradebot over
the same rows: the last two must be equal. Open positions: how each will be adopted.
Decimal values are JSON strings.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import attrs

__all__ = ["ImportReport", "MoneySums", "TableReport"]


@attrs.define
class TableReport:
    """One source table's counts (see the module docstring)."""

    table: str
    present: bool = True
    imported_by_tradebot: bool = True
    read: int = 0
    imported: int = 0
    already_imported: int = 0
    skipped: dict[str, int] = attrs.Factory(dict)
    missing_columns: list[str] = attrs.Factory(list)
    unknown_columns: list[str] = attrs.Factory(list)
    note: str = ""

    def skip(self, reason: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1

    @property
    def skipped_total(self) -> int:
        return sum(self.skipped.values())

    def to_json(self) -> dict[str, Any]:
        return {
            "table": self.table,
            "present": self.present,
            "imported_by_tradebot": self.imported_by_tradebot,
            "read": self.read,
            "imported": self.imported,
            "already_imported": self.already_imported,
            "skipped": self.skipped_total,
            "skipped_reasons": dict(sorted(self.skipped.items())),
            "missing_columns": sorted(self.missing_columns),
            "unknown_columns": sorted(self.unknown_columns),
            "note": self.note,
        }


@attrs.define
class MoneySums:
    """Sums of realized PnL and fees (USDT) over a set of positions."""

    realized_pnl_usdt: Decimal = Decimal(0)
    fees_usdt: Decimal = Decimal(0)
    positions: int = 0

    def add(self, pnl: Decimal | None, fees: Decimal | None) -> None:
        self.positions += 1
        if pnl is not None:
            self.realized_pnl_usdt += pnl
        if fees is not None:
            self.fees_usdt += fees

    def to_json(self) -> dict[str, Any]:
        return {
            "realized_pnl_usdt": str(self.realized_pnl_usdt),
            "fees_usdt": str(self.fees_usdt),
            "positions": self.positions,
        }


def _same(a: MoneySums, b: MoneySums) -> bool:
    return (
        a.realized_pnl_usdt == b.realized_pnl_usdt
        and a.fees_usdt == b.fees_usdt
        and a.positions == b.positions
    )


@attrs.define
class ImportReport:
    """The whole report of one run (see the module docstring).

    Attributes:
        dry_run: nothing was written; ``imported`` counts are what a run would import.
        source: the source DSN without its password.
        instruments: where tick sizes and steps came from, and how many symbols.
        naive_tz: the zone naive timestamps were read in.
        since: the ``--since`` bound (ISO-8601) or "".
        tables: per source table.
        floats_converted: FLOAT values of the rows this run imports, converted to decimals.
        moved: per ``table.column``, values of those rows the tick/step rounding changed.
        prices_unknown: their prices that were zero/negative/non-finite: imported as unknown.
        naive_timestamps: their timestamps without time zone, read in ``naive_tz``.
        symbols_normalised: their ccxt-style symbols rewritten.
        (The money section covers what this run imports: a second run reports zeros.)
        source_all / source_kept / tradebot: the money sums (module docstring).
        open_positions: one entry per OPEN source position (how it is adopted).
        notes: anything else the operator must know.
    """

    dry_run: bool
    source: str
    instruments: str
    naive_tz: str = "UTC"
    since: str = ""
    run_id: str = ""
    tables: dict[str, TableReport] = attrs.Factory(dict)
    floats_converted: int = 0
    moved: dict[str, int] = attrs.Factory(dict)
    prices_unknown: list[dict[str, str]] = attrs.Factory(list)
    naive_timestamps: int = 0
    symbols_normalised: int = 0
    source_all: MoneySums = attrs.Factory(MoneySums)
    source_kept: MoneySums = attrs.Factory(MoneySums)
    tradebot: MoneySums = attrs.Factory(MoneySums)
    open_positions: list[dict[str, Any]] = attrs.Factory(list)
    notes: list[str] = attrs.Factory(list)

    def table(self, name: str) -> TableReport:
        if name not in self.tables:
            self.tables[name] = TableReport(name)
        return self.tables[name]

    def count_moved(self, column: str) -> None:
        self.moved[column] = self.moved.get(column, 0) + 1

    @property
    def imported_total(self) -> int:
        return sum(t.imported for t in self.tables.values())

    @property
    def already_total(self) -> int:
        return sum(t.already_imported for t in self.tables.values())

    @property
    def sums_equal(self) -> bool:
        """Source sums over the rows tradebot holds == tradebot's sums over them."""
        return _same(self.source_kept, self.tradebot)

    @property
    def summary(self) -> str:
        verb = "would import" if self.dry_run else "imported"
        if self.imported_total == 0:
            if self.already_total:
                return (
                    f"nothing to import: all {self.already_total} importable rows were "
                    "imported by an earlier run"
                )
            return "nothing to import"
        tail = f"; {self.already_total} already imported earlier" if self.already_total else ""
        return f"{verb} {self.imported_total} rows{tail}"

    def to_json(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "run_id": self.run_id,
            "source": self.source,
            "instruments": self.instruments,
            "naive_tz": self.naive_tz,
            "since": self.since,
            "summary": self.summary,
            "imported_total": self.imported_total,
            "already_imported_total": self.already_total,
            "tables": {k: t.to_json() for k, t in sorted(self.tables.items())},
            "money": {
                "floats_converted": self.floats_converted,
                "moved_by_tick_or_step": dict(sorted(self.moved.items())),
                "moved_total": sum(self.moved.values()),
                "prices_unknown": list(self.prices_unknown),
                "naive_timestamps": self.naive_timestamps,
                "symbols_normalised": self.symbols_normalised,
            },
            "sums": {
                "source_all_rows": self.source_all.to_json(),
                "source_rows_in_tradebot": self.source_kept.to_json(),
                "tradebot": self.tradebot.to_json(),
                "equal": self.sums_equal,
            },
            "open_positions": list(self.open_positions),
            "notes": list(self.notes),
        }

    def to_json_text(self) -> str:
        return json.dumps(self.to_json(), indent=2, sort_keys=False)

    def render_text(self) -> str:
        """The human report (one block per section)."""
        out: list[str] = []
        head = "DRY RUN (nothing written): " if self.dry_run else ""
        out.append(f"{head}legacy import from {self.source}")
        out.append(f"  {self.summary}")
        out.append(
            f"  instruments: {self.instruments}; naive timestamps read as {self.naive_tz}"
            + (f"; since {self.since}" if self.since else "")
        )
        out.append("")
        out.append(f"  {'table':<28} {'read':>7} {'imported':>9} {'earlier':>8} {'skipped':>8}")
        for name, t in sorted(self.tables.items()):
            if not t.present:
                out.append(f"  {name:<28} {'missing':>7}  {t.note}")
                continue
            out.append(
                f"  {name:<28} {t.read:>7} {t.imported:>9} {t.already_imported:>8} "
                f"{t.skipped_total:>8}" + (f"  {t.note}" if t.note else "")
            )
            for reason, n in sorted(t.skipped.items()):
                out.append(f"      skipped {n}: {reason}")
            if t.missing_columns:
                out.append(f"      missing columns: {', '.join(sorted(t.missing_columns))}")
            if t.unknown_columns:
                out.append(
                    f"      columns not known (kept in the journal, not mapped): "
                    f"{', '.join(sorted(t.unknown_columns))}"
                )
        out.append("")
        moved = sum(self.moved.values())
        out.append(
            f"  money: {self.floats_converted} FLOAT values converted (shortest round-trip "
            f"decimal); {moved} moved by the tick/step rounding"
        )
        for col, n in sorted(self.moved.items()):
            out.append(f"      {col}: {n}")
        out.append(f"  prices imported as unknown (zero or negative): {len(self.prices_unknown)}")
        for p in self.prices_unknown:
            out.append(f"      {p['table']} id {p['id']} {p['column']} = {p['value']}")
        out.append(
            f"  naive timestamps: {self.naive_timestamps}; symbols normalised: "
            f"{self.symbols_normalised}"
        )
        out.append("")
        out.append("  realized PnL / fees (USDT):")
        for label, s in (
            ("source, every row read", self.source_all),
            ("source, rows in tradebot", self.source_kept),
            ("tradebot" + (" (after this run)" if self.dry_run else ""), self.tradebot),
        ):
            out.append(
                f"      {label:<34} pnl {s.realized_pnl_usdt}  fees {s.fees_usdt}  "
                f"({s.positions} positions)"
            )
        out.append("      " + ("equal" if self.sums_equal else "NOT EQUAL"))
        out.append("")
        out.append(f"  open positions in the source: {len(self.open_positions)}")
        for p in self.open_positions:
            out.append(f"      {p['description']}")
        for note in self.notes:
            out.append(f"  note: {note}")
        return "\n".join(out)
