"""The run report of ``tradebot paper`` / replay: what happened, in a form a trader trusts.

Sources (nothing is estimated):

* **Journal event counts** (``events.type`` → count, read back from the journal database
  after the run, so every count in the report is a count of journaled events):
  ``positions_opened`` = ``position.active``, ``positions_closed`` = ``position.closed``,
  ``trailing_activations`` = ``trailing.activated``, ``stop_moves`` = ``stop.moved``,
  ``tp_fills`` = ``tp.filled``, ``aged_exits`` = ``position.closed`` events whose
  ``data.reason`` is ``aged_exit`` when the close reasons are given (this also counts an
  aged exit limit that filled the moment it was placed), else ``aged.exit_filled`` +
  ``aged.market_close``; ``rollbacks`` = ``position.rolled_back``, ``events_journaled`` =
  all events, ``events_by_type``.
* **The venue's trade list** (the paper engine's executions, :class:`tradebot.ports.Fill`):
  ``fees_usdt`` = sum of trading fees; realized PnL is recomputed here from the fills with
  average-cost accounting per (symbol, position side) (a reducing fill realizes
  ``sign * (price - average entry) * qty``); funding payments (``Fill(reason="funding")``,
  ``fee_usdt`` = amount paid) are subtracted. ``pnl_usdt`` = realized - fees - funding paid.
  ``trades_sha256`` = sha256 of the trade list ordered by (time, client order id), one
  line per execution
  ``ts|symbol|side|position_side|qty|price|fee_usdt|client_order_id|reason`` (venue-internal
  ids excluded), ``\\n``-terminated, UTF-8. Equal inputs must give equal hashes
  (determinism, docs/ARCHITECTURE.md §8).
* **The invariant monitor** (:mod:`tradebot.invariants`): ``stop_coverage_pct``,
  ``max_unprotected_ms``, ``invariant_violations``.
* **Equity curve** (wallet + unrealized PnL sampled by the driver): ``max_drawdown_pct`` =
  largest fall from a running peak, in percent of that peak. Without samples the curve is
  the realized one (starting wallet + realized - fees - funding after each fill).
* The driver: ``ticks_processed`` (mark updates delivered), ``wall_s``, ``sim_s``.

Decimals are strings in the JSON (docs/ARCHITECTURE.md §1 invariant 5); ``wall_s`` is a float (it is not
money). :func:`format_table` renders the human table; :func:`write_equity_chart` the PNG.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import attrs

from tradebot.events import Event, EventType
from tradebot.invariants import InvariantSummary
from tradebot.money import ZERO
from tradebot.ports import Fill
from tradebot.price_checks import DEFAULT_GAP_FILL_PCT, stop_slippage_pct

__all__ = [
    "INCIDENT_TYPES",
    "REPORT_KEYS",
    "RunReport",
    "build_report",
    "count_events",
    "equity_from_fills",
    "format_table",
    "incident_counts",
    "max_drawdown_pct",
    "realized_pnl_usdt",
    "require_chart_support",
    "stop_fill_summary",
    "trade_line",
    "trades_sha256",
    "write_equity_chart",
]

REPORT_KEYS: tuple[str, ...] = (
    "positions_opened",
    "positions_closed",
    "stop_coverage_pct",
    "max_unprotected_ms",
    "invariant_violations",
    "trailing_activations",
    "stop_moves",
    "tp_fills",
    "aged_exits",
    "rollbacks",
    "pnl_usdt",
    "fees_usdt",
    "max_drawdown_pct",
    "events_journaled",
    "events_by_type",
    "ticks_processed",
    "wall_s",
    "sim_s",
    "trades_sha256",
)
"""The JSON keys every report has (issue 6), in output order."""

_CENT = Decimal("0.01")
_SLIP_Q = Decimal("0.0001")
_FUNDING = "funding"


def count_events(events: Iterable[Event]) -> dict[str, int]:
    """``events.type`` value → count, for in-memory journals (the DB does a GROUP BY)."""
    return dict(Counter(e.type.value for e in events))


def trade_line(fill: Fill) -> str:
    """The canonical text of one execution (see the module docstring)."""
    return "|".join(
        (
            fill.ts.isoformat(),
            fill.symbol,
            fill.side.value,
            fill.position_side.value,
            str(fill.qty),
            str(fill.price),
            str(fill.fee_usdt),
            fill.client_order_id,
            fill.reason,
        )
    )


def _trade_key(f: Fill) -> tuple[Any, ...]:
    return (
        f.ts,
        f.client_order_id,
        f.symbol,
        f.position_side.value,
        f.side.value,
        f.reason,
        f.price,
        f.qty,
        f.fee_usdt,
    )


def trades_sha256(fills: Iterable[Fill]) -> str:
    """sha256 (hex) of the trade list in canonical order; funding records are not trades.

    Canonical order: by time, then client order id (then the remaining fields). Two
    executions of *different* positions at the same virtual instant may reach the venue in
    either order (trio does not promise an order between tasks that become runnable
    together), so the hash is taken over the time-ordered list with such ties broken by
    content; any difference in what was traded, when, at what price, still changes it.
    """
    h = hashlib.sha256()
    for f in sorted((f for f in fills if f.reason != _FUNDING), key=_trade_key):
        h.update((trade_line(f) + "\n").encode())
    return h.hexdigest()


class _AvgCostBook:
    """Average-cost position book per (symbol, position side); ``apply`` returns the gross
    PnL a fill realizes (0 for an opening fill)."""

    def __init__(self) -> None:
        self._book: dict[tuple[str, str], tuple[Decimal, Decimal]] = {}  # qty, average entry

    def apply(self, f: Fill) -> Decimal:
        key = (f.symbol, f.position_side.value)
        qty, avg = self._book.get(key, (ZERO, ZERO))
        if f.side is f.position_side.entry_side:
            new_qty = qty + f.qty
            self._book[key] = (new_qty, (qty * avg + f.qty * f.price) / new_qty)
            return ZERO
        closed = min(f.qty, qty)
        rest = qty - closed
        self._book[key] = (rest, avg if rest > 0 else ZERO)
        return (f.price - avg) * closed * f.position_side.sign


def realized_pnl_usdt(fills: Iterable[Fill]) -> Decimal:
    """Gross realized PnL of the executions, average-cost per (symbol, position side).

    An opening fill (``side == position_side.entry_side``) raises the quantity and moves the
    average entry; a reducing fill realizes ``sign * (price - average) * qty``. Funding
    records are skipped.
    """
    book = _AvgCostBook()
    return sum((book.apply(f) for f in fills if f.reason != _FUNDING), ZERO)


def equity_from_fills(
    start_ts: datetime, wallet_usdt: Decimal, fills: Iterable[Fill]
) -> list[tuple[datetime, Decimal]]:
    """Realized equity curve: the starting wallet, then the wallet after every execution
    (``+ realized - fee``) and funding payment (``- paid``)."""
    curve = [(start_ts, wallet_usdt)]
    wallet = wallet_usdt
    book = _AvgCostBook()
    for f in fills:
        if f.reason == _FUNDING:
            wallet -= f.fee_usdt
        else:
            wallet += book.apply(f) - f.fee_usdt
        curve.append((f.ts, wallet))
    return curve


def max_drawdown_pct(curve: Sequence[tuple[datetime, Decimal]]) -> Decimal:
    """Largest peak-to-trough fall of an equity curve, percent of the peak (0 if flat/up)."""
    peak: Decimal | None = None
    worst = ZERO
    for _, equity in curve:
        if peak is None or equity > peak:
            peak = equity
        elif peak > 0:
            dd = (peak - equity) * 100 / peak
            if dd > worst:
                worst = dd
    return worst.quantize(_CENT)


@attrs.frozen
class RunReport:
    """The report. :meth:`to_json_dict` gives the JSON document (keys :data:`REPORT_KEYS`
    first, then ``details``)."""

    positions_opened: int
    positions_closed: int
    stop_coverage_pct: Decimal
    max_unprotected_ms: int
    invariant_violations: int
    trailing_activations: int
    stop_moves: int
    tp_fills: int
    aged_exits: int
    rollbacks: int
    pnl_usdt: Decimal
    fees_usdt: Decimal
    max_drawdown_pct: Decimal
    events_journaled: int
    events_by_type: Mapping[str, int]
    ticks_processed: int
    wall_s: float
    sim_s: int
    trades_sha256: str
    details: Mapping[str, Any] = attrs.field(factory=dict)
    equity_curve: Sequence[tuple[datetime, Decimal]] = ()

    def to_json_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key in REPORT_KEYS:
            v = getattr(self, key)
            if isinstance(v, Decimal):
                v = str(v)
            elif key == "events_by_type":
                v = dict(sorted(v.items()))
            elif key == "wall_s":
                v = round(float(v), 3)
            out[key] = v
        out["details"] = _jsonable(self.details)
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_json_dict(), indent=2)


def _jsonable(v: Any) -> Any:
    if isinstance(v, Decimal):
        return str(v)
    if isinstance(v, datetime):
        return v.isoformat()
    if isinstance(v, Mapping):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    return v


INCIDENT_TYPES: tuple[tuple[str, EventType], ...] = (
    ("protection_missing", EventType.PROTECTION_MISSING),
    ("protection_repaired", EventType.PROTECTION_REPAIRED),
    ("protection_breach", EventType.PROTECTION_BREACH),
    ("emergency_stops", EventType.EMERGENCY_STOP_PLACED),
    ("flatten_failed", EventType.FLATTEN_FAILED),
    ("stop_gap_fills", EventType.STOP_GAP_FILL),
    ("marks_rejected", EventType.MARK_REJECTED),
    ("actor_crashes", EventType.ACTOR_CRASHED),
    ("safe_mode", EventType.SAFE_MODE_ENTERED),
    ("db_unavailable", EventType.DB_UNAVAILABLE),
    ("db_server_restarts", EventType.DB_SERVER_RESTART),
)
"""Incident name → the journal event type counted (the report's incident line)."""


def incident_counts(event_counts: Mapping[str, int]) -> dict[str, int]:
    """The incident line from journal counts (``events.type`` → count): every entry of
    :data:`INCIDENT_TYPES`, 0 when absent. ``stop_gap_fills`` counts ``stop.gap_fill``
    (a stop filled worse than its trigger beyond the bound)."""
    return {name: int(event_counts.get(t.value, 0)) for name, t in INCIDENT_TYPES}


def stop_fill_summary(
    fills: Iterable[Fill], *, gap_fill_pct: Decimal = DEFAULT_GAP_FILL_PCT
) -> dict[str, Any]:
    """Trigger vs fill price of every stop fill (``Fill.trigger_price`` set).

    Returns:
        ``{"count", "max_slippage_pct", "gap_fill_bound_pct", "gap_fills": [...]}`` where
        ``gap_fills`` lists (first 50) the fills worse than the trigger by more than
        ``gap_fill_pct`` percent: ``ts, symbol, position_side, trigger_price, fill_price,
        slippage_pct, qty``. ``max_slippage_pct`` is None without a stop fill.
    """
    count = 0
    worst: Decimal | None = None
    gaps: list[dict[str, Any]] = []
    for f in fills:
        if f.trigger_price is None or f.trigger_price <= 0:
            continue
        count += 1
        slip = stop_slippage_pct(f.position_side.sign, f.trigger_price, f.price)
        if worst is None or slip > worst:
            worst = slip
        if slip > gap_fill_pct and len(gaps) < 50:
            gaps.append(
                {
                    "ts": f.ts.isoformat(),
                    "symbol": f.symbol,
                    "position_side": f.position_side.value,
                    "trigger_price": f.trigger_price,
                    "fill_price": f.price,
                    "slippage_pct": slip.quantize(_SLIP_Q),
                    "qty": f.qty,
                }
            )
    return {
        "count": count,
        "max_slippage_pct": None if worst is None else worst.quantize(_SLIP_Q),
        "gap_fill_bound_pct": gap_fill_pct,
        "gap_fills": gaps,
    }


def build_report(
    *,
    event_counts: Mapping[str, int],
    fills: Sequence[Fill],
    invariants: InvariantSummary,
    start_ts: datetime,
    starting_wallet_usdt: Decimal,
    equity_curve: Sequence[tuple[datetime, Decimal]] = (),
    ticks_processed: int = 0,
    wall_s: float = 0.0,
    sim_s: int = 0,
    details: Mapping[str, Any] | None = None,
    close_reasons: Mapping[str, int] | None = None,
    gap_fill_pct: Decimal = DEFAULT_GAP_FILL_PCT,
) -> RunReport:
    """Assemble the report (sources and formulas in the module docstring).

    Args:
        event_counts: journal ``type`` value → count (all events of the run).
        fills: the venue's executions *and* funding records, in order.
        invariants: the monitor's summary.
        start_ts: run start (first point of a realized equity curve).
        starting_wallet_usdt: wallet at the start, USDT.
        equity_curve: sampled ``(ts, equity_usdt)``; empty = realized curve from ``fills``.
        ticks_processed: mark updates delivered to the venue.
        wall_s: wall-clock seconds of the run.
        sim_s: simulated seconds covered.
        details: extra JSON-safe facts (venue profile, window, instruments' sources, ...).
        close_reasons: ``position.closed`` count per ``data.reason`` (journal), if known.
        gap_fill_pct: bound of :func:`stop_fill_summary` (the same bound the AccountRouter
            journals ``stop.gap_fill`` incidents with).
    """

    def n(t: EventType) -> int:
        return int(event_counts.get(t.value, 0))

    trades = [f for f in fills if f.reason != _FUNDING]
    funding_paid = sum((f.fee_usdt for f in fills if f.reason == _FUNDING), ZERO)
    fees = sum((f.fee_usdt for f in trades), ZERO)
    realized = realized_pnl_usdt(trades)
    pnl = realized - fees - funding_paid
    curve = list(equity_curve) or equity_from_fills(start_ts, starting_wallet_usdt, fills)
    extra: dict[str, Any] = dict(details or {})
    extra.setdefault("trades", len(trades))
    extra.setdefault("incidents", incident_counts(event_counts))
    extra.setdefault("stop_fills", stop_fill_summary(trades, gap_fill_pct=gap_fill_pct))
    if close_reasons is not None:
        extra.setdefault("positions_closed_by_reason", dict(sorted(close_reasons.items())))
    extra.setdefault("realized_pnl_usdt", realized.quantize(_CENT))
    extra.setdefault("funding_paid_usdt", funding_paid.quantize(Decimal("0.0001")))
    extra.setdefault("starting_wallet_usdt", starting_wallet_usdt)
    extra.setdefault("position_time_s", invariants.position_time_ms // 1000)
    extra.setdefault("positions_seen_on_venue", invariants.positions_seen)
    extra.setdefault(
        "violations",
        [
            {
                "ts": v.ts.isoformat(),
                "symbol": v.symbol,
                "position_side": v.position_side.value,
                "kind": v.kind,
                "detail": v.detail,
            }
            for v in invariants.violations[:50]
        ],
    )
    return RunReport(
        positions_opened=n(EventType.POSITION_ACTIVE),
        positions_closed=n(EventType.POSITION_CLOSED),
        stop_coverage_pct=invariants.stop_coverage_pct,
        max_unprotected_ms=invariants.max_unprotected_ms,
        invariant_violations=len(invariants.violations),
        trailing_activations=n(EventType.TRAILING_ACTIVATED),
        stop_moves=n(EventType.STOP_MOVED),
        tp_fills=n(EventType.TP_FILLED),
        aged_exits=(
            int(close_reasons.get("aged_exit", 0))
            if close_reasons is not None
            else n(EventType.AGED_EXIT_FILLED) + n(EventType.AGED_MARKET_CLOSE)
        ),
        rollbacks=n(EventType.POSITION_ROLLED_BACK),
        pnl_usdt=pnl.quantize(_CENT),
        fees_usdt=fees.quantize(_CENT),
        max_drawdown_pct=max_drawdown_pct(curve),
        events_journaled=sum(int(c) for c in event_counts.values()),
        events_by_type=dict(event_counts),
        ticks_processed=ticks_processed,
        wall_s=wall_s,
        sim_s=sim_s,
        trades_sha256=trades_sha256(trades),
        details=extra,
        equity_curve=tuple(curve),
    )


def format_table(report: RunReport, *, title: str = "tradebot paper: run report") -> str:
    """The human-readable report (a two-column table, then events by type)."""
    r = report
    rows: list[tuple[str, str]] = [
        ("positions opened / closed", f"{r.positions_opened} / {r.positions_closed}"),
        ("stop coverage", f"{r.stop_coverage_pct} %" + _unprotected_note(r)),
        ("max unprotected", f"{r.max_unprotected_ms} ms"),
        ("invariant violations", str(r.invariant_violations)),
        ("trailing activations", str(r.trailing_activations)),
        ("stop moves", str(r.stop_moves)),
        ("take-profit fills", str(r.tp_fills)),
        ("aged exits", str(r.aged_exits)),
        ("rollbacks", str(r.rollbacks)),
        ("incidents", _incidents(r)),
        ("PnL (net of fees, funding)", f"{r.pnl_usdt} USDT"),
        ("fees", f"{r.fees_usdt} USDT"),
        ("max drawdown", f"{r.max_drawdown_pct} %"),
        ("events journaled", f"{r.events_journaled:,}"),
        ("ticks processed", f"{r.ticks_processed:,}"),
        ("simulated", _duration(r.sim_s)),
        (
            "wall",
            f"{r.wall_s:.1f} s"
            + (f"  ({r.ticks_processed / r.wall_s:,.0f} ticks/s)" if r.wall_s > 0 else ""),
        ),
        ("trades sha256", r.trades_sha256),
    ]
    drain_s = r.details.get("journal_drain_s") if isinstance(r.details, Mapping) else None
    if isinstance(drain_s, (int, float)):
        n = r.details.get("journal_drain_events")
        rows.insert(
            -1,
            (
                "journal drain",
                f"{drain_s:.2f} s" + (f"  ({n:,} events)" if isinstance(n, int) else ""),
            ),
        )
    width = max(len(k) for k, _ in rows)
    lines = [title, "=" * len(title)]
    lines += [f"{k:<{width}}  {v}" for k, v in rows]
    if r.events_by_type:
        lines.append("")
        lines.append("events by type:")
        items = sorted(r.events_by_type.items(), key=lambda kv: (-kv[1], kv[0]))
        tw = max(len(k) for k, _ in items)
        lines += [f"  {k:<{tw}}  {v:>9,}" for k, v in items]
    jstate = r.details.get("journal") if isinstance(r.details, Mapping) else None
    if isinstance(jstate, Mapping) and jstate.get("events_in_spool"):
        lines.append("")
        lines.append(
            f"journal: database {jstate.get('database')}"
            + (f" ({jstate['error']})" if jstate.get("error") else "")
            + f"; {jstate['events_in_spool']:,} events are kept in the spool {jstate.get('spool')}"
        )
        if jstate.get("counts_from"):
            lines.append(f"  event counts above are from {jstate['counts_from']}")
        lines.append(f"  load them into the database later: {jstate.get('replay_command')}")
    journaled = r.details.get("trades_journaled_as_order_fill")
    trades = r.details.get("trades")
    if isinstance(journaled, int) and isinstance(trades, int) and journaled != trades:
        lines.append("")
        lines.append(
            f"journal check: the venue executed {trades} trades, the journal holds "
            f"{journaled} order.fill events for them"
        )
    sf = r.details.get("stop_fills") if isinstance(r.details, Mapping) else None
    if isinstance(sf, Mapping) and sf.get("gap_fills"):
        lines.append("")
        lines.append(
            f"stop gap fills (filled worse than the trigger by more than "
            f"{sf.get('gap_fill_bound_pct')} %):"
        )
        lines += [
            f"  {g['ts']} {g['symbol']} {g['position_side']} trigger {g['trigger_price']} "
            f"filled {g['fill_price']} ({g['slippage_pct']} % worse) qty {g['qty']}"
            for g in sf["gap_fills"]
        ]
    viol = r.details.get("violations") if isinstance(r.details, Mapping) else None
    if viol:
        lines.append("")
        lines.append("invariant violations (first 50):")
        lines += [
            f"  {v['ts']} {v['symbol']} {v['position_side']} {v['kind']}: {v['detail']}"
            for v in viol
        ]
    return "\n".join(lines)


def _incidents(r: RunReport) -> str:
    inc = r.details.get("incidents") if isinstance(r.details, Mapping) else None
    if not isinstance(inc, Mapping):
        return "-"
    items = [f"{k.replace('_', ' ')} {v}" for k, v in inc.items() if v]
    return (
        ", ".join(items)
        if items
        else "none (no missing stop, repair, emergency stop, stop gap fill, crash)"
    )


def _unprotected_note(r: RunReport) -> str:
    total = r.details.get("unprotected_ms_total") if isinstance(r.details, Mapping) else None
    if not total:
        return ""
    return f"  (unprotected {total:,} ms in total, rounded; see max unprotected)"


def _duration(seconds: int) -> str:
    d, rem = divmod(int(seconds), 86_400)
    h, rem = divmod(rem, 3600)
    m, s = divmod(rem, 60)
    return (f"{d}d " if d else "") + f"{h:02d}:{m:02d}:{s:02d}"


def require_chart_support() -> None:
    """Check that the optional ``chart`` extra (matplotlib) is installed.

    Raises:
        ConfigError: ``("--chart", "... pip install 'tradebot[chart]'")`` when it is not.
    """
    import importlib.util

    if importlib.util.find_spec("matplotlib") is None:
        from tradebot.errors import ConfigError

        raise ConfigError(
            [
                (
                    "--chart",
                    "needs matplotlib, the optional chart extra: pip install 'tradebot[chart]'",
                )
            ]
        )


def write_equity_chart(
    curve: Sequence[tuple[datetime, Decimal]], path: Path, *, title: str = "Equity (USDT)"
) -> None:
    """Write the equity curve as a PNG (matplotlib, Agg backend; no display needed).

    Float conversion happens here, for drawing only; no money value flows back.

    Raises:
        ConfigError: matplotlib (the ``chart`` extra) is not installed
            (:func:`require_chart_support`).
        OSError: the file cannot be written.
    """
    require_chart_support()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xs = [t for t, _ in curve]
    ys = [float(v) for _, v in curve]
    fig, ax = plt.subplots(figsize=(10, 4), dpi=100)
    try:
        ax.plot(xs, ys, linewidth=1.2, color="#1f77b4", drawstyle="steps-post")  # type: ignore[arg-type]
        ax.set_title(title)
        ax.set_ylabel("USDT")
        ax.grid(True, alpha=0.3)
        fig.autofmt_xdate()
        fig.tight_layout()
        fig.savefig(path, format="png")
    finally:
        plt.close(fig)
